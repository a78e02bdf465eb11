// Postgres outside the ledger: pool connections, the key cache's hits and reads, the request-log
// writer and the streaming exports, most read from their owners at scrape time.
import { Counter, Gauge, Histogram } from 'prom-client';
import { registry, HotCounter } from './core.js';

export const keyCacheLookupsTotal = new HotCounter(
  'nemo_key_cache_lookups_total',
  'API key lookups: hit (cached answer) or miss (read from Postgres).',
  ['result'],
);

/** Pools whose connections are reported at scrape time (a pg.Pool fits: its options carry max). */
interface ReportedPool {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
  readonly options?: { readonly max?: number };
}
const pools = new Map<string, ReportedPool>();

export function reportPool(name: string, pool: ReportedPool): void {
  pools.set(name, pool);
}

new Gauge({
  name: 'nemo_db_pool_connections',
  help: 'Postgres pool connections by pool (app, ledger) and state: in_use, idle, waiting callers, and max (the pool size).',
  labelNames: ['pool', 'state'] as const,
  registers: [registry],
  collect() {
    for (const [name, pool] of pools) {
      this.set({ pool: name, state: 'in_use' }, pool.totalCount - pool.idleCount);
      this.set({ pool: name, state: 'idle' }, pool.idleCount);
      this.set({ pool: name, state: 'waiting' }, pool.waitingCount);
      if (pool.options?.max !== undefined) this.set({ pool: name, state: 'max' }, pool.options.max);
    }
  },
});

/** The request-log writer's counts, read at scrape time (main.ts points these at the writer). */
export const requestLogState = { queued: () => 0, written: () => 0, dropped: () => 0 };
/** Streaming exports running in this process (main.ts points this at the export routes). */
export const exportState = { active: () => 0 };

new Gauge({
  name: 'nemo_request_log_queued_rows',
  help: 'Request log rows waiting to be written to nemo.request_log_entries (the batch in flight included).',
  registers: [registry],
  collect() {
    this.set(requestLogState.queued());
  },
});

new Counter({
  name: 'nemo_request_log_rows_written_total',
  help: 'Request log rows written to nemo.request_log_entries (orgs logging none send none).',
  registers: [registry],
  collect() {
    this.reset();
    this.inc(requestLogState.written());
  },
});

new Counter({
  name: 'nemo_request_log_rows_dropped_total',
  help: 'Request log rows dropped: the queue was full (the database away), the database refused the row for its data, or shutdown could not write them.',
  registers: [registry],
  collect() {
    this.reset();
    this.inc(requestLogState.dropped());
  },
});

export const requestLogBatchRows = new Histogram({
  name: 'nemo_request_log_batch_size_ops',
  help: 'Rows (one insert each) per request-log statement.',
  buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
  registers: [registry],
});

export const requestLogFlushSeconds = new Histogram({
  name: 'nemo_request_log_flush_duration_seconds',
  help: 'Time of one request-log insert statement.',
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  registers: [registry],
});

new Gauge({
  name: 'nemo_exports_active',
  help: 'Streaming log and ledger exports running.',
  registers: [registry],
  collect() {
    this.set(exportState.active());
  },
});
