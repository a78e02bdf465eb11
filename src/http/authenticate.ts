// Who is calling, from the request headers: the platform master key (compared in constant time),
// or an org API key (`Authorization: Bearer sk-nemo-...` or `x-api-key`). Synchronous when the key
// cache knows the answer, a promise when Postgres must be asked.
import { createHash, timingSafeEqual } from 'node:crypto';
import { hashApiKey, looksLikeApiKey } from '../tenancy/api-keys.js';
import type { KeyAuthenticator } from '../tenancy/key-authenticator.js';
import type { Principal } from '../tenancy/principal.js';

export type AuthOutcome = Principal | null | Promise<Principal | null>;

export class RequestAuthenticator {
  private readonly masterDigest: Buffer | undefined;

  constructor(
    private readonly keys: KeyAuthenticator,
    masterKey: string | undefined,
  ) {
    this.masterDigest = masterKey === undefined ? undefined : digest(masterKey);
  }

  /** null: no credentials, or credentials that match nothing. */
  authenticate(authorization: string, xApiKey: string): AuthOutcome {
    const secret = credentialOf(authorization, xApiKey);
    if (secret === undefined) return null;
    if (looksLikeApiKey(secret)) {
      const hash = hashApiKey(secret);
      const cached = this.keys.cached(hash);
      return cached !== undefined ? cached : this.keys.lookup(hash);
    }
    if (this.masterDigest !== undefined && timingSafeEqual(digest(secret), this.masterDigest)) return PLATFORM;
    return null;
  }
}

const PLATFORM: Principal = Object.freeze({ kind: 'platform' });

function credentialOf(authorization: string, xApiKey: string): string | undefined {
  if (authorization.length > 7 && authorization.slice(0, 7).toLowerCase() === 'bearer ') return authorization.slice(7).trim();
  if (xApiKey !== '') return xApiKey.trim();
  return undefined;
}

/** Fixed-length digests so the constant-time comparison does not leak the key's length. */
function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
