// CORS is off: no route answers with an Access-Control-* header, whatever Origin a browser sends,
// and an OPTIONS preflight is not honoured (no 2xx, no Access-Control-Allow-*), on every route
// (public ones and every admin route from the route tables) and on unknown paths.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../integration/helpers/gateway.js';
import { adminRoutes, fillPath } from '../support/admin-routes.js';

const ORIGIN = 'https://evil.example';
let gw: TestGateway;

const accessControl = (headers: Headers) => [...headers.keys()].filter((k) => k.toLowerCase().startsWith('access-control-'));

beforeAll(async () => {
  gw = await startTestGateway({ models: [{ name: 'm', deployments: [{ provider: 'mock', model: 'm' }] }] });
});

afterAll(async () => {
  await gw?.close();
});

function paths(): string[] {
  const admin = adminRoutes().map((r) => fillPath(r, { org: gw.orgId, team: '00000000-0000-4000-8000-000000000000', key: '00000000-0000-4000-8000-000000000000' }));
  return ['/v1/chat/completions', '/chat/completions', '/v1/models', '/models', '/healthz', '/readyz', '/metrics', ...new Set(admin), '/no/such/path'];
}

describe('CORS is off by default', () => {
  it('simple and credentialed requests from another origin get no Access-Control-* header', async () => {
    const requests: Array<[string, RequestInit]> = [
      ['/v1/models', { headers: { origin: ORIGIN, ...gw.auth } }],
      ['/v1/chat/completions', { method: 'POST', headers: { origin: ORIGIN, ...gw.auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'Hi' }] }) }],
      ['/v1/chat/completions', { method: 'POST', headers: { origin: ORIGIN, 'content-type': 'application/json' }, body: '{}' }],
      [`/admin/v1/orgs/${gw.orgId}`, { headers: { origin: ORIGIN, ...gw.auth } }],
      ['/admin/v1/orgs', { headers: { origin: 'null' } }],
      ['/healthz', { headers: { origin: ORIGIN } }],
      ['/metrics', { headers: { origin: ORIGIN } }],
      ['/no/such/path', { headers: { origin: ORIGIN } }],
    ];
    for (const [path, init] of requests) {
      const res = await fetch(`${gw.url}${path}`, init);
      await res.arrayBuffer();
      expect(accessControl(res.headers), `${init.method ?? 'GET'} ${path} -> ${res.status}`).toEqual([]);
    }
  });

  it('an OPTIONS preflight on any route is not honoured: 404 or 405, no Access-Control-* header', async () => {
    const list = paths();
    expect(list.length).toBeGreaterThan(20);
    for (const path of list) {
      const res = await fetch(`${gw.url}${path}`, {
        method: 'OPTIONS',
        headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
      });
      const body = await res.text();
      expect([404, 405], `OPTIONS ${path}: ${res.status} ${body.slice(0, 100)}`).toContain(res.status);
      expect(accessControl(res.headers), `OPTIONS ${path}`).toEqual([]);
      expect(res.headers.get('allow') ?? '', `OPTIONS ${path}`).not.toMatch(/OPTIONS/i);
    }
  });
});
