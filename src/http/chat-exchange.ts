// One chat-completions request from body to last byte: authentication, validation, rate limits,
// the credit hold, deployment choice, upstream attempts (upstream-attempt.ts) with fallback until
// the first byte reaches the client, then streaming with backpressure (upstream paused while the
// client is not reading), abort propagation, and settlement of the hold exactly once.
import { isUtf8 } from 'node:buffer';
import type { Config, Deployment, ModelRoute } from '../config/load.js';
import { asDatabaseError } from '../db/database.js';
import { GatewayError, toGatewayError } from '../errors/gateway-error.js';
import type { Hold, Ledger, Refusal } from '../ledger/ledger.js';
import { affordableOutputTokens, boundingPrices, costMicros, pricesOf } from '../ledger/pricing.js';
import { log } from '../log.js';
import { countAttempt, countRequest, gatewayOverheadSeconds, liveCounts, streamChunkGapSeconds, timeToFirstTokenSeconds, tokensTotal, observeDuration, rateLimitedTotal, statusClass, upstreamFallbacksTotal, countOrgRequest } from '../metrics/registry.js';
import { adapterFor } from '../providers/registry.js';
import type { DeploymentRouter } from '../providers/router.js';
import type { ChatRequest, FrameSink, TranslateContext, Usage } from '../providers/types.js';
import type { AttemptFailure } from '../providers/upstream-errors.js';
import type { UpstreamPools } from '../providers/upstream-pools.js';
import { mayUseModel, type KeyPrincipal, type Principal } from '../tenancy/principal.js';
import { rateLimitHeaders, type RateLimiter } from '../tenancy/rate-limiter.js';
import type { AuthOutcome } from './authenticate.js';
import { sseErrorFrame } from './error-response.js';
import { JSON_TYPE, logServerFault, sendError } from './respond.js';
import { ClientGoneError, UpstreamAttempt, type AttemptOwner } from './upstream-attempt.js';
import type { HttpResponse } from './uws.js';
import { requestedMaxTokens, validateChatRequest } from './validate-chat-request.js';
import type { GuardrailEventLog } from '../guardrails/event-log.js';
import type { Finding } from '../guardrails/types.js';
import { guardrailOutcome, type LogStatusClass, type RequestLogWriter } from '../logs/request-log.js';
import { checkPrompt } from '../guardrails/prompt-check.js';
import { StreamOutputGuard } from '../guardrails/stream-output.js';
import type { Encoding } from '../config/model-encodings.js';
import type { WorkerPool } from '../workers/pool.js';
import { compiledPolicy } from '../guardrails/compiled-policy.js';
import { generatedTexts } from '../guardrails/completion-texts.js';
import { guardrailError, refusalToError } from './refusal-errors.js';

export interface ChatDeps {
  readonly config: Config;
  readonly ledger: Ledger;
  readonly limiter: RateLimiter;
  readonly router: DeploymentRouter;
  readonly pools: UpstreamPools;
  readonly inflight: InflightTracker;
  readonly workers: WorkerPool;
  readonly guardrailEvents: GuardrailEventLog;
  readonly requestLog: RequestLogWriter;
}

/** Counts requests in flight so shutdown can wait for them, and cuts the stragglers at the deadline. */
export interface InflightTracker {
  add(exchange: ChatExchange): void;
  delete(exchange: ChatExchange): void;
}

