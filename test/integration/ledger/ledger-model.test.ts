// The ledger's batch functions as the gateway calls them (nemo.ledger_apply_v4, which is
// nemo.ledger_apply_v3 plus the usage each settle and charge was priced from, v3 being
// nemo.ledger_apply_v2 plus credit leases, and nemo.ledger_expire_v2; migrations 0002, 0004, 0008
// and 0012) against a model (ledger-model-rules.ts): random batches of reserve/admit/settle/release over
// keys and teams with spend caps and rate limits, and of credit leases (grants, charges against
// them, trims and closes, recalls of leased funds with their NOTIFY), top-ups, expiry, crashed lease
// holders, limit changes, keys moving between teams and time passing, compared with the model after
// every step (answers, balances, reservations, limit windows, ledger_check and
// limit_windows_check, the usage on every settle row); idempotency of each money
// operation; the append-only ledger; and concurrent batches that must neither deadlock nor
// overspend a balance or a cap. LEDGER_PROPERTY_RUNS=500 for a long run;
// LEDGER_PROPERTY_SEED=<seed from a failure> replays one; LEDGER_APPLY=v3 runs it all on
// ledger_apply_v3 (what instances of the previous release call).
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { APP_ROLE, openDatabase, type Database } from '../../../src/db/database.js';
import { CHECK_VIOLATION, INSUFFICIENT_PRIVILEGE } from '../../../src/db/sqlstate.js';
import { AdminService } from '../../../src/tenancy/admin-service.js';
import { seededRandom } from '../../support/seeded-random.js';
import { appRoleConnection, createTestDatabase, migrateTestDatabase, testDatabaseConfig, type TestDatabase } from '../../support/test-database.js';
import {
  LedgerModel, reservationKey, type ApplyOp, type ApplyRow, type CreditKind, type Instant, type Limits, type ModelReservation, type Refusal, type TimeShift, type WindowRow,
} from './ledger-model-rules.js';

const PROPERTY_RUNS = Number(process.env.LEDGER_PROPERTY_RUNS ?? 25);
const PROPERTY_SEED = process.env.LEDGER_PROPERTY_SEED === undefined ? undefined : Number(process.env.LEDGER_PROPERTY_SEED);
/** Runs plus shrinking a failure: runs skipped past it fail the test, and shrinking stops there (the seed replays it). */
const PROPERTY_BUDGET_MS = Math.max(15_000, PROPERTY_RUNS * 1000);
const PROPERTY_TIMEOUT_MS = PROPERTY_BUDGET_MS + 10_000;
const TTL_MS = 3_600_000;
/** The batch function under test: v4 (the gateway's), or v3 (LEDGER_APPLY=v3), which records no usage. */
const APPLY_V3 = process.env.LEDGER_APPLY === 'v3';

type CreditResult = { ok: true; entryId: number; created: boolean; available: number; held: number } | { ok: false; code: string };

let testDb: TestDatabase;
let database: Database;
let admin: AdminService;
let owner: pg.Client;
/** The app role's connection the scenarios' batches run on: it listens for lease recalls. */
let batches: pg.Client;
const recalls: string[] = [];

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateTestDatabase(testDb);
  database = await openDatabase(testDatabaseConfig(testDb), { migrate: false });
  admin = new AdminService(database, new Set());
  owner = new pg.Client({ connectionString: testDb.url, application_name: 'ledger-model-owner' });
  await owner.connect();
  batches = new pg.Client(appRoleConnection(testDb));
  await batches.connect();
  // A session hears its own NOTIFY at commit, before the call's answer: the batch's recalls are in by then.
  batches.on('notification', (n) => recalls.push(n.payload ?? ''));
  await batches.query('LISTEN nemo_lease_recall');
});

afterAll(async () => {
  await owner?.end().catch(() => undefined);
  await batches?.end().catch(() => undefined);
  await database?.close();
  await testDb?.drop();
});

// --- the database side: the functions as the app role calls them, the state as the owner sees it ---

async function newOrg(topup = 0): Promise<string> {
  const org = await admin.createOrg({ kind: 'platform' }, { name: 'ledger model' });
  if (topup > 0) await credit(org.id, 'topup', topup, `initial ${randomUUID()}`);
  return org.id;
}

const NO_LIMITS: Limits = { rpm: null, tpm: null, day: null, month: null };
const LIMIT_COLUMNS = { rpm: 'rpm_limit', tpm: 'tpm_limit', day: 'daily_spend_cap_micros', month: 'monthly_spend_cap_micros' } as const;

/** A team with limits, as the owner (the admin API's checks are not under test here). */
async function newTeam(org: string, limits: Limits = NO_LIMITS): Promise<string> {
  const team = randomUUID();
  await owner.query(
    'INSERT INTO nemo.teams (org_id, team_id, name, rpm_limit, tpm_limit, daily_spend_cap_micros, monthly_spend_cap_micros) VALUES ($1, $2, $3, $4, $5, $6, $7)',
    [org, team, `team ${team}`, limits.rpm, limits.tpm, limits.day, limits.month],
  );
  return team;
}

/** A key with limits, in a team or none, as the owner. */
async function newKey(org: string, team: string | null, limits: Limits = NO_LIMITS): Promise<string> {
  const key = randomUUID();
  await owner.query(
    `INSERT INTO nemo.api_keys (org_id, key_id, team_id, name, role, key_hash, key_prefix, created_by, rpm_limit, tpm_limit, daily_spend_cap_micros, monthly_spend_cap_micros)
     VALUES ($1, $2::uuid, $3, 'ledger model', 'member', sha256(convert_to($2::text, 'UTF8')), 'nr-model', 'platform', $4, $5, $6, $7)`,
    [org, key, team, limits.rpm, limits.tpm, limits.day, limits.month],
  );
  return key;
}

async function setLimit(table: 'api_keys' | 'teams', org: string, id: string, field: keyof Limits, value: number | null): Promise<void> {
  const idColumn = table === 'api_keys' ? 'key_id' : 'team_id';
  await owner.query(`UPDATE nemo.${table} SET ${LIMIT_COLUMNS[field]} = $3 WHERE org_id = $1 AND ${idColumn} = $2`, [org, id, value]);
}

type UsageParts = readonly [prompt: number | null, completion: number | null, cached: number | null, cacheWrite: number | null, reasoning: number | null, images: number | null];
const NO_USAGE: UsageParts = [null, null, null, null, null, null];

