// The request-log writer against a fake database: order kept across failed writes, one statement
// per batch, drops counted only when the queue is full, close() writes everything it can.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RequestLogWriter, type RequestLogEntry } from '../../../src/logs/request-log.js';

const ORG = '00000000-0000-4000-8000-000000000001';

function entry(n: number, extra: Partial<RequestLogEntry> = {}): RequestLogEntry {
  return {
    requestId: `req-${n}`, orgId: ORG, teamId: null, keyId: null, model: 'm', deployment: 'm#0', status: 200, statusClass: '2xx',
    errorCode: null, stream: false, promptTokens: 1, completionTokens: 2, costMicros: 3, latencyMs: 4, ttftMs: null,
    guardrailAction: 'none', guardrailRules: [], ...extra,
  };
}

/** Records the request ids of every successful statement; fails the next `failNext` calls. */
function fakeDb() {
  const batches: string[][] = [];
  const state = { failNext: 0, calls: 0, lastRows: [] as Array<Record<string, unknown>> };
  return {
    batches,
    state,
    async query(_text: string, values?: unknown[]) {
      state.calls++;
      await new Promise((resolve) => setTimeout(resolve, 1));
      if (state.failNext > 0) {
        state.failNext--;
        throw Object.assign(new Error('connection terminated'), { code: '08006' });
      }
      // One JSON array per batch: the rows as the database will read them.
      const rows = JSON.parse(values![0] as string) as Array<Record<string, unknown>>;
      state.lastRows = rows;
      batches.push(rows.map((r) => r.request_id as string));
      return { rows: [{ inserted: rows.length }], rowCount: 1 } as never;
    },
  };
}

const ids = (batches: string[][]) => batches.flat();

afterEach(() => vi.useRealTimers());

