// One chat request, stage by stage, in whichever client dialect its route speaks (OpenAI chat,
// Anthropic Messages, legacy completions: dialects/): the caller and body, then admission (guardrails,
// limits, the hold: admission.ts), the upstream call with fallback (upstream.ts), the answer
// written with backpressure (sse-writer.ts), and at the end settlement (settlement.ts) and the
// request-log row (log-row.ts). Each stage hands the next its value; end() is the one place a
// request ends, exactly once, whatever ended it (an answer, an error, the client, shutdown).
import type { Config } from '../../config/load.js';
import { asDatabaseError } from '../../db/database.js';
import { GatewayError, toGatewayError } from '../../errors/gateway-error.js';
import { compiledPolicy } from '../../guardrails/compiled-policy.js';
import type { GuardrailEventLog } from '../../guardrails/event-log.js';
import { StreamOutputGuard } from '../../guardrails/stream-output.js';
import type { Finding } from '../../guardrails/types.js';
import type { Ledger } from '../../ledger/ledger.js';
import { log } from '../../log.js';
import type { RequestLogWriter } from '../../logs/request-log.js';
import { countOrgRequest, countRequest, gatewayOverheadSeconds, liveCounts, observeDuration, statusClass, streamChunkGapSeconds, timeToFirstTokenSeconds } from '../../metrics/registry.js';
import type { DeploymentRouter } from '../../providers/router.js';
import type { ChatRequest, Usage } from '../../providers/types.js';
import type { UpstreamPools } from '../../providers/upstream-pools.js';
import type { KeyPrincipal } from '../../tenancy/principal.js';
import type { RateLimiter } from '../../tenancy/rate-limiter.js';
import type { WorkerPool } from '../../workers/pool.js';
import type { AuthOutcome } from '../authenticate.js';
import { JSON_TYPE } from '../respond.js';
import { CallerGate, type GateOwner } from '../caller-gate.js';
import type { ClientDialect } from '../dialects/dialect.js';
import { DialectOutput } from '../dialects/output.js';
import { SSE_TYPE, SseWriter, type ResponseHead } from '../sse-writer.js';
import type { HttpResponse } from '../server-api.js';
import { ClientGoneError, type UpstreamAttempt } from '../upstream-attempt.js';
import { abandon, admit, decodeBody, routeChatRequest, type AdmissionObserver, type Admitted, type ChatBody, type Refused } from './admission.js';
import { checkAnswer, parseAnswer } from './guardrail-checks.js';
import { requestLogRow } from './log-row.js';
import { guardrailError } from './refusal-errors.js';
import { settleHold } from './settlement.js';
import { UpstreamCall, type Frame, type UpstreamListener } from './upstream.js';

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

export class ChatExchange implements UpstreamListener, AdmissionObserver, GateOwner {
  private ended = false;
  private clientGone = false;
  private readonly writer: SseWriter;
  /** The caller and the body, whichever comes first: the body waits for the verified caller. */
  private readonly gate = new CallerGate(this);
  private principal: KeyPrincipal | undefined;
  /** The stages' values, each set once: the text (kept for an org logging `full`), the request, its route. */
  private receivedText: string | undefined;
  private request: ChatRequest | undefined;
  private body: ChatBody | undefined;
  private admitted: Admitted | undefined;
  private upstream: UpstreamCall | undefined;
  /** The attempt whose output reached the client, and what it reported. */
  private served: UpstreamAttempt | undefined;
  private usage: Usage | undefined;
  /** Output guardrails of a stream, fresh per attempt: a failed attempt's held text never reached the client. */
  private streamGuard: { readonly attempt: UpstreamAttempt; readonly guard: StreamOutputGuard } | undefined;
  /** Guardrail findings, for the request log: the prompt's (from admission), the answer's. */
  private inputFindings: readonly Finding[] = [];
  private outputFindings: readonly Finding[] = [];
  /** The input guardrails changed the request: the received text no longer describes it. */
  private redacted = false;
  /** The input guardrails ran (or the key has none): until then the body may hold what they would redact. */
  private promptChecked = false;
  private streamOpen = false;
  /** For the request log and metrics: how it ended. */
  private status = 200;
  private errorCode: string | null = null;
  private ttftMs: number | null = null;
  /** When output last went to the client (0: not yet): time to first token, gaps between chunks. */
  private lastWriteAt = 0;
  private answerText: string | undefined;
  /** The answer in a dialect other than OpenAI chat (undefined for chat itself). */
  private output: DialectOutput | undefined;