/**
 * The usage every op is sent with, a function of its id (a settle's hold, a charge's own id), so
 * that any settle row tells what it should record; one id in 16 sends none (an unknown usage).
 */
function usageOf(res: string): UsageParts {
  if (res.startsWith('0')) return NO_USAGE;
  const prompt = parseInt(res.slice(0, 4), 16);
  const completion = parseInt(res.slice(4, 8), 16);
  return [prompt, completion, prompt >> 2, prompt >> 3, completion >> 1, parseInt(res.slice(9, 10), 16) % 3];
}

const applyValues = (ops: readonly ApplyOp[]) => [
  ops.map((o) => o.kind), ops.map((o) => o.org), ops.map((o) => o.res), ops.map((o) => o.lease ?? null), ops.map((o, i) => (o.kind === 'lease' ? o.holder ?? null : `request ${i}`)), ops.map((o) => o.key),
  ops.map((o) => o.amount), ops.map((o) => o.min), ops.map((o) => o.tokens), ops.map(() => null),
  ...(APPLY_V3 ? [] : [0, 1, 2, 3, 4, 5].map((part) => ops.map((o) => usageOf(o.res)[part]))),
  TTL_MS, TTL_MS,
];
const APPLY_SQL = APPLY_V3
  ? `SELECT op, amount, refusal FROM nemo.ledger_apply_v3($1::text[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::uuid[],
  $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::integer, $12::integer)`
  : `SELECT op, amount, refusal FROM nemo.ledger_apply_v4($1::text[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::uuid[],
  $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[],
  $17::integer, $18::integer)`;
/** The database's clock now, truncated (UTC) to the minute, day and month. */
const CLOCK_SQL = `
  SELECT (extract(epoch FROM date_trunc('minute', t, 'UTC')) * 1000)::float8 AS minute,
         (extract(epoch FROM date_trunc('day', t, 'UTC')) * 1000)::float8 AS day,
         (extract(epoch FROM date_trunc('month', t, 'UTC')) * 1000)::float8 AS month
  FROM (SELECT clock_timestamp() AS t) c`;

/**
 * One ledger_apply_v2 call as nemo_app: its rows, and the database clock read just before and just after it. The batch reads its windows at a moment
 * between the two (once it holds its locks), so `before` and `after` are the only windows it can
 * have used; they differ only when a minute ended during the call.
 */
async function applyAt(ops: readonly ApplyOp[]): Promise<{ rows: ApplyRow[]; before: Instant; after: Instant; recalled: string[] }> {
  const before = (await database.query<Instant>(CLOCK_SQL)).rows[0]!;
  recalls.length = 0;
  const rows = await apply(ops, batches);
  const recalled = [...new Set(recalls)].sort();
  const after = (await database.query<Instant>(CLOCK_SQL)).rows[0]!;
  return { rows, before, after, recalled };
}

/** One ledger_apply_v2 call as nemo_app (the app pool, or a given connection), as the batched writer makes it. */
async function apply(ops: readonly ApplyOp[], client?: pg.ClientBase): Promise<ApplyRow[]> {
  const values = applyValues(ops);
  type Row = { op: number; amount: string; refusal: Refusal | null };
  const { rows } = client === undefined ? await database.query<Row>(APPLY_SQL, values) : await client.query<Row>(APPLY_SQL, values);
  return rows.map((r) => ({ op: r.op, amount: Number(r.amount), refusal: r.refusal })).sort((a, b) => a.op - b.op);
}

