// A gateway process killed (SIGKILL) with streams open leaves its money held; another process on
// the same database gives it back once it expires (an `expiry` row each), and the books balance
// with no credit lost or created. In hold mode what is left is one hold per stream; in lease mode
// it is the instance's credit leases, returned (amount less what was charged) after lease.ttlMs,
// while the charges it wrote before the kill stay. Each mode is pinned, so both run in every pass.
import { request as httpRequest, type ClientRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, fundedOrgOverHttp } from '../../support/admin-client.js';
import { createTestDatabase, databaseEnv, type TestDatabase } from '../../support/test-database.js';
import { waitFor } from '../helpers/gateway.js';
import { Books, ledgerCheckCli, pinnedMode, spawnGateway, type GatewayProcess } from './money-helpers.js';

const MASTER_KEY = 'crash-test-master-key-0123456789';
const TTL_MS = 1500;
const STREAMS = 20;
const TOPUP = 50_000_000;
const MODELS = [
  // 60 tokens at 10 per second: each stream runs about six seconds.
  { name: 'slow', deployments: [{ provider: 'mock', model: 'slow', inputPricePerMTok: 2, outputPricePerMTok: 9, mock: { tokensPerSecond: 10, completionTokens: 60 } }] },
  // Answered at once: 5 tokens, with usage.
  { name: 'quick', deployments: [{ provider: 'mock', model: 'quick', inputPricePerMTok: 2, outputPricePerMTok: 9, mock: { completionTokens: 5 } }] },
];
const HOLD = pinnedMode('hold', { reservationTtlMs: TTL_MS, sweepIntervalMs: 500 });
// A lease lives past the test (so the one the kill leaves has charges on it); unrenewed, it expires after TTL_MS.
const LEASE = pinnedMode('lease', { reservationTtlMs: TTL_MS, sweepIntervalMs: 500, lease: { ttlMs: TTL_MS, lifetimeMs: 20_000 } });
/** The mock's usage of a 'quick' answer: 3 prompt tokens ("a slow one") at 2, 5 completion tokens at 9. */
const QUICK_COST = 3 * 2 + 5 * 9;
/** And of a whole 'slow' stream: 60 completion tokens. */
const SLOW_COST = 3 * 2 + 60 * 9;

interface OpenStream {
  readonly req: ClientRequest;
  /** The first content chunk arrived: the hold exists and the stream is open. */
  readonly started: Promise<void>;
  /** The connection is gone (ended, reset or destroyed). */
  readonly closed: Promise<void>;
}

function openStream(url: string, authorization: string): OpenStream {
  const body = JSON.stringify({ model: 'slow', messages: [{ role: 'user', content: 'a slow one' }], stream: true, max_tokens: 100 });
  return send(url, authorization, body);
}

/** A whole non-stream answer of the 'quick' model. */
async function quick(url: string, authorization: string): Promise<number> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization },
    body: JSON.stringify({ model: 'quick', messages: [{ role: 'user', content: 'a slow one' }], max_tokens: 100 }),
  });
  await res.text();
  return res.status;
}

function send(url: string, authorization: string, body: string): OpenStream {
  let onStarted!: () => void;
  let onFailed!: (err: Error) => void;
  const started = new Promise<void>((resolve, reject) => ((onStarted = resolve), (onFailed = reject)));
  let onClosed!: () => void;
  const closed = new Promise<void>((resolve) => (onClosed = resolve));
  const { hostname, port } = new URL(url);
  const req = httpRequest(
    { host: hostname, port, path: '/v1/chat/completions', method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization } },
    (res) => {
      if (res.statusCode !== 200) onFailed(new Error(`stream answered ${res.statusCode}`));
      res.on('data', (chunk: Buffer) => {
        if (/"content":"[^"]/.test(chunk.toString())) onStarted();
      });
      res.on('error', () => undefined);
      res.on('close', onClosed);
    },
  );
  req.on('error', (err) => {
    onFailed(err);
    onClosed();
  });
  req.on('close', onClosed);
  req.end(body);
  return { req, started, closed };
}

