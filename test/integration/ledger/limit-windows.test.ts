// Regressions of the shared windows in nemo.ledger_apply_v2, at the SQL level: a window only moves
// forward (a batch that read the clock before a boundary must not reset a newer window), and a
// give-back never fails the batch that carries it (a settlement would be retried forever).
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, migrateTestDatabase, type TestDatabase } from '../../support/test-database.js';

const APPLY = 'SELECT op, amount::float8 AS amount, refusal FROM nemo.ledger_apply_v2($1, $2, $3, $4, $5, $6, $7, $8, $9, 60000) ORDER BY op';

let testDb: TestDatabase;
let owner: pg.Client;
let org: string;

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateTestDatabase(testDb);
  owner = new pg.Client(testDb.url);
  await owner.connect();
  org = randomUUID();
  await owner.query("SELECT nemo.create_org($1, 'windows')", [org]);
  await owner.query("SELECT nemo.ledger_credit($1, 'topup', 1000000, 'windows', NULL)", [org]);
});

afterAll(async () => {
  await owner?.end();
  await testDb?.drop();
});

async function key(limits: { rpm?: number; dailyCap?: number }): Promise<string> {
  const id = randomUUID();
  await owner.query(
    `INSERT INTO nemo.api_keys (org_id, key_id, name, role, key_hash, key_prefix, created_by, rpm_limit, daily_spend_cap_micros)
     VALUES ($1, $2::uuid, 'k', 'member', sha256(convert_to($2::text, 'UTF8')), 'p', 'platform', $3, $4)`,
    [org, id, limits.rpm ?? null, limits.dailyCap ?? null],
  );
  return id;
}

async function apply(ops: Array<{ kind: string; key: string; res?: string; amount?: number; min?: number }>) {
  const { rows } = await owner.query<{ op: number; amount: number; refusal: string | null }>(APPLY, [
    ops.map((o) => o.kind), ops.map(() => org), ops.map((o) => o.res ?? randomUUID()), ops.map(() => null), ops.map((o) => o.key),
    ops.map((o) => o.amount ?? 0), ops.map((o) => o.min ?? 0), ops.map(() => 1), ops.map(() => 'm'),
  ]);
  return rows;
}

describe('shared limit windows', () => {
  it('never move back: a window newer than the batch clock keeps its count and takes the batch', async () => {
    const id = await key({ rpm: 3 });
    // As another instance's batch would leave it just after a minute boundary this batch read before.
    await owner.query(
      `INSERT INTO nemo.limit_windows (org_id, scope_id, period, window_start, requests, tokens)
       VALUES ($1, $2, 'minute', date_trunc('minute', clock_timestamp()) + interval '1 minute', 3, 3)`,
      [org, id],
    );
    expect(await apply([{ kind: 'admit', key: id }])).toEqual([{ op: 1, amount: 0, refusal: 'key_rpm' }]);
    const { rows } = await owner.query("SELECT requests::int FROM nemo.limit_windows WHERE scope_id = $1 AND period = 'minute'", [id]);
    expect(rows).toEqual([{ requests: 3 }]);
  });

  it('an older window is reset when the next one starts', async () => {
    const id = await key({ rpm: 3 });
    await owner.query(
      `INSERT INTO nemo.limit_windows (org_id, scope_id, period, window_start, requests, tokens)
       VALUES ($1, $2, 'minute', date_trunc('minute', clock_timestamp()) - interval '1 minute', 3, 3)`,
      [org, id],
    );
    expect(await apply([{ kind: 'admit', key: id }])).toEqual([{ op: 1, amount: 0, refusal: null }]);
  });

  it('a give-back larger than its window clamps at zero instead of failing the batch', async () => {
    const id = await key({ dailyCap: 5000 });
    const res = randomUUID();
    expect(await apply([{ kind: 'reserve', key: id, res, amount: 1000, min: 1000 }])).toEqual([{ op: 1, amount: 1000, refusal: null }]);
    // A window that disagrees with its holds (whatever left it so) must not poison the settlement.
    await owner.query("UPDATE nemo.limit_windows SET spent_micros = 70 WHERE scope_id = $1 AND period = 'day'", [id]);
    const rows = await apply([{ kind: 'release', key: id, res }, { kind: 'reserve', key: id, amount: 10, min: 10 }]);
    expect(rows).toEqual([{ op: 1, amount: 1000, refusal: null }, { op: 2, amount: 10, refusal: null }]);
    const { rows: windows } = await owner.query("SELECT spent_micros::int FROM nemo.limit_windows WHERE scope_id = $1 AND period = 'day'", [id]);
    expect(windows).toEqual([{ spent_micros: 10 }]);
    expect((await owner.query('SELECT * FROM nemo.ledger_check()')).rows).toEqual([]);
  });

  it('the v1 entry points (an older instance in a rolling deploy) give back what v2 holds counted', async () => {
    const id = await key({ dailyCap: 5000 });
    const res = randomUUID();
    expect(await apply([{ kind: 'reserve', key: id, res, amount: 1000, min: 1000 }])).toEqual([{ op: 1, amount: 1000, refusal: null }]);
    await owner.query('UPDATE nemo.reservations SET expires_at = now() - interval \'1 second\' WHERE reservation_id = $1', [res]);
    await owner.query('SELECT nemo.ledger_expire(100)');
    const spent = async () => (await owner.query("SELECT spent_micros::int AS spent FROM nemo.limit_windows WHERE scope_id = $1 AND period = 'day'", [id])).rows[0].spent;
    expect(await spent()).toBe(0);
    // And a v1 release of a v2 hold.
    const second = randomUUID();
    await apply([{ kind: 'reserve', key: id, res: second, amount: 700, min: 700 }]);
    const { rows } = await owner.query('SELECT op, amount::int FROM nemo.ledger_apply($1, $2, $3, $4, $5, $6, $7, 60000)', [['release'], [org], [second], [null], [id], [0], [0]]);
    expect(rows).toEqual([{ op: 1, amount: 700 }]);
    expect(await spent()).toBe(0);
    expect((await owner.query('SELECT * FROM nemo.limit_windows_check()')).rows).toEqual([]);
    expect((await owner.query('SELECT * FROM nemo.ledger_check()')).rows).toEqual([]);
  });
});
