// LiteLLM hotfixes may only add: a column (IF NOT EXISTS, a plain type, constant default) or an
// index over plain columns (IF NOT EXISTS) on one of LiteLLM's tables. Everything else is refused
// before any connection is opened, and the shipped files pass.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { migrationsDirFromHere } from '../../../src/db/migrate.js';
import { hotfixesDir, lintHotfix, readHotfixes } from '../../../src/litellm/hotfixes.js';

const lint = (sql: string) => lintHotfix('0001_test.sql', sql);

describe('lintHotfix', () => {
  it('accepts the shipped hotfixes', async () => {
    const dir = hotfixesDir(migrationsDirFromHere());
    const names = readdirSync(dir).filter((n) => n.endsWith('.sql'));
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) expect(lintHotfix(name, readFileSync(join(dir, name), 'utf8')).problems, name).toEqual([]);
    expect((await readHotfixes(dir)).map((f) => f.name)).toEqual(names.sort());
  });

  it.each([
    'ALTER TABLE public."LiteLLM_TeamTable" ADD COLUMN IF NOT EXISTS "blocked" BOOLEAN NOT NULL DEFAULT false',
    'alter table "public"."LiteLLM_VerificationToken" add column if not exists organization_id text',
    'ALTER TABLE public."LiteLLM_TeamTable" ADD COLUMN IF NOT EXISTS "models" TEXT[] DEFAULT ARRAY[]::TEXT[]',
    'ALTER TABLE public."LiteLLM_TeamTable" ADD COLUMN IF NOT EXISTS "metadata" JSONB NOT NULL DEFAULT \'{}\'',
    'CREATE INDEX IF NOT EXISTS nemo_team_org ON public."LiteLLM_TeamTable" ("organization_id", "team_alias")',
    'CREATE INDEX IF NOT EXISTS "nemo_spend_key" ON public."LiteLLM_SpendLogs" USING btree (api_key)',
  ])('accepts %s', (sql) => {
    const { statements, problems } = lint(`-- why\n${sql};\n`);
    expect(problems).toEqual([]);
    expect(statements).toHaveLength(1);
  });

  it.each([
    ['a drop', 'ALTER TABLE public."LiteLLM_TeamTable" DROP COLUMN blocked'],
    ['a type change', 'ALTER TABLE public."LiteLLM_TeamTable" ALTER COLUMN spend TYPE numeric'],
    ['ADD COLUMN without IF NOT EXISTS', 'ALTER TABLE public."LiteLLM_TeamTable" ADD COLUMN x text'],
    ['a volatile default', 'ALTER TABLE public."LiteLLM_TeamTable" ADD COLUMN IF NOT EXISTS x timestamptz DEFAULT now()'],
    ['two clauses in one ALTER', 'ALTER TABLE public."LiteLLM_TeamTable" ADD COLUMN IF NOT EXISTS x text, DROP COLUMN spend'],
    ['a unique index', 'CREATE UNIQUE INDEX IF NOT EXISTS u ON public."LiteLLM_TeamTable" (team_alias)'],
    ['an expression index', 'CREATE INDEX IF NOT EXISTS e ON public."LiteLLM_TeamTable" (lower(team_alias))'],
    ['CREATE INDEX without IF NOT EXISTS', 'CREATE INDEX i ON public."LiteLLM_TeamTable" (team_alias)'],
    ['a table that is not LiteLLM\'s', 'ALTER TABLE public.users ADD COLUMN IF NOT EXISTS x text'],
    ['a nemo table', 'ALTER TABLE nemo.orgs ADD COLUMN IF NOT EXISTS x text'],
    ['an unqualified table', 'ALTER TABLE "LiteLLM_TeamTable" ADD COLUMN IF NOT EXISTS x text'],
    ['an update', 'UPDATE public."LiteLLM_TeamTable" SET blocked = false'],
    ['a delete', 'DELETE FROM public."LiteLLM_VerificationToken"'],
    ['a grant', 'GRANT SELECT ON public."LiteLLM_VerificationToken" TO nemo_app'],
    ['a function', 'CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$'],
  ])('refuses %s', (_what, sql) => {
    const { problems } = lint(`${sql};`);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^0001_test\.sql:1: refused/);
  });

  it('reports the line of each refused statement, and a misnamed file', () => {
    const { problems } = lintHotfix('fix.sql', '-- one\nALTER TABLE public."LiteLLM_TeamTable" ADD COLUMN IF NOT EXISTS a text;\n\nDROP TABLE public."LiteLLM_SpendLogs";\n');
    expect(problems).toEqual([expect.stringMatching(/^fix\.sql:1: file name/), expect.stringMatching(/^fix\.sql:4: refused/)]);
  });

  it('keeps semicolons inside quotes within their statement', () => {
    const { statements, problems } = lint(`ALTER TABLE public."LiteLLM_TeamTable" ADD COLUMN IF NOT EXISTS note text DEFAULT 'a;b';`);
    expect(problems).toEqual([]);
    expect(statements).toEqual([`ALTER TABLE public."LiteLLM_TeamTable" ADD COLUMN IF NOT EXISTS note text DEFAULT 'a;b'`]);
  });
});