async function expire(limit: number): Promise<number> {
  const { rows } = await database.query<{ released: number }>('SELECT nemo.ledger_expire_v2($1) AS released', [limit]);
  return rows[0]!.released;
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

async function limitWindows(orgs: readonly string[]): Promise<WindowRow[]> {
  const { rows } = await owner.query<WindowRow>(
    `SELECT org_id AS org, scope_id AS scope, period, (extract(epoch FROM window_start) * 1000)::float8 AS start,
            requests::float8 AS requests, tokens::float8 AS tokens, spent_micros::float8 AS spent
     FROM nemo.limit_windows WHERE org_id = ANY($1::uuid[])`,
    [orgs],
  );
  return rows.sort((a, b) => `${a.org}/${a.scope}/${a.period}`.localeCompare(`${b.org}/${b.scope}/${b.period}`));
}

async function expectBooksBalance(where: string): Promise<void> {
  const { rows } = await database.query('SELECT * FROM nemo.ledger_check()');
  expect(rows, `${where}: nemo.ledger_check() found accounts out of balance`).toEqual([]);
  const negative = await owner.query('SELECT org_id FROM nemo.credit_accounts WHERE available < 0 OR held < 0');
  expect(negative.rows, `${where}: negative balances`).toEqual([]);
  const windows = await database.query('SELECT * FROM nemo.limit_windows_check()');
  expect(windows.rows, `${where}: nemo.limit_windows_check() found spend windows out of step with their reservations`).toEqual([]);
}

async function reservationsOf(orgs: readonly string[]) {
  const { rows } = await owner.query<{ org: string; res: string; kind: string; holder: string | null; trimmed: boolean; key: string | null; team: string | null; amount: string; state: string; charged: string; counted: number; created_day: number; created_month: number }>(
    `SELECT org_id AS org, reservation_id AS res, kind, CASE WHEN kind = 'lease' THEN request_id END AS holder, trimmed_at IS NOT NULL AS trimmed,
            key_id AS key, team_id AS team, amount, state, charged, counted_windows AS counted,
            CASE WHEN kind = 'lease' THEN 0 ELSE (extract(epoch FROM date_trunc('day', created_at, 'UTC')) * 1000)::float8 END AS created_day,
            CASE WHEN kind = 'lease' THEN 0 ELSE (extract(epoch FROM date_trunc('month', created_at, 'UTC')) * 1000)::float8 END AS created_month
     FROM nemo.reservations WHERE org_id = ANY($1::uuid[])`,
    [orgs],
  );
  return rows
    .map((r) => ({
      org: r.org, res: r.res, kind: r.kind, holder: r.holder, trimmed: r.trimmed, key: r.key, team: r.team, amount: Number(r.amount), state: r.state, charged: Number(r.charged),
      counted: r.counted, createdDay: r.created_day, createdMonth: r.created_month,
    }))
    .sort((a, b) => reservationKey(a.org, a.res).localeCompare(reservationKey(b.org, b.res)));
}

/**
 * Settle rows (a request's hold settled, or a charge against a lease) that do not record the usage
 * their op was sent with, and release rows that record any: none when all is well.
 */
async function misrecordedUsage(orgs: readonly string[]): Promise<unknown[]> {
  const { rows } = await owner.query<{ kind: string; id: string; parts: Array<string | null> }>(
    `SELECT kind, coalesce(idempotency_key, reservation_id::text) AS id,
            ARRAY[prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, images]::text[] AS parts
     FROM nemo.ledger_entries WHERE org_id = ANY($1::uuid[]) AND kind IN ('settle', 'release')`,
    [orgs],
  );
  return rows.filter((r) => {
    const expected = r.kind === 'settle' && !APPLY_V3 ? usageOf(r.id) : NO_USAGE;
    return !isDeepStrictEqual(r.parts.map((p) => (p === null ? null : Number(p))), [...expected]);
  });
}

async function expectDatabaseMatches(model: LedgerModel, where: string): Promise<void> {
  const orgs = [...model.accounts.keys()];
  expect(await accounts(orgs), `${where}: credit_accounts`).toEqual(Object.fromEntries(model.accounts));
  expect(await reservationsOf(orgs), `${where}: reservations`).toEqual(model.reservationRows());
  expect(await limitWindows(orgs), `${where}: limit_windows`).toEqual(model.windowRows());
  expect(await misrecordedUsage(orgs), `${where}: settle rows whose usage is not their op's`).toEqual([]);
  await expectBooksBalance(where);
}

// --- scenarios: data generated by fast-check, interpreted against the database and the model ---

const ORGS = 3;
const GHOST = 3; // an org that does not exist
/** Per org: keys 0 (no team), 1 and 2 (team 0), 3 (team 1); the key an op names may also be none, another org's, or unknown. */
const KEYS_PER_ORG = 4;
const TEAMS_PER_ORG = 2;
const INITIAL_TEAM = [null, 0, 0, 1] as const;
const NO_KEY = 4;
const FOREIGN_KEY = 5;
const UNKNOWN_KEY = 6;

const orgIndex = fc.oneof({ weight: 15, arbitrary: fc.integer({ min: 0, max: ORGS - 1 }) }, { weight: 1, arbitrary: fc.constant(GHOST) });
/** Most requests on key 1, so its windows and its team's fill up and their caps come into play. */
const keyIndex = fc.oneof(
  { weight: 8, arbitrary: fc.constant(1) },
  { weight: 8, arbitrary: fc.integer({ min: 0, max: KEYS_PER_ORG - 1 }) },
  { weight: 1, arbitrary: fc.constantFrom(NO_KEY, FOREIGN_KEY, UNKNOWN_KEY) },
);
/**
 * Two profiles. mixed: tight balances and limits of every kind, small and large, so that each
 * refusal reason comes up. caps: ample balances, spend caps of a few requests' worth, few rate
 * limits, and keys squeezed often, so that reserves run into caps spent in part, in full and beyond.
 */
type Profile = 'mixed' | 'caps';
/** Limits that bind often against amounts of up to 3000, balances of a few thousand and up to 120 tokens a request. */
const limitValue = {
  rpm: fc.integer({ min: 1, max: 8 }),
  tpm: fc.integer({ min: 1, max: 500 }),
  day: fc.oneof(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 6000 })),
  month: fc.oneof(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 9000 })),
};
const limits = (profile: Profile): fc.Arbitrary<Limits> =>
  profile === 'mixed'
    ? fc.record({
        rpm: fc.option(limitValue.rpm, { freq: 2 }),
        tpm: fc.option(limitValue.tpm, { freq: 2 }),
        day: fc.option(limitValue.day, { freq: 2 }),
        month: fc.option(limitValue.month, { freq: 2 }),
      })
    : fc.record({
        rpm: fc.option(fc.integer({ min: 5, max: 30 }), { freq: 8 }),
        tpm: fc.option(fc.integer({ min: 200, max: 3000 }), { freq: 8 }),
        day: fc.option(fc.integer({ min: 1000, max: 20_000 }), { freq: 5 }),
        month: fc.option(fc.integer({ min: 1000, max: 30_000 }), { freq: 5 }),
      });
const requestSpec = (reuseIds: boolean, profile: Profile) =>
  fc.record({
    kind: fc.oneof({ weight: 3, arbitrary: fc.constant('reserve' as const) }, { weight: 1, arbitrary: fc.constant('admit' as const) }),
    org: orgIndex,
    key: keyIndex,
    /** An admit's amount and minimum mean nothing: sent anyway, they must be ignored. */
    amount: profile === 'mixed' ? fc.integer({ min: -5, max: 3000 }) : fc.integer({ min: 1, max: 3000 }),
    min: profile === 'mixed' ? fc.oneof(fc.integer({ min: -5, max: 20 }), fc.integer({ min: 0, max: 2500 })) : fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 1000 })),
    tokens: fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 120 })),
    /** An id reserved or admitted before (earlier in the run or the batch), as a retried batch would send. */
    reuse: reuseIds ? fc.option(fc.nat(), { freq: 2 }) : fc.constant(null),
  });
