// The admin operations, shared by the admin HTTP API and the CLI: who may do what, and the SQL of
// the tenancy objects (the money operations are ledger/'s, called once the caller is authorized).
// The platform (master key) manages orgs; an org's admin key manages its own org. Every tenant
// read and write runs in a transaction with that org set, under row-level security; another
// org's objects are simply not found.
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { z } from 'zod';
import { asDatabaseError, type Database } from '../db/database.js';
import { CHECK_VIOLATION, DATA_EXCEPTION_CLASS, FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION } from '../db/sqlstate.js';
import { GatewayError, invalidRequest } from '../errors/gateway-error.js';
import { createKeyInput, createMemberInput, createOrgInput, createTeamInput, creditInput, isUuid, ledgerQuery, LIMIT_COLUMNS, logsQuery, usageQuery, updateConfigInput, updateKeyInput, updateTeamInput, type LimitFields } from './admin-schemas.js';
import { compilePolicy } from '../guardrails/policy.js';
import type { GuardrailPolicy } from '../guardrails/types.js';
import { GuardrailPatternError } from '../guardrails/user-pattern.js';
import { creditBalance, grantCredit } from '../ledger/credits.js';
import { miscountedSpendWindows, unbalancedAccounts, type MiscountedWindow, type UnbalancedAccount } from '../ledger/invariant-check.js';
import { ledgerEntries, monthToDate, usageReport, type LedgerEntryRow } from '../ledger/usage-report.js';
import { listRequestLogs, type LogListRow } from '../logs/log-list.js';
import { generateApiKey } from './api-keys.js';
import type { Principal } from './principal.js';

export interface Org {
  id: string;
  name: string;
  created_at: string;
}

const ORG_COLUMNS = 'org_id AS id, name, created_at';
const LIMITS = 'rpm_limit, tpm_limit, daily_spend_cap_micros::float8 AS daily_spend_cap_micros, monthly_spend_cap_micros::float8 AS monthly_spend_cap_micros';
const TEAM_COLUMNS = `team_id AS id, org_id, name, ${LIMITS}, guardrail_policy, created_at`;
const MEMBER_COLUMNS = 'user_id AS id, org_id, role, team_id, created_at';
const KEY_COLUMNS = `key_id AS id, org_id, team_id, name, role, key_prefix AS prefix, allowed_models, ${LIMITS}, guardrail_policy, expires_at, revoked_at, created_by, created_at`;
const CONFIG_COLUMNS = 'org_id, allowed_models, default_guardrail_policy, logging_level, log_retention_days, updated_at';

export class AdminService {
  constructor(
    private readonly db: Database,
    /** Public model names, to refuse allow-lists naming models that do not exist. */
    private readonly knownModels: ReadonlySet<string>,
  ) {}

  async createOrg(caller: Principal, body: unknown): Promise<Org> {
    if (caller.kind !== 'platform') throw new GatewayError('NR_FORBIDDEN', 'Only the platform master key creates organizations.');
    const input = parse(createOrgInput, body);
    const { rows } = await this.run(() => this.db.query<Org>(`SELECT ${ORG_COLUMNS} FROM nemo.create_org($1, $2)`, [randomUUID(), input.name]));
    return rows[0]!;
  }

  async listOrgs(caller: Principal): Promise<Org[]> {
    if (caller.kind === 'platform') return (await this.run(() => this.db.query<Org>(`SELECT ${ORG_COLUMNS} FROM nemo.list_orgs()`))).rows;
    this.requireAdmin(caller, caller.orgId);
    return [await this.getOrg(caller, caller.orgId)];
  }

  async getOrg(caller: Principal, orgId: string): Promise<Org> {
    return this.inOrg(caller, orgId, async (client) => {
      const { rows } = await client.query<Org>(`SELECT ${ORG_COLUMNS} FROM nemo.orgs`);
      return rows[0]!;
    });
  }

  async createTeam(caller: Principal, orgId: string, body: unknown) {
    const input = parse(createTeamInput, body);
    checkGuardrailPolicy(input.guardrail_policy, 'guardrail_policy');
    return this.inOrg(caller, orgId, async (client) => {
      const { rows } = await client.query(
        `INSERT INTO nemo.teams (org_id, team_id, name, rpm_limit, tpm_limit, daily_spend_cap_micros, monthly_spend_cap_micros, guardrail_policy)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${TEAM_COLUMNS}`,
        [orgId, randomUUID(), input.name, ...limitValues(input), jsonOrNull(input.guardrail_policy)],
      );
      return rows[0];
    });
  }

