// The runner against a real PostgreSQL: each test gets its own database and migrations folder.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { migrationsDirFromHere, runMigrations, type MigrationError } from '../../../src/db/migrate.js';

const ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
// The role is cluster-wide and shared by every test database, as in production.
const APP_ROLE = { name: 'nemo_app', password: 'nemo_app_test_password' };

const STEPS = {
  '0001_steps.sql': 'CREATE TABLE IF NOT EXISTS nemo.steps (seq serial PRIMARY KEY, name text NOT NULL);',
  '0002_first_step.sql': "INSERT INTO nemo.steps (name) VALUES ('0002');",
  '0003_second_step.sql': "ALTER TABLE nemo.steps ADD COLUMN IF NOT EXISTS note text;\nINSERT INTO nemo.steps (name) VALUES ('0003');",
};

// What a real migration set uses: table, index, function, trigger, type and policy in DO blocks.
const REPRESENTATIVE = {
  '0001_tenancy.sql': `
CREATE TABLE IF NOT EXISTS nemo.orgs (id bigserial PRIMARY KEY, name text NOT NULL, status text);
CREATE INDEX IF NOT EXISTS orgs_name ON nemo.orgs (name);
ALTER TABLE nemo.orgs ENABLE ROW LEVEL SECURITY;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'org_status' AND typnamespace = 'nemo'::regnamespace) THEN
    CREATE TYPE nemo.org_status AS ENUM ('active', 'suspended');
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = 'nemo' AND policyname = 'orgs_self') THEN
    CREATE POLICY orgs_self ON nemo.orgs USING (id = current_setting('nemo.org_id', true)::bigint);
  END IF;
END $$;
CREATE OR REPLACE FUNCTION nemo.touch() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN NEW.name := trim(NEW.name); RETURN NEW; END $fn$;
CREATE OR REPLACE TRIGGER orgs_touch BEFORE INSERT ON nemo.orgs FOR EACH ROW EXECUTE FUNCTION nemo.touch();
GRANT SELECT, INSERT ON nemo.orgs TO nemo_app;`,
  // Unqualified names still land in nemo: the runner pins search_path per migration.
  '0002_unqualified_helpers.sql': 'CREATE OR REPLACE VIEW nemo.org_names AS SELECT name FROM orgs;\nCREATE SEQUENCE IF NOT EXISTS nemo.helper_seq;',
};

let admin: pg.Client;
const databases: string[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
});

afterEach(async () => {
  for (const db of databases.splice(0)) await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(db)} WITH (FORCE)`);
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

afterAll(async () => {
  await admin.end();
});

async function freshDatabase(): Promise<string> {
  const name = `nemo_mig_${randomBytes(6).toString('hex')}`;
  await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}`);
  databases.push(name);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

async function migrationsDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nemo-mig-'));
  dirs.push(dir);
  for (const [name, sql] of Object.entries(files)) await writeFile(join(dir, name), sql);
  return dir;
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

const migrate = (ownerUrl: string, dir: string) => runMigrations({ ownerUrl, migrationsDir: dir, appRole: APP_ROLE });
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const stepNames = async (url: string) => (await query<{ name: string }>(url, 'SELECT name FROM nemo.steps ORDER BY seq')).map((r) => r.name);

async function refusal(promise: Promise<unknown>): Promise<MigrationError> {
  const err = await promise.then(() => null, (e: unknown) => e);
  expect(err, 'expected the run to be refused').toBeInstanceOf(Error);
  return err as MigrationError;
}

