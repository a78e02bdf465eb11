// The mock upstream as a real HTTP server (node:http), for tests and as the benchmarks' 'direct'
// target: the same generator as the in-process dispatcher, with per-request overrides through
// x-mock-* headers. Built to be cheap: precomputed bytes, one res.end when nothing is timed, no logs.
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MOCK_FAULTS, MOCK_REASONING_TEXT, mockBehaviourSchema, type MockBehaviour, type MockFault, type MockReasoningText } from '../../config/schema.js';
import type { MockStats } from './dispatcher.js';
import { TIMER_SLACK_MS, jsonResponse, mockErrorBody, type MockResponse } from './generate.js';
import { mockPlannerFor, type MockPlanner } from './routes.js';

export type { MockStats } from './dispatcher.js';

export interface MockUpstreamOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  host?: string;
  defaults?: Partial<MockBehaviour>;
}

export interface MockUpstream {
  port: number;
  url: string;
  stats(): MockStats;
  close(): Promise<void>;
}

const MODELS_BODY = JSON.stringify({ object: 'list', data: [{ id: 'mock', object: 'model', created: 0, owned_by: 'nemorouter-mock' }] });
const NOT_FOUND = jsonResponse(404, mockErrorBody('Unknown mock upstream route.', 'invalid_request_error', 'unknown_url'));
const NOT_ALLOWED = jsonResponse(405, mockErrorBody('Method not allowed.', 'invalid_request_error', 'method_not_allowed'));
const INVALID_JSON = jsonResponse(400, mockErrorBody('The request body must be a JSON object.', 'invalid_request_error', 'invalid_json'));

interface UpstreamState {
  readonly counters: MockStats;
  readonly active: Set<ServerExchange>;
}

export async function startMockUpstream(options: MockUpstreamOptions = {}): Promise<MockUpstream> {
  const defaults = Object.freeze(mockBehaviourSchema.parse(options.defaults ?? {}));
  const host = options.host ?? '127.0.0.1';
  const state: UpstreamState = { counters: { requests: 0, completed: 0, aborted: 0, inFlight: 0, lastAbortAtMs: 0 }, active: new Set() };
  const snapshot = (): MockStats => ({ ...state.counters });

  const server = createServer({ noDelay: true }, (req, res) => {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    const planner = mockPlannerFor(path);
    if (planner !== undefined) {
      if (req.method !== 'POST') return sendNow(req, res, NOT_ALLOWED);
      return void new ServerExchange(state, req, res, planner, behaviourFrom(req.headers, defaults));
    }
    if (path === '/_mock/stats' && req.method === 'GET') return sendNow(req, res, jsonResponse(200, JSON.stringify(snapshot())));
    if (path === '/_mock/reset' && req.method === 'POST') {
      Object.assign(state.counters, { requests: 0, completed: 0, aborted: 0, lastAbortAtMs: 0 });
      return sendNow(req, res, jsonResponse(200, JSON.stringify(snapshot())));
    }
    if (path.endsWith('/models') && req.method === 'GET') return sendNow(req, res, jsonResponse(200, MODELS_BODY));
    sendNow(req, res, NOT_FOUND);
  });
  // Longer than undici's 4 s and most clients' idle timeouts, so the client closes idle sockets first.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    port,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    stats: snapshot,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        for (const exchange of state.active) exchange.dispose();
        server.close((err) => (err ? reject(err) : resolve()));
        // Hanging and stalled fault requests would otherwise hold close() forever.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function sendNow(req: IncomingMessage, res: ServerResponse, response: MockResponse): void {
  req.resume();
  res.writeHead(response.status, response.headers);
  res.end(response.pieces[0]);
}

/** One chat-completions or embeddings request: reads the body, then plays the planned response on its timeline. */
class ServerExchange {
  private readonly chunks: Buffer[] = [];
  private response: MockResponse | undefined;
  private next = 0;
  private startedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  /** We dropped the connection on purpose (cut-mid-stream): not the client's doing. */
  private cutByUs = false;
  private closed = false;

  constructor(
    private readonly state: UpstreamState,
    req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly planner: MockPlanner,
    private readonly behaviour: MockBehaviour | string,
  ) {
    this.pump = this.pump.bind(this);
    this.cut = this.cut.bind(this);
    state.counters.requests += 1;
    state.counters.inFlight += 1;
    state.active.add(this);
    req.on('data', (chunk: Buffer) => this.chunks.push(chunk));
    req.on('end', () => this.start());
    res.on('close', () => this.onClose());
  }

