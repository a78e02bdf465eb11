// The console's static route on both HTTP servers (the native uWebSockets.js build where one loads,
// and Node's http module), over real sockets on port 0, from a built folder made by the test: content
// types, cache headers, gzip, index.html for client routes, 404 for unknown files, files read once
// at start, and path traversal (raw request lines, encoded and not) that never leaves the folder.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeHttpImplementation } from '../../../../src/http/node-server.js';
import { defaultUiAssetDir, uiRoute } from '../../../../src/http/routes/ui.js';
import type { HttpApp, HttpServerImplementation } from '../../../../src/http/server-api.js';
import { selectHttpServer } from '../../../../src/http/server.js';
import { rawExchange } from '../../../support/raw-http.js';

const INDEX = '<!doctype html><html lang="en"><title>NemoRouter console</title><script type="module" src="/ui/assets/main-ABCD1234.js"></script></html>';
const SCRIPT = `console.log(${JSON.stringify('x'.repeat(4000))});`;
const SECRET = 'outside the asset folder: must never be served';

const scratch = mkdtempSync(join(tmpdir(), 'nemo-ui-route-'));
const built = join(scratch, 'dist', 'ui');
const empty = join(scratch, 'not-built');
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

mkdirSync(join(built, 'assets'), { recursive: true });
writeFileSync(join(built, 'index.html'), INDEX);
writeFileSync(join(built, 'assets', 'main-ABCD1234.js'), SCRIPT);
writeFileSync(join(built, 'assets', 'main-EFGH5678.css'), 'body{color:black}');
writeFileSync(join(built, 'assets', 'logo-IJKL9012.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
writeFileSync(join(built, 'assets', 'notes.unknownext'), 'a type the route does not know');
writeFileSync(join(scratch, 'dist', 'secret.txt'), SECRET);
writeFileSync(join(scratch, 'package.json'), SECRET);

const implementations: HttpServerImplementation[] = [nodeHttpImplementation];
const native = selectHttpServer({ implementation: 'auto', uwsBinary: undefined }).implementation;
if (native.native) implementations.push(native);

describe.each(implementations.map((i) => [i.name, i] as const))('GET /ui on %s', (_name, implementation) => {
  let app: HttpApp;
  let port: number;
  let base: string;

  beforeAll(async () => {
    app = implementation.createApp();
    const ui = uiRoute({ assetDir: built });
    app.get('/ui', ui);
    app.get('/ui/*', ui);
    app.any('/*', (res) => void res.writeStatus('404 Not Found').end('catch-all'));
    port = await app.listen('127.0.0.1', 0);
    base = `http://127.0.0.1:${port}`;
    // Read once: a file that appears later is not served.
    writeFileSync(join(built, 'assets', `late-${implementation.name}.js`), 'late');
  });

  afterAll(() => {
    app.stopListening();
    app.closeAll();
  });

  it.each(['/ui', '/ui/', '/ui/keys', '/ui/logs/', '/ui/usage-and-ledger', '/ui/keys?page=2'])('%s answers index.html, never cached, with a strict CSP', async (path) => {
    const res = await fetch(`${base}${path}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(await res.text()).toBe(INDEX);
  });

  it.each([
    ['/ui/assets/main-ABCD1234.js', 'text/javascript; charset=utf-8', SCRIPT],
    ['/ui/assets/main-EFGH5678.css', 'text/css; charset=utf-8', 'body{color:black}'],
    ['/ui/assets/logo-IJKL9012.svg', 'image/svg+xml', '<svg xmlns="http://www.w3.org/2000/svg"/>'],
  ])('%s is served as %s and cached for good', async (path, type, body) => {
    const res = await fetch(`${base}${path}`, { headers: { 'accept-encoding': 'identity' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(type);
    expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(res.headers.get('content-encoding')).toBeNull();
    expect(res.headers.get('content-security-policy')).toBeNull();
    expect(await res.text()).toBe(body);
  });

  it('sends gzip to clients that take it, the same bytes unpacked', async () => {
    const { responses } = await rawExchange(port, 'GET /ui/assets/main-ABCD1234.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br, gzip\r\n\r\n', { stopAfterResponses: 1 });
    const [res] = responses;
    expect(res!.status).toBe(200);
    expect(res!.headers['content-encoding']).toBe('gzip');
    expect(res!.headers.vary).toBe('accept-encoding');
    expect(gunzipSync(Buffer.from(res!.body, 'latin1')).toString()).toBe(SCRIPT);
    expect(res!.body.length).toBeLessThan(SCRIPT.length);
  });

  it.each(['/ui/assets/missing-0000.js', '/ui/assets/notes.unknownext', '/ui/index.htm', '/ui/Keys', `/ui/assets/late-${implementation.name}.js`, '/ui/secret.txt'])('%s is a 404 in the error shape', async (path) => {
    const res = await fetch(`${base}${path}`);
    expect(res.status).toBe(404);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('unknown_url');
    expect(body.error.message).toBe(`Unknown request URL: GET ${path}`);
  });

  it.each([
    '/ui/../secret.txt',
    '/ui/../../package.json',
    '/ui/assets/../../secret.txt',
    '/ui/%2e%2e/secret.txt',
    '/ui/%2e%2e/%2e%2e/package.json',
    '/ui/assets/..%2f..%2fsecret.txt',
    '/ui/..%5c..%5csecret.txt',
    '/ui/..\\..\\secret.txt',
    '/ui//etc/passwd',
    '/ui/%00/index.html',
    '/ui/./index.html/..',
  ])('a raw %s never reads outside the folder', async (path) => {
    const { responses, data } = await rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`, { stopAfterResponses: 1 });
    expect(data).not.toContain(SECRET);
    expect(data).not.toContain('root:');
    // Refused by the route (404), or by the server's own parser before any route ran.
    if (responses.length > 0) expect([400, 404]).toContain(responses[0]!.status);
  });
});

describe('uiRoute without a built console', () => {
  it('answers 404 saying how to build it', async () => {
    const app = nodeHttpImplementation.createApp();
    const ui = uiRoute({ assetDir: empty });
    app.get('/ui', ui);
    app.get('/ui/*', ui);
    const port = await app.listen('127.0.0.1', 0);
    try {
      for (const path of ['/ui', '/ui/keys', '/ui/assets/main-ABCD1234.js']) {
        const res = await fetch(`http://127.0.0.1:${port}${path}`);
        expect(res.status).toBe(404);
        expect(((await res.json()) as { error: { message: string } }).error.message).toBe('The admin console is not built on this gateway: run `npm run build`.');
      }
    } finally {
      app.stopListening();
      app.closeAll();
    }
  });

  it('looks for dist/ui beside package.json by default', () => {
    expect(defaultUiAssetDir()).toBe(join(new URL('../../../../', import.meta.url).pathname, 'dist', 'ui'));
  });
});