const closeSpec = fc.record({
  kind: fc.constantFrom('settle' as const, 'release' as const),
  /** A reservation open when the batch starts, any id sent before (closed, refused, admitted, or reserved in this batch), or one never sent. */
  target: fc.oneof(
    { weight: 6, arbitrary: fc.record({ open: fc.nat() }) },
    { weight: 3, arbitrary: fc.record({ sent: fc.nat() }) },
    { weight: 1, arbitrary: fc.constant(null) },
  ),
  charge: fc.oneof(fc.integer({ min: -50, max: 50 }), fc.integer({ min: 0, max: 3500 })),
  wrongOrg: fc.nat({ max: 9 }).map((n) => n === 0),
});
/** Credit leases: a lease open when the batch starts, any lease id sent before, or one never sent. */
const leaseTarget = fc.oneof(
  { weight: 6, arbitrary: fc.record({ open: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ sent: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant(null) },
);
/** Instances holding leases; a crash replaces one with a new instance. */
const HOLDERS = 3;
const leaseSpec = fc.record({
  kind: fc.constant('lease' as const),
  org: orgIndex,
  holder: fc.nat({ max: HOLDERS - 1 }),
  amount: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 4000 }) }, { weight: 1, arbitrary: fc.integer({ min: -5, max: 20_000 }) }),
  min: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: -5, max: 20 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 2500 }) }),
  /** A lease id granted or asked for before (a retried batch): never granted twice. */
  reuse: fc.option(fc.nat(), { freq: 6 }),
});
const chargeSpec = fc.record({
  kind: fc.constant('charge' as const),
  target: leaseTarget,
  key: fc.oneof(fc.integer({ min: 0, max: KEYS_PER_ORG - 1 }), fc.constant(NO_KEY)),
  amount: fc.oneof(fc.integer({ min: -50, max: 50 }), fc.integer({ min: 0, max: 3000 })),
  /** A charge sent before, sent again (a retried batch): charged once. */
  reuse: fc.option(fc.nat(), { freq: 5 }),
  wrongOrg: fc.nat({ max: 9 }).map((n) => n === 0),
});
/** keep 0 closes the lease; more trims it (a recall, or a retired lease whose requests still run). */
const returnSpec = fc.record({
  kind: fc.constant('lease_return' as const),
  target: leaseTarget,
  keep: fc.oneof(fc.constant(0), fc.integer({ min: -5, max: 3000 })),
  wrongOrg: fc.nat({ max: 9 }).map((n) => n === 0),
});
/** An instance dies: its leases are left to expire (the sweeper), and a new instance takes its place. */
const crashStep = fc.record({ step: fc.constant('crash' as const), holder: fc.nat({ max: HOLDERS - 1 }) });
const idempotencyKey = fc.option(fc.constantFrom('k1', 'k2'), { freq: 4 });
const creditStep = fc.oneof(
  fc.record({ step: fc.constant('credit' as const), org: fc.integer({ min: 0, max: ORGS - 1 }), kind: fc.constantFrom<CreditKind>('topup', 'refund'), amount: fc.integer({ min: 1, max: 5000 }), key: idempotencyKey }),
  fc.record({ step: fc.constant('credit' as const), org: fc.integer({ min: 0, max: ORGS - 1 }), kind: fc.constant<CreditKind>('adjustment'), amount: fc.integer({ min: -4000, max: 3000 }), key: idempotencyKey }),
);
const expireStep = fc.record({ step: fc.constant('expire' as const), pick: fc.nat({ max: 0xffff }), limit: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constant(1000)) });
/** A key's or a team's limit set, changed or cleared: ledger_apply_v2 reads them at every batch. */
const limitStep = fc.oneof(
  ...(['rpm', 'tpm', 'day', 'month'] as const).map((field) =>
    fc.record({
      step: fc.constant('limit' as const),
      org: fc.integer({ min: 0, max: ORGS - 1 }),
      scope: fc.oneof(fc.record({ key: fc.integer({ min: 0, max: KEYS_PER_ORG - 1 }) }), fc.record({ team: fc.integer({ min: 0, max: TEAMS_PER_ORG - 1 }) })),
      field: fc.constant(field),
      value: fc.option(limitValue[field], { freq: 3 }),
    }),
  ),
);
/**
 * Squeezing a key: the day and month caps of a key that spent (if any) and of its team at once,
 * each a percentage of what its window holds, often below it, so that several caps are exceeded
 * together.
 */
const capPercent = fc.option(fc.integer({ min: 0, max: 150 }), { freq: 4 });
const capsStep = fc.record({ step: fc.constant('caps' as const), pick: fc.nat(), caps: fc.tuple(capPercent, capPercent, capPercent, capPercent) });
/** A key moves to another team of its org, or out of any: its open holds stay counted in the team they were made in. */
const teamStep = fc.record({ step: fc.constant('team' as const), org: fc.integer({ min: 0, max: ORGS - 1 }), key: fc.integer({ min: 0, max: KEYS_PER_ORG - 1 }), team: fc.option(fc.integer({ min: 0, max: TEAMS_PER_ORG - 1 }), { freq: 3 }) });
/** Time passes: new minute windows, new day (and minute) windows, or new windows of every period. */
const timeStep = fc.record({ step: fc.constant('time' as const), shift: fc.constantFrom<TimeShift>('minute', 'day', 'epoch') });
/** Tight balances, where funds refuse often, or ample ones, where the caps and limits decide. */
const initialTopup = (profile: Profile) => (profile === 'mixed' ? fc.oneof(fc.nat({ max: 6000 }), fc.nat({ max: 40_000 })) : fc.integer({ min: 30_000, max: 200_000 }));
const batchOp = (reuseIds: boolean, profile: Profile, leases: boolean) =>
  leases
    ? fc.oneof(
        { weight: 2, arbitrary: requestSpec(reuseIds, profile) },
        { weight: 1, arbitrary: closeSpec },
        { weight: 2, arbitrary: leaseSpec },
        { weight: 5, arbitrary: chargeSpec },
        { weight: 1, arbitrary: returnSpec },
      )
    : fc.oneof({ weight: 3, arbitrary: requestSpec(reuseIds, profile) }, { weight: 2, arbitrary: closeSpec });
const scenario = (reuseIds: boolean, profile: Profile, leases = false) =>
  fc.record({
    initial: fc.tuple(initialTopup(profile), initialTopup(profile), initialTopup(profile)),
    /** An org whose keys and teams start with no limit at all: its batches take the set-based path while its balance covers them. */
    plainOrg: fc.option(fc.integer({ min: 0, max: ORGS - 1 }), { freq: 2 }),
    keyLimits: fc.array(limits(profile), { minLength: ORGS * KEYS_PER_ORG, maxLength: ORGS * KEYS_PER_ORG }),
    teamLimits: fc.array(limits(profile), { minLength: ORGS * TEAMS_PER_ORG, maxLength: ORGS * TEAMS_PER_ORG }),
    steps: fc.array(
      fc.oneof(
        { weight: 12, arbitrary: fc.record({ step: fc.constant('batch' as const), ops: fc.array(batchOp(reuseIds, profile, leases), { minLength: 1, maxLength: 10, size: 'medium' }) }) },
        { weight: profile === 'mixed' ? 4 : 1, arbitrary: creditStep },
        { weight: 2, arbitrary: expireStep },
        { weight: profile === 'mixed' ? 4 : 1, arbitrary: limitStep },
        { weight: profile === 'mixed' ? 2 : 5, arbitrary: capsStep },
        { weight: 1, arbitrary: teamStep },
        { weight: 2, arbitrary: timeStep },
        { weight: leases ? 3 : 0, arbitrary: crashStep },
      ),
      { minLength: 1, maxLength: 40, size: 'medium' },
    ),
  });
type Scenario = ReturnType<typeof scenario> extends fc.Arbitrary<infer S> ? S : never;
type BatchSpec = Extract<Scenario['steps'][number], { step: 'batch' }>['ops'][number];

