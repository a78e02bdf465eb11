// The batched ledger writer (group commit): reserve/settle/release operations queue in process;
// when no batch is in flight one starts at once, otherwise they accumulate (up to maxBatch) for
// the next. A batch is one call of nemo.ledger_apply_v4: one transaction, one round trip, durable
// commit; every caller gets its own answer. The same call decides the key's and team's shared rate
// limits and spend caps, so they hold across instances. (A second batch in flight was measured: it only made
// batches smaller, since batches of one org serialize on its account lock anyway.) Accounts are
// locked in org order, so batches of several instances never deadlock. Settles and releases that
// fail (the database is down) are retried until they commit: they are idempotent by reservation id.
// A settle, release or lease charge with nothing in flight waits up to settleLingerMs for company:
// nobody waits on it (its client has its answer), and the next request's reserve then commits with
// it in one transaction instead of queueing behind it, which is what a client sending one request
// at a time feels. A reserve, admit, lease or lease return always starts a batch at once.
// Credit leases (ledger_apply_v3): 'lease' grants one, 'charge' writes a request's charge against
// one, 'lease_return' gives back what one no longer needs. ledger_apply_v4 is v3 with the usage each
// settle and charge was priced from, written on its ledger row.
import type pg from 'pg';
import { asDatabaseError } from '../db/database.js';
import { arrayLiteral } from '../db/pg-array.js';
import { GatewayError } from '../errors/gateway-error.js';
import { log } from '../log.js';
import { settleMissedTotal } from '../metrics/registry.js';
import type { PricedUsage } from './pricing.js';

/** admit: a request that holds nothing (a free model), counted against rate limits only. */
export type LedgerOpKind = 'reserve' | 'admit' | 'settle' | 'release' | 'lease' | 'charge' | 'lease_return';

/** Why the database refused a reserve or admit ('funds_leased': funds, while leases hold some unused). */
export type Refusal =
  | 'funds'
  | 'funds_leased'
  | 'key_rpm'
  | 'key_tpm'
  | 'team_rpm'
  | 'team_tpm'
  | 'key_daily_cap'
  | 'key_monthly_cap'
  | 'team_daily_cap'
  | 'team_monthly_cap';

export interface LedgerAnswer {
  /** reserve: the amount held; settle: charged; release: returned; 0 when refused or nothing to close. */
  readonly amountMicros: number;
  /** Set when a reserve or admit was refused. */
  readonly refusal: Refusal | null;
}

export interface LedgerOp {
  readonly kind: LedgerOpKind;
  readonly orgId: string;
  /** charge: the charge's own id (a retried batch charges once); lease_return: the lease. */
  readonly reservationId: string;
  /** charge: the lease it is written against. */
  readonly leaseId?: string | null;
  /** lease: the holder (this instance). */
  readonly requestId: string | null;
  readonly keyId: string | null;
  /** reserve, lease: the most to hold; settle, charge: the actual charge (capped); lease_return: what the lease keeps; release: ignored. */
  readonly amountMicros: number;
  /** reserve: the least that is still useful; refused below it. */
  readonly minAmountMicros: number;
  /** reserve, admit: the request's token bound, counted against tpm limits. */
  readonly tokens: number;
  /** reserve: the public model asked for, kept for usage reports. */
  readonly model?: string | null;
  /** settle, charge: the usage the charge was priced from, recorded on its ledger row (null: unknown). */
  readonly usage?: PricedUsage | null;
}

export interface BatchWriterOptions {
  readonly maxBatch: number;
  readonly reservationTtlMs: number;
  /** How long a lease lives unrenewed (default 60 s). */
  readonly leaseTtlMs?: number;
  /** First retry delay for settles/releases that could not commit; doubles up to 5 s. */
  readonly retryDelayMs: number;
  /** How long a settle or release may wait for a reserve to share its batch (0: never waits). */
  readonly settleLingerMs?: number;
  /** As settleLingerMs, for charges against leases (no reserve follows them: only company to wait for). */
  readonly chargeLingerMs?: number;
}

interface Queued {
  readonly op: LedgerOp;
  readonly resolve: (answer: LedgerAnswer) => void;
  readonly reject: (err: unknown) => void;
}

const APPLY_SQL = `SELECT op, amount, refusal FROM nemo.ledger_apply_v4($1::text[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::uuid[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[],
  $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], $17::integer, $18::integer)`;
