// A balance that covers exactly K requests serves exactly K of 1,000 concurrent ones, on one
// gateway and on three gateway processes sharing the database: the hold equals the charge
// (free input, max_tokens M, the mock produces exactly M tokens with usage), so nothing is left
// over, nothing goes negative, and the books balance. In lease mode the bounds are carved from
// credit leases, which must give the last units to whichever instance needs them (recall).
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { Books, fundedOrg, LEDGER_MODE, spawnGateway, type GatewayProcess } from './money-helpers.js';

const M = 10; // max_tokens, and the tokens the mock produces
const P = 7; // output price per MTok = micro-units per token
const PER_REQUEST = M * P;
const REQUESTS = 1_000;

// The mock would write 64 tokens; max_tokens cuts it to exactly M, with usage.
const MODELS = [
  { name: 'exact', deployments: [{ provider: 'mock', model: 'exact', inputPricePerMTok: 0, outputPricePerMTok: P, mock: { completionTokens: 64 } }] },
];
const BODY = JSON.stringify({ model: 'exact', messages: [{ role: 'user', content: 'count me once' }], max_tokens: M });

interface Outcome {
  readonly status: number;
  readonly code: string | null;
  readonly completionTokens: number | null;
}

describe('credits cover exactly K requests', () => {
  let gw: TestGateway;
  let books: Books;
  let dispatcher: Agent;
  const others: GatewayProcess[] = [];

  beforeAll(async () => {
    gw = await startTestGateway({ models: MODELS });
    books = new Books(gw.database);
    dispatcher = new Agent({ connections: REQUESTS, pipelining: 1 });
  });

  afterAll(async () => {
    await Promise.allSettled(others.map((p) => p.stop()));
    await dispatcher?.close();
    await books?.close();
    await gw?.close();
  });

  async function chat(url: string, authorization: string): Promise<Outcome> {
    const res = await request(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization },
      body: BODY,
      dispatcher,
    });
    const json = (await res.body.json()) as { error?: { code?: string }; usage?: { completion_tokens?: number } };
    return { status: res.statusCode, code: json.error?.code ?? null, completionTokens: json.usage?.completion_tokens ?? null };
  }

  /** Fires REQUESTS requests at once over `urls` round-robin, watching the balance meanwhile. */
  async function burst(urls: string[], orgId: string, authorization: string): Promise<{ outcomes: Outcome[]; lowest: number }> {
    let lowest = Infinity;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        lowest = Math.min(lowest, (await books.account(orgId)).available);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    try {
      const outcomes = await Promise.all(Array.from({ length: REQUESTS }, (_, i) => chat(urls[i % urls.length]!, authorization)));
      return { outcomes, lowest };
    } finally {
      watching = false;
      await watcher;
    }
  }

  async function expectExactlyK(orgId: string, k: number, outcomes: Outcome[], lowest: number): Promise<void> {
    const served = outcomes.filter((o) => o.status === 200);
    const refused = outcomes.filter((o) => o.status !== 200);
    const tally: Record<string, number> = {};
    for (const o of outcomes) tally[`${o.status} ${o.code}`] = (tally[`${o.status} ${o.code}`] ?? 0) + 1;
    expect(served.length, JSON.stringify(tally)).toBe(k);
    expect(served.every((o) => o.completionTokens === M)).toBe(true);
    expect(refused.every((o) => o.status === 402 && o.code === 'insufficient_quota')).toBe(true);
    expect(refused.length).toBe(REQUESTS - k);

    // One charge row per served request, of exactly its cost, and nothing left: in either mode.
    const settles = await books.expectSettledBooks(orgId, { served: k, charge: PER_REQUEST });
    expect(await books.account(orgId)).toEqual({ available: 0, held: 0 });
    expect(lowest).toBeGreaterThanOrEqual(0);
    expect(settles.every((e) => e.available_delta === 0 && e.held_delta === -PER_REQUEST)).toBe(true);
    expect(await books.entries(orgId, 'expiry')).toEqual([]);
    if (LEDGER_MODE === 'hold') {
      // A hold per request, each equal to its charge: nothing to release.
      expect((await books.entries(orgId, 'reserve')).length).toBe(k);
      expect((await books.entries(orgId, 'release')).length).toBe(0);
      expect(await books.reservationStates(orgId)).toEqual({ settled: k });
    } else {
      // Leases (and per-request holds where none covered a bound): every one closed, and all that
      // was granted was charged, since the balance covered exactly the K charges.
      const states = await books.reservationStates(orgId);
      expect(Object.keys(states).every((s) => s === 'settled' || s === 'released'), JSON.stringify(states)).toBe(true);
      const granted = (await books.entries(orgId, 'reserve')).reduce((sum, e) => sum + e.held_delta, 0);
      const returned = (await books.entries(orgId, 'release')).reduce((sum, e) => sum + e.available_delta, 0);
      expect(granted - returned).toBe(k * PER_REQUEST);
    }
  }

  it('one gateway: exactly K of 1,000 concurrent requests are served', async () => {
    const k = 137;
    const org = await fundedOrg(gw.gateway, k * PER_REQUEST);
    const { outcomes, lowest } = await burst([gw.url], org.orgId, org.auth.authorization);
    await expectExactlyK(org.orgId, k, outcomes, lowest);
  });

  it('three gateway processes on one database: exactly K of 1,000, spread round-robin', async () => {
    others.push(...(await Promise.all([spawnGateway(gw.database, { models: MODELS }), spawnGateway(gw.database, { models: MODELS })])));
    // More than two processes' share (334 each): all three must serve, and settle, concurrently.
    const k = 800;
    const org = await fundedOrg(gw.gateway, k * PER_REQUEST);
    const urls = [gw.url, ...others.map((p) => p.url)];
    const { outcomes, lowest } = await burst(urls, org.orgId, org.auth.authorization);
    for (const [i] of urls.entries()) expect(outcomes.some((o, j) => j % urls.length === i && o.status === 200)).toBe(true);
    await expectExactlyK(org.orgId, k, outcomes, lowest);
  }, 60_000);
});
