// Spend caps per API key and per team per UTC day and month, through the real HTTP API with the
// official openai SDK, against a real gateway and Postgres. Every request's charge is predictable:
// the prompt is free, the output costs P micro-units per token, the client sends max_tokens M, and
// the mock produces exactly M tokens with usage (charge == hold) or fewer (charge < hold). So a cap
// of K holds serves exactly K requests, however many arrive at once, and the books balance.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { Books, fundedOrg, LEDGER_MODE, type FundedOrg } from './ledger/money-helpers.js';
import { adminClient, createKey, createTeam, spendWindows, type AdminClient, type CreatedKey } from '../support/admin-client.js';

const P = 7; // output price per MTok = micro-units per output token; input is free
const M = 10; // max_tokens of every request that sends one
const HOLD = M * P; // what a request with max_tokens M holds
const SHORT_TOKENS = 4; // what the 'short' model produces: charge < hold
const SHORT_CHARGE = SHORT_TOKENS * P;
const TOPUP = 50_000_000;

const MODELS = [
  // Would write 64 tokens; max_tokens M cuts it to exactly M, with usage: charge == hold.
  { name: 'exact', deployments: [{ provider: 'mock', model: 'exact', inputPricePerMTok: 0, outputPricePerMTok: P, mock: { completionTokens: 64 } }] },
  // Writes SHORT_TOKENS tokens whatever max_tokens allows: charge (28) < hold (70).
  { name: 'short', deployments: [{ provider: 'mock', model: 'short', inputPricePerMTok: 0, outputPricePerMTok: P, mock: { completionTokens: SHORT_TOKENS } }] },
];

interface Outcome {
  readonly status: number;
  readonly code: string | null;
  readonly type: string | null;
  readonly nemoCode: string | null;
  readonly message: string | null;
  readonly retryAfter: string | null;
  readonly headers: Headers | undefined;
  readonly completionTokens: number | null;
}

interface KeyWithClient extends CreatedKey {
  readonly client: OpenAI;
}

/** Seconds from `nowMs` to the next UTC midnight, rounded up as the gateway does. */
function secondsToUtcMidnight(nowMs: number): number {
  const d = new Date(nowMs);
  return Math.ceil((Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1) - nowMs) / 1000);
}

function utcDayStart(nowMs: number): string {
  const d = new Date(nowMs);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate())).toISOString();
}

function utcMonthStart(nowMs: number): string {
  const d = new Date(nowMs);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1)).toISOString();
}

function tally(outcomes: readonly Outcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) counts[`${o.status} ${o.code}`] = (counts[`${o.status} ${o.code}`] ?? 0) + 1;
  return counts;
}

