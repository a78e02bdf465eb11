import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { Database } from '../../../src/db/database.js';
import { GatewayError } from '../../../src/errors/gateway-error.js';
import { RequestAuthenticator, type AuthOutcome } from '../../../src/http/authenticate.js';
import { apiKeyDigest, generateApiKey } from '../../../src/tenancy/api-keys.js';
import { KeyAuthenticator } from '../../../src/tenancy/key-authenticator.js';
import type { KeyPrincipal, Principal } from '../../../src/tenancy/principal.js';

const MASTER = 'master-key-for-tests-0123456789';
const ORG = '00000000-0000-4000-8000-00000000000a';

function principal(patch: Partial<KeyPrincipal> = {}): KeyPrincipal {
  return { kind: 'key', orgId: ORG, keyId: 'key-1', teamId: null, role: 'member', allowedModels: undefined, expiresAtMs: undefined, limits: [], loggingLevel: 'metadata', logRetentionDays: null, spendCapped: false, ...patch };
}

/** A stand-in KeyAuthenticator: `cache` answers cached(), `db` answers lookup(); both record their arguments. */
function fakeKeys(cache = new Map<string, KeyPrincipal | null>(), db = new Map<string, KeyPrincipal | null>()) {
  const cachedCalls: string[] = [];
  const lookupCalls: string[] = [];
  const keys = {
    cached(id: string) {
      cachedCalls.push(id);
      return cache.get(id);
    },
    lookup(id: string) {
      lookupCalls.push(id);
      return Promise.resolve(db.get(id) ?? null);
    },
  } as unknown as KeyAuthenticator;
  return { keys, cache, db, cachedCalls, lookupCalls };
}

/** A real KeyAuthenticator, caching as if listening, over a Database that answers `rows` by key digest. */
function realKeys(rows: Map<string, Record<string, unknown>>) {
  let queries = 0;
  const db = {
    pool: {} as pg.Pool,
    appConnection: {},
    kind: 'external',
    withTenant: () => Promise.reject(new Error('not in unit tests')),
    close: async () => undefined,
    query(_text: string, values?: unknown[]) {
      queries++;
      const found = rows.get((values?.[0] as Buffer).toString('base64'));
      return Promise.resolve({ rows: found === undefined ? [] : [found], rowCount: found === undefined ? 0 : 1 });
    },
  } as unknown as Database;
  const keys = new KeyAuthenticator(db, { ttlMs: 60_000, negativeTtlMs: 60_000, negativeMaxEntries: 100 });
  (keys as unknown as { listening: boolean }).listening = true;
  return { keys, queries: () => queries };
}

function keyRow(patch: Record<string, unknown> = {}): Record<string, unknown> {
  return { org_id: ORG, key_id: 'key-1', team_id: null, role: 'member', allowed_models: null, org_allowed_models: null, expires_at: null, revoked_at: null, ...patch };
}

function expectUnauthorized(outcome: Principal | GatewayError, message?: RegExp): void {
  expect(outcome).toBeInstanceOf(GatewayError);
  const err = outcome as GatewayError;
  expect(err.code).toBe('NR_UNAUTHORIZED');
  expect(err.status).toBe(401);
  if (message) expect(err.message).toMatch(message);
}

/** Whatever the outcome, its settled value; and whether it was synchronous. */
async function settle(outcome: AuthOutcome): Promise<{ value: Principal | GatewayError; sync: boolean }> {
  return outcome instanceof Promise ? { value: await outcome, sync: false } : { value: outcome, sync: true };
}

