// The ledger as the gateway uses it: hold an upper bound of a request's cost before calling
// upstream, settle the actual cost after (or release), and sweep expired holds of crashed
// instances. Operations go through the batched writer on a small dedicated pool.
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
import { countOrgCharge, creditsMicrosTotal, expiredHoldsTotal, ledgerBatchSize, ledgerFlushSeconds, reportPool } from '../metrics/registry.js';
import { LedgerBatchWriter, type LedgerAnswer, type LedgerOp, type Refusal } from './batch-writer.js';

export type { Refusal } from './batch-writer.js';

export interface Hold {
  readonly orgId: string;
  readonly reservationId: string;
  readonly requestId: string;
  readonly keyId: string;
  readonly amountMicros: number;
}

/**
 * The sweeper's one statement. After a server restart nobody could renew while it was down: nothing
 * expires until a whole lifetime has passed since. (CASE does not evaluate the volatile call it skips.)
 */
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

  constructor(
    db: Database,
    private readonly options: Config['ledger'],
  ) {
    // Through the pooler when there is one: every ledger statement is one transaction.
    this.pool = new pg.Pool({ ...db.poolConnection, max: options.poolMax, application_name: 'nemorouter-ledger' });
    this.pool.on('error', (err) => log.warn('ledger: idle connection error', { error: err.message }));
    reportPool('ledger', this.pool);
    this.writer = new LedgerBatchWriter(this.pool, { maxBatch: options.maxBatch, reservationTtlMs: options.reservationTtlMs, retryDelayMs: 100, settleLingerMs: options.settleLingerMs }, (size, ms) => {
      ledgerBatchSize.observe(size);
      ledgerFlushSeconds.observe(ms / 1000);
    }, (err) => this.noteFailure(err));
  }

  /**
   * Holds up to `amountMicros` (at least `minAmountMicros`) if the org's balance, and the spend caps and shared
   * rate limits of the key and its team, all have room; otherwise says which one refused.
   * `tokens` is the request's token bound, counted against tpm limits; `model` is kept for usage reports.
   */
  async reserve(orgId: string, keyId: string, requestId: string, amountMicros: number, minAmountMicros: number, tokens: number, model: string | null = null): Promise<Hold | Refusal> {
    const reservationId = randomUUID();
    const answer = await this.writer.submit({ kind: 'reserve', orgId, reservationId, requestId, keyId, amountMicros, minAmountMicros, tokens, model });
    if (answer.refusal !== null) return answer.refusal;
    if (answer.amountMicros === 0) return 'funds';
    const hold: Hold = { orgId, reservationId, requestId, keyId, amountMicros: answer.amountMicros };
    this.live.set(reservationId, hold);
    creditsMicrosTotal.inc({ operation: 'reserved' }, hold.amountMicros);
    return hold;
  }

  /** Counts a request that holds nothing (a free model) against the shared rate limits. */
  async admit(orgId: string, keyId: string, requestId: string, tokens: number): Promise<Refusal | null> {
    const answer = await this.writer.submit({ kind: 'admit', orgId, reservationId: randomUUID(), requestId, keyId, amountMicros: 0, minAmountMicros: 0, tokens });
    return answer.refusal;
  }

  /** Charges the actual cost (capped at the hold by the database) and returns the rest. Retried until it commits. */
  async settle(hold: Hold, chargeMicros: number): Promise<number> {
    this.live.delete(hold.reservationId);
    const chargedMicros = Math.min(hold.amountMicros, Math.max(0, Math.ceil(chargeMicros)));
    const answer = await this.closeHold(hold, { ...this.base(hold), kind: 'settle', amountMicros: chargedMicros, minAmountMicros: 0, tokens: 0 });
    // Counted once the database closed the hold (0: it was already closed, nothing moved).
    if (answer.amountMicros > 0) {
      creditsMicrosTotal.inc({ operation: 'settled' }, chargedMicros);
      creditsMicrosTotal.inc({ operation: 'released' }, hold.amountMicros - chargedMicros);
      countOrgCharge(hold.orgId, chargedMicros);
    }
    return answer.amountMicros;
  }

  /**
   * Settles once the charge is known (an exact token count in the worker pool): the hold leaves the
   * renewed set at once, and close() waits for the charge, so a shutdown never strands it.
   */
  settleWhenCounted(hold: Hold, chargeMicros: Promise<number>): void {
    this.live.delete(hold.reservationId);
    this.closing.set(hold.reservationId, hold);
    const settled = chargeMicros.then((micros) => this.settle(hold, micros)).finally(() => this.closing.delete(hold.reservationId)).then(
      () => undefined,
      (err: unknown) => log.error('ledger: settlement failed', { error: (err as Error).message, reservationId: hold.reservationId }),
    );
    this.counting.add(settled);
    void settled.finally(() => this.counting.delete(settled));
  }

  /** Returns the whole hold: the request produced nothing. */
  async release(hold: Hold): Promise<number> {
    this.live.delete(hold.reservationId);
    const returnedMicros = (await this.closeHold(hold, { ...this.base(hold), kind: 'release', amountMicros: 0, minAmountMicros: 0, tokens: 0 })).amountMicros;
    creditsMicrosTotal.inc({ operation: 'released' }, returnedMicros);
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
    }, Math.max(100, Math.floor(this.options.reservationTtlMs / 3)));
    this.renewTimer.unref();
  }

  /** Renews the holds of requests running here and of those whose settle or release is queued. */
  async renewLive(): Promise<number> {
    if (this.live.size === 0 && this.closing.size === 0) return 0;
    const orgs: string[] = [];
    const reservations: string[] = [];
    for (const holds of [this.live, this.closing]) {
      for (const hold of holds.values()) {
        orgs.push(hold.orgId);
        reservations.push(hold.reservationId);
      }
    }
    const { rows } = await this.pool.query<{ renewed: number }>('SELECT nemo.ledger_renew($1::uuid[], $2::uuid[], $3) AS renewed', [orgs, reservations, this.options.reservationTtlMs]);
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
    await this.writer.drain(Math.max(0, until - Date.now()));
    await this.pool.end();
  }
}
