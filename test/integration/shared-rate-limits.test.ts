// Rate limits shared across gateway instances: one in-process gateway and two `nemo start`
// processes on ONE database, each with its own local limiter and its own batched ledger writer.
// A key's (or team's) rpm/tpm is decided by nemo.ledger_apply_v2 under the org's lock, so the
// total over every instance never exceeds the limit within a Postgres clock minute
// (date_trunc('minute', now())). Each burst starts between 2 s and 45 s into a database minute and
// checks the database clock again afterwards; should a burst still straddle a minute boundary,
// the exact count is relaxed to "at most the limit per minute window touched".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { Books, fundedOrg, spawnGateway, type FundedOrg, type GatewayProcess } from './ledger/money-helpers.js';
import { adminClient, createKey, createTeam, spendWindows, type CreatedKey } from '../support/admin-client.js';

const P = 7; // output price per MTok; input is free
const M = 10; // max_tokens of every request
const HOLD = M * P;
const TOPUP = 100_000_000;

const MODELS = [
  { name: 'paid', deployments: [{ provider: 'mock', model: 'paid', inputPricePerMTok: 0, outputPricePerMTok: P, mock: { completionTokens: 64 } }] },
  // Price 0: nothing to hold, but a limited key's requests are still counted (the 'admit' path).
  { name: 'free', deployments: [{ provider: 'mock', model: 'free', inputPricePerMTok: 0, outputPricePerMTok: 0, mock: { completionTokens: 64 } }] },
];

const bodyFor = (model: string) => JSON.stringify({ model, messages: [{ role: 'user', content: 'limit me' }], max_tokens: M });
/** A request's token bound for tpm: its body bytes plus max_tokens. */
const boundOf = (model: string) => Buffer.byteLength(bodyFor(model)) + M;

interface Hit {
  readonly instance: number;
  readonly key: string;
  readonly status: number;
  readonly code: string | null;
  readonly type: string | null;
  readonly headers: Headers;
  readonly completionTokens: number | null;
}

interface Planned {
  readonly instance: number;
  readonly key: string;
  readonly model?: string;
}