  constructor(
    private readonly deps: ChatDeps,
    res: HttpResponse,
    readonly requestId: string,
    private readonly startedAt: number,
    private readonly dialect: ClientDialect,
  ) {
    this.writer = new SseWriter(res, requestId, deps.config.server.stalledClientTimeoutMs, dialect);
    deps.inflight.add(this);
    liveCounts.inflightRequests++;
  }

  get isFinished(): boolean {
    return this.ended;
  }

  onClientAborted(): void {
    this.clientGone = true;
    this.upstream?.stop(new ClientGoneError());
    this.end();
  }

  /** Shutdown deadline passed: end what is still running with a typed error. */
  cutForShutdown(): void {
    this.upstream?.stop(new GatewayError('NR_SHUTTING_DOWN'));
    this.fail(new GatewayError('NR_SHUTTING_DOWN'));
  }

  /** The caller, or a pending key lookup. */
  setCaller(outcome: AuthOutcome): void {
    this.gate.setCaller(outcome);
  }

  /** The body arrived; `body` is only valid during this call. */
  onBody(body: Buffer): void {
    this.gate.onBody(body);
  }

  onCallerBody(principal: KeyPrincipal, body: Buffer): void {
    this.principal = principal;
    const dialect = this.dialect;
    let request: ChatRequest;
    try {
      // Only an org logging bodies needs the text: a large one is parsed piece by piece, never decoded whole.
      if (principal.loggingLevel === 'full') this.receivedText = decodeBody(body);
      request = dialect.parseRequest(body, principal.orgId);
    } catch (err) {
      return this.fail(toGatewayError(err));
    }
    if (dialect.prepare === undefined) return this.onRequest(principal, request, dialect.identity ? body.byteLength : undefined);
    dialect.prepare(request, principal).then(
      (prepared) => !this.ended && this.onRequest(principal, prepared, undefined),
      (err: unknown) => this.fail(toGatewayError(asDatabaseError(err))),
    );
  }

  /** The request in OpenAI's shape: routed, then admitted. `bodyBytes`: the client's body's, when that body goes upstream as it is. */
  private onRequest(principal: KeyPrincipal, request: ChatRequest, bodyBytes: number | undefined): void {
    this.request = request;
    try {
      // The prompt's bound is the size of what goes upstream: a translated request may be larger than the client's body.
      this.body = routeChatRequest(request, bodyBytes ?? Buffer.byteLength(JSON.stringify(request)), principal, this.deps.config.models);
    } catch (err) {
      return this.fail(toGatewayError(err));
    }
    this.promptChecked = !principal.guardrails?.scansInput;
    admit(this.deps, principal, this.body, this.requestId, this)
      .then((result) => this.onAdmission(principal, result))
      // A throw past admission (starting upstream) must still end the request.
      .catch((err: unknown) => this.fail(toGatewayError(err)));
  }

  onPromptChecked(findings: readonly Finding[], redacted: boolean): void {
    this.promptChecked = true;
    this.inputFindings = findings;
    this.redacted = redacted;
  }

  /** Answers with an error: a JSON error before the first byte, a final SSE event after it. */
  fail(err: GatewayError, closeConnection = false): void {
    if (this.ended) return;
    if (!this.clientGone) {
      this.status = err.status;
      this.errorCode = err.code;
      this.writer.sendError(err, closeConnection);
    }
    this.end();
  }

  private onAdmission(principal: KeyPrincipal, result: Admitted | Refused | undefined): void {
    if (result === undefined) return;
    if ('error' in result) return this.fail(result.error);
    // The client left while the hold was being granted.
    if (this.ended) return abandon(this.deps, principal, result);
    this.admitted = result;
    const { request, route } = result;
    const ctx = {
      requestId: this.requestId,
      publicModel: route.name,
      created: Math.floor(Date.now() / 1000),
      clientWantsUsage: request.stream === true && request.stream_options?.include_usage === true,
    };
    this.output = DialectOutput.open(this.dialect, { requestId: this.requestId, principal, request, model: route.name, created: ctx.created, clientWantsUsage: ctx.clientWantsUsage }, request.stream === true);
    this.upstream = new UpstreamCall(this.deps, { request, route, maxTokens: result.maxTokens, promptBoundTokens: result.promptBoundTokens, ctx }, this);
    this.upstream.start();
  }

  onFailed(error: GatewayError): void {
    this.fail(error);
  }

