// What every chaos suite shares: the soak multiplier, one chat request with its outcome read the way
// a client sees it, the admin API over HTTP, the money audit that every scenario ends with, and the
// results table (printed, and appended as JSON lines to NEMO_CHAOS_REPORT when set).
import { appendFileSync } from 'node:fs';
import pg from 'pg';
import { Agent, request } from 'undici';
import { expect } from 'vitest';
import { adminClient, type AdminClient } from '../../support/admin-client.js';

/**
 * Unset: the fast versions that `npm test` runs. NEMO_CHAOS_SOAK=1 (or true): soak, ten times the load
 * and duration; a number N >= 2: N times.
 */
export const SOAK = soakFactor(process.env.NEMO_CHAOS_SOAK);

function soakFactor(value: string | undefined): number {
  if (value === undefined || value === '' || value === '0' || value === 'false') return 1;
  if (value === '1' || value === 'true') return 10;
  const n = Number(value);
  return Number.isFinite(n) && n >= 1 ? Math.floor(n) : 10;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One line of the closing table. */
export interface ChaosRow {
  readonly scenario: string;
  readonly load: string;
  readonly faults: string;
  readonly requests: number;
  /** Credits lost or created: what the audit found beyond what the ledger explains (0 when it balances). */
  readonly lostOrDuplicatedMicros: number;
  readonly crossTenantReads: number;
  readonly recoveryMs: number | null;
  readonly notes?: string;
}

export function recordChaos(row: ChaosRow): void {
  const line = JSON.stringify({ ...row, soak: SOAK, at: new Date().toISOString() });
  // One line per scenario on stdout, greppable in CI logs as "chaos-result".
  console.log(`chaos-result ${line}`);
  const file = process.env.NEMO_CHAOS_REPORT;
  if (file) appendFileSync(file, `${line}\n`);
}

export interface ChatOutcome {
  readonly requestId: string;
  readonly stream: boolean;
  /** null: no HTTP answer at all (refused, reset before the status line). */
  readonly status: number | null;
  /** The error code: of a JSON error, or of the final SSE `error` event. */
  readonly code: string | null;
  readonly nemoCode: string | null;
  /** 200 and a whole answer: `data: [DONE]` for a stream, a parsed completion otherwise. */
  readonly complete: boolean;
  /** The generated text the client received. */
  readonly text: string;
  readonly usage: { prompt_tokens: number; completion_tokens: number } | null;
  readonly headers: Record<string, string | string[] | undefined>;
  /** A transport error (the connection went away). */
  readonly transportError: string | null;
  readonly ms: number;
  /** The raw error body (JSON errors), to check that 5xx bodies carry no internals. */
  readonly errorBody: string | null;
}

export const chaosAgent = new Agent({ connections: 512, pipelining: 1, keepAliveTimeout: 2_000, headersTimeout: 120_000, bodyTimeout: 120_000 });

export interface ChatSpec {
  readonly url: string;
  readonly authorization: string;
  readonly requestId: string;
  readonly model: string;
  readonly content: string;
  readonly stream?: boolean;
  readonly maxTokens?: number;
  /** Also ask for the usage chunk (streams). */
  readonly includeUsage?: boolean;
  /** Called when the answer's status line and headers arrived (a 200: the request holds its bound and is being served). */
  readonly onHeaders?: (status: number) => void;
}

export function chatBody(spec: ChatSpec): string {
  return JSON.stringify({
    model: spec.model,
    messages: [{ role: 'user', content: spec.content }],
    ...(spec.stream ? { stream: true } : {}),
    ...(spec.stream && spec.includeUsage ? { stream_options: { include_usage: true } } : {}),
    ...(spec.maxTokens !== undefined ? { max_tokens: spec.maxTokens } : {}),
  });
}

/** One chat request as a client sees it; never throws. */
export async function chat(spec: ChatSpec): Promise<ChatOutcome> {
  const started = performance.now();
  const stream = spec.stream === true;
  let status: number | null = null;
  let headers: ChatOutcome['headers'] = {};
  let raw = '';
  let transportError: string | null = null;
  try {
    const res = await request(`${spec.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: spec.authorization, 'x-request-id': spec.requestId },
      body: chatBody(spec),
      dispatcher: chaosAgent,
    });
    status = res.statusCode;
    headers = res.headers;
    spec.onHeaders?.(status);
    raw = await res.body.text();
  } catch (err) {
    transportError = (err as Error).message || String(err);
  }
  const ms = performance.now() - started;
  return { requestId: spec.requestId, stream, status, headers, transportError, ms, ...readAnswer(status, raw, stream, transportError === null) };
}

function readAnswer(status: number | null, raw: string, stream: boolean, whole: boolean) {
  const none = { code: null, nemoCode: null, complete: false, text: '', usage: null, errorBody: null };
  if (status === null) return none;
  if (status !== 200 || !stream) {
    try {
      const json = JSON.parse(raw) as { error?: { code?: string; nemo_code?: string }; choices?: Array<{ message?: { content?: string } }>; usage?: ChatOutcome['usage'] };
      if (json.error) return { ...none, code: json.error.code ?? null, nemoCode: json.error.nemo_code ?? null, errorBody: raw };
      return { ...none, complete: status === 200 && whole && Array.isArray(json.choices), text: json.choices?.[0]?.message?.content ?? '', usage: json.usage ?? null };
    } catch {
      return { ...none, errorBody: raw };
    }
  }
  let text = '';
  let usage: ChatOutcome['usage'] = null;
  let code: string | null = null;
  let nemoCode: string | null = null;
  let done = false;
  for (const frame of raw.split('\n\n')) {
    if (frame === '') continue;
    if (frame.startsWith('event: error\ndata: ')) {
      const error = (JSON.parse(frame.slice('event: error\ndata: '.length)) as { error: { code: string; nemo_code: string } }).error;
      code = error.code;
      nemoCode = error.nemo_code;
      continue;
    }
    if (!frame.startsWith('data: ')) continue;
    const data = frame.slice(6);
    if (data === '[DONE]') {
      done = true;
      continue;
    }
    try {
      const chunk = JSON.parse(data) as { choices?: Array<{ delta?: { content?: string } }>; usage?: ChatOutcome['usage'] };
      text += chunk.choices?.[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    } catch {
      // a frame cut by a dying connection
    }
  }
  return { code, nemoCode, complete: whole && done && code === null, text, usage, errorBody: null };
}

/** The admin API over the chaos agent, as the platform (master key) or an org admin key. */
export function chaosAdmin(url: string, key: string): AdminClient {
  return adminClient(url, key, { dispatcher: chaosAgent });
}

/**
 * The ledger mode the suites run in: NEMO_LEDGER_MODE=hold (CI's second pass of the money suites)
 * or the default, credit leases. A gateway whose config pins `ledger.mode` is in that mode unless
 * this variable overrides it.
 */
export const LEDGER_MODE: 'lease' | 'hold' = process.env.NEMO_LEDGER_MODE === 'hold' ? 'hold' : 'lease';

/** Money moved per org, as the ledger has it. */
export interface OrgBooks {
  readonly available: number;
  readonly held: number;
  readonly credits: number;
  readonly charged: number;
  /** Charge rows ('settle', one per charged request in either mode). */
  readonly charges: number;
  /** Reservations by state: per-request holds and credit leases together. */
  readonly states: Record<string, number>;
  /** Of those, the credit leases by state. */
  readonly leaseStates: Record<string, number>;
}

/**
 * The audit every scenario ends with, read as the database owner, in either ledger mode: the books
 * balance (nemo.ledger_check and the spend windows agree), nothing is held or open, no request was
 * charged twice, every reservation has exactly one reserve entry and its entries net out (a hold:
 * one closing entry; a credit lease: its charges, what it gave back and at most one expiry), no
 * charge exceeds what was held for it, and what the org has is what was put in minus what was
 * charged. Returns the per-org books and the number of micro-units the balance equation misses (0
 * when none is lost or made).
 */
export async function auditBooks(ownerUrl: string, orgIds: readonly string[]): Promise<{ books: Map<string, OrgBooks>; discrepancyMicros: number }> {
  const owner = new pg.Client(ownerUrl);
  await owner.connect();
  try {
    expect((await owner.query('SELECT * FROM nemo.ledger_check()')).rows).toEqual([]);
    expect((await owner.query('SELECT * FROM nemo.limit_windows_check()')).rows).toEqual([]);
    const books = new Map<string, OrgBooks>();
    let discrepancyMicros = 0;
    for (const orgId of orgIds) {
      const account = (await owner.query<{ available: string; held: string }>('SELECT available, held FROM nemo.credit_accounts WHERE org_id = $1', [orgId])).rows[0]!;
      const sums = (
        await owner.query<{ credits: string; charged: string; charges: number }>(
          `SELECT coalesce(sum(available_delta) FILTER (WHERE kind IN ('topup', 'refund', 'adjustment')), 0) AS credits,
                  coalesce(sum(charged), 0) AS charged, (count(*) FILTER (WHERE kind = 'settle'))::int AS charges
           FROM nemo.ledger_entries WHERE org_id = $1`,
          [orgId],
        )
      ).rows[0]!;
      // Never two charges for one request, whichever way its bound was held.
      const doubled = await owner.query(
        "SELECT request_id, count(*)::int AS n FROM nemo.ledger_entries WHERE org_id = $1 AND kind = 'settle' GROUP BY request_id HAVING count(*) > 1 OR request_id IS NULL",
        [orgId],
      );
      expect(doubled.rows, 'requests charged twice (or a charge without a request)').toEqual([]);
      const states: Record<string, number> = {};
      const leaseStates: Record<string, number> = {};
      for (const r of (await owner.query<{ kind: string; state: string; n: number }>('SELECT kind, state, count(*)::int AS n FROM nemo.reservations WHERE org_id = $1 GROUP BY kind, state', [orgId])).rows) {
        states[r.state] = (states[r.state] ?? 0) + r.n;
        if (r.kind === 'lease') leaseStates[r.state] = (leaseStates[r.state] ?? 0) + r.n;
      }
      // Per reservation: one reserve row; what its entries still hold is what it holds; a charge within it.
      const entries = await owner.query<{
        reservation_id: string; kind: string; state: string; amount: string; res_charged: string;
        reserves: number; closes: number; expiries: number; charged: string; held: string;
      }>(
        `SELECT r.reservation_id, r.kind, r.state, r.amount, r.charged AS res_charged,
                count(*) FILTER (WHERE e.kind = 'reserve')::int AS reserves,
                count(*) FILTER (WHERE e.kind IN ('settle', 'release', 'expiry'))::int AS closes,
                count(*) FILTER (WHERE e.kind = 'expiry')::int AS expiries,
                coalesce(sum(e.charged), 0) AS charged, coalesce(sum(e.held_delta), 0) AS held
         FROM nemo.reservations r LEFT JOIN nemo.ledger_entries e ON e.org_id = r.org_id AND e.reservation_id = r.reservation_id
         WHERE r.org_id = $1 GROUP BY r.reservation_id, r.kind, r.state, r.amount, r.charged`,
        [orgId],
      );
      for (const row of entries.rows) {
        const label = `${row.kind} ${row.reservation_id} (${row.state})`;
        const open = row.state === 'reserved';
        expect(row.reserves, label).toBe(1);
        if (row.kind === 'request') expect(row.closes, label).toBe(open ? 0 : 1);
        else expect(row.expiries, label).toBe(row.state === 'expired' ? 1 : 0);
        expect(Number(row.charged), label).toBe(Number(row.res_charged));
        expect(Number(row.charged), label).toBeLessThanOrEqual(Number(row.amount));
        expect(Number(row.held), label).toBe(open ? Number(row.amount) - Number(row.res_charged) : 0);
      }
      const b: OrgBooks = { available: Number(account.available), held: Number(account.held), credits: Number(sums.credits), charged: Number(sums.charged), charges: sums.charges, states, leaseStates };
      discrepancyMicros += Math.abs(b.credits - b.charged - b.available - b.held);
      books.set(orgId, b);
      expect(states.reserved ?? 0, `open holds of ${orgId}`).toBe(0);
      expect(b.held).toBe(0);
    }
    expect(discrepancyMicros).toBe(0);
    return { books, discrepancyMicros };
  } finally {
    await owner.end();
  }
}

/** What the ledger did for one request, in either ledger mode. */
export interface RequestCharge {
  /** Its charge rows ('settle' with its request id): at most one, whichever way its bound was held. */
  readonly charges: number;
  /** What they charged. */
  readonly charged: number;
  /** Its own durable hold; undefined when its bound was carved from a credit lease (or it never got one). */
  readonly hold: { readonly state: string; readonly amount: number; readonly charged: number } | undefined;
}

/**
 * Every request of an org the ledger knows, by request id, read as the owner: from its charge row,
 * or its own hold's rows. A request carved from a lease that was released (nothing served) has no
 * row at all, so it is not in the map.
 */
export async function chargesByRequest(ownerUrl: string, orgId: string): Promise<Map<string, RequestCharge>> {
  const owner = new pg.Client(ownerUrl);
  await owner.connect();
  try {
    const holds = await owner.query<{ request_id: string; state: string; amount: string; charged: string }>(
      "SELECT request_id, state, amount, charged FROM nemo.reservations WHERE org_id = $1 AND kind = 'request'",
      [orgId],
    );
    const entries = await owner.query<{ request_id: string; charges: number; charged: string }>(
      `SELECT request_id, (count(*) FILTER (WHERE kind = 'settle'))::int AS charges, coalesce(sum(charged), 0) AS charged
       FROM nemo.ledger_entries WHERE org_id = $1 AND request_id IS NOT NULL AND request_id NOT LIKE 'lease:%' GROUP BY request_id`,
      [orgId],
    );
    const byRequest = new Map<string, { charges: number; charged: number; hold: RequestCharge['hold'] }>();
    for (const r of holds.rows) {
      expect(byRequest.has(r.request_id), `two holds for ${r.request_id}`).toBe(false);
      byRequest.set(r.request_id, { charges: 0, charged: 0, hold: { state: r.state, amount: Number(r.amount), charged: Number(r.charged) } });
    }
    for (const e of entries.rows) {
      expect(e.charges, `charges of ${e.request_id}`).toBeLessThanOrEqual(1);
      const known = byRequest.get(e.request_id);
      byRequest.set(e.request_id, { charges: e.charges, charged: Number(e.charged), hold: known?.hold });
    }
    return byRequest;
  } finally {
    await owner.end();
  }
}

/** The request was charged exactly once, `micros`; a hold of its own says the same. */
export function expectCharged(r: RequestCharge | undefined, micros: number, label: string): void {
  expect(r, label).toBeDefined();
  expect({ charges: r!.charges, charged: r!.charged }, label).toEqual({ charges: 1, charged: micros });
  if (r!.hold !== undefined) expect(r!.hold, label).toMatchObject({ state: 'settled', charged: micros });
}

/** The request was charged nothing: no charge row; a hold of its own was closed in `holdState` (released, or expired by a sweeper). */
export function expectUncharged(r: RequestCharge | undefined, label: string, holdState: 'released' | 'expired' = 'released'): void {
  if (r === undefined) return;
  expect({ charges: r.charges, charged: r.charged }, label).toEqual({ charges: 0, charged: 0 });
  if (r.hold !== undefined) expect(r.hold, label).toMatchObject({ state: holdState, charged: 0 });
}

/** Waits until no hold is open on the database (settles are sent after the response; the sweeper runs on its interval). */
export async function waitNoOpenHolds(ownerUrl: string, timeoutMs: number): Promise<number> {
  const owner = new pg.Client(ownerUrl);
  await owner.connect();
  const started = Date.now();
  try {
    for (;;) {
      const n = (await owner.query<{ n: number }>("SELECT count(*)::int AS n FROM nemo.reservations WHERE state = 'reserved'")).rows[0]!.n;
      if (n === 0) return Date.now() - started;
      if (Date.now() - started > timeoutMs) throw new Error(`${n} holds still open after ${timeoutMs} ms`);
      await sleep(50);
    }
  } finally {
    await owner.end();
  }
}

/** The mock upstream's usage for a prompt: ceil(UTF-8 bytes / 4), at least 1. */
export function mockPromptTokens(content: string): number {
  return Math.max(1, Math.ceil(Buffer.byteLength(content) / 4));
}
