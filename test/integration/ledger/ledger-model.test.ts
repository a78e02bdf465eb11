// The credit functions of migrations/0002_credits.sql against a model: random batches of
// reserve/settle/release, top-ups and expiry, compared with an in-memory model of the documented
// rules after every step; idempotency of each money operation; the append-only ledger; and
// concurrent batches that must neither deadlock nor overspend. LEDGER_PROPERTY_RUNS=500 for a long
// run; LEDGER_PROPERTY_SEED=<seed from a failure> replays one.
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseConfig } from '../../../src/config/load.js';
import { APP_ROLE, openDatabase, type Database } from '../../../src/db/database.js';
import { migrationsDirFromHere, runMigrations } from '../../../src/db/migrate.js';
import { AdminService } from '../../../src/tenancy/admin-service.js';
import { seededRandom } from '../../support/seeded-random.js';
import { createTestDatabase, TEST_APP_PASSWORD, type TestDatabase } from '../../support/test-database.js';

const PROPERTY_RUNS = Number(process.env.LEDGER_PROPERTY_RUNS ?? 25);
const PROPERTY_SEED = process.env.LEDGER_PROPERTY_SEED === undefined ? undefined : Number(process.env.LEDGER_PROPERTY_SEED);
/** Runs plus shrinking a failure: runs skipped past it fail the test, and shrinking stops there (the seed replays it). */
const PROPERTY_BUDGET_MS = Math.max(15_000, PROPERTY_RUNS * 500);
const PROPERTY_TIMEOUT_MS = PROPERTY_BUDGET_MS + 10_000;
const TTL_MS = 3_600_000;
const INSUFFICIENT_PRIVILEGE = '42501';
const CHECK_VIOLATION = '23514';

type OpKind = 'reserve' | 'settle' | 'release';
interface ApplyOp { kind: OpKind; org: string; res: string; amount: number; min: number }
interface ApplyRow { op: number; amount: number }
type CreditKind = 'topup' | 'refund' | 'adjustment';
type CreditResult = { ok: true; entryId: number; created: boolean; available: number; held: number } | { ok: false; code: string };

let testDb: TestDatabase;
let database: Database;
let admin: AdminService;
let owner: pg.Client;

beforeAll(async () => {
  testDb = await createTestDatabase();
  await runMigrations({ ownerUrl: testDb.url, migrationsDir: migrationsDirFromHere(), appRole: { name: APP_ROLE, password: TEST_APP_PASSWORD } });
  const config = { url: testDb.url, appPassword: TEST_APP_PASSWORD, dataDir: 'unused', osUser: 'postgres', poolMax: 4, connectTimeoutMs: 5000, statementTimeoutMs: 10000 } as DatabaseConfig;
  database = await openDatabase(config, { migrate: false });
  admin = new AdminService(database, new Set());
  owner = new pg.Client({ connectionString: testDb.url, application_name: 'ledger-model-owner' });
  await owner.connect();
});

afterAll(async () => {
  await owner?.end().catch(() => undefined);
  await database?.close();
  await testDb?.drop();
});

// --- the database side: the functions as the app role calls them, the state as the owner sees it ---

async function newOrg(topup = 0): Promise<string> {
  const org = await admin.createOrg({ kind: 'platform' }, { name: 'ledger model' });
  if (topup > 0) await credit(org.id, 'topup', topup, `initial ${randomUUID()}`);
  return org.id;
}

const APPLY_SQL = 'SELECT op, amount FROM nemo.ledger_apply($1, $2, $3, $4, $5, $6, $7, $8)';

/** One ledger_apply call as nemo_app (the app pool, or a given connection). */
async function apply(ops: readonly ApplyOp[], client?: pg.ClientBase): Promise<ApplyRow[]> {
  const values = [
    ops.map((o) => o.kind), ops.map((o) => o.org), ops.map((o) => o.res), ops.map(() => null), ops.map(() => null),
    ops.map((o) => o.amount), ops.map((o) => o.min), TTL_MS,
  ];
  const { rows } = client === undefined ? await database.query<{ op: number; amount: string }>(APPLY_SQL, values) : await client.query<{ op: number; amount: string }>(APPLY_SQL, values);
  return rows.map((r) => ({ op: r.op, amount: Number(r.amount) })).sort((a, b) => a.op - b.op);
}

