// Retries and fallback across deployments: before the first byte reaches the client another
// deployment is tried; after it, never.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mockCompletionText } from '../../src/providers/mock/generate.js';
import { mockDeployment, startMockUpstreamProcess, startTestGateway, type MockUpstreamProcess, type TestGateway } from './helpers/gateway.js';

// The router picks by weight; a weight this lopsided makes "the failing one first" certain in practice.
const FIRST = 1e9;
const body = (model: string, stream = false) => JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }], stream });

describe('fallback across deployments', () => {
  let failing: MockUpstreamProcess;
  let healthy: MockUpstreamProcess;
  let gw: TestGateway;

  beforeAll(async () => {
    [failing, healthy] = await Promise.all([startMockUpstreamProcess(), startMockUpstreamProcess()]);
    gw = await startTestGateway({
      upstream: { maxAttempts: 3, cooldownMs: 60_000, headersTimeoutMs: 300 },
      models: [
        { name: 'first-500', deployments: [mockDeployment(failing, { 'x-mock-fault': 'http-500' }, { weight: FIRST }), mockDeployment(healthy)] },
        { name: 'first-timeout', deployments: [mockDeployment(failing, { 'x-mock-fault': 'timeout' }, { weight: FIRST }), mockDeployment(healthy)] },
        { name: 'first-refused', deployments: [{ provider: 'openai-compatible', model: 'x', baseUrl: 'http://127.0.0.1:9/v1', weight: FIRST }, mockDeployment(healthy)] },
        { name: 'first-429-stream', deployments: [mockDeployment(failing, { 'x-mock-fault': 'http-429' }, { weight: FIRST }), mockDeployment(healthy)] },
        { name: 'cut-after-first-byte', deployments: [mockDeployment(failing, { 'x-mock-fault': 'cut-mid-stream' }), mockDeployment(failing, { 'x-mock-fault': 'cut-mid-stream' })] },
        { name: 'all-500', deployments: [mockDeployment(failing, { 'x-mock-fault': 'http-500' }), mockDeployment(failing, { 'x-mock-fault': 'http-500' })] },
      ],
    });
  });

  afterAll(async () => {
    await gw?.close();
    await Promise.all([failing?.close(), healthy?.close()]);
  });

  async function post(model: string, stream = false) {
    const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { ...gw.auth, 'content-type': 'application/json' }, body: body(model, stream) });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  }

  async function counts() {
    const [f, h] = await Promise.all([failing.stats(), healthy.stats()]);
    return { failing: f.requests, healthy: h.requests };
  }

  it('serves from the second deployment when the first answers 500, then skips the cooling one', async () => {
    const before = await counts();
    const first = await post('first-500');
    expect(first.status).toBe(200);
    expect(first.headers['x-nemo-attempts']).toBe('2');
    expect(JSON.parse(first.text).choices[0].message.content).toBe(mockCompletionText(16));
    const second = await post('first-500');
    expect(second.status).toBe(200);
    expect(second.headers['x-nemo-attempts']).toBe('1');
    const after = await counts();
    expect(after.failing - before.failing).toBe(1);
    expect(after.healthy - before.healthy).toBe(2);
  });

  it('serves from the second deployment when the first times out before headers', async () => {
    const res = await post('first-timeout');
    expect(res.status).toBe(200);
    expect(res.headers['x-nemo-attempts']).toBe('2');
  });

  it('serves from the second deployment when the first refuses connections', async () => {
    const res = await post('first-refused');
    expect(res.status).toBe(200);
    expect(res.headers['x-nemo-attempts']).toBe('2');
  });

  it('falls back for streams too while nothing was sent', async () => {
    const res = await post('first-429-stream', true);
    expect(res.status).toBe(200);
    expect(res.headers['x-nemo-attempts']).toBe('2');
    expect(res.text.trimEnd().endsWith('data: [DONE]')).toBe(true);
  });

  it('does not retry once the first byte reached the client: the stream ends with an error event', async () => {
    const before = await counts();
    const res = await post('cut-after-first-byte', true);
    expect(res.status).toBe(200);
    const frames = res.text.split('\n\n').filter(Boolean);
    const last = frames.at(-1)!;
    expect(last.startsWith('event: error\ndata: ')).toBe(true);
    expect(JSON.parse(last.slice('event: error\ndata: '.length)).error.nemo_code).toBe('NR_UPSTREAM_ERROR');
    expect(frames.some((f) => f.includes('"content":"the "'))).toBe(true);
    expect(res.text).not.toContain('[DONE]');
    const after = await counts();
    expect(after.failing - before.failing).toBe(1);
  });

  it('answers the last failure when every deployment fails', async () => {
    const res = await post('all-500');
    expect(res.status).toBe(502);
    expect(JSON.parse(res.text).error.nemo_code).toBe('NR_UPSTREAM_ERROR');
  });
});
