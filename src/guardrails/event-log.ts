// Guardrail hits, recorded off the request path: counted in metrics at once, written to
// nemo.guardrail_events in batches (one statement for many orgs) every eventFlushMs, one row per
// rule, action and stage of a request with its number of hits (a resent conversation repeats its
// history's hits every turn: hundreds a request). Never the matched text. While the database is
// away rows wait, up to maxQueuedEvents; past that they are dropped and counted, since a request
// must never wait on its audit trail.
import type { Database } from '../db/database.js';
import { log } from '../log.js';
import { guardrailEventsDroppedTotal, guardrailHitsTotal } from '../metrics/registry.js';
import type { Finding } from './types.js';

export interface GuardrailEventContext {
  readonly orgId: string;
  readonly keyId: string;
  readonly requestId: string;
}

interface Row {
  readonly org: string;
  readonly request: string;
  readonly key: string;
  readonly rule: string;
  readonly action: string;
  readonly stage: string;
  /** ISO 8601 in UTC: pg formats a Date parameter ~5x slower than it quotes a string. */
  readonly at: string;
  readonly hits: number;
}

/**
 * Rows per statement. pg turns each parameter array into its text form on the event loop (a few
 * µs a row); a second's events at `chat` load (thousands of rows) in one statement held the loop
 * for tens of ms.
 */
const MAX_ROWS_PER_STATEMENT = 500;

const INSERT_SQL = 'SELECT nemo.record_guardrail_events_v2($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::integer[])';

export class GuardrailEventLog {
  private queue: Row[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly db: Database,
    private readonly options: { readonly eventFlushMs: number; readonly maxQueuedEvents: number },
  ) {}

  record(ctx: GuardrailEventContext, stage: 'input' | 'output', findings: readonly Finding[]): void {
    const at = new Date().toISOString();
    // Hits by rule and action, in first-seen order.
    const hits = new Map<string, { rule: string; action: string; n: number }>();
    for (const finding of findings) {
      const id = `${finding.action}\u0000${finding.rule}`;
      const seen = hits.get(id);
      if (seen === undefined) hits.set(id, { rule: finding.rule, action: finding.action, n: 1 });
      else seen.n++;
    }
    for (const { rule, action, n } of hits.values()) {
      guardrailHitsTotal.inc({ rule: ruleKind(rule), action, stage }, n);
      if (this.queue.length >= this.options.maxQueuedEvents) {
        guardrailEventsDroppedTotal.inc();
        continue;
      }
      this.queue.push({ org: ctx.orgId, request: ctx.requestId, key: ctx.keyId, rule, action, stage, at, hits: n });
    }
    this.schedule();
  }

  /** One timer at a time; it is cleared when it fires, so a write in progress never leaves it stale. */
  private schedule(): void {
    if (this.queue.length === 0 || this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.options.eventFlushMs);
    this.timer.unref();
  }

  /** Writes what is queued; a failed write keeps the rows for the next flush. */
  flush(): Promise<void> {
    this.flushing ??= this.write().finally(() => {
      this.flushing = undefined;
      // Hits recorded during the write (or a failed write's rows) go with the next one.
      this.schedule();
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    await this.flush();
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async write(): Promise<void> {
    const rows = this.queue;
    if (rows.length === 0) return;
    this.queue = [];
    let written = 0;
    try {
      // Statement by statement: the loop serves requests between them.
      while (written < rows.length) {
        const batch = rows.slice(written, written + MAX_ROWS_PER_STATEMENT);
        await this.db.query(INSERT_SQL, [
          batch.map((r) => r.org), batch.map((r) => r.request), batch.map((r) => r.key), batch.map((r) => r.rule),
          batch.map((r) => r.action), batch.map((r) => r.stage), batch.map((r) => r.at), batch.map((r) => r.hits),
        ]);
        written += batch.length;
      }
    } catch (err) {
      log.warn('guardrails: recording events failed; will retry', { error: (err as Error).message, events: rows.length - written });
      const kept = [...rows.slice(written), ...this.queue];
      if (kept.length > this.options.maxQueuedEvents) guardrailEventsDroppedTotal.inc(kept.length - this.options.maxQueuedEvents);
      this.queue = kept.slice(0, this.options.maxQueuedEvents);
    }
  }
}

/** The metric label: the rule's kind (`pii:email`, `deny_word`, `injection`), never a user-chosen index. */
export function ruleKind(rule: string): string {
  // Built-in rule ids are a fixed set; deny words and patterns are numbered by the admin's list.
  if (rule.startsWith('pii:') || rule.startsWith('injection:') || rule === 'max_input_tokens') return rule;
  const colon = rule.indexOf(':');
  return colon === -1 ? rule : rule.slice(0, colon);
}