async function credit(org: string, kind: CreditKind, amount: number, key: string | null): Promise<CreditResult> {
  try {
    const { rows } = await database.query<{ entry_id: string; created: boolean; available: string; held: string }>('SELECT * FROM nemo.ledger_credit($1, $2, $3, $4, $5)', [org, kind, amount, key, null]);
    const row = rows[0]!;
    return { ok: true, entryId: Number(row.entry_id), created: row.created, available: Number(row.available), held: Number(row.held) };
  } catch (err) {
    return { ok: false, code: (err as pg.DatabaseError).code ?? String(err) };
  }
}

async function accounts(orgs: readonly string[]): Promise<Record<string, { available: number; held: number }>> {
  const { rows } = await owner.query<{ org_id: string; available: string; held: string }>('SELECT org_id, available, held FROM nemo.credit_accounts WHERE org_id = ANY($1::uuid[])', [orgs]);
  return Object.fromEntries(rows.map((r) => [r.org_id, { available: Number(r.available), held: Number(r.held) }]));
}

async function expectBooksBalance(where: string): Promise<void> {
  const { rows } = await database.query('SELECT * FROM nemo.ledger_check()');
  expect(rows, `${where}: nemo.ledger_check() found accounts out of balance`).toEqual([]);
  const negative = await owner.query('SELECT org_id FROM nemo.credit_accounts WHERE available < 0 OR held < 0');
  expect(negative.rows, `${where}: negative balances`).toEqual([]);
}

// --- the model: the documented rules, nothing else ---

interface ModelReservation { org: string; res: string; amount: number; state: 'reserved' | 'settled' | 'released' | 'expired'; charged: number; dueSeq: number | null }
const key = (org: string, res: string) => `${org}/${res}`;
/** Expiry order across the whole run: ledger_expire takes the oldest expires_at first. */
let dueSeq = 0;

class LedgerModel {
  readonly accounts = new Map<string, { available: number; held: number }>();
  readonly reservations = new Map<string, ModelReservation>();
  private readonly credits = new Map<string, number>();

  constructor(orgs: readonly string[]) {
    for (const org of orgs) this.accounts.set(org, { available: 0, held: 0 });
  }

