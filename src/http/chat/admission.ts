// Admission of a chat request, before anything goes upstream: the body read and validated, the
// key's guardrails on the prompt, the key's and team's per-minute windows, and the credit hold.
// Each step hands the next its value or refuses with a typed error; a refused request holds
// nothing and leaves the local windows as it found them.
import { isUtf8 } from 'node:buffer';
import type { Config, ModelRoute } from '../../config/load.js';
import { asDatabaseError } from '../../db/database.js';
import { GatewayError, toGatewayError } from '../../errors/gateway-error.js';
import type { GuardrailEventLog } from '../../guardrails/event-log.js';
import type { Finding } from '../../guardrails/types.js';
import type { Hold, Ledger } from '../../ledger/ledger.js';
import { affordableOutputTokens, boundingPrices, costMicros, imageCostMicros, type Prices } from '../../ledger/pricing.js';
import { log } from '../../log.js';
import { rateLimitedTotal } from '../../metrics/registry.js';
import type { ChatRequest } from '../../providers/types.js';
import { mayUseModel, type KeyPrincipal } from '../../tenancy/principal.js';
import { rateLimitHeaders, type RateLimiter } from '../../tenancy/rate-limiter.js';
import type { Encoding } from '../../config/model-encodings.js';
import type { WorkerPool } from '../../workers/pool.js';
import { requestedMaxTokens, validateChatRequest } from '../validate-chat-request.js';
import { parseJsonBody } from '../dialects/parse.js';
import { checkPrompt } from './guardrail-checks.js';
import { guardrailError, refusalToError } from './refusal-errors.js';
import { releaseHold } from './settlement.js';

export interface AdmissionDeps {
  readonly config: Pick<Config, 'models' | 'ledger'>;
  readonly ledger: Ledger;
  readonly limiter: RateLimiter;
  readonly workers: WorkerPool;
  readonly guardrailEvents: GuardrailEventLog;
}

/** A body that parsed and names a model the key may use. */
export interface ChatBody {
  readonly request: ChatRequest;
  readonly route: ModelRoute;
  readonly bodyBytes: number;
}

/** Everything the upstream stage and settlement need: the request may go upstream. */
export interface Admitted {
  /** As redacted by the prompt's guardrails (the same object as the body's request). */
  readonly request: ChatRequest;
  readonly route: ModelRoute;
  /** The credits held; undefined for a free model. Settled or released exactly once. */
  readonly hold: Hold | undefined;
  /** The output bound sent upstream: exactly what the hold pays for. */
  readonly maxTokens: number;
  /** The prompt's bound: its UTF-8 bytes (no BPE token is shorter than a byte) plus the image allowance. */
  readonly promptBoundTokens: number;
  readonly imageTokens: number;
  /** Image parts of the request: a model priced per image charges each. */
  readonly images: number;
  /** The input guardrails changed the request: the received text no longer describes it. */
  readonly redacted: boolean;
  readonly findings: readonly Finding[];
  readonly limitHeaders: Record<string, string> | undefined;
  /** What the local per-minute windows counted, to give back if the request is abandoned. */
  readonly localAdmission: LocalAdmission | undefined;
}

export interface Refused {
  readonly error: GatewayError;
  /** Input guardrail findings, a blocking one included. */
  readonly findings: readonly Finding[];
  readonly redacted: boolean;
}

/** The exchange, as admission sees it: whether the request is still wanted, and what the prompt's guardrails found. */
export interface AdmissionObserver {
  readonly isFinished: boolean;
  /** Known before the hold is asked for: a request that ends while it waits is logged as checked. */
  onPromptChecked(findings: readonly Finding[], redacted: boolean): void;
}

interface LocalAdmission {
  readonly tokens: number;
  readonly atMs: number;
}

const NO_FINDINGS: readonly Finding[] = [];

/** The body as text; synchronous, since `body` is only valid during the call. */
export function decodeBody(body: Buffer): string {
  if (!isUtf8(body)) throw new GatewayError('NR_INVALID_UTF8');
  return body.toString('utf8');
}

/**
 * The body as received (or its text) as a validated chat request. `orgId`: the sender's org, whose
 * earlier bodies' parsed elements a large body may reuse (shared, frozen objects).
 */
export function parseChatRequest(body: string | Uint8Array, orgId?: string): ChatRequest {
  return validateChatRequest(parseJsonBody(body, orgId));
}

