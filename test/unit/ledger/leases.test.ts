// Credit leases in process, against a writer that records what it was asked to write and answers
// as the database would: grants, carves, low-water top-ups, retirement, recalls and shutdown.
import { describe, expect, it } from 'vitest';
import type { LedgerAnswer, LedgerOp } from '../../../src/ledger/batch-writer.js';
import { CreditLeases, type LeaseSettings } from '../../../src/ledger/leases.js';

const ORG = '11111111-1111-4111-8111-111111111111';
const SETTINGS: LeaseSettings = { lifetimeMs: 1_000, ttlMs: 60_000, maxMicros: 10_000, minRequests: 4, lowWater: 0.25, chargeLingerMs: 0, recallWaitMs: 100 };

/** A writer whose database grants up to `balance` per lease and returns what a lease_return gives back. */
function fakeWriter(balance = 1_000_000) {
  const ops: LedgerOp[] = [];
  const leases = new Map<string, { amount: number; charged: number }>();
  let grantable = balance;
  const submit = async (op: LedgerOp): Promise<LedgerAnswer> => {
    ops.push(op);
    if (op.kind === 'lease') {
      const granted = Math.min(op.amountMicros, grantable);
      if (granted < op.minAmountMicros) return { amountMicros: 0, refusal: 'funds' };
      grantable -= granted;
      leases.set(op.reservationId, { amount: granted, charged: 0 });
      return { amountMicros: granted, refusal: null };
    }
    if (op.kind === 'charge') {
      const lease = leases.get(op.leaseId!)!;
      lease.charged += op.amountMicros;
      return { amountMicros: op.amountMicros, refusal: null };
    }
    if (op.kind === 'lease_return') {
      const lease = leases.get(op.reservationId)!;
      const back = Math.max(0, lease.amount - lease.charged - op.amountMicros);
      lease.amount -= back;
      grantable += back;
      return { amountMicros: back, refusal: null };
    }
    throw new Error(`unexpected ${op.kind}`);
  };
  return { submit, ops, leases, unheld: () => grantable };
}

const kinds = (ops: LedgerOp[]) => ops.map((op) => `${op.kind}:${op.amountMicros}`);