interface Clock {
  /** Epoch seconds of the database's current minute. */
  readonly minute: number;
  /** Seconds into that minute. */
  readonly second: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('rate limits shared by three gateway instances on one database', () => {
  let gw: TestGateway;
  let books: Books;
  let org: FundedOrg;
  const processes: GatewayProcess[] = [];
  let urls: string[] = [];
  /** The sum of what every served paid request was charged. */
  let charged = 0;

  beforeAll(async () => {
    gw = await startTestGateway({ models: MODELS });
    books = new Books(gw.database);
    processes.push(...(await Promise.all([spawnGateway(gw.database, { models: MODELS }), spawnGateway(gw.database, { models: MODELS })])));
    urls = [gw.url, ...processes.map((p) => p.url)];
    org = await fundedOrg(gw.gateway, TOPUP, 'shared limits org');
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(processes.map((p) => p.stop()));
    await books?.close();
    await gw?.close();
  });

  /** The admin API over HTTP on one instance, as the org's admin key. */
  const admin = (instance = 0) => adminClient(urls[instance]!, org.auth).org(org.orgId);

  /** A member key that every instance has verified once. */
  async function warmKey(fields: Record<string, unknown>): Promise<CreatedKey> {
    const { id, key } = await createKey(admin(), { role: 'member', ...fields });
    // Every instance verifies the key once (GET /v1/models counts against nothing), so the
    // burst below races admissions, not key lookups.
    for (const url of urls) expect((await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    return { id, key };
  }

  const spend = (instance = 0) => spendWindows(admin(instance));

  async function chat({ instance, key, model = 'paid' }: Planned): Promise<Hit> {
    const res = await fetch(`${urls[instance]}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: bodyFor(model),
    });
    const json = (await res.json()) as { error?: { code?: string; type?: string }; usage?: { completion_tokens?: number } };
    const completionTokens = json.usage?.completion_tokens ?? null;
    if (res.status === 200 && model === 'paid' && completionTokens !== null) charged += completionTokens * P;
    return { instance, key, status: res.status, code: json.error?.code ?? null, type: json.error?.type ?? null, headers: res.headers, completionTokens };
  }

  async function dbClock(): Promise<Clock> {
    const { rows } = await books.pool.query<Clock>(
      `SELECT extract(epoch FROM date_trunc('minute', clock_timestamp()))::float8 AS minute,
              extract(second FROM clock_timestamp())::float8 AS second`,
    );
    return rows[0]!;
  }

  /**
   * Runs `fn` once the database clock is 2-45 s into a minute, so a burst of a few seconds stays
   * within one minute window; reports whether it did.
   */
  async function inOneMinute<T>(fn: () => Promise<T>): Promise<{ result: T; sameMinute: boolean; before: Clock; after: Clock }> {
    for (;;) {
      const clock = await dbClock();
      if (clock.second >= 2 && clock.second <= 45) break;
      await sleep((clock.second < 2 ? 2 - clock.second : 62 - clock.second) * 1000 + 50);
    }
    const before = await dbClock();
    const result = await fn();
    const after = await dbClock();
    return { result, sameMinute: before.minute === after.minute, before, after };
  }

  /** Fires every planned request at once. */
  const burst = (plan: Planned[]) => Promise.all(plan.map((p) => chat(p)));

  const roundRobin = (n: number, keys: string[], model = 'paid'): Planned[] =>
    Array.from({ length: n }, (_, i) => ({ instance: i % urls.length, key: keys[i % keys.length]!, model }));

  function tally(hits: readonly Hit[]): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const h of hits) counts[`${h.instance}: ${h.status} ${h.code}`] = (counts[`${h.instance}: ${h.status} ${h.code}`] ?? 0) + 1;
    return counts;
  }

  /** Exactly `limit` served when the burst stayed in one minute; otherwise at most `limit` per window touched. */
  function expectServed(hits: readonly Hit[], limit: number, sameMinute: boolean): void {
    const served = hits.filter((h) => h.status === 200).length;
    if (sameMinute) expect(served, JSON.stringify(tally(hits))).toBe(limit);
    else {
      expect(served, JSON.stringify(tally(hits))).toBeGreaterThanOrEqual(limit);
      expect(served, JSON.stringify(tally(hits))).toBeLessThanOrEqual(2 * limit);
    }
    for (const h of hits.filter((x) => x.status !== 200)) expectRateLimited(h);
  }

  function expectRateLimited(h: Hit): void {
    expect(h.status, JSON.stringify({ ...h, headers: undefined })).toBe(429);
    expect(h.code).toBe('rate_limit_exceeded');
    expect(h.type).toBe('rate_limit_error');
    const retryAfter = Number(h.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
  }

  /** Retry-After is the seconds to the end of the clock minute the refusal happened in. */
  function expectRetryAfterInMinute(h: Hit, before: Clock, after: Clock): void {
    const retryAfter = Number(h.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(Math.floor(60 - after.second) - 1);
    expect(retryAfter).toBeLessThanOrEqual(Math.ceil(60 - before.second) + 1);
  }

  it('a key with rpm_limit 60 gets exactly 60 successes across the instances, then 429 with Retry-After and x-ratelimit headers', async () => {
    const { id, key } = await warmKey({ name: 'rpm 60', rpm_limit: 60 });
    // 50 per instance: no instance's local window (60) refuses; the shared window does.
    const { result: hits, sameMinute, before, after } = await inOneMinute(() => burst(roundRobin(150, [key])));
    expectServed(hits, 60, sameMinute);
    // 60 admissions, at most 50 per instance: at least two instances served (which ones is a race).
    const servingInstances = new Set(hits.filter((h) => h.status === 200).map((h) => h.instance));
    if (sameMinute) expect(servingInstances.size, JSON.stringify(tally(hits))).toBeGreaterThanOrEqual(2);

    const ok = hits.find((h) => h.status === 200)!;
    expect(ok.completionTokens).toBe(M);
    expect(ok.headers.get('x-ratelimit-limit-requests')).toBe('60');
    expect(Number(ok.headers.get('x-ratelimit-remaining-requests'))).toBeLessThanOrEqual(59);
    expect(ok.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+s$/);

    const refusals = hits.filter((h) => h.status === 429);
    expect(refusals.length).toBe(150 - hits.filter((h) => h.status === 200).length);
    for (const h of refusals) {
      expect(h.headers.get('x-ratelimit-limit-requests')).toBe('60');
      expect(h.headers.get('x-ratelimit-remaining-requests')).toBe('0');
      expect(h.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+s$/);
      // Only requests are limited: no token headers.
      expect(h.headers.get('x-ratelimit-limit-tokens')).toBeNull();
      if (sameMinute) expectRetryAfterInMinute(h, before, after);
    }
    // 90 refusals, at most 50 per instance: at least two instances refused, through the shared window
    // (no instance's local window of 60 was full).
    if (sameMinute) expect(new Set(refusals.map((h) => h.instance)).size).toBeGreaterThanOrEqual(2);

    if (sameMinute) {
      const later = await inOneMinute(async () => {
        // Still the same minute: every instance refuses the next one, and the in-process instance
        // keeps refusing once its own local window fills up too (50 + 15 > 60).
        const next = await Promise.all(urls.map((_, instance) => chat({ instance, key })));
        const more: Hit[] = [];
        for (let i = 0; i < 15; i++) more.push(await chat({ instance: 0, key }));
        const minute = (await spend(1)).find((w) => w.scope_id === id && w.period === 'minute');
        return { next, more, minute };
      });
      if (later.before.minute === before.minute && later.sameMinute) {
        for (const h of [...later.result.next, ...later.result.more]) expectRateLimited(h);
        // The shared window counted the 60 admissions (and nothing refused), each with its token bound.
        expect(later.result.minute).toMatchObject({ scope: 'key', requests: 60, tokens: 60 * boundOf('paid'), rpm_limit: 60, tpm_limit: null });
        expect(new Date(later.result.minute!.window_start).getTime() / 1000).toBe(before.minute);
      }
    }
  });

  it("a team's rpm limit is shared by two keys of the team across the instances", async () => {
    const team = await createTeam(admin(), { name: 'rpm team', rpm_limit: 30 });
    const a = await warmKey({ name: 'team a', team_id: team });
    const b = await warmKey({ name: 'team b', team_id: team });
    // 25 per key over every (instance, key) pair: 50 in all, at most 17 per instance (no local
    // team window of 30 fills up), so each key is served at least 5 of the team's 30.
    const plan = Array.from({ length: 50 }, (_, i) => ({ instance: i % 3, key: [a.key, b.key][i % 2]! }));
    expect(plan.filter((p) => p.key === a.key).length).toBe(25);
    const { result: hits, sameMinute } = await inOneMinute(() => burst(plan));
    expectServed(hits, 30, sameMinute);
    // The limit is the team's, shared by both keys, not 30 per key.
    if (sameMinute) {
      expect(hits.filter((h) => h.key === a.key && h.status === 200).length).toBeGreaterThanOrEqual(5);
      expect(hits.filter((h) => h.key === b.key && h.status === 200).length).toBeGreaterThanOrEqual(5);
    }
    for (const h of hits) expect(h.headers.get('x-ratelimit-limit-requests')).toBe('30');
    if (sameMinute) {
      const windows = (await spend(2)).filter((w) => [team, a.id, b.id].includes(w.scope_id));
      // One window, the team's: its keys carry no limits of their own.
      expect(windows).toEqual([expect.objectContaining({ scope: 'team', scope_id: team, period: 'minute', requests: 30, rpm_limit: 30 })]);
    }
  });

  it('a tpm limit holds across the instances', async () => {
    const bound = boundOf('paid');
    const fits = 25;
    const { id, key } = await warmKey({ name: 'tpm', tpm_limit: fits * bound + bound - 1 });
    const { result: hits, sameMinute } = await inOneMinute(() => burst(roundRobin(90, [key])));
    expectServed(hits, fits, sameMinute);
    for (const h of hits) {
      expect(h.headers.get('x-ratelimit-limit-tokens')).toBe(String(fits * bound + bound - 1));
      expect(h.headers.get('x-ratelimit-limit-requests')).toBeNull();
    }
    for (const h of hits.filter((x) => x.status === 429)) {
      expect(Number(h.headers.get('x-ratelimit-remaining-tokens'))).toBeLessThan(bound);
      expect(h.headers.get('x-ratelimit-reset-tokens')).toMatch(/^\d+s$/);
    }
    if (sameMinute) {
      const minute = (await spend(1)).find((w) => w.scope_id === id && w.period === 'minute');
      expect(minute).toMatchObject({ requests: fits, tokens: fits * bound, tpm_limit: fits * bound + bound - 1 });
    }
  });

  it('a free model (nothing held) of a limited key still counts across the instances, with the paid requests', async () => {
    const { id, key } = await warmKey({ name: 'rpm 20 free', rpm_limit: 20 });
    const before = await books.settled(org.orgId);
    const { result, sameMinute } = await inOneMinute(async () => {
      // 4 paid requests, one instance after another, then 60 free ones at once over all three.
      const paid: Hit[] = [];
      for (let i = 0; i < 4; i++) paid.push(await chat({ instance: i % 3, key, model: 'paid' }));
      const free = await burst(roundRobin(60, [key], 'free'));
      return { paid, free };
    });
    expect(result.paid.every((h) => h.status === 200)).toBe(true);
    expectServed(result.free, 16, sameMinute);
    expect(result.free.filter((h) => h.status === 200).every((h) => h.completionTokens === M)).toBe(true);
    // Free requests hold and charge nothing: only the 4 paid ones touched the balance.
    const after = await books.settled(org.orgId);
    expect(before.available - after.available).toBe(4 * HOLD);
    const { rows } = await books.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM nemo.reservations WHERE org_id = $1 AND key_id = $2', [org.orgId, id]);
    expect(rows[0]!.n).toBe(4);
    if (sameMinute) expect((await spend()).find((w) => w.scope_id === id && w.period === 'minute')).toMatchObject({ requests: 20, rpm_limit: 20 });
  });

  it('a PATCH of a key rpm applies on every instance: the windows keep their count', async () => {
    const { id, key } = await warmKey({ name: 'rpm 3 then 9', rpm_limit: 3 });
    const first = await inOneMinute(async () => {
      // 3 per instance: the shared window admits 3 in all, each local window is full (3 of 3).
      const hits = await burst(roundRobin(9, [key]));
      const patched = await admin(2).call('PATCH', `/keys/${id}`, { rpm_limit: 9 });
      expect(patched.status).toBe(200);
      expect(patched.body.rpm_limit).toBe(9);
      // Change notifications reach every instance's key cache within moments.
      await sleep(500);
      // 2 per instance: each must serve both, though its local window holds 3 of the old 3.
      const more = await burst(roundRobin(6, [key]));
      const over = await burst(roundRobin(3, [key]));
      return { hits, more, over };
    });
    if (!first.sameMinute) return; // the counts span two windows: covered by the tests above
    expectServed(first.result.hits, 3, true);
    // 6 more in the same minute (9 - 3), 2 on each instance.
    expect(first.result.more.map((h) => h.status), JSON.stringify(tally(first.result.more))).toEqual(Array(6).fill(200));
    for (const h of first.result.more) expect(h.headers.get('x-ratelimit-limit-requests')).toBe('9');
    for (const h of first.result.over) {
      expectRateLimited(h);
      expect(h.headers.get('x-ratelimit-limit-requests')).toBe('9');
    }
    expect((await spend()).find((w) => w.scope_id === id && w.period === 'minute')).toMatchObject({ requests: 9, rpm_limit: 9 });
  });

  it('a daily spend cap holds across the instances too: exactly K of 150 concurrent', async () => {
    const k = 40;
    const { id, key } = await warmKey({ name: 'daily cap 40', daily_spend_cap_micros: k * HOLD });
    const hits = await burst(roundRobin(150, [key]));
    const served = hits.filter((h) => h.status === 200);
    expect(served.length, JSON.stringify(tally(hits))).toBe(k);
    for (const h of hits.filter((x) => x.status !== 200)) {
      expect(h.status).toBe(402);
      expect(h.code).toBe('spend_cap_reached');
      expect(h.type).toBe('insufficient_quota');
      expect(Number(h.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    await books.settled(org.orgId);
    expect((await spend()).find((w) => w.scope_id === id && w.period === 'day')?.spent_micros).toBe(k * HOLD);
  });

  it('after everything: the books and the spend windows check out on the shared database', async () => {
    const account = await books.settled(org.orgId);
    expect(account).toEqual({ available: TOPUP - charged, held: 0 });
    expect(await books.check()).toEqual([]);
    expect((await books.pool.query('SELECT * FROM nemo.limit_windows_check()')).rows).toEqual([]);
    // No minute window ever counted more than its limit.
    const { rows } = await books.pool.query<{ scope_id: string; requests: number; tokens: number; rpm: number | null; tpm: number | null }>(
      `SELECT w.scope_id, w.requests::float8 AS requests, w.tokens::float8 AS tokens,
              COALESCE(k.rpm_limit, t.rpm_limit) AS rpm, COALESCE(k.tpm_limit, t.tpm_limit) AS tpm
       FROM nemo.limit_windows w LEFT JOIN nemo.api_keys k ON k.key_id = w.scope_id LEFT JOIN nemo.teams t ON t.team_id = w.scope_id
       WHERE w.org_id = $1 AND w.period = 'minute'`,
      [org.orgId],
    );
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      if (row.rpm !== null) expect(row.requests).toBeLessThanOrEqual(row.rpm);
      if (row.tpm !== null) expect(row.tokens).toBeLessThanOrEqual(row.tpm);
    }
    // The spawned instances ran without ledger trouble.
    for (const p of processes) expect(p.output()).not.toMatch(/"level":"error"/);
  });
});