/** The request's route, when it names a model the key may use. */
export function routeChatRequest(request: ChatRequest, bodyBytes: number, principal: KeyPrincipal, models: Config['models']): ChatBody {
  const route = models.get(request.model);
  if (route === undefined) {
    throw new GatewayError('NR_MODEL_NOT_FOUND', `The model ${JSON.stringify(request.model.slice(0, 256))} does not exist.`, { param: 'model' });
  }
  if (!mayUseModel(principal, route.name)) {
    throw new GatewayError('NR_MODEL_NOT_ALLOWED', `This API key may not use the model ${JSON.stringify(route.name)}.`, { param: 'model' });
  }
  return { request, route, bodyBytes };
}

/**
 * Guardrails, then limits, then the hold. Resolves undefined when the request ended while a step
 * waited (nothing is held then); an Admitted that arrives after the request ended goes to abandon().
 */
export async function admit(deps: AdmissionDeps, principal: KeyPrincipal, body: ChatBody, requestId: string, observer: AdmissionObserver): Promise<Admitted | Refused | undefined> {
  const { request, route } = body;
  const asked = requestedMaxTokens(request);
  if (asked !== undefined && asked > route.maxOutputTokens) {
    const param = request.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
    return refused(new GatewayError('NR_INVALID_REQUEST', `\`${param}\` is too large: ${route.name} allows at most ${route.maxOutputTokens} output tokens.`, { param }));
  }
  const images = countImageParts(request);
  const imageTokens = images * deps.config.ledger.imageTokenAllowance;
  const guarded = await guardPrompt(deps, principal, body, imageTokens, requestId, observer);
  if (observer.isFinished || 'error' in guarded) return 'error' in guarded ? guarded : undefined;
  // No re-serializing a big prompt: what the redactions changed in the texts' UTF-8 bytes bounds what they changed in its JSON.
  const bodyBytes = body.bodyBytes + guarded.bodyBytesDelta;
  return reserve(deps, principal, { route, request, asked, promptBoundTokens: bodyBytes + imageTokens, imageTokens, images, findings: guarded.findings, redacted: guarded.redacted, requestId });
}

/** The request ended after it was admitted: its hold goes back, and its count in the local windows. */
export function abandon(deps: Pick<AdmissionDeps, 'ledger' | 'limiter'>, principal: KeyPrincipal, admitted: Admitted): void {
  giveBackLocalAdmission(deps.limiter, principal, admitted.localAdmission);
  if (admitted.hold !== undefined) releaseHold(deps.ledger, admitted.hold);
}

interface Guarded {
  readonly findings: readonly Finding[];
  readonly redacted: boolean;
  /** What the redactions changed in the prompt texts' UTF-8 bytes: an upper bound of the change in the body's. */
  readonly bodyBytesDelta: number;
}

/**
 * The key's guardrails on the prompt, before anything is held: a block answers 400 and costs
 * nothing; redactions change the request (and so its bound) before it is sent anywhere.
 */
async function guardPrompt(deps: AdmissionDeps, principal: KeyPrincipal, body: ChatBody, imageTokens: number, requestId: string, observer: AdmissionObserver): Promise<Guarded | Refused> {
  const guard = principal.guardrails;
  if (guard?.invalid) return refused(new GatewayError('NR_GUARDRAIL_POLICY_INVALID'));
  if (guard === undefined || (!guard.scansInput && guard.maxInputTokens === null)) return { findings: NO_FINDINGS, redacted: false, bodyBytesDelta: 0 };
  let verdict;
  try {
    verdict = await checkPrompt(deps.workers, guard, body.request, body.bodyBytes + imageTokens, routeEncoding(body.route));
  } catch (err) {
    // Fail closed: a prompt the guardrails could not check is not sent.
    log.warn('guardrails: prompt check failed', { requestId, error: (err as Error).message });
    return refused(err instanceof GatewayError ? err : new GatewayError('NR_OVERLOADED', undefined, { cause: err }));
  }
  observer.onPromptChecked(verdict.findings, verdict.redacted);
  if (verdict.findings.length > 0 && !observer.isFinished) deps.guardrailEvents.record({ orgId: principal.orgId, keyId: principal.keyId, requestId }, 'input', verdict.findings);
  if (verdict.blocked !== undefined) return { error: guardrailError(verdict.blocked, 'input'), findings: verdict.findings, redacted: verdict.redacted };
  return { findings: verdict.findings, redacted: verdict.redacted, bodyBytesDelta: verdict.bodyBytesDelta };
}

interface Bounds {
  readonly route: ModelRoute;
  readonly request: ChatRequest;
  readonly asked: number | undefined;
  readonly promptBoundTokens: number;
  readonly imageTokens: number;
  readonly images: number;
  readonly findings: readonly Finding[];
  readonly redacted: boolean;
  readonly requestId: string;
}

