// The batched writer's grouping: a settle waits up to settleLingerMs for a reserve to share its
// transaction, a reserve never waits, and nothing waits at shutdown.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LedgerBatchWriter, type LedgerOp } from '../../../src/ledger/batch-writer.js';

const ORG = '00000000-0000-4000-8000-000000000001';

function op(kind: LedgerOp['kind'], n: number): LedgerOp {
  return { kind, orgId: ORG, reservationId: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`, requestId: `req-${n}`, keyId: null, amountMicros: 10, minAmountMicros: 10, tokens: 1 };
}

/** An array literal of bare elements (what these ops send) as its elements; NULL as null. */
const elements = (literal: unknown): Array<string | null> => (literal as string).slice(1, -1).split(',').map((e) => (e === 'NULL' ? null : e));

/** A pool whose every query is one batch: records the kinds it carried and answers each op. */
function fakePool() {
  const batches: string[][] = [];
  return {
    batches,
    async query(_sql: string, values: unknown[]) {
      const kinds = elements(values[0]) as string[];
      batches.push(kinds);
      await Promise.resolve();
      return { rows: kinds.map((_, i) => ({ op: i + 1, amount: '10', refusal: null })) };
    },
  };
}

afterEach(() => vi.useRealTimers());

describe('LedgerBatchWriter: settle linger', () => {
  it('sends a lone settle after the linger, not before', async () => {
    vi.useFakeTimers();
    const pool = fakePool();
    const writer = new LedgerBatchWriter(pool as never, { maxBatch: 512, reservationTtlMs: 60_000, retryDelayMs: 100, settleLingerMs: 5 });
    const settled = writer.submit(op('settle', 1));
    await vi.advanceTimersByTimeAsync(4);
    expect(pool.batches).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    await expect(settled).resolves.toEqual({ amountMicros: 10, refusal: null });
    expect(pool.batches).toEqual([['settle']]);
  });

  it('lets the next reserve carry a waiting settle: one transaction, sent at once', async () => {
    vi.useFakeTimers();
    const pool = fakePool();
    const writer = new LedgerBatchWriter(pool as never, { maxBatch: 512, reservationTtlMs: 60_000, retryDelayMs: 100, settleLingerMs: 5 });
    const settled = writer.submit(op('settle', 1));
    const released = writer.submit(op('release', 2));
    await vi.advanceTimersByTimeAsync(1);
    const reserved = writer.submit(op('reserve', 3));
    await Promise.resolve();
    expect(pool.batches).toEqual([['settle', 'release', 'reserve']]);
    await expect(Promise.all([settled, released, reserved])).resolves.toHaveLength(3);
    // The linger timer was cleared with the flush: nothing else is sent later.
    await vi.advanceTimersByTimeAsync(50);
    expect(pool.batches).toHaveLength(1);
  });

  it('flushes settles at once with no linger configured, and while draining', async () => {
    const pool = fakePool();
    const eager = new LedgerBatchWriter(pool as never, { maxBatch: 512, reservationTtlMs: 60_000, retryDelayMs: 100 });
    await eager.submit(op('settle', 1));
    expect(pool.batches).toEqual([['settle']]);

    const lingering = new LedgerBatchWriter(pool as never, { maxBatch: 512, reservationTtlMs: 60_000, retryDelayMs: 100, settleLingerMs: 1_000 });
    const settled = lingering.submit(op('settle', 2));
    const startedAt = Date.now();
    await lingering.drain(5_000);
    await settled;
    expect(Date.now() - startedAt).toBeLessThan(500);
    expect(pool.batches).toEqual([['settle'], ['settle']]);
  });
});

describe('LedgerBatchWriter: amounts the database cannot take', () => {
  it('refuses such an operation alone, and the batch goes on without it', async () => {
    const pool = fakePool();
    const writer = new LedgerBatchWriter(pool as never, { maxBatch: 512, reservationTtlMs: 60_000, retryDelayMs: 100 });
    const bad = [Number.NaN, 1.5, Number.POSITIVE_INFINITY, 2 ** 60].map((amountMicros, i) => writer.submit({ ...op('settle', i), amountMicros }));
    const good = writer.submit(op('reserve', 9));
    for (const refused of bad) await expect(refused).rejects.toMatchObject({ code: 'NR_INTERNAL' });
    await expect(good).resolves.toEqual({ amountMicros: 10, refusal: null });
    expect(pool.batches).toEqual([['reserve']]);
    await expect(writer.submit({ ...op('reserve', 10), tokens: Number.NaN })).rejects.toMatchObject({ code: 'NR_INTERNAL' });
  });
});

describe('LedgerBatchWriter: usage on settles and charges', () => {
  it('sends each op\'s usage as six arrays, null where it has none or a count the column would refuse', async () => {
    const values: unknown[][] = [];
    const pool = fakePool();
    const query = pool.query;
    pool.query = (sql: string, v: unknown[]) => (values.push(v), query(sql, v));
    // Settles and charges linger for the reserve: the three go in one batch.
    const writer = new LedgerBatchWriter(pool as never, { maxBatch: 512, reservationTtlMs: 60_000, leaseTtlMs: 30_000, retryDelayMs: 100, settleLingerMs: 1_000, chargeLingerMs: 1_000 });
    const usage = { promptTokens: 100, completionTokens: 50, cachedTokens: 60, cacheWriteTokens: 10, reasoningTokens: 30, images: 2 };
    const bad = { ...usage, promptTokens: -1, completionTokens: 1.5, cachedTokens: Number.NaN, images: 2 ** 60 };
    await Promise.all([writer.submit({ ...op('settle', 1), usage }), writer.submit({ ...op('charge', 2), usage: bad }), writer.submit(op('reserve', 3))]);
    expect(values).toHaveLength(1);
    const sent = values[0]!;
    expect(sent).toHaveLength(18);
    expect(sent[0]).toBe('{settle,charge,reserve}');
    expect(sent.slice(10, 16)).toEqual(['{100,NULL,NULL}', '{50,NULL,NULL}', '{60,NULL,NULL}', '{10,10,NULL}', '{30,30,NULL}', '{2,NULL,NULL}']);
    expect(sent.slice(16)).toEqual([60_000, 30_000]);
  });
});
