// The HTTP application: the server implementation (a native uWebSockets.js build, else Node's
// http module), the route table, listen, and graceful shutdown (stop accepting, let in-flight
// requests finish until a deadline, then cut them with a typed error).
import type { Config } from '../config/load.js';
import { GatewayError } from '../errors/gateway-error.js';
import { log } from '../log.js';
import type { DeploymentRouter } from '../providers/router.js';
import type { UpstreamPools } from '../providers/upstream-pools.js';
import type { Ledger } from '../ledger/ledger.js';
import type { GuardrailEventLog } from '../guardrails/event-log.js';
import type { RateLimiter } from '../tenancy/rate-limiter.js';
import type { WorkerPool } from '../workers/pool.js';
import type { AdminService } from '../tenancy/admin-service.js';
import type { RequestAuthenticator } from './authenticate.js';
import type { ChatExchange, InflightTracker } from './chat/exchange.js';
import { redactFromErrors } from './error-response.js';
import { sendError } from './respond.js';
import { requestIdFrom } from './request-id.js';
import { chatCompletionsRoute } from './routes/chat-completions.js';
import { anthropicMessagesDialect } from './dialects/anthropic-messages.js';
import { openAiCompletionsDialect } from './dialects/openai-completions.js';
import { responsesDialect } from './dialects/openai-responses.js';
import { countTokensRoute } from './routes/count-tokens.js';
import { embeddingsRoute } from './routes/embeddings.js';
import { healthRoute, readyRoute, type ReadinessCheck } from './routes/health.js';
import { metricsRoute } from './routes/metrics.js';
import { modelsRoute } from './routes/models.js';
import { cancelResponseRoute, deleteResponseRoute, listInputItemsRoute, retrieveResponseRoute } from './routes/responses.js';
import { uiRoute } from './routes/ui.js';
import { registerAdminRoutes } from './routes/admin.js';
import { registerExportRoutes, type ExportOptions } from './routes/exports.js';
import type { Database } from '../db/database.js';
import type { RequestLogWriter } from '../logs/request-log.js';
import { nodeHttpImplementation } from './node-server.js';
import { ROUTE_METHODS, type HttpApp, type HttpRequest, type HttpResponse, type HttpServerImplementation, type RouteHandler, type RouteTable } from './server-api.js';
import { loadUws, uwsImplementation } from './uws-server.js';

export interface HttpServerDeps {
  readonly config: Config;
  readonly router: DeploymentRouter;
  readonly pools: UpstreamPools;
  readonly auth: RequestAuthenticator;
  readonly admin: AdminService;
  readonly ledger: Ledger;
  readonly limiter: RateLimiter;
  readonly workers: WorkerPool;
  readonly guardrailEvents: GuardrailEventLog;
  readonly db: Database;
  readonly requestLog: RequestLogWriter;
  readonly exports?: Partial<ExportOptions>;
  readonly readinessChecks?: readonly ReadinessCheck[];
  /** Chosen by selectHttpServer from config.server when not given. */
  readonly implementation?: HttpServerImplementation;
}

/** The address could not be had (in use, not this host's): the message says all. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
}

export interface SelectedHttpServer {
  readonly implementation: HttpServerImplementation;
  /** Native builds that did not load here, and why. */
  readonly skipped: readonly string[];
}

/**
 * `auto`: the first native uWebSockets.js build that loads, else Node's http module; `uws`: a
 * native build or an error; `node`: Node's http module.
 */
export function selectHttpServer(server: Pick<Config['server'], 'implementation' | 'uwsBinary'>): SelectedHttpServer {
  if (server.implementation === 'node') return { implementation: nodeHttpImplementation, skipped: [] };
  const { loaded, skipped } = loadUws(server.uwsBinary);
  if (loaded !== undefined) return { implementation: uwsImplementation(loaded), skipped };
  if (server.implementation === 'uws') {
    throw new Error(`server.implementation is "uws" but no uWebSockets.js build loads on ${process.platform}-${process.arch}, Node ${process.versions.node}: ${skipped.join('; ')}`);
  }
  return { implementation: nodeHttpImplementation, skipped };
}

export interface HttpServer {
  readonly port: number;
  readonly implementation: HttpServerImplementation;
  /**
   * Answers new requests (but the probes) with 503 and /readyz with 503 for drainDelayMs (at most
   * graceMs), then stops accepting, waits for in-flight requests until graceMs after the call, and
   * cuts the rest.
   */
  shutdown(graceMs: number, drainDelayMs?: number): Promise<void>;
}

