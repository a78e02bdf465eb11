// One embeddings request, stage by stage, as a chat exchange without streams: the caller and body,
// admission (admission.ts), the upstream call with fallback (upstream.ts), the answer passed on as
// the upstream sent it, and at the end the settle (charged at the reported prompt tokens, or at the
// bound without usage; released when nothing was answered) and the request-log row. end() is the
// one place a request ends, exactly once, whatever ended it.
import type { Config, Deployment } from '../../config/load.js';
import { asDatabaseError } from '../../db/database.js';
import { GatewayError, toGatewayError } from '../../errors/gateway-error.js';
import type { Finding } from '../../guardrails/types.js';
import { plainUsage, pricedCostMicros, pricesOf } from '../../ledger/pricing.js';
import { log } from '../../log.js';
import type { RequestLogWriter } from '../../logs/request-log.js';
import { countOrgRequest, countRequest, gatewayOverheadSeconds, liveCounts, observeDuration, statusClass, tokensTotal } from '../../metrics/registry.js';
import type { EmbeddingsRequest, Usage } from '../../providers/types.js';
import type { KeyPrincipal } from '../../tenancy/principal.js';
import type { AuthOutcome } from '../authenticate.js';
import { CallerGate, type GateOwner } from '../caller-gate.js';
import { decodeBody } from '../chat/admission.js';
import { requestLogRow } from '../chat/log-row.js';
import { releaseHold } from '../chat/settlement.js';
import { sendError, sendJson } from '../respond.js';
import type { HttpResponse } from '../server-api.js';
import { ClientGoneError } from '../upstream-attempt.js';
import { abandon, admit, routeEmbeddingsRequest, type AdmissionObserver, type Admitted, type EmbeddingsAdmissionDeps, type EmbeddingsBody, type Refused } from './admission.js';
import { EmbeddingsCall, type EmbeddingsListener, type EmbeddingsUpstreamDeps } from './upstream.js';
import { parseEmbeddingsRequest } from './validate.js';

/** Requests in flight, for shutdown: it waits for them, then cuts the stragglers. */
export interface ExchangeTracker {
  add(exchange: { cutForShutdown(): void }): void;
  delete(exchange: { cutForShutdown(): void }): void;
}

export interface EmbeddingsDeps extends EmbeddingsAdmissionDeps, EmbeddingsUpstreamDeps {
  readonly config: Config;
  readonly inflight: ExchangeTracker;
  readonly requestLog: RequestLogWriter;
}

export class EmbeddingsExchange implements EmbeddingsListener, AdmissionObserver, GateOwner {
  private ended = false;
  private clientGone = false;
  /** The caller and the body, whichever comes first: the body waits for the verified caller. */
  private readonly gate = new CallerGate(this);
  private principal: KeyPrincipal | undefined;
  /** Kept for an org logging `full`. */
  private receivedText: string | undefined;
  private request: EmbeddingsRequest | undefined;
  private body: EmbeddingsBody | undefined;
  private admitted: Admitted | undefined;
  private upstream: EmbeddingsCall | undefined;
  /** The deployment whose answer reached the client, and the prompt tokens it is charged for. */
  private served: Deployment | undefined;
  private promptTokens: number | undefined;
  private findings: readonly Finding[] = [];
  private redacted = false;
  private inputChecked = false;
  private status = 200;
  private errorCode: string | null = null;
  private answerText: string | undefined;

  constructor(
    private readonly deps: EmbeddingsDeps,
    private readonly res: HttpResponse,
    readonly requestId: string,
    private readonly startedAt: number,
  ) {
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
    try {
      if (principal.loggingLevel === 'full') this.receivedText = decodeBody(body);
      this.request = parseEmbeddingsRequest(body);
      this.body = routeEmbeddingsRequest(this.request, body.byteLength, principal, this.deps.config.models);
    } catch (err) {
      return this.fail(toGatewayError(err));
    }
    this.inputChecked = !principal.guardrails?.scansInput;
    admit(this.deps, principal, this.body, this.requestId, this)
      .then((result) => this.onAdmission(principal, result))
      .catch((err: unknown) => this.fail(toGatewayError(err)));
  }

  onInputChecked(findings: readonly Finding[], redacted: boolean): void {
    this.inputChecked = true;
    this.findings = findings;
    this.redacted = redacted;
  }

  /** Answers with the OpenAI error JSON (nothing else was sent before it). */
  fail(err: GatewayError, closeConnection = false): void {
    if (this.ended) return;
    if (!this.clientGone) {
      this.status = err.status;
      this.errorCode = err.code;
      sendError(this.res, err, this.requestId, closeConnection);
    }
    this.end();
  }

