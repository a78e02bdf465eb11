import type pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import type { Database } from '../../../src/db/database.js';
import { apiKeyDigest, generateApiKey, hashApiKey } from '../../../src/tenancy/api-keys.js';
import { KeyAuthenticator, type KeyCacheOptions, type KeyRow } from '../../../src/tenancy/key-authenticator.js';
import type { KeyPrincipal } from '../../../src/tenancy/principal.js';

const ORG_A = '00000000-0000-4000-8000-00000000000a';
const ORG_B = '00000000-0000-4000-8000-00000000000b';
const OPTIONS: KeyCacheOptions = { ttlMs: 30_000, negativeTtlMs: 5_000, negativeMaxEntries: 100 };

function row(patch: Partial<KeyRow> = {}): KeyRow {
  return {
    org_id: ORG_A,
    key_id: 'key-1',
    team_id: null,
    role: 'member',
    allowed_models: null,
    org_allowed_models: null,
    expires_at: null,
    revoked_at: null,
    logging_level: 'metadata',
    log_retention_days: null,
    spend_capped: false,
    key_rpm_limit: null,
    key_tpm_limit: null,
    team_rpm_limit: null,
    team_tpm_limit: null,
    org_guardrail_policy: {},
    team_guardrail_policy: null,
    key_guardrail_policy: null,
    ...patch,
  };
}

interface Deferred {
  resolve(rows: KeyRow[]): void;
  reject(err: unknown): void;
}

/**
 * A Database whose query() answers from `rows` (keyed by the base64 of the bytes it is given),
 * or, when `hold` is set, waits until the test settles it. Every call is recorded.
 */
function fakeDb() {
  const rows = new Map<string, KeyRow>();
  const calls: Array<{ text: string; values: unknown[] | undefined }> = [];
  const held: Deferred[] = [];
  const state = { hold: false };
  const db = {
    pool: {} as pg.Pool,
    appConnection: {},
    kind: 'external',
    withTenant: () => Promise.reject(new Error('not in unit tests')),
    close: async () => undefined,
    query(text: string, values?: unknown[]) {
      calls.push({ text, values });
      const answer = (found: KeyRow[]) => ({ rows: found, rowCount: found.length, command: 'SELECT', oid: 0, fields: [] });
      if (state.hold) {
        return new Promise((resolve, reject) => {
          held.push({ resolve: (found) => resolve(answer(found)), reject });
        });
      }
      const hash = values?.[0] as Buffer;
      const found = rows.get(hash.toString('base64'));
      return Promise.resolve(answer(found === undefined ? [] : [found]));
    },
  } as unknown as Database;
  return { db, rows, calls, held, state };
}

/** A fresh key: its secret, and the digest the authenticator is keyed by. */
function newKey(): { secret: string; id: string } {
  const { secret } = generateApiKey();
  return { secret, id: apiKeyDigest(secret) };
}

interface Internals {
  listening: boolean;
  unknownUntil: Map<string, number>;
  byHash: Map<string, unknown>;
  pending: Map<string, unknown>;
  onNotification(payload: string | undefined): void;
  onListenerLost(client: pg.Client, err: Error | undefined): void;
}
const internals = (auth: object) => auth as unknown as Internals;
/** As startListening would after LISTEN succeeded. */
const listen = (auth: object) => {
  internals(auth).listening = true;
};

const toClose: KeyAuthenticator[] = [];
afterEach(async () => {
  for (const auth of toClose.splice(0)) await auth.close();
});

/** The authenticator as these tests see it: nemo keys only, so an answer is a principal or null (LiteLLM's refusals are covered by the LiteLLM suite). */
type NativeKeys = Omit<KeyAuthenticator, 'cached' | 'lookup'> & {
  cached(id: string): KeyPrincipal | null | undefined;
  lookup(id: string): Promise<KeyPrincipal | null>;
};

function setup(options: Partial<KeyCacheOptions> = {}, listening = true) {
  const fake = fakeDb();
  const clock = { t: 1_000_000 };
  const auth = new KeyAuthenticator(fake.db, { ...OPTIONS, ...options }, () => clock.t);
  toClose.push(auth);
  if (listening) listen(auth);
  return { ...fake, clock, auth: auth as unknown as NativeKeys };
}