  /**
   * One ledger_apply call. Which of several closing ops of one reservation in a batch wins is not
   * specified, so the database's choice (`actual`) is accepted when it is one of them.
   */
  applyBatch(ops: readonly ApplyOp[], actual: readonly ApplyRow[]): ApplyRow[] {
    const out: ApplyRow[] = [];
    const closing = new Map<string, number[]>();
    ops.forEach((o, i) => {
      if (o.kind === 'reserve' || this.reservations.get(key(o.org, o.res))?.state !== 'reserved') return;
      closing.set(key(o.org, o.res), [...(closing.get(key(o.org, o.res)) ?? []), i]);
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
      out.push({ op: chosen + 1, amount: r.charged > 0 ? r.charged : r.amount });
    }
    // Reserves after every settle and release, in queue order per org (orgs are independent).
    ops.forEach((o, i) => {
      if (o.kind !== 'reserve' || this.reservations.has(key(o.org, o.res))) return;
      const account = this.accounts.get(o.org);
      const granted = Math.min(o.amount, account?.available ?? 0);
      if (account === undefined || granted < Math.max(o.min, 1)) return;
      account.available -= granted;
      account.held += granted;
      this.reservations.set(key(o.org, o.res), { org: o.org, res: o.res, amount: granted, state: 'reserved', charged: 0, dueSeq: null });
      out.push({ op: i + 1, amount: granted });
    });
    return out.sort((a, b) => a.op - b.op);
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

  /** Open reservations picked by the bits of `pick` become due, in pick order. */
  markDue(pick: number): ModelReservation[] {
    const open = [...this.reservations.values()].filter((r) => r.state === 'reserved' && r.dueSeq === null);
    const picked = open.filter((_, i) => ((pick >>> (i % 16)) & 1) === 1);
    for (const r of picked) r.dueSeq = ++dueSeq;
    return picked;
  }

  expire(limit: number): number {
    const due = [...this.reservations.values()].filter((r) => r.state === 'reserved' && r.dueSeq !== null).sort((a, b) => a.dueSeq! - b.dueSeq!);
    for (const r of due.slice(0, limit)) {
      const account = this.accounts.get(r.org)!;
      r.state = 'expired';
      account.available += r.amount;
      account.held -= r.amount;
    }
    return Math.min(limit, due.length);
  }

  reservationRows() {
    return [...this.reservations.values()].map(({ org, res, amount, state, charged }) => ({ org, res, amount, state, charged })).sort((a, b) => key(a.org, a.res).localeCompare(key(b.org, b.res)));
  }
}

async function expectDatabaseMatches(model: LedgerModel, where: string): Promise<void> {
  const orgs = [...model.accounts.keys()];
  expect(await accounts(orgs), `${where}: credit_accounts`).toEqual(Object.fromEntries(model.accounts));
  const { rows } = await owner.query<{ org: string; res: string; amount: string; state: string; charged: string }>(
    'SELECT org_id AS org, reservation_id AS res, amount, state, charged FROM nemo.reservations WHERE org_id = ANY($1::uuid[])',
    [orgs],
  );
  const actual = rows.map((r) => ({ org: r.org, res: r.res, amount: Number(r.amount), state: r.state, charged: Number(r.charged) })).sort((a, b) => key(a.org, a.res).localeCompare(key(b.org, b.res)));
  expect(actual, `${where}: reservations`).toEqual(model.reservationRows());
  await expectBooksBalance(where);
}

// --- scenarios: data generated by fast-check, interpreted against the database and the model ---

const GHOST = 3; // an org that does not exist
const orgIndex = fc.oneof({ weight: 15, arbitrary: fc.integer({ min: 0, max: 2 }) }, { weight: 1, arbitrary: fc.constant(GHOST) });
const reserveSpec = (reuseIds: boolean) =>
  fc.record({
    kind: fc.constant('reserve' as const),
    org: orgIndex,
    amount: fc.integer({ min: -5, max: 3000 }),
    min: fc.oneof(fc.integer({ min: -5, max: 20 }), fc.integer({ min: 0, max: 2500 })),
    /** An id reserved before (earlier in the run or the batch), as a retried batch would send. */
    reuse: reuseIds ? fc.option(fc.nat(), { freq: 2 }) : fc.constant(null),
  });
const closeSpec = fc.record({
  kind: fc.constantFrom('settle' as const, 'release' as const),
  /** A reservation open when the batch starts, any id sent before (closed, refused, or reserved in this batch), or one never sent. */
  target: fc.oneof(
    { weight: 6, arbitrary: fc.record({ open: fc.nat() }) },
    { weight: 3, arbitrary: fc.record({ sent: fc.nat() }) },
    { weight: 1, arbitrary: fc.constant(null) },
  ),
  charge: fc.oneof(fc.integer({ min: -50, max: 50 }), fc.integer({ min: 0, max: 3500 })),
  wrongOrg: fc.nat({ max: 9 }).map((n) => n === 0),
});
const idempotencyKey = fc.option(fc.constantFrom('k1', 'k2'), { freq: 4 });
const creditStep = fc.oneof(
  fc.record({ step: fc.constant('credit' as const), org: fc.integer({ min: 0, max: 2 }), kind: fc.constantFrom<CreditKind>('topup', 'refund'), amount: fc.integer({ min: 1, max: 5000 }), key: idempotencyKey }),
  fc.record({ step: fc.constant('credit' as const), org: fc.integer({ min: 0, max: 2 }), kind: fc.constant<CreditKind>('adjustment'), amount: fc.integer({ min: -4000, max: 3000 }), key: idempotencyKey }),
);
const expireStep = fc.record({ step: fc.constant('expire' as const), pick: fc.nat({ max: 0xffff }), limit: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constant(1000)) });
const scenario = (reuseIds: boolean) =>
  fc.record({
    initial: fc.tuple(fc.nat({ max: 6000 }), fc.nat({ max: 6000 }), fc.nat({ max: 6000 })),
    steps: fc.array(
      fc.oneof(
        { weight: 6, arbitrary: fc.record({ step: fc.constant('batch' as const), ops: fc.array(fc.oneof(reserveSpec(reuseIds), closeSpec), { minLength: 1, maxLength: 10, size: 'medium' }) }) },
        { weight: 3, arbitrary: creditStep },
        { weight: 1, arbitrary: expireStep },
      ),
      { minLength: 1, maxLength: 30, size: 'medium' },
    ),
  });
type Scenario = ReturnType<typeof scenario> extends fc.Arbitrary<infer S> ? S : never;
type BatchSpec = Extract<Scenario['steps'][number], { step: 'batch' }>['ops'][number];

async function runScenario({ initial, steps }: Scenario): Promise<void> {
  const orgs = [await newOrg(), await newOrg(), await newOrg()];
  const ghost = randomUUID();
  const orgAt = (i: number) => (i === GHOST ? ghost : orgs[i]!);
  const model = new LedgerModel(orgs);
  /** Every reservation id sent in this run, in order: targets for settles, releases and retries. */
  const sent: Array<{ org: string; res: string }> = [];
  try {
    for (const [i, amount] of initial.entries()) if (amount > 0) await applyCreditStep(model, { org: orgs[i]!, kind: 'topup', amount, key: 'initial' }, 'initial top-up');
    await expectDatabaseMatches(model, 'initial top-ups');
    for (const [n, step] of steps.entries()) {
      const where = `step ${n} (${step.step})`;
      if (step.step === 'batch') {
        const open = [...model.reservations.values()].filter((r) => r.state === 'reserved');
        const ops = step.ops.map((spec) => resolveOp(spec, orgAt, sent, open));
        const rows = await apply(ops);
        expect(rows, `${where}: ledger_apply(${JSON.stringify(ops)})`).toEqual(model.applyBatch(ops, rows));
      } else if (step.step === 'credit') {
        await applyCreditStep(model, { org: orgs[step.org]!, kind: step.kind, amount: step.amount, key: step.key }, where);
      } else {
        const due = model.markDue(step.pick);
        // As the owner, to simulate time: distinct instants in the past, so the expiry order is known.
        await owner.query(
          `UPDATE nemo.reservations r SET expires_at = timestamptz '2000-01-01 00:00:00+00' + u.seq * interval '1 second'
             FROM unnest($1::uuid[], $2::uuid[], $3::int[]) AS u(org, res, seq) WHERE r.org_id = u.org AND r.reservation_id = u.res`,
          [due.map((r) => r.org), due.map((r) => r.res), due.map((r) => r.dueSeq)],
        );
        const { rows } = await database.query<{ released: number }>('SELECT nemo.ledger_expire($1) AS released', [step.limit]);
        expect(rows[0]!.released, `${where}: ledger_expire(${step.limit}) released`).toBe(model.expire(step.limit));
      }
      await expectDatabaseMatches(model, where);
    }
  } finally {
    // Holds left due here would be the oldest for the next run's ledger_expire.
    await owner.query("UPDATE nemo.reservations SET expires_at = now() + interval '1 day' WHERE org_id = ANY($1::uuid[]) AND state = 'reserved'", [orgs]);
  }
}

function resolveOp(spec: BatchSpec, orgAt: (i: number) => string, sent: Array<{ org: string; res: string }>, open: readonly ModelReservation[]): ApplyOp {
  if (spec.kind === 'reserve') {
    const res = spec.reuse !== null && sent.length > 0 ? sent[spec.reuse % sent.length]!.res : randomUUID();
    const org = orgAt(spec.org);
    sent.push({ org, res });
    return { kind: 'reserve', org, res, amount: spec.amount, min: spec.min };
  }
  const t = spec.target;
  const target =
    t !== null && 'open' in t && open.length > 0 ? open[t.open % open.length]!
    : t !== null && sent.length > 0 ? sent[('open' in t ? t.open : t.sent) % sent.length]!
    : { org: orgAt(0), res: randomUUID() };
  // wrongOrg: the right reservation id under another org, which must not find it.
  const org = spec.wrongOrg ? (target.org === orgAt(0) ? orgAt(1) : orgAt(0)) : target.org;
  return { kind: spec.kind, org, res: target.res, amount: spec.charge, min: 0 };
}

async function applyCreditStep(model: LedgerModel, c: { org: string; kind: CreditKind; amount: number; key: string | null }, where: string): Promise<void> {
  const firstEntry = c.key === null ? undefined : model.creditEntry(c.org, c.kind, c.key);
  const expected = model.credit(c.org, c.kind, c.amount, c.key);
  const result = await credit(c.org, c.kind, c.amount, c.key);
  const what = `${where}: ledger_credit(${c.kind}, ${c.amount}, ${c.key})`;
  if (expected === 'refused') {
    expect(result, what).toEqual({ ok: false, code: CHECK_VIOLATION });
    return;
  }
  const account = model.accounts.get(c.org)!;
  expect(result, what).toEqual({ ok: true, entryId: firstEntry ?? expect.any(Number), created: expected === 'created', available: account.available, held: account.held });
  if (result.ok && expected === 'created') model.rememberCredit(c.org, c.kind, c.key, result.entryId);
}

describe('ledger functions against the model', () => {
  const params = (): fc.Parameters<[Scenario]> => ({
    numRuns: PROPERTY_RUNS,
    skipAllAfterTimeLimit: PROPERTY_BUDGET_MS,
    ...(PROPERTY_SEED === undefined ? {} : { seed: PROPERTY_SEED }),
  });

  it('agrees after every step: reserves, settles, releases, top-ups, adjustments and expiry', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    await fc.assert(fc.asyncProperty(scenario(false), runScenario), params());
  });

  it('agrees when reservation ids are retried, within a batch and across batches', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    await fc.assert(fc.asyncProperty(scenario(true), runScenario), params());
  });
});

