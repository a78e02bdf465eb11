// The rules of the ledger's batch functions as plain TypeScript, for ledger-model.test.ts: credits
// (migrations/0002_credits.sql), the spend caps and shared rate limits decided by
// nemo.ledger_apply_v2 and given back by nemo.ledger_expire_v2
// (migrations/0004_spend_caps_and_shared_limits.sql), and credit leases: grants, charges against
// them, trims and closes (lease_return) and recalls, by nemo.ledger_apply_v3, and their expiry
// (migrations/0008_credit_leases.sql). No database here: the test runs the same steps against both
// and compares.

/** reserve/admit/settle/release: a request's own hold (v2); lease/charge/lease_return: credit leases (v3). */
export type OpKind = 'reserve' | 'admit' | 'settle' | 'release' | 'lease' | 'charge' | 'lease_return';
export interface ApplyOp {
  kind: OpKind;
  org: string;
  /** charge: the charge's own id; lease_return: the lease; lease: the new lease's id. */
  res: string;
  key: string | null;
  /** reserve, lease: the most to hold; settle, charge: the charge; lease_return: what the lease keeps (0: close it). */
  amount: number;
  min: number;
  tokens: number;
  /** charge: the lease it is written against. */
  lease?: string | null;
  /** lease: the holder (an instance, 'lease:<uuid>'). */
  holder?: string | null;
}
export type Refusal = 'funds' | 'funds_leased' | 'key_rpm' | 'key_tpm' | 'team_rpm' | 'team_tpm' | 'key_daily_cap' | 'key_monthly_cap' | 'team_daily_cap' | 'team_monthly_cap';
export interface ApplyRow {
  op: number;
  amount: number;
  refusal: Refusal | null;
}
export type CreditKind = 'topup' | 'refund' | 'adjustment';

export type Period = 'minute' | 'day' | 'month';
/** The moment a batch read its windows (after taking its locks), truncated in UTC to each period, in epoch milliseconds. */
export type Instant = Record<Period, number>;

/** NULL: unlimited. rpm/tpm: per minute; day/month: spend caps in micros. */
export interface Limits {
  rpm: number | null;
  tpm: number | null;
  day: number | null;
  month: number | null;
}
export interface KeyConfig extends Limits {
  org: string;
  team: string | null;
}
export interface TeamConfig extends Limits {
  org: string;
}

/** A row of nemo.limit_windows. */
export interface WindowRow {
  org: string;
  scope: string;
  period: Period;
  start: number;
  requests: number;
  tokens: number;
  spent: number;
}

export interface ModelReservation {
  org: string;
  res: string;
  kind: 'request' | 'lease';
  /** A lease's holder (its request_id); null for a request's hold. */
  holder: string | null;
  /** A lease that gave back its unused part (trimmed_at set): no longer a reason to recall. */
  trimmed: boolean;
  key: string | null;
  team: string | null;
  amount: number;
  state: 'reserved' | 'settled' | 'released' | 'expired';
  charged: number;
  /** counted_windows: 1 key day, 2 key month, 4 team day, 8 team month. */
  counted: number;
  /** date_trunc('day' | 'month', created_at) in UTC, epoch ms. */
  createdDay: number;
  createdMonth: number;
  dueSeq: number | null;
}

export const MINUTE_MS = 60_000;
export const DAY_MS = 86_400_000;
/** 400 Gregorian years: exactly 146097 days, so every date keeps its day and month. */
export const EPOCH_MS = 146_097 * DAY_MS;
/** How far back a run may push its clock (400 years each): stays well inside timestamptz. */
const MAX_EPOCH_SHIFTS = 4;

/** A time jump: 'minute' starts new minute windows; 'day' new minute and day windows; 'epoch' new windows of every period. */
export type TimeShift = 'minute' | 'day' | 'epoch';

