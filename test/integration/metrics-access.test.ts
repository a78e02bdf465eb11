// /metrics behind its own token, the opt-in per-org top-N (bounded: only N orgs ever appear), and
// the provider series: a fallback counted by the failed provider and its cause, attempts timed.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fundedOrg } from './ledger/money-helpers.js';
import { startTestGateway, waitFor, type TestGateway } from './helpers/gateway.js';

const TOKEN = 'metrics-token-0123456789abcdef';
const mock = { ttftMs: 0, tokensPerSecond: 0, completionTokens: 8, reportUsage: true };
let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway(
    {
      metrics: { orgTopN: 2 },
      models: [
        { name: 'priced', deployments: [{ provider: 'mock', model: 'p', inputPricePerMTok: 1, outputPricePerMTok: 1, mock }] },
        {
          name: 'flaky',
          deployments: [
            { provider: 'mock', model: 'broken', mock: { ...mock, fault: 'http-500' } },
            { provider: 'mock', model: 'fine', mock },
          ],
        },
      ],
    },
    { NEMO_METRICS_TOKEN: TOKEN },
  );
});

afterAll(async () => {
  await gw?.close();
});

async function scrape(authorization?: string): Promise<{ status: number; text: string }> {
  const res = await request(`${gw.url}/metrics`, { headers: authorization === undefined ? {} : { authorization } });
  return { status: res.statusCode, text: await res.body.text() };
}

async function chat(authorization: string, model: string): Promise<number> {
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'count me' }], max_tokens: 8 }),
  });
  await res.body.dump();
  return res.statusCode;
}

const series = (text: string, name: string) => text.split('\n').filter((l) => l.startsWith(`${name}{`));
const value = (line: string) => Number(line.split(' ').at(-1));

describe('GET /metrics with a token', () => {
  it('answers 401 in the OpenAI error shape without the token or with a wrong one', async () => {
    for (const authorization of [undefined, 'Bearer wrong-token-0123456789abc', TOKEN, `Bearer ${TOKEN}x`, gw.auth.authorization]) {
      const res = await scrape(authorization);
      expect(res.status, String(authorization)).toBe(401);
      expect(JSON.parse(res.text)).toMatchObject({ error: { type: 'authentication_error', nemo_code: 'NR_UNAUTHORIZED' } });
      expect(res.text).not.toContain('nemo_requests_total');
    }
  });

  it('serves the metrics with the token', async () => {
    const res = await scrape(`Bearer ${TOKEN}`);
    expect(res.status).toBe(200);
    expect(res.text).toContain('# TYPE nemo_requests_total counter');
  });

  it('refuses a token shorter than 16 characters at start, and a per-org top-N without a token', async () => {
    await expect(startTestGateway({}, { NEMO_METRICS_TOKEN: 'short' })).rejects.toThrow(/NEMO_METRICS_TOKEN: must be at least 16 characters/);
    await expect(startTestGateway({ metrics: { orgTopN: 3 } }, { NEMO_METRICS_TOKEN: '' })).rejects.toThrow(/metrics.orgTopN: needs NEMO_METRICS_TOKEN/);
  });
});

describe('the per-org top-N (metrics.orgTopN: 2)', () => {
  it('exports the two orgs with the most requests, and no other org id', async () => {
    const orgs = [await fundedOrg(gw.gateway, 1e9, 'top 1'), await fundedOrg(gw.gateway, 1e9, 'top 2'), await fundedOrg(gw.gateway, 1e9, 'top 3')];
    // The test's own org made no chat request; these make 6, 4 and 1.
    for (const [org, n] of [[orgs[0]!, 6], [orgs[1]!, 4], [orgs[2]!, 1]] as const) {
      for (let i = 0; i < n; i++) expect(await chat(org.auth.authorization, 'priced')).toBe(200);
    }
    const { text } = await scrape(`Bearer ${TOKEN}`);
    const requests = series(text, 'nemo_org_requests_total');
    expect(requests).toHaveLength(2);
    expect(requests.find((l) => l.includes(`org="${orgs[0]!.orgId}"`)) ?? '').toMatch(/ 6$/);
    expect(requests.find((l) => l.includes(`org="${orgs[1]!.orgId}"`)) ?? '').toMatch(/ 4$/);
    expect(text).not.toContain(orgs[2]!.orgId);
    // Charges count once the ledger committed them: settles are written in batches after the answer.
    await waitFor(async () => {
      const charged = series((await scrape(`Bearer ${TOKEN}`)).text, 'nemo_org_charged_micros_total');
      return charged.length === 2 && charged.every((line) => value(line) > 0);
    }, 5_000, 50);
  });
});

describe('provider series', () => {
  it('counts a fallback by the failed provider and cause, and times every attempt', async () => {
    const before = await scrape(`Bearer ${TOKEN}`);
    const fallbacksBefore = series(before.text, 'nemo_upstream_fallbacks_total').reduce((sum, l) => sum + value(l), 0);
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push(await chat(gw.auth.authorization, 'flaky'));
    expect(statuses.every((s) => s === 200)).toBe(true);
    const { text } = await scrape(`Bearer ${TOKEN}`);
    const fallbacks = series(text, 'nemo_upstream_fallbacks_total');
    expect(fallbacks.every((l) => l.includes('provider="mock"') && l.includes('cause="error"'))).toBe(true);
    // The broken deployment is cooled down after its first failure: at least one request moved.
    expect(fallbacks.reduce((sum, l) => sum + value(l), 0) - fallbacksBefore).toBeGreaterThanOrEqual(1);
    const okCount = text.split('\n').find((l) => l.startsWith('nemo_upstream_duration_seconds_count{provider="mock",result="ok"}'));
    const errorCount = text.split('\n').find((l) => l.startsWith('nemo_upstream_duration_seconds_count{provider="mock",result="error"}'));
    expect(value(okCount ?? 'x NaN')).toBeGreaterThanOrEqual(8);
    expect(value(errorCount ?? 'x NaN')).toBeGreaterThanOrEqual(1);
  });
});
