// The ledger as the gateway uses it: hold an upper bound of a request's cost before calling
// upstream, settle the actual cost after (or release), and sweep expired holds of crashed
// instances. Operations go through the batched writer on a small dedicated pool.
//
// In lease mode (the default) a request whose key has no spend cap or shared rate limit carves its
// bound from its org's credit lease (leases.ts) in process, and its settle writes its charge
// against the lease as its own ledger row; every other request, and every request of an org whose
// balance is too small to lease, takes its own durable hold as in hold mode.
//
// An expired hold is only a crashed instance's if its owner could have renewed it: after Postgres
// restarted, or this instance lost its way to it, a sweep here waits a whole reservation lifetime,
// and it never expires what this instance still runs or is settling (those are renewed first). An
// instance cut off alone for longer than a lifetime, while others sweep, still loses the charges it
// settles late: the holds are released, which creates no credit.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Config } from '../config/load.js';
import { asDatabaseError, type Database } from '../db/database.js';
import { GatewayError } from '../errors/gateway-error.js';
import { log } from '../log.js';
import { countOrgCharge, creditsMicrosTotal, expiredHoldsTotal, leaseChargesLostMicrosTotal, leaseFallbacksTotal, leaseState, ledgerBatchSize, ledgerFlushSeconds, reportPool } from '../metrics/registry.js';
import { LedgerBatchWriter, type LedgerAnswer, type LedgerOp, type Refusal } from './batch-writer.js';
import { LeaseRecallListener } from './lease-recalls.js';
import { CreditLeases, type Lease } from './leases.js';
import type { PricedUsage } from './pricing.js';

export type { Refusal } from './batch-writer.js';

export interface Hold {
  readonly orgId: string;
  /** A hold's reservation; for a hold carved from a lease, the id of its charge. */
  readonly reservationId: string;
  readonly requestId: string;
  readonly keyId: string;
  readonly amountMicros: number;
  /** The credit lease it was carved from; undefined for a durable hold of its own. */
  readonly lease?: Lease | undefined;
  /** The public model, written on a lease charge's ledger row. */
  readonly model?: string | null;
}

/** Which hold a request may take: `lease` only for keys without spend caps or shared rate limits. */
export type HoldPath = 'lease' | 'hold';

/**
 * The sweeper's one statement. After a server restart nobody could renew while it was down: nothing
 * expires until a whole lifetime has passed since. (CASE does not evaluate the volatile call it skips.)
 */
const RENEW_SQL = 'SELECT nemo.ledger_renew($1::uuid[], $2::uuid[], $3) AS renewed';

const EXPIRE_SQL = `SELECT CASE WHEN pg_postmaster_start_time() > now() - make_interval(secs => $2 / 1000.0) THEN 0
  ELSE nemo.ledger_expire_v2($1) END AS released`;

export class Ledger {
  private readonly pool: pg.Pool;
  private readonly writer: LedgerBatchWriter;
  private sweepTimer: NodeJS.Timeout | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  /** Holds of requests still running here: renewed so a long stream's hold never expires under it. */
  private readonly live = new Map<string, Hold>();
  /** Holds whose settle or release is queued (retried while the database is away): renewed too. */
  private readonly closing = new Map<string, Hold>();
  /**
   * Since when this instance has reached the database without a failed ledger query; its start
   * counts as a failure, since it knows nothing of what happened before. Sweeps wait a TTL after it.
   */
  private reachableSince = Date.now();
  /** Settlements waiting for their charge to be counted. */
  private readonly counting = new Set<Promise<void>>();
  /** Lease mode only. */
  private readonly leases: CreditLeases | undefined;
  private readonly recalls: LeaseRecallListener | undefined;
  /** Lease charges queued and not yet committed. */
  private unwrittenMicros = 0;

  constructor(
    db: Database,
    private readonly options: Config['ledger'],
  ) {
    // Through the pooler when there is one: every ledger statement is one transaction.
    this.pool = new pg.Pool({ ...db.poolConnection, max: options.poolMax, application_name: 'nemorouter-ledger' });
    this.pool.on('error', (err) => log.warn('ledger: idle connection error', { error: err.message }));
    reportPool('ledger', this.pool);
    this.writer = new LedgerBatchWriter(this.pool, { maxBatch: options.maxBatch, reservationTtlMs: options.reservationTtlMs, leaseTtlMs: options.lease.ttlMs, retryDelayMs: 100, settleLingerMs: options.settleLingerMs, chargeLingerMs: options.lease.chargeLingerMs }, (size, ms) => {
      ledgerBatchSize.observe(size);
      ledgerFlushSeconds.observe(ms / 1000);
    }, (err) => this.noteFailure(err));
    if (options.mode === 'lease') {
      const leases = new CreditLeases((op) => this.writer.submit(op), options.lease);
      this.leases = leases;
      this.recalls = new LeaseRecallListener(db.appConnection, (orgId) => leases.recall(orgId));
      Object.assign(leaseState, { outstandingMicros: () => leases.outstandingMicros(), unwrittenMicros: () => this.unwrittenMicros, open: () => [...leases.open()].length });
    }
  }

