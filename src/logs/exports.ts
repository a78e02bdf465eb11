// Streaming exports of an org's request logs and ledger entries for a time range, as NDJSON or
// CSV, read through pg-cursor in batches inside the caller's tenant transaction (row-level
// security decides what is visible). The next batch is read only once the sink took the last one,
// so memory stays flat whatever the row count. Knows nothing about HTTP: the sink does.
import Cursor from 'pg-cursor';
import type pg from 'pg';

export type ExportKind = 'logs' | 'ledger';
export type ExportFormat = 'ndjson' | 'csv';

export interface ExportRange {
  /** Inclusive. */
  readonly from: Date;
  /** Exclusive. */
  readonly to: Date;
}

export interface ExportSink {
  /** Takes a chunk; resolves false when nobody reads any more (the export stops). */
  write(chunk: string): boolean | Promise<boolean>;
}

interface ExportSpec {
  readonly columns: readonly string[];
  /** Read one after the other, each in its own order. */
  readonly sqls: readonly string[];
}

const ISO = `to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

const logColumns = (usageParts: string) => `${ISO}, request_id, org_id, team_id, key_id, model, deployment, status, status_class, error_code, stream, prompt_tokens, completion_tokens,
                 ${usageParts}, cost_micros::float8, latency_ms, ttft_ms, guardrail_action, guardrail_rules, request_body, response_body`;
// Rows written before migration 0011 have no usage parts.
const LOG_COLUMNS = logColumns('cached_tokens, cache_write_tokens, reasoning_tokens');
const OLD_LOG_COLUMNS = logColumns('NULL::integer, NULL::integer, NULL::integer');
const IN_RANGE = 'WHERE created_at >= $1::timestamptz AND created_at < $2::timestamptz ORDER BY created_at, log_id';

const SPECS: Record<ExportKind, ExportSpec> = {
  logs: {
    columns: ['created_at', 'request_id', 'org_id', 'team_id', 'key_id', 'model', 'deployment', 'status', 'status_class', 'error_code', 'stream', 'prompt_tokens', 'completion_tokens', 'cached_tokens', 'cache_write_tokens', 'reasoning_tokens', 'cost_micros', 'latency_ms', 'ttft_ms', 'guardrail_action', 'guardrail_rules', 'request_body', 'response_body'],
    // Rows written before per-org retention (migration 0007) first, then the current table: one
    // cursor each, since a UNION under row-level security is sorted whole before its first row.
    sqls: [`SELECT ${OLD_LOG_COLUMNS} FROM nemo.request_logs ${IN_RANGE}`, `SELECT ${LOG_COLUMNS} FROM nemo.request_log_entries ${IN_RANGE}`],
  },
  ledger: {
    // The usage a settle row was priced from (migration 0012) last: null on other rows and older settles.
    columns: ['created_at', 'entry_id', 'org_id', 'kind', 'available_delta', 'held_delta', 'charged', 'reservation_id', 'request_id', 'key_id', 'idempotency_key', 'note',
      'prompt_tokens', 'completion_tokens', 'cached_tokens', 'cache_write_tokens', 'reasoning_tokens', 'images'],
    sqls: [`SELECT ${ISO}, entry_id::float8, org_id, kind, available_delta::float8, held_delta::float8, charged::float8, reservation_id, request_id, key_id, idempotency_key, note,
                   prompt_tokens::float8, completion_tokens::float8, cached_tokens::float8, cache_write_tokens::float8, reasoning_tokens::float8, images::float8
            FROM nemo.ledger_entries WHERE created_at >= $1::timestamptz AND created_at < $2::timestamptz
           ORDER BY org_id, entry_id`],
  },
};

export function exportColumns(kind: ExportKind): readonly string[] {
  return SPECS[kind].columns;
}

/**
 * Streams the rows of `kind` in the range into the sink; returns how many were taken. Runs on a
 * client inside a tenant transaction; the cursor is closed however it ends.
 */
export async function streamExport(client: pg.PoolClient, kind: ExportKind, range: ExportRange, format: ExportFormat, sink: ExportSink, batchRows: number): Promise<number> {
  const { columns, sqls } = SPECS[kind];
  const line = format === 'csv' ? csvLine : ndjsonLine(columns);
  // One export may outlast the pool's statement timeout; a stalled client is cut by the sink.
  await client.query('SET LOCAL statement_timeout = 0');
  const params = [range.from.toISOString(), range.to.toISOString()];
  let rows = 0;
  // The first write carries the CSV header, so a failing query still answers with an error.
  let chunk = format === 'csv' ? csvLine(columns) : '';
  for (const sql of sqls) {
    const cursor = client.query(new Cursor<unknown[]>(sql, params, { rowMode: 'array' }));
    try {
      for (;;) {
        const batch = await cursor.read(batchRows);
        for (let i = 0; i < batch.length; i++) chunk += line(batch[i]!);
        rows += batch.length;
        if (chunk !== '' && !(await sink.write(chunk))) return rows;
        chunk = '';
        if (batch.length < batchRows) break;
      }
    } finally {
      await cursor.close();
    }
  }
  return rows;
}

/** RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled; null is empty. */
export function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = Array.isArray(value) ? value.join(';') : typeof value === 'string' ? value : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function csvLine(row: readonly unknown[]): string {
  let out = '';
  for (let i = 0; i < row.length; i++) out += (i === 0 ? '' : ',') + csvField(row[i]);
  return out + '\r\n';
}

/** One JSON object per line, keys in column order; the key prefixes are built once. */
export function ndjsonLine(columns: readonly string[]): (row: readonly unknown[]) => string {
  const prefixes = columns.map((name, i) => (i === 0 ? '{' : ',') + JSON.stringify(name) + ':');
  return (row) => {
    let out = '';
    for (let i = 0; i < prefixes.length; i++) {
      const value = row[i];
      out += prefixes[i]! + (value === null || value === undefined ? 'null' : typeof value === 'number' ? (Number.isFinite(value) ? String(value) : 'null') : JSON.stringify(value));
    }
    return out + '}\n';
  };
}
