// Requests- and tokens-per-minute limits per API key and per team, counted in this process over
// fixed one-minute windows (aligned to the clock minute): exact within one instance, and no
// database round trip for a request already over. Across instances the shared windows in
// Postgres decide (nemo.ledger_apply_v2, through the ledger's batched writer).

export interface LimitScope {
  /** `key:<id>` or `team:<id>`. */
  readonly id: string;
  readonly rpm: number | undefined;
  readonly tpm: number | undefined;
}

export interface LimitState {
  readonly limitRequests: number | undefined;
  readonly remainingRequests: number | undefined;
  readonly limitTokens: number | undefined;
  readonly remainingTokens: number | undefined;
  /** Seconds until the current window ends. */
  readonly resetS: number;
}

export type Admission = { readonly ok: true; readonly state: LimitState } | { readonly ok: false; readonly state: LimitState; readonly retryAfterS: number };

interface Window {
  start: number;
  requests: number;
  tokens: number;
}

const WINDOW_MS = 60_000;

export class RateLimiter {
  private readonly windows = new Map<string, Window>();
  private sweptAt = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** Admits a request of `tokens` (its bound) when every scope has room, and counts it in all of them. */
  admit(scopes: readonly LimitScope[], tokens: number): Admission {
    const now = this.now();
    const start = now - (now % WINDOW_MS);
    const resetS = Math.max(1, Math.ceil((start + WINDOW_MS - now) / 1000));
    this.sweep(start);
    let tightest: LimitState | undefined;
    let refused = false;
    const current: Window[] = [];
    for (const scope of scopes) {
      if (scope.rpm === undefined && scope.tpm === undefined) continue;
      let window = this.windows.get(scope.id);
      if (window === undefined || window.start !== start) {
        window = { start, requests: 0, tokens: 0 };
        this.windows.set(scope.id, window);
      }
      current.push(window);
      const requestsLeft = scope.rpm === undefined ? undefined : scope.rpm - window.requests;
      const tokensLeft = scope.tpm === undefined ? undefined : scope.tpm - window.tokens;
      if ((requestsLeft !== undefined && requestsLeft < 1) || (tokensLeft !== undefined && tokensLeft < tokens)) refused = true;
      const state: LimitState = { limitRequests: scope.rpm, remainingRequests: requestsLeft, limitTokens: scope.tpm, remainingTokens: tokensLeft, resetS };
      if (tightest === undefined || tighter(state, tightest)) tightest = state;
    }
    if (tightest === undefined) return { ok: true, state: { limitRequests: undefined, remainingRequests: undefined, limitTokens: undefined, remainingTokens: undefined, resetS } };
    if (refused) return { ok: false, state: clampRemaining(tightest), retryAfterS: resetS };
    for (const window of current) {
      window.requests++;
      window.tokens += tokens;
    }
    return {
      ok: true,
      state: clampRemaining({
        ...tightest,
        remainingRequests: tightest.remainingRequests === undefined ? undefined : tightest.remainingRequests - 1,
        remainingTokens: tightest.remainingTokens === undefined ? undefined : tightest.remainingTokens - tokens,
      }),
    };
  }

  /**
   * Takes back one admitted request: the ledger refused it after the local windows counted it
   * (no credit, a spend cap, or another instance used the shared allowance). A window that has
   * turned over since is left alone.
   */
  giveBack(scopes: readonly LimitScope[], tokens: number, admittedAtMs: number): void {
    const start = admittedAtMs - (admittedAtMs % WINDOW_MS);
    for (const scope of scopes) {
      const window = this.windows.get(scope.id);
      if (window === undefined || window.start !== start) continue;
      window.requests = Math.max(0, window.requests - 1);
      window.tokens = Math.max(0, window.tokens - tokens);
    }
  }

  /** Old windows go once a minute: memory follows the active keys and teams. */
  private sweep(currentStart: number): void {
    if (this.sweptAt === currentStart) return;
    this.sweptAt = currentStart;
    for (const [id, window] of this.windows) if (window.start < currentStart) this.windows.delete(id);
  }
}

/** The scope with fewer requests left (then fewer tokens) is the one a client should see. */
function tighter(a: LimitState, b: LimitState): boolean {
  const ar = a.remainingRequests ?? Infinity;
  const br = b.remainingRequests ?? Infinity;
  if (ar !== br) return ar < br;
  return (a.remainingTokens ?? Infinity) < (b.remainingTokens ?? Infinity);
}

function clampRemaining(state: LimitState): LimitState {
  return {
    ...state,
    remainingRequests: state.remainingRequests === undefined ? undefined : Math.max(0, state.remainingRequests),
    remainingTokens: state.remainingTokens === undefined ? undefined : Math.max(0, state.remainingTokens),
  };
}

/** OpenAI's header names, so clients that back off on them work unchanged. */
export function rateLimitHeaders(state: LimitState): Record<string, string> {
  const headers: Record<string, string> = {};
  if (state.limitRequests !== undefined) {
    headers['x-ratelimit-limit-requests'] = String(state.limitRequests);
    headers['x-ratelimit-remaining-requests'] = String(state.remainingRequests);
    headers['x-ratelimit-reset-requests'] = `${state.resetS}s`;
  }
  if (state.limitTokens !== undefined) {
    headers['x-ratelimit-limit-tokens'] = String(state.limitTokens);
    headers['x-ratelimit-remaining-tokens'] = String(state.remainingTokens);
    headers['x-ratelimit-reset-tokens'] = `${state.resetS}s`;
  }
  return headers;
}
