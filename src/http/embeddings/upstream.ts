// The upstream stage of an embeddings request: one deployment at a time among those whose provider
// has an embeddings API, the answer buffered whole (it is never streamed), and chat's fallback rules:
// a retryable failure tries the next deployment, up to upstream.maxAttempts, each at most once.
// Nothing reaches the client before an answer is complete, so every failure before one may fall back.
import type { Dispatcher } from 'undici';
import type { Config, Deployment, ModelRoute } from '../../config/load.js';
import { GatewayError, invalidRequest, toGatewayError } from '../../errors/gateway-error.js';
import { countAttempt, upstreamFallbacksTotal } from '../../metrics/registry.js';
import { adapterFor } from '../../providers/registry.js';
import type { DeploymentRouter } from '../../providers/router.js';
import type { EmbeddingsApi, EmbeddingsRequest, UpstreamRequest } from '../../providers/types.js';
import { failureFromStatus, failureFromTransport, type AttemptFailure } from '../../providers/upstream-errors.js';
import type { UpstreamPools } from '../../providers/upstream-pools.js';
import { ClientGoneError, dispatchBody, outcomeOf } from '../upstream-attempt.js';

const MAX_ERROR_BODY_BYTES = 64 * 1024;

export interface EmbeddingsUpstreamDeps {
  readonly config: Pick<Config, 'upstream'>;
  readonly router: DeploymentRouter;
  readonly pools: UpstreamPools;
}

/** Where the call reports, once, unless stopped first. */
export interface EmbeddingsListener {
  /** A complete 2xx answer: its bytes as the upstream sent them, and the prompt tokens it reported. */
  onAnswer(deployment: Deployment, body: Buffer, promptTokens: number | undefined): void;
  /** No deployment can answer: the last failure, or why none was tried. */
  onFailed(error: GatewayError): void;
}

/** The route's deployments whose provider has no embeddings API: never tried. */
export function withoutEmbeddings(route: ModelRoute): Set<Deployment> {
  return new Set(route.deployments.filter((d) => adapterFor(d).embeddings === undefined));
}

export class EmbeddingsCall {
  private attempt: EmbeddingsAttempt | undefined;
  /** Deployments not to pick: tried, or without an embeddings API. */
  private readonly skipped: Set<Deployment>;
  private attemptCount = 0;
  private stopped = false;
  /** Time spent waiting on upstream. */
  private waitedMs = 0;

  constructor(
    private readonly deps: EmbeddingsUpstreamDeps,
    private readonly route: ModelRoute,
    private readonly request: EmbeddingsRequest,
    private readonly listener: EmbeddingsListener,
  ) {
    this.skipped = withoutEmbeddings(route);
  }

  get attempts(): number {
    return this.attemptCount;
  }

  get lastDeployment(): Deployment | undefined {
    return this.attempt?.deployment;
  }

  get upstreamWaitMs(): number {
    return this.waitedMs;
  }

  start(): void {
    this.tryNextDeployment();
  }

  /** Nothing more is reported; `reason`, when given, aborts the running attempt with it. */
  stop(reason?: Error): void {
    this.stopped = true;
    if (reason !== undefined) this.attempt?.abort(reason);
  }

  onAttemptFailed(attempt: EmbeddingsAttempt, failure: AttemptFailure): void {
    const outcome = outcomeOf(failure);
    const elapsedMs = attempt.elapsedMs();
    this.waitedMs += elapsedMs;
    countAttempt(attempt.deployment.provider, outcome, elapsedMs / 1000);
    if (failure.coolDown) this.deps.router.markFailed(attempt.deployment);
    if (this.stopped) return;
    this.skipped.add(attempt.deployment);
    if (failure.retryable && this.attemptCount < this.deps.config.upstream.maxAttempts && this.skipped.size < this.route.deployments.length) {
      upstreamFallbacksTotal.inc({ provider: attempt.deployment.provider, cause: outcome });
      return this.tryNextDeployment();
    }
    this.listener.onFailed(failure.error);
  }