  /**
   * Holds up to `amountMicros` (at least `minAmountMicros`) if the org's balance, and the spend caps and shared
   * rate limits of the key and its team, all have room; otherwise says which one refused.
   * `tokens` is the request's token bound, counted against tpm limits; `model` is kept for usage reports.
   */
  async reserve(orgId: string, keyId: string, requestId: string, amountMicros: number, minAmountMicros: number, tokens: number, model: string | null = null, path: HoldPath = 'hold'): Promise<Hold | Refusal> {
    const leases = this.leases;
    if (leases !== undefined) {
      if (path === 'lease') {
        const lease = leases.carve(orgId, amountMicros) ?? (await leases.take(orgId, amountMicros));
        if (lease !== undefined) return this.carved(lease, keyId, requestId, amountMicros, model);
      } else {
        leaseFallbacksTotal.inc({ reason: 'limited_key' });
      }
    }
    return this.reserveHold(orgId, keyId, requestId, amountMicros, minAmountMicros, tokens, model);
  }

  /** A hold carved from `lease` in process: no row of its own until its charge. */
  private carved(lease: Lease, keyId: string, requestId: string, amountMicros: number, model: string | null): Hold {
    creditsMicrosTotal.labels('reserved').inc(amountMicros);
    return { orgId: lease.orgId, reservationId: randomUUID(), requestId, keyId, amountMicros, lease, model };
  }

  /**
   * A durable hold of the request's own. Refused for funds that sit unused in leases: the holders
   * were told to give them back, so it asks again, for at most lease.recallWaitMs.
   */
  private async reserveHold(orgId: string, keyId: string, requestId: string, amountMicros: number, minAmountMicros: number, tokens: number, model: string | null): Promise<Hold | Refusal> {
    const reservationId = randomUUID();
    const giveUpAt = performance.now() + this.options.lease.recallWaitMs;
    let waitMs = 10;
    for (;;) {
      const answer = await this.writer.submit({ kind: 'reserve', orgId, reservationId, requestId, keyId, amountMicros, minAmountMicros, tokens, model });
      if (answer.refusal === 'funds_leased') {
        if (performance.now() + waitMs > giveUpAt) return 'funds';
        await new Promise((resolve) => setTimeout(resolve, waitMs));
        waitMs *= 2;
        continue;
      }
      if (answer.refusal !== null) return answer.refusal;
      if (answer.amountMicros === 0) return 'funds';
      const hold: Hold = { orgId, reservationId, requestId, keyId, amountMicros: answer.amountMicros };
      this.live.set(reservationId, hold);
      creditsMicrosTotal.labels('reserved').inc(hold.amountMicros);
      return hold;
    }
  }

  /** Counts a request that holds nothing (a free model) against the shared rate limits. */
  async admit(orgId: string, keyId: string, requestId: string, tokens: number): Promise<Refusal | null> {
    const answer = await this.writer.submit({ kind: 'admit', orgId, reservationId: randomUUID(), requestId, keyId, amountMicros: 0, minAmountMicros: 0, tokens });
    return answer.refusal;
  }

  /**
   * Charges the actual cost (capped at the hold by the database) and returns the rest. Retried until
   * it commits. `usage`, what the charge was priced from, is recorded on its ledger row.
   */
  async settle(hold: Hold, chargeMicros: number, usage: PricedUsage | null = null): Promise<number> {
    const chargedMicros = chargeWithinHold(hold, chargeMicros);
    if (hold.lease !== undefined) return this.chargeLease(hold, hold.lease, chargedMicros, usage);
    this.live.delete(hold.reservationId);
    const answer = await this.closeHold(hold, { ...this.base(hold), kind: 'settle', amountMicros: chargedMicros, minAmountMicros: 0, tokens: 0, usage });
    // Counted once the database closed the hold (0: it was already closed, nothing moved).
    if (answer.amountMicros > 0) {
      creditsMicrosTotal.labels('settled').inc(chargedMicros);
      creditsMicrosTotal.labels('released').inc(hold.amountMicros - chargedMicros);
      countOrgCharge(hold.orgId, chargedMicros);
    }
    return answer.amountMicros;
  }

