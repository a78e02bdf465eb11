// Who is calling: the platform (master key) or an API key of one org.
import type { LimitScope } from './rate-limiter.js';

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
    };

export type KeyPrincipal = Extract<Principal, { kind: 'key' }>;

export function mayUseModel(principal: KeyPrincipal, model: string): boolean {
  return principal.allowedModels === undefined || principal.allowedModels.has(model);
}
