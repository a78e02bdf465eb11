// Admission of an embeddings request, before anything goes upstream, in chat's order: the model
// (and whether any of its deployments can embed), the key's guardrails on the input, the key's and
// team's per-minute windows, and the credit hold. The hold is the input's bound (the body's UTF-8
// bytes, as chat holds a prompt) at the dearest embedding deployment's input price: embeddings
// produce no output tokens. A refused request holds nothing and leaves the local windows as it found them.
import type { Config, ModelRoute } from '../../config/load.js';
import { asDatabaseError } from '../../db/database.js';
import { GatewayError, invalidRequest, toGatewayError } from '../../errors/gateway-error.js';
import type { GuardrailEventLog } from '../../guardrails/event-log.js';
import type { Finding } from '../../guardrails/types.js';
import type { Hold, Ledger, Refusal } from '../../ledger/ledger.js';
import { costMicros } from '../../ledger/pricing.js';
import { log } from '../../log.js';
import { rateLimitedTotal } from '../../metrics/registry.js';
import type { EmbeddingsRequest } from '../../providers/types.js';
import { mayUseModel, type KeyPrincipal } from '../../tenancy/principal.js';
import { rateLimitHeaders, type RateLimiter } from '../../tenancy/rate-limiter.js';
import type { WorkerPool } from '../../workers/pool.js';
import { routeEncoding } from '../chat/admission.js';
import { refusalToError } from '../chat/refusal-errors.js';
import { releaseHold } from '../chat/settlement.js';
import { checkInput } from './guardrail-checks.js';
import { withoutEmbeddings } from './upstream.js';

export interface EmbeddingsAdmissionDeps {
  readonly config: Pick<Config, 'models'>;
  readonly ledger: Ledger;
  readonly limiter: RateLimiter;
  readonly workers: WorkerPool;
  readonly guardrailEvents: GuardrailEventLog;
}

/** A body that parsed and names a model the key may use, with a deployment that can embed. */
export interface EmbeddingsBody {
  readonly request: EmbeddingsRequest;
  readonly route: ModelRoute;
  readonly bodyBytes: number;
}

/** The request may go upstream. */
export interface Admitted {
  /** As redacted by the input's guardrails (the same object as the body's request). */
  readonly request: EmbeddingsRequest;
  readonly route: ModelRoute;
  /** The credits held; undefined for a free model. Settled or released exactly once. */
  readonly hold: Hold | undefined;
  /** The input's bound in tokens: no usage report is charged for more. */
  readonly boundTokens: number;
  readonly limitHeaders: Record<string, string> | undefined;
  readonly localAdmission: LocalAdmission | undefined;
}

export interface Refused {
  readonly error: GatewayError;
}

/** The exchange, as admission sees it. */
export interface AdmissionObserver {
  readonly isFinished: boolean;
  /** Known before the hold is asked for: a request that ends while it waits is logged as checked. */
  onInputChecked(findings: readonly Finding[], redacted: boolean): void;
}

const NOT_REDACTED = Object.freeze({ redacted: false });

interface LocalAdmission {
  readonly tokens: number;
  readonly atMs: number;
}

/** The request's route, when it names a model the key may use and one of its deployments can embed. */
export function routeEmbeddingsRequest(request: EmbeddingsRequest, bodyBytes: number, principal: KeyPrincipal, models: Config['models']): EmbeddingsBody {
  const route = models.get(request.model);
  if (route === undefined) {
    throw new GatewayError('NR_MODEL_NOT_FOUND', `The model ${JSON.stringify(request.model.slice(0, 256))} does not exist.`, { param: 'model' });
  }
  if (!mayUseModel(principal, route.name)) {
    throw new GatewayError('NR_MODEL_NOT_ALLOWED', `This API key may not use the model ${JSON.stringify(route.name)}.`, { param: 'model' });
  }
  if (withoutEmbeddings(route).size === route.deployments.length) {
    throw invalidRequest(`The model ${JSON.stringify(route.name)} does not support embeddings.`, 'model');
  }
  return { request, route, bodyBytes };
}

/**
 * Guardrails, then limits, then the hold. Resolves undefined when the request ended while a step
 * waited (nothing is held then); an Admitted that arrives after the request ended goes to abandon().
 */
export async function admit(deps: EmbeddingsAdmissionDeps, principal: KeyPrincipal, body: EmbeddingsBody, requestId: string, observer: AdmissionObserver): Promise<Admitted | Refused | undefined> {
  const guarded = await guardInput(deps, principal, body, requestId, observer);
  if ('error' in guarded) return guarded;
  if (observer.isFinished) return undefined;
  // Redacted text changes the body's length: the bound is the body that will be sent.
  const boundTokens = guarded.redacted ? Buffer.byteLength(JSON.stringify(body.request)) : body.bodyBytes;
  return reserve(deps, principal, body, boundTokens, requestId);
}

/** The request ended after it was admitted: its hold goes back, and its count in the local windows. */
export function abandon(deps: Pick<EmbeddingsAdmissionDeps, 'ledger' | 'limiter'>, principal: KeyPrincipal, admitted: Admitted): void {
  giveBackLocalAdmission(deps.limiter, principal, admitted.localAdmission);
  if (admitted.hold !== undefined) releaseHold(deps.ledger, admitted.hold);
}

