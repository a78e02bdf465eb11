import { describe, expect, it } from 'vitest';
import { RateLimiter, rateLimitHeaders, type LimitScope } from '../../../src/tenancy/rate-limiter.js';

const MINUTE = 60_000;

function limiterAt(startMs: number) {
  const clock = { now: startMs };
  return { limiter: new RateLimiter(() => clock.now), clock };
}

describe('RateLimiter', () => {
  const key: LimitScope = { id: 'key:a', rpm: 3, tpm: undefined };

  it('admits exactly rpm requests in a minute, then refuses until the next window', () => {
    const { limiter, clock } = limiterAt(10 * MINUTE + 15_000);
    const remaining = [1, 2, 3].map(() => limiter.admit([key], 10));
    expect(remaining.map((a) => a.ok)).toEqual([true, true, true]);
    expect(remaining.map((a) => a.state.remainingRequests)).toEqual([2, 1, 0]);
    const refused = limiter.admit([key], 10);
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.retryAfterS).toBe(45);
    // A refused request is not counted: the next window starts fresh.
    clock.now = 11 * MINUTE;
    expect(limiter.admit([key], 10)).toMatchObject({ ok: true, state: { remainingRequests: 2, resetS: 60 } });
  });

  it('counts tokens against tpm and refuses a request that would exceed it', () => {
    const { limiter } = limiterAt(0);
    const scope: LimitScope = { id: 'key:t', rpm: undefined, tpm: 100 };
    expect(limiter.admit([scope], 60)).toMatchObject({ ok: true, state: { remainingTokens: 40 } });
    expect(limiter.admit([scope], 50).ok).toBe(false);
    expect(limiter.admit([scope], 40)).toMatchObject({ ok: true, state: { remainingTokens: 0 } });
  });

  it('admits only when every scope has room, and then counts in all of them (a team shared by keys)', () => {
    const { limiter } = limiterAt(0);
    const team: LimitScope = { id: 'team:x', rpm: 2, tpm: undefined };
    const keyA: LimitScope = { id: 'key:a', rpm: 10, tpm: undefined };
    const keyB: LimitScope = { id: 'key:b', rpm: 10, tpm: undefined };
    expect(limiter.admit([keyA, team], 1).ok).toBe(true);
    expect(limiter.admit([keyB, team], 1)).toMatchObject({ ok: true, state: { limitRequests: 2, remainingRequests: 0 } });
    expect(limiter.admit([keyA, team], 1).ok).toBe(false);
    // keyA's own count did not move on the refusal: 9 left after its one admitted request.
    expect(limiter.admit([keyA], 1)).toMatchObject({ ok: true, state: { remainingRequests: 8 } });
  });

  it('reports no limits when no scope has one', () => {
    const { limiter } = limiterAt(0);
    const admission = limiter.admit([{ id: 'key:free', rpm: undefined, tpm: undefined }], 1_000_000);
    expect(admission.ok).toBe(true);
    expect(rateLimitHeaders(admission.state)).toEqual({});
  });

  it('renders OpenAI-style headers', () => {
    expect(rateLimitHeaders({ limitRequests: 60, remainingRequests: 59, limitTokens: 1000, remainingTokens: 900, resetS: 12 })).toEqual({
      'x-ratelimit-limit-requests': '60',
      'x-ratelimit-remaining-requests': '59',
      'x-ratelimit-reset-requests': '12s',
      'x-ratelimit-limit-tokens': '1000',
      'x-ratelimit-remaining-tokens': '900',
      'x-ratelimit-reset-tokens': '12s',
    });
  });

  it('forgets the windows of past minutes', () => {
    const { limiter, clock } = limiterAt(0);
    for (let i = 0; i < 1000; i++) limiter.admit([{ id: `key:${i}`, rpm: 5, tpm: undefined }], 1);
    clock.now = MINUTE;
    limiter.admit([key], 1);
    expect((limiter as unknown as { windows: Map<string, unknown> }).windows.size).toBe(1);
  });
});