const NOTHING: LedgerAnswer = { amountMicros: 0, refusal: null };
const MAX_RETRY_DELAY_MS = 5_000;

export class LedgerBatchWriter {
  private queue: Queued[] = [];
  private flushing = false;
  private closed = false;
  /** drain() returned: the pool is about to end, nothing more is sent. */
  private ended = false;
  /** Settles/releases waiting for the database to come back, with their next delay. */
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelayMs: number;
  /** A settle or release waiting for company (see settleLingerMs). */
  private lingerTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly options: BatchWriterOptions,
    private readonly onBatch?: (size: number, durationMs: number) => void,
    /** A batch could not commit (the ledger notes when the database was away). */
    private readonly onFailure?: (err: unknown) => void,
  ) {
    this.retryDelayMs = options.retryDelayMs;
  }

  /** Resolves with the database's answer, or rejects when the batch could not commit. */
  submit(op: LedgerOp): Promise<LedgerAnswer> {
    if (this.ended || (this.closed && (op.kind === 'reserve' || op.kind === 'admit' || op.kind === 'lease'))) return Promise.reject(new GatewayError('NR_SHUTTING_DOWN'));
    // A number the bigint columns refuse (NaN, a fraction) would fail its whole batch, and the
    // settles in it would be retried forever: refused here, alone.
    if (!Number.isSafeInteger(op.amountMicros) || !Number.isSafeInteger(op.minAmountMicros) || !Number.isSafeInteger(op.tokens)) {
      log.error('ledger: an operation with an amount the database cannot take; refused', { kind: op.kind, amountMicros: op.amountMicros, minAmountMicros: op.minAmountMicros, tokens: op.tokens, requestId: op.requestId });
      return Promise.reject(new GatewayError('NR_INTERNAL'));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ op, resolve, reject });
      if (this.flushing) return;
      const lingerMs = op.kind === 'charge' ? (this.options.chargeLingerMs ?? 0) : (this.options.settleLingerMs ?? 0);
      if ((op.kind === 'settle' || op.kind === 'release' || op.kind === 'charge') && lingerMs > 0 && !this.closed) {
        this.lingerTimer ??= setTimeout(() => {
          this.lingerTimer = undefined;
          void this.flush();
        }, lingerMs);
        return;
      }
      // A new operation flushes at once even while settles wait for a retry: the database may be
      // back, and a reserve needs its answer now, not after the backoff.
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing || this.queue.length === 0) return;
    this.flushing = true;
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    const batch = this.queue.length <= this.options.maxBatch ? this.queue : this.queue.slice(0, this.options.maxBatch);
    this.queue = batch === this.queue ? [] : this.queue.slice(batch.length);
    const startedAt = performance.now();
    try {
      const { rows } = await this.pool.query<{ op: number; amount: string; refusal: Refusal | null }>(APPLY_SQL, toArrays(batch, this.options));
      this.retryDelayMs = this.options.retryDelayMs;
      if (this.retryTimer !== undefined) {
        // The database answered again: what waited for the retry goes with the next flush.
        clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
      }
      this.onBatch?.(batch.length, performance.now() - startedAt);
      const answers = new Array<LedgerAnswer>(batch.length).fill(NOTHING);
      for (const row of rows) answers[row.op - 1] = { amountMicros: Number(row.amount), refusal: row.refusal };
      for (let i = 0; i < batch.length; i++) {
        const item = batch[i]!;
        const answer = answers[i]!;
        // A settle or release that closed nothing: its hold was already closed (expired, or twice).
        if ((item.op.kind === 'settle' || item.op.kind === 'release') && answer.amountMicros === 0) {
          settleMissedTotal.inc({ kind: item.op.kind });
          log.warn('ledger: no open reservation to close', { kind: item.op.kind, reservationId: item.op.reservationId, requestId: item.op.requestId });
        }
        item.resolve(answer);
      }
    } catch (err) {
      this.failBatch(batch, err);
    } finally {
      this.flushing = false;
    }
    if (this.queue.length > 0 && this.retryTimer === undefined) void this.flush();
  }

  /** Reserves, admits and lease grants fail fast (the request gets a 503); what closes money goes back to wait for a retry. */
  private failBatch(batch: Queued[], err: unknown): void {
    this.onFailure?.(err);
    const typed = asDatabaseError(err);
    const reserveError = typed instanceof GatewayError ? typed : new GatewayError('NR_INTERNAL', undefined, { cause: err });
    const retry: Queued[] = [];
    for (const item of batch) {
      if (item.op.kind === 'reserve' || item.op.kind === 'admit' || item.op.kind === 'lease') item.reject(reserveError);
      else retry.push(item);
    }
    if (retry.length === 0) return;
    log.warn('ledger: batch failed; settlements will be retried', { error: (err as Error).message, retrying: retry.length, delayMs: this.retryDelayMs });
    this.queue = [...retry, ...this.queue];
    if (this.retryTimer !== undefined) return; // another failed batch already scheduled the retry
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.flush();
    }, this.retryDelayMs);
    // Never what keeps a process alive: after drain() gives up, the holds expire instead.
    this.retryTimer.unref();
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, MAX_RETRY_DELAY_MS);
  }

  /** Waits until every queued operation committed (or the deadline passed); refuses new reserves. */
  async drain(deadlineMs: number): Promise<void> {
    this.closed = true;
    const until = Date.now() + deadlineMs;
    while ((this.queue.length > 0 || this.flushing) && Date.now() < until) {
      if (this.retryTimer === undefined) void this.flush();
      await new Promise((r) => setTimeout(r, 10));
    }
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    this.ended = true;
    if (this.queue.length > 0) log.warn('ledger: operations still queued at shutdown; their reservations will expire and be released', { queued: this.queue.length });
    for (const item of this.queue) item.reject(new GatewayError('NR_SHUTTING_DOWN'));
    this.queue = [];
  }
}