describe('holds of a crashed gateway process (hold mode)', () => {
  let database: TestDatabase;
  let books: Books;
  const processes: GatewayProcess[] = [];
  /** Left by the first test: the surviving process and the org it serves. */
  let survivor: GatewayProcess | undefined;
  let survivorOrg: { orgId: string; authorization: string } | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
  });

  afterAll(async () => {
    await Promise.allSettled(processes.map((p) => p.stop()));
    await books?.close();
    await database?.drop();
  });

  it('are released by another process after their TTL, with an expiry row each and nothing lost', async () => {
    const first = await spawnGateway(database, { models: MODELS, ledger: HOLD.ledger }, { ...HOLD.env, NEMO_MASTER_KEY: MASTER_KEY });
    processes.push(first);
    books = new Books(database);
    const { orgId, authorization } = await fundedOrgOverHttp(adminClient(first.url, MASTER_KEY), 'crash org', TOPUP, { role: 'member' });

    const streams = Array.from({ length: STREAMS }, () => openStream(first.url, authorization));
    await Promise.all(streams.map((s) => s.started));
    await first.kill();
    await Promise.all(streams.map((s) => s.closed));

    // Nobody is left to settle: every hold is still there.
    const afterCrash = await books.account(orgId);
    expect(afterCrash.held).toBeGreaterThan(0);
    expect(await books.reservationStates(orgId)).toEqual({ reserved: STREAMS });
    const open = await books.pool.query<{ reservation_id: string; amount: string }>("SELECT reservation_id, amount FROM nemo.reservations WHERE org_id = $1 AND state = 'reserved'", [orgId]);
    expect(afterCrash.held).toBe(open.rows.reduce((sum, r) => sum + Number(r.amount), 0));
    expect(afterCrash.available + afterCrash.held).toBe(TOPUP);
    expect(await books.check()).toEqual([]);

    const second = await spawnGateway(database, { models: MODELS, ledger: HOLD.ledger }, HOLD.env);
    processes.push(second);
    const releasedAt = Date.now();
    await waitFor(async () => (await books.account(orgId)).held === 0, TTL_MS + 3_000, 50);
    expect(Date.now() - releasedAt).toBeLessThan(TTL_MS + 3_000);

    const expiries = await books.entries(orgId, 'expiry');
    expect(expiries).toHaveLength(STREAMS);
    expect(new Set(expiries.map((e) => e.reservation_id))).toEqual(new Set(open.rows.map((r) => r.reservation_id)));
    for (const e of expiries) {
      const held = Number(open.rows.find((r) => r.reservation_id === e.reservation_id)!.amount);
      expect(e).toMatchObject({ available_delta: held, held_delta: -held, charged: 0 });
    }
    expect(await books.reservationStates(orgId)).toEqual({ expired: STREAMS });
    expect(await books.check()).toEqual([]);

    // No top-up lost: what is available plus what was ever charged is what was put in.
    const sums = await books.pool.query<{ topups: string; charged: string }>(
      "SELECT coalesce(sum(available_delta) FILTER (WHERE kind = 'topup'), 0) AS topups, coalesce(sum(charged), 0) AS charged FROM nemo.ledger_entries WHERE org_id = $1",
      [orgId],
    );
    const after = await books.account(orgId);
    expect(after.available + Number(sums.rows[0]!.charged)).toBe(Number(sums.rows[0]!.topups));
    expect(after).toEqual({ available: TOPUP, held: 0 });
    // The operator's view agrees: `nemo ledger check` exits 0.
    await ledgerCheckCli(databaseEnv(database));
    survivor = second;
    survivorOrg = { orgId, authorization };
  }, 30_000);

  // The sweeper cannot tell a crashed instance's hold from a live request that outlived the TTL:
  // such a request's hold is released under it, and its settle then finds nothing open.
  it('a live stream that outlives reservationTtlMs is still charged for what it produced', async () => {
    expect(survivor, 'needs the previous test').toBeDefined();
    const { orgId, authorization } = survivorOrg!;
    const before = await books.account(orgId);
    const stream = openStream(survivor!.url, authorization);
    await stream.started;
    await stream.closed; // about six seconds, four TTLs
    await books.settled(orgId);
    const reservation = await books.pool.query<{ reservation_id: string; state: string; charged: string }>(
      'SELECT reservation_id, state, charged FROM nemo.reservations WHERE org_id = $1 ORDER BY created_at DESC LIMIT 1',
      [orgId],
    );
    expect(await books.check()).toEqual([]);
    expect(reservation.rows[0]).toMatchObject({ state: 'settled', charged: String(SLOW_COST) });
    expect((await books.account(orgId)).available).toBe(before.available - SLOW_COST);
  }, 20_000);
});

