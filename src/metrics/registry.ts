// Every metric the gateway exports, by name, in one place. Labels come from bounded sets only:
// configured model names, provider kinds, route names, status classes; never key or org ids.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'nemo_' });

export const httpServerInfo = new Gauge({
  name: 'nemo_http_server_info',
  help: 'The HTTP server in use: implementation="uws" (a native uWebSockets.js build, named by build) or "node" (Node\'s http module, slower).',
  labelNames: ['implementation', 'build'] as const,
  registers: [registry],
});

export const uwsNativeGauge = new Gauge({
  name: 'nemo_uws_native',
  help: '1 when a native uWebSockets.js build serves HTTP, 0 when Node\'s http module does (slower).',
  registers: [registry],
});

export const requestsTotal = new Counter({
  name: 'nemo_requests_total',
  help: 'HTTP requests answered, by route, model and status class.',
  labelNames: ['route', 'model', 'status_class'] as const,
  registers: [registry],
});

export const requestDurationSeconds = new Histogram({
  name: 'nemo_request_duration_seconds',
  help: 'Time from request arrival to the last byte of the response, by route.',
  labelNames: ['route'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
  registers: [registry],
});

export const gatewayOverheadSeconds = new Histogram({
  name: 'nemo_gateway_overhead_seconds',
  help: 'Time the gateway spent outside the upstream call before the response headers were sent.',
  buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
  registers: [registry],
});

export const upstreamAttemptsTotal = new Counter({
  name: 'nemo_upstream_attempts_total',
  help: 'Upstream attempts by provider kind and outcome (ok, rate_limited, error, timeout, unavailable, bad_response, client_error).',
  labelNames: ['provider', 'outcome'] as const,
  registers: [registry],
});

export const upstreamFallbacksTotal = new Counter({
  name: 'nemo_upstream_fallbacks_total',
  help: 'Requests moved to another deployment after a failed attempt, by the failed provider kind and the cause (its attempt outcome).',
  labelNames: ['provider', 'cause'] as const,
  registers: [registry],
});

export const upstreamDurationSeconds = new Histogram({
  name: 'nemo_upstream_duration_seconds',
  help: 'Upstream attempts from request to the end of the answer or stream, by provider kind and result (ok, error).',
  labelNames: ['provider', 'result'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
  registers: [registry],
});

export const ledgerBatchSize = new Histogram({
  name: 'nemo_ledger_batch_size_ops',
  help: 'Operations (reserve, settle, release) committed per ledger batch.',
  buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
  registers: [registry],
});

export const ledgerFlushSeconds = new Histogram({
  name: 'nemo_ledger_flush_duration_seconds',
  help: 'Time of one ledger batch: one transaction, one round trip, durable commit.',
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  registers: [registry],
});

export const settleMissedTotal = new Counter({
  name: 'nemo_ledger_settle_missed_total',
  help: 'Settles and releases that found no open reservation (already closed or expired); should stay 0.',
  labelNames: ['kind'] as const,
  registers: [registry],
});
// Known kinds at 0: the dashboard shows 0, and increase() in the settle-miss alert sees the first miss.
for (const kind of ['settle', 'release']) settleMissedTotal.inc({ kind }, 0);

export const rateLimitedTotal = new Counter({
  name: 'nemo_rate_limited_total',
  help: 'Requests refused with 429 by a key or team rate limit (RPM/TPM).',
  registers: [registry],
});

export const workerJobsTotal = new Counter({
  name: 'nemo_worker_jobs_total',
  help: 'Token-count and guardrail-scan jobs, by task and where they ran (inline on the main thread, or pool).',
  labelNames: ['task', 'where'] as const,
  registers: [registry],
});

export const workerTaskSeconds = new Histogram({
  name: 'nemo_worker_task_seconds',
  help: 'Round trip of one batched worker-pool task, queueing included.',
  labelNames: ['task'] as const,
  buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  registers: [registry],
});

export const guardrailHitsTotal = new Counter({
  name: 'nemo_guardrail_hits_total',
  help: 'Guardrail findings, by rule kind (pii:email, deny_word, deny_pattern, injection, max_input_tokens, ...), action and stage.',
  labelNames: ['rule', 'action', 'stage'] as const,
  registers: [registry],
});

export const guardrailEventsDroppedTotal = new Counter({
  name: 'nemo_guardrail_events_dropped_total',
  help: 'Guardrail hits not recorded in nemo.guardrail_events because the queue was full (the database was away).',
  registers: [registry],
});

export const ledgerRefusalsTotal = new Counter({
  name: 'nemo_ledger_refusals_total',
  help: 'Requests the ledger refused, by reason: funds, a spend cap (key_daily_cap, ...) or a shared rate limit (key_rpm, ...).',
  labelNames: ['reason'] as const,
  registers: [registry],
});
// Every reason at 0, so the refusals panel shows 0 rather than no data before the first refusal.
for (const reason of ['funds', 'key_rpm', 'key_tpm', 'team_rpm', 'team_tpm', 'key_daily_cap', 'key_monthly_cap', 'team_daily_cap', 'team_monthly_cap']) ledgerRefusalsTotal.inc({ reason }, 0);

export const insufficientQuotaTotal = new Counter({
  name: 'nemo_insufficient_quota_total',
  help: 'Requests refused with 402 because the org could not cover the hold.',
  registers: [registry],
});

/** Plain numbers on the hot path; the gauges read them at scrape time. */
export const liveCounts = { activeStreams: 0, inflightRequests: 0 };

new Gauge({
  name: 'nemo_active_streams',
  help: 'Streaming responses currently open to clients.',
  registers: [registry],
  collect() {
    this.set(liveCounts.activeStreams);
  },
});

new Gauge({
  name: 'nemo_inflight_requests',
  help: 'Chat requests in flight (streaming or not).',
  registers: [registry],
  collect() {
    this.set(liveCounts.inflightRequests);
  },
});

export const timeToFirstTokenSeconds = new Histogram({
  name: 'nemo_time_to_first_token_seconds',
  help: 'Streams: from the request arriving to the first bytes of the answer reaching the client.',
  labelNames: ['model'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

export const streamChunkGapSeconds = new Histogram({
  name: 'nemo_stream_chunk_gap_seconds',
  help: 'Streams: time between two consecutive writes of generated output to a client.',
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
  registers: [registry],
});

export const tokensTotal = new Counter({
  name: 'nemo_tokens_total',
  help: 'Tokens charged, by model and direction (input: prompt, output: completion).',
  labelNames: ['model', 'direction'] as const,
  registers: [registry],
});

export const creditsMicrosTotal = new Counter({
  name: 'nemo_credits_micros_total',
  help: 'Credits moved by the gateway, in micro-units: reserved (held), settled (charged), released (returned unused).',
  labelNames: ['operation'] as const,
  registers: [registry],
});

export const expiredHoldsTotal = new Counter({
  name: 'nemo_ledger_expired_holds_total',
  help: 'Holds of crashed instances released by this instance\'s sweeper after their TTL.',
  registers: [registry],
});

export const leaseGrantedMicrosTotal = new Counter({
  name: 'nemo_ledger_lease_granted_micros_total',
  help: 'Micro-credits granted to this instance as credit leases (durable holds requests carve their bounds from).',
  registers: [registry],
});

export const leaseReturnedMicrosTotal = new Counter({
  name: 'nemo_ledger_lease_returned_micros_total',
  help: 'Micro-credits of credit leases given back unused (retired, recalled or closed leases).',
  registers: [registry],
});

export const leaseRecallsTotal = new Counter({
  name: 'nemo_ledger_lease_recalls_total',
  help: 'Recalls received: another instance was refused for funds that sat unused in this instance\'s leases.',
  registers: [registry],
});

export const leaseFallbacksTotal = new Counter({
  name: 'nemo_ledger_lease_fallbacks_total',
  help: 'Requests in lease mode that took a per-request hold instead, by reason: limited_key (a spend cap or shared rate limit), no_lease (balance too small for a lease, or recalled), lease_short (the lease could not cover the bound), database (a grant failed).',
  labelNames: ['reason'] as const,
  registers: [registry],
});

export const leaseChargesLostMicrosTotal = new Counter({
  name: 'nemo_ledger_lease_charges_lost_micros_total',
  help: 'Charges that found their lease no longer open (it expired while the database was away): not collected, never taken from elsewhere.',
  registers: [registry],
});

/** Lease state read at scrape time (the ledger sets these). */
export const leaseState = { outstandingMicros: () => 0, unwrittenMicros: () => 0, open: () => 0 };

new Gauge({
  name: 'nemo_ledger_lease_outstanding_micros',
  help: 'Micro-credits held by this instance\'s open credit leases and not charged: what the sweeper returns after a crash.',
  registers: [registry],
  collect() {
    this.set(leaseState.outstandingMicros());
  },
});

new Gauge({
  name: 'nemo_ledger_lease_unwritten_charges_micros',
  help: 'Charges against leases queued but not yet committed: what a crash of this instance would leave uncollected.',
  registers: [registry],
  collect() {
    this.set(leaseState.unwrittenMicros());
  },
});

new Gauge({
  name: 'nemo_ledger_leases_open',
  help: 'Credit leases this instance holds open (serving, or retired and waiting for their running requests).',
  registers: [registry],
  collect() {
    this.set(leaseState.open());
  },
});

export const keyCacheLookupsTotal = new Counter({
  name: 'nemo_key_cache_lookups_total',
  help: 'API key lookups: hit (cached answer) or miss (read from Postgres).',
  labelNames: ['result'] as const,
  registers: [registry],
});

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

// Label children resolved once per label combination: prom-client hashes label objects per call.
const requestCounters = new Map<string, { inc(): void }>();
const durationHistograms = new Map<string, { observe(value: number): void }>();

const attemptCounters = new Map<string, { inc(): void }>();

/** The metric's child for these label values, resolved once and kept in `cache`. */
function labelChild<T>(cache: Map<string, T>, metric: { labels(...values: string[]): T }, labels: string[]): T {
  const key = labels.join('\u0000');
  let child = cache.get(key);
  if (child === undefined) {
    child = metric.labels(...labels);
    cache.set(key, child);
  }
  return child;
}

export function countRequest(route: string, model: string, statusClassLabel: string): void {
  labelChild(requestCounters, requestsTotal, [route, model, statusClassLabel]).inc();
}

const upstreamDurations = new Map<string, { observe(value: number): void }>();

/** One finished upstream attempt: counted by outcome, timed by result. */
export function countAttempt(provider: string, outcome: string, seconds: number): void {
  labelChild(attemptCounters, upstreamAttemptsTotal, [provider, outcome]).inc();
  labelChild(upstreamDurations, upstreamDurationSeconds, [provider, outcome === 'ok' ? 'ok' : 'error']).observe(seconds);
}

export function observeDuration(route: string, seconds: number): void {
  labelChild(durationHistograms, requestDurationSeconds, [route]).observe(seconds);
}

export function statusClass(status: number): string {
  return status < 200 ? '1xx' : status < 300 ? '2xx' : status < 400 ? '3xx' : status < 500 ? '4xx' : '5xx';
}

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
  help: 'Request log rows dropped: the queue was full (the database away) or shutdown could not write them.',
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

/**
 * Opt-in per-org series (metrics.orgTopN > 0): requests and credits charged per org since start,
 * exported at scrape time for the N orgs with the most requests only, so the label stays bounded.
 * At most MAX_TRACKED_ORGS orgs are tracked; later ones are not counted (and say so once).
 */
const MAX_TRACKED_ORGS = 50_000;
const orgTraffic = new Map<string, { requests: number; chargedMicros: number }>();
let orgTopN = 0;
let orgOverflowLogged = false;

export function enableOrgTopN(n: number): void {
  orgTopN = n;
}

function orgEntry(orgId: string): { requests: number; chargedMicros: number } | undefined {
  let entry = orgTraffic.get(orgId);
  if (entry === undefined) {
    if (orgTraffic.size >= MAX_TRACKED_ORGS) {
      if (!orgOverflowLogged) process.emitWarning(`metrics: more than ${MAX_TRACKED_ORGS} orgs; later ones are not in the org top-N`);
      orgOverflowLogged = true;
      return undefined;
    }
    entry = { requests: 0, chargedMicros: 0 };
    orgTraffic.set(orgId, entry);
  }
  return entry;
}

/** A chat request of the org answered (any status). */
export function countOrgRequest(orgId: string): void {
  if (orgTopN === 0) return;
  const entry = orgEntry(orgId);
  if (entry !== undefined) entry.requests++;
}

/** Credits the ledger confirmed it charged the org (a committed settle). */
export function countOrgCharge(orgId: string, micros: number): void {
  if (orgTopN === 0) return;
  const entry = orgEntry(orgId);
  if (entry !== undefined) entry.chargedMicros += micros;
}

/** The top N by requests, computed once per scrape (both series' collect() read it). */
let topOrgsCache: Array<[string, { requests: number; chargedMicros: number }]> | undefined;

/** GET /metrics calls this before each scrape: what is computed once per scrape is computed anew. */
export function beginScrape(): void {
  topOrgsCache = undefined;
}

function topOrgs(): Array<[string, { requests: number; chargedMicros: number }]> {
  if (orgTopN === 0) return [];
  topOrgsCache ??= [...orgTraffic].sort((a, b) => b[1].requests - a[1].requests).slice(0, orgTopN);
  return topOrgsCache;
}

new Counter({
  name: 'nemo_org_requests_total',
  help: 'Opt-in (metrics.orgTopN): chat requests since start of the N orgs with the most, by org id.',
  labelNames: ['org'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const [org, traffic] of topOrgs()) this.inc({ org }, traffic.requests);
  },
});

new Counter({
  name: 'nemo_org_charged_micros_total',
  help: 'Opt-in (metrics.orgTopN): credits charged since start to the N orgs with the most requests, by org id.',
  labelNames: ['org'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const [org, traffic] of topOrgs()) this.inc({ org }, traffic.chargedMicros);
  },
});
