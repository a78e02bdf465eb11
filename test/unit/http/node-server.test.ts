// The HTTP interface on Node's http module, driven over real sockets on port 0: routing precedence,
// the request accessors, status/headers/bodies, backpressure, aborts, client errors and shutdown.
// Raw sockets where the bytes matter, undici where an ordinary client is the point.
import type { Socket } from 'node:net';
import { Agent, request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { nodeHttpImplementation } from '../../../src/http/node-server.js';
import type { HttpApp, HttpRequest, HttpResponse } from '../../../src/http/server-api.js';
import { openSocket, parseResponses, rawExchange } from '../../support/raw-http.js';

const apps: HttpApp[] = [];
const clientSockets: Socket[] = [];
// Every request gives up on its own: a broken server fails the test in seconds, not at the suite timeout.
const agent = new Agent({ connections: 4, headersTimeout: 2000, bodyTimeout: 2000 });

afterEach(() => {
  for (const socket of clientSockets.splice(0)) socket.destroy();
  for (const app of apps.splice(0)) {
    app.stopListening();
    app.closeAll();
  }
});

afterAll(async () => {
  await agent.destroy();
});

async function serve(register: (app: HttpApp) => void): Promise<{ app: HttpApp; port: number; base: string }> {
  const app = nodeHttpImplementation.createApp();
  apps.push(app);
  register(app);
  const port = await app.listen('127.0.0.1', 0);
  return { app, port, base: `http://127.0.0.1:${port}` };
}

async function connected(port: number): Promise<Socket> {
  const socket = await openSocket(port);
  clientSockets.push(socket);
  socket.on('error', () => undefined);
  return socket;
}

async function getText(url: string, method: 'GET' | 'POST' | 'DELETE' | 'PUT' = 'GET'): Promise<string> {
  const res = await request(url, { method, dispatcher: agent });
  return res.body.text();
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Rejects when `promise` has not settled after `ms`; the timer never outlives the wait. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Collects complete responses on `socket`; `next(n)` resolves once there are `n` of them. */
function replies(socket: Socket): { next(count: number): Promise<ReturnType<typeof parseResponses>> } {
  let data = '';
  const waiters: Array<{ count: number; resolve: (responses: ReturnType<typeof parseResponses>) => void }> = [];
  const check = () => {
    const responses = parseResponses(data);
    for (const waiter of waiters.splice(0)) {
      if (responses.length >= waiter.count) waiter.resolve(responses);
      else waiters.push(waiter);
    }
  };
  socket.on('data', (chunk: Buffer) => {
    data += chunk.toString('latin1');
    check();
  });
  return {
    next(count) {
      return new Promise((resolve) => {
        waiters.push({ count, resolve });
        check();
      });
    },
  };
}

function closeOf(socket: Socket): Promise<void> {
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** True as soon as `condition` holds, false once `ms` passed without it. */
async function eventually(condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() >= deadline) return false;
    await sleep(5);
  }
  return true;
}

/** The head of the first response in `data`, as its status line and its header lines (names lower-cased, duplicates kept). */
function head(data: string): { statusLine: string; headers: Array<[string, string]> } {
  const [statusLine = '', ...lines] = data.slice(0, data.indexOf('\r\n\r\n')).split('\r\n');
  const headers = lines.map((line): [string, string] => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
  });
  return { statusLine, headers };
}

const named =
  (name: string) =>
  (res: HttpResponse, req: HttpRequest): void => {
    res.end(`${name} ${req.getParameter(0) ?? '-'}`);
  };