  /** A complete non-stream answer: its output guardrails first, when the key has them. */
  onCompletion(attempt: UpstreamAttempt, body: string | Uint8Array, usage: Usage | undefined, parsed?: unknown): void {
    this.served = attempt;
    this.usage = usage;
    const guard = this.principal!.guardrails;
    if (!guard?.scansOutput) return this.sendCompletion(body);
    // The attempt parsed the answer already: no second JSON.parse of the body.
    let completion = parsed;
    try {
      completion ??= parseAnswer(body);
    } catch (err) {
      return this.fail(toGatewayError(err));
    }
    checkAnswer(this.deps.workers, guard, completion, body).then(
      (verdict) => {
        if (this.ended) return;
        this.recordOutputFindings(verdict.findings);
        if (verdict.blocked !== undefined) return this.fail(guardrailError(verdict.blocked, 'output'));
        this.sendCompletion(verdict.body);
      },
      (err: unknown) => {
        // Fail closed: an answer the guardrails could not check is not sent (its tokens are still charged).
        log.warn('guardrails: answer check failed', { requestId: this.requestId, error: (err as Error).message });
        this.fail(new GatewayError('NR_OVERLOADED', undefined, { cause: err }));
      },
    );
  }

  /** The frames of one upstream read: through the stream's output guardrails, then to the client in one write. */
  onFrames(attempt: UpstreamAttempt, frames: Frame[]): void {
    const guard = this.streamGuardFor(attempt);
    if (guard !== undefined && !guard.transform(frames)) {
      // What was safe before the match goes out; then the typed error, and upstream is stopped.
      this.served = attempt;
      this.recordOutputFindings(guard.findings());
      if (frames.length > 0) this.writeFrames(attempt, frames);
      attempt.abort(new ClientGoneError());
      if (guard.blocked !== undefined) return this.fail(guardrailError(guard.blocked, 'output'));
      return this.fail(new GatewayError('NR_UPSTREAM_BAD_RESPONSE', 'The upstream provider sent a stream chunk the guardrails could not read.'));
    }
    if (frames.length > 0) this.writeFrames(attempt, frames);
  }

  onStreamEnd(attempt: UpstreamAttempt, usage: Usage | undefined, lastFrames: Frame[]): void {
    this.usage = usage;
    this.onFrames(attempt, lastFrames);
    if (this.ended) return;
    const sealed = this.output?.seal();
    if (sealed === undefined) return this.closeStream();
    sealed.then(() => this.closeStream(), (err: unknown) => this.fail(toGatewayError(asDatabaseError(err))));
  }

  /** The stream's last frames (a dialect's closing events), and its end. */
  private closeStream(): void {
    if (this.ended) return;
    if (this.output !== undefined) {
      let closing: Frame[];
      try {
        closing = this.output.closing();
      } catch (err) {
        return this.fail(toGatewayError(err));
      }
      if (closing.length > 0) this.writer.writeFrames(closing, this.writer.headersSent ? undefined : this.responseHead(SSE_TYPE));
    }
    this.writer.endStream(this.writer.headersSent ? undefined : this.responseHead(SSE_TYPE));
    this.end();
  }

  private sendCompletion(upstreamBody: string | Uint8Array): void {
    let body = upstreamBody;
    try {
      if (this.output !== undefined) body = this.output.completion(upstreamBody);
    } catch (err) {
      return this.fail(toGatewayError(err));
    }
    if (this.principal!.loggingLevel === 'full') this.answerText = typeof body === 'string' ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
    const sealed = this.output?.seal();
    if (sealed === undefined) return this.sendBody(body);
    sealed.then(() => this.sendBody(body), (err: unknown) => this.fail(toGatewayError(asDatabaseError(err))));
  }

  private sendBody(body: string | Uint8Array): void {
    if (this.ended) return;
    this.writer.sendComplete(this.responseHead(JSON_TYPE), body);
    this.end();
  }

  private writeFrames(attempt: UpstreamAttempt, upstreamFrames: Frame[]): void {
    let frames = upstreamFrames;
    try {
      if (this.output !== undefined) frames = this.output.frames(upstreamFrames);
    } catch (err) {
      attempt.abort(new ClientGoneError());
      return this.fail(toGatewayError(err));
    }
    const now = performance.now();
    if (this.lastWriteAt === 0) {
      this.ttftMs = now - this.startedAt;
      timeToFirstTokenSeconds.labels(this.admitted!.route.name).observe(this.ttftMs / 1000);
    } else {
      streamChunkGapSeconds.observe((now - this.lastWriteAt) / 1000);
    }
    this.lastWriteAt = now;
    let head: ResponseHead | undefined;
    if (!this.writer.headersSent) {
      // The first byte: this attempt serves the request, no fallback from here on.
      this.upstream!.commit(attempt);
      this.served = attempt;
      head = this.responseHead(SSE_TYPE);
      this.streamOpen = true;
      liveCounts.activeStreams++;
    }
    if (!this.writer.writeFrames(frames, head)) this.writer.holdUntilDrained(this.upstream!);
  }

