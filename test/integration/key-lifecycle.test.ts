// An API key's life through HTTP across two gateway instances on one database: created on one,
// used on the other, revoked on the first, refused by the second within a second (LISTEN/NOTIFY);
// and a key that expires stops working by itself.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, createKey } from '../support/admin-client.js';
import { startTestGateway, waitFor, type TestGateway } from './helpers/gateway.js';
import { spawnGateway, type GatewayProcess } from './ledger/money-helpers.js';

const MODELS = [{ name: 'm', deployments: [{ provider: 'mock', model: 'm', mock: { completionTokens: 2 } }] }];

describe('API key lifecycle across instances', () => {
  let first: TestGateway;
  let second: GatewayProcess;
  let secondUrl: string;

  beforeAll(async () => {
    first = await startTestGateway({ models: MODELS });
    // The second instance is its own process on the same database, as in production.
    second = await spawnGateway(first.database, { models: MODELS });
    secondUrl = second.url;
  });

  afterAll(async () => {
    await second?.stop();
    await first?.close();
  });

  const chat = (url: string, key: string) =>
    fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
    }).then(async (res) => ({ status: res.status, body: await res.text() }));

  /** The admin API on the first instance, as its org's admin key. */
  const admin = () => adminClient(first.url, first.auth).org(first.orgId);

  it('a revoked key stops working on the other instance within a second', async () => {
    const { id, key } = await createKey(admin(), { name: 'to revoke' });
    // Used on both: both caches now hold it.
    expect((await chat(first.url, key)).status).toBe(200);
    expect((await chat(secondUrl, key)).status).toBe(200);
    expect((await chat(secondUrl, key)).status).toBe(200);

    const revoked = await admin().call('POST', `/keys/${id}/revoke`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revoked_at).toEqual(expect.any(String));
    const revokedAt = Date.now();
    await waitFor(async () => (await chat(secondUrl, key)).status === 401, 1000, 20);
    const refusedAfterMs = Date.now() - revokedAt;
    expect(refusedAfterMs).toBeLessThan(1000);
    const answer = await chat(first.url, key);
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.body).error.code).toBe('invalid_api_key');
    // The secret is nowhere in what the gateway says back.
    expect(answer.body).not.toContain(key);
  });

  it('an expiring key works until its time, then both instances refuse it', async () => {
    const expiresAt = new Date(Date.now() + 1500).toISOString();
    const { key } = await createKey(admin(), { name: 'short lived', expires_at: expiresAt });
    expect((await chat(first.url, key)).status).toBe(200);
    expect((await chat(secondUrl, key)).status).toBe(200);
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(expiresAt) - Date.now() + 50)));
    for (const url of [first.url, secondUrl]) {
      const answer = await chat(url, key);
      expect(answer.status).toBe(401);
      expect(JSON.parse(answer.body).error.message).toMatch(/expired/);
    }
  });

  it('an org config change reaches the other instance within a second', async () => {
    const { key } = await createKey(admin(), { name: 'model gated' });
    expect((await chat(secondUrl, key)).status).toBe(200);
    const patched = await admin().call('PATCH', '/config', { allowed_models: [] });
    expect(patched.status).toBe(200);
    await waitFor(async () => (await chat(secondUrl, key)).status === 403, 1000, 20);
    await admin().call('PATCH', '/config', { allowed_models: null });
    await waitFor(async () => (await chat(secondUrl, key)).status === 200, 1000, 20);
  });
});