export class ChatExchange implements AttemptOwner {
  private clientGone = false;
  private finished = false;
  private headersSent = false;
  private request!: ChatRequest;
  private route!: ModelRoute;
  private maxTokens = 0;
  private ctx!: TranslateContext;
  private tried: Set<Deployment> | undefined;
  private attempt: UpstreamAttempt | undefined;
  private attempts = 0;
  /** Time spent waiting on upstream before the response headers went out. */
  private upstreamMs = 0;
  private stalledTimer: NodeJS.Timeout | undefined;
  private paused = false;
  private streamOpen = false;
  private modelLabel = 'unknown';
  /** For the request log: the error answered, guardrail findings, time to first output, the charge. */
  private errorCode: string | null = null;
  private readonly findings: Finding[] = [];
  private ttftMs: number | null = null;
  private chargedMicros: number | null = null;
  private status = 200;
  /** Filled by the stream translator, drained once per upstream chunk. */
  readonly frames: Array<string | Uint8Array> = [];
  readonly sink: FrameSink = { push: (frame) => void this.frames.push(frame) };
  usage: Usage | undefined;
  /** The credits held for this request, settled or released exactly once in finish(). */
  private hold: Hold | undefined;
  private promptBoundTokens = 0;
  /** x-ratelimit-* headers for a key or team with limits. */
  private limitHeaders: Record<string, string> | undefined;
  /** When output last went to the client (0: not yet): time to first token, gaps between chunks. */
  private lastWriteAt = 0;
  /** Output guardrails of a stream (keys with output rules only). */
  private outputGuard: StreamOutputGuard | undefined;
  private outputEventsRecorded = false;
  /** What this request counted in the local per-minute windows, to give back if the ledger refuses it. */
  private localAdmission: { readonly tokens: number; readonly atMs: number } | undefined;
  /** Output reached the client (a stream started, or a complete answer), from this deployment. */
  private servedBy: UpstreamAttempt | undefined;
  /** The answer as sent, and the request body as received, kept only for orgs logging `full`. */
  private answerBody: string | undefined;
  private requestText: string | undefined;
  /** Set once the API key is verified; the body waits for it. */
  private principal: KeyPrincipal | undefined;
  private authPending = false;
  private heldBody: Buffer | undefined;

  constructor(
    private readonly deps: ChatDeps,
    readonly res: HttpResponse,
    readonly requestId: string,
    private readonly startedAt: number,
  ) {
    deps.inflight.add(this);
    liveCounts.inflightRequests++;
  }

  onClientAborted(): void {
    this.clientGone = true;
    this.attempt?.abort(new ClientGoneError());
    this.finish();
  }

  /** The caller, or a pending key lookup; the body is held (copied) until it resolves. */
  setCaller(outcome: AuthOutcome): void {
    if (outcome instanceof Promise) {
      this.authPending = true;
      outcome.then(
        (principal) => this.onCaller(principal),
        (err: unknown) => this.fail(toGatewayError(asDatabaseError(err)), true),
      );
      return;
    }
    this.onCaller(outcome);
  }

  private onCaller(principal: Principal | GatewayError): void {
    this.authPending = false;
    if (this.finished) return;
    if (principal instanceof GatewayError) return this.fail(principal, true);
    if (principal.kind === 'platform') {
      return this.fail(new GatewayError('NR_FORBIDDEN', 'The platform master key is for the admin API; call /v1 with an org API key.'), true);
    }
    this.principal = principal;
    const held = this.heldBody;
    if (held !== undefined) {
      this.heldBody = undefined;
      this.onBody(held);
    }
  }

