// The HTTP interface (server-api.ts) on Node's own http module, for a platform or Node version
// without a native uWebSockets.js build. Slower, but the same behaviour: streaming writes with
// backpressure, abort on disconnect, the routes' patterns and precedence, and a connection that
// sends something the parser refuses is closed without an answer, as uWS does.
import http from 'node:http';
import net, { type Socket } from 'node:net';
import type { Body, HttpApp, HttpRequest, HttpResponse, HttpServerImplementation, RouteHandler, RouteMethod } from './server-api.js';

export const nodeHttpImplementation: HttpServerImplementation = {
  name: 'node',
  build: `node:http (Node ${process.versions.node})`,
  native: false,
  createApp: () => new NodeApp(),
};

/**
 * A request head larger than this is refused. uWS takes up to 4 KiB of headers arriving in pieces
 * and far more in one packet; Node cannot tell the two apart, so 8 KiB, nginx's default.
 */
const MAX_HEADER_BYTES = 8 * 1024;
/** An idle or trickling connection is closed after this (uWS: about 10 s). */
const IDLE_TIMEOUT_MS = 10_000;
/** What a body or an answer must move per idle window not to count as stalled. */
const MIN_PROGRESS_BYTES = 16 * 1024;

interface Route {
  readonly method: RouteMethod;
  readonly segments: readonly Segment[];
  readonly wildcard: boolean;
  readonly handler: RouteHandler;
  /** Static segments before parameters before a wildcard; a method before `any`. */
  readonly rank: string;
}

type Segment = { readonly static: string } | { readonly param: true };

class NodeApp implements HttpApp {
  private readonly routes: Route[] = [];
  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();

  constructor() {
    // Headers must arrive within the idle bound, as with uWS (checked every second instead of Node's
    // default 30 s); a body too (dispatch). Node's requestTimeout is not used: it can cut a long
    // response too.
    this.server = http.createServer(
      { maxHeaderSize: MAX_HEADER_BYTES, headersTimeout: IDLE_TIMEOUT_MS, requestTimeout: 0, keepAliveTimeout: IDLE_TIMEOUT_MS, connectionsCheckingInterval: 1_000 },
      (req, res) => this.dispatch(req, res),
    );
    // Refused framing, an oversized head, a malformed request: closed without an answer.
    this.server.on('clientError', (_err, socket) => socket.destroy());
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.setNoDelay(true);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  get(pattern: string, handler: RouteHandler): this {
    return this.add('get', pattern, handler);
  }

  post(pattern: string, handler: RouteHandler): this {
    return this.add('post', pattern, handler);
  }

  patch(pattern: string, handler: RouteHandler): this {
    return this.add('patch', pattern, handler);
  }

  put(pattern: string, handler: RouteHandler): this {
    return this.add('put', pattern, handler);
  }

  del(pattern: string, handler: RouteHandler): this {
    return this.add('del', pattern, handler);
  }

  any(pattern: string, handler: RouteHandler): this {
    return this.add('any', pattern, handler);
  }

  listen(host: string, port: number, options: { readonly reusePort?: boolean } = {}): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(new Error(`cannot listen on ${host}:${port}: ${err.message}`));
      this.server.once('error', onError);
      // reusePort needs Node >= 22.12; older versions ignore it, and a port in use stays refused.
      this.server.listen({ host, port, exclusive: true, reusePort: options.reusePort === true } as net.ListenOptions, () => {
        this.server.off('error', onError);
        resolve((this.server.address() as { port: number }).port);
      });
    });
  }

  /** Like uWS: open keep-alive connections stay (http.Server.close would close the idle ones). */
  stopListening(): void {
    net.Server.prototype.close.call(this.server);
  }

  closeAll(): void {
    this.server.close();
    for (const socket of this.sockets) socket.destroy();
  }

  private add(method: RouteMethod, pattern: string, handler: RouteHandler): this {
    const parts = pattern.split('/').slice(1);
    const wildcard = parts[parts.length - 1] === '*';
    if (wildcard) parts.pop();
    const segments: Segment[] = parts.map((p) => (p.startsWith(':') ? { param: true } : { static: p }));
    const rank = segments.map((s) => ('static' in s ? '0' : '1')).join('') + (wildcard ? '2' : '') + (method === 'any' ? '~' : '');
    this.routes.push({ method, segments, wildcard, handler, rank });
    // Most specific first; a stable sort keeps registration order among equals.
    this.routes.sort((a, b) => (a.rank < b.rank ? -1 : a.rank > b.rank ? 1 : 0));
    return this;
  }

  private dispatch(req: http.IncomingMessage, res: http.ServerResponse): void {
    // A body trickled (or never sent) past the idle bound cuts the connection, as uWS does.
    // Only a request with a body: `complete` is not set for a body nobody reads on every Node version.
    if (hasBody(req)) {
      const bodyWatch = cutWhenStalled(req.socket, () => req.socket.bytesRead, () => req.complete);
      req.once('end', () => clearTimeout(bodyWatch));
      res.once('close', () => clearTimeout(bodyWatch));
    }
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const path = q === -1 ? target : target.slice(0, q);
    const query = q === -1 ? '' : target.slice(q + 1);
    const method = (req.method ?? 'GET').toLowerCase();
    const routeMethod = method === 'delete' ? 'del' : method;
    const parts = path.split('/').slice(1);
    for (const route of this.routes) {
      if (route.method !== 'any' && route.method !== routeMethod) continue;
      const params = matchRoute(route, parts);
      if (params === undefined) continue;
      const response = new NodeResponse(req, res);
      route.handler(response, new NodeRequest(req, method, path, query, params));
      return;
    }
    res.writeHead(404).end();
  }
}

