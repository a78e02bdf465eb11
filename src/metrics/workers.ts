// The worker pool: jobs by task and where they ran, batched task round trips, and the pool's
// queue, threads and utilization read at scrape time.
import { Counter, Gauge, Histogram } from 'prom-client';
import { registry, HotCounter } from './core.js';

export const workerJobsTotal = new HotCounter(
  'nemo_worker_jobs_total',
  'Token-count and guardrail-scan jobs, by task and where they ran (inline on the main thread, or pool).',
  ['task', 'where'],
);

export const workerTaskSeconds = new Histogram({
  name: 'nemo_worker_task_seconds',
  help: 'Round trip of one batched worker-pool task, queueing included.',
  labelNames: ['task'] as const,
  buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  registers: [registry],
});

/** The worker pool's state, read at scrape time. */
export const workerPoolState = { queued: () => 0, threads: () => 0, utilization: () => 0 };

new Gauge({
  name: 'nemo_worker_pool',
  help: 'The worker pool: queued tasks, running threads, and utilization (0..1, share of time the threads were busy).',
  labelNames: ['measure'] as const,
  registers: [registry],
  collect() {
    this.set({ measure: 'queued' }, workerPoolState.queued());
    this.set({ measure: 'threads' }, workerPoolState.threads());
    this.set({ measure: 'utilization' }, workerPoolState.utilization());
  },
});

/** The pool's result caches (token counts, guardrail verdicts), read at scrape time. */
export interface CacheReading {
  readonly hits: number;
  readonly misses: number;
  readonly bytes: number;
  readonly size: number;
}
export const workerCacheState: { caches: Readonly<Record<string, CacheReading>> } = { caches: {} };

// The caches count their own lookups (no label lookup per text on the hot path): the counter
// takes the difference at each scrape.
const exported = new Map<string, number>();
new Counter({
  name: 'nemo_worker_cache_lookups_total',
  help: 'Lookups in the caches of derived results by cache (token_counts, scan_verdicts: the worker pool\'s; body_elements: large chat bodies\' parsed messages and tools) and result (hit: not parsed, counted or scanned again; miss).',
  labelNames: ['cache', 'result'] as const,
  registers: [registry],
  collect() {
    for (const [cache, reading] of Object.entries(workerCacheState.caches)) {
      for (const result of ['hit', 'miss'] as const) {
        const total = result === 'hit' ? reading.hits : reading.misses;
        const id = `${cache}/${result}`;
        const delta = total - (exported.get(id) ?? 0);
        if (delta > 0 || !exported.has(id)) this.inc({ cache, result }, Math.max(0, delta));
        exported.set(id, total);
      }
    }
  },
});

new Gauge({
  name: 'nemo_worker_cache',
  help: 'The caches of derived results by cache: entries, and bytes held (an estimate, bounded by workers.resultCacheMaxBytes, and server.bodyElementCacheMaxBytes for body_elements).',
  labelNames: ['cache', 'measure'] as const,
  registers: [registry],
  collect() {
    for (const [cache, reading] of Object.entries(workerCacheState.caches)) {
      this.set({ cache, measure: 'entries' }, reading.size);
      this.set({ cache, measure: 'bytes' }, reading.bytes);
    }
  },
});
