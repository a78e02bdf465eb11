// One page of an org's request logs, newest first, without the bodies (the export carries those):
// what the admin API's log list answers. Runs on a client inside the caller's tenant transaction;
// both tables are read (rows written before migration 0007 stay in nemo.request_logs), each with
// its own index-ordered LIMIT, and the two pages merged here.
import type pg from 'pg';

export const LOG_STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'client_closed'] as const;

export interface LogListQuery {
  readonly limit: number;
  /** The page ends before this row: its `created_at` (exact, as listed) and, to break ties, its `log_id`. */
  readonly before?: string | undefined;
  readonly beforeLogId?: string | undefined;
  readonly statusClass?: string | undefined;
  readonly keyId?: string | undefined;
  readonly teamId?: string | undefined;
  readonly model?: string | undefined;
  readonly requestId?: string | undefined;
}

export interface LogListRow {
  /** ISO 8601 with microseconds, in UTC: sorts as text, and pages exactly. */
  readonly created_at: string;
  readonly log_id: string;
  readonly org_id: string;
  readonly request_id: string;
  readonly team_id: string | null;
  readonly key_id: string | null;
  readonly model: string | null;
  readonly deployment: string | null;
  readonly status: number;
  readonly status_class: string;
  readonly error_code: string | null;
  readonly stream: boolean;
  readonly prompt_tokens: number | null;
  readonly completion_tokens: number | null;
  readonly cost_micros: number | null;
  readonly latency_ms: number | null;
  readonly ttft_ms: number | null;
  readonly guardrail_action: string;
  readonly guardrail_rules: string[];
  /** The row holds a request or response body (only orgs logging `full` have them). */
  readonly has_bodies: boolean;
}

const COLUMNS = `to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at, log_id, org_id, request_id, team_id, key_id, model, deployment,
       status, status_class, error_code, stream, prompt_tokens, completion_tokens, cost_micros::float8 AS cost_micros, latency_ms, ttft_ms,
       guardrail_action, guardrail_rules, (request_body IS NOT NULL OR response_body IS NOT NULL) AS has_bodies`;
// Without a log id the cursor is the time alone: the nil uuid sorts before every log id.
const WHERE = `WHERE ($1::timestamptz IS NULL OR (created_at, log_id) < ($1::timestamptz, coalesce($2::uuid, '00000000-0000-0000-0000-000000000000'::uuid)))
  AND ($3::text IS NULL OR status_class = $3) AND ($4::uuid IS NULL OR key_id = $4) AND ($5::uuid IS NULL OR team_id = $5)
  AND ($6::text IS NULL OR model = $6) AND ($7::text IS NULL OR request_id = $7)
ORDER BY created_at DESC, log_id DESC LIMIT $8`;
const SQLS = [`SELECT ${COLUMNS} FROM nemo.request_log_entries ${WHERE}`, `SELECT ${COLUMNS} FROM nemo.request_logs ${WHERE}`];

export async function listRequestLogs(client: pg.PoolClient, query: LogListQuery): Promise<LogListRow[]> {
  const params = [query.before ?? null, query.beforeLogId ?? null, query.statusClass ?? null, query.keyId ?? null, query.teamId ?? null, query.model ?? null, query.requestId ?? null, query.limit];
  const rows: LogListRow[] = [];
  for (const sql of SQLS) rows.push(...(await client.query<LogListRow>(sql, params)).rows);
  // Same fixed-width UTC text and lower-case uuids on both sides: text order is time order.
  rows.sort((a, b) => (a.created_at === b.created_at ? compare(b.log_id, a.log_id) : compare(b.created_at, a.created_at)));
  return rows.slice(0, query.limit);
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