/**
 * Cuts `socket` once `progress` (bytes moved) has not kept a rate of MIN_PROGRESS_BYTES per idle
 * window for a whole window before `done`: a body or an answer trickled, or not moving at all. A
 * steady slow transfer goes on, as with uWS's idle timeout. Sampled four times a window.
 */
function cutWhenStalled(socket: Socket, progress: () => number, done: () => boolean): NodeJS.Timeout {
  const sampleMs = IDLE_TIMEOUT_MS / 4;
  let last = progress();
  let activeAt = performance.now();
  const timer = setTimeout(() => {
    if (done() || socket.destroyed) return;
    const now = progress();
    if (now - last >= MIN_PROGRESS_BYTES / 4) activeAt = performance.now();
    last = now;
    if (performance.now() - activeAt >= IDLE_TIMEOUT_MS) return void socket.destroy();
    timer.refresh();
  }, sampleMs);
  return timer;
}

/** HTTP/1.1 framing: a body comes with Transfer-Encoding or a non-zero Content-Length. */
function hasBody(req: http.IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function matchRoute(route: Route, parts: readonly string[]): string[] | undefined {
  const { segments } = route;
  // A trailing /* needs a segment after its prefix: /w/* answers /w/ and /w/x, not /w (as uWS).
  if (route.wildcard ? parts.length <= segments.length : parts.length !== segments.length) return undefined;
  const params: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    const part = parts[i]!;
    if ('static' in segment) {
      if (segment.static !== part) return undefined;
    } else {
      if (part === '') return undefined;
      params.push(part);
    }
  }
  return params;
}

class NodeRequest implements HttpRequest {
  constructor(
    private readonly req: http.IncomingMessage,
    private readonly method: string,
    private readonly path: string,
    private readonly query: string,
    private readonly params: readonly string[],
  ) {}

  getHeader(lowerCaseName: string): string {
    const raw = this.req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === lowerCaseName) return raw[i + 1]!;
    return '';
  }

  getMethod(): string {
    return this.method;
  }

  getUrl(): string {
    return this.path;
  }

  getQuery(): string {
    return this.query;
  }

  getParameter(index: number): string | undefined {
    return this.params[index];
  }

  forEach(visit: (name: string, value: string) => void): void {
    const raw = this.req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) visit(raw[i]!.toLowerCase(), raw[i + 1]!);
  }
}

const EMPTY = new ArrayBuffer(0);
const CONNECTION_CLOSE = /(?:^|\W)close(?:$|\W)/i;

class NodeResponse implements HttpResponse {
  private statusCode = 200;
  private statusMessage: string | undefined;
  private readonly headers: Array<[string, string]> = [];
  private headSent = false;
  private done = false;
  private aborted = false;
  private abortHandler: (() => void) | undefined;
  private writableHandler: ((offset: number) => boolean) | undefined;
  private drainListening = false;
  private bytesWritten = 0;

  constructor(
    private readonly req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
  ) {
    // The socket's close, not only the response's: a pipelined request's response waits behind
    // the one before it, and Node tells only that one when the client goes.
    const socket = req.socket;
    const onClose = (): void => {
      socket.off('close', onClose);
      if (this.done || this.aborted) return;
      this.aborted = true;
      this.abortHandler?.();
    };
    res.once('close', onClose);
    socket.once('close', onClose);
    res.once('finish', () => socket.off('close', onClose));
  }