  /** Renames a team or changes its limits and caps (null clears one); they apply to its keys at once. */
  async updateTeam(caller: Principal, orgId: string, teamId: string, body: unknown) {
    const input = parse(updateTeamInput, body);
    checkGuardrailPolicy(input.guardrail_policy, 'guardrail_policy');
    if (!isUuid(teamId)) throw new GatewayError('NR_NOT_FOUND', 'No such team.');
    return this.inOrg(caller, orgId, async (client) => {
      const { rows } = await client.query(`UPDATE nemo.teams SET ${updateSet(input)} WHERE team_id = $1 RETURNING ${TEAM_COLUMNS}`, [teamId, ...updateValues(input)]);
      if (rows.length === 0) throw new GatewayError('NR_NOT_FOUND', 'No such team.');
      return rows[0];
    });
  }

  async listTeams(caller: Principal, orgId: string) {
    return this.inOrg(caller, orgId, async (client) => (await client.query(`SELECT ${TEAM_COLUMNS} FROM nemo.teams ORDER BY created_at, team_id`)).rows);
  }

  async createMember(caller: Principal, orgId: string, body: unknown) {
    const input = parse(createMemberInput, body);
    return this.inOrg(caller, orgId, async (client) => {
      const { rows } = await client.query(
        `INSERT INTO nemo.members (org_id, user_id, role, team_id) VALUES ($1, $2, $3, $4) RETURNING ${MEMBER_COLUMNS}`,
        [orgId, input.user_id ?? randomUUID(), input.role, input.team_id ?? null],
      );
      return rows[0];
    });
  }

  async listMembers(caller: Principal, orgId: string) {
    return this.inOrg(caller, orgId, async (client) => (await client.query(`SELECT ${MEMBER_COLUMNS} FROM nemo.members ORDER BY created_at, user_id`)).rows);
  }

  /** Creates a key and returns its secret: the only time it is ever shown. */
  async createKey(caller: Principal, orgId: string, body: unknown) {
    const input = parse(createKeyInput, body);
    this.checkModels(input.allowed_models, 'allowed_models');
    checkGuardrailPolicy(input.guardrail_policy, 'guardrail_policy');
    if (input.expires_at != null && Date.parse(input.expires_at) <= Date.now()) throw invalidRequest('`expires_at` must be in the future.', 'expires_at');
    const key = generateApiKey();
    const createdBy = caller.kind === 'platform' ? 'platform' : caller.keyId;
    return this.inOrg(caller, orgId, async (client) => {
      const { rows } = await client.query(
        `INSERT INTO nemo.api_keys (org_id, key_id, team_id, name, role, key_hash, key_prefix, allowed_models, expires_at, created_by,
                                    rpm_limit, tpm_limit, daily_spend_cap_micros, monthly_spend_cap_micros, guardrail_policy)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING ${KEY_COLUMNS}`,
        [orgId, randomUUID(), input.team_id ?? null, input.name, input.role, key.hash, key.displayPrefix, input.allowed_models ?? null, input.expires_at ?? null, createdBy, ...limitValues(input), jsonOrNull(input.guardrail_policy)],
      );
      return { ...rows[0], key: key.secret };
    });
  }

  async listKeys(caller: Principal, orgId: string) {
    return this.inOrg(caller, orgId, async (client) => (await client.query(`SELECT ${KEY_COLUMNS} FROM nemo.api_keys ORDER BY created_at, key_id`)).rows);
  }

  /** Renames a key or changes its limits and caps (null clears one); every instance applies them at once. */
  async updateKey(caller: Principal, orgId: string, keyId: string, body: unknown) {
    const input = parse(updateKeyInput, body);
    checkGuardrailPolicy(input.guardrail_policy, 'guardrail_policy');
    if (!isUuid(keyId)) throw new GatewayError('NR_NOT_FOUND', 'No such key.');
    return this.inOrg(caller, orgId, async (client) => {
      const { rows } = await client.query(`UPDATE nemo.api_keys SET ${updateSet(input)} WHERE key_id = $1 RETURNING ${KEY_COLUMNS}`, [keyId, ...updateValues(input)]);
      if (rows.length === 0) throw new GatewayError('NR_NOT_FOUND', 'No such key.');
      return rows[0];
    });
  }