/** The run's orgs, keys and teams, by the indexes the generated steps use. */
interface World {
  orgs: string[];
  ghost: string;
  keys: string[][];
  teams: string[][];
  unknownKey: string;
  /** The instances holding leases now ('lease:<uuid>'), by the index the steps use. */
  holders: string[];
  /** Every lease id and charge sent in this run, in order: targets for charges, returns and retries. */
  leases: Array<{ org: string; res: string }>;
  charges: ApplyOp[];
}

async function runScenario({ initial, plainOrg, keyLimits, teamLimits, steps }: Scenario): Promise<void> {
  const orgs = [await newOrg(), await newOrg(), await newOrg()];
  const model = new LedgerModel(orgs);
  const world: World = { orgs, ghost: randomUUID(), keys: [], teams: [], unknownKey: randomUUID(), holders: Array.from({ length: HOLDERS }, () => `lease:${randomUUID()}`), leases: [], charges: [] };
  for (const [o, org] of orgs.entries()) {
    const teams: string[] = [];
    for (let t = 0; t < TEAMS_PER_ORG; t++) {
      const initialLimits = o === plainOrg ? NO_LIMITS : teamLimits[o * TEAMS_PER_ORG + t]!;
      const team = await newTeam(org, initialLimits);
      model.teams.set(team, { org, ...initialLimits });
      teams.push(team);
    }
    const keys: string[] = [];
    for (let k = 0; k < KEYS_PER_ORG; k++) {
      const initialLimits = o === plainOrg ? NO_LIMITS : keyLimits[o * KEYS_PER_ORG + k]!;
      const teamIndex = INITIAL_TEAM[k] ?? null;
      const team = teamIndex === null ? null : teams[teamIndex]!;
      const key = await newKey(org, team, initialLimits);
      model.keys.set(key, { org, team, ...initialLimits });
      keys.push(key);
    }
    world.teams.push(teams);
    world.keys.push(keys);
  }
  /** Every reservation id sent in this run (reserves and admits), in order: targets for settles, releases and retries. */
  const sent: Array<{ org: string; res: string; key: string | null }> = [];
  try {
    for (const [i, amount] of initial.entries()) if (amount > 0) await applyCreditStep(model, { org: orgs[i]!, kind: 'topup', amount, key: 'initial' }, 'initial top-up');
    await expectDatabaseMatches(model, 'initial top-ups');
    for (const [n, step] of steps.entries()) {
      const where = `step ${n} (${step.step})`;
      if (step.step === 'batch') {
        const open = [...model.reservations.values()].filter((r) => r.state === 'reserved');
        const [holds, leases] = [open.filter((r) => r.kind === 'request'), open.filter((r) => r.kind === 'lease')];
        const ops = step.ops.map((spec) => resolveOp(spec, world, sent, holds, leases));
        const { rows, before, after, recalled } = await applyAt(ops);
        let now = before;
        if (!isDeepStrictEqual(before, after)) {
          // A minute ended during the call: the batch used one of the two windows, the one whose
          // outcome the database shows (where both give the same outcome, either will do).
          const [reservations, windows] = [await reservationsOf(orgs), await limitWindows(orgs)];
          now = [before, after].find((at) => {
            const trial = model.clone();
            return isDeepStrictEqual(trial.applyBatch(ops, rows, at), rows) && isDeepStrictEqual(trial.reservationRows(), reservations) && isDeepStrictEqual(trial.windowRows(), windows);
          }) ?? before;
        }
        const expected = model.applyV3(ops, rows, now);
        expect(rows, `${where}: ledger_apply_${APPLY_V3 ? 'v3' : 'v4'}(${JSON.stringify(ops)}) at ${JSON.stringify(now)}`).toEqual(expected.rows);
        expect(recalled, `${where}: orgs recalled (NOTIFY nemo_lease_recall)`).toEqual(expected.recalled);
      } else if (step.step === 'credit') {
        await applyCreditStep(model, { org: orgs[step.org]!, kind: step.kind, amount: step.amount, key: step.key }, where);
      } else if (step.step === 'expire') {
        const due = model.markDue(step.pick);
        // As the owner, to simulate time: distinct instants in the past, so the expiry order is known.
        await owner.query(
          `UPDATE nemo.reservations r SET expires_at = timestamptz '2000-01-01 00:00:00+00' + u.seq * interval '1 second'
             FROM unnest($1::uuid[], $2::uuid[], $3::int[]) AS u(org, res, seq) WHERE r.org_id = u.org AND r.reservation_id = u.res`,
          [due.map((r) => r.org), due.map((r) => r.res), due.map((r) => r.dueSeq)],
        );
        expect(await expire(step.limit), `${where}: ledger_expire_v2(${step.limit}) released`).toBe(model.expire(step.limit));
      } else if (step.step === 'crash') {
        // Its leases stop being renewed: past their TTL the sweeper expires them, each returning amount - charged.
        const due = model.markHolderDue(world.holders[step.holder]!);
        await owner.query(
          `UPDATE nemo.reservations r SET expires_at = timestamptz '2000-01-01 00:00:00+00' + u.seq * interval '1 second'
             FROM unnest($1::uuid[], $2::uuid[], $3::int[]) AS u(org, res, seq) WHERE r.org_id = u.org AND r.reservation_id = u.res`,
          [due.map((r) => r.org), due.map((r) => r.res), due.map((r) => r.dueSeq)],
        );
        expect(await expire(1000), `${where}: ledger_expire_v2 after a crash expired`).toBe(model.expire(1000));
        world.holders[step.holder] = `lease:${randomUUID()}`;
      } else if (step.step === 'limit') {
        const org = orgs[step.org]!;
        const id = 'key' in step.scope ? world.keys[step.org]![step.scope.key]! : world.teams[step.org]![step.scope.team]!;
        await setLimit('key' in step.scope ? 'api_keys' : 'teams', org, id, step.field, step.value);
        ('key' in step.scope ? model.keys : model.teams).get(id)![step.field] = step.value;
      } else if (step.step === 'caps') {
        const windows = model.windowRows().filter((w) => w.period !== 'minute');
        const spentBy = (scope: string | null) => windows.some((w) => w.scope === scope && w.spent > 0);
        const all = world.keys.flat();
        const spenders = all.filter((k) => spentBy(k) || spentBy(model.keys.get(k)!.team));
        const key = (spenders.length > 0 ? spenders : all)[step.pick % (spenders.length > 0 ? spenders.length : all.length)]!;
        const { org, team } = model.keys.get(key)!;
        const [keyDay, keyMonth, teamDay, teamMonth] = step.caps;
        const squeezed = (scope: string, period: 'day' | 'month', percent: number | null) => {
          const spent = windows.find((w) => w.scope === scope && w.period === period)?.spent ?? 0;
          return percent === null ? null : Math.max(1, Math.floor(((spent > 0 ? spent : 1000) * percent) / 100));
        };
        for (const [field, percent] of [['day', keyDay], ['month', keyMonth]] as const) {
          const value = squeezed(key, field, percent);
          await setLimit('api_keys', org, key, field, value);
          model.keys.get(key)![field] = value;
        }
        if (team !== null) {
          for (const [field, percent] of [['day', teamDay], ['month', teamMonth]] as const) {
            const value = squeezed(team, field, percent);
            await setLimit('teams', org, team, field, value);
            model.teams.get(team)![field] = value;
          }
        }
      } else if (step.step === 'team') {
        const key = world.keys[step.org]![step.key]!;
        const team = step.team === null ? null : world.teams[step.org]![step.team]!;
        await owner.query('UPDATE nemo.api_keys SET team_id = $3 WHERE org_id = $1 AND key_id = $2', [orgs[step.org], key, team]);
        model.keys.get(key)!.team = team;
      } else {
        const { byMs, periods } = model.shiftTime(step.shift);
        const by = `${byMs / 1000} seconds`;
        await owner.query('UPDATE nemo.limit_windows SET window_start = window_start - $2::interval WHERE org_id = ANY($1::uuid[]) AND period = ANY($3::text[])', [orgs, by, periods]);
        if (periods.includes('day')) await owner.query('UPDATE nemo.reservations SET created_at = created_at - $2::interval WHERE org_id = ANY($1::uuid[])', [orgs, by]);
      }
      // A change of limits or teams alone changes no balances, holds or windows: the next batch shows its effect.
      if (step.step !== 'limit' && step.step !== 'caps' && step.step !== 'team') await expectDatabaseMatches(model, where);
    }
  } finally {
    // Holds left due here would be the oldest for the next run's ledger_expire_v2.
    await owner.query("UPDATE nemo.reservations SET expires_at = now() + interval '1 day' WHERE org_id = ANY($1::uuid[]) AND state = 'reserved'", [orgs]);
  }
}

