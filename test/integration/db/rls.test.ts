import { randomUUID } from 'node:crypto';
// Row-level security, proved from the catalog rather than from a list kept by hand: every table in
// schema nemo but the listed global ones is a tenant table (org_id leading its primary key, RLS
// enabled and forced, a policy, fixture rows for two orgs), and nemo_app, connected as the gateway
// connects, neither sees nor changes nor creates another org's rows.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_ROLE, openDatabase, type Database } from '../../../src/db/database.js';
import { StoredResponses } from '../../../src/logs/stored-responses.js';
import { AdminService } from '../../../src/tenancy/admin-service.js';
import { appRoleConnection, createTestDatabase, migrateTestDatabase, testDatabaseConfig, type TestDatabase } from '../../support/test-database.js';

/** Tables that belong to no tenant. Adding one here is a decision that it holds no org's data. */
const GLOBAL_TABLES: ReadonlySet<string> = new Set(['schema_migrations']);
/** The SECURITY DEFINER functions nemo_app may call; each crosses orgs on purpose and is reviewed as such. */
const APP_DEFINER_FUNCTIONS = [
  'create_org(p_org_id uuid, p_name text)',
  'drop_expired_request_log_entry_partitions()',
  'drop_expired_request_log_partitions(p_retention_days integer)',
  'ensure_request_log_entry_partitions(p_days date[])',
  'ensure_request_log_entry_partitions_ahead(p_days_ahead integer, p_default_retention_days integer)',
  'ensure_request_log_partitions(p_from date, p_days integer)',
  'find_api_key(p_key_hash bytea)',
  'find_api_key_v2(p_key_hash bytea)',
  'find_api_key_v3(p_key_hash bytea)',
  'find_api_key_v4(p_key_hash bytea)',
  'find_api_key_v5(p_key_hash bytea)',
  'find_api_key_v6(p_key_hash bytea, p_litellm boolean)',
  'ledger_apply(p_kind text[], p_org uuid[], p_reservation uuid[], p_request text[], p_key uuid[], p_amount bigint[], p_min_amount bigint[], p_ttl_ms integer)',
  'ledger_apply_v2(p_kind text[], p_org uuid[], p_reservation uuid[], p_request text[], p_key uuid[], p_amount bigint[], p_min_amount bigint[], p_tokens bigint[], p_model text[], p_ttl_ms integer)',
  'ledger_apply_v3(p_kind text[], p_org uuid[], p_reservation uuid[], p_lease uuid[], p_request text[], p_key uuid[], p_amount bigint[], p_min_amount bigint[], p_tokens bigint[], p_model text[], p_ttl_ms integer, p_lease_ttl_ms integer)',
  'ledger_apply_v4(p_kind text[], p_org uuid[], p_reservation uuid[], p_lease uuid[], p_request text[], p_key uuid[], p_amount bigint[], p_min_amount bigint[], p_tokens bigint[], p_model text[], p_prompt_tokens bigint[], p_completion_tokens bigint[], p_cached_tokens bigint[], p_cache_write_tokens bigint[], p_reasoning_tokens bigint[], p_images bigint[], p_ttl_ms integer, p_lease_ttl_ms integer)',
  'ledger_check()',
  'ledger_credit(p_org uuid, p_kind text, p_amount bigint, p_idempotency_key text, p_note text)',
  'ledger_expire(p_limit integer)',
  'ledger_expire_v2(p_limit integer)',
  'ledger_renew(p_org uuid[], p_reservation uuid[], p_ttl_ms integer)',
  'limit_windows_check()',
  'list_orgs()',
  'litellm_sync_v1()',
  'record_guardrail_events(p_org uuid[], p_request text[], p_key uuid[], p_rule text[], p_action text[], p_stage text[], p_at timestamp with time zone[])',
  'record_guardrail_events_v2(p_org uuid[], p_request text[], p_key uuid[], p_rule text[], p_action text[], p_stage text[], p_at timestamp with time zone[], p_hits integer[])',
  'record_request_log_entries(p_rows json, p_default_retention_days integer)',
  'record_request_log_entries_v2(p_rows json, p_default_retention_days integer)',
  'record_request_logs(p_rows json)',
];
/** What the fixture is known to fill; a guard against the catalog query silently finding nothing. */
const KNOWN_TENANT_TABLES = ['api_keys', 'credit_accounts', 'guardrail_events', 'ledger_entries', 'limit_windows', 'members', 'org_config', 'orgs', 'request_log_entries', 'request_logs', 'reservations', 'stored_responses', 'teams'];