describe('KeyAuthenticator: lookups', () => {
  it('asks Postgres once on a miss, with the SHA-256 bytes of the key', async () => {
    const { auth, rows, calls } = setup();
    const key = newKey();
    rows.set(key.id, row({ key_id: 'k1', team_id: 'team-9', role: 'admin' }));
    expect(auth.cached(key.id)).toBeUndefined();
    const principal = await auth.lookup(key.id);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.text).toContain('nemo.find_api_key');
    const sent = calls[0]!.values?.[0];
    expect(Buffer.isBuffer(sent)).toBe(true);
    expect((sent as Buffer).equals(hashApiKey(key.secret))).toBe(true);
    expect(principal).toEqual({ kind: 'key', orgId: ORG_A, keyId: 'k1', teamId: 'team-9', role: 'admin', allowedModels: undefined, expiresAtMs: undefined, limits: [], loggingLevel: 'metadata', logRetentionDays: null, spendCapped: false });
    expect(auth.misses).toBe(1);
  });

  it('carries the key and team rate limits, each scope only when it has one', async () => {
    const { auth, rows } = setup();
    const key = newKey();
    rows.set(key.id, row({ key_id: 'k2', team_id: 'team-9', key_rpm_limit: 60, team_tpm_limit: 1000 }));
    const principal = await auth.lookup(key.id);
    expect(principal?.limits).toEqual([
      { id: 'key:k2', rpm: 60, tpm: undefined },
      { id: 'team:team-9', rpm: undefined, tpm: 1000 },
    ]);
    const plain = newKey();
    rows.set(plain.id, row({ key_id: 'k3', team_id: 'team-9' }));
    expect((await auth.lookup(plain.id))?.limits).toEqual([]);
  });

  it('caches the principal for ttlMs while listening', async () => {
    const { auth, rows, calls, clock } = setup();
    const key = newKey();
    rows.set(key.id, row());
    const principal = await auth.lookup(key.id);
    clock.t += OPTIONS.ttlMs - 1;
    expect(auth.cached(key.id)).toBe(principal);
    expect(calls).toHaveLength(1);
    expect(auth.hits).toBe(1);
    clock.t += 1;
    expect(auth.cached(key.id)).toBeUndefined();
    await auth.lookup(key.id);
    expect(calls).toHaveLength(2);
  });

  it('caches nothing while not listening', async () => {
    const { auth, rows, calls } = setup({}, false);
    const known = newKey();
    const unknown = newKey();
    rows.set(known.id, row());
    expect(await auth.lookup(known.id)).not.toBeNull();
    expect(await auth.lookup(unknown.id)).toBeNull();
    expect(auth.cached(known.id)).toBeUndefined();
    expect(auth.cached(unknown.id)).toBeUndefined();
    await auth.lookup(known.id);
    await auth.lookup(unknown.id);
    expect(calls).toHaveLength(4);
  });

  it('shares one query between concurrent lookups of one key', async () => {
    const { auth, rows, calls, held, state } = setup({}, false);
    const key = newKey();
    rows.set(key.id, row());
    state.hold = true;
    const first = auth.lookup(key.id);
    const second = auth.lookup(key.id);
    expect(second).toBe(first);
    expect(calls).toHaveLength(1);
    expect(auth.misses).toBe(1);
    held[0]!.resolve([row({ key_id: 'shared' })]);
    const [a, b] = await Promise.all([first, second]);
    expect(a).toBe(b);
    expect(a?.keyId).toBe('shared');
    // Settled: the next miss is a new query, not the old promise.
    const third = auth.lookup(key.id);
    expect(third).not.toBe(first);
    expect(calls).toHaveLength(2);
    held[1]!.resolve([]);
    expect(await third).toBeNull();
  });

  it('does not share a query between different keys', async () => {
    const { auth, calls } = setup();
    await Promise.all([auth.lookup(newKey().id), auth.lookup(newKey().id)]);
    expect(calls).toHaveLength(2);
  });

  it('passes a failed query to every waiter and retries on the next lookup', async () => {
    const { auth, rows, calls, held, state } = setup();
    const key = newKey();
    state.hold = true;
    const first = auth.lookup(key.id);
    const second = auth.lookup(key.id);
    held[0]!.reject(new Error('connection terminated'));
    await expect(first).rejects.toThrow('connection terminated');
    await expect(second).rejects.toThrow('connection terminated');
    expect(auth.cached(key.id)).toBeUndefined();
    state.hold = false;
    rows.set(key.id, row());
    expect(await auth.lookup(key.id)).not.toBeNull();
    expect(calls).toHaveLength(2);
  });
});