function resolveOp(spec: BatchSpec, world: World, sent: Array<{ org: string; res: string; key: string | null }>, open: readonly ModelReservation[], leases: readonly ModelReservation[]): ApplyOp {
  const orgAt = (i: number) => (i === GHOST ? world.ghost : world.orgs[i]!);
  const otherOrg = (org: string) => (org === orgAt(0) ? orgAt(1) : orgAt(0));
  if (spec.kind === 'lease') {
    const again = spec.reuse !== null && world.leases.length > 0 ? world.leases[spec.reuse % world.leases.length]! : undefined;
    const lease = again ?? { org: orgAt(spec.org), res: randomUUID() };
    world.leases.push(lease);
    return { kind: 'lease', org: lease.org, res: lease.res, key: null, amount: spec.amount, min: spec.min, tokens: 0, holder: world.holders[spec.holder]! };
  }
  if (spec.kind === 'charge' || spec.kind === 'lease_return') {
    const t = spec.target;
    const target =
      t !== null && 'open' in t && leases.length > 0 ? leases[t.open % leases.length]!
      : t !== null && world.leases.length > 0 ? world.leases[('open' in t ? t.open : t.sent) % world.leases.length]!
      : { org: orgAt(0), res: randomUUID() };
    // wrongOrg: the right lease id under another org, which must not find it.
    const org = spec.wrongOrg ? otherOrg(target.org) : target.org;
    if (spec.kind === 'lease_return') return { kind: 'lease_return', org, res: target.res, key: null, amount: spec.keep, min: 0, tokens: 0 };
    if (spec.reuse !== null && world.charges.length > 0) {
      const again = { ...world.charges[spec.reuse % world.charges.length]! };
      world.charges.push(again);
      return again;
    }
    const keys = world.keys[world.orgs.indexOf(org)];
    const key = keys === undefined || spec.key === NO_KEY ? null : keys[spec.key]!;
    const charge: ApplyOp = { kind: 'charge', org, res: randomUUID(), lease: target.res, key, amount: spec.amount, min: 0, tokens: 0 };
    world.charges.push(charge);
    return charge;
  }
  if (!('target' in spec)) {
    const res = spec.reuse !== null && sent.length > 0 ? sent[spec.reuse % sent.length]!.res : randomUUID();
    const org = orgAt(spec.org);
    const own = world.keys[spec.org === GHOST ? 0 : spec.org]!;
    const key =
      spec.key < KEYS_PER_ORG ? own[spec.key]!
      : spec.key === NO_KEY ? null
      : spec.key === FOREIGN_KEY ? world.keys[(spec.org + 1) % ORGS]![0]!
      : world.unknownKey;
    sent.push({ org, res, key });
    return { kind: spec.kind, org, res, key, amount: spec.amount, min: spec.min, tokens: spec.tokens };
  }
  const t = spec.target;
  const target =
    t !== null && 'open' in t && open.length > 0 ? open[t.open % open.length]!
    : t !== null && sent.length > 0 ? sent[('open' in t ? t.open : t.sent) % sent.length]!
    : { org: orgAt(0), res: randomUUID(), key: null };
  // wrongOrg: the right reservation id under another org, which must not find it.
  const org = spec.wrongOrg ? otherOrg(target.org) : target.org;
  return { kind: spec.kind, org, res: target.res, key: target.key, amount: spec.charge, min: 0, tokens: 0 };
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

  it('agrees after every step: reserves, admits, settles, releases, top-ups, adjustments, expiry, limit changes, team moves and time', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    await fc.assert(fc.asyncProperty(scenario(false, 'mixed'), runScenario), params());
  });

  it('agrees when reservation ids are retried, within a batch and across batches', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    await fc.assert(fc.asyncProperty(scenario(true, 'mixed'), runScenario), params());
  });

  it('agrees when spend caps bind: spent in part, in full and beyond, several at once', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    await fc.assert(fc.asyncProperty(scenario(false, 'caps'), runScenario), params());
  });

  it('agrees with credit leases beside the holds: grants, charges (retried too), trims, closes, recalls, expiry and crashed holders', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    await fc.assert(fc.asyncProperty(scenario(true, 'mixed', true), runScenario), params());
  });
});

