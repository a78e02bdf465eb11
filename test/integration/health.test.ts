// The operational endpoints of a running gateway: liveness, readiness, Prometheus metrics and the
// model list in OpenAI's shape.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const mock = { ttftMs: 0, tokensPerSecond: 0, completionTokens: 8, reportUsage: true, fault: 'none' };
let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway({
    models: [
      { name: 'alpha', ownedBy: 'team-a', deployments: [{ provider: 'mock', model: 'alpha', mock }] },
      { name: 'beta', deployments: [{ provider: 'mock', model: 'beta', mock }] },
    ],
  });
});

afterAll(async () => {
  await gw?.close();
});

async function get(path: string) {
  const res = await request(`${gw.url}${path}`, { headers: gw.auth });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

describe('health endpoints', () => {
  it('GET /healthz answers 200 {"status":"ok"}', async () => {
    const res = await get('/healthz');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['x-request-id']).toBeTypeOf('string');
    expect(JSON.parse(res.text)).toEqual({ status: 'ok' });
  });

  it('GET /readyz answers 200 with status ready', async () => {
    const res = await get('/readyz');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect((JSON.parse(res.text) as { status: string }).status).toBe('ready');
    expect(res.text).toContain('"name":"postgres","ok":true');
    expect(res.headers['x-request-id']).toBeTypeOf('string');
  });
});

describe('GET /metrics', () => {
  it('is Prometheus text saying which HTTP server runs', async () => {
    const res = await get('/metrics');
    expect(res.status).toBe(200);
    expect(String(res.headers['content-type'])).toMatch(/^text\/plain/);
    expect(res.headers['x-request-id']).toBeTypeOf('string');
    const lines = res.text.split('\n');
    const { implementation } = gw.gateway.httpServer;
    expect(lines).toContain(`nemo_uws_native ${implementation.native ? 1 : 0}`);
    expect(lines).toContain(`nemo_http_server_info{implementation="${implementation.name}",build="${implementation.build}"} 1`);
    // On this suite's Node 20 the bundled 20.30 build loads unless the suite asks for Node's http module.
    if (process.versions.modules === '115' && process.env.NEMO_HTTP_SERVER !== 'node') expect(implementation.build).toBe('@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0');
    expect(res.text).toMatch(/^# TYPE nemo_requests_total counter$/m);
  });

  it('counts a chat request under route="chat_completions"', async () => {
    const chat = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...gw.auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'alpha', messages: [{ role: 'user', content: 'Hi' }] }),
    });
    expect(chat.statusCode).toBe(200);
    await chat.body.dump();

    const res = await get('/metrics');
    const line = res.text.split('\n').find((l) => l.startsWith('nemo_requests_total{') && l.includes('route="chat_completions"') && l.includes('model="alpha"'));
    expect(line, res.text).toBeDefined();
    expect(line).toContain('status_class="2xx"');
    expect(Number(line!.split(' ').at(-1))).toBeGreaterThanOrEqual(1);
    // No org id in any series unless the per-org top-N is opted into.
    expect(res.text).not.toContain(gw.orgId);
    expect(res.text.split('\n').filter((l) => l.startsWith('nemo_org_'))).toEqual([]);
  });
});

describe('GET /v1/models', () => {
  it.each(['/v1/models', '/models'])('%s lists the configured names in the OpenAI list shape', async (path) => {
    const res = await get(path);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    const body = JSON.parse(res.text) as { object: string; data: Array<{ id: string; object: string; created: number; owned_by: string }> };
    expect(body.object).toBe('list');
    expect(body.data.map((m) => m.id)).toEqual(['alpha', 'beta']);
    for (const model of body.data) {
      expect(model.object).toBe('model');
      expect(Number.isInteger(model.created)).toBe(true);
      expect(model.created).toBeGreaterThan(1_600_000_000);
    }
    expect(body.data[0]!.owned_by).toBe('team-a');
    expect(body.data[1]!.owned_by).toBe('nemorouter');
  });
});