/** The spend caps in the order ledger_apply_v2 weighs them: on equal room the first one is named. */
const CAPS = [
  { level: 'key', period: 'day', bit: 1, refusal: 'key_daily_cap' },
  { level: 'key', period: 'month', bit: 2, refusal: 'key_monthly_cap' },
  { level: 'team', period: 'day', bit: 4, refusal: 'team_daily_cap' },
  { level: 'team', period: 'month', bit: 8, refusal: 'team_monthly_cap' },
] as const;

export const reservationKey = (org: string, res: string) => `${org}/${res}`;
const windowKey = (org: string, scope: string, period: Period) => `${org}/${scope}/${period}`;

/** Expiry order across the whole test file: ledger_expire_v2 takes the oldest expires_at first. */
let dueSeq = 0;

export class LedgerModel {
  readonly accounts = new Map<string, { available: number; held: number }>();
  readonly reservations = new Map<string, ModelReservation>();
  readonly keys = new Map<string, KeyConfig>();
  readonly teams = new Map<string, TeamConfig>();
  readonly windows = new Map<string, WindowRow>();
  private readonly credits = new Map<string, number>();
  /** Charges written (org/charge id): a retried one is not charged again. */
  private readonly chargeIds = new Set<string>();
  private epochShifts = 0;

  constructor(orgs: readonly string[]) {
    for (const org of orgs) this.accounts.set(org, { available: 0, held: 0 });
  }

  /** A copy to try a batch on (when which window a batch fell in is known only from its outcome). */
  clone(): LedgerModel {
    const copy = new LedgerModel([]);
    for (const [from, to] of [[this.accounts, copy.accounts], [this.reservations, copy.reservations], [this.keys, copy.keys], [this.teams, copy.teams], [this.windows, copy.windows], [this.credits, copy.credits]] as const) {
      for (const [k, v] of from as Map<string, unknown>) (to as Map<string, unknown>).set(k, typeof v === 'object' && v !== null ? { ...v } : v);
    }
    for (const id of this.chargeIds) copy.chargeIds.add(id);
    copy.epochShifts = this.epochShifts;
    return copy;
  }

  /**
   * One ledger_apply_v2 call that read its windows at `now`. Which of several closing ops of
   * one reservation in a batch wins is not specified, so the database's choice (`actual`) is
   * accepted when it is one of them.
   */
  applyBatch(ops: readonly ApplyOp[], actual: readonly ApplyRow[], now: Instant): ApplyRow[] {
    return this.applyV3(ops, actual, now).rows;
  }

  /**
   * One ledger_apply_v3 call: a batch without lease operations is ledger_apply_v2's; otherwise
   * charges, then lease returns, then v2's operations, then new leases. Either way a reserve refused
   * for funds while an untrimmed lease of its org holds unused money is refused as 'funds_leased',
   * and its org is recalled (NOTIFY nemo_lease_recall).
   */
  applyV3(ops: readonly ApplyOp[], actual: readonly ApplyRow[], now: Instant): { rows: ApplyRow[]; recalled: string[] } {
    const leaseOps = ops.some((o) => o.kind === 'lease' || o.kind === 'charge' || o.kind === 'lease_return');
    const out: ApplyRow[] = [];
    if (leaseOps) {
      out.push(...this.charges(ops), ...this.returns(ops));
    }
    const v2 = this.applyV2(ops, actual, now);
    if (leaseOps) out.push(...this.leases(ops));
    const recalled = new Set<string>();
    for (const row of v2) {
      const o = ops[row.op - 1]!;
      if (row.refusal !== 'funds' || o.kind !== 'reserve') continue;
      if ([...this.reservations.values()].some((l) => l.org === o.org && l.kind === 'lease' && l.state === 'reserved' && l.amount > l.charged && !l.trimmed)) recalled.add(o.org);
    }
    for (const row of v2) out.push(row.refusal === 'funds' && ops[row.op - 1]!.kind === 'reserve' && recalled.has(ops[row.op - 1]!.org) ? { ...row, refusal: 'funds_leased' } : row);
    return { rows: out.sort((a, b) => a.op - b.op), recalled: [...recalled].sort() };
  }

