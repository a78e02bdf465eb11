// API key authentication with a derived, disposable in-process cache. A hit costs a hash and a Map
// lookup; a miss reads Postgres through nemo.find_api_key_v6 (concurrent misses for one key share
// the query), which also answers for LiteLLM virtual keys when litellm.enabled (docs/litellm.md):
// those are trusted for litellm.keyCacheTtlMs at most, since LiteLLM notifies nobody of a change. Changes are pushed by LISTEN/NOTIFY (nemo_tenancy), so a revoked key stops working on every
// instance within moments; while that channel is down nothing is cached, since a push could be missed.
// "Up" is proven, not assumed: a notification sent through the pool must arrive on the listener (it
// never does through a transaction-mode pooler, which silently swallows them).
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Database } from '../db/database.js';
import { log } from '../log.js';
import { keyCacheLookupsTotal } from '../metrics/registry.js';

const keyCacheHits = keyCacheLookupsTotal.labels('hit');
const keyCacheMisses = keyCacheLookupsTotal.labels('miss');
import { createHash } from 'node:crypto';
import { mergePolicies } from '../guardrails/policy.js';
import { guardrailPolicySchema, type GuardrailPolicy, type KeyGuardrails } from '../guardrails/types.js';
import { compiledPolicy } from '../guardrails/compiled-policy.js';
import type { KeyPrincipal, LoggingLevel } from './principal.js';
import type { LimitScope } from './rate-limiter.js';

export interface KeyCacheOptions {
  readonly ttlMs: number;
  readonly negativeTtlMs: number;
  readonly negativeMaxEntries: number;
  /** LiteLLM's virtual keys are looked up too; their answers are cached this long at most. */
  readonly litellm?: { readonly ttlMs: number };
}

/** A key LiteLLM knows but refuses here: blocked (the key or its team), or of no organization nemo can mirror. */
export interface KeyRefusal {
  readonly kind: 'refused';
  readonly reason: 'blocked' | 'no_org';
}

/** A key's principal, its refusal, or null for a key that does not exist (or is revoked). */
export type KeyAnswer = KeyPrincipal | KeyRefusal | null;

const REFUSALS: Readonly<Record<KeyRefusal['reason'], KeyRefusal>> = {
  blocked: Object.freeze({ kind: 'refused', reason: 'blocked' }),
  no_org: Object.freeze({ kind: 'refused', reason: 'no_org' }),
};

/** What nemo.find_api_key_v6 returns for one key. */
export interface KeyRow {
  org_id: string;
  key_id: string;
  team_id: string | null;
  role: 'admin' | 'member';
  allowed_models: string[] | null;
  org_allowed_models: string[] | null;
  expires_at: Date | null;
  revoked_at: Date | null;
  key_rpm_limit: number | null;
  key_tpm_limit: number | null;
  team_rpm_limit: number | null;
  team_tpm_limit: number | null;
  org_guardrail_policy: unknown;
  team_guardrail_policy: unknown;
  key_guardrail_policy: unknown;
  logging_level: LoggingLevel;
  log_retention_days: number | null;
  spend_capped: boolean;
  /** Where the key lives: nemo.api_keys, or LiteLLM's "LiteLLM_VerificationToken" (mirrored). */
  source?: 'nemo' | 'litellm';
  litellm_refusal?: KeyRefusal['reason'] | null;
}

interface Entry {
  readonly principal: KeyPrincipal | KeyRefusal;
  readonly cachedUntil: number;
}

const RECONNECT_MS = 1_000;
/** How often the listener proves that notifications still arrive, and how long one proof may take. */
const PROBE_INTERVAL_MS = 5_000;
const PROBE_TIMEOUT_MS = 2_000;

export class KeyAuthenticator {
  private readonly byHash = new Map<string, Entry>();
  private readonly unknownUntil = new Map<string, number>();
  private readonly pending = new Map<string, Promise<KeyAnswer>>();
  private listener: pg.Client | undefined;
  private listening = false;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** This instance's own channel for probes: other instances never see them. */
  private readonly probeChannel = `nemo_probe_${randomBytes(8).toString('hex')}`;
  private probeTimer: NodeJS.Timeout | undefined;
  private probe: { readonly token: string; readonly arrived: (ok: boolean | undefined) => void } | undefined;
  private probeSeq = 0;
  /** The last probe failed: logged once per change, not every interval. */
  private probeFailing = false;
  /** Bumped by every change notification: a lookup that raced one is not cached. */
  private generation = 0;
  hits = 0;
  misses = 0;