describe('RequestLogWriter', () => {
  it('writes one statement per batch of maxBatchRows, in order', async () => {
    const db = fakeDb();
    const writer = new RequestLogWriter(db, { defaultRetentionDays: 30, flushIntervalMs: 1_000, maxBatchRows: 10, maxQueuedRows: 1_000 });
    for (let i = 0; i < 25; i++) writer.record(entry(i));
    await writer.close();
    expect(ids(db.batches)).toEqual(Array.from({ length: 25 }, (_, i) => `req-${i}`));
    expect(db.batches.every((b) => b.length <= 10)).toBe(true);
    expect(writer.written).toBe(25);
    expect(writer.dropped).toBe(0);
    expect(writer.queued).toBe(0);
  });

  it('flushes on its timer when fewer than a batch wait', async () => {
    const db = fakeDb();
    const writer = new RequestLogWriter(db, { defaultRetentionDays: 30, flushIntervalMs: 20, maxBatchRows: 100, maxQueuedRows: 1_000 });
    writer.record(entry(1));
    await vi.waitFor(() => expect(writer.written).toBe(1), { timeout: 1_000, interval: 5 });
    await writer.close();
  });

  it('keeps a failed batch at the head of the queue and retries it before later rows', async () => {
    const db = fakeDb();
    const writer = new RequestLogWriter(db, { defaultRetentionDays: 30, flushIntervalMs: 5, maxBatchRows: 3, maxQueuedRows: 1_000, maxRetryDelayMs: 20 });
    db.state.failNext = 3;
    for (let i = 0; i < 10; i++) writer.record(entry(i));
    await vi.waitFor(() => expect(writer.written).toBe(10), { timeout: 2_000, interval: 5 });
    expect(ids(db.batches)).toEqual(Array.from({ length: 10 }, (_, i) => `req-${i}`));
    expect(writer.dropped).toBe(0);
    await writer.close();
  });

  it('drops only the rows the database refuses for their data, found by halves, and writes the rest in order', async () => {
    const db = fakeDb();
    // As PostgreSQL answers a batch holding a row it cannot read: the whole statement fails (22P05).
    const query = db.query;
    db.query = async (text: string, values?: unknown[]) => {
      if ((values![0] as string).includes('"poison')) throw Object.assign(new Error('unsupported Unicode escape sequence'), { code: '22P05' });
      return query(text, values);
    };
    const writer = new RequestLogWriter(db, { defaultRetentionDays: 30, flushIntervalMs: 5, maxBatchRows: 8, maxQueuedRows: 1_000 });
    const poisoned = new Set([3, 4, 11]);
    for (let i = 0; i < 20; i++) writer.record(entry(i, poisoned.has(i) ? { requestId: `poison-${i}` } : {}));
    await writer.close();
    expect(ids(db.batches)).toEqual(Array.from({ length: 20 }, (_, i) => i).filter((i) => !poisoned.has(i)).map((i) => `req-${i}`));
    expect(writer.written).toBe(17);
    expect(writer.dropped).toBe(3);
    expect(writer.queued).toBe(0);
  });

  it('drops and counts rows only when the queue is full', async () => {
    const db = fakeDb();
    db.state.failNext = 1_000;
    const writer = new RequestLogWriter(db, { defaultRetentionDays: 30, flushIntervalMs: 1_000, maxBatchRows: 1_000, maxQueuedRows: 5 });
    const accepted = Array.from({ length: 8 }, (_, i) => writer.record(entry(i)));
    expect(accepted).toEqual([true, true, true, true, true, false, false, false]);
    expect(writer.dropped).toBe(3);
    expect(writer.queued).toBe(5);
    db.state.failNext = 0;
    await writer.close();
    expect(ids(db.batches)).toEqual(['req-0', 'req-1', 'req-2', 'req-3', 'req-4']);
    expect(writer.dropped).toBe(3);
  });

  it('close() retries until the database is back, and counts what it could not write by the deadline', async () => {
    const db = fakeDb();
    const writer = new RequestLogWriter(db, { defaultRetentionDays: 30, flushIntervalMs: 5, maxBatchRows: 10, maxQueuedRows: 100, maxRetryDelayMs: 10 });
    db.state.failNext = 3;
    for (let i = 0; i < 4; i++) writer.record(entry(i));
    await writer.close(5_000);
    expect(writer.written).toBe(4);

    const down = fakeDb();
    down.state.failNext = Number.POSITIVE_INFINITY;
    const stuck = new RequestLogWriter(down, { defaultRetentionDays: 30, flushIntervalMs: 5, maxBatchRows: 10, maxQueuedRows: 100, maxRetryDelayMs: 10 });
    for (let i = 0; i < 4; i++) stuck.record(entry(i));
    await stuck.close(50);
    expect(stuck.dropped).toBe(4);
    expect(stuck.queued).toBe(0);
    expect(stuck.record(entry(9))).toBe(false);
  });

  it('sends rules as a list and cuts long bodies', async () => {
    const db = fakeDb();
    const writer = new RequestLogWriter(db, { defaultRetentionDays: 30, flushIntervalMs: 1_000, maxBatchRows: 10, maxQueuedRows: 100, maxBodyChars: 4 });
    writer.record(entry(1, { guardrailAction: 'redact', guardrailRules: ['pii:email', 'deny_word:2'], requestBody: 'abcdefgh', responseBody: null }));
    await writer.close();
    expect(db.state.lastRows).toHaveLength(1);
    expect(db.state.lastRows[0]).toMatchObject({ guardrail_action: 'redact', guardrail_rules: ['pii:email', 'deny_word:2'], request_body: 'abcd', response_body: null });
  });

  it('refuses options that are not positive integers', () => {
    expect(() => new RequestLogWriter(fakeDb(), { defaultRetentionDays: 30, flushIntervalMs: 0, maxBatchRows: 1, maxQueuedRows: 1 })).toThrow(/flushIntervalMs/);
    expect(() => new RequestLogWriter(fakeDb(), { defaultRetentionDays: 0, flushIntervalMs: 10, maxBatchRows: 1, maxQueuedRows: 1 })).toThrow(/defaultRetentionDays/);
  });
});

describe('guardrailOutcome', () => {
  it('keeps the strongest action and every rule once, in order', async () => {
    const { guardrailOutcome } = await import('../../../src/logs/request-log.js');
    expect(guardrailOutcome([])).toEqual({ action: 'none', rules: [] });
    expect(guardrailOutcome([
      { rule: 'pii:email', action: 'redact' },
      { rule: 'deny_word:1', action: 'flag' },
      { rule: 'pii:email', action: 'redact' },
    ])).toEqual({ action: 'redact', rules: ['pii:email', 'deny_word:1'] });
    expect(guardrailOutcome([{ rule: 'a', action: 'flag' }, { rule: 'b', action: 'block' }, { rule: 'c', action: 'redact' }]).action).toBe('block');
  });
});
