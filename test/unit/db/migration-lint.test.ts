import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { migrationsDirFromHere } from '../../../src/db/migrate.js';
import { lintMigration } from '../../../src/db/migration-lint.js';

const FILE = '0001_test.sql';
const lint = (sql: string) => lintMigration(FILE, sql);
const expectRefused = (sql: string, pattern: RegExp) => {
  const problems = lint(sql);
  expect(problems.some((p) => pattern.test(p)), problems.join('\n') || '(no problems)').toBe(true);
};

const POLICY_IN_DO = `
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = 'nemo' AND policyname = 'keys_by_org') THEN
    CREATE POLICY keys_by_org ON nemo.api_keys USING (org_id = current_setting('nemo.org_id')::bigint);
  END IF;
END $$;`;

const CLEAN = `
-- The tenancy tables.
CREATE TABLE IF NOT EXISTS nemo.api_keys (id bigint PRIMARY KEY, org_id bigint NOT NULL);
CREATE INDEX IF NOT EXISTS api_keys_org ON nemo.api_keys (org_id);
ALTER TABLE nemo.api_keys ADD COLUMN IF NOT EXISTS note text;
ALTER TABLE nemo.api_keys ENABLE ROW LEVEL SECURITY;
CREATE OR REPLACE FUNCTION nemo.touch() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN NEW.note := 'touched'; RETURN NEW; END
$body$;
CREATE OR REPLACE TRIGGER api_keys_touch BEFORE UPDATE ON nemo.api_keys FOR EACH ROW EXECUTE FUNCTION nemo.touch();
CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA nemo;
GRANT SELECT, INSERT ON nemo.api_keys TO nemo_app;
GRANT EXECUTE ON FUNCTION nemo.touch() TO nemo_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA nemo TO nemo_app;
REVOKE ALL ON SCHEMA nemo FROM PUBLIC;
${POLICY_IN_DO}`;

