// The request-log row of a chat request, built from what the request ended with. Bodies only for
// an org logging `full`: the request as the client sent it (or as the input guardrails redacted
// it), and the answer as the client got it, or a stream's generated text. The writer cuts both to
// logs.maxBodyChars.
import type { Finding } from '../../guardrails/types.js';
import { guardrailOutcome, type LogStatusClass, type RequestLogEntry } from '../../logs/request-log.js';
import { statusClass } from '../../metrics/registry.js';
import type { ChatRequest, Usage } from '../../providers/types.js';
import type { KeyPrincipal } from '../../tenancy/principal.js';

/** How a chat request ended, as the exchange saw it. */
export interface ChatOutcome {
  readonly requestId: string;
  readonly principal: KeyPrincipal;
  /** The public model, when the request named a valid one. */
  readonly model: string | undefined;
  /** The deployment that served it, else the last one tried. */
  readonly deploymentId: string | undefined;
  readonly clientGone: boolean;
  readonly status: number;
  readonly errorCode: string | null;
  readonly request: ChatRequest | undefined;
  readonly usage: Usage | undefined;
  /** null while an exact count of a stream without usage is still running. */
  readonly chargedMicros: number | null;
  readonly latencyMs: number;
  readonly ttftMs: number | null;
  readonly findings: readonly Finding[];
  /** `full` logging: the body as received (undefined once redacted), the answer as sent. */
  readonly requestText: string | undefined;
  /** The request ended before its input guardrails ran: no request body is logged. */
  readonly requestUnchecked?: boolean;
  readonly answerText: string | undefined;
  /** `full` logging: a stream's generated text, when the output guardrails left it untouched. */
  readonly streamText: string | undefined;
}

export function requestLogRow(o: ChatOutcome): RequestLogEntry {
  const guardrails = guardrailOutcome(o.findings);
  const p = o.principal;
  return {
    requestId: o.requestId,
    orgId: p.orgId,
    teamId: p.teamId,
    keyId: p.keyId,
    model: o.model ?? null,
    deployment: o.deploymentId ?? null,
    status: o.clientGone ? 499 : o.status,
    statusClass: o.clientGone ? 'client_closed' : (statusClass(o.status) as LogStatusClass),
    errorCode: o.errorCode,
    stream: o.request?.stream === true,
    promptTokens: o.usage?.prompt_tokens ?? null,
    completionTokens: o.usage?.completion_tokens ?? null,
    cachedTokens: o.usage?.prompt_tokens_details?.cached_tokens ?? null,
    cacheWriteTokens: o.usage?.cache_creation_input_tokens ?? null,
    reasoningTokens: o.usage?.completion_tokens_details?.reasoning_tokens ?? null,
    costMicros: o.chargedMicros,
    latencyMs: o.latencyMs,
    ttftMs: o.ttftMs,
    guardrailAction: guardrails.action,
    guardrailRules: guardrails.rules,
    retentionDays: p.logRetentionDays,
    ...(p.loggingLevel === 'full' ? loggedBodies(o) : undefined),
  };
}

function loggedBodies(o: ChatOutcome): { requestBody: string | null; responseBody: string | null } {
  const requestBody = o.requestUnchecked === true ? null : (o.requestText ?? (o.request === undefined ? null : JSON.stringify(o.request)));
  let responseBody = o.answerText ?? null;
  if (responseBody === null && o.request?.stream === true) responseBody = o.streamText ?? null;
  return { requestBody, responseBody };
}
