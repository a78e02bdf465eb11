// Per-key and per-team rate limits through the HTTP API: a key with RPM 60 gets 60 requests, then
// 429s with Retry-After and x-ratelimit-* headers; a team's limit is shared by its keys.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM, startTestGateway, type TestGateway } from './helpers/gateway.js';

describe('rate limits', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startTestGateway({ models: [{ name: 'm', deployments: [{ provider: 'mock', model: 'm', inputPricePerMTok: 1, outputPricePerMTok: 1, mock: { completionTokens: 2 } }] }] });
  });

  afterAll(async () => {
    await gw?.close();
  });

  const chat = (key: string) =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
    }).then(async (res) => ({ status: res.status, headers: res.headers, body: await res.text() }));

  it('a key with RPM 60 gets 60 requests, then 429 with Retry-After and x-ratelimit headers', async () => {
    const { key } = (await gw.gateway.admin.createKey(PLATFORM, gw.orgId, { name: 'rpm 60', rpm_limit: 60 })) as { key: string };
    // The windows follow the clock minute: start the 61 requests early in one, so none turns over
    // mid-way on a loaded machine (they take a few seconds at most).
    await untilEarlyInMinute(30_000);
    const answers = [];
    for (let i = 0; i < 60; i++) answers.push(await chat(key));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(answers[0]!.headers.get('x-ratelimit-limit-requests')).toBe('60');
    expect(answers[0]!.headers.get('x-ratelimit-remaining-requests')).toBe('59');
    expect(answers[59]!.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    const refused = await chat(key);
    expect(refused.status).toBe(429);
    const error = JSON.parse(refused.body).error;
    expect(error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded', nemo_code: 'NR_RATE_LIMITED' });
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(refused.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(refused.headers.get('x-ratelimit-reset-requests')).toBe(`${retryAfter}s`);
  }, 60_000);

  it('a team limit is shared by the keys of the team; an unlimited key carries no headers', async () => {
    const team = (await gw.gateway.admin.createTeam(PLATFORM, gw.orgId, { name: 'limited team', rpm_limit: 4 })) as { id: string };
    const keyA = ((await gw.gateway.admin.createKey(PLATFORM, gw.orgId, { name: 'team a', team_id: team.id })) as { key: string }).key;
    const keyB = ((await gw.gateway.admin.createKey(PLATFORM, gw.orgId, { name: 'team b', team_id: team.id })) as { key: string }).key;
    await untilEarlyInMinute(30_000);
    const statuses: number[] = [];
    for (const key of [keyA, keyB, keyA, keyB, keyA, keyB]) statuses.push((await chat(key)).status);
    const served = statuses.filter((s) => s === 200).length;
    // 4 per minute across both keys.
    expect(served).toBe(4);
    expect(statuses.filter((s) => s === 429).length).toBe(6 - served);
    const free = await chat(gw.apiKey);
    expect(free.status).toBe(200);
    expect(free.headers.get('x-ratelimit-limit-requests')).toBeNull();
  }, 60_000);

  it('admin inputs validate limits', async () => {
    await expect(gw.gateway.admin.createKey(PLATFORM, gw.orgId, { name: 'bad', rpm_limit: 0 })).rejects.toMatchObject({ code: 'NR_INVALID_REQUEST' });
    await expect(gw.gateway.admin.createKey(PLATFORM, gw.orgId, { name: 'bad', tpm_limit: 1.5 })).rejects.toMatchObject({ code: 'NR_INVALID_REQUEST' });
    const ok = (await gw.gateway.admin.createKey(PLATFORM, gw.orgId, { name: 'tpm', tpm_limit: 1000 })) as { tpm_limit: number };
    expect(ok.tpm_limit).toBe(1000);
  });
});

/** Waits for the next clock minute unless at least `needMs` of the current one remain. */
async function untilEarlyInMinute(needMs: number): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < needMs) await new Promise((resolve) => setTimeout(resolve, left + 50));
}