describe('lintMigration', () => {
  it('passes idempotent, nemo-qualified DDL', () => {
    expect(lint(CLEAN)).toEqual([]);
  });

  describe('refuses each destructive form', () => {
    it.each([
      ['DROP TABLE nemo.api_keys;', /DROP TABLE is refused/],
      ['DROP INDEX IF EXISTS nemo.api_keys_org;', /DROP INDEX/],
      ['DROP SCHEMA nemo CASCADE;', /DROP SCHEMA/],
      ['DROP FUNCTION nemo.touch();', /DROP FUNCTION/],
      ['DROP POLICY p ON nemo.api_keys;', /DROP POLICY/],
      ['DROP TRIGGER t ON nemo.api_keys;', /DROP TRIGGER/],
      ['DROP TYPE nemo.status;', /DROP TYPE/],
      ['DROP ROLE nemo_app;', /DROP ROLE/],
      ['ALTER TABLE nemo.api_keys DROP COLUMN note;', /DROP COLUMN/],
      ['ALTER TABLE nemo.api_keys DROP CONSTRAINT api_keys_pkey;', /DROP CONSTRAINT/],
      ['TRUNCATE nemo.api_keys;', /TRUNCATE is refused/],
      ['DELETE FROM nemo.api_keys WHERE id = 1;', /DELETE FROM is refused/],
      ['ALTER TABLE nemo.api_keys ALTER COLUMN note TYPE varchar(10);', /ALTER COLUMN NOTE TYPE is refused/],
      ['ALTER TABLE nemo.api_keys ALTER note SET DATA TYPE varchar(10);', /SET DATA TYPE is refused/],
      ['ALTER TABLE nemo.api_keys RENAME TO keys;', /RENAME is refused/],
      ['ALTER TABLE nemo.api_keys RENAME COLUMN note TO memo;', /RENAME is refused/],
    ])('%s', (sql, pattern) => expectRefused(sql, pattern));
  });

  it('names the file and the first line of the offending statement', () => {
    expect(lint('CREATE TABLE IF NOT EXISTS nemo.a (id int);\n\nALTER TABLE nemo.a\n  DROP COLUMN id;')).toEqual([
      `${FILE}:3: DROP COLUMN is refused: forward-only migrations never drop (a reviewed file may: -- nemo:destructive-reviewed-by=<name>)`,
    ]);
  });

  it.each([
    ['CREATE TABLE IF NOT EXISTS public.t (id int);', /public/],
    ['CREATE TABLE IF NOT EXISTS "public"."t" (id int);', /public/],
    ['INSERT INTO nemo.t SELECT * FROM public.legacy;', /public/],
    ['CREATE OR REPLACE FUNCTION nemo.f() RETURNS int LANGUAGE sql SET search_path = public AS $$ SELECT 1 $$;', /search_path names schema public/],
    ['GRANT USAGE ON SCHEMA public TO nemo_app;', /only objects in schema nemo/],
    ['CREATE SCHEMA IF NOT EXISTS public;', /CREATE SCHEMA is allowed only/],
  ])('refuses a reference to schema public: %s', (sql, pattern) => expectRefused(sql, pattern));

  it.each([
    ['CREATE TABLE IF NOT EXISTS t (id int);', /CREATE TABLE t: the name must be schema-qualified/],
    ['CREATE INDEX IF NOT EXISTS t_id ON t (id);', /CREATE INDEX ON t: the table must be/],
    ['CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;', /CREATE FUNCTION f: the name must be/],
    ['CREATE OR REPLACE VIEW v AS SELECT 1;', /CREATE VIEW v: the name must be/],
    ['CREATE SEQUENCE IF NOT EXISTS s;', /CREATE SEQUENCE s/],
    [`${POLICY_IN_DO.replace('ON nemo.api_keys', 'ON api_keys')}`, /CREATE POLICY ON api_keys/],
    ['CREATE OR REPLACE TRIGGER t AFTER INSERT ON api_keys FOR EACH ROW EXECUTE FUNCTION nemo.f();', /CREATE TRIGGER ON api_keys/],
    ['ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;', /ALTER TABLE api_keys: the target must be/],
    ['CREATE EXTENSION IF NOT EXISTS pgcrypto;', /CREATE EXTENSION must say SCHEMA nemo/],
    ['CREATE SCHEMA IF NOT EXISTS billing;', /CREATE SCHEMA is allowed only/],
    ['GRANT SELECT ON ALL TABLES IN SCHEMA billing TO nemo_app;', /only objects in schema nemo/],
    ['GRANT SELECT ON api_keys TO nemo_app;', /only objects in schema nemo/],
    ['GRANT nemo_owner TO nemo_app;', /role membership/],
    ['ALTER ROLE nemo_app BYPASSRLS;', /ALTER ROLE reaches outside schema nemo/],
    ['CREATE RULE r AS ON INSERT TO nemo.t DO NOTHING;', /CREATE RULE is not an object kind/],
  ])('refuses DDL outside schema nemo: %s', (sql, pattern) => expectRefused(sql, pattern));

  it.each([
    ['CREATE TABLE nemo.t (id int);', /CREATE TABLE must be CREATE TABLE IF NOT EXISTS/],
    ['CREATE INDEX t_id ON nemo.t (id);', /CREATE INDEX must be CREATE INDEX IF NOT EXISTS/],
    ['ALTER TABLE nemo.t ADD COLUMN note text;', /ADD COLUMN must be ADD COLUMN IF NOT EXISTS/],
    ['ALTER TABLE nemo.t ADD note text;', /ADD note must be ADD COLUMN IF NOT EXISTS/],
    ['CREATE FUNCTION nemo.f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;', /must be CREATE OR REPLACE FUNCTION/],
    ['CREATE TRIGGER t AFTER INSERT ON nemo.t FOR EACH ROW EXECUTE FUNCTION nemo.f();', /CREATE OR REPLACE TRIGGER or sit in a DO block/],
    ["CREATE TYPE nemo.status AS ENUM ('a', 'b');", /CREATE TYPE has no IF NOT EXISTS/],
    ['CREATE INDEX CONCURRENTLY IF NOT EXISTS t_id ON nemo.t (id);', /CONCURRENTLY/],
    ['BEGIN;\nCREATE TABLE IF NOT EXISTS nemo.t (id int);\nCOMMIT;', /COMMIT: the runner wraps/],
  ])('refuses a statement that fails when its object exists: %s', (sql, pattern) => expectRefused(sql, pattern));

  it('refuses CREATE POLICY outside a DO block, including inside a function body', () => {
    expectRefused('CREATE POLICY p ON nemo.api_keys USING (true);', /CREATE POLICY has no IF NOT EXISTS/);
    expectRefused(
      'CREATE OR REPLACE FUNCTION nemo.f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN CREATE POLICY p ON nemo.t USING (true); END $$;',
      /CREATE POLICY has no IF NOT EXISTS/,
    );
  });

  it('lints what DO blocks and function bodies hide, whatever the dollar tag', () => {
    expectRefused('DO $$ BEGIN DROP TABLE nemo.api_keys; END $$;', /DROP TABLE/);
    expectRefused('DO $outer$ BEGIN PERFORM 1; TRUNCATE nemo.t; END $outer$;', /TRUNCATE/);
    expectRefused(
      'CREATE OR REPLACE FUNCTION nemo.purge() RETURNS void LANGUAGE plpgsql AS $fn$\nBEGIN\n  DELETE FROM nemo.t;\nEND\n$fn$;',
      /0001_test\.sql:2: DELETE FROM/,
    );
    expectRefused('DO $$ BEGIN CREATE TABLE IF NOT EXISTS public.t (id int); END $$;', /public/);
  });

  it('ignores keywords inside comments and string literals', () => {
    const sql = `
-- DROP TABLE nemo.api_keys; TRUNCATE public.x
/* DELETE FROM nemo.t; /* nested: RENAME */ ALTER COLUMN x TYPE int */
COMMENT ON TABLE nemo.api_keys IS 'never DROP TABLE or DELETE FROM public.keys; it''s fine';
INSERT INTO nemo.notes (body) VALUES (E'drop \\' table public.x'), ('truncate');
DO $$ BEGIN RAISE NOTICE 'DROP SCHEMA public'; END $$;`;
    expect(lint(sql)).toEqual([]);
  });

  it('does not read privileges or trigger events named like commands as the commands', () => {
    const sql = `
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON nemo.t TO nemo_app;
GRANT CREATE ON SCHEMA nemo TO nemo_app;
CREATE OR REPLACE TRIGGER t_audit AFTER INSERT OR DELETE OR TRUNCATE ON nemo.t EXECUTE FUNCTION nemo.audit();`;
    expect(lint(sql)).toEqual([]);
  });

  it('lets a reviewed file DROP, but still refuses schema public', () => {
    const reviewed = '-- Retire the old keys table.\n-- nemo:destructive-reviewed-by=alice\n';
    expect(lint(`${reviewed}DROP TABLE nemo.old_keys;\nALTER TABLE nemo.t DROP COLUMN x;`)).toEqual([]);
    expectRefused(`${reviewed}DROP TABLE public.old_keys;`, /public/);
    expectRefused(`${reviewed}DROP TABLE old_keys;\nCREATE TABLE nemo.x (id int);`, /IF NOT EXISTS/);
  });

  it('ignores a marker without a name or below the header', () => {
    expectRefused('-- nemo:destructive-reviewed-by=\nDROP TABLE nemo.t;', /needs a reviewer name/);
    expectRefused('-- nemo:destructive-reviewed-by=\nDROP TABLE nemo.t;', /DROP TABLE/);
    expectRefused('SELECT 1;\n-- nemo:destructive-reviewed-by=alice\nDROP TABLE nemo.t;', /DROP TABLE/);
  });

  it('refuses a file name outside NNNN_lower_snake.sql', () => {
    expect(lintMigration('1_Init.sql', 'SELECT 1;')).toEqual(['1_Init.sql:1: file name must match NNNN_lower_snake.sql']);
  });

  it('passes every file in migrations/', () => {
    const dir = migrationsDirFromHere();
    const names = existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.sql')).sort() : [];
    const problems = names.flatMap((name) => lintMigration(name, readFileSync(join(dir, name), 'utf8')));
    console.info(`migration-lint: ${names.length} file(s) in ${dir}`);
    expect(problems).toEqual([]);
    // The folder is the repo's, not a stray one: the runner resolves the same path from dist/.
    expect(existsSync(join(dir, '..', 'package.json'))).toBe(true);
  });
});