  /**
   * A request served from a lease: its charge, written against the lease as its own ledger row
   * (queued ahead of any return of the lease, so the return sees it). Resolves once it committed.
   */
  private async chargeLease(hold: Hold, lease: Lease, chargedMicros: number, usage: PricedUsage | null): Promise<number> {
    const written = this.writer.submit({
      kind: 'charge', orgId: hold.orgId, reservationId: hold.reservationId, leaseId: lease.reservationId,
      requestId: hold.requestId, keyId: hold.keyId, amountMicros: chargedMicros, minAmountMicros: 0, tokens: 0, model: hold.model ?? null, usage,
    });
    this.leases!.settle(lease, hold.amountMicros, chargedMicros);
    this.unwrittenMicros += chargedMicros;
    let answer: LedgerAnswer;
    try {
      answer = await written;
    } finally {
      this.unwrittenMicros -= chargedMicros;
    }
    creditsMicrosTotal.labels('settled').inc(answer.amountMicros);
    creditsMicrosTotal.labels('released').inc(hold.amountMicros - chargedMicros);
    countOrgCharge(hold.orgId, answer.amountMicros);
    if (answer.amountMicros < chargedMicros) {
      leaseChargesLostMicrosTotal.inc(chargedMicros - answer.amountMicros);
      log.warn('ledger: a charge found its lease closed; not collected', { requestId: hold.requestId, leaseId: lease.reservationId, chargedMicros, writtenMicros: answer.amountMicros });
    }
    return answer.amountMicros;
  }

  /**
   * Settles once the charge is known (an exact token count in the worker pool): the hold leaves the
   * renewed set at once, and close() waits for the charge, so a shutdown never strands it. `usage`
   * resolves with what the charge was priced from, as for settle().
   */
  settleWhenCounted(hold: Hold, chargeMicros: Promise<number>, usage?: Promise<PricedUsage | null>): void {
    this.live.delete(hold.reservationId);
    // A lease's hold is renewed as the lease; a carved bound has no row of its own.
    if (hold.lease === undefined) this.closing.set(hold.reservationId, hold);
    const settled = Promise.all([chargeMicros, usage?.catch(() => null)]).then(([micros, priced]) => this.settle(hold, micros, priced ?? null)).finally(() => this.closing.delete(hold.reservationId)).then(
      () => undefined,
      (err: unknown) => log.error('ledger: settlement failed', { error: (err as Error).message, reservationId: hold.reservationId }),
    );
    this.counting.add(settled);
    void settled.finally(() => this.counting.delete(settled));
  }

  /** Returns the whole hold: the request produced nothing. */
  async release(hold: Hold): Promise<number> {
    if (hold.lease !== undefined) {
      // The bound was never durable on its own: it goes back to the lease, nothing to write.
      this.leases!.release(hold.lease, hold.amountMicros);
      creditsMicrosTotal.labels('released').inc(hold.amountMicros);
      return hold.amountMicros;
    }
    this.live.delete(hold.reservationId);
    const returnedMicros = (await this.closeHold(hold, { ...this.base(hold), kind: 'release', amountMicros: 0, minAmountMicros: 0, tokens: 0 })).amountMicros;
    creditsMicrosTotal.labels('released').inc(returnedMicros);
    return returnedMicros;
  }

  /** A settle or release: the hold stays renewed until the database has closed it. */
  private async closeHold(hold: Hold, op: LedgerOp): Promise<LedgerAnswer> {
    this.closing.set(hold.reservationId, hold);
    try {
      return await this.writer.submit(op);
    } finally {
      this.closing.delete(hold.reservationId);
    }
  }

  /** A ledger query failed for want of the database: holds of others may have missed renewals meanwhile. */
  private noteFailure(err: unknown): void {
    const typed = asDatabaseError(err);
    if (typed instanceof GatewayError && typed.code === 'NR_DATABASE_UNAVAILABLE') this.reachableSince = Date.now();
  }

  private base(hold: Hold) {
    return { orgId: hold.orgId, reservationId: hold.reservationId, requestId: hold.requestId, keyId: hold.keyId };
  }

