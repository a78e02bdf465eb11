// A LiteLLM database for tests: the fixture of LiteLLM's tables in schema public, rows inserted as
// LiteLLM's proxy writes them (Prisma-generated UUIDs as text, SHA-256 hex tokens, TIMESTAMP(3) in
// UTC), and a snapshot of everything in public from the catalog, to prove NemoRouter changed none
// of it.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';

export const LITELLM_FIXTURE = readFileSync(new URL('../fixtures/litellm/schema.sql', import.meta.url), 'utf8');

/** Runs fn with an owner connection to the database at url. */
export async function withOwner<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** LiteLLM's schema in public, as its migrations leave it. */
export function applyLiteLLMFixture(url: string): Promise<void> {
  return withOwner(url, async (client) => void (await client.query(LITELLM_FIXTURE)));
}

/** How LiteLLM stores a virtual key: the SHA-256 of the key, in hex (litellm/proxy/_types.py hash_token). */
export function litellmToken(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** A key as LiteLLM's /key/generate makes one: sk- and URL-safe random text. */
export function newLiteLLMKey(): string {
  return `sk-${randomBytes(16).toString('base64url')}`;
}

/** Writes LiteLLM rows as its proxy would, through an owner connection (the test plays LiteLLM). */
export class LiteLLMWriter {
  constructor(private readonly url: string) {}

  private run(sql: string, values: unknown[]): Promise<void> {
    return withOwner(this.url, async (client) => void (await client.query(sql, values)));
  }

  async organization(alias: string): Promise<string> {
    const id = randomUUID();
    const budget = randomUUID();
    await this.run(`INSERT INTO "LiteLLM_BudgetTable" (budget_id, max_budget, created_by, updated_by) VALUES ($1, 100, 'default_user_id', 'default_user_id')`, [budget]);
    await this.run(
      `INSERT INTO "LiteLLM_OrganizationTable" (organization_id, organization_alias, budget_id, models, created_by, updated_by) VALUES ($1, $2, $3, '{}', 'default_user_id', 'default_user_id')`,
      [id, alias, budget],
    );
    return id;
  }

  async team(organizationId: string | null, alias: string, fields: { models?: string[]; blocked?: boolean } = {}): Promise<string> {
    const id = randomUUID();
    await this.run(
      `INSERT INTO "LiteLLM_TeamTable" (team_id, team_alias, organization_id, admins, members, models, blocked) VALUES ($1, $2, $3, '{}', '{}', $4, $5)`,
      [id, alias, organizationId, fields.models ?? [], fields.blocked ?? false],
    );
    return id;
  }

  async user(userId: string, membership?: { organizationId: string; role: 'org_admin' | 'internal_user' }): Promise<void> {
    await this.run(`INSERT INTO "LiteLLM_UserTable" (user_id, user_role, models, teams) VALUES ($1, $2, '{}', '{}')`, [userId, membership?.role ?? 'internal_user']);
    if (membership) {
      await this.run(`INSERT INTO "LiteLLM_OrganizationMembership" (user_id, organization_id, user_role) VALUES ($1, $2, $3)`, [userId, membership.organizationId, membership.role]);
    }
  }

  /** A virtual key; returns the key itself (LiteLLM stores only its hash). */
  async key(fields: { organizationId?: string | null; teamId?: string | null; userId?: string | null; models?: string[]; blocked?: boolean | null; expires?: Date | null; alias?: string }): Promise<string> {
    const key = newLiteLLMKey();
    await this.run(
      `INSERT INTO "LiteLLM_VerificationToken" (token, key_name, key_alias, models, user_id, team_id, organization_id, blocked, expires)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::timestamptz AT TIME ZONE 'UTC')`,
      [litellmToken(key), `sk-...${key.slice(-4)}`, fields.alias ?? null, fields.models ?? [], fields.userId ?? null, fields.teamId ?? null, fields.organizationId ?? null, fields.blocked ?? null, fields.expires?.toISOString() ?? null],
    );
    return key;
  }

  /** As LiteLLM's /key/block does. */
  block(key: string): Promise<void> {
    return this.run(`UPDATE "LiteLLM_VerificationToken" SET blocked = true WHERE token = $1`, [litellmToken(key)]);
  }

  /** As LiteLLM's /key/delete does. */
  delete(key: string): Promise<void> {
    return this.run(`DELETE FROM "LiteLLM_VerificationToken" WHERE token = $1`, [litellmToken(key)]);
  }
}

/**
 * Everything in schema public, from the catalog: tables and their columns (name, type, nullability,
 * default), indexes, constraints, triggers, functions, privileges, and each table's row count and a
 * hash of its rows. Two equal snapshots mean nothing in public changed, schema or data.
 */
export async function snapshotPublic(url: string): Promise<Record<string, unknown>> {
  return withOwner(url, async (client) => {
    const q = async (sql: string) => (await client.query(sql)).rows;
    const tables = await q(`SELECT c.relname AS name, c.relkind::text AS kind, c.relacl::text AS acl, c.relrowsecurity AS rls
                              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                             WHERE n.nspname = 'public' ORDER BY 1`);
    const columns = await q(`SELECT c.relname AS table, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
                                    pg_get_expr(d.adbin, d.adrelid) AS default
                               FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                               LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                              WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2`);
    const indexes = await q(`SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1`);
    const constraints = await q(`SELECT c.conrelid::regclass::text AS table, c.conname, pg_get_constraintdef(c.oid) AS def
                                   FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
                                  WHERE n.nspname = 'public' ORDER BY 1, 2`);
    const triggers = await q(`SELECT t.tgrelid::regclass::text AS table, t.tgname, pg_get_triggerdef(t.oid) AS def
                                FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                               WHERE n.nspname = 'public' AND NOT t.tgisinternal ORDER BY 1, 2`);
    const functions = await q(`SELECT p.proname, pg_get_functiondef(p.oid) AS def FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                                WHERE n.nspname = 'public' ORDER BY 1`);
    const schema = await q(`SELECT nspacl::text AS acl, pg_get_userbyid(nspowner) AS owner FROM pg_namespace WHERE nspname = 'public'`);
    const rows: Record<string, unknown> = {};
    for (const { name, kind } of tables as Array<{ name: string; kind: string }>) {
      if (kind !== 'r') continue;
      const quoted = `public."${name.replaceAll('"', '""')}"`;
      const [{ count, digest }] = (await client.query(`SELECT count(*)::int AS count, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) AS digest FROM ${quoted} t`)).rows;
      rows[name] = { count, digest };
    }
    return { schema, tables, columns, indexes, constraints, triggers, functions, rows };
  });
}
