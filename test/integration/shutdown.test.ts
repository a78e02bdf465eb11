// Graceful shutdown: close() stops accepting, lets in-flight streams finish within the grace
// period, reports not-ready meanwhile, and cuts what is left at the deadline with a typed SSE error.
import { afterAll, describe, expect, it } from 'vitest';
import { Client } from 'undici';
import type { Gateway } from '../../src/main.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const started: TestGateway[] = [];
const clients: Client[] = [];
/** The API key of the gateway each client talks to. */
const authOf = new Map<Client, { authorization: string }>();

async function slowGateway(completionTokens: number, drainDelayMs = 0): Promise<{ gateway: Gateway; url: string }> {
  // The env wins over the file, and the suites set NEMO_DRAIN_DELAY_MS=0 (vitest.config.ts).
  const test = await startTestGateway({
    server: { shutdownGraceMs: 5000 },
    models: [
      {
        name: 'slow',
        deployments: [{ provider: 'mock', model: 'slow', mock: { ttftMs: 0, tokensPerSecond: 20, completionTokens, reportUsage: true, fault: 'none' } }],
      },
    ],
  }, { NEMO_DRAIN_DELAY_MS: String(drainDelayMs) });
  started.push(test);
  return { gateway: test.gateway, url: test.url };
}

function client(url: string): Client {
  const c = new Client(url, { pipelining: 1 });
  clients.push(c);
  authOf.set(c, started.find((g) => g.url === url)!.auth);
  return c;
}

const STREAM_BODY = JSON.stringify({ model: 'slow', messages: [{ role: 'user', content: 'Tell me a story' }], stream: true });

/** Starts a stream and resolves once its headers and first bytes arrived; `rest` is the whole body. */
async function startStream(c: Client): Promise<{ first: string; rest: Promise<string> }> {
  const res = await c.request({ method: 'POST', path: '/v1/chat/completions', headers: { ...authOf.get(c), 'content-type': 'application/json' }, body: STREAM_BODY });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toBe('text/event-stream');
  const iterator = res.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const firstChunk = await iterator.next();
  expect(firstChunk.done).toBe(false);
  const first = firstChunk.value.toString('utf8');
  const rest = (async () => {
    let text = first;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) text += next.value.toString('utf8');
    return text;
  })();
  return { first, rest };
}

/** The data lines of an SSE body, with the event name of each frame. */
function frames(body: string): Array<{ event: string; data: string }> {
  return body
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      return { event, data: data.join('\n') };
    });
}

afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.destroy()));
  await Promise.all(started.map((g) => g.close()));
});

