// The request log: one row per request in nemo.request_log_entries, recorded off the request path.
// record() only queues; rows are written in order, one statement per batch (many orgs at once)
// through nemo.record_request_log_entries, every flushIntervalMs or as soon as maxBatchRows wait. A failed
// batch stays at the head of the queue and is retried; the queue is bounded, and past
// maxQueuedRows rows are dropped and counted, since a request never waits on its log. A batch the
// database refuses for its data (SQLSTATE class 22) is written in halves down to the row it
// refuses, which is dropped, counted and logged: one bad row never holds back the others.
import { randomUUID } from 'node:crypto';
import type { Database } from '../db/database.js';
import { CHECK_VIOLATION, DATA_EXCEPTION_CLASS } from '../db/sqlstate.js';
import { log } from '../log.js';

export type GuardrailOutcome = 'none' | 'flag' | 'redact' | 'block';
export type LogStatusClass = '1xx' | '2xx' | '3xx' | '4xx' | '5xx' | 'client_closed';

export interface RequestLogEntry {
  readonly requestId: string;
  readonly orgId: string;
  readonly teamId: string | null;
  readonly keyId: string | null;
  /** The public model name asked for; null when the request never named a valid one. */
  readonly model: string | null;
  /** The deployment that served it (id), null when none did. */
  readonly deployment: string | null;
  readonly status: number;
  readonly statusClass: LogStatusClass;
  /** The catalog code of the error answered (NR_...), null on success. */
  readonly errorCode: string | null;
  readonly stream: boolean;
  readonly promptTokens: number | null;
  readonly completionTokens: number | null;
  /** The usage's parts, where the upstream reported them (else null): cached and cache-written prompt tokens, reasoning tokens. */
  readonly cachedTokens?: number | null;
  readonly cacheWriteTokens?: number | null;
  readonly reasoningTokens?: number | null;
  readonly costMicros: number | null;
  readonly latencyMs: number;
  readonly ttftMs: number | null;
  /** The strongest guardrail action taken, and the rule ids that fired (never the matched text). */
  readonly guardrailAction: GuardrailOutcome;
  readonly guardrailRules: readonly string[];
  /** Bodies: pass them only for orgs logging `full`; the database drops them for the others anyway. */
  readonly requestBody?: string | null;
  readonly responseBody?: string | null;
  /** The org's retention in days as the gateway knew it; null or absent: the writer's default. */
  readonly retentionDays?: number | null;
  /** When the request arrived or ended; default: when it was recorded. */
  readonly at?: Date;
}

export interface RequestLogOptions {
  /** Retention of rows whose org has none of its own (logs.retentionDays). */
  readonly defaultRetentionDays: number;
  /** Rows are written at most this long after they are recorded. */
  readonly flushIntervalMs: number;
  /** Rows per statement; reaching it starts a write at once. */
  readonly maxBatchRows: number;
  /** Rows waiting (in flight included) beyond this are dropped and counted. */
  readonly maxQueuedRows: number;
  /** Bodies longer than this are cut (characters). */
  readonly maxBodyChars?: number;
  /** Longest wait between two retries of a failed write. */
  readonly maxRetryDelayMs?: number;
  /** Called after every successful write: for the metrics (batch size, duration). */
  readonly onFlush?: (rows: number, seconds: number) => void;
}

interface Row {
  /** The row as serialized when recorded: one element of its batch's JSON array. */
  readonly json: string;
  /** For the log line of a row the database refused. */
  readonly requestId: string;
  readonly at: Date;
  readonly retentionDays: number | null;
}

const DEFAULTS = { maxBodyChars: 65_536, maxRetryDelayMs: 5_000 };
const INSERT_SQL = 'SELECT nemo.record_request_log_entries_v2($1::json, $2::integer) AS inserted';
const ENSURE_SQL = 'SELECT nemo.ensure_request_log_entry_partitions($1::date[])';

