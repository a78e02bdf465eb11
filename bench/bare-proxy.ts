// The baseline for every gateway benchmark: the thinnest correct pass-through proxy on the same
// stack as NemoRouter (uWebSockets.js + one undici Pool), with no features at all. Whatever
// NemoRouter costs beyond this proxy is the price of its features, not of the stack.
// GET /__stats reports its event-loop delay (the bench reads it like nemo's /metrics), its Node
// version and the HTTP server implementation it runs.
import { STATUS_CODES } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import type { HttpResponse } from '../src/http/server-api.js';
import { selectHttpServer } from '../src/http/server.js';

export interface BareProxyOptions {
  port: number;
  upstream: string;
  host?: string;
  /** Upstream connections (undici Pool size); the bench sets it to nemo's `upstream.connectionsPerOrigin`. */
  connections?: number;
}

export interface BareProxy {
  port: number;
  url: string;
  close(): Promise<void>;
}

const ROUTE = '/v1/chat/completions';
const MAX_BODY_BYTES = 4 * 1024 * 1024;
/**
 * The mock upstream's per-request switches (pacing, faults). NemoRouter sets them through its
 * deployments' `headers`; the bare proxy passes the client's on, so one mock serves every scenario.
 */
const MOCK_HEADERS = ['x-mock-ttft-ms', 'x-mock-tokens-per-second', 'x-mock-completion-tokens', 'x-mock-usage', 'x-mock-fault'] as const;
/** prom-client's default sampling interval, so the two proxies' readings compare like for like. */
const EVENT_LOOP_RESOLUTION_MS = 10;

// uWS wants the whole status line ("200 OK"); cache it so no string is built per response.
const statusLines = new Map<number, string>();
function statusLine(status: number): string {
  let line = statusLines.get(status);
  if (line === undefined) {
    line = `${status} ${STATUS_CODES[status] ?? ''}`;
    statusLines.set(status, line);
  }
  return line;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * One client request <-> one upstream request. Cork callbacks are bound once in the constructor so
 * that writing a chunk allocates no closure; the chunk waits in `pending` for the corked write.
 */
class Exchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private clientGone = false;
  private status = 502;
  private contentType: string | undefined;
  // With a known length the body is buffered and sent with one end() (content-length, no chunking);
  // without one (SSE, chunked) every upstream chunk is written through as it arrives.
  private streaming = false;
  private chunks: Buffer[] = [];
  private pending: Buffer | null = null;

  constructor(private readonly res: HttpResponse) {
    this.writeHead = this.writeHead.bind(this);
    this.writePending = this.writePending.bind(this);
    this.endBuffered = this.endBuffered.bind(this);
    this.endStream = this.endStream.bind(this);
    this.onWritable = this.onWritable.bind(this);
  }

  /** uWS invalidates `res` on abort; from then on only the upstream needs tearing down. */
  clientAborted(): void {
    this.clientGone = true;
    this.controller?.abort(new Error('client aborted'));
  }

  get aborted(): boolean {
    return this.clientGone;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.clientGone) controller.abort(new Error('client aborted'));
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.controller = controller;
    this.status = statusCode;
    this.contentType = headerValue(headers['content-type']);
    this.streaming = headers['content-length'] === undefined;
    if (this.streaming && !this.clientGone) {
      this.res.onWritable(this.onWritable);
      this.res.cork(this.writeHead);
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.clientGone) return;
    if (!this.streaming) {
      this.chunks.push(chunk);
      return;
    }
    this.pending = chunk;
    this.res.cork(this.writePending);
    // uWS buffered what the socket did not take; stop reading upstream until it drains.
    if (this.pending === null) return;
    this.pending = null;
    controller.pause();
  }

  onResponseEnd(): void {
    if (this.clientGone) return;
    this.res.cork(this.streaming ? this.endStream : this.endBuffered);
  }

  onResponseError(_controller: Dispatcher.DispatchController, _error: Error): void {
    if (this.clientGone) return;
    this.clientGone = true;
    // Headers already sent means the only honest signal left is cutting the connection.
    if (this.streaming) {
      this.res.close();
      return;
    }
    this.res.cork(() => {
      this.res.writeStatus(statusLine(502)).writeHeader('content-type', 'application/json');
      this.res.end('{"error":{"message":"upstream request failed","type":"upstream_error"}}');
    });
  }

  private writeHead(): void {
    this.res.writeStatus(statusLine(this.status));
    if (this.contentType !== undefined) this.res.writeHeader('content-type', this.contentType);
  }

  /** Leaves `pending` set when uWS reported backpressure, cleared otherwise. */
  private writePending(): void {
    if (this.pending !== null && this.res.write(this.pending)) this.pending = null;
  }

  private endBuffered(): void {
    this.writeHead();
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [];
    this.res.end(body);
  }

  private endStream(): void {
    this.res.end();
  }

  private onWritable(): boolean {
    this.controller?.resume();
    return true;
  }
}