/**
 * Holds an upper bound of the cost before any upstream call: the prompt's bound and the output
 * bound, at the dearest deployment's prices. The output bound sent upstream is exactly what was
 * held for, so the actual cost can never exceed the hold. The same database call checks the key's
 * and team's spend caps and shared rate limits.
 */
async function reserve(deps: AdmissionDeps, principal: KeyPrincipal, b: Bounds): Promise<Admitted | Refused> {
  const { route, asked, promptBoundTokens } = b;
  const minOutputTokens = deps.config.ledger.minOutputTokens;
  const maxOutput = asked ?? route.maxOutputTokens;
  const boundTokens = promptBoundTokens + (asked ?? Math.min(minOutputTokens, maxOutput));
  const local = admitLocally(deps.limiter, principal, boundTokens);
  if ('error' in local) return { ...local, findings: b.findings, redacted: b.redacted };
  const admitted = (hold: Hold | undefined, maxTokens: number): Admitted => ({
    request: b.request, route, hold, maxTokens, promptBoundTokens, imageTokens: b.imageTokens, images: b.images,
    redacted: b.redacted, findings: b.findings, limitHeaders: local.limitHeaders, localAdmission: local.admission,
  });
  const refusedBy = (refusal: Parameters<typeof refusalToError>[0]): Refused => {
    giveBackLocalAdmission(deps.limiter, principal, local.admission);
    const need = asked !== undefined ? `\`max_tokens\` ${asked}` : `at least ${Math.min(minOutputTokens, maxOutput)} output tokens`;
    return { error: refusalToError(refusal, { routeName: route.name, need, limitHeaders: local.limitHeaders, nowMs: Date.now() }), findings: b.findings, redacted: b.redacted };
  };
  const prices: Prices = boundingPrices(route);
  // A model priced per image: each image at the dearest deployment's price, on top of the tokens.
  const imageMicros = imageCostMicros(prices, b.images);
  const amountMicros = costMicros(prices, promptBoundTokens, maxOutput) + imageMicros;
  try {
    if (amountMicros === 0) {
      // A free model: nothing to hold, but a limited key still counts against the shared limits.
      if (principal.limits.length === 0) return admitted(undefined, maxOutput);
      const refusal = await deps.ledger.admit(principal.orgId, principal.keyId, b.requestId, boundTokens);
      return refusal === null ? admitted(undefined, maxOutput) : refusedBy(refusal);
    }
    const minAmountMicros = asked !== undefined ? amountMicros : costMicros(prices, promptBoundTokens, Math.min(minOutputTokens, maxOutput)) + imageMicros;
    // Spend caps and shared rate limits are decided where a durable hold is granted: such keys never carve from a lease.
    const path = principal.limits.length === 0 && !principal.spendCapped ? 'lease' : 'hold';
    const hold = await deps.ledger.reserve(principal.orgId, principal.keyId, b.requestId, amountMicros, minAmountMicros, boundTokens, route.name, path);
    if (typeof hold === 'string') return refusedBy(hold);
    return admitted(hold, asked ?? affordableOutputTokens(prices, hold.amountMicros - imageMicros, promptBoundTokens, route.maxOutputTokens));
  } catch (err) {
    giveBackLocalAdmission(deps.limiter, principal, local.admission);
    return { error: toGatewayError(asDatabaseError(err)), findings: b.findings, redacted: b.redacted };
  }
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
  return refused(new GatewayError('NR_RATE_LIMITED', undefined, { retryAfterS: admission.retryAfterS, headers: limitHeaders }));
}

/** Not served: the request does not count against this instance's per-minute windows either. */
function giveBackLocalAdmission(limiter: RateLimiter, principal: KeyPrincipal, admission: LocalAdmission | undefined): void {
  if (admission !== undefined) limiter.giveBack(principal.limits, admission.tokens, admission.atMs);
}

function refused(error: GatewayError): Refused {
  return { error, findings: NO_FINDINGS, redacted: false };
}

/** The tokenizer every deployment of a route shares; undefined when they differ or one has none (the bound counts). */
export function routeEncoding(route: ModelRoute): Encoding | undefined {
  const first = route.deployments[0]?.encoding;
  return route.deployments.every((d) => d.encoding === first) ? first : undefined;
}

/** Images are held at one allowance each: their URLs' bytes say nothing of their size. */
export function countImageParts(request: ChatRequest): number {
  let images = 0;
  for (const message of request.messages) {
    if (!Array.isArray(message.content)) continue;
    for (const part of message.content) if (part.type === 'image_url') images++;
  }
  return images;
}