describe('routing', () => {
  it('prefers a static segment over :param over a trailing /*, whatever the registration order', async () => {
    const { base } = await serve((app) => {
      app.any('/a/*', named('wildcard'));
      app.get('/a/:x', named('param'));
      app.get('/a/b', named('static'));
    });
    expect(await getText(`${base}/a/b`)).toBe('static -');
    expect(await getText(`${base}/a/zed`)).toBe('param zed');
    expect(await getText(`${base}/a/zed/more`)).toBe('wildcard -');
    // An empty segment is no parameter value.
    expect(await getText(`${base}/a/`)).toBe('wildcard -');
    // Routes for another method do not count: POST finds only `any`.
    expect(await getText(`${base}/a/b`, 'POST')).toBe('wildcard -');
  });

  it('prefers a method handler over `any` on the same pattern, even when `any` came first', async () => {
    const { base } = await serve((app) => {
      app.any('/d', named('any'));
      app.post('/d', named('post'));
      app.del('/d', named('del'));
      app.post('/e/:x', named('post-param'));
      app.any('/e/b', named('any-static'));
    });
    expect(await getText(`${base}/d`, 'POST')).toBe('post -');
    expect(await getText(`${base}/d`, 'DELETE')).toBe('del -');
    expect(await getText(`${base}/d`, 'GET')).toBe('any -');
    expect(await getText(`${base}/d`, 'PUT')).toBe('any -');
    // The pattern decides first, the method only between equal patterns (as in uWS 20.30, checked).
    expect(await getText(`${base}/e/b`, 'POST')).toBe('any-static -');
    expect(await getText(`${base}/e/z`, 'POST')).toBe('post-param z');
  });

  // Regression: the Node server let `/w/*` answer `/w`; uWS (20.30, checked) needs a segment after the prefix.
  it('a trailing /* needs a segment after its prefix: /w/* does not answer /w (as in uWS)', async () => {
    const { base } = await serve((app) => {
      app.get('/w/*', named('wildcard'));
      app.any('/*', named('fallback'));
    });
    expect(await getText(`${base}/w/`)).toBe('wildcard -');
    expect(await getText(`${base}/w`)).toBe('fallback -');
  });
});

describe('request accessors', () => {
  it('give the lower-case method, the path, the raw query, parameters by position and the headers', async () => {
    let seen: Record<string, unknown> | undefined;
    const { port } = await serve((app) =>
      app.patch('/orgs/:org/keys/:key', (res, req) => {
        const all: Array<[string, string]> = [];
        req.forEach((name, value) => all.push([name, value]));
        seen = {
          method: req.getMethod(),
          url: req.getUrl(),
          query: req.getQuery(),
          params: [req.getParameter(0), req.getParameter(1), req.getParameter(2)],
          dup: req.getHeader('x-dup'),
          mixed: req.getHeader('x-mixed-case'),
          absent: req.getHeader('x-absent'),
          all,
        };
        res.end();
      }),
    );
    const outcome = await rawExchange(
      port,
      'PATCH /orgs/o1/keys/k%202?a=1&b=%20x&a=2 HTTP/1.1\r\nHost: t\r\nX-Dup: one\r\nx-dup: two\r\nX-Mixed-Case: Value\r\nContent-Length: 0\r\n\r\n',
      { stopAfterResponses: 1, deadlineMs: 2000 },
    );
    expect(outcome.responses[0]?.status).toBe(200);
    expect(seen).toEqual({
      method: 'patch',
      url: '/orgs/o1/keys/k%202',
      query: 'a=1&b=%20x&a=2',
      params: ['o1', 'k%202', undefined],
      dup: 'one',
      mixed: 'Value',
      absent: '',
      all: [
        ['host', 't'],
        ['x-dup', 'one'],
        ['x-dup', 'two'],
        ['x-mixed-case', 'Value'],
        ['content-length', '0'],
      ],
    });
  });

  it('give no query for a target without one', async () => {
    const queries: Array<string | undefined> = [];
    const { base } = await serve((app) =>
      app.get('/q', (res, req) => {
        queries.push(req.getQuery());
        res.end(req.getUrl());
      }),
    );
    expect(await getText(`${base}/q`)).toBe('/q');
    expect(await getText(`${base}/q?`)).toBe('/q');
    expect(queries.map((q) => q ?? '')).toEqual(['', '']);
  });
});

