// The batch writer's array literals (src/db/pg-array.ts) through ledger_apply_v4 on a real
// PostgreSQL: text the array syntax cares about (the word NULL, quotes, commas, braces, spaces,
// backslashes, unicode) lands in the ledger rows exactly as sent, and a null key as NULL.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LedgerBatchWriter } from '../../../src/ledger/batch-writer.js';
import { createTestDatabase, migrateTestDatabase, type TestDatabase } from '../../support/test-database.js';

describe('ledger batch parameters', () => {
  let testDb: TestDatabase;
  let pool: pg.Pool;
  let writer: LedgerBatchWriter;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    await migrateTestDatabase(testDb);
    pool = new pg.Pool({ connectionString: testDb.url, max: 2 });
    writer = new LedgerBatchWriter(pool, { maxBatch: 512, reservationTtlMs: 60_000, retryDelayMs: 100 });
  });

  afterAll(async () => {
    await writer?.drain(1_000);
    await pool?.end();
    await testDb?.drop();
  });

  it('writes request ids and models as sent, whatever their characters', async () => {
    const org = randomUUID();
    await pool.query('SELECT * FROM nemo.create_org($1, $2)', [org, 'batch params']);
    await pool.query("SELECT * FROM nemo.ledger_credit($1, 'topup', 1000000, 'batch-params', NULL)", [org]);
    const lease = randomUUID();
    const base = { orgId: org, keyId: null, minAmountMicros: 0, tokens: 0 } as const;
    const granted = await writer.submit({ ...base, kind: 'lease', reservationId: lease, requestId: 'instance-1', amountMicros: 100_000, minAmountMicros: 1 });
    expect(granted).toEqual({ amountMicros: 100_000, refusal: null });

    const awkward = ['NULL', 'null', '', ' padded ', 'a,b', '{braces}', 'say "hi"', 'back\\slash', 'é😀', 'plain-id_1.2:3'];
    const answers = await Promise.all(
      awkward.map((text, i) => writer.submit({ ...base, kind: 'charge', reservationId: randomUUID(), leaseId: lease, requestId: text, model: `model ${text}`, amountMicros: 10 + i })),
    );
    expect(answers.map((a) => a.amountMicros)).toEqual(awkward.map((_, i) => 10 + i));

    const { rows } = await pool.query<{ request_id: string; model: string; key_id: string | null; charged: string }>(
      "SELECT request_id, model, key_id, charged FROM nemo.ledger_entries WHERE org_id = $1 AND kind = 'settle' ORDER BY charged",
      [org],
    );
    expect(rows).toEqual(awkward.map((text, i) => ({ request_id: text, model: `model ${text}`, key_id: null, charged: String(10 + i) })));
  });
});