describe('RequestAuthenticator: credentials', () => {
  it('answers 401 without any credential', () => {
    const { keys, cachedCalls, lookupCalls } = fakeKeys();
    const auth = new RequestAuthenticator(keys, MASTER);
    const outcome = auth.authenticate('', '');
    expect(outcome).not.toBeInstanceOf(Promise);
    expectUnauthorized(outcome as GatewayError);
    expect(cachedCalls).toHaveLength(0);
    expect(lookupCalls).toHaveLength(0);
  });

  it.each(['', 'Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', 'Token abc'])('answers 401 for Authorization %j alone', (header) => {
    const auth = new RequestAuthenticator(fakeKeys().keys, MASTER);
    expectUnauthorized(auth.authenticate(header, '') as GatewayError);
  });

  it.each(['Bearer', 'bearer', 'BEARER', 'bEaReR'])('accepts the %s scheme in any case', async (scheme) => {
    const { secret } = generateApiKey();
    const p = principal();
    const { keys } = fakeKeys(new Map([[apiKeyDigest(secret), p]]));
    const auth = new RequestAuthenticator(keys, MASTER);
    expect(auth.authenticate(`${scheme} ${secret}`, '')).toBe(p);
  });

  it('trims whitespace around the bearer credential', () => {
    const { secret } = generateApiKey();
    const p = principal();
    const auth = new RequestAuthenticator(fakeKeys(new Map([[apiKeyDigest(secret), p]])).keys, MASTER);
    expect(auth.authenticate(`Bearer   ${secret}  `, '')).toBe(p);
  });

  it('accepts x-api-key', () => {
    const { secret } = generateApiKey();
    const p = principal();
    const { keys, cachedCalls } = fakeKeys(new Map([[apiKeyDigest(secret), p]]));
    const auth = new RequestAuthenticator(keys, MASTER);
    expect(auth.authenticate('', secret)).toBe(p);
    expect(cachedCalls).toEqual([apiKeyDigest(secret)]);
  });

  it('falls back to x-api-key when Authorization is not Bearer', () => {
    const { secret } = generateApiKey();
    const p = principal();
    const auth = new RequestAuthenticator(fakeKeys(new Map([[apiKeyDigest(secret), p]])).keys, MASTER);
    expect(auth.authenticate('Basic dXNlcjpwYXNz', secret)).toBe(p);
  });
});

describe('RequestAuthenticator: the master key', () => {
  it('the master key is the platform, synchronously, through either header', () => {
    const { keys, cachedCalls, lookupCalls } = fakeKeys();
    const auth = new RequestAuthenticator(keys, MASTER);
    expect(auth.authenticate(`Bearer ${MASTER}`, '')).toEqual({ kind: 'platform' });
    expect(auth.authenticate('', MASTER)).toEqual({ kind: 'platform' });
    expect(cachedCalls).toHaveLength(0);
    expect(lookupCalls).toHaveLength(0);
  });

  it('a wrong string of the same length is 401', () => {
    const auth = new RequestAuthenticator(fakeKeys().keys, MASTER);
    const wrong = `${MASTER.slice(0, -1)}X`;
    expect(wrong).toHaveLength(MASTER.length);
    expectUnauthorized(auth.authenticate(`Bearer ${wrong}`, '') as GatewayError);
    expectUnauthorized(auth.authenticate('', wrong) as GatewayError);
  });

  it('a prefix or an extension of the master key is 401', () => {
    const auth = new RequestAuthenticator(fakeKeys().keys, MASTER);
    expectUnauthorized(auth.authenticate(`Bearer ${MASTER.slice(0, -1)}`, '') as GatewayError);
    expectUnauthorized(auth.authenticate(`Bearer ${MASTER}x`, '') as GatewayError);
  });

  it('without a master key, nothing is the platform', () => {
    const auth = new RequestAuthenticator(fakeKeys().keys, undefined);
    expectUnauthorized(auth.authenticate(`Bearer ${MASTER}`, '') as GatewayError);
    expectUnauthorized(auth.authenticate('Bearer x', '') as GatewayError);
  });
});

