// What an org spent, read from the ledger's own data so it always matches billing: the usage report
// (requests' holds and lease charges grouped by day, key, team or model) and the ledger entries,
// newest first. Both run under the org's tenant; callers authorize and validate the query.
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
  /** A request's settle row: the usage its charge was priced from (null on other rows, and on rows written before it was recorded). */
  readonly prompt_tokens: number | null;
  readonly completion_tokens: number | null;
  readonly cached_tokens: number | null;
  readonly cache_write_tokens: number | null;
  readonly reasoning_tokens: number | null;
  readonly images: number | null;
  readonly created_at: Date;
};

const LEDGER_ENTRIES_SQL = `SELECT entry_id::float8 AS id, org_id, kind, available_delta::float8 AS available_delta, held_delta::float8 AS held_delta, charged::float8 AS charged,
       reservation_id, request_id, key_id, idempotency_key, note,
       prompt_tokens::float8 AS prompt_tokens, completion_tokens::float8 AS completion_tokens, cached_tokens::float8 AS cached_tokens,
       cache_write_tokens::float8 AS cache_write_tokens, reasoning_tokens::float8 AS reasoning_tokens, images::float8 AS images, created_at
FROM nemo.ledger_entries WHERE ($1::bigint IS NULL OR entry_id < $1) ORDER BY entry_id DESC LIMIT $2`;

/** The default report window: the start of the current UTC month to now. */
export function monthToDate(now = new Date()): { from: string; to: string } {
  return { from: new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)).toISOString(), to: now.toISOString() };
}

/**
 * Requests, credits charged (settled) and still held, per group: from requests' own holds (closed by
 * the settles billing is made of) and from the charges written against credit leases (one ledger
 * row per request; a request still running on a lease holds nothing of its own).
 */
export async function usageReport(db: Database, orgId: string, query: UsageQuery): Promise<UsageRow[]> {
  const columns = query.groupBy.map((group) => USAGE_COLUMNS[group]);
  const positions = query.groupBy.map((_, i) => String(i + 1)).join(', ');
  const sql = `WITH usage AS (
  SELECT x.created_at, x.key_id, x.team_id, x.model,
         CASE WHEN x.state = 'settled' THEN x.charged ELSE 0 END AS charged,
         CASE WHEN x.state = 'reserved' THEN x.amount ELSE 0 END AS held
  FROM nemo.reservations x
  WHERE x.kind = 'request' AND x.created_at >= $1::timestamptz AND x.created_at < $2::timestamptz
  UNION ALL
  SELECT e.created_at, e.key_id, e.team_id, e.model, e.charged, 0
  FROM nemo.ledger_entries e
  WHERE e.kind = 'settle' AND e.idempotency_key IS NOT NULL AND e.created_at >= $1::timestamptz AND e.created_at < $2::timestamptz
)
SELECT ${columns.join(', ')}, count(*)::float8 AS requests, coalesce(sum(r.charged), 0)::float8 AS charged_micros, coalesce(sum(r.held), 0)::float8 AS held_micros
FROM usage r
GROUP BY ${positions} ORDER BY ${positions}`;
  return db.withTenant(orgId, async (client) => (await client.query<UsageRow>(sql, [query.from, query.to])).rows);
}

/** Newest first; `beforeEntryId` pages. */
export async function ledgerEntries(db: Database, orgId: string, page: { beforeEntryId: number | undefined; limit: number }): Promise<LedgerEntryRow[]> {
  return db.withTenant(orgId, async (client) => (await client.query<LedgerEntryRow>(LEDGER_ENTRIES_SQL, [page.beforeEntryId ?? null, page.limit])).rows);
}