  /**
   * Releases expired holds every sweepIntervalMs (many instances may sweep at once) once this
   * instance has reached the database for a reservation lifetime, and renews this instance's live
   * and settling holds three times per lifetime.
   */
  startSweeper(): void {
    const sweep = () => {
      this.sweepOnce().catch((err: unknown) => {
        this.noteFailure(err);
        log.warn('ledger: sweep failed', { error: (err as Error).message });
      });
    };
    sweep();
    this.sweepTimer = setInterval(sweep, this.options.sweepIntervalMs);
    this.sweepTimer.unref();
    this.renewTimer = setInterval(() => {
      this.renewLive().catch((err: unknown) => {
        this.noteFailure(err);
        log.warn('ledger: renewing holds failed', { error: (err as Error).message });
      });
    }, Math.max(100, Math.floor(Math.min(this.options.reservationTtlMs, this.leases === undefined ? Infinity : this.options.lease.ttlMs) / 3)));
    this.renewTimer.unref();
    this.leases?.start();
    void this.recalls?.start();
  }

  /** Renews the holds of requests running here, of those whose settle or release is queued, and this instance's leases. */
  async renewLive(): Promise<number> {
    const renewedLeases = await this.renewLeases();
    if (this.live.size === 0 && this.closing.size === 0) return renewedLeases;
    const orgs: string[] = [];
    const reservations: string[] = [];
    for (const holds of [this.live, this.closing]) {
      for (const hold of holds.values()) {
        orgs.push(hold.orgId);
        reservations.push(hold.reservationId);
      }
    }
    const { rows } = await this.pool.query<{ renewed: number }>(RENEW_SQL, [orgs, reservations, this.options.reservationTtlMs]);
    return renewedLeases + (rows[0]?.renewed ?? 0);
  }

  private async renewLeases(): Promise<number> {
    if (this.leases === undefined) return 0;
    const orgs: string[] = [];
    const reservations: string[] = [];
    for (const lease of this.leases.open()) {
      orgs.push(lease.orgId);
      reservations.push(lease.reservationId);
    }
    if (orgs.length === 0) return 0;
    const { rows } = await this.pool.query<{ renewed: number }>(RENEW_SQL, [orgs, reservations, this.options.lease.ttlMs]);
    return rows[0]?.renewed ?? 0;
  }

  /**
   * Expires the holds past their time, after renewing this instance's own; 0 until the database
   * (and this instance's way to it) has been up for a whole reservation lifetime.
   */
  async sweepOnce(): Promise<number> {
    await this.renewLive();
    const ttlMs = this.options.reservationTtlMs;
    if (Date.now() - this.reachableSince < ttlMs) return 0;
    let total = 0;
    for (;;) {
      const { rows } = await this.pool.query<{ released: number }>(EXPIRE_SQL, [500, ttlMs]);
      const released = rows[0]?.released ?? 0;
      total += released;
      if (released < 500) break;
    }
    if (total > 0) {
      expiredHoldsTotal.inc(total);
      log.info('ledger: released expired holds', { released: total });
    }
    return total;
  }

  /** Commits what is queued (settlements first of all), then closes the pool. */
  async close(deadlineMs = 5_000): Promise<void> {
    clearInterval(this.sweepTimer);
    clearInterval(this.renewTimer);
    const until = Date.now() + deadlineMs;
    // Charges still being counted reach the queue first (each count has its own timeout).
    if (this.counting.size > 0) {
      await Promise.race([Promise.allSettled([...this.counting]), new Promise((r) => setTimeout(r, deadlineMs).unref())]);
    }
    // Leases go back after their charges, in the same drain.
    this.leases?.retireAll();
    await this.recalls?.close();
    await this.writer.drain(Math.max(0, until - Date.now()));
    await this.pool.end();
  }
}

/**
 * What a settle charges: the charge rounded up to a whole micro-unit, within [0, the hold]. A charge
 * that is not a number (a pricing fault) takes the hold, the most the request may cost: a NaN would
 * otherwise reach a lease's books and the database's bigint column.
 */
export function chargeWithinHold(hold: Pick<Hold, 'amountMicros' | 'requestId'>, chargeMicros: number): number {
  if (Number.isNaN(chargeMicros)) {
    log.error('ledger: a charge that is not a number; the hold is charged', { requestId: hold.requestId, amountMicros: hold.amountMicros });
    return hold.amountMicros;
  }
  return Math.min(hold.amountMicros, Math.max(0, Math.ceil(chargeMicros)));
}