  constructor(
    private readonly db: Database,
    private readonly options: KeyCacheOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** A cached answer for a key's SHA-256 (base64): the principal or refusal, null for a key known to be invalid, undefined when Postgres must be asked. */
  cached(id: string): KeyAnswer | undefined {
    const entry = this.byHash.get(id);
    const now = this.now();
    if (entry !== undefined) {
      if (entry.cachedUntil > now) {
        this.hits++;
        keyCacheHits.inc();
        return entry.principal;
      }
      this.byHash.delete(id);
    }
    const unknownUntil = this.unknownUntil.get(id);
    if (unknownUntil !== undefined) {
      if (unknownUntil > now) {
        this.hits++;
        keyCacheHits.inc();
        return null;
      }
      this.unknownUntil.delete(id);
    }
    return undefined;
  }

  /** Reads the key from Postgres (a miss); null when it does not exist or is revoked. */
  lookup(id: string): Promise<KeyAnswer> {
    let query = this.pending.get(id);
    if (query === undefined) {
      this.misses++;
      keyCacheMisses.inc();
      query = this.load(id, Buffer.from(id, 'base64')).finally(() => this.pending.delete(id));
      this.pending.set(id, query);
    }
    return query;
  }

  private async load(id: string, hash: Buffer): Promise<KeyAnswer> {
    const generation = this.generation;
    const { litellm } = this.options;
    const { rows } = await this.db.query<KeyRow>('SELECT * FROM nemo.find_api_key_v6($1, $2)', [hash, litellm !== undefined]);
    const row = rows[0];
    if (row === undefined || row.revoked_at !== null) {
      this.rememberUnknown(id);
      return null;
    }
    const answer = row.litellm_refusal ? REFUSALS[row.litellm_refusal] : principalOf(row);
    const ttlMs = row.source === 'litellm' && litellm !== undefined ? Math.min(litellm.ttlMs, this.options.ttlMs) : this.options.ttlMs;
    if (this.listening && generation === this.generation) this.byHash.set(id, { principal: answer, cachedUntil: this.now() + ttlMs });
    return answer;
  }

  private rememberUnknown(id: string): void {
    if (!this.listening || this.options.negativeTtlMs === 0) return;
    this.unknownUntil.delete(id); // re-inserted as the newest
    // Bounded: a flood of random keys evicts the oldest entries, never grows memory.
    if (this.unknownUntil.size >= this.options.negativeMaxEntries) {
      const oldest = this.unknownUntil.keys().next().value;
      if (oldest !== undefined) this.unknownUntil.delete(oldest);
    }
    this.unknownUntil.set(id, this.now() + this.options.negativeTtlMs);
  }

  invalidateKey(keyId: string): void {
    for (const [id, entry] of this.byHash) if (entry.principal.kind === 'key' && entry.principal.keyId === keyId) this.byHash.delete(id);
  }

  invalidateOrg(orgId: string): void {
    for (const [id, entry] of this.byHash) if (entry.principal.kind === 'key' && entry.principal.orgId === orgId) this.byHash.delete(id);
  }

  clear(): void {
    this.byHash.clear();
    this.unknownUntil.clear();
  }

  /**
   * Subscribes to nemo_tenancy; reconnects on loss, dropping the cache meanwhile. Caching starts once
   * a probe sent through the pool arrives, and stops whenever one does not.
   */
  async startListening(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client(this.db.appConnection);
    client.on('notification', (message) => {
      if (message.channel === this.probeChannel) this.onProbe(message.payload);
      else this.onNotification(message.payload);
    });
    client.on('error', (err) => this.onListenerLost(client, err));
    client.on('end', () => this.onListenerLost(client, undefined));
    try {
      await client.connect();
      await client.query(`LISTEN nemo_tenancy; LISTEN ${this.probeChannel}`);
      this.listener = client;
    } catch (err) {
      this.onListenerLost(client, err as Error);
      return;
    }
    await this.verifyListener(client);
    if (this.listener !== client) return;
    this.probeTimer = setInterval(() => void this.verifyListener(client), PROBE_INTERVAL_MS);
    this.probeTimer.unref();
  }

  /** Sends a probe through the pool and caches only while it comes back on the listener. */
  private async verifyListener(client: pg.Client): Promise<void> {
    if (this.listener !== client || this.probe !== undefined) return;
    const token = String(++this.probeSeq);
    let timer: NodeJS.Timeout | undefined;
    let settle!: (ok: boolean | undefined) => void;
    // undefined: the probe could not be sent (pool saturated, database away): that says nothing
    // about notifications, and turning the cache off then would only add load.
    const arrived = new Promise<boolean | undefined>((resolve) => (settle = resolve));
    this.probe = { token, arrived: settle };
    // The wait starts once the NOTIFY committed, so time spent waiting for a pool connection
    // never counts as a lost notification.
    this.db.query('SELECT pg_notify($1, $2)', [this.probeChannel, token]).then(
      () => (timer = setTimeout(() => settle(false), PROBE_TIMEOUT_MS)),
      () => settle(undefined),
    );
    const ok = await arrived;
    clearTimeout(timer);
    this.probe = undefined;
    if (this.listener !== client || ok === undefined) return;
    if (ok) {
      if (this.probeFailing) log.info('key cache: change notifications arrive again; caching on');
      this.probeFailing = false;
      if (!this.listening) {
        // A lookup that started before this moment may have missed a change: it is not cached.
        this.generation++;
        this.listening = true;
      }
      return;
    }
    if (!this.probeFailing) {
      log.warn('key cache: change notifications do not reach the listener (is it behind a transaction-mode pooler? set database.pooler); caching off, every request reads its key', { channel: this.probeChannel });
    }
    this.probeFailing = true;
    this.listening = false;
    this.generation++;
    this.pending.clear();
    this.clear();
  }

  private onProbe(payload: string | undefined): void {
    if (this.probe !== undefined && payload === this.probe.token) this.probe.arrived(true);
  }

  private onNotification(payload: string | undefined): void {
    this.generation++;
    // A request arriving after this change must not join a query that started before it.
    this.pending.clear();
    try {
      const change = JSON.parse(payload ?? '{}') as { table?: string; org_id?: string; key_id?: string | null };
      if (change.table === 'api_keys' && change.key_id) this.invalidateKey(change.key_id);
      else if (change.org_id) this.invalidateOrg(change.org_id);
      else this.clear();
    } catch {
      this.clear();
    }
  }

  private onListenerLost(client: pg.Client, err: Error | undefined): void {
    if (this.listener !== undefined && this.listener !== client) return;
    this.generation++;
    this.pending.clear();
    this.listener = undefined;
    this.listening = false;
    this.clear();
    clearInterval(this.probeTimer);
    this.probeTimer = undefined;
    this.probe?.arrived(false);
    client.removeAllListeners('end');
    void client.end().catch(() => undefined);
    if (this.closed || this.reconnectTimer) return;
    log.warn('key cache: change notifications lost; caching off until reconnected', { error: err?.message });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.startListening();
    }, RECONNECT_MS);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.probeTimer);
    this.probe?.arrived(false);
    const listener = this.listener;
    this.listener = undefined;
    this.listening = false;
    if (listener) {
      listener.removeAllListeners('end');
      await listener.end().catch(() => undefined);
    }
  }
}