  /** An open lease of the org by id. */
  private openLease(org: string, res: string | null | undefined): ModelReservation | undefined {
    const l = res == null ? undefined : this.reservations.get(reservationKey(org, res));
    return l !== undefined && l.kind === 'lease' && l.state === 'reserved' ? l : undefined;
  }

  /**
   * Charges, in queue order per lease: the first op of a charge id in the batch; each capped at
   * what the lease holds less what the ops before it on that lease asked for; none against a lease
   * that is not open. A charge of 0 is still written (and answered). An id charged before (a
   * retried batch) is answered the same way but writes nothing and moves no money (its row
   * conflicts on the idempotency index).
   */
  private charges(ops: readonly ApplyOp[]): ApplyRow[] {
    const out: ApplyRow[] = [];
    const first = new Map<string, number>();
    ops.forEach((o, i) => {
      if (o.kind === 'charge' && !first.has(reservationKey(o.org, o.res))) first.set(reservationKey(o.org, o.res), i);
    });
    const asked = new Map<string, number>();
    const start = new Map<ModelReservation, number>();
    for (const [id, i] of [...first].sort((a, b) => a[1] - b[1])) {
      const o = ops[i]!;
      const seenBefore = this.chargeIds.has(id);
      const lease = this.openLease(o.org, o.lease);
      if (lease === undefined) continue;
      const amount = Math.max(o.amount, 0);
      const room = start.get(lease) ?? lease.amount - lease.charged;
      start.set(lease, room);
      const before = asked.get(reservationKey(lease.org, lease.res)) ?? 0;
      asked.set(reservationKey(lease.org, lease.res), before + amount);
      const applied = Math.min(amount, Math.max(room - before, 0));
      out.push({ op: i + 1, amount: applied, refusal: null });
      if (seenBefore) continue;
      this.chargeIds.add(id);
      lease.charged += applied;
      this.accounts.get(lease.org)!.held -= applied;
    }
    return out;
  }

  /** Returns: the last op per lease in the batch; keep 0 closes it (settled if it charged, else released), more trims it to that. */
  private returns(ops: readonly ApplyOp[]): ApplyRow[] {
    const out: ApplyRow[] = [];
    const last = new Map<string, number>();
    ops.forEach((o, i) => {
      if (o.kind === 'lease_return') last.set(reservationKey(o.org, o.res), i);
    });
    for (const i of last.values()) {
      const o = ops[i]!;
      const lease = this.openLease(o.org, o.res);
      if (lease === undefined) continue;
      const keep = Math.max(o.amount, 0);
      const back = keep === 0 ? lease.amount - lease.charged : Math.max(lease.amount - lease.charged - keep, 0);
      if (keep === 0) lease.state = lease.charged > 0 ? 'settled' : 'released';
      else {
        lease.amount -= back;
        lease.trimmed = true;
      }
      const account = this.accounts.get(lease.org)!;
      account.available += back;
      account.held -= back;
      out.push({ op: i + 1, amount: back, refusal: null });
    }
    return out;
  }