const INSUFFICIENT_PRIVILEGE = '42501';
const UNIQUE_VIOLATION = '23505';
const MODEL = 'gpt-4o-mini';

interface TableInfo {
  name: string;
  relkind: string;
  relrowsecurity: boolean;
  relforcerowsecurity: boolean;
  policies: number;
  org_id_type: string | null;
  pk_first_column: string | null;
  /** Columns an INSERT may name (generated ones excluded), quoted. */
  insert_columns: string[];
  can_select: boolean;
  can_insert: boolean;
  can_update: boolean;
  can_delete: boolean;
}

type Outcome = { ok: true; rowCount: number } | { ok: false; code: string; message: string };

let testDb: TestDatabase;
let database: Database;
let owner: pg.Client;
let app: pg.Client;
let orgA: string;
let orgB: string;
let tables: TableInfo[] = [];
let tenantTables: TableInfo[] = [];

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateTestDatabase(testDb);

  database = await openDatabase(testDatabaseConfig(testDb), { migrate: false });
  const admin = new AdminService(database, new Set([MODEL]));
  const platform = { kind: 'platform' } as const;
  // A gets more of everything than B, so a count that is "all rows" or "B's rows" cannot pass for A's.
  await database.query('SELECT nemo.ensure_request_log_entry_partitions_ahead(1, 30)');
  await database.query("SELECT nemo.ensure_request_log_entry_partitions(ARRAY[(now() AT TIME ZONE 'UTC')::date + 7, (now() AT TIME ZONE 'UTC')::date + 8])");
  const fill = async (name: string, extra: number): Promise<string> => {
    const org = await admin.createOrg(platform, { name });
    const keyIds: string[] = [];
    for (let i = 0; i <= extra; i++) {
      const team = await admin.createTeam(platform, org.id, { name: `team ${i}`, monthly_spend_cap_micros: 900_000 });
      await admin.createMember(platform, org.id, { role: i === 0 ? 'owner' : 'member', team_id: team.id });
      const key = await admin.createKey(platform, org.id, { name: `key ${i}`, role: i === 0 ? 'admin' : 'member', team_id: team.id, allowed_models: [MODEL], rpm_limit: 100, daily_spend_cap_micros: 500_000 });
      keyIds.push(key.id as string);
    }
    await admin.updateConfig(platform, org.id, { allowed_models: [MODEL], logging_level: 'full', default_guardrail_policy: { pii: { email: 'redact' } } });
    // Money: a top-up, then holds through the same function the gateway's batched writer calls.
    await admin.addCredits(platform, org.id, { amount_micros: 1_000_000, idempotency_key: `fixture ${name}` });
    // Limited keys and capped teams: their rate and spend windows are tenant rows too.
    for (let i = 0; i <= extra; i++) {
      await database.query('SELECT * FROM nemo.ledger_apply_v2($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)', [['reserve'], [org.id], [randomUUID()], [`req ${i}`], [keyIds[i]], [1000], [1000], [10], [MODEL], 60_000]);
      await database.query('SELECT nemo.record_guardrail_events($1, $2, $3, $4, $5, $6, $7)', [[org.id], [`req ${i}`], [keyIds[i]], ['pii:email'], ['redact'], ['input'], [new Date()]]);
      const row = { log_id: randomUUID(), created_at: new Date(), org_id: org.id, key_id: keyIds[i], request_id: `req ${i}`, model: MODEL, deployment: `${MODEL}#0`, status: 200, status_class: '2xx', stream: false, prompt_tokens: 1, completion_tokens: 1, cost_micros: 1, latency_ms: 1, guardrail_action: 'redact', guardrail_rules: ['pii:email'], request_body: 'prompt', response_body: 'answer' };
      await database.query('SELECT nemo.record_request_logs($1)', [JSON.stringify([row])]);
      await database.query('SELECT nemo.record_request_log_entries($1, 30)', [JSON.stringify([{ ...row, log_id: randomUUID(), retention_days: 7 + i }])]);
      // Stored responses, written as the gateway writes them: in the org's own transaction. Each org
      // has one under the same id, so a read that crossed orgs would show.
      await new StoredResponses(database).save({
        orgId: org.id, responseId: i === 0 ? 'resp_shared' : `resp_${i}`, keyId: keyIds[i]!, model: MODEL,
        responseJson: JSON.stringify({ id: 'resp_shared', object: 'response', metadata: { org: name } }), conversation: [{ role: 'user', content: `${name} prompt` }], retentionDays: 7,
      });
    }
    return org.id;
  };
  orgA = await fill('Org A', 1);
  orgB = await fill('Org B', 0);

  owner = new pg.Client({ connectionString: testDb.url, application_name: 'rls-test-owner' });
  await owner.connect();
  // The owner is a superuser and so reads past RLS; with row_security off a read that RLS would
  // filter is an error instead of a silent undercount.
  await owner.query('SET row_security = off');

  app = new pg.Client({ ...appRoleConnection(testDb), application_name: 'rls-test-app' });
  await app.connect();

  tables = (
    await owner.query<TableInfo>(
      `SELECT c.relname AS name, c.relkind::text AS relkind, c.relrowsecurity, c.relforcerowsecurity,
              (SELECT count(*) FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid)::int AS policies,
              (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a
                WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped) AS org_id_type,
              (SELECT a.attname FROM pg_catalog.pg_index i
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                WHERE i.indrelid = c.oid AND i.indisprimary) AS pk_first_column,
              ARRAY(SELECT quote_ident(a.attname) FROM pg_catalog.pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
                     ORDER BY a.attnum) AS insert_columns,
              has_table_privilege($1, c.oid, 'SELECT') AS can_select,
              has_table_privilege($1, c.oid, 'INSERT') AS can_insert,
              has_table_privilege($1, c.oid, 'UPDATE') AS can_update,
              has_table_privilege($1, c.oid, 'DELETE') AS can_delete
         FROM pg_catalog.pg_class c
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'nemo' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        ORDER BY c.relname`,
      [APP_ROLE],
    )
  ).rows;
  tenantTables = tables.filter((t) => !GLOBAL_TABLES.has(t.name));
});