// --- focused cases ---

const reserve = (org: string, res: string, amount: number, min = 1, key: string | null = null, tokens = 0): ApplyOp => ({ kind: 'reserve', org, res, key, amount, min, tokens });
const admit = (org: string, key: string | null, tokens = 0): ApplyOp => ({ kind: 'admit', org, res: randomUUID(), key, amount: 0, min: 0, tokens });
const settle = (org: string, res: string, charge: number): ApplyOp => ({ kind: 'settle', org, res, key: null, amount: charge, min: 0, tokens: 0 });
const release = (org: string, res: string): ApplyOp => ({ kind: 'release', org, res, key: null, amount: 0, min: 0, tokens: 0 });
const granted = (op: number, amount: number): ApplyRow => ({ op, amount, refusal: null });
const refused = (op: number, refusal: Refusal): ApplyRow => ({ op, amount: 0, refusal });

async function ledgerRows(org: string, where = 'true', values: unknown[] = []): Promise<number> {
  const { rows } = await owner.query<{ n: number }>(`SELECT count(*)::int AS n FROM nemo.ledger_entries WHERE org_id = $1 AND ${where}`, [org, ...values]);
  return rows[0]!.n;
}

/** The org's windows as { 'key day': spent, 'team minute': 'requests/tokens', ... } by the names given. */
async function windowsOf(org: string, names: Record<string, string>): Promise<Record<string, number | string>> {
  return Object.fromEntries((await limitWindows([org])).map((w) => [`${names[w.scope] ?? w.scope} ${w.period}`, w.period === 'minute' ? `${w.requests}/${w.tokens}` : w.spent]));
}

/**
 * The focused cases below expect one minute (and so one day and one month) throughout: started in
 * the last seconds of a minute by the database's clock, they wait for the next one.
 */
async function awayFromWindowEdges(): Promise<void> {
  const { rows } = await owner.query<{ ms: number }>('SELECT (extract(epoch FROM now()) * 1000)::float8 AS ms');
  const toNextMinute = 60_000 - (rows[0]!.ms % 60_000);
  if (toNextMinute < 5_000) await new Promise((resolve) => setTimeout(resolve, toNextMinute + 100));
}

describe('spend caps and rate limits', () => {
  beforeEach(awayFromWindowEdges);

  it('names the cap with the least room, and on equal room the first of key day, key month, team day, team month', async () => {
    const org = await newOrg(10_000);
    const team = await newTeam(org, { ...NO_LIMITS, day: 500, month: 500 });
    const key = await newKey(org, team, { ...NO_LIMITS, day: 500, month: 800 });
    expect(await apply([reserve(org, randomUUID(), 1000, 600, key)])).toEqual([refused(1, 'key_daily_cap')]);
    await setLimit('api_keys', org, key, 'day', 501);
    expect(await apply([reserve(org, randomUUID(), 1000, 600, key)])).toEqual([refused(1, 'team_daily_cap')]);
    await setLimit('teams', org, team, 'month', 499);
    expect(await apply([reserve(org, randomUUID(), 1000, 600, key)])).toEqual([refused(1, 'team_monthly_cap')]);
    // A grant takes the least room of all: the org's balance and every cap.
    expect(await apply([reserve(org, randomUUID(), 1000, 100, key)])).toEqual([granted(1, 499)]);
    expect(await windowsOf(org, { [key]: 'key', [team]: 'team' })).toEqual({ 'key day': 499, 'key month': 499, 'team day': 499, 'team month': 499 });
    await expectBooksBalance('caps named');
  });

  it("refuses for funds when the org's balance is short of the minimum too, or when no cap binds", async () => {
    const org = await newOrg(300);
    const key = await newKey(org, null, { ...NO_LIMITS, day: 100 });
    expect(await apply([reserve(org, randomUUID(), 1000, 400, key)])).toEqual([refused(1, 'funds')]);
    expect(await apply([reserve(org, randomUUID(), 1000, 200, key)])).toEqual([refused(1, 'key_daily_cap')]);
    // A cap with exactly the balance's room does not bind.
    await setLimit('api_keys', org, key, 'day', 300);
    expect(await apply([reserve(org, randomUUID(), 1000, 400, key)])).toEqual([refused(1, 'funds')]);
  });

  it('checks rate limits before money: the key before its team, rpm before tpm; refused requests count nothing', async () => {
    const org = await newOrg(10_000);
    const team = await newTeam(org, { ...NO_LIMITS, rpm: 3, tpm: 100 });
    const key = await newKey(org, team, { ...NO_LIMITS, rpm: 2, tpm: 50 });
    const names = { [key]: 'key', [team]: 'team' };
    expect(await apply([admit(org, key, 40), reserve(org, randomUUID(), 20_000, 20_000, key, 20), admit(org, key, 5)])).toEqual([
      granted(1, 0),
      refused(2, 'key_tpm'),
      granted(3, 0),
    ]);
    expect(await windowsOf(org, names)).toEqual({ 'key minute': '2/45', 'team minute': '2/45' });
    // Both limits spent: the key's rpm is named first.
    expect(await apply([admit(org, key, 100)])).toEqual([refused(1, 'key_rpm')]);
    await setLimit('api_keys', org, key, 'rpm', null);
    await setLimit('api_keys', org, key, 'tpm', null);
    expect(await apply([admit(org, key, 60), admit(org, key, 0), admit(org, key, 0)])).toEqual([refused(1, 'team_tpm'), granted(2, 0), refused(3, 'team_rpm')]);
    expect(await windowsOf(org, names)).toEqual({ 'key minute': '2/45', 'team minute': '3/45' });
  });

  it('counts an admit against rate limits only, holding nothing', async () => {
    const org = await newOrg();
    const key = await newKey(org, null, { rpm: 5, tpm: null, day: 1, month: 1 });
    expect(await apply([admit(org, key, 7), admit(org, key, 7)])).toEqual([granted(1, 0), granted(2, 0)]);
    expect(await windowsOf(org, { [key]: 'key' })).toEqual({ 'key minute': '2/14' });
    expect(await accounts([org])).toEqual({ [org]: { available: 0, held: 0 } });
  });

  it('gives back what a settle does not charge to the windows the hold was counted in, after its key moved team', async () => {
    const org = await newOrg(10_000);
    const [first, second] = [await newTeam(org, { ...NO_LIMITS, day: 5000 }), await newTeam(org, { ...NO_LIMITS, day: 5000 })];
    const key = await newKey(org, first, { ...NO_LIMITS, month: 5000 });
    const res = randomUUID();
    expect(await apply([reserve(org, res, 1000, 1, key)])).toEqual([granted(1, 1000)]);
    await owner.query('UPDATE nemo.api_keys SET team_id = $2 WHERE key_id = $1', [key, second]);
    expect(await apply([settle(org, res, 400), reserve(org, randomUUID(), 300, 1, key)])).toEqual([granted(1, 400), granted(2, 300)]);
    const names = { [key]: 'key', [first]: 'first', [second]: 'second' };
    expect(await windowsOf(org, names)).toEqual({ 'key month': 700, 'first day': 400, 'second day': 300 });
    await expectBooksBalance('give back after a team move');
  });
});