  /**
   * New leases in queue order, each against the balance as the ops before left it: at most the org's
   * available / (2 x (other holders + 1)), refused ('funds') below the minimum (at least 1); an id
   * already reserved when the leases start is skipped silently, as is a repeat granted in this batch.
   */
  private leases(ops: readonly ApplyOp[]): ApplyRow[] {
    const out: ApplyRow[] = [];
    const existing = new Set(this.reservations.keys());
    ops.forEach((o, i) => {
      if (o.kind !== 'lease' || existing.has(reservationKey(o.org, o.res))) return;
      const account = this.accounts.get(o.org);
      const avail = account?.available ?? 0;
      const holders = new Set([...this.reservations.values()].filter((l) => l.org === o.org && l.kind === 'lease' && l.state === 'reserved' && l.holder !== o.holder).map((l) => l.holder)).size;
      const granted = Math.min(o.amount, Math.floor(avail / (2 * (holders + 1))));
      if (granted < Math.max(o.min, 1)) {
        out.push({ op: i + 1, amount: 0, refusal: 'funds' });
        return;
      }
      if (this.reservations.has(reservationKey(o.org, o.res))) return;
      account!.available -= granted;
      account!.held += granted;
      this.reservations.set(reservationKey(o.org, o.res), {
        org: o.org, res: o.res, kind: 'lease', holder: o.holder ?? null, trimmed: false, key: null, team: null, amount: granted, state: 'reserved', charged: 0,
        counted: 0, createdDay: 0, createdMonth: 0, dueSeq: null,
      });
      out.push({ op: i + 1, amount: granted, refusal: null });
    });
    return out;
  }

  /** ledger_apply_v2's part of a batch (lease operations are not its own). */
  private applyV2(ops: readonly ApplyOp[], actual: readonly ApplyRow[], now: Instant): ApplyRow[] {
    const out: ApplyRow[] = [];
    // Settles and releases first: each open reservation closes once, and gives back to the windows
    // it was counted in what it no longer holds.
    const closing = new Map<string, number[]>();
    ops.forEach((o, i) => {
      if ((o.kind !== 'settle' && o.kind !== 'release') || this.reservations.get(reservationKey(o.org, o.res))?.state !== 'reserved') return;
      closing.set(reservationKey(o.org, o.res), [...(closing.get(reservationKey(o.org, o.res)) ?? []), i]);
    });
    for (const [k, candidates] of closing) {
      const chosen = candidates.find((i) => actual.some((row) => row.op === i + 1)) ?? candidates[0]!;
      const o = ops[chosen]!;
      const r = this.reservations.get(k)!;
      const account = this.accounts.get(r.org)!;
      r.state = o.kind === 'settle' ? 'settled' : 'released';
      r.charged = o.kind === 'settle' ? Math.min(Math.max(o.amount, 0), r.amount) : 0;
      account.available += r.amount - r.charged;
      account.held -= r.amount;
      this.giveBack(r, r.amount - r.charged);
      out.push({ op: chosen + 1, amount: r.charged > 0 ? r.charged : r.amount, refusal: null });
    }
    // Then reserves and admits in queue order (orgs are independent): the first op of a
    // reservation id in the batch only, and none of an id reserved before.
    const seen = new Set<string>();
    ops.forEach((o, i) => {
      if (o.kind !== 'reserve' && o.kind !== 'admit') return;
      const id = reservationKey(o.org, o.res);
      if (seen.has(id)) return;
      seen.add(id);
      if (this.reservations.has(id)) return;
      out.push(this.decide(o, i + 1, now));
    });
    return out.sort((a, b) => a.op - b.op);
  }

