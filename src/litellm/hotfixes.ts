// Hotfixes for LiteLLM's schema: the one place NemoRouter may change public, and only by an
// explicit `nemo litellm hotfix`. Each file in migrations/litellm-hotfixes/ holds statements of two
// shapes and nothing else, so a hotfix can only add: ALTER TABLE public."LiteLLM_..." ADD COLUMN IF
// NOT EXISTS (a plain type, an optional NOT NULL and a constant DEFAULT), and CREATE INDEX IF NOT
// EXISTS ON public."LiteLLM_..." over plain columns. Every file is linted before any statement
// runs; all of them then apply in one transaction, so they are idempotent and all-or-nothing.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';

export const HOTFIX_FILE_NAME = /^\d{4}_[a-z0-9_]+\.sql$/;

const IDENT = String.raw`(?:"[A-Za-z_][A-Za-z0-9_]*"|[a-z_][a-z0-9_]*)`;
const LITELLM_TABLE = String.raw`(?:public|"public")\."LiteLLM_[A-Za-z]+"`;
const TYPE = String.raw`(?:text|boolean|integer|bigint|double precision|jsonb|timestamp\(3\)|timestamptz)(?:\[\])?`;
const CONSTANT = String.raw`(?:'[^']*'(?:::${TYPE})?|-?\d+(?:\.\d+)?|true|false|null|array\[\]::${TYPE})`;
const ADD_COLUMN = new RegExp(
  String.raw`^alter table (?:if exists )?(?:only )?${LITELLM_TABLE} add column if not exists ${IDENT} ${TYPE}(?: not null)?(?: default ${CONSTANT})?$`,
  'i',
);
const CREATE_INDEX = new RegExp(
  String.raw`^create index if not exists ${IDENT} on (?:only )?${LITELLM_TABLE}(?: using (?:btree|hash|gin))? \(${IDENT}(?: ?, ?${IDENT})*\)$`,
  'i',
);

export interface HotfixFile {
  readonly name: string;
  readonly statements: readonly string[];
}

/** The statements of one hotfix file, or the reasons it is refused (file:line: what). */
export function lintHotfix(fileName: string, sql: string): { statements: string[]; problems: string[] } {
  const problems: string[] = [];
  if (!HOTFIX_FILE_NAME.test(fileName)) problems.push(`${fileName}:1: file name must match NNNN_lower_snake.sql`);
  const statements: string[] = [];
  for (const { text, line } of statementsOf(sql)) {
    const flat = text.replace(/\s+/g, ' ').replace(/\( /g, '(').replace(/ \)/g, ')').trim();
    if (ADD_COLUMN.test(flat) || CREATE_INDEX.test(flat)) statements.push(flat);
    else problems.push(`${fileName}:${line}: refused: a LiteLLM hotfix is only ALTER TABLE public."LiteLLM_..." ADD COLUMN IF NOT EXISTS <column> <type> [NOT NULL] [DEFAULT <constant>], or CREATE INDEX IF NOT EXISTS <name> ON public."LiteLLM_..." (<columns>): ${flat.slice(0, 120)}`);
  }
  return { statements, problems };
}

/** Statements split on semicolons outside quotes, with -- comments removed; each with its first line. */
function statementsOf(sql: string): Array<{ text: string; line: number }> {
  const out: Array<{ text: string; line: number }> = [];
  let current = '';
  let line = 1;
  let startLine = 1;
  let quote: string | undefined;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i]!;
    if (c === '\n') line++;
    if (quote === undefined && c === '-' && sql[i + 1] === '-') {
      while (i + 1 < sql.length && sql[i + 1] !== '\n') i++;
      continue;
    }
    if (quote === undefined && (c === "'" || c === '"')) quote = c;
    else if (c === quote) quote = undefined;
    if (quote === undefined && c === ';') {
      if (current.trim() !== '') out.push({ text: current, line: startLine });
      current = '';
      continue;
    }
    if (current.trim() === '' && !/\s/.test(c)) startLine = line;
    current += c;
  }
  if (current.trim() !== '') out.push({ text: current, line: startLine });
  return out;
}

export class HotfixError extends Error {
  constructor(
    message: string,
    readonly problems: readonly string[] = [],
  ) {
    super(message);
    this.name = 'HotfixError';
  }
}

/** Every hotfix file in the folder, linted; refuses the whole set if any statement is refused. */
export async function readHotfixes(dir: string): Promise<HotfixFile[]> {
  const names = (await readdir(dir)).filter((name) => name.endsWith('.sql')).sort();
  const files: HotfixFile[] = [];
  const problems: string[] = [];
  for (const name of names) {
    const linted = lintHotfix(name, await readFile(join(dir, name), 'utf8'));
    problems.push(...linted.problems);
    files.push({ name, statements: linted.statements });
  }
  if (problems.length > 0) throw new HotfixError(`LiteLLM hotfixes refused, nothing applied:\n  ${problems.join('\n  ')}`, problems);
  return files;
}

/** Applies every hotfix in one transaction as the database owner (only the table owner may alter it). */
export async function applyHotfixes(ownerUrl: string, files: readonly HotfixFile[]): Promise<{ applied: string[] }> {
  const client = new pg.Client({ connectionString: ownerUrl, application_name: 'nemo-litellm-hotfix' });
  await client.connect();
  try {
    await client.query('BEGIN');
    for (const file of files) for (const statement of file.statements) await client.query(statement);
    await client.query('COMMIT');
    return { applied: files.map((f) => f.name) };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw new HotfixError(`LiteLLM hotfix failed, nothing applied: ${(err as Error).message}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The repo's migrations/litellm-hotfixes/ folder, beside the nemo migrations. */
export function hotfixesDir(migrationsDir: string): string {
  return join(migrationsDir, 'litellm-hotfixes');
}