  dispose(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private start(): void {
    if (this.closed) return;
    const response = this.plan();
    this.response = response;
    this.startedAt = performance.now();
    // 'hang' answers nothing: the client gives up and closes, which counts as aborted.
    if (response.ending === 'hang') return;
    if (response.firstDelayMs > 0) this.timer = setTimeout(this.pump, response.firstDelayMs);
    else this.pump();
  }

  private plan(): MockResponse {
    if (typeof this.behaviour === 'string') return jsonResponse(400, mockErrorBody(this.behaviour, 'invalid_request_error', 'invalid_mock_header'));
    const bytes = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    let body: unknown;
    try {
      body = JSON.parse(bytes.toString('utf8'));
    } catch {
      return INVALID_JSON;
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return INVALID_JSON;
    return this.planner(body as Record<string, unknown>, this.behaviour);
  }

  /** Writes every piece that is due; waits on a timer for the next one, or on 'drain' when the socket is full. */
  private pump(): void {
    this.timer = undefined;
    const response = this.response;
    if (this.closed || response === undefined) return;
    const res = this.res;
    const elapsed = performance.now() - this.startedAt;
    if (!res.headersSent) res.writeHead(response.status, response.headers);
    const pieces = response.pieces;
    while (this.next < pieces.length) {
      const dueMs = response.firstDelayMs + this.next * response.intervalMs;
      if (dueMs - elapsed > TIMER_SLACK_MS) {
        this.timer = setTimeout(this.pump, dueMs - elapsed);
        return;
      }
      const piece = pieces[this.next]!;
      this.next += 1;
      if (this.next === pieces.length) {
        if (response.ending === 'end') res.end(piece);
        // Cut only once the half actually left, so the client sees it before the connection drops.
        else if (response.ending === 'cut') res.write(piece, this.cut);
        else res.write(piece);
        return;
      }
      if (!res.write(piece)) {
        res.once('drain', this.pump);
        return;
      }
    }
    if (response.ending === 'end') res.end();
  }

  private cut(): void {
    this.cutByUs = true;
    this.res.socket?.destroy();
  }

  private onClose(): void {
    this.dispose();
    const counters = this.state.counters;
    this.state.active.delete(this);
    counters.inFlight -= 1;
    if (this.res.writableFinished) counters.completed += 1;
    else if (!this.cutByUs) {
      counters.aborted += 1;
      counters.lastAbortAtMs = performance.timeOrigin + performance.now();
    }
  }
}

const OVERRIDE_HEADERS = ['x-mock-ttft-ms', 'x-mock-tokens-per-second', 'x-mock-completion-tokens', 'x-mock-usage', 'x-mock-fault', 'x-mock-cached-prompt-tokens', 'x-mock-reasoning-tokens', 'x-mock-reasoning-text'] as const;

/** The server defaults with any x-mock-* header applied, or what is wrong with a header. */
export function behaviourFrom(headers: IncomingHttpHeaders, defaults: MockBehaviour): MockBehaviour | string {
  if (OVERRIDE_HEADERS.every((name) => headers[name] === undefined)) return defaults;
  const b: MockBehaviour = { ...defaults };
  const read = (name: (typeof OVERRIDE_HEADERS)[number]): string | undefined => {
    const value = headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  const ttft = read('x-mock-ttft-ms');
  if (ttft !== undefined) {
    const n = numberOf(ttft);
    if (!Number.isInteger(n) || n < 0) return `x-mock-ttft-ms must be a non-negative integer, got ${JSON.stringify(ttft)}`;
    b.ttftMs = n;
  }
  const tps = read('x-mock-tokens-per-second');
  if (tps !== undefined) {
    const n = numberOf(tps);
    if (!Number.isFinite(n) || n < 0) return `x-mock-tokens-per-second must be a non-negative number, got ${JSON.stringify(tps)}`;
    b.tokensPerSecond = n;
  }
  const tokens = read('x-mock-completion-tokens');
  if (tokens !== undefined) {
    const n = numberOf(tokens);
    if (!Number.isInteger(n) || n < 1) return `x-mock-completion-tokens must be a positive integer, got ${JSON.stringify(tokens)}`;
    b.completionTokens = n;
  }
  const usage = read('x-mock-usage');
  if (usage !== undefined) {
    if (usage !== 'on' && usage !== 'off') return `x-mock-usage must be on or off, got ${JSON.stringify(usage)}`;
    b.reportUsage = usage === 'on';
  }
  for (const [name, key] of [['x-mock-cached-prompt-tokens', 'cachedPromptTokens'], ['x-mock-reasoning-tokens', 'reasoningTokens']] as const) {
    const text = read(name);
    if (text === undefined) continue;
    const n = numberOf(text);
    if (!Number.isInteger(n) || n < 0) return `${name} must be a non-negative integer, got ${JSON.stringify(text)}`;
    b[key] = n;
  }
  const reasoningText = read('x-mock-reasoning-text');
  if (reasoningText !== undefined) {
    if (!(MOCK_REASONING_TEXT as readonly string[]).includes(reasoningText)) return `x-mock-reasoning-text must be one of ${MOCK_REASONING_TEXT.join(', ')}, got ${JSON.stringify(reasoningText)}`;
    b.reasoningText = reasoningText as MockReasoningText;
  }
  const fault = read('x-mock-fault');
  if (fault !== undefined) {
    if (!(MOCK_FAULTS as readonly string[]).includes(fault)) return `x-mock-fault must be one of ${MOCK_FAULTS.join(', ')}, got ${JSON.stringify(fault)}`;
    b.fault = fault as MockFault;
  }
  return b;
}

function numberOf(text: string): number {
  return text.trim() === '' ? NaN : Number(text);
}