describe('spend caps per key and per team', () => {
  let gw: TestGateway;
  let books: Books;
  let org: FundedOrg;
  /** The admin API over HTTP, as the org's admin key. */
  let admin: AdminClient;
  /** The sum of what every served request was charged, from the responses' usage, and how many were served. */
  let charged = 0;
  let served = 0;
  /** The lowest balance the watcher saw during the concurrent bursts. */
  let lowestBalance = Infinity;

  beforeAll(async () => {
    gw = await startTestGateway({ models: MODELS });
    books = new Books(gw.database);
    org = await fundedOrg(gw.gateway, TOPUP, 'spend caps org');
    admin = adminClient(gw.url, org.auth).org(org.orgId);
  });

  afterAll(async () => {
    await books?.close();
    await gw?.close();
  });

  /** A member key of the org, with an SDK client for it. */
  async function keyWithClient(fields: Record<string, unknown>): Promise<KeyWithClient> {
    const { id, key } = await createKey(admin, { role: 'member', ...fields });
    return { id, key, client: new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 }) };
  }

  const spend = () => spendWindows(admin);

  /** One chat completion through the SDK; an APIError becomes an outcome too. */
  /** `maxTokens` null: the request sends none. */
  async function chat(client: OpenAI, model = 'exact', maxTokens: number | null = M): Promise<Outcome> {
    try {
      const { data, response } = await client.chat.completions
        .create({ model, messages: [{ role: 'user', content: 'spend me' }], ...(maxTokens === null ? {} : { max_tokens: maxTokens }) })
        .withResponse();
      const completionTokens = data.usage?.completion_tokens ?? null;
      if (completionTokens !== null) charged += completionTokens * P;
      served++;
      return { status: response.status, code: null, type: null, nemoCode: null, message: null, retryAfter: null, headers: response.headers, completionTokens };
    } catch (err) {
      if (!(err instanceof OpenAI.APIError) || err.status === undefined) throw err;
      const error = err.error as { code?: string; type?: string; nemo_code?: string; message?: string } | undefined;
      return {
        status: err.status,
        code: error?.code ?? null,
        type: error?.type ?? null,
        nemoCode: error?.nemo_code ?? null,
        message: error?.message ?? null,
        retryAfter: err.headers?.get('retry-after') ?? null,
        headers: err.headers,
        completionTokens: null,
      };
    }
  }

  async function sequential(client: OpenAI, n: number, model = 'exact', maxTokens: number | null = M): Promise<Outcome[]> {
    const outcomes: Outcome[] = [];
    for (let i = 0; i < n; i++) outcomes.push(await chat(client, model, maxTokens));
    return outcomes;
  }

  /** Runs `fn` while watching the org's balance (as the owner) every few ms. */
  async function watchingBalance<T>(fn: () => Promise<T>): Promise<T> {
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        lowestBalance = Math.min(lowestBalance, (await books.account(org.orgId)).available);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    try {
      return await fn();
    } finally {
      watching = false;
      await watcher;
    }
  }

  function expectCapRefusal(o: Outcome, level: 'key' | 'team', period: 'daily' | 'monthly'): void {
    expect(o.status, JSON.stringify(o)).toBe(402);
    expect(o.code).toBe('spend_cap_reached');
    expect(o.type).toBe('insufficient_quota');
    expect(o.nemoCode).toBe('NR_SPEND_CAP_REACHED');
    expect(o.message).toContain(`${period} spend cap of this ${level}`);
    expect(o.retryAfter).toMatch(/^\d+$/);
  }

  /** Spend windows and holds settle after the responses: wait until nothing is held. */
  const settled = () => books.settled(org.orgId);

  it('a daily cap covering exactly K requests serves K, then 402 spend_cap_reached with Retry-After to the next UTC midnight', async () => {
    const k = 5;
    const { id, client } = await keyWithClient({ name: 'daily 5', daily_spend_cap_micros: k * HOLD });
    const before = await books.account(org.orgId);

    const served = await sequential(client, k);
    expect(served.map((o) => o.status)).toEqual(Array(k).fill(200));
    expect(served.every((o) => o.completionTokens === M)).toBe(true);
    // Spend caps are not rate limits: no x-ratelimit headers.
    expect(served[0]!.headers?.get('x-ratelimit-limit-requests')).toBeNull();

    const startedAt = Date.now();
    const refused = await chat(client);
    const endedAt = Date.now();
    expectCapRefusal(refused, 'key', 'daily');
    const retryAfter = Number(refused.retryAfter);
    expect(retryAfter).toBeGreaterThanOrEqual(secondsToUtcMidnight(endedAt) - 2);
    expect(retryAfter).toBeLessThanOrEqual(secondsToUtcMidnight(startedAt) + 2);
    expect(retryAfter).toBeLessThanOrEqual(86_400);
    // The message names the reset time: the answer was computed before endedAt, so endedAt + Retry-After is past it.
    expect(refused.message).toContain(new Date(endedAt + retryAfter * 1000).toISOString().slice(0, 10));

    // Refused again, and a refusal costs nothing.
    expectCapRefusal(await chat(client), 'key', 'daily');
    const after = await settled();
    expect(before.available - after.available).toBe(k * HOLD);

    const day = (await spend()).find((w) => w.scope_id === id && w.period === 'day');
    expect(day).toMatchObject({ scope: 'key', window_start: utcDayStart(Date.now()), spent_micros: k * HOLD, cap_micros: k * HOLD });
    // Only the capped period has a window: no month, and no minute without rpm/tpm.
    expect((await spend()).filter((w) => w.scope_id === id).map((w) => w.period)).toEqual(['day']);
  });

  it('a cap that cannot cover a whole hold refuses the remainder: K served of a cap of K holds plus a bit', async () => {
    const k = 3;
    const { client } = await keyWithClient({ name: 'daily 3 and a bit', daily_spend_cap_micros: k * HOLD + HOLD - 1 });
    const outcomes = await sequential(client, k + 2);
    expect(outcomes.map((o) => o.status)).toEqual([...Array(k).fill(200), 402, 402]);
    expectCapRefusal(outcomes[k]!, 'key', 'daily');
  });

  it('200 concurrent requests against a cap covering K serve exactly K, never more', async () => {
    const k = 37;
    const requests = 200;
    const { id, client } = await keyWithClient({ name: 'daily 37 concurrent', daily_spend_cap_micros: k * HOLD + HOLD - 1 });
    const outcomes = await watchingBalance(() => Promise.all(Array.from({ length: requests }, () => chat(client))));
    const served = outcomes.filter((o) => o.status === 200);
    expect(served.length, JSON.stringify(tally(outcomes))).toBe(k);
    expect(served.every((o) => o.completionTokens === M)).toBe(true);
    const refused = outcomes.filter((o) => o.status !== 200);
    expect(refused.length).toBe(requests - k);
    for (const o of refused) expectCapRefusal(o, 'key', 'daily');

    await settled();
    expect((await spend()).find((w) => w.scope_id === id && w.period === 'day')?.spent_micros).toBe(k * HOLD);
    expect(lowestBalance).toBeGreaterThanOrEqual(0);
  });

  it("a team's monthly cap is shared by its keys: the sum across both keys is capped", async () => {
    const k = 20;
    const team = await createTeam(admin, { name: 'capped team', monthly_spend_cap_micros: k * HOLD });
    const a = await keyWithClient({ name: 'team key a', team_id: team });
    const b = await keyWithClient({ name: 'team key b', team_id: team });
    // A few from each key first (so both are known to count), then both at once.
    const first = [...(await sequential(a.client, 3)), ...(await sequential(b.client, 3))];
    expect(first.every((o) => o.status === 200)).toBe(true);
    const burst = await watchingBalance(() => Promise.all(Array.from({ length: 100 }, (_, i) => chat(i % 2 === 0 ? a.client : b.client))));
    const servedInBurst = burst.filter((o) => o.status === 200).length;
    expect(servedInBurst, JSON.stringify(tally(burst))).toBe(k - 6);
    for (const o of burst.filter((x) => x.status !== 200)) expectCapRefusal(o, 'team', 'monthly');
    // Each key is refused now, whichever spent the team's cap.
    expectCapRefusal(await chat(a.client), 'team', 'monthly');
    expectCapRefusal(await chat(b.client), 'team', 'monthly');

    await settled();
    const windows = (await spend()).filter((w) => [team, a.id, b.id].includes(w.scope_id));
    // Only the team carries a cap: one month window, for the team, with the team's spend.
    expect(windows).toHaveLength(1);
    expect(windows[0]).toMatchObject({ scope: 'team', scope_id: team, period: 'month', window_start: utcMonthStart(Date.now()), spent_micros: k * HOLD, cap_micros: k * HOLD });
    // The settles of the two keys add up to the cap.
    const { rows } = await books.pool.query<{ total: number }>(
      `SELECT coalesce(sum(charged), 0)::float8 AS total FROM nemo.reservations WHERE org_id = $1 AND key_id = ANY($2::uuid[])`,
      [org.orgId, [a.id, b.id]],
    );
    expect(rows[0]!.total).toBe(k * HOLD);
  });

  it('a key cap tighter than its team cap refuses as the key; the team keeps counting its other keys', async () => {
    const team = await createTeam(admin, { name: 'roomy team', daily_spend_cap_micros: 10 * HOLD });
    const tight = await keyWithClient({ name: 'tight key', team_id: team, daily_spend_cap_micros: 2 * HOLD });
    const other = await keyWithClient({ name: 'other key', team_id: team });
    const outcomes = await sequential(tight.client, 3);
    expect(outcomes.map((o) => o.status)).toEqual([200, 200, 402]);
    expectCapRefusal(outcomes[2]!, 'key', 'daily');
    // 2 holds of the team's 10 are used: the other key gets exactly 8.
    const rest = await sequential(other.client, 9);
    expect(rest.map((o) => o.status)).toEqual([...Array(8).fill(200), 402]);
    expectCapRefusal(rest[8]!, 'team', 'daily');
    await settled();
    const windows = await spend();
    expect(windows.find((w) => w.scope_id === team && w.period === 'day')?.spent_micros).toBe(10 * HOLD);
    expect(windows.find((w) => w.scope_id === tight.id && w.period === 'day')?.spent_micros).toBe(2 * HOLD);
  });

  it('a request that settles lower than its hold gives the difference back: more requests fit', async () => {
    const cap = 1_000;
    // Each request needs a whole hold (70) of room, and keeps only its charge (28) once settled.
    let expected = 0;
    for (let spent = 0; cap - spent >= HOLD; spent += SHORT_CHARGE) expected++;
    expect(expected).toBe(34); // not floor(1000 / 70) = 14
    const { id, client } = await keyWithClient({ name: 'daily 1000 short', daily_spend_cap_micros: cap });
    const outcomes = await sequential(client, expected + 2, 'short');
    expect(outcomes.filter((o) => o.status === 200).length, JSON.stringify(tally(outcomes))).toBe(expected);
    expect(outcomes.slice(0, expected).every((o) => o.status === 200 && o.completionTokens === SHORT_TOKENS)).toBe(true);
    for (const o of outcomes.slice(expected)) expectCapRefusal(o, 'key', 'daily');
    await settled();
    expect((await spend()).find((w) => w.scope_id === id && w.period === 'day')?.spent_micros).toBe(expected * SHORT_CHARGE);
    const settles = (await books.entries(org.orgId, 'settle')).filter((e) => e.charged === SHORT_CHARGE);
    expect(settles.length).toBe(expected);
    expect(settles.every((e) => e.available_delta === HOLD - SHORT_CHARGE && e.held_delta === -HOLD)).toBe(true);
  });

  it('without max_tokens the output bound is what the cap affords; below the minimum hold it is 402', async () => {
    // 20 tokens of room: the hold is 140 (not the model's 4096 tokens), the mock is cut at 20.
    const roomy = await keyWithClient({ name: 'daily 140 no max_tokens', daily_spend_cap_micros: 20 * P });
    const first = await chat(roomy.client, 'exact', null);
    expect(first.status, JSON.stringify(first)).toBe(200);
    expect(first.completionTokens).toBe(20);
    expectCapRefusal(await chat(roomy.client, 'exact', null), 'key', 'daily');
    // ledger.minOutputTokens (16) cost 112: a cap of 111 never affords it.
    const tiny = await keyWithClient({ name: 'daily 111', daily_spend_cap_micros: 16 * P - 1 });
    expectCapRefusal(await chat(tiny.client, 'exact', null), 'key', 'daily');
    await settled();
    expect((await spend()).find((w) => w.scope_id === roomy.id && w.period === 'day')?.spent_micros).toBe(20 * P);
  });

  it('PATCH raising a cap lets more through at once; PATCH to null removes it', async () => {
    const { id, client } = await keyWithClient({ name: 'patched', daily_spend_cap_micros: 3 * HOLD });
    expect((await sequential(client, 4)).map((o) => o.status)).toEqual([200, 200, 200, 402]);

    const raised = await admin.call('PATCH', `/keys/${id}`, { daily_spend_cap_micros: 5 * HOLD });
    expect(raised.status, JSON.stringify(raised.body)).toBe(200);
    expect(raised.body).toMatchObject({ id, daily_spend_cap_micros: 5 * HOLD, monthly_spend_cap_micros: null });
    // Changing an existing cap keeps the count: 2 more, not 5.
    const afterRaise = await sequential(client, 3);
    expect(afterRaise.map((o) => o.status)).toEqual([200, 200, 402]);
    expectCapRefusal(afterRaise[2]!, 'key', 'daily');

    // Lowering below what was spent refuses at once.
    expect((await admin.call('PATCH', `/keys/${id}`, { daily_spend_cap_micros: HOLD })).status).toBe(200);
    expectCapRefusal(await chat(client), 'key', 'daily');

    const cleared = await admin.call('PATCH', `/keys/${id}`, { daily_spend_cap_micros: null });
    expect(cleared.status).toBe(200);
    expect(cleared.body.daily_spend_cap_micros).toBeNull();
    const uncapped = await sequential(client, 6);
    expect(uncapped.every((o) => o.status === 200)).toBe(true);

    await settled();
    // Requests made without a cap are not counted: the day window still shows the 5 capped ones.
    const day = (await spend()).find((w) => w.scope_id === id && w.period === 'day');
    expect(day).toMatchObject({ spent_micros: 5 * HOLD, cap_micros: null });
    // A PATCH of the name alone leaves the limits alone.
    const renamed = await admin.call('PATCH', `/keys/${id}`, { name: 'patched, renamed' });
    expect(renamed.body).toMatchObject({ name: 'patched, renamed', daily_spend_cap_micros: null, rpm_limit: null });
  });

  it('PATCH on a team raises and removes its cap for every key of the team', async () => {
    const team = await createTeam(admin, { name: 'patched team', daily_spend_cap_micros: 2 * HOLD });
    const a = await keyWithClient({ name: 'patched team a', team_id: team });
    const b = await keyWithClient({ name: 'patched team b', team_id: team });
    expect([(await chat(a.client)).status, (await chat(b.client)).status]).toEqual([200, 200]);
    expectCapRefusal(await chat(a.client), 'team', 'daily');
    const raised = await admin.call('PATCH', `/teams/${team}`, { daily_spend_cap_micros: 3 * HOLD });
    expect(raised.status).toBe(200);
    expect(raised.body).toMatchObject({ id: team, daily_spend_cap_micros: 3 * HOLD });
    expect((await chat(b.client)).status).toBe(200);
    expectCapRefusal(await chat(a.client), 'team', 'daily');
    expect((await admin.call('PATCH', `/teams/${team}`, { daily_spend_cap_micros: null })).status).toBe(200);
    expect([(await chat(a.client)).status, (await chat(b.client)).status]).toEqual([200, 200]);
  });

  it('bad PATCH input is a 400 with OpenAI error JSON, and changes nothing', async () => {
    const team = await createTeam(admin, { name: 'bad input team', daily_spend_cap_micros: 500 });
    const { id } = await keyWithClient({ name: 'bad input key', team_id: team, daily_spend_cap_micros: 700, monthly_spend_cap_micros: 9_000 });
    const bad: Array<[Record<string, unknown>, string | null]> = [
      [{ daily_spend_cap_micros: -1 }, 'daily_spend_cap_micros'],
      [{ monthly_spend_cap_micros: -5_000 }, 'monthly_spend_cap_micros'],
      [{ daily_spend_cap_micros: 0 }, 'daily_spend_cap_micros'],
      [{ daily_spend_cap_micros: 1.5 }, 'daily_spend_cap_micros'],
      [{ daily_spend_cap_micros: '1000' }, 'daily_spend_cap_micros'],
      [{ daily_spend_cap_micros: 2 ** 53 }, 'daily_spend_cap_micros'],
      [{ daily_cap: 1_000 }, null],
      // An unknown field next to a valid one: nothing applies, not even the valid one.
      [{ daily_spend_cap_micros: 1_000, spend_cap: 5 }, null],
      [{ rpm_limit: -1 }, 'rpm_limit'],
    ];
    for (const path of [`/keys/${id}`, `/teams/${team}`]) {
      for (const [body, param] of bad) {
        const res = await admin.call('PATCH', path, body);
        expect(res.status, `${path} ${JSON.stringify(body)}`).toBe(400);
        expect(res.body.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_request', nemo_code: 'NR_INVALID_REQUEST' });
        expect(typeof res.body.error.message).toBe('string');
        if (param !== null) expect(res.body.error.param).toBe(param);
      }
    }
    // A body that is not JSON at all.
    const garbage = await fetch(`${gw.url}/admin/v1/orgs/${org.orgId}/keys/${id}`, { method: 'PATCH', headers: { 'content-type': 'application/json', ...org.auth }, body: '{"daily_spend_cap_micros":' });
    expect(garbage.status).toBe(400);
    expect(((await garbage.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    // An unknown key or team is 404.
    const missing = await admin.call('PATCH', '/keys/00000000-0000-4000-8000-000000000000', { daily_spend_cap_micros: 5 });
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('not_found');

    const keys = (await admin.call('GET', '/keys')).body.data as Array<Record<string, unknown>>;
    expect(keys.find((k) => k.id === id)).toMatchObject({ daily_spend_cap_micros: 700, monthly_spend_cap_micros: 9_000, rpm_limit: null, name: 'bad input key' });
    const teams = (await admin.call('GET', '/teams')).body.data as Array<Record<string, unknown>>;
    expect(teams.find((t) => t.id === team)).toMatchObject({ daily_spend_cap_micros: 500, monthly_spend_cap_micros: null, rpm_limit: null, name: 'bad input team' });
  });

  it('GET /spend shows the current day and month windows with their spend and caps', async () => {
    const { id, client } = await keyWithClient({ name: 'both periods', daily_spend_cap_micros: 10 * HOLD, monthly_spend_cap_micros: 100 * HOLD });
    await sequential(client, 2);
    await sequential(client, 2, 'short');
    await settled();
    const windows = (await spend()).filter((w) => w.scope_id === id);
    const now = Date.now();
    expect(windows).toEqual([
      expect.objectContaining({ scope: 'key', period: 'day', window_start: utcDayStart(now), requests: 0, tokens: 0, spent_micros: 2 * HOLD + 2 * SHORT_CHARGE, cap_micros: 10 * HOLD }),
      expect.objectContaining({ scope: 'key', period: 'month', window_start: utcMonthStart(now), requests: 0, tokens: 0, spent_micros: 2 * HOLD + 2 * SHORT_CHARGE, cap_micros: 100 * HOLD }),
    ]);
    // Another org's key sees 404 for this org's spend; a member key of this org gets 403.
    const member = await keyWithClient({ name: 'member' });
    expect((await adminClient(gw.url, member.key).org(org.orgId).call('GET', '/spend')).status).toBe(403);
    expect((await adminClient(gw.url, gw.auth).org(org.orgId).call('GET', '/spend')).status).toBe(404);
  });

  it('after everything: the books and the spend windows check out, and the balance is the top-up minus the charges', async () => {
    const account = await settled();
    expect(account.held).toBe(0);
    expect(account.available).toBe(TOPUP - charged);
    const settles = await books.entries(org.orgId, 'settle');
    expect(settles.reduce((sum, e) => sum + e.charged, 0)).toBe(charged);
    expect(await books.check()).toEqual([]);
    expect((await books.pool.query('SELECT * FROM nemo.limit_windows_check()')).rows).toEqual([]);
    expect(lowestBalance).toBeGreaterThanOrEqual(0);
    expect(account.available).toBeGreaterThanOrEqual(0);
    // One charge per served request; nothing was left open or released: every served request's hold
    // settled, every refusal held nothing. (In lease mode the uncapped requests carved from leases,
    // which gave back what they did not charge.)
    expect(settles.length).toBe(served);
    expect(await books.openReservations(org.orgId)).toEqual([]);
    const holds = await books.reservationStatesOf(org.orgId, 'request');
    expect(holds).toEqual({ settled: LEDGER_MODE === 'hold' ? served : holds.settled });
    if (LEDGER_MODE === 'hold') expect(await books.reservationStatesOf(org.orgId, 'lease')).toEqual({});
    // The spend windows equal the reservations counted in them, window by window, computed here too.
    const { rows } = await books.pool.query<{ scope_id: string; period: string; spent: number; counted: number }>(
      `SELECT w.scope_id, w.period, w.spent_micros::float8 AS spent,
              (SELECT coalesce(sum(r.charged), 0) FROM nemo.reservations r
                WHERE r.org_id = w.org_id AND r.state = 'settled'
                  AND ((w.period = 'day' AND r.key_id = w.scope_id AND r.counted_windows & 1 <> 0)
                    OR (w.period = 'month' AND r.key_id = w.scope_id AND r.counted_windows & 2 <> 0)
                    OR (w.period = 'day' AND r.team_id = w.scope_id AND r.counted_windows & 4 <> 0)
                    OR (w.period = 'month' AND r.team_id = w.scope_id AND r.counted_windows & 8 <> 0)))::float8 AS counted
       FROM nemo.limit_windows w WHERE w.org_id = $1`,
      [org.orgId],
    );
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) expect(row.spent, JSON.stringify(row)).toBe(row.counted);
  });
});