describe('responses', () => {
  it('writeStatus, writeHeader and end(body) give that status line, those headers and the body byte length', async () => {
    const body = 'héllo €';
    const { port } = await serve((app) =>
      app.get('/teapot', (res) => {
        res.cork(() => {
          res.writeStatus('418 Short And Stout').writeHeader('x-one', '1').writeHeader('x-dup', 'a').writeHeader('x-dup', 'b').end(body);
        });
      }),
    );
    const outcome = await rawExchange(port, 'GET /teapot HTTP/1.1\r\nhost: t\r\n\r\n', { stopAfterResponses: 1, deadlineMs: 2000 });
    const { statusLine, headers } = head(outcome.data);
    expect(statusLine).toBe('HTTP/1.1 418 Short And Stout');
    expect(headers).toContainEqual(['x-one', '1']);
    expect(headers.filter(([name]) => name === 'x-dup')).toEqual([
      ['x-dup', 'a'],
      ['x-dup', 'b'],
    ]);
    // Bytes, not UTF-16 units: 'é' and '€' are 2 and 3 bytes.
    expect(headers).toContainEqual(['content-length', String(Buffer.byteLength(body))]);
    expect(headers.some(([name]) => name === 'transfer-encoding')).toBe(false);
    expect(Buffer.from(outcome.responses[0]!.body, 'latin1').toString('utf8')).toBe(body);
  });

  it('end() with a Uint8Array or with nothing sends the right content-length', async () => {
    const { base } = await serve((app) => {
      app.get('/bytes', (res) => res.end(new Uint8Array([0, 1, 2, 255])));
      app.get('/empty', (res) => res.writeStatus('204 No Content').end());
      app.get('/none', (res) => res.end());
    });
    const bytes = await request(`${base}/bytes`, { dispatcher: agent });
    expect(bytes.statusCode).toBe(200);
    expect(bytes.headers['content-length']).toBe('4');
    expect([...new Uint8Array(await bytes.body.arrayBuffer())]).toEqual([0, 1, 2, 255]);
    const none = await request(`${base}/none`, { dispatcher: agent });
    expect(none.headers['content-length']).toBe('0');
    expect(await none.body.text()).toBe('');
    const empty = await request(`${base}/empty`, { dispatcher: agent });
    expect(empty.statusCode).toBe(204);
    await empty.body.dump();
  });

  it('write() chunks give a chunked response that end() terminates', async () => {
    const accepted: boolean[] = [];
    const { port } = await serve((app) =>
      app.get('/chunks', (res) => {
        res.writeHeader('content-type', 'text/plain');
        accepted.push(res.write('one'), res.write(new TextEncoder().encode('two')));
        res.end('three');
      }),
    );
    const outcome = await rawExchange(port, 'GET /chunks HTTP/1.1\r\nhost: t\r\n\r\n', { stopAfterResponses: 1, deadlineMs: 2000 });
    const { statusLine, headers } = head(outcome.data);
    expect(statusLine).toBe('HTTP/1.1 200 OK');
    expect(headers).toContainEqual(['transfer-encoding', 'chunked']);
    expect(headers).toContainEqual(['content-type', 'text/plain']);
    expect(headers.some(([name]) => name === 'content-length')).toBe(false);
    // How writes are framed into chunks is Node's business (Node 24 coalesces them); the body is ours.
    expect(outcome.data).toMatch(/\r\n0\r\n\r\n$/);
    expect(outcome.responses[0]?.body).toBe('onetwothree');
    expect(accepted).toEqual([true, true]);
  });

  it('end(body, true) sends connection: close and the server closes the socket; without it the connection stays', async () => {
    const { port } = await serve((app) => {
      app.get('/bye', (res) => res.end('bye', true));
      app.get('/stay', (res) => res.end('stay'));
    });
    const bye = await rawExchange(port, 'GET /bye HTTP/1.1\r\nhost: t\r\n\r\n', { deadlineMs: 2000 });
    expect(bye.closedByServer).toBe(true);
    expect(bye.elapsedMs).toBeLessThan(1500);
    expect(bye.responses).toHaveLength(1);
    expect(bye.responses[0]?.headers.connection).toBe('close');
    expect(bye.responses[0]?.body).toBe('bye');
    const stay = await rawExchange(port, 'GET /stay HTTP/1.1\r\nhost: t\r\n\r\n', { deadlineMs: 200 });
    expect(stay.responses[0]?.body).toBe('stay');
    expect(stay.closedByServer).toBe(false);
  });

  // Regression: once write() had sent the head, `connection: close` could no longer be said and the
  // connection stayed open; uWS (20.30, checked) closes it.
  it('end(body, true) after write() also closes the connection', async () => {
    const { port } = await serve((app) =>
      app.get('/stream-bye', (res) => {
        res.write('a');
        res.end('b', true);
      }),
    );
    const outcome = await rawExchange(port, 'GET /stream-bye HTTP/1.1\r\nhost: t\r\n\r\n', { deadlineMs: 300 });
    expect(outcome.responses[0]?.body).toBe('ab');
    expect(outcome.closedByServer).toBe(true);
  });
});