describe('KeyAuthenticator: unknown and revoked keys', () => {
  it('answers null for no row and remembers it for negativeTtlMs', async () => {
    const { auth, calls, clock } = setup();
    const key = newKey();
    expect(await auth.lookup(key.id)).toBeNull();
    clock.t += OPTIONS.negativeTtlMs - 1;
    expect(auth.cached(key.id)).toBeNull();
    expect(calls).toHaveLength(1);
    clock.t += 1;
    expect(auth.cached(key.id)).toBeUndefined();
    expect(internals(auth).unknownUntil.has(key.id)).toBe(false);
  });

  it('answers null for a revoked key and remembers it', async () => {
    const { auth, rows, calls } = setup();
    const key = newKey();
    rows.set(key.id, row({ revoked_at: new Date(0) }));
    expect(await auth.lookup(key.id)).toBeNull();
    expect(auth.cached(key.id)).toBeNull();
    expect(calls).toHaveLength(1);
  });

  it('remembers nothing when negativeTtlMs is 0', async () => {
    const { auth } = setup({ negativeTtlMs: 0 });
    const key = newKey();
    expect(await auth.lookup(key.id)).toBeNull();
    expect(auth.cached(key.id)).toBeUndefined();
    expect(internals(auth).unknownUntil.size).toBe(0);
  });

  it('evicts the oldest unknown key at negativeMaxEntries', async () => {
    const { auth } = setup({ negativeMaxEntries: 3 });
    const keys = [newKey(), newKey(), newKey(), newKey()];
    for (const key of keys) await auth.lookup(key.id);
    expect(auth.cached(keys[0]!.id)).toBeUndefined();
    for (const key of keys.slice(1)) expect(auth.cached(key.id)).toBeNull();
  });

  it('never holds more than negativeMaxEntries unknown keys, for 10x that many distinct keys', async () => {
    const bound = 50;
    const { auth, calls } = setup({ negativeMaxEntries: bound });
    const { unknownUntil } = internals(auth);
    const keys = Array.from({ length: bound * 10 }, () => newKey());
    for (const key of keys) {
      expect(await auth.lookup(key.id)).toBeNull();
      expect(unknownUntil.size).toBeLessThanOrEqual(bound);
    }
    expect(unknownUntil.size).toBe(bound);
    expect(calls).toHaveLength(bound * 10);
    // The survivors are the newest.
    for (const key of keys.slice(-bound)) expect(auth.cached(key.id)).toBeNull();
    for (const key of keys.slice(0, -bound)) expect(auth.cached(key.id)).toBeUndefined();
  });

  it('keeps the bound under a concurrent flood too', async () => {
    const bound = 20;
    const { auth } = setup({ negativeMaxEntries: bound });
    await Promise.all(Array.from({ length: bound * 10 }, () => auth.lookup(newKey().id)));
    expect(internals(auth).unknownUntil.size).toBe(bound);
  });
});

describe('KeyAuthenticator: invalidation', () => {
  async function threeKeys() {
    const s = setup();
    const a1 = newKey();
    const a2 = newKey();
    const b1 = newKey();
    const gone = newKey();
    s.rows.set(a1.id, row({ org_id: ORG_A, key_id: 'a1' }));
    s.rows.set(a2.id, row({ org_id: ORG_A, key_id: 'a2' }));
    s.rows.set(b1.id, row({ org_id: ORG_B, key_id: 'b1' }));
    for (const key of [a1, a2, b1, gone]) await s.auth.lookup(key.id);
    return { ...s, a1, a2, b1, gone };
  }

  it('invalidateKey drops only that key', async () => {
    const { auth, a1, a2, b1, gone } = await threeKeys();
    auth.invalidateKey('a1');
    expect(auth.cached(a1.id)).toBeUndefined();
    expect(auth.cached(a2.id)?.keyId).toBe('a2');
    expect(auth.cached(b1.id)?.keyId).toBe('b1');
    expect(auth.cached(gone.id)).toBeNull();
  });

  it('invalidateOrg drops every key of that org and no other', async () => {
    const { auth, a1, a2, b1, gone } = await threeKeys();
    auth.invalidateOrg(ORG_A);
    expect(auth.cached(a1.id)).toBeUndefined();
    expect(auth.cached(a2.id)).toBeUndefined();
    expect(auth.cached(b1.id)?.keyId).toBe('b1');
    expect(auth.cached(gone.id)).toBeNull();
  });

  it('clear drops known and unknown keys', async () => {
    const { auth, a1, a2, b1, gone } = await threeKeys();
    auth.clear();
    for (const key of [a1, a2, b1, gone]) expect(auth.cached(key.id)).toBeUndefined();
  });

  it('an api_keys notification drops that key', async () => {
    const { auth, a1, a2 } = await threeKeys();
    internals(auth).onNotification(JSON.stringify({ table: 'api_keys', org_id: ORG_A, key_id: 'a1' }));
    expect(auth.cached(a1.id)).toBeUndefined();
    expect(auth.cached(a2.id)?.keyId).toBe('a2');
  });

  it('an org_config notification drops that org', async () => {
    const { auth, a1, a2, b1 } = await threeKeys();
    internals(auth).onNotification(JSON.stringify({ table: 'org_config', org_id: ORG_A, key_id: null }));
    expect(auth.cached(a1.id)).toBeUndefined();
    expect(auth.cached(a2.id)).toBeUndefined();
    expect(auth.cached(b1.id)?.keyId).toBe('b1');
  });

  it.each([
    ['unparseable', 'not json'],
    ['empty object', '{}'],
    ['no payload', undefined],
  ])('a notification that names nothing (%s) drops everything', async (_name, payload) => {
    const { auth, a1, b1, gone } = await threeKeys();
    internals(auth).onNotification(payload);
    for (const key of [a1, b1, gone]) expect(auth.cached(key.id)).toBeUndefined();
  });
});

