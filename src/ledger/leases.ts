// Credit leases in process: per org this instance serves, one durable hold of many requests' worth
// (granted by the database like any hold), from which each request carves its bound with no round
// trip. The lease is a cache of that hold: what it knows of money is only what it granted, carved
// and charged, and losing it (a crash) costs the charges not yet written, never credit.
//
// A lease serves new requests for its lifetime, then is retired: it gives back at once what its
// running requests do not need, and closes (gives back the rest) when the last of them settled.
// A new lease is asked for ahead of need, when the free part falls below the low-water mark. A
// recall (another instance refused for funds that sit here) retires the org's leases at once, and
// the org takes per-request holds for a lifetime. So does an org whose balance is too small for a
// lease: the final units are always held per request.
import { randomUUID } from 'node:crypto';
import type { Config } from '../config/load.js';
import { log } from '../log.js';
import { leaseFallbacksTotal, leaseGrantedMicrosTotal, leaseRecallsTotal, leaseReturnedMicrosTotal } from '../metrics/registry.js';
import type { LedgerAnswer, LedgerOp } from './batch-writer.js';

export type LeaseSettings = Config['ledger']['lease'];

/** One lease. Amounts in micro-credits. */
export interface Lease {
  readonly orgId: string;
  readonly reservationId: string;
  readonly grantedAtMs: number;
  /** What the lease holds in the database: its grant less what it gave back. */
  amountMicros: number;
  /** The bounds of requests running on it. */
  carvedMicros: number;
  /** The charges written (or queued to be) against it. */
  spentMicros: number;
  /** Serves no new request; closes when carvedMicros reaches 0. */
  retired: boolean;
  closed: boolean;
}

interface OrgLeases {
  /** The lease new requests carve from. */
  active: Lease | undefined;
  /** Retired leases waiting for their running requests. */
  readonly retiring: Set<Lease>;
  /** A grant in flight: requests that find no room wait for it. */
  granting: Promise<void> | undefined;
  /** Until then the org takes per-request holds (a refused grant, a recall). */
  noLeaseUntilMs: number;
  /** Why the last grant gave no lease: each request that waited for it counts as a fallback. */
  noLeaseReason: 'no_lease' | 'database';
  /** Charged since the last rotation tick, and the spend rate it gives (micro-credits per second). */
  spentSinceTick: number;
  rateMicrosPerS: number;
  /** Bounds of requests waiting for a grant: the next lease covers them. */
  waitingMicros: number;
}

type Submit = (op: LedgerOp) => Promise<LedgerAnswer>;

export class CreditLeases {
  private readonly orgs = new Map<string, OrgLeases>();
  /** Closed here, their return (and the charges queued before it) not yet committed: still renewed. */
  private readonly closing = new Set<Lease>();
  private tickTimer: NodeJS.Timeout | undefined;
  private lastTickMs = performance.now();

  constructor(
    private readonly submit: Submit,
    private readonly settings: LeaseSettings,
    /** This instance, as the holder the database records. */
    readonly holder: string = `lease:${randomUUID()}`,
  ) {}

  /** Takes `amountMicros` from the org's lease; undefined when it cannot cover it whole. */
  carve(orgId: string, amountMicros: number): Lease | undefined {
    const org = this.orgs.get(orgId);
    const lease = org?.active;
    if (lease === undefined) return undefined;
    const free = lease.amountMicros - lease.carvedMicros - lease.spentMicros;
    if (free < amountMicros) return undefined;
    lease.carvedMicros += amountMicros;
    // Ahead of need: the next lease is asked for while this one still serves.
    if (free - amountMicros < lease.amountMicros * this.settings.lowWater && org!.granting === undefined && performance.now() >= org!.noLeaseUntilMs) {
      void this.grant(orgId, org!, amountMicros);
    }
    return lease;
  }

