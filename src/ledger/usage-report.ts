// What an org spent, read from the ledger's own data so it always matches billing: the usage report
// (reservations grouped by day, key, team or model) and the ledger entries, newest first. Both run
// under the org's tenant; callers authorize and validate the query.
import type { Database } from '../db/database.js';

export const USAGE_GROUPS = ['day', 'key', 'team', 'model'] as const;
export type UsageGroup = (typeof USAGE_GROUPS)[number];

/** Groupings: fixed SQL per name, never built from input. */
const USAGE_COLUMNS: Readonly<Record<UsageGroup, string>> = {
  day: "to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day",
  key: 'r.key_id',
  team: 'r.team_id',
  model: 'r.model',
};

export interface UsageQuery {
  /** ISO times: requests started in [from, to). */
  readonly from: string;
  readonly to: string;
  readonly groupBy: readonly UsageGroup[];
}

/** A row per group: the group columns, then requests, charged_micros and held_micros. */
export type UsageRow = Record<string, unknown>;

/** A ledger entry as the admin API lists it: column names, amounts in micro-credits as numbers. */
export type LedgerEntryRow = {
  readonly id: number;
  readonly org_id: string;
  readonly kind: string;
  readonly available_delta: number;
  readonly held_delta: number;
  readonly charged: number;
  readonly reservation_id: string | null;
  readonly request_id: string | null;
  readonly key_id: string | null;
  readonly idempotency_key: string | null;
  readonly note: string | null;
  readonly created_at: Date;
};

const LEDGER_ENTRIES_SQL = `SELECT entry_id::float8 AS id, org_id, kind, available_delta::float8 AS available_delta, held_delta::float8 AS held_delta, charged::float8 AS charged,
       reservation_id, request_id, key_id, idempotency_key, note, created_at
FROM nemo.ledger_entries WHERE ($1::bigint IS NULL OR entry_id < $1) ORDER BY entry_id DESC LIMIT $2`;

/** The default report window: the start of the current UTC month to now. */
export function monthToDate(now = new Date()): { from: string; to: string } {
  return { from: new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)).toISOString(), to: now.toISOString() };
}

/**
 * Requests held, credits charged (settled) and still held, per group, from the reservations (closed
 * by the settles billing is made of).
 */
export async function usageReport(db: Database, orgId: string, query: UsageQuery): Promise<UsageRow[]> {
  const columns = query.groupBy.map((group) => USAGE_COLUMNS[group]);
  const positions = query.groupBy.map((_, i) => String(i + 1)).join(', ');
  const sql = `SELECT ${columns.join(', ')}, count(*)::float8 AS requests,
       coalesce(sum(r.charged) FILTER (WHERE r.state = 'settled'), 0)::float8 AS charged_micros,
       coalesce(sum(r.amount) FILTER (WHERE r.state = 'reserved'), 0)::float8 AS held_micros
FROM nemo.reservations r
WHERE r.created_at >= $1::timestamptz AND r.created_at < $2::timestamptz
GROUP BY ${positions} ORDER BY ${positions}`;
  return db.withTenant(orgId, async (client) => (await client.query<UsageRow>(sql, [query.from, query.to])).rows);
}

/** Newest first; `beforeEntryId` pages. */
export async function ledgerEntries(db: Database, orgId: string, page: { beforeEntryId: number | undefined; limit: number }): Promise<LedgerEntryRow[]> {
  return db.withTenant(orgId, async (client) => (await client.query<LedgerEntryRow>(LEDGER_ENTRIES_SQL, [page.beforeEntryId ?? null, page.limit])).rows);
}
