// The migration runner: applies migrations/NNNN_name.sql in order, each in its own transaction, as
// the database owner; ensures the gateway's non-owner role exists with no way around RLS. Every
// file is linted and the applied history verified before the first statement runs, so a bad
// migration set changes nothing. Concurrent runners on one database serialize on an advisory lock.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { lintMigration, MIGRATION_FILE_NAME } from './migration-lint.js';
import { DUPLICATE_OBJECT, UNIQUE_VIOLATION } from './sqlstate.js';

export type MigrationErrorCode = 'NR_MIGRATION_FAILED' | 'NR_MIGRATION_LINT' | 'NR_MIGRATION_EDITED';

export class MigrationError extends Error {
  readonly code: MigrationErrorCode;
  /** Every lint problem, for NR_MIGRATION_LINT; the message lists them too. */
  readonly problems: readonly string[];

  constructor(code: MigrationErrorCode, message: string, options?: { problems?: readonly string[]; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MigrationError';
    this.code = code;
    this.problems = options?.problems ?? [];
  }
}

export interface RunMigrationsOptions {
  readonly ownerUrl: string;
  readonly migrationsDir: string;
  readonly appRole: { readonly name: string; readonly password: string };
  readonly log?: (msg: string, fields?: object) => void;
}

/** ASCII "NEMOMIGR": recognisable in pg_locks. Advisory locks are per database. */
const MIGRATION_LOCK_KEY = '5639999111345817426';

const BOOTSTRAP_SQL = `
  CREATE SCHEMA IF NOT EXISTS nemo;
  CREATE TABLE IF NOT EXISTS nemo.schema_migrations (
    name text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  );
  REVOKE ALL ON SCHEMA nemo FROM PUBLIC;
`;

interface MigrationFile {
  readonly name: string;
  readonly sql: string;
  readonly checksum: string;
}

export async function runMigrations(options: RunMigrationsOptions): Promise<{ applied: string[]; skipped: string[] }> {
  const log = options.log ?? (() => {});
  // Reading and linting need no database: a refused set never opens a connection.
  const files = await readMigrations(options.migrationsDir);

  const client = new pg.Client({ connectionString: options.ownerUrl, application_name: 'nemo-migrate' });
  // A dropped connection also rejects the pending query, which is what reports it.
  client.on('error', (err) => log('migration connection error', { error: err.message }));
  let locked = false;
  try {
    await client.connect();
    await client.query(`SELECT pg_advisory_lock(${MIGRATION_LOCK_KEY})`);
    locked = true;
    await client.query(BOOTSTRAP_SQL);
    await ensureAppRole(client, options.appRole);

    const { rows } = await client.query<{ name: string; checksum: string }>('SELECT name, checksum FROM nemo.schema_migrations ORDER BY name');
    const pending = pendingMigrations(files, rows);
    const applied: string[] = [];
    for (const file of pending) {
      const startedAt = performance.now();
      await applyMigration(client, file);
      applied.push(file.name);
      log('migration applied', { name: file.name, durationMs: Math.round(performance.now() - startedAt) });
    }
    const skipped = files.filter((f) => !applied.includes(f.name)).map((f) => f.name);
    log('migrations up to date', { applied: applied.length, skipped: skipped.length });
    return { applied, skipped };
  } catch (err) {
    if (err instanceof MigrationError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new MigrationError('NR_MIGRATION_FAILED', `migration run failed: ${message}`, { cause: err });
  } finally {
    if (locked) await client.query(`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY})`).catch(() => {}); // the session end releases it anyway
    await client.end().catch(() => {});
  }
}

/** The repo's migrations/ folder, found from this module whether it runs from src/ or dist/src/. */
export function migrationsDirFromHere(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  return join(dir, 'migrations');
}

async function readMigrations(dir: string): Promise<MigrationFile[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    throw new MigrationError('NR_MIGRATION_FAILED', `cannot read the migrations directory ${dir}`, { cause: err });
  }
  const names = entries.filter((name) => name.toLowerCase().endsWith('.sql')).sort();
  const files: MigrationFile[] = [];
  const problems: string[] = [];
  const byNumber = new Map<string, string>();
  for (const name of names) {
    const bytes = await readFile(join(dir, name));
    const sql = bytes.toString('utf8');
    problems.push(...lintMigration(name, sql));
    // Two branches that picked the same number would apply in an order nobody chose.
    const number = name.slice(0, 4);
    const twin = byNumber.get(number);
    if (MIGRATION_FILE_NAME.test(name) && twin) problems.push(`${name}: shares number ${number} with ${twin}; renumber one`);
    byNumber.set(number, name);
    files.push({ name, sql, checksum: createHash('sha256').update(bytes).digest('hex') });
  }
  if (problems.length > 0) {
    throw new MigrationError('NR_MIGRATION_LINT', `migrations refused, nothing applied:\n  ${problems.join('\n  ')}`, { problems });
  }
  return files;
}

/** Files not yet applied, after checking the recorded history still matches the files. */
function pendingMigrations(files: readonly MigrationFile[], recorded: readonly { name: string; checksum: string }[]): MigrationFile[] {
  const byName = new Map(files.map((f) => [f.name, f]));
  for (const row of recorded) {
    const file = byName.get(row.name);
    if (!file) throw new MigrationError('NR_MIGRATION_EDITED', `${row.name} was applied but its file is gone; migrations are forward-only`);
    if (file.checksum !== row.checksum) {
      throw new MigrationError('NR_MIGRATION_EDITED', `${row.name} was edited after it was applied; add a new migration instead`);
    }
  }
  const applied = new Set(recorded.map((r) => r.name));
  const pending = files.filter((f) => !applied.has(f.name));
  // A file numbered below the newest applied one was merged late; applying it now would run it
  // in an order no database before ran it in.
  const newest = recorded.at(-1)?.name;
  const late = pending.find((f) => newest !== undefined && f.name < newest);
  if (late) throw new MigrationError('NR_MIGRATION_FAILED', `${late.name} sorts before the already-applied ${newest}; renumber it after ${newest}`);
  return pending;
}

async function applyMigration(client: pg.Client, file: MigrationFile): Promise<void> {
  await client.query('BEGIN');
  try {
    // Anything a migration leaves unqualified still lands in nemo, never in public.
    await client.query('SET LOCAL search_path = nemo, pg_catalog');
    await runFileSql(client, file);
    await client.query('INSERT INTO nemo.schema_migrations (name, checksum) VALUES ($1, $2)', [file.name, file.checksum]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {}); // a broken connection rolls back by itself
    throw err;
  }
}

async function runFileSql(client: pg.Client, file: MigrationFile): Promise<void> {
  try {
    await client.query(file.sql);
  } catch (err) {
    const pgErr = err as Partial<pg.DatabaseError>;
    const at = pgErr.position ? ` at line ${lineOfPosition(file.sql, Number(pgErr.position))}` : '';
    const sqlState = pgErr.code ? ` [${pgErr.code}]` : '';
    const message = err instanceof Error ? err.message : String(err);
    throw new MigrationError('NR_MIGRATION_FAILED', `${file.name}${at}: ${message}${sqlState}; rolled back`, { cause: err });
  }
}

/** Postgres reports a 1-based character position in the query text. */
function lineOfPosition(sql: string, position: number): number {
  const before = Array.from(sql).slice(0, position - 1).join('');
  return before.split('\n').length;
}

/**
 * Roles are cluster-wide while the advisory lock is per database, so runners for two databases
 * would collide on pg_authid ("tuple concurrently updated"). Locking the shared catalog against
 * other writers (readers, logins included, are not blocked) serializes them for a few ms.
 */
async function ensureAppRole(client: pg.Client, role: RunMigrationsOptions['appRole']): Promise<void> {
  const name = client.escapeIdentifier(role.name);
  const password = client.escapeLiteral(role.password);
  await client.query('BEGIN');
  try {
    await client.query('LOCK TABLE pg_catalog.pg_authid IN SHARE ROW EXCLUSIVE MODE');
    const { rowCount } = await client.query('SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1', [role.name]);
    if (rowCount === 0) {
      await client.query('SAVEPOINT create_role');
      try {
        await client.query(`CREATE ROLE ${name} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD ${password}`);
      } catch (err) {
        // A runner that does not take the lock (an older build, a hand-run script) got there first.
        const code = (err as { code?: string }).code;
        if (code !== DUPLICATE_OBJECT && code !== UNIQUE_VIOLATION) throw err;
        await client.query('ROLLBACK TO SAVEPOINT create_role');
      }
    }
    // Always: a role created by hand may carry attributes that would bypass tenancy.
    await client.query(`ALTER ROLE ${name} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD ${password}`);
    await client.query(`GRANT USAGE ON SCHEMA nemo TO ${name}`);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