describe('runMigrations', () => {
  it('applies files in name order and records their checksums', async () => {
    const url = await freshDatabase();
    const dir = await migrationsDir(STEPS);
    const result = await migrate(url, dir);
    expect(result).toEqual({ applied: Object.keys(STEPS), skipped: [] });
    expect(await stepNames(url)).toEqual(['0002', '0003']);
    const recorded = await query<{ name: string; checksum: string }>(url, 'SELECT name, checksum FROM nemo.schema_migrations ORDER BY applied_at, name');
    expect(recorded).toEqual(Object.entries(STEPS).map(([name, sql]) => ({ name, checksum: sha256(sql) })));
  });

  it('applies nothing when run again', async () => {
    const url = await freshDatabase();
    const dir = await migrationsDir(STEPS);
    await migrate(url, dir);
    expect(await migrate(url, dir)).toEqual({ applied: [], skipped: Object.keys(STEPS) });
    expect(await stepNames(url)).toEqual(['0002', '0003']);
  });

  it('applies each file exactly once when two runners start together', async () => {
    const url = await freshDatabase();
    const dir = await migrationsDir(STEPS);
    const [a, b] = await Promise.all([migrate(url, dir), migrate(url, dir)]);
    expect([...a.applied, ...b.applied].sort()).toEqual(Object.keys(STEPS));
    expect(await stepNames(url)).toEqual(['0002', '0003']);
    expect(await query(url, 'SELECT name FROM nemo.schema_migrations')).toHaveLength(3);
  });

  it('refuses a file edited after it was applied, and applies nothing else', async () => {
    const url = await freshDatabase();
    const dir = await migrationsDir({ '0001_steps.sql': STEPS['0001_steps.sql'], '0002_first_step.sql': STEPS['0002_first_step.sql'] });
    await migrate(url, dir);
    await writeFile(join(dir, '0002_first_step.sql'), "INSERT INTO nemo.steps (name) VALUES ('0002 edited');");
    await writeFile(join(dir, '0003_second_step.sql'), STEPS['0003_second_step.sql']);
    const err = await refusal(migrate(url, dir));
    expect(err.code).toBe('NR_MIGRATION_EDITED');
    expect(err.message).toContain('0002_first_step.sql was edited after it was applied; add a new migration instead');
    expect(await stepNames(url)).toEqual(['0002']);
  });

  it('refuses a run whose applied file is gone', async () => {
    const url = await freshDatabase();
    const dir = await migrationsDir(STEPS);
    await migrate(url, dir);
    await rm(join(dir, '0003_second_step.sql'));
    expect((await refusal(migrate(url, dir))).code).toBe('NR_MIGRATION_EDITED');
  });

  it('refuses a file merged late with a number below the newest applied one', async () => {
    const url = await freshDatabase();
    const dir = await migrationsDir({ '0001_steps.sql': STEPS['0001_steps.sql'], '0003_second_step.sql': STEPS['0003_second_step.sql'] });
    await migrate(url, dir);
    await writeFile(join(dir, '0002_first_step.sql'), STEPS['0002_first_step.sql']);
    const err = await refusal(migrate(url, dir));
    expect(err.code).toBe('NR_MIGRATION_FAILED');
    expect(err.message).toContain('0002_first_step.sql sorts before the already-applied 0003_second_step.sql');
    expect(await stepNames(url)).toEqual(['0003']);
  });

  it('reports an unreachable database as NR_MIGRATION_FAILED', async () => {
    const url = new URL(ADMIN_URL);
    url.port = '1';
    expect((await refusal(migrate(url.toString(), await migrationsDir(STEPS)))).code).toBe('NR_MIGRATION_FAILED');
  });

  it('refuses a lint failure before applying any file, even earlier valid ones', async () => {
    const url = await freshDatabase();
    const dir = await migrationsDir({ ...STEPS, '0004_cleanup.sql': 'DROP TABLE nemo.steps;', '0005_bad.sql': 'CREATE TABLE t (id int);' });
    const err = await refusal(migrate(url, dir));
    expect(err.code).toBe('NR_MIGRATION_LINT');
    expect(err.problems.some((p) => p.startsWith('0004_cleanup.sql:1: DROP TABLE'))).toBe(true);
    expect(err.problems.some((p) => p.startsWith('0005_bad.sql:1: CREATE TABLE t'))).toBe(true);
    const [row] = await query<{ steps: string | null }>(url, "SELECT to_regclass('nemo.steps')::text AS steps");
    expect(row?.steps).toBeNull();
  });

  it('refuses a .sql file whose name breaks the pattern', async () => {
    const url = await freshDatabase();
    const dir = await migrationsDir({ ...STEPS, 'notes.sql': 'SELECT 1;' });
    expect((await refusal(migrate(url, dir))).code).toBe('NR_MIGRATION_LINT');
  });

  it('rolls back a failing file: its partial DDL is gone and it is not recorded', async () => {
    const url = await freshDatabase();
    const dir = await migrationsDir({
      '0001_steps.sql': STEPS['0001_steps.sql'],
      '0002_half.sql': 'CREATE TABLE IF NOT EXISTS nemo.half (id int);\nINSERT INTO nemo.missing VALUES (1);',
    });
    const err = await refusal(migrate(url, dir));
    expect(err.code).toBe('NR_MIGRATION_FAILED');
    expect(err.message).toMatch(/^0002_half\.sql at line 2: relation "nemo\.missing" does not exist \[42P01\]/);
    const [row] = await query<{ half: string | null }>(url, "SELECT to_regclass('nemo.half')::text AS half");
    expect(row?.half).toBeNull();
    expect(await query(url, 'SELECT name FROM nemo.schema_migrations')).toEqual([{ name: '0001_steps.sql' }]);
  });

  it.each([
    ['a representative migration set', async () => migrationsDir(REPRESENTATIVE)],
    ['the real migrations/ folder', async () => migrationsDirFromHere()],
  ])('never creates anything in schema public: %s', async (_label, dirOf) => {
    const url = await freshDatabase();
    const before = await publicObjects(url);
    const { applied } = await migrate(url, await dirOf());
    expect(await publicObjects(url)).toEqual(before);
    const schemas = await query<{ nspname: string }>(url, "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' ORDER BY 1");
    expect(schemas.map((s) => s.nspname)).toEqual(['information_schema', 'nemo', 'public']);
    console.info(`migrate: ${applied.length} file(s) applied, schema public unchanged`);
  });

  it('leaves the app role able to log in but not to bypass RLS or escalate', async () => {
    const url = await freshDatabase();
    await migrate(url, await migrationsDir(REPRESENTATIVE));
    const [role] = await query(url, `
      SELECT rolsuper, rolbypassrls, rolcanlogin, rolcreatedb, rolcreaterole, has_schema_privilege('nemo_app', 'nemo', 'USAGE') AS usage
      FROM pg_roles WHERE rolname = 'nemo_app'`);
    expect(role).toEqual({ rolsuper: false, rolbypassrls: false, rolcanlogin: true, rolcreatedb: false, rolcreaterole: false, usage: true });
  });

  it('strips superuser and BYPASSRLS from an app role created by hand', async () => {
    const role = { name: `nemo_app_hand_${randomBytes(4).toString('hex')}`, password: APP_ROLE.password };
    await admin.query(`CREATE ROLE ${role.name} SUPERUSER BYPASSRLS CREATEDB CREATEROLE NOLOGIN`);
    try {
      const url = await freshDatabase();
      await runMigrations({ ownerUrl: url, migrationsDir: await migrationsDir(STEPS), appRole: role });
      const rows = await query(ADMIN_URL, `SELECT rolsuper, rolbypassrls, rolcanlogin, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = '${role.name}'`);
      expect(rows).toEqual([{ rolsuper: false, rolbypassrls: false, rolcanlogin: true, rolcreatedb: false, rolcreaterole: false }]);
    } finally {
      for (const db of databases.splice(0)) await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(db)} WITH (FORCE)`);
      await admin.query(`DROP ROLE IF EXISTS ${role.name}`);
    }
  });

  it('creates the role once when runners for several databases race', async () => {
    // A role of its own, so the race really creates it without disturbing other suites' nemo_app.
    const role = { name: `nemo_app_race_${randomBytes(4).toString('hex')}`, password: APP_ROLE.password };
    const urls: string[] = [];
    for (let i = 0; i < 4; i++) urls.push(await freshDatabase());
    const dir = await migrationsDir(STEPS);
    try {
      await Promise.all(urls.map((ownerUrl) => runMigrations({ ownerUrl, migrationsDir: dir, appRole: role })));
      const rows = await query<{ rolbypassrls: boolean }>(ADMIN_URL, `SELECT rolbypassrls FROM pg_roles WHERE rolname = '${role.name}'`);
      expect(rows).toEqual([{ rolbypassrls: false }]);
    } finally {
      for (const db of databases.splice(0)) await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(db)} WITH (FORCE)`);
      await admin.query(`DROP ROLE IF EXISTS ${admin.escapeIdentifier(role.name)}`);
    }
  });
});

/** Relations, functions and types in schema public, by name. */
async function publicObjects(url: string): Promise<Record<string, string[]>> {
  const [row] = await query<Record<string, string[]>>(url, `
    SELECT
      ARRAY(SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' ORDER BY 1) AS relations,
      ARRAY(SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' ORDER BY 1) AS functions,
      ARRAY(SELECT t.typname::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public' ORDER BY 1) AS types`);
  return row!;
}
