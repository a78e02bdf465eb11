// The ledger's batch function against a real PostgreSQL, read through auto_explain: each charge
// finds its lease by the lease's key, so a batch's work does not grow with the open leases of other
// orgs. A join once said "open" in the words of the partial index reservations_open_leases, and the
// function's generic plan then read that whole index for every charge (migration 0014).
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, migrateTestDatabase, type TestDatabase } from '../../support/test-database.js';

const APPLY_SQL = `SELECT op, amount, refusal FROM nemo.ledger_apply_v4($1::text[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::uuid[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[],
  $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], $17::integer, $18::integer)`;
const ORGS = 120;
const LEASE_MICROS = 1_000_000;
const CHARGE_MICROS = 42;

interface PlanNode {
  readonly 'Node Type': string;
  readonly 'Relation Name'?: string;
  readonly Alias?: string;
  readonly 'Index Name'?: string;
  readonly 'Rows Removed by Join Filter'?: number;
  readonly Plans?: readonly PlanNode[];
}

interface LoggedPlan {
  readonly 'Query Text': string;
  readonly Plan: PlanNode;
}

/** auto_explain's notice in JSON: "duration: N ms  plan:" and the plan. */
function parsePlan(message: string): LoggedPlan {
  return JSON.parse(message.slice(message.indexOf('{'))) as LoggedPlan;
}

function nodes(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(nodes)];
}

interface Op {
  readonly kind: 'lease' | 'charge' | 'reserve' | 'settle' | 'release' | 'lease_return';
  readonly org: string;
  readonly reservation: string;
  readonly lease: string | null;
  readonly amount: number;
  /** A lease's holder (the instance); 'plan-test' unless said. */
  readonly holder?: string;
}

/** Runs `batch` with auto_explain on and returns every statement's plan, nested ones included. */
async function explained(client: pg.Client, batch: () => Promise<unknown>): Promise<LoggedPlan[]> {
  const plans: string[] = [];
  const onNotice = (notice: { message?: string }) => plans.push(notice.message ?? '');
  client.on('notice', onNotice);
  await client.query("LOAD 'auto_explain'");
  await client.query(`SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; SET auto_explain.log_analyze = on;
    SET auto_explain.log_timing = off; SET auto_explain.log_format = json; SET auto_explain.log_level = notice; SET client_min_messages = notice`);
  try {
    await batch();
  } finally {
    await client.query('SET auto_explain.log_min_duration = -1');
    client.off('notice', onNotice);
  }
  return plans.map(parsePlan);
}

function apply(client: pg.Client, ops: readonly Op[]): Promise<pg.QueryResult<{ op: number; amount: string; refusal: string | null }>> {
  const column = <T>(pick: (op: Op) => T): T[] => ops.map(pick);
  const usage = (tokens: number) => column((op) => (op.kind === 'charge' ? tokens : null));
  const none = column(() => null);
  return client.query(APPLY_SQL, [
    column((op) => op.kind), column((op) => op.org), column((op) => op.reservation), column((op) => op.lease), column((op) => op.holder ?? 'plan-test'), none,
    column((op) => op.amount), column(() => 1), column(() => 0), column(() => 'm'),
    usage(10), usage(16), none, none, none, none, 120_000, 60_000,
  ]);
}

describe('ledger_apply_v4 query plans', () => {
  let testDb: TestDatabase;
  let client: pg.Client;
  const leases = new Map<string, string>();

  beforeAll(async () => {
    testDb = await createTestDatabase();
    await migrateTestDatabase(testDb);
    client = new pg.Client({ connectionString: testDb.url });
    await client.connect();
    for (let i = 0; i < ORGS; i++) {
      const org = randomUUID();
      await client.query('SELECT * FROM nemo.create_org($1, $2)', [org, `plans ${i}`]);
      await client.query("SELECT * FROM nemo.ledger_credit($1, 'topup', $2, $3, NULL)", [org, 10 * LEASE_MICROS, `plans-${i}`]);
      leases.set(org, randomUUID());
    }
    const granted = await apply(client, [...leases].map(([org, lease]) => ({ kind: 'lease', org, reservation: lease, lease: null, amount: LEASE_MICROS })));
    expect(granted.rows.map((r) => Number(r.amount))).toEqual(Array(ORGS).fill(LEASE_MICROS));
  });

  afterAll(async () => {
    await client?.end();
    await testDb?.drop();
  });

  it("charges find each lease by its key, not by reading every open lease", async () => {
    const orgs = [...leases.keys()].slice(0, 8);
    const charges = (): Op[] => Array.from({ length: 32 }, (_, i) => {
      const org = orgs[i % orgs.length]!;
      return { kind: 'charge', org, reservation: randomUUID(), lease: leases.get(org)!, amount: CHARGE_MICROS };
    });
    // Past PL/pgSQL's first five custom plans: the generic plan is the one every later batch runs.
    for (let i = 0; i < 8; i++) await apply(client, charges());

    let answered!: Awaited<ReturnType<typeof apply>>;
    const plans = await explained(client, async () => {
      answered = await apply(client, charges());
    });

    expect(answered.rows.map((r) => Number(r.amount))).toEqual(Array(32).fill(CHARGE_MICROS));
    const chargePlan = plans.find((plan) => plan['Query Text'].includes('INSERT INTO nemo.ledger_entries') && plan['Query Text'].includes("o.kind = 'charge'"));
    expect(chargePlan, JSON.stringify(plans)).toBeDefined();
    const leaseReads = nodes(chargePlan!.Plan).filter((node) => node['Relation Name'] === 'reservations' && node.Alias === 'l');
    expect(leaseReads.map((node) => [node['Node Type'], node['Index Name']])).toEqual([['Index Scan', 'reservations_pkey']]);
    expect(nodes(chargePlan!.Plan).every((node) => (node['Rows Removed by Join Filter'] ?? 0) === 0)).toBe(true);
  });

  it('reads no table whole in any statement of a batch: reserves, settles, releases, lease grants and returns', async () => {
    const orgs = [...leases.keys()].slice(8, 16);
    const round = async () => {
      const holds = orgs.map((org) => ({ org, reservation: randomUUID() }));
      const reserved = await apply(client, holds.map(({ org, reservation }) => ({ kind: 'reserve', org, reservation, lease: null, amount: 1_000 })));
      expect(reserved.rows.map((r) => Number(r.amount))).toEqual(Array(orgs.length).fill(1_000));
      await apply(client, [
        ...holds.map(({ org, reservation }, i): Op => ({ kind: i % 2 === 0 ? 'settle' : 'release', org, reservation, lease: null, amount: 400 })),
        ...orgs.slice(0, 2).map((org): Op => ({ kind: 'lease_return', org, reservation: leases.get(org)!, lease: null, amount: LEASE_MICROS / 2 })),
        ...orgs.slice(2, 4).map((org): Op => ({ kind: 'lease', org, reservation: randomUUID(), lease: null, amount: 10_000, holder: 'another-instance' })),
      ]);
    };
    // Past PL/pgSQL's first five custom plans, as above.
    for (let i = 0; i < 8; i++) await round();
    const plans = await explained(client, round);

    expect(plans.length).toBeGreaterThan(10);
    const wholeReads = plans.flatMap((plan) => nodes(plan.Plan).filter((node) => node['Node Type'] === 'Seq Scan').map((node) => `${node['Relation Name']} in: ${plan['Query Text'].slice(0, 120)}`));
    expect(wholeReads).toEqual([]);
  });
});