describe('credit leases of a crashed gateway process (lease mode)', () => {
  let database: TestDatabase;
  let books: Books;
  const processes: GatewayProcess[] = [];
  let survivor: GatewayProcess | undefined;
  let survivorOrg: { orgId: string; authorization: string } | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
    books = new Books(database);
  });

  afterAll(async () => {
    await Promise.allSettled(processes.map((p) => p.stop()));
    await books?.close();
    await database?.drop();
  });

  it('are returned by another process after lease.ttlMs, amount less charged, and the charges written before the kill stay', async () => {
    const first = await spawnGateway(database, { models: MODELS, ledger: LEASE.ledger }, { ...LEASE.env, NEMO_MASTER_KEY: MASTER_KEY });
    processes.push(first);
    const { orgId, authorization } = await fundedOrgOverHttp(adminClient(first.url, MASTER_KEY), 'lease crash org', TOPUP, { role: 'member' });

    const streams = Array.from({ length: STREAMS }, () => openStream(first.url, authorization));
    await Promise.all(streams.map((s) => s.started));
    // Served beside the streams, from the same lease; their charges committed before the kill.
    const QUICK = 5;
    for (let i = 0; i < QUICK; i++) expect(await quick(first.url, authorization)).toBe(200);
    await waitFor(async () => (await books.charges(orgId)).length === QUICK, 5_000, 20);
    await first.kill();
    await Promise.all(streams.map((s) => s.closed));

    // What the kill left: leases only (this key has no cap or limit), each holding amount - charged.
    const open = await books.openReservations(orgId);
    expect(open.length).toBeGreaterThan(0);
    expect(open.every((r) => r.kind === 'lease')).toBe(true);
    expect(open.some((r) => r.charged > 0), 'the lease the charges went to is among them').toBe(true);
    const afterCrash = await books.account(orgId);
    expect(afterCrash.held).toBe(open.reduce((sum, r) => sum + r.amount - r.charged, 0));
    expect(afterCrash.available + afterCrash.held).toBe(TOPUP - QUICK * QUICK_COST);
    expect(await books.check()).toEqual([]);

    const second = await spawnGateway(database, { models: MODELS, ledger: LEASE.ledger }, LEASE.env);
    processes.push(second);
    await waitFor(async () => (await books.account(orgId)).held === 0, TTL_MS + 3_000, 50);

    // One expiry per lease the kill left, giving back exactly what it held and charging nothing.
    const expiries = await books.entries(orgId, 'expiry');
    expect(new Set(expiries.map((e) => e.reservation_id))).toEqual(new Set(open.map((r) => r.reservation_id)));
    expect(expiries).toHaveLength(open.length);
    for (const e of expiries) {
      const lease = open.find((r) => r.reservation_id === e.reservation_id)!;
      expect(e).toMatchObject({ available_delta: lease.amount - lease.charged, held_delta: -(lease.amount - lease.charged), charged: 0 });
    }
    // The charges stay, exactly; the streams the kill cut are never charged; nothing else moved.
    const charges = await books.expectSettledBooks(orgId, { served: QUICK, charge: QUICK_COST });
    expect(charges.every((c) => c.available_delta === 0 && c.held_delta === -QUICK_COST)).toBe(true);
    expect(await books.account(orgId)).toEqual({ available: TOPUP - QUICK * QUICK_COST, held: 0 });
    expect(await books.reservationStatesOf(orgId, 'lease')).toMatchObject({ expired: open.length });
    await ledgerCheckCli(databaseEnv(database));
    survivor = second;
    survivorOrg = { orgId, authorization };
  }, 30_000);

  // The survivor renews its own lease every ttl/3: a stream longer than lease.ttlMs is charged in full.
  it('a live stream that outlives lease.ttlMs is charged in full: the lease under it never expires', async () => {
    expect(survivor, 'needs the previous test').toBeDefined();
    const { orgId, authorization } = survivorOrg!;
    const before = await books.account(orgId);
    const expiriesBefore = (await books.entries(orgId, 'expiry')).length;
    const stream = openStream(survivor!.url, authorization);
    await stream.started;
    await stream.closed; // about six seconds, four lease TTLs
    await waitFor(async () => (await books.charges(orgId)).length === 6, 5_000, 20);
    expect((await books.charges(orgId)).at(-1)).toMatchObject({ charged: SLOW_COST });
    expect((await books.entries(orgId, 'expiry')).length).toBe(expiriesBefore);
    expect(await books.check()).toEqual([]);
    // The survivor's lease lives on (lifetime 20 s): what is available and held is the rest.
    const after = await books.account(orgId);
    expect(after.available + after.held).toBe(before.available - SLOW_COST);
  }, 20_000);
});