  /** One reserve or admit: the rate limits, then the org's balance and every spend cap's room. */
  private decide(o: ApplyOp, op: number, now: Instant): ApplyRow {
    const account = this.accounts.get(o.org);
    const remaining = account?.available ?? 0;
    // A key counts only in its own org; its team is the one it is in now.
    const keyConfig = o.key === null ? undefined : this.keys.get(o.key);
    const key = keyConfig?.org === o.org ? keyConfig : undefined;
    const teamId = key?.team ?? null;
    const team = teamId === null ? undefined : this.teams.get(teamId);
    const scopes = { key: key === undefined ? undefined : { id: o.key!, limits: key }, team: team === undefined ? undefined : { id: teamId!, limits: team } };

    // Rate limits: the key's, then its team's; rpm before tpm. An admit is counted like a reserve.
    let refusal: Refusal | null = null;
    const minuteWindows: WindowRow[] = [];
    for (const level of ['key', 'team'] as const) {
      const scope = scopes[level];
      if (scope === undefined || (scope.limits.rpm === null && scope.limits.tpm === null)) continue;
      const w = this.window(o.org, scope.id, 'minute', now);
      minuteWindows.push(w);
      if (refusal !== null) continue;
      if (scope.limits.rpm !== null && w.requests + 1 > scope.limits.rpm) refusal = `${level}_rpm`;
      else if (scope.limits.tpm !== null && w.tokens + o.tokens > scope.limits.tpm) refusal = `${level}_tpm`;
    }

    // Spend caps (reserves only: an admit holds nothing). The room is the org's remaining balance
    // or less: a cap whose room is strictly smaller binds, and is named if the grant falls short.
    let room = remaining;
    let binding: Refusal | null = null;
    const spendWindows: Array<{ w: WindowRow; bit: number }> = [];
    if (o.kind === 'reserve') {
      for (const cap of CAPS) {
        const scope = scopes[cap.level];
        const limit = scope?.limits[cap.period] ?? null;
        if (scope === undefined || limit === null) continue;
        const w = this.window(o.org, scope.id, cap.period, now);
        spendWindows.push({ w, bit: cap.bit });
        if (limit - w.spent < room) {
          room = Math.max(limit - w.spent, 0);
          binding = cap.refusal;
        }
      }
    }

    let granted = 0;
    if (refusal === null && o.kind === 'reserve') {
      granted = Math.min(o.amount, room);
      const least = Math.max(o.min, 1);
      if (granted < least) refusal = remaining < least || binding === null ? 'funds' : binding;
    }
    if (refusal !== null) return { op, amount: 0, refusal };

    for (const w of minuteWindows) {
      w.requests += 1;
      w.tokens += o.tokens;
    }
    let counted = 0;
    for (const { w, bit } of spendWindows) {
      w.spent += granted;
      counted |= bit;
    }
    if (o.kind === 'reserve') {
      account!.available -= granted;
      account!.held += granted;
      this.reservations.set(reservationKey(o.org, o.res), {
        org: o.org, res: o.res, kind: 'request', holder: null, trimmed: false, key: o.key, team: teamId, amount: granted, state: 'reserved', charged: 0,
        counted, createdDay: now.day, createdMonth: now.month, dueSeq: null,
      });
    }
    return { op, amount: granted, refusal: null };
  }

  /** The scope's current window of the period: created, or reset when it belongs to an earlier one (never to a later one). */
  private window(org: string, scope: string, period: Period, now: Instant): WindowRow {
    const id = windowKey(org, scope, period);
    let w = this.windows.get(id);
    if (w === undefined) {
      w = { org, scope, period, start: now[period], requests: 0, tokens: 0, spent: 0 };
      this.windows.set(id, w);
    } else if (w.start < now[period]) {
      Object.assign(w, { start: now[period], requests: 0, tokens: 0, spent: 0 });
    }
    return w;
  }

  /** What a closed reservation no longer holds leaves the windows it was counted in, if they are still current (never below zero). */
  private giveBack(r: ModelReservation, back: number): void {
    if (back <= 0) return;
    for (const cap of CAPS) {
      if ((r.counted & cap.bit) === 0) continue;
      const w = this.windows.get(windowKey(r.org, cap.level === 'key' ? r.key! : r.team!, cap.period));
      if (w !== undefined && w.start === (cap.period === 'day' ? r.createdDay : r.createdMonth)) w.spent = Math.max(w.spent - back, 0);
    }
  }

  credit(org: string, kind: CreditKind, amount: number, idempotencyKey: string | null): 'created' | 'repeat' | 'refused' {
    if (idempotencyKey !== null && this.credits.has(`${org}/${kind}/${idempotencyKey}`)) return 'repeat';
    const account = this.accounts.get(org)!;
    if (account.available + amount < 0) return 'refused';
    account.available += amount;
    return 'created';
  }

  rememberCredit(org: string, kind: CreditKind, idempotencyKey: string | null, entryId: number): void {
    if (idempotencyKey !== null) this.credits.set(`${org}/${kind}/${idempotencyKey}`, entryId);
  }