/**
 * The key's guardrails on the input, before anything is held: a block answers 400 and costs
 * nothing; redactions change the request (and so its bound) before it is sent anywhere.
 */
async function guardInput(deps: EmbeddingsAdmissionDeps, principal: KeyPrincipal, body: EmbeddingsBody, requestId: string, observer: AdmissionObserver): Promise<Refused | { redacted: boolean }> {
  const guard = principal.guardrails;
  if (guard?.invalid) return { error: new GatewayError('NR_GUARDRAIL_POLICY_INVALID') };
  if (guard === undefined || (!guard.scansInput && guard.maxInputTokens === null)) return NOT_REDACTED;
  let verdict;
  try {
    verdict = await checkInput(deps.workers, guard, body.request, routeEncoding(body.route));
  } catch (err) {
    // Fail closed: an input the guardrails could not check is not sent.
    if (!(err instanceof GatewayError)) log.warn('guardrails: embeddings input check failed', { requestId, error: (err as Error).message });
    return { error: err instanceof GatewayError ? err : new GatewayError('NR_OVERLOADED', undefined, { cause: err }) };
  }
  observer.onInputChecked(verdict.findings, verdict.redacted);
  if (verdict.findings.length > 0 && !observer.isFinished) deps.guardrailEvents.record({ orgId: principal.orgId, keyId: principal.keyId, requestId }, 'input', verdict.findings);
  if (verdict.blocked === undefined) return { redacted: verdict.redacted };
  return { error: new GatewayError('NR_GUARDRAIL_VIOLATION', `The input was blocked by guardrail rule ${verdict.blocked.rule}.`, { param: 'input' }) };
}

/**
 * Holds the input's bound at the dearest embedding deployment's input price before any upstream
 * call; the same database call checks the key's and team's spend caps and shared rate limits.
 */
async function reserve(deps: EmbeddingsAdmissionDeps, principal: KeyPrincipal, body: EmbeddingsBody, boundTokens: number, requestId: string): Promise<Admitted | Refused> {
  const { request, route } = body;
  const local = admitLocally(deps.limiter, principal, boundTokens);
  if ('error' in local) return local;
  const admitted = (hold: Hold | undefined): Admitted => ({ request, route, hold, boundTokens, limitHeaders: local.limitHeaders, localAdmission: local.admission });
  const refusedBy = (refusal: Refusal): Refused => {
    giveBackLocalAdmission(deps.limiter, principal, local.admission);
    return { error: refusalToError(refusal, { routeName: route.name, need: `an input of up to ${boundTokens} tokens`, limitHeaders: local.limitHeaders, nowMs: Date.now() }) };
  };
  const amountMicros = costMicros({ input: dearestInputPrice(route), output: 0 }, boundTokens, 0);
  try {
    if (amountMicros === 0) {
      // A free model: nothing to hold, but a limited key still counts against the shared limits.
      if (principal.limits.length === 0) return admitted(undefined);
      const refusal = await deps.ledger.admit(principal.orgId, principal.keyId, requestId, boundTokens);
      return refusal === null ? admitted(undefined) : refusedBy(refusal);
    }
    // Spend caps and shared rate limits are decided where a durable hold is granted: such keys never carve from a lease.
    const path = principal.limits.length === 0 && !principal.spendCapped ? 'lease' : 'hold';
    const hold = await deps.ledger.reserve(principal.orgId, principal.keyId, requestId, amountMicros, amountMicros, boundTokens, route.name, path);
    return typeof hold === 'string' ? refusedBy(hold) : admitted(hold);
  } catch (err) {
    giveBackLocalAdmission(deps.limiter, principal, local.admission);
    return { error: toGatewayError(asDatabaseError(err)) };
  }
}

/** The input price a fallback could cost at most: the dearest deployment that can embed. */
function dearestInputPrice(route: ModelRoute): number {
  const skipped = withoutEmbeddings(route);
  let price = 0;
  for (const d of route.deployments) if (!skipped.has(d)) price = Math.max(price, d.inputPricePerMTok);
  return price;
}

/** Counts the request against its key's and team's per-minute limits; 429 when one is spent. */
function admitLocally(limiter: RateLimiter, principal: KeyPrincipal, tokens: number): { admission: LocalAdmission | undefined; limitHeaders: Record<string, string> | undefined } | Refused {
  const limits = principal.limits;
  if (limits.length === 0) return { admission: undefined, limitHeaders: undefined };
  const atMs = Date.now();
  const admission = limiter.admit(limits, tokens);
  const limitHeaders = rateLimitHeaders(admission.state);
  if (admission.ok) return { admission: { tokens, atMs }, limitHeaders };
  rateLimitedTotal.inc();
  return { error: new GatewayError('NR_RATE_LIMITED', undefined, { retryAfterS: admission.retryAfterS, headers: limitHeaders }) };
}

/** Not served: the request does not count against this instance's per-minute windows either. */
function giveBackLocalAdmission(limiter: RateLimiter, principal: KeyPrincipal, admission: LocalAdmission | undefined): void {
  if (admission !== undefined) limiter.giveBack(principal.limits, admission.tokens, admission.atMs);
}
