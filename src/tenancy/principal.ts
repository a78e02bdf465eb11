// Who is calling: the platform (master key) or an API key of one org.
import type { KeyGuardrails } from '../guardrails/types.js';
import type { LimitScope } from './rate-limiter.js';

// Callers that reach the guardrail type through the principal keep working.
export type { KeyGuardrails } from '../guardrails/types.js';

/** How much of an org's requests nemo.request_log_entries keeps: nothing, metadata, or bodies too. */
export type LoggingLevel = 'none' | 'metadata' | 'full';

export type Principal =
  | { readonly kind: 'platform' }
  | {
      readonly kind: 'key';
      readonly orgId: string;
      readonly keyId: string;
      readonly teamId: string | null;
      readonly role: 'admin' | 'member';
      /** The models this key may use (its own list within the org's); undefined: every model. */
      readonly allowedModels: ReadonlySet<string> | undefined;
      /** Epoch ms, or undefined for keys that never expire. */
      readonly expiresAtMs: number | undefined;
      /** Per-minute limits of the key and of its team (empty: none). */
      readonly limits: readonly LimitScope[];
      /** undefined: no guardrail applies, the hot path skips them. */
      readonly guardrails?: KeyGuardrails | undefined;
      /** The org's request-log level and retention in days (null: the gateway's default). */
      readonly loggingLevel: LoggingLevel;
      readonly logRetentionDays: number | null;
      /** The key or its team has a daily or monthly spend cap: its requests take per-request holds, never a credit lease. */
      readonly spendCapped: boolean;
    };

export type KeyPrincipal = Extract<Principal, { kind: 'key' }>;

export function mayUseModel(principal: KeyPrincipal, model: string): boolean {
  return principal.allowedModels === undefined || principal.allowedModels.has(model);
}