describe('backpressure', () => {
  it('write() returns false once the client stops reading, and onWritable fires with the offset when it reads again', async () => {
    // Below Node's 16 KiB high-water mark, so false means buffered, not merely a large chunk.
    const chunk = Buffer.alloc(8 * 1024, 'x');
    const limit = 64 * 1024 * 1024;
    let written = 0;
    let refused = false;
    const offsets: number[] = [];
    const blocked = deferred();
    const { port } = await serve((app) =>
      app.get('/big', (res) => {
        res.onAborted(() => undefined);
        // One chunk per turn: Node corks the socket for the rest of a turn, so a tight loop would see
        // false as soon as the cork holds 16 KiB, long before the client's buffers are full.
        const pump = (): void => {
          written += chunk.byteLength;
          if (res.write(chunk)) {
            if (written < limit) setImmediate(pump);
            else blocked.resolve();
            return;
          }
          refused = true;
          res.onWritable((offset) => {
            offsets.push(offset);
            res.end();
            return true;
          });
          blocked.resolve();
        };
        pump();
      }),
    );
    const socket = await connected(port);
    socket.pause();
    socket.write('GET /big HTTP/1.1\r\nhost: t\r\n\r\n');
    await within(blocked.promise, 2000, 'handler run');
    expect(refused).toBe(true);
    expect(written).toBeLessThan(limit);
    await sleep(30);
    // Nothing drains while the client does not read.
    expect(offsets).toEqual([]);

    const received: Buffer[] = [];
    const complete = new Promise<void>((resolve) => {
      let tail = Buffer.alloc(0);
      socket.on('data', (data: Buffer) => {
        received.push(data);
        tail = Buffer.concat([tail, data]).subarray(-5);
        if (tail.toString('latin1') === '0\r\n\r\n') resolve();
      });
    });
    socket.resume();
    await within(complete, 3000, 'complete response');
    expect(offsets).toEqual([written]);
    const responses = parseResponses(Buffer.concat(received).toString('latin1'));
    expect(responses).toHaveLength(1);
    expect(responses[0]!.body.length).toBe(written);
  });
});