afterAll(async () => {
  await app?.end().catch(() => undefined);
  await owner?.end().catch(() => undefined);
  await database?.close();
  await testDb?.drop();
});

const qualified = (table: string): string => `nemo.${pg.escapeIdentifier(table)}`;

async function attempt(client: pg.Client, sql: string, values?: unknown[]): Promise<Outcome> {
  try {
    const result = await client.query(sql, values);
    return { ok: true, rowCount: result.rowCount ?? 0 };
  } catch (err) {
    const { code, message } = err as pg.DatabaseError;
    return { ok: false, code: code ?? 'none', message };
  }
}

/** One transaction as nemo_app with the tenant set the way withTenant sets it; always rolled back. */
async function asTenant<T>(orgId: string, fn: () => Promise<T>): Promise<T> {
  await app.query('BEGIN');
  try {
    await app.query("SELECT set_config('nemo.org_id', $1, true)", [orgId]);
    return await fn();
  } finally {
    await app.query('ROLLBACK');
  }
}

async function appCount(table: string): Promise<number> {
  return (await app.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${qualified(table)}`)).rows[0]!.n;
}

/** Per-org row counts as the owner, past RLS. */
async function ownerCounts(table: string): Promise<{ a: number; b: number }> {
  const { rows } = await owner.query<{ a: number; b: number }>(
    `SELECT count(*) FILTER (WHERE org_id = $1)::int AS a, count(*) FILTER (WHERE org_id = $2)::int AS b FROM ${qualified(table)}`,
    [orgA, orgB],
  );
  return rows[0]!;
}

/** B's rows as the owner sees them, as one value: any change to any of them changes it. */
async function fingerprintOfB(table: string): Promise<string> {
  const { rows } = await owner.query<{ n: number; digest: string }>(
    `SELECT count(*)::int AS n, md5(coalesce(string_agg(to_jsonb(t)::text, '|' ORDER BY to_jsonb(t)::text), '')) AS digest
       FROM ${qualified(table)} t WHERE org_id = $1`,
    [orgB],
  );
  return `${rows[0]!.n}:${rows[0]!.digest}`;
}

/** A refused write: RLS (or a missing grant) says 42501; a privileged write may also hit a unique key first. */
function expectRefused(outcome: Outcome, what: string, alsoAccept: readonly string[] = []): void {
  expect.soft(outcome.ok, `${what}: must be refused, but it succeeded (${outcome.ok ? `${outcome.rowCount} rows` : ''})`).toBe(false);
  if (!outcome.ok) expect.soft([INSUFFICIENT_PRIVILEGE, ...alsoAccept], `${what}: refused with ${outcome.code} ${outcome.message}`).toContain(outcome.code);
}

describe('the catalog: every nemo table is a tenant table or a listed global one', () => {
  it('finds the tables the fixture fills (the enumeration itself works)', () => {
    expect(tenantTables.map((t) => t.name)).toEqual(expect.arrayContaining(KNOWN_TENANT_TABLES));
    for (const global of GLOBAL_TABLES) expect(tables.map((t) => t.name), `global table ${global} is listed but does not exist; drop it from GLOBAL_TABLES`).toContain(global);
  });

  it('gives every tenant table an org_id uuid that leads its primary key', () => {
    for (const t of tenantTables) {
      expect.soft(t.org_id_type, `nemo.${t.name}: no org_id column; tenant tables need org_id uuid (or add the table to GLOBAL_TABLES if it is truly global)`).toBe('uuid');
      expect.soft(t.pk_first_column, `nemo.${t.name}: the primary key must start with org_id`).toBe('org_id');
    }
  });

  it('enables and forces row-level security, with a policy, on every tenant table', () => {
    for (const t of tenantTables) {
      expect.soft(t.relrowsecurity, `nemo.${t.name}: ENABLE ROW LEVEL SECURITY is missing`).toBe(true);
      expect.soft(t.relforcerowsecurity, `nemo.${t.name}: FORCE ROW LEVEL SECURITY is missing`).toBe(true);
      expect.soft(t.policies, `nemo.${t.name}: has no policy`).toBeGreaterThan(0);
    }
  });

  it('has fixture rows of both orgs in every tenant table', async () => {
    for (const t of tenantTables.filter((t) => t.org_id_type === 'uuid')) {
      const counts = await ownerCounts(t.name);
      expect.soft(counts.a, `nemo.${t.name}: no rows for org A; extend the fixture in test/integration/db/rls.test.ts to fill this table`).toBeGreaterThan(0);
      expect.soft(counts.b, `nemo.${t.name}: no rows for org B; extend the fixture in test/integration/db/rls.test.ts to fill this table`).toBeGreaterThan(0);
    }
  });
});

describe('stored responses through the store the gateway uses', () => {
  it("reads, continues and deletes only the caller's org's response under an id both orgs use", async () => {
    const store = new StoredResponses(database);
    expect(JSON.parse((await store.responseJson(orgA, 'resp_shared'))!)).toMatchObject({ metadata: { org: 'Org A' } });
    expect(JSON.parse((await store.responseJson(orgB, 'resp_shared'))!)).toMatchObject({ metadata: { org: 'Org B' } });
    expect(await store.conversation(orgB, 'resp_shared')).toEqual([{ role: 'user', content: 'Org B prompt' }]);
    // A's second response is not B's to read or delete.
    expect(await store.responseJson(orgB, 'resp_1')).toBeUndefined();
    expect(await store.conversation(orgB, 'resp_1')).toBeUndefined();
    expect(await store.delete(orgB, 'resp_1')).toBe(false);
    expect(await store.responseJson(orgA, 'resp_1')).toBeDefined();
  });
});

describe('partitions of tenant tables', () => {
  // Partitions are reached through their parent, whose policy applies; each still has RLS forced
  // with the tenant policy, and nemo_app has no privilege on it, so it cannot be read around the parent.
  it('have row-level security forced with a policy and grant nemo_app nothing', async () => {
    const { rows } = await owner.query<{ name: string; relrowsecurity: boolean; relforcerowsecurity: boolean; policies: number; app_privileges: boolean }>(
      `SELECT c.relname AS name, c.relrowsecurity, c.relforcerowsecurity,
              (SELECT count(*) FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid)::int AS policies,
              has_table_privilege($1, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE') AS app_privileges
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'nemo' AND c.relispartition AND c.relkind IN ('r', 'p') ORDER BY 1`,
      [APP_ROLE],
    );
    expect(rows.length, 'the migrations create the first request_logs partitions').toBeGreaterThan(0);
    for (const p of rows) expect.soft(p, `nemo.${p.name}`).toEqual({ name: p.name, relrowsecurity: true, relforcerowsecurity: true, policies: 1, app_privileges: false });
  });
});

describe('nemo_app under RLS, table by table', () => {
  const testable = () => tenantTables.filter((t) => t.org_id_type === 'uuid');

  it('sees no rows with no tenant set', async () => {
    for (const t of testable()) {
      expect.soft(t.can_select, `nemo.${t.name}: nemo_app has no SELECT`).toBe(true);
      if (!t.can_select) continue;
      expect.soft(await appCount(t.name), `nemo.${t.name}: rows visible with no tenant set`).toBe(0);
    }
  });

  it('sees no rows after a transaction that set a tenant has ended (commit or rollback)', async () => {
    for (const t of testable().filter((t) => t.can_select)) {
      const { a } = await ownerCounts(t.name);
      for (const end of ['COMMIT', 'ROLLBACK']) {
        await app.query('BEGIN');
        await app.query("SELECT set_config('nemo.org_id', $1, true)", [orgA]);
        expect.soft(await appCount(t.name), `nemo.${t.name}: A's rows inside A's transaction`).toBe(a);
        await app.query(end);
        expect.soft(await appCount(t.name), `nemo.${t.name}: rows visible after the tenant's transaction ended with ${end}`).toBe(0);
      }
    }
  });

  it('cannot switch RLS off for itself', async () => {
    try {
      await app.query('SET row_security = off');
      for (const t of testable().filter((t) => t.can_select)) {
        // Without BYPASSRLS, row_security = off makes a filtered query an error, never unfiltered.
        const outcome = await asTenant(orgA, () => attempt(app, `SELECT count(*) FROM ${qualified(t.name)}`));
        expectRefused(outcome, `nemo.${t.name}: SELECT with row_security = off`);
      }
    } finally {
      await app.query('RESET row_security');
    }
  });

  it("sees exactly its own org's rows, none of another's", async () => {
    for (const t of testable().filter((t) => t.can_select)) {
      const { a } = await ownerCounts(t.name);
      await asTenant(orgA, async () => {
        expect.soft(await appCount(t.name), `nemo.${t.name}: count(*) as A must be A's row count`).toBe(a);
        const { rows } = await app.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${qualified(t.name)} WHERE org_id = $1`, [orgB]);
        expect.soft(rows[0]!.n, `nemo.${t.name}: B's rows visible as A`).toBe(0);
      });
    }
  });

  it("cannot update another org's rows", async () => {
    for (const t of testable()) {
      const before = await fingerprintOfB(t.name);
      const outcome = await asTenant(orgA, () => attempt(app, `UPDATE ${qualified(t.name)} SET org_id = org_id WHERE org_id = $1`, [orgB]));
      if (t.can_update) expect.soft(outcome, `nemo.${t.name}: UPDATE of B's rows as A`).toEqual({ ok: true, rowCount: 0 });
      else expectRefused(outcome, `nemo.${t.name}: UPDATE without the grant`);
      expect.soft(await fingerprintOfB(t.name), `nemo.${t.name}: B's rows changed`).toBe(before);
    }
  });

  it("cannot move its own rows into another org", async () => {
    for (const t of testable()) {
      const before = await ownerCounts(t.name);
      const outcome = await asTenant(orgA, () => attempt(app, `UPDATE ${qualified(t.name)} SET org_id = $1 WHERE org_id = $2`, [orgB, orgA]));
      expectRefused(outcome, `nemo.${t.name}: UPDATE SET org_id = B as A`, t.can_update ? [UNIQUE_VIOLATION] : []);
      expect.soft(await ownerCounts(t.name), `nemo.${t.name}: rows moved between orgs`).toEqual(before);
    }
  });

  it("cannot delete another org's rows", async () => {
    for (const t of testable()) {
      const before = await fingerprintOfB(t.name);
      const outcome = await asTenant(orgA, () => attempt(app, `DELETE FROM ${qualified(t.name)} WHERE org_id = $1`, [orgB]));
      if (t.can_delete) expect.soft(outcome, `nemo.${t.name}: DELETE of B's rows as A`).toEqual({ ok: true, rowCount: 0 });
      else expectRefused(outcome, `nemo.${t.name}: DELETE without the grant`);
      expect.soft(await fingerprintOfB(t.name), `nemo.${t.name}: B's rows changed`).toBe(before);
    }
  });

  it('cannot insert a row into another org', async () => {
    for (const t of testable()) {
      const before = await fingerprintOfB(t.name);
      const columns = t.insert_columns.join(', ');
      // One of A's rows (the only ones visible) with org_id replaced by B, whatever the columns are.
      const sql = `INSERT INTO ${qualified(t.name)} (${columns}) OVERRIDING SYSTEM VALUE
                   SELECT ${t.insert_columns.map((c) => `r.${c}`).join(', ')}
                     FROM ${qualified(t.name)} x,
                          jsonb_populate_record(NULL::${qualified(t.name)}, to_jsonb(x) || jsonb_build_object('org_id', $1::uuid)) r
                    LIMIT 1`;
      const outcome = await asTenant(orgA, () => attempt(app, sql, [orgB]));
      expectRefused(outcome, `nemo.${t.name}: INSERT of a row with B's org_id as A`, t.can_insert ? [UNIQUE_VIOLATION] : []);
      // The copy can collide on a key unique across orgs (api_keys.key_hash), and a collision would
      // hide a WITH CHECK that lets B's row through. Postgres checks WITH CHECK before any unique
      // index, and DO NOTHING turns a collision into a silent no-op, so only the policy can refuse this.
      const masked = await asTenant(orgA, () => attempt(app, `${sql} ON CONFLICT DO NOTHING`, [orgB]));
      expectRefused(masked, `nemo.${t.name}: INSERT ... ON CONFLICT DO NOTHING of a row with B's org_id as A`);
      expect.soft(await fingerprintOfB(t.name), `nemo.${t.name}: a row was added to B`).toBe(before);
    }
  });
});

