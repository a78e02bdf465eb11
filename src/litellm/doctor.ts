// Drift between what NemoRouter reads in LiteLLM's schema and what the catalog holds: a missing
// table or column, a column of another type, a definer function that cannot read a table, or the
// app role holding a privilege on public (it must reach LiteLLM's rows only through nemo's
// functions, which scope every read by key hash or org). Read from pg_catalog, which every role may
// read, so the gateway checks with its own pool. `nemo litellm doctor` prints it; /readyz fails on it.
import type { Database } from '../db/database.js';
import { APP_ROLE } from '../db/database.js';
import { LITELLM_COLUMNS, LITELLM_TABLES } from './schema-contract.js';

export interface DriftReport {
  readonly ok: boolean;
  /** One sentence per problem, naming the table and column. */
  readonly problems: readonly string[];
}

interface ColumnRow {
  table: string;
  column: string | null;
  type: string | null;
  owner_can_read: boolean | null;
  app_privileged: boolean;
}

// Tables left-joined to their columns, so a missing table still yields a row (column NULL) when it
// exists with no columns; a table absent from the catalog yields none and is reported below.
const CATALOG_SQL = `
  SELECT c.relname AS table, a.attname AS column, t.typname AS type,
         (SELECT has_table_privilege(p.proowner, c.oid, 'SELECT') FROM pg_proc p JOIN pg_namespace pn ON pn.oid = p.pronamespace
           WHERE pn.nspname = 'nemo' AND p.proname = 'find_api_key_v6') AS owner_can_read,
         EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = $2
                   AND has_table_privilege(r.oid, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')) AS app_privileged
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
    LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_type t ON t.oid = a.atttypid
   WHERE c.relname = ANY ($1) AND c.relkind IN ('r', 'p')`;

export async function litellmDrift(db: Pick<Database, 'query'>): Promise<DriftReport> {
  const { rows } = await db.query<ColumnRow>(CATALOG_SQL, [LITELLM_TABLES, APP_ROLE]);
  const problems: string[] = [];
  for (const table of LITELLM_TABLES) {
    const columns = rows.filter((r) => r.table === table);
    if (columns.length === 0) {
      problems.push(`table public."${table}" is missing (is this LiteLLM's database, migrated by LiteLLM?)`);
      continue;
    }
    const first = columns[0]!;
    if (first.owner_can_read === false) problems.push(`the owner of nemo's functions cannot read public."${table}" (grant it SELECT, or migrate as LiteLLM's database owner)`);
    if (first.owner_can_read === null) problems.push('nemo.find_api_key_v6 is missing: run nemo migrate');
    if (first.app_privileged) problems.push(`${APP_ROLE} holds a privilege on public."${table}": revoke it (the app role reads LiteLLM's rows only through nemo's functions)`);
    for (const [column, types] of Object.entries(LITELLM_COLUMNS[table]!)) {
      const found = columns.find((r) => r.column === column);
      if (found === undefined) problems.push(`column public."${table}".${column} is missing`);
      else if (!types.includes(found.type ?? '')) problems.push(`column public."${table}".${column} is ${found.type}, expected one of ${types.join(', ')}`);
    }
  }
  // The missing-function problem is the same for every table: say it once.
  return { ok: problems.length === 0, problems: [...new Set(problems)] };
}

/** The drift check behind /readyz: the catalog is read at most once per interval, and a change of state is logged. */
export class LiteLLMSchemaWatch {
  private last: { readonly at: number; readonly report: Promise<DriftReport> } | undefined;

  constructor(
    private readonly db: Pick<Database, 'query'>,
    private readonly intervalMs: number,
    private readonly onReport: (report: DriftReport) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  report(): Promise<DriftReport> {
    const now = this.now();
    if (this.last === undefined || now - this.last.at >= this.intervalMs) {
      const report = litellmDrift(this.db).then((r) => (this.onReport(r), r));
      // A failed read is not cached: the next call asks again.
      report.catch(() => (this.last = undefined));
      this.last = { at: now, report };
    }
    return this.last.report;
  }

  /** For /readyz: throws the problems, so the check fails with them. */
  async check(): Promise<void> {
    const report = await this.report();
    if (!report.ok) throw new Error(`LiteLLM schema drift: ${report.problems.join('; ')}`);
  }
}