describe('aborts', () => {
  it('onAborted fires when the client goes away mid-response', async () => {
    const aborted = deferred();
    const { port } = await serve((app) =>
      app.get('/stream', (res) => {
        res.onAborted(() => aborted.resolve());
        res.write('first');
      }),
    );
    const socket = await connected(port);
    const firstBytes = new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.write('GET /stream HTTP/1.1\r\nhost: t\r\n\r\n');
    await within(firstBytes, 2000, 'first bytes');
    socket.destroy();
    await within(aborted.promise, 1000, 'onAborted');
  });

  it('onAborted does not fire after end() completed, even when the client then disconnects', async () => {
    let aborts = 0;
    const { port } = await serve((app) =>
      app.get('/done', (res) => {
        res.onAborted(() => aborts++);
        res.end('done');
      }),
    );
    const outcome = await rawExchange(port, 'GET /done HTTP/1.1\r\nhost: t\r\n\r\n', { stopAfterResponses: 1, deadlineMs: 2000 });
    expect(outcome.responses[0]?.body).toBe('done');
    // rawExchange destroyed the socket; give the server time to see it.
    await sleep(50);
    expect(aborts).toBe(0);
  });

  it('close() cuts the connection: no complete response reaches the client, and onAborted fires', async () => {
    let aborts = 0;
    const { port, base } = await serve((app) =>
      app.get('/cut', (res) => {
        res.onAborted(() => aborts++);
        res.write('partial');
        setTimeout(() => res.close(), 10);
      }),
    );
    const outcome = await rawExchange(port, 'GET /cut HTTP/1.1\r\nhost: t\r\n\r\n', { deadlineMs: 2000 });
    expect(outcome.closedByServer).toBe(true);
    expect(outcome.elapsedMs).toBeLessThan(1500);
    expect(outcome.data).toContain('partial');
    expect(outcome.responses).toEqual([]);
    // The server's side of the close may land just after the client saw it.
    expect(await eventually(() => aborts === 1, 500)).toBe(true);
    // An ordinary client sees the stream fail instead of a truncated body it could take as whole.
    await expect(within(getText(`${base}/cut`), 2000, 'client error')).rejects.toThrow(/other side closed|socket|ECONNRESET/i);
  });

  // Regression: Node runs a pipelined request's handler at once but queues its response, and on
  // disconnect tells only the pending response: the queued one's onAborted never ran.
  it('onAborted fires for a pipelined request whose response waits behind another', async () => {
    let called = 0;
    const aborted: number[] = [];
    const { port } = await serve((app) =>
      app.get('/hang', (res) => {
        const n = ++called;
        res.onAborted(() => aborted.push(n));
      }),
    );
    const socket = await connected(port);
    socket.write('GET /hang HTTP/1.1\r\nhost: t\r\n\r\nGET /hang HTTP/1.1\r\nhost: t\r\n\r\n');
    expect(await eventually(() => called >= 1, 1000)).toBe(true);
    await sleep(30);
    socket.destroy();
    await eventually(() => aborted.length === called, 300);
    expect(aborted.sort()).toEqual(Array.from({ length: called }, (_, i) => i + 1));
  });
});

describe('request bodies', () => {
  it('onData delivers every chunk as it arrives, then an empty last chunk', async () => {
    const calls: Array<[string, boolean]> = [];
    const { port } = await serve((app) =>
      app.post('/echo', (res) => {
        res.onAborted(() => undefined);
        res.onData((chunk, isLast) => {
          calls.push([Buffer.from(chunk).toString('latin1'), isLast]);
          if (isLast) res.end(String(calls.length));
        });
      }),
    );
    const outcome = await rawExchange(port, ['POST /echo HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n', '6\r\n world\r\n', '0\r\n\r\n'], {
      gapMs: 20,
      stopAfterResponses: 1,
      deadlineMs: 2000,
    });
    expect(outcome.responses[0]?.status).toBe(200);
    expect(calls.map(([text]) => text).join('')).toBe('hello world');
    expect(calls.at(-1)).toEqual(['', true]);
    expect(calls.length).toBeGreaterThanOrEqual(3);
    expect(calls.slice(0, -1).every(([, isLast]) => !isLast)).toBe(true);
  });

  it('onData chunks hold exactly the bytes sent (a Content-Length body of 256 KiB)', async () => {
    const sent = Buffer.alloc(256 * 1024);
    for (let i = 0; i < sent.length; i++) sent[i] = (i * 7 + (i >> 8)) & 0xff;
    const { base } = await serve((app) =>
      app.post('/sum', (res) => {
        const parts: Buffer[] = [];
        res.onAborted(() => undefined);
        // Copied at once: a chunk is only valid during the call.
        res.onData((chunk, isLast) => {
          parts.push(Buffer.from(new Uint8Array(chunk).slice()));
          if (isLast) res.end(Buffer.concat(parts).equals(sent) ? 'same' : `different (${Buffer.concat(parts).length} bytes)`);
        });
      }),
    );
    const res = await request(`${base}/sum`, { method: 'POST', body: sent, dispatcher: agent });
    expect(await res.body.text()).toBe('same');
  });
});