  /**
   * Carves `amountMicros` once the org has a lease that covers it: waits for the grant in flight, or
   * asks for one sized for everyone waiting, a few times over. undefined: take a per-request hold
   * (the balance is too small to lease, the org was recalled, or the database refused).
   */
  async take(orgId: string, amountMicros: number): Promise<Lease | undefined> {
    const org = this.orgOf(orgId);
    for (let attempt = 0; attempt < 3; attempt++) {
      if (performance.now() < org.noLeaseUntilMs) {
        leaseFallbacksTotal.inc({ reason: 'no_lease' });
        return undefined;
      }
      org.waitingMicros += amountMicros;
      try {
        await (org.granting ?? this.grant(orgId, org, amountMicros));
      } finally {
        org.waitingMicros -= amountMicros;
      }
      const lease = this.carve(orgId, amountMicros);
      if (lease !== undefined) return lease;
      if (org.active === undefined) {
        leaseFallbacksTotal.inc({ reason: org.noLeaseReason });
        return undefined;
      }
    }
    leaseFallbacksTotal.inc({ reason: 'lease_short' });
    return undefined;
  }

  /** A request on `lease` ended with `chargedMicros` (its charge is already queued by the caller). */
  settle(lease: Lease, boundMicros: number, chargedMicros: number): void {
    lease.carvedMicros -= boundMicros;
    lease.spentMicros += chargedMicros;
    const org = this.orgs.get(lease.orgId);
    if (org !== undefined) org.spentSinceTick += chargedMicros;
    if (lease.retired && lease.carvedMicros === 0) this.close(lease);
  }

  /** A request on `lease` produced nothing: its bound goes back to the lease. */
  release(lease: Lease, boundMicros: number): void {
    lease.carvedMicros -= boundMicros;
    if (lease.retired && lease.carvedMicros === 0) this.close(lease);
  }

  /** Another instance needs the org's money: give back every unused part now, and lease nothing for a lifetime. */
  recall(orgId: string): void {
    const org = this.orgs.get(orgId);
    if (org === undefined) return;
    leaseRecallsTotal.inc();
    org.noLeaseUntilMs = performance.now() + this.settings.lifetimeMs;
    if (org.active !== undefined) this.retire(org, org.active);
  }

  /** Open leases, and closed ones whose return has not committed yet (for renewal in the database). */
  *open(): Iterable<Lease> {
    for (const org of this.orgs.values()) {
      if (org.active !== undefined) yield org.active;
      yield* org.retiring;
    }
    yield* this.closing;
  }

  /** Micro-credits held by leases and not charged: what a crash would leave for the sweeper. */
  outstandingMicros(): number {
    let total = 0;
    for (const lease of this.open()) total += lease.amountMicros - lease.spentMicros;
    return total;
  }

  /** Retires leases past their lifetime and measures spend rates, four times per lifetime. */
  start(): void {
    this.tickTimer = setInterval(() => this.tick(), Math.max(25, Math.floor(this.settings.lifetimeMs / 4)));
    this.tickTimer.unref();
  }

  /** Retires every lease (at shutdown): unused parts go back before the writer drains. */
  retireAll(): void {
    clearInterval(this.tickTimer);
    for (const org of this.orgs.values()) {
      org.noLeaseUntilMs = Number.POSITIVE_INFINITY;
      if (org.active !== undefined) this.retire(org, org.active);
      // Their running requests are gone or will not settle here any more: close what is left.
      for (const lease of [...org.retiring]) if (!lease.closed) this.close(lease);
    }
  }

  tick(nowMs = performance.now()): void {
    const seconds = Math.max(0.001, (nowMs - this.lastTickMs) / 1000);
    this.lastTickMs = nowMs;
    for (const [orgId, org] of this.orgs) {
      org.rateMicrosPerS = org.rateMicrosPerS / 2 + org.spentSinceTick / seconds / 2;
      org.spentSinceTick = 0;
      const lease = org.active;
      if (lease !== undefined && nowMs - lease.grantedAtMs >= this.settings.lifetimeMs) this.retire(org, lease);
      // An org idle here is forgotten (its recall or refusal, once past, too).
      const idle = org.active === undefined && org.retiring.size === 0 && org.granting === undefined && org.rateMicrosPerS < 1;
      if (idle && nowMs >= org.noLeaseUntilMs) this.orgs.delete(orgId);
    }
  }

  private orgOf(orgId: string): OrgLeases {
    let org = this.orgs.get(orgId);
    if (org === undefined) {
      org = { active: undefined, retiring: new Set(), granting: undefined, noLeaseUntilMs: 0, noLeaseReason: 'no_lease', spentSinceTick: 0, rateMicrosPerS: 0, waitingMicros: 0 };
      this.orgs.set(orgId, org);
    }
    return org;
  }