// --- focused cases ---

const reserve = (org: string, res: string, amount: number, min = 1): ApplyOp => ({ kind: 'reserve', org, res, amount, min });
const settle = (org: string, res: string, charge: number): ApplyOp => ({ kind: 'settle', org, res, amount: charge, min: 0 });
const release = (org: string, res: string): ApplyOp => ({ kind: 'release', org, res, amount: 0, min: 0 });

async function ledgerRows(org: string, where = 'true', values: unknown[] = []): Promise<number> {
  const { rows } = await owner.query<{ n: number }>(`SELECT count(*)::int AS n FROM nemo.ledger_entries WHERE org_id = $1 AND ${where}`, [org, ...values]);
  return rows[0]!.n;
}

describe('idempotency', () => {
  it('charges a settle repeated in one batch once', async () => {
    const org = await newOrg(1000);
    const res = randomUUID();
    expect(await apply([reserve(org, res, 500)])).toEqual([{ op: 1, amount: 500 }]);
    // Which of the two answers is not specified; one does, with the charge.
    const rows = await apply([settle(org, res, 200), settle(org, res, 200)]);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.amount).toBe(200);
    expect(await accounts([org])).toEqual({ [org]: { available: 800, held: 0 } });
    expect(await ledgerRows(org, "kind = 'settle'")).toBe(1);
    await expectBooksBalance('settle twice in a batch');
  });

  it('charges a settle repeated in a later batch once, and ignores a release after it', async () => {
    const org = await newOrg(1000);
    const res = randomUUID();
    await apply([reserve(org, res, 500)]);
    expect(await apply([settle(org, res, 200)])).toEqual([{ op: 1, amount: 200 }]);
    expect(await apply([settle(org, res, 300)])).toEqual([]);
    expect(await apply([release(org, res)])).toEqual([]);
    expect(await accounts([org])).toEqual({ [org]: { available: 800, held: 0 } });
    expect(await ledgerRows(org, "kind IN ('settle', 'release')")).toBe(1);
    await expectBooksBalance('settle twice across batches');
  });

  it('holds and grants a reservation id reserved twice in one batch once', async () => {
    const org = await newOrg(1000);
    const res = randomUUID();
    const other = randomUUID();
    // The second op must not be reported granted (its caller would think it holds 400), nor eat
    // into the balance the third one needs.
    expect(await apply([reserve(org, res, 300), reserve(org, res, 400), reserve(org, other, 500, 500)])).toEqual([
      { op: 1, amount: 300 },
      { op: 3, amount: 500 },
    ]);
    expect(await accounts([org])).toEqual({ [org]: { available: 200, held: 800 } });
    await expectBooksBalance('reserve twice in a batch');
  });

  it('refuses a reservation id reserved again in a later batch without holding twice', async () => {
    const org = await newOrg(1000);
    const res = randomUUID();
    expect(await apply([reserve(org, res, 300)])).toEqual([{ op: 1, amount: 300 }]);
    expect(await apply([reserve(org, res, 300)])).toEqual([]);
    expect(await accounts([org])).toEqual({ [org]: { available: 700, held: 300 } });
    expect(await ledgerRows(org, "kind = 'reserve'")).toBe(1);
    await expectBooksBalance('reserve twice across batches');
  });

  it("does not let a retried reservation id use up the balance of the batch's other reserves", async () => {
    const org = await newOrg(1000);
    const res = randomUUID();
    await apply([reserve(org, res, 300)]);
    expect(await apply([reserve(org, res, 700, 700), reserve(org, randomUUID(), 700, 700)])).toEqual([{ op: 2, amount: 700 }]);
    expect(await accounts([org])).toEqual({ [org]: { available: 0, held: 1000 } });
  });

  it('credits a repeated top-up key once and answers with the first entry', async () => {
    const org = await newOrg();
    const first = await credit(org, 'topup', 1000, 'order-17');
    expect(first).toMatchObject({ ok: true, created: true, available: 1000, held: 0 });
    const entryId = first.ok ? first.entryId : -1;
    expect(await credit(org, 'topup', 1000, 'order-17')).toEqual({ ok: true, entryId, created: false, available: 1000, held: 0 });
    expect(await credit(org, 'topup', 5000, 'order-17')).toEqual({ ok: true, entryId, created: false, available: 1000, held: 0 });
    expect(await ledgerRows(org, 'idempotency_key = $2', ['order-17'])).toBe(1);
    await expectBooksBalance('repeated top-up');
  });

  it('refuses an adjustment that would make available negative, and changes nothing', async () => {
    const org = await newOrg(1000);
    await apply([reserve(org, randomUUID(), 600)]);
    const entries = await ledgerRows(org);
    expect(await credit(org, 'adjustment', -500, 'fix-1')).toEqual({ ok: false, code: CHECK_VIOLATION });
    expect(await accounts([org])).toEqual({ [org]: { available: 400, held: 600 } });
    expect(await ledgerRows(org)).toBe(entries);
    // The refused call did not use up its key.
    expect(await credit(org, 'adjustment', -400, 'fix-1')).toMatchObject({ ok: true, created: true, available: 0, held: 600 });
    await expectBooksBalance('refused adjustment');
  });
});