export class RequestLogWriter {
  private queue: Row[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private failures = 0;
  private closed = false;
  private writtenRows = 0;
  private droppedRows = 0;
  private readonly options: Required<Omit<RequestLogOptions, 'onFlush'>> & Pick<RequestLogOptions, 'onFlush'>;

  constructor(
    private readonly db: Pick<Database, 'query'>,
    options: RequestLogOptions,
  ) {
    this.options = { ...DEFAULTS, ...options };
    for (const name of ['defaultRetentionDays', 'flushIntervalMs', 'maxBatchRows', 'maxQueuedRows', 'maxBodyChars', 'maxRetryDelayMs'] as const) {
      if (!Number.isInteger(this.options[name]) || this.options[name] <= 0) throw new Error(`RequestLogWriter: ${name} must be a positive integer`);
    }
  }

  /** Rows waiting to be written, the one in flight included. */
  get queued(): number {
    return this.queue.length;
  }

  /** Rows written since start (rows the database skipped for an org logging `none` included). */
  get written(): number {
    return this.writtenRows;
  }

  /** Rows dropped since start: the queue was full, the database refused them for their data, or close() gave up on them. */
  get dropped(): number {
    return this.droppedRows;
  }

  /** Queues one row; false when it was dropped (queue full, or the writer closed). */
  record(entry: RequestLogEntry): boolean {
    if (this.closed || this.queue.length >= this.options.maxQueuedRows) {
      this.droppedRows++;
      return false;
    }
    // Serialized now, a row at a time: one JSON.stringify of a 1,000-row batch held the event loop
    // for 3-6 ms at once. A queue of rows (a database away) then holds each body cut to
    // maxBodyChars, not the whole one.
    const at = entry.at ?? new Date();
    this.queue.push({ json: rowJson(randomUUID(), at, entry, this.options.maxBodyChars), requestId: entry.requestId, at, retentionDays: entry.retentionDays ?? null });
    if (this.queue.length >= this.options.maxBatchRows && this.failures === 0) void this.flush();
    else this.schedule(this.options.flushIntervalMs);
    return true;
  }

  /** Writes everything queued so far, batch by batch; resolves early (rows kept) when a write fails. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing ??= this.drain().finally(() => {
      this.flushing = undefined;
      // Rows recorded during the write, or a failed write's rows, go with the next one.
      this.schedule(this.failures === 0 ? this.options.flushIntervalMs : this.retryDelayMs());
    });
    return this.flushing;
  }

  /**
   * Stops taking rows and writes every queued one, retrying failed writes until deadlineMs has
   * passed; what is still queued then is dropped, counted and logged.
   */
  async close(deadlineMs = 10_000): Promise<void> {
    this.closed = true;
    const giveUpAt = performance.now() + deadlineMs;
    for (;;) {
      await this.flush();
      if (this.queue.length === 0) break;
      const waitMs = Math.min(this.retryDelayMs(), giveUpAt - performance.now());
      if (waitMs <= 0) break;
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queue.length > 0) {
      log.error('request logs: rows not written at shutdown', { rows: this.queue.length });
      this.droppedRows += this.queue.length;
      this.queue = [];
    }
  }

  /** One timer at a time, cleared when it fires, so a write in progress never leaves it stale. */
  private schedule(delayMs: number): void {
    if (this.queue.length === 0 || this.timer !== undefined || this.flushing !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
    this.timer.unref();
  }

  private retryDelayMs(): number {
    return Math.min(this.options.maxRetryDelayMs, this.options.flushIntervalMs * 2 ** Math.min(this.failures, 10));
  }

  private async drain(): Promise<void> {
    // One batch of whatever is queued, then only full ones: rows that arrive meanwhile wait for
    // maxBatchRows or the next interval, so a busy gateway writes few large batches, not many small.
    let first = true;
    while (this.queue.length > 0 && (first || this.closed || this.queue.length >= this.options.maxBatchRows)) {
      first = false;
      // Rows leave the queue only once written: a failure keeps them, in order, at its head.
      const batch = this.queue.slice(0, this.options.maxBatchRows);
      const startedAt = performance.now();
      let refused = 0;
      try {
        refused = await this.writeAround(batch);
      } catch (err) {
        this.failures++;
        log.warn('request logs: write failed; will retry', { error: (err as Error).message, rows: batch.length, queued: this.queue.length, failures: this.failures });
        return;
      }
      this.failures = 0;
      this.queue.splice(0, batch.length);
      this.writtenRows += batch.length - refused;
      this.droppedRows += refused;
      this.options.onFlush?.(batch.length, (performance.now() - startedAt) / 1000);
    }
  }

  /**
   * Writes the rows; those the database refuses for their data are dropped and logged, found by
   * writing halves (a retry of rows already written inserts nothing: log ids conflict). Returns how
   * many were dropped; throws on any other failure (the database away), for a retry of them all.
   */
  private async writeAround(rows: readonly Row[]): Promise<number> {
    try {
      await this.write(rows);
      return 0;
    } catch (err) {
      if (!isDataException(err)) throw err;
      if (rows.length === 1) {
        log.error('request logs: the database refused a row; dropped', { requestId: rows[0]!.requestId, error: (err as Error).message });
        return 1;
      }
      const half = rows.length >> 1;
      return (await this.writeAround(rows.slice(0, half))) + (await this.writeAround(rows.slice(half)));
    }
  }

  private async write(batch: readonly Row[]): Promise<void> {
    const values = [batchJson(batch), this.options.defaultRetentionDays];
    try {
      await this.db.query(INSERT_SQL, values);
    } catch (err) {
      // The maintenance job keeps partitions ahead for the retentions it knows; a new retention,
      // a clock jump or a job that could not run leaves an expiry day without one: it is created
      // here and the batch retried (a row no partition accepts is a check_violation).
      if ((err as { code?: unknown }).code !== CHECK_VIOLATION || !/no partition/i.test((err as Error).message)) throw err;
      const days = new Set(batch.map((row) => expiryDay(row, this.options.defaultRetentionDays)));
      await this.db.query(ENSURE_SQL, [[...days]]);
      await this.db.query(INSERT_SQL, values);
    }
  }
}

/** The strongest action among guardrail findings (block > redact > flag), and the rule ids in first-seen order. */
export function guardrailOutcome(findings: Iterable<{ readonly rule: string; readonly action: 'block' | 'redact' | 'flag' }>): { action: GuardrailOutcome; rules: string[] } {
  let action: GuardrailOutcome = 'none';
  const rules = new Set<string>();
  for (const finding of findings) {
    rules.add(finding.rule);
    if (STRENGTH[finding.action] > STRENGTH[action]) action = finding.action;
  }
  return { action, rules: [...rules] };
}

const STRENGTH: Record<GuardrailOutcome, number> = { none: 0, flag: 1, redact: 2, block: 3 };

const isDataException = (err: unknown): boolean => String((err as { code?: unknown }).code ?? '').startsWith(DATA_EXCEPTION_CLASS);

/** One row as nemo.record_request_log_entries_v2 reads it (snake_case keys). */
function rowJson(logId: string, at: Date, e: RequestLogEntry, maxBodyChars: number): string {
  return JSON.stringify({
    log_id: logId,
    created_at: at,
    org_id: e.orgId,
    team_id: e.teamId,
    key_id: e.keyId,
    request_id: e.requestId,
    model: e.model,
    deployment: e.deployment,
    status: e.status,
    status_class: e.statusClass,
    error_code: e.errorCode,
    stream: e.stream,
    prompt_tokens: storedCount(e.promptTokens),
    completion_tokens: storedCount(e.completionTokens),
    cached_tokens: storedCount(e.cachedTokens),
    cache_write_tokens: storedCount(e.cacheWriteTokens),
    reasoning_tokens: storedCount(e.reasoningTokens),
    cost_micros: e.costMicros,
    latency_ms: e.latencyMs,
    ttft_ms: e.ttftMs,
    guardrail_action: e.guardrailAction,
    guardrail_rules: e.guardrailRules,
    request_body: loggableBody(e.requestBody, maxBodyChars),
    response_body: loggableBody(e.responseBody, maxBodyChars),
    retention_days: e.retentionDays ?? null,
  });
}

/** A token count as its integer column takes it: an upstream's count past 2^31 - 1 is logged as unknown. */
function storedCount(n: number | null | undefined): number | null {
  return n != null && Number.isInteger(n) && n >= 0 && n <= MAX_INT4 ? n : null;
}
const MAX_INT4 = 2_147_483_647;

/** The batch as one JSON array: its rows' strings joined, no per-value escaping of parameter arrays. */
function batchJson(batch: readonly Row[]): string {
  const parts = new Array<string>(batch.length);
  for (let i = 0; i < batch.length; i++) parts[i] = batch[i]!.json;
  return `[${parts.join(',')}]`;
}

/**
 * The first `chars` characters as PostgreSQL's JSON functions take text: every lone surrogate (an
 * upstream's broken escape, or a pair split by the cut) and every NUL as U+FFFD.
 */
function loggableBody(text: string | null | undefined, chars: number): string | null {
  if (text == null) return null;
  let body = text.length <= chars ? text : text.slice(0, chars);
  if (!body.isWellFormed()) body = body.toWellFormed();
  return body.includes('\0') ? body.replaceAll('\0', '\ufffd') : body;
}
const DAY_MS = 86_400_000;
const MAX_RETENTION_DAYS = 731;

/** The row's partition, as nemo.record_request_log_entries computes it: its UTC day plus its retention. */
function expiryDay(row: Row, defaultRetentionDays: number): string {
  const days = Math.min(Math.max(row.retentionDays ?? defaultRetentionDays, 1), MAX_RETENTION_DAYS);
  return new Date((Math.floor(row.at.getTime() / DAY_MS) + days) * DAY_MS).toISOString().slice(0, 10);
}