function principalOf(row: KeyRow): KeyPrincipal {
  return {
    kind: 'key',
    orgId: row.org_id,
    keyId: row.key_id,
    teamId: row.team_id,
    role: row.role,
    allowedModels: intersect(row.allowed_models, row.org_allowed_models),
    expiresAtMs: row.expires_at?.getTime(),
    limits: limitsOf(row),
    guardrails: guardrailsOf(row),
    loggingLevel: row.logging_level,
    logRetentionDays: row.log_retention_days,
    spendCapped: row.spend_capped,
  };
}

/**
 * The merged guardrail policy, checked by the compiler the workers use. Policies are validated when
 * saved; one stored by an older version or written around the API may not validate: the key then
 * fails closed on /v1 (requests are refused, never served unguarded) while its admin can still use
 * the admin API to fix the policy.
 */
function guardrailsOf(row: KeyRow): KeyGuardrails | undefined {
  let policy: GuardrailPolicy;
  let compiled;
  let policyKey: string;
  try {
    const levels = [row.org_guardrail_policy, row.team_guardrail_policy, row.key_guardrail_policy].map((level) => (level == null ? undefined : guardrailPolicySchema.parse(level)));
    policy = mergePolicies(levels[0], levels[1], levels[2]);
    policyKey = createHash('sha256').update(JSON.stringify(policy)).digest('base64url');
    compiled = compiledPolicy(policyKey, policy);
  } catch (err) {
    log.error('guardrails: the stored policy for a key is invalid; its requests are refused until it is fixed', { orgId: row.org_id, keyId: row.key_id, error: (err as Error).message.slice(0, 500) });
    return { policyKey: 'invalid', policy: {}, scansInput: false, scansOutput: false, maxInputTokens: null, invalid: true };
  }
  if (compiled.isEmpty) return undefined;
  return { policyKey, policy, scansInput: compiled.scansInput, scansOutput: compiled.scansOutput, maxInputTokens: compiled.maxInputTokens };
}

function limitsOf(row: KeyRow): LimitScope[] {
  const limits: LimitScope[] = [];
  if (row.key_rpm_limit != null || row.key_tpm_limit != null) limits.push({ id: `key:${row.key_id}`, rpm: row.key_rpm_limit ?? undefined, tpm: row.key_tpm_limit ?? undefined });
  if (row.team_id !== null && (row.team_rpm_limit != null || row.team_tpm_limit != null)) {
    limits.push({ id: `team:${row.team_id}`, rpm: row.team_rpm_limit ?? undefined, tpm: row.team_tpm_limit ?? undefined });
  }
  return limits;
}

/** A key's models within its org's: null on either side means "no restriction" from that side. */
function intersect(keyModels: string[] | null, orgModels: string[] | null): ReadonlySet<string> | undefined {
  if (keyModels === null && orgModels === null) return undefined;
  if (keyModels === null) return new Set(orgModels);
  if (orgModels === null) return new Set(keyModels);
  const org = new Set(orgModels);
  return new Set(keyModels.filter((m) => org.has(m)));
}
