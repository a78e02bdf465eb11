// What a client is told when the ledger refuses a request or a guardrail blocks one: the catalog
// error, the message, Retry-After and the rate-limit headers. Counted here, once per refusal.
import { GatewayError } from '../../errors/gateway-error.js';
import type { Finding } from '../../guardrails/types.js';
import type { Refusal } from '../../ledger/ledger.js';
import { insufficientQuotaTotal, ledgerRefusalsTotal, rateLimitedTotal } from '../../metrics/registry.js';

export interface RefusalContext {
  readonly routeName: string;
  /** What the request needed, in words: its max_tokens, or the minimum output. */
  readonly need: string;
  readonly limitHeaders: Record<string, string> | undefined;
  readonly nowMs: number;
}

/** 402 for money (credits or a spend cap), 429 for a rate limit shared across instances. */
export function refusalToError(refusal: Refusal, ctx: RefusalContext): GatewayError {
  ledgerRefusalsTotal.inc({ reason: refusal });
  if (refusal === 'funds') {
    insufficientQuotaTotal.inc();
    return new GatewayError('NR_INSUFFICIENT_QUOTA', `Your organization's credits cannot cover this request (${ctx.need} on ${ctx.routeName}).`, { headers: ctx.limitHeaders });
  }
  const limited = sharedLimitRefusal(refusal);
  if (limited !== undefined) {
    rateLimitedTotal.inc();
    // Another instance used the rest of this minute's allowance: this one's counts were behind.
    const headers = { ...ctx.limitHeaders, [`x-ratelimit-remaining-${limited}`]: '0' };
    return new GatewayError('NR_RATE_LIMITED', undefined, { retryAfterS: secondsToNextMinute(ctx.nowMs), headers });
  }
  const cap = spendCapOf(refusal);
  const resetsAt = cap.period === 'daily' ? nextUtcDay(ctx.nowMs) : nextUtcMonth(ctx.nowMs);
  return new GatewayError(
    'NR_SPEND_CAP_REACHED',
    `The ${cap.period} spend cap of this ${cap.level} cannot cover this request; it resets at ${new Date(resetsAt).toISOString()}.`,
    { retryAfterS: Math.max(1, Math.ceil((resetsAt - ctx.nowMs) / 1000)), headers: ctx.limitHeaders },
  );
}

/** A guardrail block: names the rule, never the matched text. */
export function guardrailError(finding: Finding, stage: 'input' | 'output'): GatewayError {
  const what = stage === 'input' ? 'The prompt' : 'The response';
  return new GatewayError('NR_GUARDRAIL_VIOLATION', `${what} was blocked by guardrail rule ${finding.rule}.`, { param: stage === 'input' ? 'messages' : null });
}

/** Which header a shared rate-limit refusal zeroes: `requests` or `tokens`; undefined for other refusals. */
function sharedLimitRefusal(refusal: Refusal): 'requests' | 'tokens' | undefined {
  if (refusal === 'key_rpm' || refusal === 'team_rpm') return 'requests';
  if (refusal === 'key_tpm' || refusal === 'team_tpm') return 'tokens';
  return undefined;
}

function spendCapOf(refusal: Refusal): { level: 'key' | 'team'; period: 'daily' | 'monthly' } {
  return { level: refusal.startsWith('team') ? 'team' : 'key', period: refusal.includes('monthly') ? 'monthly' : 'daily' };
}

const secondsToNextMinute = (nowMs: number) => Math.max(1, Math.ceil((60_000 - (nowMs % 60_000)) / 1000));

function nextUtcDay(nowMs: number): number {
  const d = new Date(nowMs);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
}

function nextUtcMonth(nowMs: number): number {
  const d = new Date(nowMs);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}