class Inflight implements InflightTracker {
  readonly exchanges = new Set<ChatExchange>();
  private onEmpty: (() => void) | undefined;

  add(exchange: ChatExchange): void {
    this.exchanges.add(exchange);
  }

  delete(exchange: ChatExchange): void {
    this.exchanges.delete(exchange);
    if (this.exchanges.size === 0) this.onEmpty?.();
  }

  drained(): Promise<void> {
    if (this.exchanges.size === 0) return Promise.resolve();
    return new Promise((resolve) => (this.onEmpty = resolve));
  }
}

export async function startHttpServer(deps: HttpServerDeps): Promise<HttpServer> {
  redactFromErrors([deps.config.masterKey, ...[...deps.config.models.values()].flatMap((route) => route.deployments.map((d) => d.apiKey))]);
  const inflight = new Inflight();
  let draining = false;
  const isDraining = () => draining;
  const implementation = deps.implementation ?? selectHttpServer(deps.config.server).implementation;
  const app = implementation.createApp();
  // Every route goes through the framing guard, and while draining through the drain answer but
  // for the probes (health, readiness, metrics); listen and close stay on the app itself.
  const routes = wrapping(app, refusingAmbiguousFraming);
  const refusingWhileDraining = (handler: RouteHandler): RouteHandler => (res, req) => {
    if (!draining) return handler(res, req);
    sendError(res, new GatewayError('NR_SHUTTING_DOWN'), requestIdFrom(req.getHeader('x-request-id')), true);
  };
  // The probes answer as usual; chat answers the drain itself, counted in its request metrics.
  const ownDrainAnswer = new Set(['/healthz', '/readyz', '/metrics', '/v1/chat/completions', '/chat/completions', '/v1/messages', '/v1/completions', '/completions', '/v1/embeddings', '/embeddings', '/v1/responses']);

  const chatDeps = { ...deps, inflight, isDraining };
  const chat = chatCompletionsRoute(chatDeps);
  const messages = chatCompletionsRoute(chatDeps, anthropicMessagesDialect);
  const completions = chatCompletionsRoute(chatDeps, openAiCompletionsDialect);
  const embeddings = embeddingsRoute(chatDeps);
  const responses = chatCompletionsRoute(chatDeps, responsesDialect(deps));
  const models = modelsRoute(deps.config, deps.auth);
  const ui = uiRoute();
  const table: Array<[path: string, method: 'get' | 'post', handler: (res: HttpResponse, req: HttpRequest) => void]> = [
    ['/v1/chat/completions', 'post', chat],
    ['/chat/completions', 'post', chat],
    ['/v1/messages', 'post', messages],
    ['/v1/messages/count_tokens', 'post', countTokensRoute(deps)],
    ['/v1/completions', 'post', completions],
    ['/completions', 'post', completions],
    ['/v1/embeddings', 'post', embeddings],
    ['/embeddings', 'post', embeddings],
    ['/v1/responses', 'post', responses],
    ['/v1/models', 'get', models],
    ['/ui', 'get', ui],
    ['/ui/*', 'get', ui],
    ['/models', 'get', models],
    ['/healthz', 'get', healthRoute()],
    ['/readyz', 'get', readyRoute(deps.readinessChecks ?? [], isDraining)],
    ['/metrics', 'get', metricsRoute(deps.config.metricsToken)],
  ];
  for (const [path, method, handler] of table) {
    routes[method](path, ownDrainAnswer.has(path) ? handler : refusingWhileDraining(handler));
    routes.any(path, methodNotAllowed([method]));
  }
  // One path, two methods: outside the one-method table.
  routes.get('/v1/responses/:id', refusingWhileDraining(retrieveResponseRoute(deps)));
  routes.del('/v1/responses/:id', refusingWhileDraining(deleteResponseRoute(deps)));
  routes.any('/v1/responses/:id', methodNotAllowed(['get', 'delete']));
  routes.get('/v1/responses/:id/input_items', refusingWhileDraining(listInputItemsRoute(deps)));
  routes.any('/v1/responses/:id/input_items', methodNotAllowed(['get']));
  routes.post('/v1/responses/:id/cancel', refusingWhileDraining(cancelResponseRoute(deps)));
  routes.any('/v1/responses/:id/cancel', methodNotAllowed(['post']));
  const drainingRoutes = wrapping(routes, refusingWhileDraining);
  for (const [path, methods] of registerAdminRoutes(drainingRoutes, deps)) routes.any(path, methodNotAllowed(methods));
  for (const [path, methods] of registerExportRoutes(drainingRoutes, deps)) routes.any(path, methodNotAllowed(methods));
  routes.any('/*', (res, req) => {
    sendError(res, new GatewayError('NR_ROUTE_NOT_FOUND', `Unknown request URL: ${req.getMethod().toUpperCase()} ${req.getUrl().slice(0, 256)}`), requestIdFrom(req.getHeader('x-request-id')));
  });

  const { host, port, reusePort } = deps.config.server;
  let boundPort: number;
  try {
    boundPort = await app.listen(host, port, { reusePort });
  } catch (err) {
    app.closeAll();
    const hint = reusePort ? '' : '; to run several gateways on one port on purpose, set server.reusePort (NEMO_REUSE_PORT=1) on each';
    throw new ListenError(`${(err as Error).message}${hint}`);
  }

  return {
    port: boundPort,
    implementation,
    async shutdown(graceMs: number, drainDelayMs = deps.config.server.drainDelayMs): Promise<void> {
      if (draining) return;
      draining = true;
      log.info('draining', { inflight: inflight.exchanges.size, graceMs, drainDelayMs });
      // The grace counts from the signal, the way supervisors count before they kill.
      const deadlineAt = performance.now() + graceMs;
      // Load balancers see /readyz answer 503 before the listener goes away.
      if (drainDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(drainDelayMs, graceMs)));
      app.stopListening();
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'deadline'>((resolve) => (timer = setTimeout(() => resolve('deadline'), Math.max(0, deadlineAt - performance.now()))));
      const outcome = await Promise.race([inflight.drained().then(() => 'drained' as const), deadline]);
      clearTimeout(timer);
      if (outcome === 'deadline') {
        log.warn('shutdown deadline passed, cutting in-flight requests', { inflight: inflight.exchanges.size });
        for (const exchange of [...inflight.exchanges]) exchange.cutForShutdown();
      }
      app.closeAll();
    },
  };
}

