// The one opening in "nothing in public": a migration marked `-- nemo:reads-litellm` may read
// LiteLLM's tables inside function bodies. Anything that writes, locks, ties to or reaches past
// those tables stays refused, marker or not.
import { describe, expect, it } from 'vitest';
import { lintMigration } from '../../../src/db/migration-lint.js';

const MARKER = '-- nemo:reads-litellm\n';
const fn = (body: string) => `CREATE OR REPLACE FUNCTION nemo.f() RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = nemo, pg_catalog AS $$
BEGIN
  ${body}
END
$$;`;
const lint = (sql: string) => lintMigration('0009_test.sql', sql);

describe('lintMigration: reading LiteLLM\'s tables', () => {
  it.each([
    ['a SELECT FROM', 'PERFORM 1 FROM public."LiteLLM_VerificationToken" t WHERE t.token = \'x\';'],
    ['a JOIN', 'PERFORM 1 FROM nemo.orgs o JOIN public."LiteLLM_OrganizationMembership" m ON m.organization_id = o.litellm_organization_id;'],
    ['an EXISTS', 'PERFORM EXISTS (SELECT 1 FROM "public"."LiteLLM_TeamTable");'],
  ])('allows %s in a function body of a marked file', (_what, body) => {
    expect(lint(MARKER + fn(body))).toEqual([]);
  });

  it('refuses the same read in a file without the marker', () => {
    expect(lint(fn('PERFORM 1 FROM public."LiteLLM_VerificationToken";')).join('\n')).toMatch(/refers to schema public/);
  });

  it.each([
    ['an INSERT', 'INSERT INTO public."LiteLLM_SpendLogs" (request_id) VALUES (\'r\');'],
    ['an UPDATE', 'UPDATE public."LiteLLM_VerificationToken" SET spend = spend + 1;'],
    ['a DELETE', 'DELETE FROM public."LiteLLM_VerificationToken";'],
    ['a TRUNCATE', 'TRUNCATE public."LiteLLM_SpendLogs";'],
    ['a LOCK', 'LOCK TABLE public."LiteLLM_TeamTable";'],
    ['a locking read', 'PERFORM 1 FROM public."LiteLLM_VerificationToken" FOR UPDATE;'],
    ['a table that is not LiteLLM\'s', 'PERFORM 1 FROM public.users;'],
  ])('refuses %s, marker or not', (_what, body) => {
    expect(lint(MARKER + fn(body)).join('\n')).toMatch(/refers to schema public/);
  });

  it('refuses a reference at the top level, outside any function body', () => {
    expect(lint(`${MARKER}CREATE OR REPLACE VIEW nemo.v AS SELECT token FROM public."LiteLLM_VerificationToken";`).join('\n')).toMatch(/refers to schema public/);
  });

  it('refuses DDL on LiteLLM\'s tables from a marked file', () => {
    expect(lint(`${MARKER}ALTER TABLE public."LiteLLM_TeamTable" ADD COLUMN IF NOT EXISTS x text;`).length).toBeGreaterThan(0);
    expect(lint(`${MARKER}CREATE INDEX IF NOT EXISTS i ON public."LiteLLM_TeamTable" (team_alias);`).length).toBeGreaterThan(0);
  });
});
