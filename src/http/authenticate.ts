// Who is calling, from the request headers: the platform master key (compared in constant time),
// or an org API key (`Authorization: Bearer sk-nemo-...` or `x-api-key`), or with litellm.enabled a
// LiteLLM virtual key (any other `sk-...`). Synchronous when the key cache knows the answer, a
// promise when Postgres must be asked.
import { createHash, timingSafeEqual } from 'node:crypto';
import { GatewayError } from '../errors/gateway-error.js';
import { apiKeyDigest, looksLikeApiKey } from '../tenancy/api-keys.js';
import type { KeyAnswer, KeyAuthenticator } from '../tenancy/key-authenticator.js';
import type { Principal } from '../tenancy/principal.js';

/** The caller, or the 401 to answer; a promise while Postgres is asked. */
export type AuthOutcome = Principal | GatewayError | Promise<Principal | GatewayError>;

export class RequestAuthenticator {
  private readonly masterDigest: Buffer | undefined;

  constructor(
    private readonly keys: KeyAuthenticator,
    masterKey: string | undefined,
    /** LiteLLM's virtual keys are keys here too (litellm.enabled). */
    private readonly litellmKeys = false,
  ) {
    this.masterDigest = masterKey === undefined ? undefined : digest(masterKey);
  }

  authenticate(authorization: string, xApiKey: string): AuthOutcome {
    const secret = credentialOf(authorization, xApiKey);
    if (secret === undefined) return UNAUTHORIZED;
    if (looksLikeApiKey(secret)) return this.key(secret);
    // The master key may start with sk- too: it is compared before any LiteLLM lookup.
    if (this.masterDigest !== undefined && timingSafeEqual(digest(secret), this.masterDigest)) return PLATFORM;
    if (this.litellmKeys && looksLikeLiteLLMKey(secret)) return this.key(secret);
    return UNAUTHORIZED;
  }

  private key(secret: string): AuthOutcome {
    const digest = apiKeyDigest(secret);
    const cached = this.keys.cached(digest);
    return cached !== undefined ? checkKey(cached) : this.keys.lookup(digest).then(checkKey);
  }
}

/** LiteLLM requires its virtual keys to start with sk-; a bound keeps garbage from being hashed. */
function looksLikeLiteLLMKey(secret: string): boolean {
  return secret.length > 3 && secret.length <= MAX_LITELLM_KEY_CHARS && secret.startsWith('sk-');
}
const MAX_LITELLM_KEY_CHARS = 256;

/** Every route sees the same answer for unknown, revoked and expired keys. */
function checkKey(answer: KeyAnswer): Principal | GatewayError {
  if (answer === null) return UNAUTHORIZED;
  if (answer.kind === 'refused') return answer.reason === 'blocked' ? BLOCKED : NO_ORG;
  if (answer.expiresAtMs !== undefined && answer.expiresAtMs <= Date.now()) return EXPIRED;
  return answer;
}

const UNAUTHORIZED = new GatewayError('NR_UNAUTHORIZED');
const EXPIRED = new GatewayError('NR_UNAUTHORIZED', 'The API key has expired.');
const BLOCKED = new GatewayError('NR_UNAUTHORIZED', 'The API key is blocked.');
const NO_ORG = new GatewayError('NR_UNAUTHORIZED', 'The API key belongs to no organization this gateway serves.');

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