// --- the append-only ledger ---

async function attempt(client: pg.ClientBase, sql: string, values: unknown[], tenant: string | null = null): Promise<{ ok: true } | { ok: false; code: string; message: string }> {
  // Always rolled back: a write that wrongly succeeds must not damage the other tests' books.
  await client.query('BEGIN');
  try {
    if (tenant !== null) await client.query("SELECT set_config('nemo.org_id', $1, true)", [tenant]);
    await client.query(sql, values);
    return { ok: true };
  } catch (err) {
    return { ok: false, code: (err as pg.DatabaseError).code ?? 'none', message: (err as Error).message };
  } finally {
    await client.query('ROLLBACK');
  }
}

async function fingerprint(org: string): Promise<string> {
  const { rows } = await owner.query<{ d: string }>("SELECT count(*) || ':' || md5(coalesce(string_agg(to_jsonb(e)::text, '|' ORDER BY e.entry_id), '')) AS d FROM nemo.ledger_entries e WHERE org_id = $1", [org]);
  return rows[0]!.d;
}

describe('the ledger is append-only', () => {
  it('never lets the app role update, delete or truncate ledger rows, or write balances directly', async () => {
    const org = await newOrg(1000);
    await apply([reserve(org, randomUUID(), 100)]);
    const before = await fingerprint(org);
    const app = await database.pool.connect();
    try {
      for (const sql of [
        "UPDATE nemo.ledger_entries SET note = 'x' WHERE org_id = $1",
        'UPDATE nemo.ledger_entries SET available_delta = available_delta * 2 WHERE org_id = $1',
        'DELETE FROM nemo.ledger_entries WHERE org_id = $1',
        'TRUNCATE nemo.ledger_entries',
        'UPDATE nemo.credit_accounts SET available = available + 1 WHERE org_id = $1',
        "UPDATE nemo.reservations SET state = 'released' WHERE org_id = $1",
        'DELETE FROM nemo.reservations WHERE org_id = $1',
      ]) {
        for (const tenant of [null, org]) {
          const outcome = await attempt(app, sql, sql.includes('$1') ? [org] : [], tenant);
          expect.soft(outcome, `${sql} as ${APP_ROLE} (tenant ${tenant ?? 'unset'})`).toMatchObject({ ok: false, code: INSUFFICIENT_PRIVILEGE });
        }
      }
    } finally {
      app.release();
    }
    expect(await fingerprint(org)).toBe(before);
  });

  it("refuses even the owner's UPDATE, DELETE and TRUNCATE by the trigger", async () => {
    const org = await newOrg(1000);
    await apply([reserve(org, randomUUID(), 100)]);
    const before = await fingerprint(org);
    for (const [sql, op] of [
      ['UPDATE nemo.ledger_entries SET available_delta = 0 WHERE org_id = $1', 'UPDATE'],
      ['DELETE FROM nemo.ledger_entries WHERE org_id = $1', 'DELETE'],
      ['TRUNCATE nemo.ledger_entries', 'TRUNCATE'],
    ] as const) {
      const outcome = await attempt(owner, sql, sql.includes('$1') ? [org] : []);
      expect.soft(outcome, `${sql} as the owner`).toEqual({ ok: false, code: INSUFFICIENT_PRIVILEGE, message: `nemo.ledger_entries is append-only (${op} refused)` });
    }
    expect(await fingerprint(org)).toBe(before);
  });
});