describe('graceful shutdown', () => {
  it('lets an in-flight stream finish, refuses new connections and reports draining', async () => {
    // 20 tokens at 20 tokens/s: about one second of streaming.
    const { gateway, url } = await slowGateway(20);
    const keepAlive = client(url);
    const warm = await keepAlive.request({ method: 'GET', path: '/readyz' });
    expect(warm.statusCode).toBe(200);
    await warm.body.dump();

    const stream = await startStream(client(url));
    let closed = false;
    const closing = gateway.close(5000).then(() => (closed = true));

    // A new connection after close() began: refused, or answered with a typed 503.
    const fresh = client(url);
    try {
      const res = await fresh.request({ method: 'POST', path: '/v1/chat/completions', headers: { ...authOf.get(fresh), 'content-type': 'application/json' }, body: STREAM_BODY });
      const body = (await res.body.json()) as { error: { nemo_code: string } };
      expect(res.statusCode).toBe(503);
      expect(body.error.nemo_code).toBe('NR_SHUTTING_DOWN');
    } catch (err) {
      expect((err as { code?: string }).code).toBe('ECONNREFUSED');
    }

    // The existing keep-alive connection, if still open, sees the gateway as not ready.
    let readyzAnswered = false;
    try {
      const ready = await keepAlive.request({ method: 'GET', path: '/readyz' });
      const body = (await ready.body.json()) as { status: string };
      readyzAnswered = true;
      expect(ready.statusCode).toBe(503);
      expect(body.status).toBe('draining');
    } catch (err) {
      if (readyzAnswered) throw err;
      expect((err as { code?: string }).code).toMatch(/^(UND_ERR_SOCKET|ECONNRESET|UND_ERR_CLOSED)$/);
    }
    // And a chat request on it is refused with the typed error.
    if (readyzAnswered) {
      const chat = await keepAlive.request({ method: 'POST', path: '/v1/chat/completions', headers: { ...authOf.get(keepAlive), 'content-type': 'application/json' }, body: STREAM_BODY });
      const body = (await chat.body.json()) as { error: { nemo_code: string; code: string } };
      expect(chat.statusCode).toBe(503);
      expect(body.error).toMatchObject({ nemo_code: 'NR_SHUTTING_DOWN', code: 'shutting_down' });
    }
    expect(closed).toBe(false);

    const body = await stream.rest;
    const all = frames(body);
    expect(all.some((f) => f.event === 'error')).toBe(false);
    expect(all.at(-1)).toEqual({ event: 'message', data: '[DONE]' });
    const content = all
      .filter((f) => f.data !== '[DONE]')
      .map((f) => (JSON.parse(f.data) as { choices: Array<{ delta?: { content?: string } }> }).choices[0]?.delta?.content ?? '')
      .join('');
    expect(content.length).toBeGreaterThan(0);
    await closing;
    expect(closed).toBe(true);
  });

  it('cuts a stream still running at the deadline with a final NR_SHUTTING_DOWN error event', async () => {
    // 400 tokens at 20 tokens/s: twenty seconds, far beyond the 200 ms grace.
    const { gateway, url } = await slowGateway(400);
    const stream = await startStream(client(url));
    const closeStartedAt = performance.now();
    await gateway.close(200);
    const closeMs = performance.now() - closeStartedAt;
    expect(closeMs).toBeGreaterThanOrEqual(150);
    expect(closeMs).toBeLessThan(5000);

    const body = await stream.rest;
    expect(body).not.toContain('data: [DONE]');
    const all = frames(body);
    const last = all.at(-1)!;
    expect(last.event).toBe('error');
    const error = (JSON.parse(last.data) as { error: Record<string, unknown> }).error;
    expect(error).toMatchObject({ nemo_code: 'NR_SHUTTING_DOWN', code: 'shutting_down', type: 'api_error' });
    expect(typeof error.message).toBe('string');
    // Content went out before the cut.
    expect(all.filter((f) => f.event === 'message').length).toBeGreaterThan(1);
  });

  it('close() is idempotent: a second call resolves too', async () => {
    const { gateway } = await slowGateway(4);
    await Promise.all([gateway.close(100), gateway.close(100)]);
    await gateway.close(100);
  });

  it('drains before it stops listening: for drainDelayMs /readyz and new requests answer 503 (new ones with Connection: close), probes still answer, then the port closes', async () => {
    const { gateway, url } = await slowGateway(4, 1500);
    const closing = gateway.close(1000);
    await new Promise((resolve) => setTimeout(resolve, 200));

    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { status: string }).status).toBe('draining');
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/metrics`)).status).toBe(200);
    const auth = started.find((g) => g.url === url)!.auth;
    for (const [method, path, body] of [['POST', '/v1/chat/completions', STREAM_BODY], ['GET', '/v1/models', undefined], ['GET', '/admin/v1/orgs', undefined]] as const) {
      const res = await fetch(`${url}${path}`, { method, headers: { ...auth, 'content-type': 'application/json' }, body });
      expect(res.status, path).toBe(503);
      expect(res.headers.get('connection'), path).toBe('close');
      expect(((await res.json()) as { error: { nemo_code: string } }).error.nemo_code, path).toBe('NR_SHUTTING_DOWN');
    }

    await closing;
    await expect(fetch(`${url}/readyz`)).rejects.toThrow();
  });
});
