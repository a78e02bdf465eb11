// The upstream stage of a chat request: picks a deployment, runs one attempt at a time
// (upstream-attempt.ts), and falls back to the next deployment on a retryable failure while
// nothing has reached the client. It reports outcomes only; once stopped it reports nothing.
import type { Config, Deployment, ModelRoute } from '../../config/load.js';
import { GatewayError, invalidRequest, toGatewayError } from '../../errors/gateway-error.js';
import { countAttempt, upstreamFallbacksTotal } from '../../metrics/registry.js';
import { adapterFor } from '../../providers/registry.js';
import type { DeploymentRouter } from '../../providers/router.js';
import type { ChatRequest, FrameSink, TranslateContext, UpstreamRequest, Usage } from '../../providers/types.js';
import type { AttemptFailure } from '../../providers/upstream-errors.js';
import type { UpstreamPools } from '../../providers/upstream-pools.js';
import { UpstreamAttempt, type AttemptOwner, type AttemptSpec } from '../upstream-attempt.js';

export type Frame = string | Uint8Array;

/** Where the upstream call reports; never called for a stale attempt or after stop(). */
export interface UpstreamListener {
  /** The translated frames of one upstream read (the array is reused: read it during the call). */
  onFrames(attempt: UpstreamAttempt, frames: Frame[]): void;
  onCompletion(attempt: UpstreamAttempt, body: string | Uint8Array, usage: Usage | undefined, completion?: unknown): void;
  /** The stream completed; `lastFrames` were translated at its very end. */
  onStreamEnd(attempt: UpstreamAttempt, usage: Usage | undefined, lastFrames: Frame[]): void;
  /** No deployment can answer: the last failure, or why none was tried. */
  onFailed(error: GatewayError): void;
}

export interface UpstreamDeps {
  readonly config: Pick<Config, 'upstream'>;
  readonly router: DeploymentRouter;
  readonly pools: UpstreamPools;
}

/** What the admission stage decided the upstream may be sent. */
export interface UpstreamPlan {
  readonly request: ChatRequest;
  readonly route: ModelRoute;
  readonly maxTokens: number;
  readonly promptBoundTokens: number;
  readonly ctx: TranslateContext;
}

export class UpstreamCall implements AttemptOwner {
  private readonly frames: Frame[] = [];
  private readonly spec: AttemptSpec;
  private attempt: UpstreamAttempt | undefined;
  private tried: Set<Deployment> | undefined;
  private attemptCount = 0;
  private committed = false;
  private stopped = false;
  /** Time spent waiting on upstream before the answer's head went out. */
  private waitedMs = 0;

  constructor(
    private readonly deps: UpstreamDeps,
    private readonly plan: UpstreamPlan,
    private readonly listener: UpstreamListener,
  ) {
    const frames = this.frames;
    const sink: FrameSink = { push: (frame) => void frames.push(frame) };
    this.spec = { request: plan.request, maxTokens: plan.maxTokens, promptBoundTokens: plan.promptBoundTokens, ctx: plan.ctx, sink, upstream: deps.config.upstream };
  }

  get attempts(): number {
    return this.attemptCount;
  }

  /** The deployment of the latest attempt, if any was made. */
  get lastDeployment(): Deployment | undefined {
    return this.attempt?.deployment;
  }

  get upstreamWaitMs(): number {
    return this.waitedMs;
  }

  start(): void {
    this.tryNextDeployment();
  }

  /** Output from `attempt` is about to reach the client: no fallback from here on. */
  commit(attempt: UpstreamAttempt): void {
    if (this.committed) return;
    this.committed = true;
    this.waitedMs += attempt.elapsedMs();
  }

  pause(): void {
    this.attempt?.pause();
  }

  resume(): void {
    this.attempt?.resume();
  }

  /** Nothing more is reported; `reason`, when given, aborts the running attempt with it. */
  stop(reason?: Error): void {
    this.stopped = true;
    if (reason !== undefined) this.attempt?.abort(reason);
  }

  onAttemptFailed(attempt: UpstreamAttempt, failure: AttemptFailure, outcome: string): void {
    if (attempt !== this.attempt) return;
    const elapsedMs = attempt.elapsedMs();
    this.waitedMs += elapsedMs;
    countAttempt(attempt.deployment.provider, outcome, elapsedMs / 1000);
    if (failure.coolDown) this.deps.router.markFailed(attempt.deployment);
    if (this.stopped) return;
    const route = this.plan.route;
    const canRetry = failure.retryable && !this.committed && this.attemptCount < this.deps.config.upstream.maxAttempts;
    if (canRetry && route.deployments.length > 1) {
      (this.tried ??= new Set()).add(attempt.deployment);
      if (this.tried.size < route.deployments.length) {
        upstreamFallbacksTotal.inc({ provider: attempt.deployment.provider, cause: outcome });
        return this.tryNextDeployment();
      }
    }
    this.listener.onFailed(failure.error);
  }

  onCompletion(attempt: UpstreamAttempt, body: string | Uint8Array, usage: Usage | undefined, completion?: unknown): void {
    if (attempt !== this.attempt || this.stopped) return;
    this.commit(attempt);
    this.succeeded(attempt);
    this.listener.onCompletion(attempt, body, usage, completion);
  }

  flushFrames(attempt: UpstreamAttempt): void {
    if (attempt === this.attempt && !this.stopped) this.listener.onFrames(attempt, this.frames);
    this.frames.length = 0;
  }

  onStreamEnd(attempt: UpstreamAttempt, usage: Usage | undefined): void {
    if (attempt !== this.attempt || this.stopped) return;
    this.succeeded(attempt);
    this.listener.onStreamEnd(attempt, usage, this.frames);
    this.frames.length = 0;
  }

  private succeeded(attempt: UpstreamAttempt): void {
    countAttempt(attempt.deployment.provider, 'ok', attempt.elapsedMs() / 1000);
    this.deps.router.markHealthy(attempt.deployment);
  }

  private tryNextDeployment(): void {
    const deployment = this.deps.router.pick(this.plan.route, this.tried);
    if (deployment === undefined) return this.listener.onFailed(new GatewayError('NR_UPSTREAM_UNAVAILABLE'));
    this.attemptCount++;
    const adapter = adapterFor(deployment);
    let built: UpstreamRequest;
    try {
      built = adapter.buildRequest(this.plan.request, deployment, this.plan.maxTokens);
    } catch (err) {
      // JSON.stringify overflows the stack on pathologically nested pass-through fields.
      return this.listener.onFailed(err instanceof RangeError ? invalidRequest('The request nests JSON too deeply.') : toGatewayError(err));
    }
    this.attempt = new UpstreamAttempt(this, deployment, adapter, this.spec);
    this.attempt.start(built, this.deps.pools.dispatcherFor(deployment));
  }
}
