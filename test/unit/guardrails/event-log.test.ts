// Guardrail events are written off the request path in bounded statements (pg builds each
// parameter array on the event loop), in order, and a failed statement loses no row: what was not
// written goes with the next flush, what was written is not written again.
import { describe, expect, it } from 'vitest';
import type { Database } from '../../../src/db/database.js';
import { GuardrailEventLog } from '../../../src/guardrails/event-log.js';
import type { Finding } from '../../../src/guardrails/types.js';

const EMAIL: Finding = { rule: 'pii:email', action: 'redact', start: 0, end: 4 };

/** A database that keeps each statement's request ids and timestamps, failing the statements listed. */
class Statements {
  readonly requests: string[][] = [];
  readonly times: string[][] = [];
  calls = 0;
  constructor(private readonly failing: ReadonlySet<number> = new Set()) {}

  asDatabase(): Database {
    return {
      query: async (_sql: string, params: unknown[]) => {
        if (this.failing.has(this.calls++)) throw new Error('connection lost');
        this.requests.push(params[1] as string[]);
        this.times.push(params[6] as string[]);
        return { rows: [] };
      },
    } as unknown as Database;
  }
}

function recordRequests(events: GuardrailEventLog, count: number): void {
  for (let i = 0; i < count; i++) events.record({ orgId: '00000000-0000-4000-8000-000000000001', keyId: '00000000-0000-4000-8000-000000000002', requestId: `req-${i}` }, 'input', [EMAIL]);
}

describe('GuardrailEventLog', () => {
  it('writes a large backlog in statements of at most 500 rows, in order, with UTC timestamps', async () => {
    const db = new Statements();
    const events = new GuardrailEventLog(db.asDatabase(), { eventFlushMs: 60_000, maxQueuedEvents: 10_000 });
    recordRequests(events, 1_234);
    await events.close();
    expect(db.requests.map((r) => r.length)).toEqual([500, 500, 234]);
    expect(db.requests.flat()).toEqual(Array.from({ length: 1_234 }, (_, i) => `req-${i}`));
    expect(db.times.flat().every((at) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(at))).toBe(true);
  });

  it('keeps exactly the rows a failed statement did not write, for the next flush', async () => {
    const db = new Statements(new Set([1]));
    const events = new GuardrailEventLog(db.asDatabase(), { eventFlushMs: 60_000, maxQueuedEvents: 10_000 });
    recordRequests(events, 1_200);
    await events.flush();
    expect(db.requests.flat()).toEqual(Array.from({ length: 500 }, (_, i) => `req-${i}`));
    await events.close();
    // Every row once, none twice, in order.
    expect(db.requests.flat()).toEqual(Array.from({ length: 1_200 }, (_, i) => `req-${i}`));
  });
});
