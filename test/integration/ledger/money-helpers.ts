// Helpers for the ledger suites: fresh funded orgs, the books read as the database owner (no RLS),
// extra gateway processes (`nemo start`) on a test database, as production runs them, and `nemo ledger check`.
// The suites run in both ledger modes (lease, the default, and NEMO_LEDGER_MODE=hold), so they assert
// what holds in both: one 'settle' row per served request with its exact charge, the balance equal to
// the top-ups less the charges, nothing held and no reservation open once settled. The ledger's shape
// (a 'reserve' row and a reservation per request) is hold mode's only.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { expect } from 'vitest';
import type { Gateway } from '../../../src/main.js';
import { databaseEnv, type TestDatabase } from '../../support/test-database.js';
import { CLI, PLATFORM, waitFor } from '../helpers/gateway.js';
import { withTestLedger } from '../../support/ledger-defaults.js';

export type LedgerMode = 'lease' | 'hold';

/** The mode the suites' gateways run in (NEMO_LEDGER_MODE, as the gateway reads it). */
export const LEDGER_MODE: LedgerMode = process.env.NEMO_LEDGER_MODE === 'hold' ? 'hold' : 'lease';

/**
 * A gateway pinned to one mode whatever NEMO_LEDGER_MODE says (the environment overrides the config
 * file): its config's `ledger` part and the environment to start it with.
 */
export function pinnedMode(mode: LedgerMode, ledger: Record<string, unknown> = {}): { ledger: Record<string, unknown>; env: Record<string, string> } {
  return { ledger: { ...ledger, mode }, env: { NEMO_LEDGER_MODE: mode } };
}

export interface FundedOrg {
  readonly orgId: string;
  readonly key: string;
  readonly auth: { authorization: string };
}

/** A new org with exactly `micros` of credits (none when 0) and an admin key of its own (`keyFields` added). */
export async function fundedOrg(gateway: Gateway, micros: number, name = 'ledger org', keyFields: Record<string, unknown> = {}): Promise<FundedOrg> {
  const org = await gateway.admin.createOrg(PLATFORM, { name });
  if (micros > 0) await gateway.admin.addCredits(PLATFORM, org.id, { amount_micros: micros, idempotency_key: `topup-${org.id}` });
  const { key } = (await gateway.admin.createKey(PLATFORM, org.id, { name: 'ledger key', role: 'admin', ...keyFields })) as { key: string };
  return { orgId: org.id, key, auth: { authorization: `Bearer ${key}` } };
}

export interface Account {
  readonly available: number;
  readonly held: number;
}

export interface LedgerRow {
  readonly kind: string;
  readonly available_delta: number;
  readonly held_delta: number;
  readonly charged: number;
  readonly reservation_id: string | null;
}

/** A request's charge: its 'settle' row (in hold mode against its own hold, in lease mode against a lease). */
export interface Charge {
  readonly request_id: string | null;
  readonly key_id: string | null;
  readonly reservation_id: string | null;
  readonly charged: number;
  readonly available_delta: number;
  readonly held_delta: number;
}

export interface OpenReservation {
  readonly reservation_id: string;
  readonly kind: 'request' | 'lease';
  readonly amount: number;
  readonly charged: number;
}

/** The books as the owner sees them: every org, no row-level security in the way. */
export class Books {
  readonly pool: pg.Pool;

  constructor(database: TestDatabase) {
    this.pool = new pg.Pool({ connectionString: database.url, max: 3 });
  }

  async account(orgId: string): Promise<Account> {
    const { rows } = await this.pool.query<{ available: string; held: string }>('SELECT available, held FROM nemo.credit_accounts WHERE org_id = $1', [orgId]);
    if (rows.length === 0) throw new Error(`no account for ${orgId}`);
    return { available: Number(rows[0]!.available), held: Number(rows[0]!.held) };
  }

  async entries(orgId: string, kind?: string): Promise<LedgerRow[]> {
    const { rows } = await this.pool.query<LedgerRow>(
      `SELECT kind, available_delta::float8 AS available_delta, held_delta::float8 AS held_delta, charged::float8 AS charged, reservation_id
       FROM nemo.ledger_entries WHERE org_id = $1 AND ($2::text IS NULL OR kind = $2) ORDER BY entry_id`,
      [orgId, kind ?? null],
    );
    return rows;
  }

  /** Every request's charge, in the order written. */
  async charges(orgId: string): Promise<Charge[]> {
    const { rows } = await this.pool.query<Charge>(
      `SELECT request_id, key_id, reservation_id, charged::float8 AS charged, available_delta::float8 AS available_delta, held_delta::float8 AS held_delta
       FROM nemo.ledger_entries WHERE org_id = $1 AND kind = 'settle' ORDER BY entry_id`,
      [orgId],
    );
    return rows;
  }

