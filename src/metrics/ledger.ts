// Money: ledger batches and settle misses, refusals (funds, caps, shared rate limits), tokens and
// credits charged, the sweeper's expired holds, and credit leases with their scrape-time state.
import { Counter, Gauge, Histogram } from 'prom-client';
import { registry, HotCounter } from './core.js';

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

export const tokensTotal = new HotCounter(
  'nemo_tokens_total',
  'Tokens charged, by model and direction (input: prompt, output: completion).',
  ['model', 'direction'],
);

export const creditsMicrosTotal = new HotCounter(
  'nemo_credits_micros_total',
  'Credits moved by the gateway, in micro-units: reserved (held), settled (charged), released (returned unused).',
  ['operation'],
);

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