  creditEntry(org: string, kind: CreditKind, idempotencyKey: string): number | undefined {
    return this.credits.get(`${org}/${kind}/${idempotencyKey}`);
  }

  /** A holder's open leases (an instance that crashed) become due, after everything due before. */
  markHolderDue(holder: string): ModelReservation[] {
    const picked = [...this.reservations.values()].filter((r) => r.state === 'reserved' && r.kind === 'lease' && r.holder === holder && r.dueSeq === null);
    for (const r of picked) r.dueSeq = ++dueSeq;
    return picked;
  }

  /** Open reservations picked by the bits of `pick` become due, in pick order. */
  markDue(pick: number): ModelReservation[] {
    const open = [...this.reservations.values()].filter((r) => r.state === 'reserved' && r.dueSeq === null);
    const picked = open.filter((_, i) => ((pick >>> (i % 16)) & 1) === 1);
    for (const r of picked) r.dueSeq = ++dueSeq;
    return picked;
  }

  /**
   * ledger_expire_v2: the oldest due holds and leases, up to the limit, expired: each gives back what
   * it did not charge (a request's hold charges nothing while open), to the balance and its windows.
   */
  expire(limit: number): number {
    const due = [...this.reservations.values()].filter((r) => r.state === 'reserved' && r.dueSeq !== null).sort((a, b) => a.dueSeq! - b.dueSeq!);
    for (const r of due.slice(0, limit)) {
      const account = this.accounts.get(r.org)!;
      const back = r.amount - r.charged;
      r.state = 'expired';
      account.available += back;
      account.held -= back;
      this.giveBack(r, back);
    }
    return Math.min(limit, due.length);
  }

  /**
   * Time passes for this model's orgs: every window of the shifted periods and every reservation's
   * created_at move back by the same duration, so the next batch starts new windows while the
   * books stay consistent. A day shift that would move a reservation into the month before becomes
   * an epoch shift; epoch shifts past the limit become minute shifts. Returns the shift to apply to
   * the database and how far back each period's windows go.
   */
  shiftTime(wanted: TimeShift): { shift: TimeShift; byMs: number; periods: Period[] } {
    let shift = wanted;
    if (shift === 'day' && [...this.reservations.values()].some((r) => r.kind === 'request' && new Date(r.createdDay).getUTCDate() === 1)) shift = 'epoch';
    if (shift === 'epoch' && this.epochShifts >= MAX_EPOCH_SHIFTS) shift = 'minute';
    if (shift === 'epoch') this.epochShifts++;
    const byMs = shift === 'minute' ? MINUTE_MS : shift === 'day' ? DAY_MS : EPOCH_MS;
    const periods: Period[] = shift === 'minute' ? ['minute'] : shift === 'day' ? ['minute', 'day'] : ['minute', 'day', 'month'];
    for (const w of this.windows.values()) if (periods.includes(w.period)) w.start -= byMs;
    if (shift !== 'minute') {
      for (const r of this.reservations.values()) {
        r.createdDay -= byMs;
        if (shift === 'epoch') r.createdMonth -= byMs;
      }
    }
    return { shift, byMs, periods };
  }

  reservationRows() {
    return [...this.reservations.values()]
      .map(({ org, res, kind, holder, trimmed, key, team, amount, state, charged, counted, createdDay, createdMonth }) => ({
        org, res, kind, holder, trimmed, key, team, amount, state, charged, counted, createdDay: kind === 'lease' ? 0 : createdDay, createdMonth: kind === 'lease' ? 0 : createdMonth,
      }))
      .sort((a, b) => reservationKey(a.org, a.res).localeCompare(reservationKey(b.org, b.res)));
  }

  windowRows(): WindowRow[] {
    return [...this.windows.values()].map((w) => ({ ...w })).sort((a, b) => windowKey(a.org, a.scope, a.period).localeCompare(windowKey(b.org, b.scope, b.period)));
  }
}