function respondError(res: HttpResponse, status: number, message: string): void {
  res.cork(() => {
    res.writeStatus(statusLine(status)).writeHeader('content-type', 'application/json');
    res.end(JSON.stringify({ error: { message, type: 'invalid_request_error' } }));
  });
}

export async function startBareProxy(options: BareProxyOptions): Promise<BareProxy> {
  const host = options.host ?? '127.0.0.1';
  const upstream = new URL(options.upstream);
  if (upstream.pathname !== '/' && upstream.pathname !== '') {
    throw new Error(`--upstream must be an origin (paths pass through unchanged), got ${options.upstream}`);
  }
  const pool = new Pool(upstream.origin, {
    connections: options.connections ?? 256,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 600_000,
  });

  // The same server implementation NemoRouter would pick here, so the baseline is like for like.
  const { implementation } = httpServer();
  const app = implementation.createApp();
  app.post(ROUTE, (res, req) => {
    const contentType = req.getHeader('content-type') || 'application/json';
    const authorization = req.getHeader('authorization');
    const headers: Record<string, string> = { 'content-type': contentType };
    if (authorization !== '') headers.authorization = authorization;
    for (const name of MOCK_HEADERS) {
      const value = req.getHeader(name);
      if (value !== '') headers[name] = value;
    }

    const exchange = new Exchange(res);
    res.onAborted(() => exchange.clientAborted());

    const parts: Buffer[] = [];
    let size = 0;
    res.onData((chunk, isLast) => {
      if (exchange.aborted) return;
      // uWS neuters the ArrayBuffer after this callback returns, hence the copy.
      const part = Buffer.from(new Uint8Array(chunk));
      size += part.length;
      if (size > MAX_BODY_BYTES) {
        exchange.clientAborted();
        respondError(res, 413, 'request body too large');
        return;
      }
      parts.push(part);
      if (!isLast) return;
      const body = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      pool.dispatch({ method: 'POST', path: ROUTE, headers, body }, exchange);
    });
  });
  // Like prom-client's event-loop gauges: the delays since the last read, which resets them.
  const eventLoop = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  eventLoop.enable();
  app.get('/__stats', (res) => {
    const ms = (ns: number): number => Number((ns / 1e6).toFixed(3));
    const body = JSON.stringify({
      node: process.version,
      server: { implementation: implementation.name, build: implementation.build },
      eventLoopDelay: { resolutionMs: EVENT_LOOP_RESOLUTION_MS, p50Ms: ms(eventLoop.percentile(50)), p99Ms: ms(eventLoop.percentile(99)), maxMs: ms(eventLoop.max), count: eventLoop.count },
    });
    eventLoop.reset();
    res.cork(() => {
      res.writeStatus(statusLine(200)).writeHeader('content-type', 'application/json').end(body);
    });
  });
  app.any('/*', (res) => {
    respondError(res, 404, 'not found');
  });

  const port = await app.listen(host, options.port);
  return {
    port,
    url: `http://${host}:${port}`,
    async close() {
      eventLoop.disable();
      app.stopListening();
      app.closeAll();
      await pool.close();
    },
  };
}

function argValue(args: string[], name: string): string | undefined {
  const index = args.indexOf(name);
  return index === -1 ? undefined : args[index + 1];
}

/** As NemoRouter chooses it, from the same environment variables. */
function httpServer() {
  const implementation = process.env.NEMO_HTTP_SERVER === 'node' ? 'node' : process.env.NEMO_HTTP_SERVER === 'uws' ? 'uws' : 'auto';
  return selectHttpServer({ implementation, uwsBinary: process.env.NEMO_UWS_BINARY || undefined });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const port = Number(argValue(args, '--port') ?? '0');
  const upstream = argValue(args, '--upstream');
  const connections = Number(argValue(args, '--connections') ?? '256');
  if (!Number.isInteger(port) || port < 0 || upstream === undefined || !Number.isInteger(connections) || connections < 1) {
    throw new Error('usage: node dist/bench/bare-proxy.js --port N --upstream http://127.0.0.1:M [--connections N]');
  }
  // A baseline on Node's http module is not the uWS baseline: say so rather than report slow numbers.
  const { implementation } = httpServer();
  if (!implementation.native) process.stderr.write(`warning: no native uWebSockets.js build loads here; the bare proxy runs on ${implementation.build}\n`);
  const proxy = await startBareProxy({ port, upstream, connections });
  process.stdout.write(`bare proxy listening on ${proxy.url}\n`);
  const stop = (): void => {
    void proxy.close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