  /** The body arrived; `body` is only valid during this call. */
  onBody(body: Buffer): void {
    if (this.principal === undefined) {
      if (this.authPending && !this.finished) this.heldBody = Buffer.from(body);
      return;
    }
    try {
      if (!isUtf8(body)) throw new GatewayError('NR_INVALID_UTF8');
      let parsed: unknown;
      const text = body.toString('utf8');
      // Kept only for an org logging bodies; a redaction replaces it (loggedBodies).
      if (this.principal.loggingLevel === 'full') this.requestText = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new GatewayError('NR_INVALID_JSON');
      }
      this.request = validateChatRequest(parsed);
      const route = this.deps.config.models.get(this.request.model);
      if (route === undefined) {
        throw new GatewayError('NR_MODEL_NOT_FOUND', `The model ${JSON.stringify(this.request.model.slice(0, 256))} does not exist.`, { param: 'model' });
      }
      if (!mayUseModel(this.principal, route.name)) {
        throw new GatewayError('NR_MODEL_NOT_ALLOWED', `This API key may not use the model ${JSON.stringify(route.name)}.`, { param: 'model' });
      }
      this.route = route;
      this.modelLabel = route.name;
      const asked = requestedMaxTokens(this.request);
      if (asked !== undefined && asked > route.maxOutputTokens) {
        const param = this.request.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
        throw new GatewayError('NR_INVALID_REQUEST', `\`${param}\` is too large: ${route.name} allows at most ${route.maxOutputTokens} output tokens.`, { param });
      }
      this.ctx = {
        requestId: this.requestId,
        publicModel: route.name,
        created: Math.floor(Date.now() / 1000),
        clientWantsUsage: this.request.stream === true && this.request.stream_options?.include_usage === true,
      };
      this.guardThenReserve(body.byteLength, asked);
    } catch (err) {
      this.fail(toGatewayError(err));
    }
  }

  /** Counts the request against its key's and team's per-minute limits; answers 429 when one is spent. */
  private admitWithinLimits(tokens: number): boolean {
    const limits = this.principal!.limits;
    if (limits.length === 0) return true;
    const admittedAtMs = Date.now();
    const admission = this.deps.limiter.admit(limits, tokens);
    this.limitHeaders = rateLimitHeaders(admission.state);
    if (admission.ok) {
      this.localAdmission = { tokens, atMs: admittedAtMs };
      return true;
    }
    rateLimitedTotal.inc();
    this.fail(new GatewayError('NR_RATE_LIMITED', undefined, { retryAfterS: admission.retryAfterS, headers: this.limitHeaders }));
    return false;
  }

  /**
   * The key's guardrails on the prompt, before anything is held: a block answers 400 and costs
   * nothing; redactions change the request (and so its bound) before it is sent anywhere.
   */
  private guardThenReserve(bodyBytes: number, asked: number | undefined): void {
    const guard = this.principal!.guardrails;
    if (guard?.invalid) return this.fail(new GatewayError('NR_GUARDRAIL_POLICY_INVALID'));
    if (guard === undefined || (!guard.scansInput && guard.maxInputTokens === null)) return this.reserveThenStart(bodyBytes, asked);
    const bound = bodyBytes + this.imageTokens();
    checkPrompt(this.deps.workers, guard, this.request, bound, routeEncoding(this.route)).then(
      (verdict) => {
        if (this.finished) return;
        if (verdict.findings.length > 0) this.recordFindings('input', verdict.findings);
        if (verdict.blocked !== undefined) return this.fail(guardrailError(verdict.blocked, 'input'));
        if (verdict.redacted) this.requestText = undefined;
        this.reserveThenStart(verdict.redacted ? Buffer.byteLength(JSON.stringify(this.request)) : bodyBytes, asked);
      },
      (err: unknown) => {
        // Fail closed: a prompt the guardrails could not check is not sent.
        log.warn('guardrails: prompt check failed', { requestId: this.requestId, error: (err as Error).message });
        this.fail(err instanceof GatewayError ? err : new GatewayError('NR_OVERLOADED', undefined, { cause: err }));
      },
    );
  }

  /** Guardrail findings: recorded as events, and kept for the request log's outcome. */
  private recordFindings(stage: 'input' | 'output', findings: readonly Finding[]): void {
    for (const finding of findings) this.findings.push(finding);
    this.deps.guardrailEvents.record(this.eventContext(), stage, findings);
  }

  private eventContext() {
    return { orgId: this.principal!.orgId, keyId: this.principal!.keyId, requestId: this.requestId };
  }

  /**
   * Holds an upper bound of the cost before any upstream call: the prompt's bound (its UTF-8
   * bytes: no byte-level BPE token is shorter than a byte, plus an allowance per image) and the
   * output bound, at the dearest deployment's prices. The output bound sent upstream is exactly
   * what was held for, so the actual cost can never exceed the hold. The same database call
   * checks the key's and team's spend caps and shared rate limits.
   */
  private reserveThenStart(bodyBytes: number, asked: number | undefined): void {
    const ledgerConfig = this.deps.config.ledger;
    const prices = boundingPrices(this.route);
    this.promptBoundTokens = bodyBytes + this.imageTokens();
    const maxOutput = asked ?? this.route.maxOutputTokens;
    const boundTokens = this.promptBoundTokens + (asked ?? Math.min(ledgerConfig.minOutputTokens, maxOutput));
    if (!this.admitWithinLimits(boundTokens)) return;
    const principal = this.principal!;
    const amount = costMicros(prices, this.promptBoundTokens, maxOutput);
    if (amount === 0) {
      // A free model: nothing to hold, but a limited key still counts against the shared limits.
      this.maxTokens = maxOutput;
      if (principal.limits.length === 0) return this.tryNextDeployment();
      this.deps.ledger.admit(principal.orgId, principal.keyId, this.requestId, boundTokens).then(
        (refusal) => {
          if (this.finished) return;
          if (refusal !== null) return this.fail(this.refusalError(refusal, asked, maxOutput));
          this.tryNextDeployment();
        },
        (err: unknown) => this.fail(toGatewayError(asDatabaseError(err))),
      );
      return;
    }
    const minAmount = asked !== undefined ? amount : costMicros(prices, this.promptBoundTokens, Math.min(ledgerConfig.minOutputTokens, maxOutput));
    this.deps.ledger.reserve(principal.orgId, principal.keyId, this.requestId, amount, minAmount, boundTokens, this.route.name).then(
      (hold) => {
        if (this.finished) {
          // The client left while the hold was being granted.
          this.giveBackLocalAdmission();
          if (typeof hold !== 'string') void this.deps.ledger.release(hold).catch(logSettlementError);
          return;
        }
        if (typeof hold === 'string') return this.fail(this.refusalError(hold, asked, maxOutput));
        this.hold = hold;
        this.maxTokens = asked ?? affordableOutputTokens(prices, hold.amountMicros, this.promptBoundTokens, this.route.maxOutputTokens);
        this.tryNextDeployment();
      },
      (err: unknown) => {
        this.giveBackLocalAdmission();
        this.fail(toGatewayError(asDatabaseError(err)));
      },
    );
  }

  /** Not served: the request does not count against this instance's per-minute windows either. */
  private giveBackLocalAdmission(): void {
    const admitted = this.localAdmission;
    this.localAdmission = undefined;
    if (admitted !== undefined) this.deps.limiter.giveBack(this.principal!.limits, admitted.tokens, admitted.atMs);
  }

  /** The answer for a request the database refused: 402 for money (credits or a cap), 429 for a shared rate limit. */
  private refusalError(refusal: Refusal, asked: number | undefined, maxOutput: number): GatewayError {
    this.giveBackLocalAdmission();
    return refusalToError(refusal, {
      routeName: this.route.name,
      need: asked !== undefined ? `\`max_tokens\` ${asked}` : `at least ${Math.min(this.deps.config.ledger.minOutputTokens, maxOutput)} output tokens`,
      limitHeaders: this.limitHeaders,
      nowMs: Date.now(),
    });
  }

  /** Answers with an error: a JSON error before the first byte, a final SSE event after it. */
  fail(err: GatewayError, closeConnection = false): void {
    if (this.finished) return;
    if (this.clientGone) return this.finish();
    this.status = err.status;
    this.errorCode = err.code;
    if (this.headersSent) {
      logServerFault(err, this.requestId);
      this.res.cork(() => {
        this.res.write(sseErrorFrame(err));
        this.res.end();
      });
    } else {
      sendError(this.res, err, this.requestId, closeConnection);
    }
    this.finish();
  }

  private tryNextDeployment(): void {
    const deployment = this.deps.router.pick(this.route, this.tried);
    if (deployment === undefined) {
      this.fail(new GatewayError('NR_UPSTREAM_UNAVAILABLE'));
      return;
    }
    this.attempts++;
    const guard = this.principal!.guardrails;
    // A fresh scanner per attempt: a failed attempt's held text never reached the client.
    if (guard?.scansOutput && this.request.stream === true) this.outputGuard = new StreamOutputGuard(compiledPolicy(guard.policyKey, guard.policy));
    this.attempt = new UpstreamAttempt(this, deployment, adapterFor(deployment));
    this.attempt.start(this.request, this.maxTokens, this.deps.pools.dispatcherFor(deployment), this.deps.config.upstream, this.promptBoundTokens);
  }

  get isFinished(): boolean {
    return this.finished;
  }

  get translateContext(): TranslateContext {
    return this.ctx;
  }

  get isStream(): boolean {
    return this.request.stream === true;
  }

  get maxResponseBytes(): number {
    return this.deps.config.upstream.maxResponseBytes;
  }

  /** An attempt failed: retry on another deployment while nothing reached the client. */
  onAttemptFailed(attempt: UpstreamAttempt, failure: AttemptFailure, outcome: string): void {
    if (attempt !== this.attempt) return;
    const elapsedMs = attempt.elapsedMs();
    this.upstreamMs += elapsedMs;
    countAttempt(attempt.deployment.provider, outcome, elapsedMs / 1000);
    if (failure.coolDown) this.deps.router.markFailed(attempt.deployment);
    if (this.clientGone || this.finished) return this.finish();
    const canRetry = failure.retryable && !this.headersSent && this.attempts < this.deps.config.upstream.maxAttempts;
    if (canRetry && this.route.deployments.length > 1) {
      (this.tried ??= new Set()).add(attempt.deployment);
      if (this.tried.size < this.route.deployments.length) {
        upstreamFallbacksTotal.inc({ provider: attempt.deployment.provider, cause: outcome });
        return this.tryNextDeployment();
      }
    }
    this.fail(failure.error);
  }

  /** A complete non-stream answer. */
  onCompletion(attempt: UpstreamAttempt, body: string | Uint8Array, usage: Usage | undefined): void {
    if (attempt !== this.attempt || this.finished) return;
    this.upstreamMs += attempt.elapsedMs();
    this.settleAttempt(attempt, usage);
    this.servedBy = attempt;
    if (this.clientGone) return this.finish();
    const guard = this.principal!.guardrails;
    if (guard?.scansOutput) return this.guardCompletion(guard, body);
    this.sendCompletion(body);
  }

  private sendCompletion(body: string | Uint8Array): void {
    if (this.principal?.loggingLevel === 'full') this.answerBody = typeof body === 'string' ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
    this.res.cork(() => {
      this.writeHead('application/json');
      this.res.end(body);
    });
    this.finish();
  }

  /** Output guardrails on a complete answer: every choice's text is scanned (large ones in the pool). */
  private guardCompletion(guard: NonNullable<KeyPrincipal['guardrails']>, body: string | Uint8Array): void {
    let completion: unknown;
    try {
      completion = JSON.parse(typeof body === 'string' ? body : Buffer.from(body).toString('utf8'));
    } catch {
      return this.fail(new GatewayError('NR_UPSTREAM_BAD_RESPONSE'));
    }
    const texts = generatedTexts(completion);
    // Started from a promise: an inline scan that threw would otherwise leave the exchange unfinished.
    Promise.resolve().then(() => Promise.all(texts.map((t) => this.deps.workers.scan({ policyKey: guard.policyKey, policy: guard.policy, text: t.text, stage: 'output' })))).then(
      (results) => {
        if (this.finished) return;
        const findings = results.flatMap((r) => r.findings);
        if (findings.length > 0) this.recordFindings('output', findings);
        const blocked = results.find((r) => r.blocked !== undefined)?.blocked;
        if (blocked !== undefined) return this.fail(guardrailError(blocked, 'output'));
        let redacted = false;
        results.forEach((r, i) => {
          if (r.redacted !== undefined) {
            texts[i]!.write(r.redacted);
            redacted = true;
          }
        });
        this.sendCompletion(redacted ? JSON.stringify(completion) : body);
      },
      (err: unknown) => {
        // Fail closed: an answer the guardrails could not check is not sent (its tokens are still charged).
        log.warn('guardrails: answer check failed', { requestId: this.requestId, error: (err as Error).message });
        this.fail(new GatewayError('NR_OVERLOADED', undefined, { cause: err }));
      },
    );
  }

  /** Writes the frames the translator produced for one upstream chunk; pauses upstream on backpressure. */
  flushFrames(attempt: UpstreamAttempt): void {
    if (attempt !== this.attempt || this.finished || this.clientGone) {
      this.frames.length = 0;
      return;
    }
    const guard = this.outputGuard;
    if (guard !== undefined && !guard.transform(this.frames)) {
      // What was safe before the match goes out; then the typed error, and upstream is stopped.
      this.servedBy = attempt;
      this.recordFindings('output', guard.findings());
      this.outputEventsRecorded = true;
      if (this.frames.length > 0) this.writeFrames(attempt);
      attempt.abort(new ClientGoneError());
      if (guard.blocked !== undefined) return this.fail(guardrailError(guard.blocked, 'output'));
      return this.fail(new GatewayError('NR_UPSTREAM_BAD_RESPONSE', 'The upstream provider sent a stream chunk the guardrails could not read.'));
    }
    if (this.frames.length === 0) return;
    this.writeFrames(attempt);
  }

  private writeFrames(attempt: UpstreamAttempt): void {
    let writable = true;
    const now = performance.now();
    if (this.lastWriteAt === 0) {
      this.ttftMs = now - this.startedAt;
      timeToFirstTokenSeconds.observe({ model: this.modelLabel }, this.ttftMs / 1000);
    }
    else streamChunkGapSeconds.observe((now - this.lastWriteAt) / 1000);
    this.lastWriteAt = now;
    this.res.cork(() => {
      if (!this.headersSent) {
        this.upstreamMs += attempt.elapsedMs();
        this.servedBy = attempt;
        this.writeHead('text/event-stream');
        this.streamOpen = true;
        liveCounts.activeStreams++;
      }
      for (let i = 0; i < this.frames.length; i++) writable = this.res.write(this.frames[i]!);
    });
    this.frames.length = 0;
    if (!writable && !this.paused) this.pauseForClient(attempt);
  }

  /** Upstream completed the stream. */
  onStreamEnd(attempt: UpstreamAttempt, usage: Usage | undefined): void {
    if (attempt !== this.attempt || this.finished) return;
    this.settleAttempt(attempt, usage);
    if (this.clientGone) return this.finish();
    this.flushFrames(attempt);
    this.res.cork(() => {
      if (!this.headersSent) this.writeHead('text/event-stream');
      this.res.end();
    });
    this.finish();
  }

  private settleAttempt(attempt: UpstreamAttempt, usage: Usage | undefined): void {
    this.usage = usage;
    countAttempt(attempt.deployment.provider, 'ok', attempt.elapsedMs() / 1000);
    this.deps.router.markHealthy(attempt.deployment);
  }

  private writeHead(contentType: string): void {
    this.headersSent = true;
    const overheadMs = performance.now() - this.startedAt - this.upstreamMs;
    gatewayOverheadSeconds.observe(overheadMs / 1000);
    this.res
      .writeStatus('200 OK')
      .writeHeader('content-type', contentType)
      .writeHeader('x-request-id', this.requestId)
      .writeHeader('x-nemo-overhead-ms', overheadMs.toFixed(3))
      .writeHeader('x-nemo-attempts', String(this.attempts));
    if (contentType !== JSON_TYPE) this.res.writeHeader('cache-control', 'no-cache');
    if (this.limitHeaders) for (const name in this.limitHeaders) this.res.writeHeader(name, this.limitHeaders[name]!);
  }

  private pauseForClient(attempt: UpstreamAttempt): void {
    this.paused = true;
    attempt.pause();
    this.res.onWritable(() => {
      if (this.paused) {
        this.paused = false;
        clearTimeout(this.stalledTimer);
        this.stalledTimer = undefined;
        this.attempt?.resume();
      }
      return true;
    });
    // A client that stops reading altogether is cut off; upstream is aborted by onAborted.
    this.stalledTimer = setTimeout(() => {
      if (this.paused && !this.finished) this.res.close();
    }, this.deps.config.server.stalledClientTimeoutMs);
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.stalledTimer);
    if (this.hold !== undefined) this.settleHold(this.hold);
    if (this.outputGuard !== undefined && !this.outputEventsRecorded) {
      const findings = this.outputGuard.findings();
      if (findings.length > 0) this.recordFindings('output', findings);
    }
    if (this.streamOpen) liveCounts.activeStreams--;
    liveCounts.inflightRequests--;
    countRequest('chat_completions', this.modelLabel, this.clientGone ? 'client_closed' : statusClass(this.status));
    observeDuration('chat_completions', (performance.now() - this.startedAt) / 1000);
    if (this.principal !== undefined) countOrgRequest(this.principal.orgId);
    this.logRequest();
    this.deps.inflight.delete(this);
  }

  /** One row in nemo.request_log_entries per request of a known org, written off the request path. */
  private logRequest(): void {
    const principal = this.principal;
    if (principal === undefined || principal.loggingLevel === 'none' || !this.deps.config.logs.enabled) return;
    const guardrails = guardrailOutcome(this.findings);
    this.deps.requestLog.record({
      requestId: this.requestId,
      orgId: principal.orgId,
      teamId: principal.teamId,
      keyId: principal.keyId,
      model: this.modelLabel === 'unknown' ? null : this.modelLabel,
      deployment: (this.servedBy ?? this.attempt)?.deployment.id ?? null,
      status: this.clientGone ? 499 : this.status,
      statusClass: this.clientGone ? 'client_closed' : (statusClass(this.status) as LogStatusClass),
      errorCode: this.errorCode,
      stream: this.request?.stream === true,
      promptTokens: this.usage?.prompt_tokens ?? null,
      completionTokens: this.usage?.completion_tokens ?? null,
      // null while an exact count of a stream without usage is still running.
      costMicros: this.chargedMicros,
      latencyMs: performance.now() - this.startedAt,
      ttftMs: this.ttftMs,
      guardrailAction: guardrails.action,
      guardrailRules: guardrails.rules,
      retentionDays: principal.logRetentionDays,
      ...(principal.loggingLevel === 'full' ? this.loggedBodies() : undefined),
    });
  }

  /**
   * Bodies for an org logging `full`: the request as the client sent it (as redacted, when input
   * guardrails redacted it), and the answer as the client got it, or a stream's generated text. A
   * stream whose output guardrails acted is logged without its text: the raw text is what they
   * kept from the client. The writer cuts both to logs.maxBodyChars.
   */
  private loggedBodies(): { requestBody: string | null; responseBody: string | null } {
    const requestBody = this.requestText ?? (this.request === undefined ? null : JSON.stringify(this.request));
    let responseBody = this.answerBody ?? null;
    const outputUntouched = this.outputGuard === undefined || this.outputGuard.findings().every((f) => f.action === 'flag');
    if (responseBody === null && this.request?.stream === true && outputUntouched) responseBody = this.servedBy?.completionText() ?? null;
    return { requestBody, responseBody };
  }

  /**
   * Exactly once per request: charge what was produced, or release everything when nothing was.
   * Usage reported by upstream counts (the database caps the charge at the hold); without it
   * (a disconnect, a cut stream, a provider without usage) the estimate is the prompt's bound and
   * one token per content chunk streamed, or for a complete answer its bytes.
   */
  private settleHold(hold: Hold): void {
    this.hold = undefined;
    const served = this.servedBy;
    if (served === undefined) {
      this.chargedMicros = 0;
      void this.deps.ledger.release(hold).catch(logSettlementError);
      return;
    }
    const prices = pricesOf(served.deployment);
    const usage = this.usage;
    if (usage !== undefined) {
      this.countTokens(usage.prompt_tokens, usage.completion_tokens);
      const charge = costMicros(prices, usage.prompt_tokens, usage.completion_tokens);
      this.chargedMicros = Math.min(charge, hold.amountMicros);
      void this.deps.ledger.settle(hold, this.chargedMicros).catch(logSettlementError);
      return;
    }
    const estimate = costMicros(prices, this.promptBoundTokens, Math.min(this.maxTokens, served.outputEstimate));
    const text = served.completionText();
    if (text === undefined) {
      this.chargedMicros = Math.min(estimate, hold.amountMicros);
      void this.deps.ledger.settle(hold, this.chargedMicros).catch(logSettlementError);
      return;
    }
    // A stream without usage (a disconnect, a cut stream, a provider without usage): count what it
    // generated, exactly with the deployment's tokenizer, else by its UTF-8 bytes (never fewer).
    const charge = this.countUsage(served.deployment.encoding, text).then(
      ([prompt, completion]) => {
        this.countTokens(prompt, Math.min(this.maxTokens, completion));
        return Math.min(costMicros(prices, prompt, Math.min(this.maxTokens, completion)), hold.amountMicros);
      },
      (err: unknown) => {
        log.warn('ledger: exact count failed; charging the estimate', { requestId: this.requestId, error: (err as Error).message });
        return Math.min(estimate, hold.amountMicros);
      },
    );
    this.deps.ledger.settleWhenCounted(hold, charge);
  }

  /** The prompt tokens held for images (their URLs' bytes say nothing of their size): one allowance each. */
  private imageTokens(): number {
    return countImageParts(this.request) * this.deps.config.ledger.imageTokenAllowance;
  }

  private countTokens(prompt: number, completion: number): void {
    tokensTotal.inc({ model: this.modelLabel, direction: 'input' }, prompt);
    tokensTotal.inc({ model: this.modelLabel, direction: 'output' }, completion);
  }

  private async countUsage(encoding: Encoding | undefined, completionText: string): Promise<[number, number]> {
    const workers = this.deps.workers;
    const request = this.request;
    // Images count at the allowance the hold used: the tokenizer sees only text.
    const images = this.imageTokens();
    const prompt = encoding === undefined
      ? this.promptBoundTokens
      : Promise.resolve(workers.countTokens({ kind: 'chat', messages: request.messages, tools: request.tools, toolChoice: request.tool_choice, encoding })).then((n) => n + images);
    const completion = workers.countTokens({ kind: 'text', text: completionText, encoding });
    return Promise.all([prompt, completion]);
  }

  /** Shutdown deadline passed: end what is still running with a typed error. */
  cutForShutdown(): void {
    this.attempt?.abort(new GatewayError('NR_SHUTTING_DOWN'));
    this.fail(new GatewayError('NR_SHUTTING_DOWN'));
  }
}

/** The settle/release promise only rejects on a programming error: the writer retries database failures. */
function logSettlementError(err: unknown): void {
  log.error('ledger: settlement failed', { error: (err as Error).message });
}


/** The tokenizer every deployment of a route shares; undefined when they differ or one has none (the bound counts). */
function routeEncoding(route: ModelRoute): Encoding | undefined {
  const first = route.deployments[0]?.encoding;
  return route.deployments.every((d) => d.encoding === first) ? first : undefined;
}






function countImageParts(request: ChatRequest): number {
  let images = 0;
  for (const message of request.messages) {
    if (!Array.isArray(message.content)) continue;
    for (const part of message.content) if (part.type === 'image_url') images++;
  }
  return images;
}