  /**
   * Asks for a lease of a lifetime's spend at the recent rate, and at least minRequests bounds of
   * the request asking and twice the bounds running or waiting (a burst), at most maxMicros; the
   * database caps it at a share of the balance and refuses it below one bound.
   */
  private grant(orgId: string, org: OrgLeases, amountMicros: number): Promise<void> {
    const { maxMicros, minRequests, lifetimeMs } = this.settings;
    const sinceTickS = Math.max(0.001, (performance.now() - this.lastTickMs) / 1000);
    const rate = Math.max(org.rateMicrosPerS, org.spentSinceTick / sinceTickS);
    const burst = 2 * ((org.active?.carvedMicros ?? 0) + org.waitingMicros);
    const wantMicros = Math.max(amountMicros, Math.min(maxMicros, Math.max(amountMicros * minRequests, burst, Math.ceil((rate * lifetimeMs) / 1000))));
    const reservationId = randomUUID();
    const granting = this.submit({ kind: 'lease', orgId, reservationId, requestId: this.holder, keyId: null, amountMicros: wantMicros, minAmountMicros: amountMicros, tokens: 0 }).then(
      (answer) => {
        if (answer.amountMicros === 0) {
          // Too little balance to lease: the final units go per request.
          org.noLeaseUntilMs = performance.now() + lifetimeMs;
          org.noLeaseReason = 'no_lease';
          return;
        }
        leaseGrantedMicrosTotal.inc(answer.amountMicros);
        const lease: Lease = { orgId, reservationId, grantedAtMs: performance.now(), amountMicros: answer.amountMicros, carvedMicros: 0, spentMicros: 0, retired: false, closed: false };
        if (performance.now() < org.noLeaseUntilMs) {
          // Recalled while the grant was on its way: it goes straight back.
          org.retiring.add(lease);
          this.close(lease);
          return;
        }
        const previous = org.active;
        org.active = lease;
        if (previous !== undefined) this.retire(org, previous);
      },
      (err: unknown) => {
        org.noLeaseReason = 'database';
        log.warn('ledger: a credit lease could not be granted; requests take their own holds', { orgId, error: (err as Error).message });
      },
    ).finally(() => {
      if (org.granting === granting) org.granting = undefined;
    });
    org.granting = granting;
    return granting;
  }

  /** No new request on it: what its running requests do not need goes back now, the rest when they end. */
  private retire(org: OrgLeases, lease: Lease): void {
    if (lease.retired) return;
    lease.retired = true;
    if (org.active === lease) org.active = undefined;
    org.retiring.add(lease);
    if (lease.carvedMicros === 0) return this.close(lease);
    const keepMicros = lease.carvedMicros;
    lease.amountMicros = lease.spentMicros + keepMicros;
    // Sent even with nothing to give back: the database then knows all the lease holds is in use,
    // and a request refused for funds is not kept waiting for a recall that can return nothing.
    void this.giveBack(lease, keepMicros);
  }

  /** Gives back everything the lease did not charge. Queued after its charges, so it sees them. */
  private close(lease: Lease): void {
    if (lease.closed) return;
    lease.closed = true;
    lease.retired = true;
    const org = this.orgs.get(lease.orgId);
    org?.retiring.delete(lease);
    if (org?.active === lease) org.active = undefined;
    // Renewed until the return commits: charges queued before it (the database away) must find the
    // lease open when they are retried, however long the outage.
    this.closing.add(lease);
    this.giveBack(lease, 0).finally(() => this.closing.delete(lease));
  }

  private giveBack(lease: Lease, keepMicros: number): Promise<void> {
    return this.submit({ kind: 'lease_return', orgId: lease.orgId, reservationId: lease.reservationId, requestId: null, keyId: null, amountMicros: keepMicros, minAmountMicros: 0, tokens: 0 }).then(
      (answer) => leaseReturnedMicrosTotal.inc(answer.amountMicros),
      // Retried by the writer until the pool closes; then the sweeper returns it after the lease's TTL.
      (err: unknown) => log.warn('ledger: a credit lease could not be returned; it expires instead', { orgId: lease.orgId, leaseId: lease.reservationId, error: (err as Error).message }),
    );
  }
}
