// A gateway process killed (SIGKILL) with streams open leaves its holds behind; another process
// on the same database releases them once they expire (an `expiry` row each), and the books
// balance with no credit lost.
import { request as httpRequest, type ClientRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, fundedOrgOverHttp } from '../../support/admin-client.js';
import { createTestDatabase, databaseEnv, type TestDatabase } from '../../support/test-database.js';
import { waitFor } from '../helpers/gateway.js';
import { Books, ledgerCheckCli, spawnGateway, type GatewayProcess } from './money-helpers.js';

const MASTER_KEY = 'crash-test-master-key-0123456789';
const TTL_MS = 1500;
const STREAMS = 20;
const TOPUP = 50_000_000;
const CONFIG = {
  ledger: { reservationTtlMs: TTL_MS, sweepIntervalMs: 500 },
  // 60 tokens at 10 per second: each stream runs about six seconds.
  models: [{ name: 'slow', deployments: [{ provider: 'mock', model: 'slow', inputPricePerMTok: 2, outputPricePerMTok: 9, mock: { tokensPerSecond: 10, completionTokens: 60 } }] }],
};

interface OpenStream {
  readonly req: ClientRequest;
  /** The first content chunk arrived: the hold exists and the stream is open. */
  readonly started: Promise<void>;
  /** The connection is gone (ended, reset or destroyed). */
  readonly closed: Promise<void>;
}

function openStream(url: string, authorization: string): OpenStream {
  const body = JSON.stringify({ model: 'slow', messages: [{ role: 'user', content: 'a slow one' }], stream: true, max_tokens: 100 });
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

describe('holds of a crashed gateway process', () => {
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
    const first = await spawnGateway(database, CONFIG, { NEMO_MASTER_KEY: MASTER_KEY });
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

    const second = await spawnGateway(database, CONFIG);
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
    // The mock's usage: 3 prompt tokens ("a slow one") at 2, 60 completion tokens at 9.
    const cost = 3 * 2 + 60 * 9;
    expect(await books.check()).toEqual([]);
    expect(reservation.rows[0]).toMatchObject({ state: 'settled', charged: String(cost) });
    expect((await books.account(orgId)).available).toBe(before.available - cost);
  }, 20_000);
});