  /**
   * The current windows of the org's limited keys and teams: requests and tokens this minute,
   * spend this UTC day and month (counted while a cap was set), beside the limits.
   */
  async listSpend(caller: Principal, orgId: string) {
    return this.inOrg(caller, orgId, async (client) => {
      const { rows } = await client.query(
        `SELECT w.org_id, CASE WHEN k.key_id IS NOT NULL THEN 'key' ELSE 'team' END AS scope, w.scope_id, w.period, w.window_start,
                w.requests::float8 AS requests, w.tokens::float8 AS tokens, w.spent_micros::float8 AS spent_micros,
                CASE w.period WHEN 'minute' THEN COALESCE(k.rpm_limit, t.rpm_limit)::float8 END AS rpm_limit,
                CASE w.period WHEN 'minute' THEN COALESCE(k.tpm_limit, t.tpm_limit)::float8 END AS tpm_limit,
                CASE w.period WHEN 'day' THEN COALESCE(k.daily_spend_cap_micros, t.daily_spend_cap_micros)
                              WHEN 'month' THEN COALESCE(k.monthly_spend_cap_micros, t.monthly_spend_cap_micros) END::float8 AS cap_micros
         FROM nemo.limit_windows w
         LEFT JOIN nemo.api_keys k ON k.key_id = w.scope_id
         LEFT JOIN nemo.teams t ON t.team_id = w.scope_id
         ORDER BY scope, w.scope_id, array_position(ARRAY['minute', 'day', 'month'], w.period)`,
      );
      return rows;
    });
  }

  /** Idempotent: revoking a revoked key keeps its first revocation time. */
  async revokeKey(caller: Principal, orgId: string, keyId: string) {
    if (!isUuid(keyId)) throw new GatewayError('NR_NOT_FOUND', 'No such key.');
    return this.inOrg(caller, orgId, async (client) => {
      const { rows } = await client.query(
        `UPDATE nemo.api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE key_id = $1 RETURNING ${KEY_COLUMNS}`,
        [keyId],
      );
      if (rows.length === 0) throw new GatewayError('NR_NOT_FOUND', 'No such key.');
      return rows[0];
    });
  }

  async getConfig(caller: Principal, orgId: string) {
    return this.inOrg(caller, orgId, async (client) => (await client.query(`SELECT ${CONFIG_COLUMNS} FROM nemo.org_config`)).rows[0]);
  }

  async updateConfig(caller: Principal, orgId: string, body: unknown) {
    const input = parse(updateConfigInput, body);
    this.checkModels(input.allowed_models, 'allowed_models');
    checkGuardrailPolicy(input.default_guardrail_policy, 'default_guardrail_policy');
    return this.inOrg(caller, orgId, async (client) => {
      const { rows } = await client.query(
        `UPDATE nemo.org_config SET
           allowed_models = CASE WHEN $1 THEN $2::text[] ELSE allowed_models END,
           default_guardrail_policy = COALESCE($3::jsonb, default_guardrail_policy),
           logging_level = COALESCE($4, logging_level),
           log_retention_days = CASE WHEN $5 THEN $6::integer ELSE log_retention_days END,
           updated_at = now()
         RETURNING ${CONFIG_COLUMNS}`,
        [
          input.allowed_models !== undefined,
          input.allowed_models ?? null,
          input.default_guardrail_policy === undefined ? null : JSON.stringify(input.default_guardrail_policy),
          input.logging_level ?? null,
          input.log_retention_days !== undefined,
          input.log_retention_days ?? null,
        ],
      );
      return rows[0];
    });
  }