describe('the app role', () => {
  it('is no superuser, cannot bypass RLS, and owns no nemo relation, directly or through a role', async () => {
    const { rows: roles } = await owner.query<{ rolsuper: boolean; rolbypassrls: boolean; rolcreaterole: boolean; rolcreatedb: boolean }>(
      'SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_catalog.pg_roles WHERE rolname = $1',
      [APP_ROLE],
    );
    expect(roles).toEqual([{ rolsuper: false, rolbypassrls: false, rolcreaterole: false, rolcreatedb: false }]);

    const { rows: owned } = await owner.query<{ relname: string; owner: string }>(
      `SELECT c.relname, pg_get_userbyid(c.relowner) AS owner
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'nemo' AND (c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1)
                                      OR pg_has_role($1, c.relowner, 'MEMBER'))`,
      [APP_ROLE],
    );
    expect(owned, 'nemo relations owned by nemo_app or a role it can become').toEqual([]);

    const { rows: powerful } = await owner.query<{ rolname: string }>(
      `SELECT rolname FROM pg_catalog.pg_roles
        WHERE rolname <> $1 AND pg_has_role($1, oid, 'MEMBER') AND (rolsuper OR rolbypassrls)`,
      [APP_ROLE],
    );
    expect(powerful, 'roles nemo_app can become that bypass RLS').toEqual([]);
  });

  it('cannot change the migration history', async () => {
    for (const sql of [
      'UPDATE nemo.schema_migrations SET checksum = checksum',
      'DELETE FROM nemo.schema_migrations',
      "INSERT INTO nemo.schema_migrations (name, checksum) VALUES ('9999_forged.sql', 'x')",
    ]) {
      expectRefused(await attempt(app, sql), sql);
    }
  });

  it('cannot create tables in nemo or public', async () => {
    for (const schema of ['nemo', 'public']) {
      expectRefused(await attempt(app, `CREATE TABLE ${schema}.rls_probe (org_id uuid)`), `CREATE TABLE in ${schema}`);
    }
  });

  it('can execute exactly the reviewed SECURITY DEFINER functions, each with a fixed search_path', async () => {
    const { rows } = await owner.query<{ signature: string; proconfig: string[] | null }>(
      `SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS signature, p.proconfig
         FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'nemo' AND p.prosecdef AND has_function_privilege($1, p.oid, 'EXECUTE')
        ORDER BY 1`,
      [APP_ROLE],
    );
    expect(rows.map((r) => r.signature), 'a new SECURITY DEFINER function nemo_app can call must be reviewed and added to APP_DEFINER_FUNCTIONS').toEqual(APP_DEFINER_FUNCTIONS);
    for (const { signature, proconfig } of rows) {
      expect.soft(proconfig?.some((setting) => setting.startsWith('search_path=')), `nemo.${signature}: SECURITY DEFINER without SET search_path`).toBe(true);
    }
  });
});

describe('views over tenant tables', () => {
  // A view runs as its owner (a superuser here, past RLS) unless it is security_invoker.
  it('exposes no view, materialized view or foreign table to nemo_app that would read past RLS', async () => {
    const { rows } = await owner.query<{ relname: string; relkind: string }>(
      `SELECT c.relname, c.relkind::text AS relkind
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'nemo' AND c.relkind IN ('v', 'm', 'f') AND has_table_privilege($1, c.oid, 'SELECT')
          AND NOT (c.relkind = 'v' AND coalesce(c.reloptions, '{}') @> ARRAY['security_invoker=true'])`,
      [APP_ROLE],
    );
    expect(rows).toEqual([]);
  });
});