describe('KeyAuthenticator: races with changes', () => {
  it('caches a lookup that no notification raced (control)', async () => {
    const { auth, held, state } = setup();
    const key = newKey();
    state.hold = true;
    const lookup = auth.lookup(key.id);
    held[0]!.resolve([row()]);
    expect(await lookup).not.toBeNull();
    expect(auth.cached(key.id)).not.toBeUndefined();
  });

  it('does not cache a lookup that a notification arrived during', async () => {
    const { auth, calls, held, state } = setup();
    const key = newKey();
    state.hold = true;
    const lookup = auth.lookup(key.id);
    // The row was read before the change; the change's notification lands before the answer.
    internals(auth).onNotification(JSON.stringify({ table: 'api_keys', org_id: ORG_A, key_id: 'key-1' }));
    held[0]!.resolve([row()]);
    expect(await lookup).not.toBeNull();
    expect(auth.cached(key.id)).toBeUndefined();
    const again = auth.lookup(key.id);
    expect(calls).toHaveLength(2);
    held[1]!.resolve([row({ revoked_at: new Date() })]);
    expect(await again).toBeNull();
  });

  it('a notification about another org still stops the in-flight result from being cached', async () => {
    const { auth, held, state } = setup();
    const key = newKey();
    state.hold = true;
    const lookup = auth.lookup(key.id);
    internals(auth).onNotification(JSON.stringify({ table: 'org_config', org_id: ORG_B, key_id: null }));
    held[0]!.resolve([row()]);
    await lookup;
    expect(auth.cached(key.id)).toBeUndefined();
  });

  it('losing the listener drops the cache, stops caching, and does not cache an in-flight result', async () => {
    const { auth, rows, held, state } = setup();
    const cachedKey = newKey();
    const unknownKey = newKey();
    rows.set(cachedKey.id, row());
    await auth.lookup(cachedKey.id);
    await auth.lookup(unknownKey.id);
    const inFlight = newKey();
    state.hold = true;
    const lookup = auth.lookup(inFlight.id);
    const client = { removeAllListeners: () => client, end: () => Promise.resolve() } as unknown as pg.Client;
    internals(auth).onListenerLost(client, new Error('server closed the connection'));
    expect(internals(auth).listening).toBe(false);
    expect(auth.cached(cachedKey.id)).toBeUndefined();
    expect(auth.cached(unknownKey.id)).toBeUndefined();
    held[0]!.resolve([row()]);
    expect(await lookup).not.toBeNull();
    expect(auth.cached(inFlight.id)).toBeUndefined();
    // close() (afterEach) cancels the reconnect timer, so no real connection is attempted.
  });
});

describe('KeyAuthenticator: the principal', () => {
  const MODELS: Array<[name: string, keyModels: string[] | null, orgModels: string[] | null, expected: string[] | undefined]> = [
    ['both null: every model', null, null, undefined],
    ['key null: the org list', null, ['m1', 'm2'], ['m1', 'm2']],
    ['org null: the key list', ['m1', 'm3'], null, ['m1', 'm3']],
    ['both set: the intersection', ['m1', 'm2', 'm3'], ['m2', 'm3', 'm4'], ['m2', 'm3']],
    ['disjoint: nothing', ['m1'], ['m2'], []],
    ['org empty: nothing', ['m1'], [], []],
    ['key empty: nothing', [], ['m1'], []],
  ];
  it.each(MODELS)('allowed models, %s', async (_name, keyModels, orgModels, expected) => {
    const { auth, rows } = setup();
    const key = newKey();
    rows.set(key.id, row({ allowed_models: keyModels, org_allowed_models: orgModels }));
    const principal = await auth.lookup(key.id);
    if (expected === undefined) expect(principal?.allowedModels).toBeUndefined();
    else expect([...(principal?.allowedModels ?? ['<undefined>'])].sort()).toEqual(expected);
  });

  it('carries expires_at as epoch ms', async () => {
    const { auth, rows } = setup();
    const key = newKey();
    const expires = new Date('2031-02-03T04:05:06.789Z');
    rows.set(key.id, row({ expires_at: expires }));
    expect((await auth.lookup(key.id))?.expiresAtMs).toBe(expires.getTime());
  });
});