/** The batch as the function's parameters: one array literal per column (arrayLiteral: pg's own conversion allocated far more). */
function toArrays(batch: Queued[], options: BatchWriterOptions): unknown[] {
  const n = batch.length;
  const kinds = new Array<string>(n);
  const orgs = new Array<string>(n);
  const reservations = new Array<string>(n);
  const leases = new Array<string | null>(n);
  const requests = new Array<string | null>(n);
  const keys = new Array<string | null>(n);
  const amountsMicros = new Array<number>(n);
  const minAmountsMicros = new Array<number>(n);
  const tokens = new Array<number>(n);
  const models = new Array<string | null>(n);
  const promptTokens = new Array<number | null>(n);
  const completionTokens = new Array<number | null>(n);
  const cachedTokens = new Array<number | null>(n);
  const cacheWriteTokens = new Array<number | null>(n);
  const reasoningTokens = new Array<number | null>(n);
  const images = new Array<number | null>(n);
  for (let i = 0; i < n; i++) {
    const op = batch[i]!.op;
    kinds[i] = op.kind;
    orgs[i] = op.orgId;
    reservations[i] = op.reservationId;
    leases[i] = op.leaseId ?? null;
    requests[i] = op.requestId;
    keys[i] = op.keyId;
    amountsMicros[i] = op.amountMicros;
    minAmountsMicros[i] = op.minAmountMicros;
    tokens[i] = op.tokens;
    models[i] = op.model ?? null;
    const usage = op.usage;
    promptTokens[i] = count(usage?.promptTokens);
    completionTokens[i] = count(usage?.completionTokens);
    cachedTokens[i] = count(usage?.cachedTokens);
    cacheWriteTokens[i] = count(usage?.cacheWriteTokens);
    reasoningTokens[i] = count(usage?.reasoningTokens);
    images[i] = count(usage?.images);
  }
  return [
    arrayLiteral(kinds), arrayLiteral(orgs), arrayLiteral(reservations), arrayLiteral(leases), arrayLiteral(requests), arrayLiteral(keys),
    arrayLiteral(amountsMicros), arrayLiteral(minAmountsMicros), arrayLiteral(tokens), arrayLiteral(models),
    arrayLiteral(promptTokens), arrayLiteral(completionTokens), arrayLiteral(cachedTokens), arrayLiteral(cacheWriteTokens), arrayLiteral(reasoningTokens), arrayLiteral(images),
    options.reservationTtlMs, options.leaseTtlMs ?? 60_000,
  ];
}

/**
 * A usage count as its bigint column takes it, else null: one value the column refuses would fail
 * the whole batch, and every settle in it would be retried forever.
 */
function count(n: number | undefined): number | null {
  return n !== undefined && Number.isSafeInteger(n) && n >= 0 ? n : null;
}