describe('client errors', () => {
  it('Content-Length with Transfer-Encoding: the socket is closed with no response bytes, no handler runs', async () => {
    let handled = 0;
    const { port } = await serve((app) => app.any('/*', (res) => (handled++, res.end('ran'))));
    const outcome = await rawExchange(port, 'POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', {
      deadlineMs: 2000,
    });
    expect(outcome.closedByServer).toBe(true);
    expect(outcome.data).toBe('');
    expect(handled).toBe(0);
  });

  it('a head over 8 KiB: the socket is closed with no response bytes; 7 KiB is served', async () => {
    const { port } = await serve((app) => app.any('/*', (res) => res.end('ran')));
    const big = await rawExchange(port, `GET / HTTP/1.1\r\nhost: t\r\nx-big: ${'a'.repeat(9 * 1024)}\r\n\r\n`, { deadlineMs: 2000 });
    expect(big.closedByServer).toBe(true);
    expect(big.data).toBe('');
    const fits = await rawExchange(port, `GET / HTTP/1.1\r\nhost: t\r\nx-big: ${'a'.repeat(7 * 1024)}\r\n\r\n`, { stopAfterResponses: 1, deadlineMs: 2000 });
    expect(fits.responses[0]?.body).toBe('ran');
  });
});

describe('listen and shutdown', () => {
  it('listen on a port already in use rejects', async () => {
    const { port } = await serve(() => undefined);
    const second = nodeHttpImplementation.createApp();
    apps.push(second);
    await expect(second.listen('127.0.0.1', port)).rejects.toThrow(new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
  });

  it('stopListening() refuses new connections; a request in flight completes and an idle keep-alive connection stays usable', async () => {
    const entered = deferred();
    const release = deferred();
    const { app, port } = await serve((a) => {
      a.get('/slow', (res) => {
        res.onAborted(() => undefined);
        entered.resolve();
        void release.promise.then(() => res.cork(() => res.end('finished')));
      });
      a.get('/quick', (res) => res.end('quick'));
    });
    const idle = await connected(port);
    const idleReplies = replies(idle);
    idle.write('GET /quick HTTP/1.1\r\nhost: t\r\n\r\n');
    await within(idleReplies.next(1), 2000, 'first reply on the keep-alive connection');
    const inflight = rawExchange(port, 'GET /slow HTTP/1.1\r\nhost: t\r\n\r\n', { stopAfterResponses: 1, deadlineMs: 2000 });
    await within(entered.promise, 1000, 'request in flight');

    app.stopListening();
    await expect(openSocket(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    release.resolve();
    expect((await inflight).responses[0]?.body).toBe('finished');
    // As with uWS: connections already open go on (http.Server.close() would close the idle ones).
    idle.write('GET /quick HTTP/1.1\r\nhost: t\r\n\r\n');
    expect((await within(idleReplies.next(2), 1000, 'second reply on the keep-alive connection'))[1]?.body).toBe('quick');
  });

  it('closeAll() closes idle keep-alive connections and those with a response in flight', async () => {
    const aborted = deferred();
    const entered = deferred();
    const { app, port } = await serve((a) => {
      a.get('/', (res) => res.end('ok'));
      a.get('/hang', (res) => {
        res.onAborted(() => aborted.resolve());
        entered.resolve();
      });
    });
    const idle = await connected(port);
    const idleClosed = closeOf(idle);
    idle.write('GET / HTTP/1.1\r\nhost: t\r\n\r\n');
    await within(replies(idle).next(1), 2000, 'response');
    const busy = await connected(port);
    const busyClosed = closeOf(busy);
    busy.write('GET /hang HTTP/1.1\r\nhost: t\r\n\r\n');
    await within(entered.promise, 1000, 'request in flight');
    expect(idle.destroyed || busy.destroyed).toBe(false);

    app.closeAll();
    // Far sooner than the 10 s keep-alive timeout.
    await within(Promise.all([idleClosed, busyClosed]), 1000, 'server close');
    await within(aborted.promise, 1000, 'onAborted for the response in flight');
  });
});