  /** Top-up, refund or adjustment: the platform's money admin, idempotent by `idempotency_key`. */
  async addCredits(caller: Principal, orgId: string, body: unknown) {
    if (caller.kind !== 'platform') {
      // Another org does not exist for this key; its own org's credits are the platform's to change.
      if (!isUuid(orgId) || caller.orgId !== orgId.toLowerCase()) throw new GatewayError('NR_NOT_FOUND', 'No such organization.');
      throw new GatewayError('NR_FORBIDDEN', 'Only the platform master key changes credits.');
    }
    const input = parse(creditInput, body);
    if (input.kind !== 'adjustment' && input.amount_micros <= 0) throw invalidRequest('`amount_micros` must be positive for top-ups and refunds.', 'amount_micros');
    const org = await this.existingOrg(caller, orgId);
    const granted = await this.run(() =>
      grantCredit(this.db, { orgId: org, kind: input.kind, amountMicros: input.amount_micros, idempotencyKey: input.idempotency_key, note: input.note ?? null }),
    );
    return { org_id: org, entry_id: granted.entryId, created: granted.created, available_micros: granted.availableMicros, held_micros: granted.heldMicros };
  }

  async getCredits(caller: Principal, orgId: string) {
    const org = await this.existingOrg(caller, orgId);
    const balance = await this.run(() => creditBalance(this.db, org));
    return { org_id: org, available_micros: balance.availableMicros, held_micros: balance.heldMicros, updated_at: balance.updatedAt };
  }

  /** Newest first; `before` pages by entry id. */
  async listLedger(caller: Principal, orgId: string, query: unknown): Promise<LedgerEntryRow[]> {
    const input = parse(ledgerQuery, query);
    const org = await this.existingOrg(caller, orgId);
    return this.run(() => ledgerEntries(this.db, org, { beforeEntryId: input.before, limit: input.limit }));
  }

  /**
   * Usage from the ledger's own data, so it always matches billing: requests, credits charged and
   * still held, grouped by any of UTC day, key, team and model, for requests started in [from, to)
   * (default: this UTC month so far).
   */
  async usage(caller: Principal, orgId: string, query: unknown) {
    const input = parse(usageQuery, query);
    const monthSoFar = monthToDate();
    const from = input.from ?? monthSoFar.from;
    const to = input.to ?? monthSoFar.to;
    if (Date.parse(from) >= Date.parse(to)) throw invalidRequest('`from` must be before `to`.', 'from');
    const org = await this.existingOrg(caller, orgId);
    const rows = await this.run(() => usageReport(this.db, org, { from, to, groupBy: input.group_by }));
    return { object: 'usage', org_id: org, from, to, group_by: input.group_by, data: rows };
  }

  /** Guardrail hits, newest first (rule, action, stage; never the matched text); `before` pages by event id. */
  async listGuardrailEvents(caller: Principal, orgId: string, query: unknown) {
    const input = parse(ledgerQuery, query);
    return this.inOrg(caller, orgId, async (client) => {
      const { rows } = await client.query(
        `SELECT event_id::float8 AS id, org_id, request_id, key_id, rule, action, stage, hits, created_at
         FROM nemo.guardrail_events WHERE ($1::bigint IS NULL OR event_id < $1) ORDER BY event_id DESC LIMIT $2`,
        [input.before ?? null, input.limit],
      );
      return rows;
    });
  }

  /**
   * One page of the org's request logs, newest first, filtered by equality; without bodies (the
   * log export has them). `before` and `before_log_id` are the last row of the previous page.
   */
  async listLogs(caller: Principal, orgId: string, query: unknown): Promise<LogListRow[]> {
    const input = parse(logsQuery, query);
    return this.inOrg(caller, orgId, (client) =>
      listRequestLogs(client, {
        limit: input.limit,
        before: input.before,
        beforeLogId: input.before_log_id,
        statusClass: input.status_class,
        keyId: input.key_id,
        teamId: input.team_id,
        model: input.model,
        requestId: input.request_id,
      }),
    );
  }

  /** Accounts whose balances disagree with the ledger or the open reservations (platform only). */
  async ledgerCheck(caller: Principal): Promise<UnbalancedAccount[]> {
    if (caller.kind !== 'platform') throw new GatewayError('NR_FORBIDDEN', 'Only the platform checks the whole ledger.');
    return this.run(() => unbalancedAccounts(this.db));
  }

  /** Spend windows whose count disagrees with the holds and charges counted in them (platform only). */
  async limitWindowsCheck(caller: Principal): Promise<MiscountedWindow[]> {
    if (caller.kind !== 'platform') throw new GatewayError('NR_FORBIDDEN', 'Only the platform checks the whole ledger.');
    return this.run(() => miscountedSpendWindows(this.db));
  }