  onAttemptAnswered(attempt: EmbeddingsAttempt, body: Buffer, promptTokens: number | undefined): void {
    const elapsedMs = attempt.elapsedMs();
    this.waitedMs += elapsedMs;
    countAttempt(attempt.deployment.provider, 'ok', elapsedMs / 1000);
    this.deps.router.markHealthy(attempt.deployment);
    if (!this.stopped) this.listener.onAnswer(attempt.deployment, body, promptTokens);
  }

  private tryNextDeployment(): void {
    const deployment = this.deps.router.pick(this.route, this.skipped);
    if (deployment === undefined) return this.listener.onFailed(new GatewayError('NR_UPSTREAM_UNAVAILABLE'));
    this.attemptCount++;
    const api = adapterFor(deployment).embeddings!;
    let built: UpstreamRequest;
    try {
      built = api.buildRequest(this.request, deployment);
    } catch (err) {
      // JSON.stringify overflows the stack on pathologically nested pass-through fields.
      return this.listener.onFailed(err instanceof RangeError ? invalidRequest('The request nests JSON too deeply.') : toGatewayError(err));
    }
    this.attempt = new EmbeddingsAttempt(this, deployment, api, this.deps.config.upstream);
    this.attempt.start(built, this.deps.pools.dispatcherFor(deployment));
  }
}

/** One try against one deployment: an undici dispatch handler (controller API) that buffers the answer. */
class EmbeddingsAttempt implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private pendingAbort: Error | undefined;
  private startedAt = 0;
  private statusCode = 0;
  private retryAfter: string | undefined;
  private chunks: Buffer[] = [];
  private bytes = 0;
  private done = false;

  constructor(
    private readonly owner: EmbeddingsCall,
    readonly deployment: Deployment,
    private readonly api: EmbeddingsApi,
    private readonly upstream: Config['upstream'],
  ) {}

  start(built: UpstreamRequest, dispatcher: Pick<Dispatcher, 'dispatch'>): void {
    this.startedAt = performance.now();
    try {
      dispatcher.dispatch(
        { method: 'POST', path: built.path, headers: built.headers, body: dispatchBody(built.body), headersTimeout: this.upstream.headersTimeoutMs, bodyTimeout: this.upstream.bodyTimeoutMs },
        this,
      );
    } catch (err) {
      this.done = true;
      this.owner.onAttemptFailed(this, failureFromTransport(err));
    }
  }

  elapsedMs(): number {
    return performance.now() - this.startedAt;
  }

  abort(reason: Error): void {
    if (this.done) return;
    if (this.controller) this.controller.abort(reason);
    else this.pendingAbort = reason;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.pendingAbort) controller.abort(this.pendingAbort);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    this.statusCode = statusCode;
    if (statusCode === 429) {
      const value = headers['retry-after'];
      this.retryAfter = Array.isArray(value) ? value[0] : value;
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.done) return;
    const ok = this.statusCode >= 200 && this.statusCode < 300;
    const limit = ok ? this.upstream.maxResponseBytes : MAX_ERROR_BODY_BYTES;
    if (this.bytes + chunk.length > limit) {
      if (!ok) return; // keep the head of an error body, drop the rest
      this.done = true;
      const failure = failureFromTransport(new GatewayError('NR_UPSTREAM_BAD_RESPONSE', 'The upstream response is too large.'));
      controller.abort(failure.error);
      return this.owner.onAttemptFailed(this, failure);
    }
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  onResponseEnd(): void {
    if (this.done) return;
    this.done = true;
    const raw = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.bytes);
    this.chunks = [];
    if (this.statusCode < 200 || this.statusCode >= 300) {
      return this.owner.onAttemptFailed(this, failureFromStatus(this.statusCode, raw.toString('utf8'), this.retryAfter));
    }
    let promptTokens: number | undefined;
    try {
      promptTokens = this.api.readPromptTokens(raw.toString('utf8'));
    } catch (err) {
      return this.owner.onAttemptFailed(this, failureFromTransport(err));
    }
    this.owner.onAttemptAnswered(this, raw, promptTokens);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.done) return;
    this.done = true;
    if (err instanceof ClientGoneError) return;
    this.owner.onAttemptFailed(this, failureFromTransport(err));
  }
}