describe('CreditLeases', () => {
  it('grants minRequests bounds on first need, then carves bounds in process until the lease is short', async () => {
    const writer = fakeWriter();
    const leases = new CreditLeases(writer.submit, { ...SETTINGS, lowWater: 0 });
    expect(leases.carve(ORG, 100)).toBeUndefined();
    const first = await leases.take(ORG, 100);
    expect(first).toBeDefined();
    expect(kinds(writer.ops)).toEqual(['lease:400']);
    const carved = [first, ...[2, 3, 4].map(() => leases.carve(ORG, 100))];
    expect(carved.every((lease) => lease !== undefined)).toBe(true);
    expect(leases.carve(ORG, 100)).toBeUndefined(); // 400 carved of 400
    expect(writer.ops).toHaveLength(1); // no round trip per carve
    leases.settle(carved[0]!, 100, 60);
    expect(leases.carve(ORG, 40)).toBeDefined(); // the 40 not charged came back to the lease
    expect(leases.outstandingMicros()).toBe(400 - 60);
  });

  it('asks for the next lease ahead of need at the low-water mark, and retires the old one when it comes', async () => {
    const writer = fakeWriter();
    const leases = new CreditLeases(writer.submit, { ...SETTINGS, lowWater: 0.3 });
    const first = [(await leases.take(ORG, 100))!, leases.carve(ORG, 100)!, leases.carve(ORG, 100)!];
    // Free 100 < 30 % of 400 after the third carve; the next lease covers twice the 300 running.
    expect(kinds(writer.ops)).toEqual(['lease:400', 'lease:600']);
    await Promise.resolve();
    await new Promise((r) => setImmediate(r));
    // The old lease was retired: its free 100 went back, it keeps the 300 its requests run on.
    expect(kinds(writer.ops).slice(2)).toEqual(['lease_return:300']);
    expect(leases.carve(ORG, 100)).not.toBe(first[0]);
    for (const lease of first) leases.settle(lease, 100, 100);
    // The last running request settled: the old lease closes, after its charges (none queued here).
    expect(kinds(writer.ops).at(-1)).toBe('lease_return:0');
    // Renewed until its return committed, then only the new lease is open.
    expect([...leases.open()]).toHaveLength(2);
    await new Promise((r) => setImmediate(r));
    expect([...leases.open()]).toHaveLength(1);
  });

  it('a lease too small for one bound is refused: the org takes per-request holds for a lifetime', async () => {
    const writer = fakeWriter(50);
    const leases = new CreditLeases(writer.submit, SETTINGS);
    expect(await leases.take(ORG, 100)).toBeUndefined();
    expect(await leases.take(ORG, 100)).toBeUndefined();
    expect(kinds(writer.ops)).toEqual(['lease:400']); // asked once, not per request
  });

  it('a recall gives back the unused part at once, keeps what running requests need, and leases nothing for a lifetime', async () => {
    const writer = fakeWriter();
    const leases = new CreditLeases(writer.submit, { ...SETTINGS, lowWater: 0 });
    const running = (await leases.take(ORG, 100))!;
    leases.recall(ORG);
    expect(kinds(writer.ops)).toEqual(['lease:400', 'lease_return:100']);
    expect(leases.carve(ORG, 100)).toBeUndefined();
    expect(await leases.take(ORG, 100)).toBeUndefined();
    // As the ledger does: the charge is queued first, then the lease learns of it.
    void writer.submit({ kind: 'charge', orgId: ORG, reservationId: 'charge-1', leaseId: running.reservationId, requestId: 'r1', keyId: null, amountMicros: 30, minAmountMicros: 0, tokens: 0 });
    leases.settle(running, 100, 30);
    expect(kinds(writer.ops).at(-1)).toBe('lease_return:0');
    await new Promise((r) => setImmediate(r));
    expect(writer.unheld()).toBe(1_000_000 - 30);
  });

  it('a grant that arrives after a recall goes straight back', async () => {
    const writer = fakeWriter();
    const leases = new CreditLeases(writer.submit, SETTINGS);
    const taking = leases.take(ORG, 100);
    leases.recall(ORG); // nothing held yet; the org is marked
    expect(await taking).toBeUndefined();
    await new Promise((r) => setImmediate(r));
    expect(kinds(writer.ops)).toEqual(['lease:400', 'lease_return:0']);
    expect([...leases.open()]).toHaveLength(0);
    expect(writer.unheld()).toBe(1_000_000);
  });

  it('retires a lease past its lifetime, and retireAll gives every lease back at shutdown', async () => {
    const writer = fakeWriter();
    const leases = new CreditLeases(writer.submit, SETTINGS);
    const running = (await leases.take(ORG, 100))!;
    leases.tick(performance.now() + SETTINGS.lifetimeMs);
    expect(kinds(writer.ops)).toEqual(['lease:400', 'lease_return:100']);
    expect(leases.carve(ORG, 100)).toBeUndefined();
    leases.retireAll();
    expect(kinds(writer.ops).at(-1)).toBe('lease_return:0');
    leases.release(running, 100); // a late release changes nothing more
    expect(writer.ops).toHaveLength(3);
  });

  it('sizes a lease by the recent spend rate, within maxMicros', async () => {
    const writer = fakeWriter();
    const leases = new CreditLeases(writer.submit, { ...SETTINGS, lowWater: 0 });
    const start = performance.now();
    for (let i = 0; i < 4; i++) leases.settle(leases.carve(ORG, 100) ?? (await leases.take(ORG, 100))!, 100, 100);
    leases.tick(start + 100); // 400 in ~0.1 s: about 2,000 per second, halved by the average
    leases.tick(start + 100 + SETTINGS.lifetimeMs);
    await leases.take(ORG, 100);
    const grants = writer.ops.filter((op) => op.kind === 'lease').map((op) => op.amountMicros);
    expect(grants[1]).toBeGreaterThan(400);
    expect(grants[1]).toBeLessThanOrEqual(SETTINGS.maxMicros);
  });
});