describe('RequestAuthenticator: API keys', () => {
  it('a cached principal answers synchronously', () => {
    const { secret } = generateApiKey();
    const p = principal({ expiresAtMs: Date.now() + 60_000 });
    const { keys, lookupCalls } = fakeKeys(new Map([[apiKeyDigest(secret), p]]));
    const auth = new RequestAuthenticator(keys, MASTER);
    expect(auth.authenticate(`Bearer ${secret}`, '')).toBe(p);
    expect(lookupCalls).toHaveLength(0);
  });

  it('an uncached key is looked up by its digest and answered through a promise', async () => {
    const { secret } = generateApiKey();
    const p = principal();
    const { keys, lookupCalls } = fakeKeys(new Map(), new Map([[apiKeyDigest(secret), p]]));
    const auth = new RequestAuthenticator(keys, MASTER);
    const outcome = auth.authenticate(`Bearer ${secret}`, '');
    expect(outcome).toBeInstanceOf(Promise);
    expect(await outcome).toBe(p);
    expect(lookupCalls).toEqual([apiKeyDigest(secret)]);
  });

  it('an expired cached key is 401 mentioning expiry, synchronously', () => {
    const { secret } = generateApiKey();
    const { keys } = fakeKeys(new Map([[apiKeyDigest(secret), principal({ expiresAtMs: Date.now() - 1_000 })]]));
    const auth = new RequestAuthenticator(keys, MASTER);
    const outcome = auth.authenticate(`Bearer ${secret}`, '');
    expect(outcome).not.toBeInstanceOf(Promise);
    expectUnauthorized(outcome as GatewayError, /expired/i);
  });

  it('an expired key looked up is 401 mentioning expiry, through the promise (resolved, not rejected)', async () => {
    const { secret } = generateApiKey();
    const { keys } = fakeKeys(new Map(), new Map([[apiKeyDigest(secret), principal({ expiresAtMs: Date.now() - 1_000 })]]));
    const auth = new RequestAuthenticator(keys, MASTER);
    const outcome = auth.authenticate(`Bearer ${secret}`, '');
    expect(outcome).toBeInstanceOf(Promise);
    expectUnauthorized(await outcome, /expired/i);
  });

  it('a cached unknown key is 401, synchronously', () => {
    const { secret } = generateApiKey();
    const { keys, lookupCalls } = fakeKeys(new Map([[apiKeyDigest(secret), null]]));
    const auth = new RequestAuthenticator(keys, MASTER);
    const outcome = auth.authenticate(`Bearer ${secret}`, '');
    expect(outcome).not.toBeInstanceOf(Promise);
    expectUnauthorized(outcome as GatewayError);
    expect(lookupCalls).toHaveLength(0);
  });

  it('a key-shaped secret that is unknown is 401', async () => {
    const auth = new RequestAuthenticator(fakeKeys().keys, MASTER);
    const { value } = await settle(auth.authenticate(`Bearer ${generateApiKey().secret}`, ''));
    expectUnauthorized(value);
  });

  it('a secret that is not key-shaped never reaches the key cache', () => {
    const { keys, cachedCalls, lookupCalls } = fakeKeys();
    const auth = new RequestAuthenticator(keys, MASTER);
    expectUnauthorized(auth.authenticate(`Bearer sk-nemo-${'A'.repeat(42)}`, '') as GatewayError);
    expectUnauthorized(auth.authenticate('Bearer sk-proj-abc', '') as GatewayError);
    expect(cachedCalls).toHaveLength(0);
    expect(lookupCalls).toHaveLength(0);
  });
});

describe('RequestAuthenticator over a real KeyAuthenticator', () => {
  it('a known key: looked up once, then answered from the cache', async () => {
    const { secret } = generateApiKey();
    const { keys, queries } = realKeys(new Map([[apiKeyDigest(secret), keyRow({ key_id: 'real' })]]));
    const auth = new RequestAuthenticator(keys, MASTER);
    const first = await settle(auth.authenticate(`Bearer ${secret}`, ''));
    expect(first.sync).toBe(false);
    expect((first.value as KeyPrincipal).keyId).toBe('real');
    const second = await settle(auth.authenticate('', secret));
    expect(second.sync).toBe(true);
    expect(second.value).toBe(first.value);
    expect(queries()).toBe(1);
  });

  it('an unknown key-shaped secret: 401 via the promise, then 401 from the negative cache', async () => {
    const { keys, queries } = realKeys(new Map());
    const auth = new RequestAuthenticator(keys, MASTER);
    const { secret } = generateApiKey();
    const first = await settle(auth.authenticate(`Bearer ${secret}`, ''));
    expect(first.sync).toBe(false);
    expectUnauthorized(first.value);
    const second = await settle(auth.authenticate(`Bearer ${secret}`, ''));
    expect(second.sync).toBe(true);
    expectUnauthorized(second.value);
    expect(queries()).toBe(1);
  });

  it('a revoked key is 401', async () => {
    const { secret } = generateApiKey();
    const { keys } = realKeys(new Map([[apiKeyDigest(secret), keyRow({ revoked_at: new Date() })]]));
    const auth = new RequestAuthenticator(keys, MASTER);
    expectUnauthorized((await settle(auth.authenticate(`Bearer ${secret}`, ''))).value);
  });

  it('an expired key is 401 mentioning expiry, via the promise and then synchronously from the cache', async () => {
    const { secret } = generateApiKey();
    const { keys } = realKeys(new Map([[apiKeyDigest(secret), keyRow({ expires_at: new Date(Date.now() - 1_000) })]]));
    const auth = new RequestAuthenticator(keys, MASTER);
    const first = await settle(auth.authenticate(`Bearer ${secret}`, ''));
    expect(first.sync).toBe(false);
    expectUnauthorized(first.value, /expired/i);
    const second = await settle(auth.authenticate(`Bearer ${secret}`, ''));
    expect(second.sync).toBe(true);
    expectUnauthorized(second.value, /expired/i);
  });

  it('a key not yet expired passes', async () => {
    const { secret } = generateApiKey();
    const { keys } = realKeys(new Map([[apiKeyDigest(secret), keyRow({ expires_at: new Date(Date.now() + 3_600_000) })]]));
    const auth = new RequestAuthenticator(keys, MASTER);
    expect(((await settle(auth.authenticate(`Bearer ${secret}`, ''))).value as Principal).kind).toBe('key');
  });
});