describe('idempotency', () => {
  it('charges a settle repeated in one batch once', async () => {
    const org = await newOrg(1000);
    const res = randomUUID();
    expect(await apply([reserve(org, res, 500)])).toEqual([granted(1, 500)]);
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
    expect(await apply([settle(org, res, 200)])).toEqual([granted(1, 200)]);
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
    expect(await apply([reserve(org, res, 300), reserve(org, res, 400), reserve(org, other, 500, 500)])).toEqual([granted(1, 300), granted(3, 500)]);
    expect(await accounts([org])).toEqual({ [org]: { available: 200, held: 800 } });
    await expectBooksBalance('reserve twice in a batch');
  });

  it('refuses a reservation id reserved again in a later batch without holding twice', async () => {
    const org = await newOrg(1000);
    const res = randomUUID();
    expect(await apply([reserve(org, res, 300)])).toEqual([granted(1, 300)]);
    expect(await apply([reserve(org, res, 300)])).toEqual([]);
    expect(await accounts([org])).toEqual({ [org]: { available: 700, held: 300 } });
    expect(await ledgerRows(org, "kind = 'reserve'")).toBe(1);
    await expectBooksBalance('reserve twice across batches');
  });

  it("does not let a retried reservation id use up the balance of the batch's other reserves", async () => {
    const org = await newOrg(1000);
    const res = randomUUID();
    await apply([reserve(org, res, 300)]);
    expect(await apply([reserve(org, res, 700, 700), reserve(org, randomUUID(), 700, 700)])).toEqual([granted(2, 700)]);
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
  it('finish without deadlock, balance the books and never grant more than the top-up, a cap or a rate limit (20 connections, 5 orgs)', async () => {
    const TOPUP = 20_000;
    const KEY_DAY = 6_000;
    const KEY_RPM = 40;
    const TEAM_MONTH = 12_000;
    const seed = Date.now() >>> 0;
    const random = seededRandom(seed);
    const orgs = await Promise.all(Array.from({ length: 5 }, () => newOrg(TOPUP)));
    // Per org: a capped and rate-limited key and an unlimited one in a capped team, and a key of no team.
    const keysOf = new Map<string, { capped: string; teamMate: string; loose: string; team: string }>();
    for (const org of orgs) {
      const team = await newTeam(org, { ...NO_LIMITS, month: TEAM_MONTH });
      keysOf.set(org, { capped: await newKey(org, team, { ...NO_LIMITS, day: KEY_DAY, rpm: KEY_RPM }), teamMate: await newKey(org, team), loose: await newKey(org, null), team });
    }
    const someKey = (org: string) => {
      const keys = keysOf.get(org)!;
      const r = random();
      return r < 0.5 ? keys.capped : r < 0.8 ? keys.teamMate : keys.loose;
    };
    const clients = Array.from({ length: 20 }, () => new pg.Client(appRoleConnection(testDb)));
    await Promise.all(clients.map((c) => c.connect()));
    try {
      let holds: ApplyOp[] = [];
      // Round 1 only reserves; round 2 also settles or releases every hold of round 1.
      for (const round of [1, 2]) {
        const closing = holds;
        const batches = clients.map((_, i) => {
          const ops: ApplyOp[] = [];
          for (const org of orgs) for (let n = 1 + Math.floor(random() * 3); n > 0; n--) ops.push(reserve(org, randomUUID(), 200 + Math.floor(random() * 1800), 1 + Math.floor(random() * 200), someKey(org), Math.floor(random() * 100)));
          for (const hold of closing.filter((_, h) => h % clients.length === i)) ops.push(random() < 0.5 ? settle(hold.org, hold.res, Math.floor(random() * hold.amount)) : release(hold.org, hold.res));
          return ops.map((op) => ({ op, sortKey: random() })).sort((a, b) => a.sortKey - b.sortKey).map(({ op }) => op);
        });
        const results = await Promise.allSettled(batches.map((ops, i) => apply(ops, clients[i]!)));
        const failures = results.flatMap((r) => (r.status === 'rejected' ? [`${(r.reason as pg.DatabaseError).code}: ${(r.reason as Error).message}`] : []));
        expect(failures.length, `round ${round} (seed ${seed}): ${failures.slice(0, 3).join('; ')}`).toBe(0);

        holds = [];
        const closed = new Set<string>();
        const reasons = new Set<string>();
        let answered = 0;
        results.forEach((result, i) => {
          for (const row of (result as PromiseFulfilledResult<ApplyRow[]>).value) {
            const op = batches[i]![row.op - 1]!;
            if (op.kind === 'reserve') {
              answered++;
              if (row.refusal === null) holds.push({ ...op, amount: row.amount });
              else reasons.add(row.refusal);
            } else closed.add(op.res);
          }
        });
        expect(answered, `round ${round}: an answer for every reserve`).toBe(batches.flat().filter((op) => op.kind === 'reserve').length);
        expect([...reasons].filter((r) => !['funds', 'key_daily_cap', 'key_rpm', 'team_monthly_cap'].includes(r)), `round ${round}: refusals`).toEqual([]);
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
          const keys = keysOf.get(org)!;
          const windows = await windowsOf(org, { [keys.capped]: 'capped', [keys.team]: 'team' });
          expect(windows['capped day'] as number, `org ${org}: the key's daily spend after round ${round}`).toBeLessThanOrEqual(KEY_DAY);
          expect(windows['team month'] as number, `org ${org}: the team's monthly spend after round ${round}`).toBeLessThanOrEqual(TEAM_MONTH);
          expect(Number(String(windows['capped minute'] ?? '0/0').split('/')[0]), `org ${org}: the key's requests this minute after round ${round}`).toBeLessThanOrEqual(KEY_RPM);
        }
      }
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    }
  });
});