// --- concurrency ---

describe('concurrent batches', () => {
  it('finish without deadlock, balance the books and never grant more than the top-up (20 connections, 5 orgs)', async () => {
    const TOPUP = 20_000;
    const seed = Date.now() >>> 0;
    const random = seededRandom(seed);
    const orgs = await Promise.all(Array.from({ length: 5 }, () => newOrg(TOPUP)));
    const url = new URL(testDb.url);
    const clients = Array.from({ length: 20 }, () => new pg.Client({ host: url.hostname, port: Number(url.port || 5432), database: testDb.name, user: APP_ROLE, password: TEST_APP_PASSWORD }));
    await Promise.all(clients.map((c) => c.connect()));
    try {
      let holds: ApplyOp[] = [];
      // Round 1 only reserves; round 2 also settles or releases every hold of round 1.
      for (const round of [1, 2]) {
        const closing = holds;
        const batches = clients.map((_, i) => {
          const ops: ApplyOp[] = [];
          for (const org of orgs) for (let n = 1 + Math.floor(random() * 3); n > 0; n--) ops.push(reserve(org, randomUUID(), 200 + Math.floor(random() * 1800), 1 + Math.floor(random() * 200)));
          for (const hold of closing.filter((_, h) => h % clients.length === i)) ops.push(random() < 0.5 ? settle(hold.org, hold.res, Math.floor(random() * hold.amount)) : release(hold.org, hold.res));
          return ops.map((op) => ({ op, sortKey: random() })).sort((a, b) => a.sortKey - b.sortKey).map(({ op }) => op);
        });
        const results = await Promise.allSettled(batches.map((ops, i) => apply(ops, clients[i]!)));
        const failures = results.flatMap((r) => (r.status === 'rejected' ? [`${(r.reason as pg.DatabaseError).code}: ${(r.reason as Error).message}`] : []));
        expect(failures.length, `round ${round} (seed ${seed}): ${failures.slice(0, 3).join('; ')}`).toBe(0);

        holds = [];
        const closed = new Set<string>();
        results.forEach((result, i) => {
          for (const row of (result as PromiseFulfilledResult<ApplyRow[]>).value) {
            const op = batches[i]![row.op - 1]!;
            if (op.kind === 'reserve') holds.push({ ...op, amount: row.amount });
            else closed.add(op.res);
          }
        });
        expect(closed.size, `round ${round}: every hold of the round before closed once`).toBe(closing.length);
        await expectBooksBalance(`round ${round} (seed ${seed})`);
        const { rows } = await owner.query<{ org_id: string; charged: string }>('SELECT org_id, sum(charged) AS charged FROM nemo.ledger_entries WHERE org_id = ANY($1::uuid[]) GROUP BY org_id', [orgs]);
        const charged = new Map(rows.map((r) => [r.org_id, Number(r.charged)]));
        const balances = await accounts(orgs);
        for (const org of orgs) {
          const granted = holds.filter((h) => h.org === org).reduce((sum, h) => sum + h.amount, 0);
          expect({ granted, available: balances[org]!.available, charged: charged.get(org)! }, `org ${org} after round ${round} (seed ${seed})`).toEqual({
            granted: balances[org]!.held,
            available: TOPUP - charged.get(org)! - granted,
            charged: charged.get(org)!,
          });
          expect(granted, `org ${org}: granted in round ${round}`).toBeLessThanOrEqual(TOPUP - charged.get(org)!);
        }
      }
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    }
  });
});