  /** Reservations still open (request holds and leases), with what each holds: amount - charged. */
  async openReservations(orgId: string): Promise<OpenReservation[]> {
    const { rows } = await this.pool.query<OpenReservation>(
      `SELECT reservation_id, kind, amount::float8 AS amount, charged::float8 AS charged
       FROM nemo.reservations WHERE org_id = $1 AND state = 'reserved' ORDER BY created_at`,
      [orgId],
    );
    return rows;
  }

  /** Reservations by state, of one kind only when given ('request': per-request holds; 'lease': leases). */
  async reservationStatesOf(orgId: string, kind: 'request' | 'lease'): Promise<Record<string, number>> {
    const { rows } = await this.pool.query<{ state: string; n: number }>('SELECT state, count(*)::int AS n FROM nemo.reservations WHERE org_id = $1 AND kind = $2 GROUP BY state', [orgId, kind]);
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  /** Reservations by state. */
  async reservationStates(orgId: string): Promise<Record<string, number>> {
    const { rows } = await this.pool.query<{ state: string; n: number }>('SELECT state, count(*)::int AS n FROM nemo.reservations WHERE org_id = $1 GROUP BY state', [orgId]);
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  /** nemo.ledger_check(): the accounts whose books do not balance (none: all is well). */
  async check(): Promise<unknown[]> {
    return (await this.pool.query('SELECT * FROM nemo.ledger_check()')).rows;
  }

  /**
   * Settles are sent after the response, and a lease gives back its unused part after its (short, in
   * the suites) lifetime: waits until nothing is held for the org and no reservation is open.
   */
  async settled(orgId: string, timeoutMs = 5_000): Promise<Account> {
    await waitFor(async () => (await this.account(orgId)).held === 0 && (await this.openReservations(orgId)).length === 0, timeoutMs, 20);
    return this.account(orgId);
  }

  /** Top-ups, refunds and adjustments of the org: what was put in. */
  async credited(orgId: string): Promise<number> {
    const { rows } = await this.pool.query<{ total: number }>(
      "SELECT coalesce(sum(available_delta), 0)::float8 AS total FROM nemo.ledger_entries WHERE org_id = $1 AND kind IN ('topup', 'refund', 'adjustment')",
      [orgId],
    );
    return rows[0]!.total;
  }

  /**
   * The invariants of a settled org in either mode: nothing held, no reservation open, the books
   * balance, and what is available is what was put in less every charge (none lost, none created).
   * With `served`, exactly that many charge rows, each of `charge` when given. Returns the charges.
   */
  async expectSettledBooks(orgId: string, expected: { served?: number; charge?: number } = {}): Promise<Charge[]> {
    const account = await this.settled(orgId);
    const charges = await this.charges(orgId);
    expect(account.held).toBe(0);
    expect(await this.openReservations(orgId)).toEqual([]);
    expect(await this.check()).toEqual([]);
    expect(account.available).toBe((await this.credited(orgId)) - charges.reduce((sum, c) => sum + c.charged, 0));
    if (expected.served !== undefined) expect(charges.length, 'one charge row per served request').toBe(expected.served);
    if (expected.served !== undefined) expect(new Set(charges.map((c) => c.request_id)).size, 'each for its own request').toBe(expected.served);
    if (expected.charge !== undefined) for (const c of charges) expect(c.charged, JSON.stringify(c)).toBe(expected.charge);
    return charges;
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

export interface GatewayProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** What the process wrote so far (both streams, last 64 KB). */
  output(): string;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for the exit: a crash. */
  kill(): Promise<void>;
}

/** `nemo start` in its own process on the test database, with `config` as its NEMO_CONFIG file. */
export async function spawnGateway(database: TestDatabase, config: Record<string, unknown>, env: Record<string, string> = {}): Promise<GatewayProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'nemo-ledger-'));
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(withTestLedger(config)));
  const child = spawn(process.execPath, [CLI, 'start'], {
    env: { ...process.env, ...databaseEnv(database), PORT: '0', HOST: '127.0.0.1', NEMO_CONFIG: file, NEMO_MASTER_KEY: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  // Always drained: a full pipe would block the gateway.
  const keep = (chunk: Buffer) => {
    out += chunk.toString();
    if (out.length > 65_536) out = out.slice(-65_536);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = once(child, 'exit');
  const finish = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(() => /listening on http:\/\/\S+/.test(out) || child.exitCode !== null, 30_000, 20);
  } catch (err) {
    await finish('SIGKILL');
    throw err;
  }
  const match = /listening on (http:\/\/\S+)/.exec(out);
  if (!match) {
    await finish('SIGKILL');
    throw new Error(`gateway process did not start:\n${out}`);
  }
  return { url: match[1]!, child, output: () => out, stop: () => finish('SIGTERM'), kill: () => finish('SIGKILL') };
}

/** `nemo ledger check` as an operator runs it: exit 0 and nothing offending. */
export async function ledgerCheckCli(env: Record<string, string>): Promise<void> {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'ledger', 'check'], { env: { ...process.env, ...env }, timeout: 30_000 });
  expect(JSON.parse(stdout)).toEqual({ ok: true, offending: [], offending_windows: [] });
}