  /** Authorizes the caller for the org and checks it exists (404 if not); returns its id in lower case. */
  private async existingOrg(caller: Principal, rawOrgId: string): Promise<string> {
    await this.inOrg(caller, rawOrgId, async () => undefined);
    return rawOrgId.toLowerCase();
  }

  /** Authorizes the caller for the org, then runs fn under RLS with that org; a missing org is 404. */
  private async inOrg<T>(caller: Principal, rawOrgId: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    if (!isUuid(rawOrgId)) throw new GatewayError('NR_NOT_FOUND', 'No such organization.');
    const orgId = rawOrgId.toLowerCase();
    if (caller.kind === 'key') this.requireAdmin(caller, orgId);
    return this.run(() =>
      this.db.withTenant(orgId, async (client) => {
        const { rowCount } = await client.query('SELECT 1 FROM nemo.orgs');
        if (rowCount === 0) throw new GatewayError('NR_NOT_FOUND', 'No such organization.');
        return fn(client);
      }),
    );
  }

  private requireAdmin(caller: Extract<Principal, { kind: 'key' }>, orgId: string): void {
    // Another org's objects do not exist for this key, whatever its role.
    if (caller.orgId !== orgId) throw new GatewayError('NR_NOT_FOUND', 'No such organization.');
    if (caller.role !== 'admin') throw new GatewayError('NR_FORBIDDEN', 'Only admin keys use the admin API.');
  }

  private checkModels(models: string[] | null | undefined, param: string): void {
    for (const model of models ?? []) {
      if (!this.knownModels.has(model)) throw invalidRequest(`Unknown model ${JSON.stringify(model.slice(0, 256))} in \`${param}\`.`, param);
    }
  }

  /** Maps Postgres constraint errors to client errors; connection trouble to 503. */
  private async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === UNIQUE_VIOLATION) throw new GatewayError('NR_CONFLICT', 'An object with that name already exists.', { cause: err });
      if (code === FOREIGN_KEY_VIOLATION) throw invalidRequest('A referenced object (e.g. `team_id`) does not exist in this organization.', 'team_id');
      if (code === CHECK_VIOLATION) throw invalidRequest('A value is out of range.');
      if (typeof code === 'string' && code.startsWith(DATA_EXCEPTION_CLASS)) throw invalidRequest('A value cannot be stored as given.');
      throw asDatabaseError(err);
    }
  }
}

function limitValues(input: LimitFields): Array<number | null> {
  return LIMIT_COLUMNS.map((column) => input[column] ?? null);
}

type Patch = { name?: string | undefined; guardrail_policy?: GuardrailPolicy | null | undefined } & LimitFields;
const PATCHABLE = ['name', ...LIMIT_COLUMNS, 'guardrail_policy'] as const;

/** `SET` for a PATCH: the given fields only ($2...), or a no-op that still returns the row. */
function updateSet(input: Patch): string {
  const columns = PATCHABLE.filter((column) => input[column] !== undefined);
  if (columns.length === 0) return 'name = name';
  return columns.map((column, i) => `${column} = $${i + 2}`).join(', ');
}

function updateValues(input: Patch): unknown[] {
  return PATCHABLE.filter((column) => input[column] !== undefined).map((column) => (column === 'guardrail_policy' ? jsonOrNull(input.guardrail_policy) : input[column]));
}

function jsonOrNull(value: object | null | undefined): string | null {
  return value == null ? null : JSON.stringify(value);
}

/** Compiles a policy as the gateway will: a deny pattern that cannot run in linear time is a 400 now, not a failure later. */
function checkGuardrailPolicy(policy: GuardrailPolicy | null | undefined, param: string): void {
  if (policy == null) return;
  try {
    compilePolicy(policy);
  } catch (err) {
    if (err instanceof GuardrailPatternError) throw invalidRequest(`Invalid guardrail policy: ${err.message}`, err.param === null ? param : `${param}.${err.param}`);
    throw err;
  }
}

function parse<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const param = issue.path.length > 0 ? issue.path.join('.') : null;
  const problems = result.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
  throw invalidRequest(`Invalid request body: ${problems}`, param);
}
