// Who is calling, from the request headers: the platform master key (compared in constant time),
// or an org API key (`Authorization: Bearer sk-nemo-...` or `x-api-key`). Synchronous when the key
// cache knows the answer, a promise when Postgres must be asked.
import { createHash, timingSafeEqual } from 'node:crypto';
import { GatewayError } from '../errors/gateway-error.js';
import { apiKeyDigest, looksLikeApiKey } from '../tenancy/api-keys.js';
import type { KeyAuthenticator } from '../tenancy/key-authenticator.js';
import type { KeyPrincipal, Principal } from '../tenancy/principal.js';

/** The caller, or the 401 to answer; a promise while Postgres is asked. */
export type AuthOutcome = Principal | GatewayError | Promise<Principal | GatewayError>;

export class RequestAuthenticator {
  private readonly masterDigest: Buffer | undefined;

  constructor(
    private readonly keys: KeyAuthenticator,
    masterKey: string | undefined,
  ) {
    this.masterDigest = masterKey === undefined ? undefined : digest(masterKey);
  }

  authenticate(authorization: string, xApiKey: string): AuthOutcome {
    const secret = credentialOf(authorization, xApiKey);
    if (secret === undefined) return UNAUTHORIZED;
    if (looksLikeApiKey(secret)) {
      const digest = apiKeyDigest(secret);
      const cached = this.keys.cached(digest);
      return cached !== undefined ? checkKey(cached) : this.keys.lookup(digest).then(checkKey);
    }
    if (this.masterDigest !== undefined && timingSafeEqual(digest(secret), this.masterDigest)) return PLATFORM;
    return UNAUTHORIZED;
  }
}

/** Every route sees the same answer for unknown, revoked and expired keys. */
function checkKey(principal: KeyPrincipal | null): Principal | GatewayError {
  if (principal === null) return UNAUTHORIZED;
  if (principal.expiresAtMs !== undefined && principal.expiresAtMs <= Date.now()) return EXPIRED;
  return principal;
}

const UNAUTHORIZED = new GatewayError('NR_UNAUTHORIZED');
const EXPIRED = new GatewayError('NR_UNAUTHORIZED', 'The API key has expired.');

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