  /** The head of a 200 answer; the gateway's own time so far is observed as it goes out. */
  private responseHead(contentType: string): ResponseHead {
    const upstream = this.upstream!;
    const overheadMs = performance.now() - this.startedAt - upstream.upstreamWaitMs;
    gatewayOverheadSeconds.observe(overheadMs / 1000);
    return { contentType, overheadMs, attempts: upstream.attempts, extraHeaders: this.admitted!.limitHeaders };
  }

  private streamGuardFor(attempt: UpstreamAttempt): StreamOutputGuard | undefined {
    const guard = this.principal!.guardrails;
    if (!guard?.scansOutput || this.admitted!.request.stream !== true) return undefined;
    if (this.streamGuard?.attempt !== attempt) this.streamGuard = { attempt, guard: new StreamOutputGuard(compiledPolicy(guard.policyKey, guard.policy)) };
    return this.streamGuard.guard;
  }

  /** Output guardrail findings: recorded as events once, and kept for the request log. */
  private recordOutputFindings(findings: readonly Finding[]): void {
    if (this.outputFindings.length > 0 || findings.length === 0) return;
    this.outputFindings = findings;
    const p = this.principal!;
    this.deps.guardrailEvents.record({ orgId: p.orgId, keyId: p.keyId, requestId: this.requestId }, 'output', findings);
  }

  /** The one place a request ends: settlement, events, metrics, the log row, exactly once. */
  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.upstream?.stop();
    this.writer.close();
    const admitted = this.admitted;
    const hold = admitted?.hold;
    const chargedMicros = hold === undefined ? null : settleHold(this.deps, {
      hold, served: this.served, usage: this.usage, request: admitted!.request, maxTokens: admitted!.maxTokens,
      promptBoundTokens: admitted!.promptBoundTokens, imageTokens: admitted!.imageTokens, images: admitted!.images, model: admitted!.route.name, requestId: this.requestId,
    });
    // Only what the serving attempt's guard saw: a failed attempt's held text never reached the client.
    if (this.streamGuard !== undefined && this.streamGuard.attempt === this.served) this.recordOutputFindings(this.streamGuard.guard.findings());
    if (this.streamOpen) liveCounts.activeStreams--;
    liveCounts.inflightRequests--;
    const model = this.body?.route.name ?? 'unknown';
    countRequest(this.dialect.route, model, this.clientGone ? 'client_closed' : statusClass(this.status));
    observeDuration(this.dialect.route, (performance.now() - this.startedAt) / 1000);
    // A caller known before its body ended the request is still counted and logged.
    const principal = this.principal ?? this.gate.caller;
    if (principal !== undefined) {
      countOrgRequest(principal.orgId);
      this.logRequest(principal, chargedMicros);
    }
    this.deps.inflight.delete(this);
  }

  /** One row in nemo.request_log_entries per request of a known org, written off the request path. */
  private logRequest(principal: KeyPrincipal, chargedMicros: number | null): void {
    if (principal.loggingLevel === 'none' || !this.deps.config.logs.enabled) return;
    const full = principal.loggingLevel === 'full';
    const findings = this.inputFindings.length === 0 ? this.outputFindings : [...this.inputFindings, ...this.outputFindings];
    // A stream whose output guardrails acted is logged without its text: the raw text is what they kept from the client.
    const outputUntouched = this.outputFindings.every((f) => f.action === 'flag');
    this.deps.requestLog.record(requestLogRow({
      requestId: this.requestId,
      principal,
      model: this.body?.route.name,
      deploymentId: (this.served?.deployment ?? this.upstream?.lastDeployment)?.id,
      clientGone: this.clientGone,
      status: this.status,
      errorCode: this.errorCode,
      request: this.request,
      usage: this.usage,
      chargedMicros,
      latencyMs: performance.now() - this.startedAt,
      ttftMs: this.ttftMs,
      findings,
      requestText: this.redacted ? undefined : this.receivedText,
      // Ended before its guardrails ran: the body may hold what they would have redacted.
      requestUnchecked: !this.promptChecked && this.request !== undefined,
      answerText: this.answerText,
      streamText: full && outputUntouched ? this.served?.completionText() : undefined,
    }));
  }
}