function methodNotAllowed(allowed: readonly string[]) {
  const allow = allowed.map((m) => m.toUpperCase()).join(', ');
  return (res: HttpResponse, req: HttpRequest): void => {
    const err = new GatewayError('NR_METHOD_NOT_ALLOWED', `Method ${req.getMethod().toUpperCase()} is not allowed here; use ${allow}.`);
    const requestId = requestIdFrom(req.getHeader('x-request-id'));
    sendError(res, err, requestId, true, { allow });
  };
}

const DIGITS = /^[0-9]+$/;
let contentLengths = 0;
let transferEncodings = 0;

/** req.forEach callback (module-level: no closure per request). */
function countFramingHeaders(name: string): void {
  if (name === 'content-length') contentLengths++;
  else if (name === 'transfer-encoding') transferEncodings++;
}

/**
 * Request framing two HTTP parsers could read differently (request smuggling): uWS frames a body by
 * the first of several Content-Length headers and treats any Transfer-Encoding that mentions chunked
 * as chunked, where a proxy in front may take the last length or another coding. So: at most one
 * Content-Length (digits only) or one `Transfer-Encoding: chunked`, never both. Anything else is
 * answered by closing the connection at once, as uWS itself answers Content-Length with
 * Transfer-Encoding: a response would let uWS go on to run whatever it already parsed behind it.
 */
function hasAmbiguousFraming(req: HttpRequest): boolean {
  const contentLength = req.getHeader('content-length');
  const transferEncoding = req.getHeader('transfer-encoding');
  if (contentLength === '' && transferEncoding === '') return false;
  contentLengths = 0;
  transferEncodings = 0;
  req.forEach(countFramingHeaders);
  if (contentLengths + transferEncodings > 1) return true;
  if (contentLengths === 1 && !DIGITS.test(contentLength)) return true;
  return transferEncodings === 1 && transferEncoding.toLowerCase() !== 'chunked';
}

/** A route table registering into `target` with every handler wrapped by `wrap`. */
function wrapping(target: RouteTable, wrap: (handler: RouteHandler) => RouteHandler): RouteTable {
  const table = {} as Record<keyof RouteTable, (pattern: string, handler: RouteHandler) => RouteTable>;
  for (const method of ROUTE_METHODS) {
    table[method] = (pattern, handler) => {
      target[method](pattern, wrap(handler));
      return table;
    };
  }
  return table;
}

/** Every handler checks the framing first. */
function refusingAmbiguousFraming(handler: RouteHandler): RouteHandler {
  return (res, req) => {
    if (hasAmbiguousFraming(req)) {
      res.close();
      return;
    }
    handler(res, req);
  };
}