  cork(write: () => void): this {
    if (this.aborted) return this;
    // The socket's cork, not the response's: on Node 22, res.cork() makes a write report room
    // whatever the socket holds (no backpressure) and an end() send its last chunk after the
    // terminating one. Corking the socket batches the same writes into one syscall.
    const socket = this.req.socket;
    socket.cork();
    try {
      write();
    } finally {
      socket.uncork();
    }
    return this;
  }

  writeStatus(status: string): this {
    const space = status.indexOf(' ');
    this.statusCode = Number(space === -1 ? status : status.slice(0, space));
    this.statusMessage = space === -1 ? undefined : status.slice(space + 1);
    return this;
  }

  writeHeader(name: string, value: string): this {
    this.headers.push([name, value]);
    return this;
  }

  write(chunk: Body): boolean {
    if (this.aborted || this.done) return true;
    this.sendHead(undefined);
    this.bytesWritten += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
    return this.res.write(chunk);
  }

  end(body?: Body, closeConnection = false): this {
    if (this.aborted || this.done) return this;
    this.done = true;
    if (closeConnection) {
      this.headers.push(['connection', 'close']);
      // Once the head is out, the header cannot say it: close the socket after the last byte.
      if (this.headSent) this.res.once('finish', () => this.req.socket.end());
    }
    this.sendHead(this.headSent ? undefined : body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);
    if (!closeConnection && !this.req.complete && this.saysClose()) {
      // Told `connection: close` while its body still arrives: Node would close the socket once the
      // answer is out, under a client still writing (EPIPE, the answer lost). uWS reads and discards
      // the rest of the body; so does this: the answer goes now, the response finishes (and the
      // socket closes) when the body ended. dispatch's body watch still cuts a client that stalls.
      if (body !== undefined) this.res.write(body);
      this.req.once('end', () => this.res.end());
      this.req.resume();
      return this;
    }
    if (body === undefined) this.res.end();
    else this.res.end(body);
    // A client that stops reading a complete answer must not hold it (and the socket) forever.
    if (!this.res.writableFinished) {
      const socket = this.req.socket;
      const flushWatch = cutWhenStalled(socket, () => socket.bytesWritten, () => this.res.writableFinished);
      this.res.once('finish', () => clearTimeout(flushWatch));
      this.res.once('close', () => clearTimeout(flushWatch));
    }
    return this;
  }

  onAborted(handler: () => void): this {
    this.abortHandler = handler;
    return this;
  }

  onData(handler: (chunk: ArrayBuffer, isLast: boolean) => void): this {
    // Until the response ended (uWS's contract); the rest of the body is drained, not copied.
    this.req.on('data', (chunk: Buffer) => {
      if (!this.aborted && !this.done) handler(chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength) as ArrayBuffer, false);
    });
    this.req.once('end', () => {
      if (!this.aborted && !this.done) handler(EMPTY, true);
    });
    return this;
  }

  onWritable(handler: (offset: number) => boolean): this {
    this.writableHandler = handler;
    if (!this.drainListening) {
      this.drainListening = true;
      this.res.on('drain', this.onDrain);
    }
    // The buffer may have drained already (Node 24 can flush on uncork, before this is called).
    if (!this.res.writableNeedDrain) queueMicrotask(this.onDrain);
    return this;
  }

  close(): this {
    if (this.aborted) return this;
    this.res.destroy();
    return this;
  }

  private readonly onDrain = (): void => {
    const handler = this.writableHandler;
    if (handler !== undefined && !this.aborted && handler(this.bytesWritten)) this.writableHandler = undefined;
  };

  /** A `connection: close` header among those written (Node's own test for it). */
  private saysClose(): boolean {
    return this.headers.some(([name, value]) => name.toLowerCase() === 'connection' && CONNECTION_CLOSE.test(value));
  }

  /** The status line and headers, once; `contentLength` for a body that is sent whole. */
  private sendHead(contentLength: number | undefined): void {
    if (this.headSent) return;
    this.headSent = true;
    const res = this.res;
    res.statusCode = this.statusCode;
    if (this.statusMessage !== undefined) res.statusMessage = this.statusMessage;
    for (const [name, value] of this.headers) res.appendHeader(name, value);
    if (contentLength !== undefined) res.setHeader('content-length', contentLength);
  }
}