  onAnswer(deployment: Deployment, body: Buffer, promptTokens: number | undefined): void {
    if (this.ended) return;
    this.served = deployment;
    this.promptTokens = promptTokens;
    const admitted = this.admitted!;
    const upstream = this.upstream!;
    const overheadMs = performance.now() - this.startedAt - upstream.upstreamWaitMs;
    gatewayOverheadSeconds.observe(overheadMs / 1000);
    if (this.principal!.loggingLevel === 'full') this.answerText = body.toString('utf8', 0, Math.min(body.length, this.deps.config.logs.maxBodyChars));
    const headers = { 'x-nemo-overhead-ms': overheadMs.toFixed(3), 'x-nemo-attempts': String(upstream.attempts), ...admitted.limitHeaders };
    sendJson(this.res, 200, body, this.requestId, headers);
    this.end();
  }

  onFailed(error: GatewayError): void {
    this.fail(error);
  }

  private onAdmission(principal: KeyPrincipal, result: Admitted | Refused | undefined): void {
    if (result === undefined) return;
    if ('error' in result) return this.fail(result.error);
    // The client left while the hold was being granted.
    if (this.ended) return abandon(this.deps, principal, result);
    this.admitted = result;
    this.upstream = new EmbeddingsCall(this.deps, result.route, result.request, this);
    this.upstream.start();
  }

  /** The one place a request ends: settlement, metrics, the log row, exactly once. */
  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.upstream?.stop();
    const usage = this.settle();
    liveCounts.inflightRequests--;
    const model = this.body?.route.name ?? 'unknown';
    countRequest('embeddings', model, this.clientGone ? 'client_closed' : statusClass(this.status));
    observeDuration('embeddings', (performance.now() - this.startedAt) / 1000);
    // A caller known before its body ended the request is still counted and logged.
    const principal = this.principal ?? this.gate.caller;
    if (principal !== undefined) {
      countOrgRequest(principal.orgId);
      this.logRequest(principal, usage);
    }
    this.deps.inflight.delete(this);
  }

  /**
   * Charges the prompt tokens the upstream reported (at most the bound that was held: a report of
   * more is logged and charged at the bound), the bound when it reported none, nothing (the hold
   * released) when no answer reached the client. The charge is null, as in chat, without a hold.
   */
  private settle(): { usage: Usage | undefined; chargedMicros: number | null } {
    const admitted = this.admitted;
    const served = this.served;
    const hold = admitted?.hold;
    if (admitted === undefined || served === undefined) {
      if (hold !== undefined) releaseHold(this.deps.ledger, hold);
      return { usage: undefined, chargedMicros: hold === undefined ? null : 0 };
    }
    const bound = admitted.boundTokens;
    if (this.promptTokens !== undefined && this.promptTokens > bound) {
      log.warn('upstream: embeddings usage reports more tokens than the input could hold; charging the bound', { deployment: served.id, reported: this.promptTokens, bound });
    }
    const tokens = Math.min(this.promptTokens ?? bound, bound);
    const usage: Usage = { prompt_tokens: tokens, completion_tokens: 0, total_tokens: tokens };
    if (hold === undefined) return { usage, chargedMicros: null };
    tokensTotal.labels(admitted.route.name, 'input').inc(tokens);
    const priced = plainUsage(tokens, 0, 0);
    const charged = Math.min(pricedCostMicros(pricesOf(served), priced), hold.amountMicros);
    void this.deps.ledger.settle(hold, charged, priced).catch((err: unknown) => log.error('ledger: settlement failed', { error: (err as Error).message }));
    return { usage, chargedMicros: charged };
  }

  /** One row in nemo.request_log_entries per request of a known org, written off the request path. */
  private logRequest(principal: KeyPrincipal, { usage, chargedMicros }: { usage: Usage | undefined; chargedMicros: number | null }): void {
    if (principal.loggingLevel === 'none' || !this.deps.config.logs.enabled) return;
    this.deps.requestLog.record(requestLogRow({
      requestId: this.requestId,
      principal,
      model: this.body?.route.name,
      deploymentId: (this.served ?? this.upstream?.lastDeployment)?.id,
      clientGone: this.clientGone,
      status: this.status,
      errorCode: this.errorCode,
      // The chat row's request is a chat body; an embeddings body is logged as its text.
      request: undefined,
      usage,
      chargedMicros,
      latencyMs: performance.now() - this.startedAt,
      ttftMs: null,
      findings: this.findings,
      requestText: this.redacted && this.receivedText !== undefined ? JSON.stringify(this.request) : this.receivedText,
      requestUnchecked: !this.inputChecked && this.request !== undefined,
      answerText: this.answerText,
      streamText: undefined,
    }));
  }
}
