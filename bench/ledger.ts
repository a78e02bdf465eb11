// `npm run bench:ledger`: the batched ledger writer (group commit, one definer call per batch)
// against a naive implementation (one transaction per operation: SELECT ... FOR UPDATE, UPDATE,
// INSERT) on the same PostgreSQL in the same run, with many concurrent callers, on one hot org and
// spread over many orgs; and credit leases (reserve in process from a durable per-org lease, each
// settle still a durable per-request ledger row through the same writer). Reports reserve+settle
// pairs per second, p99 of a pair, the ratios, and deadlocks; the books must balance after every
// run (nemo.ledger_check()).

import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { APP_ROLE } from '../src/db/database.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../src/db/embedded.js';
import { migrationsDirFromHere, runMigrations } from '../src/db/migrate.js';
import { DEADLOCK_DETECTED } from '../src/db/sqlstate.js';
import { LedgerBatchWriter } from '../src/ledger/batch-writer.js';
import { CreditLeases } from '../src/ledger/leases.js';

const APP_PASSWORD = 'nemo_app_bench_password';
const HOLD = 100;
const CHARGE = 60;

interface Result {
  pairsPerSec: number;
  p99Ms: number;
  p50Ms: number;
  pairs: number;
  deadlocks: number;
  errors: number;
}

interface Setup {
  ownerUrl: string;
  appUrl: string;
  hotOrg: string;
  spreadOrgs: string[];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '5' },
      callers: { type: 'string', default: '1000' },
      orgs: { type: 'string', default: '1000' },
      'naive-pool': { type: 'string', default: '20' },
      'batched-pool': { type: 'string', default: '3' },
      json: { type: 'string' },
    },
  });
  const durationMs = Number(values.duration) * 1000;
  const callers = Number(values.callers);
  const orgCount = Number(values.orgs);
  if (![durationMs, callers, orgCount].every((n) => Number.isInteger(n) && n > 0)) throw new Error('--duration, --callers and --orgs must be positive integers');

  const dir = await mkdtemp(join(tmpdir(), 'nemo-ledger-bench-'));
  await chmod(dir, 0o755);
  let embedded: EmbeddedPostgres | undefined;
  try {
    embedded = await startEmbeddedPostgres({ dataDir: dir });
    const setup = await prepare(embedded.ownerUrl, orgCount);
    const report: Record<string, unknown> = { settings: { durationS: durationMs / 1000, callers, orgs: orgCount, naivePool: Number(values['naive-pool']), batchedPool: Number(values['batched-pool']), synchronousCommit: 'on' } };
    for (const [scenario, pick] of [['hot', () => setup.hotOrg], ['spread', () => setup.spreadOrgs[Math.floor(Math.random() * setup.spreadOrgs.length)]!]] as const) {
      progress(`${scenario}: batched writer, ${callers} callers, ${durationMs / 1000} s`);
      const batched = await runBatched(setup, pick, callers, durationMs, Number(values['batched-pool']));
      progress(`    ${batched.pairsPerSec} pairs/s, p99 ${batched.p99Ms} ms`);
      progress(`${scenario}: naive, ${callers} callers, ${durationMs / 1000} s`);
      const naive = await runNaive(setup, pick, callers, durationMs, Number(values['naive-pool']));
      progress(`    ${naive.pairsPerSec} pairs/s, p99 ${naive.p99Ms} ms`);
      progress(`${scenario}: lease, ${callers} callers, ${durationMs / 1000} s`);
      const lease = await runLease(setup, pick, callers, durationMs, Number(values['batched-pool']));
      progress(`    ${lease.pairsPerSec} pairs/s, p99 ${lease.p99Ms} ms`);
      const offending = await ledgerCheck(setup.ownerUrl);
      report[scenario] = {
        batched, naive, lease,
        ratio: round(batched.pairsPerSec / Math.max(naive.pairsPerSec, 1e-9)),
        leaseOverBatched: round(lease.pairsPerSec / Math.max(batched.pairsPerSec, 1e-9)),
        ledgerCheckOk: offending === 0,
      };
      if (offending !== 0) throw new Error(`ledger_check found ${offending} offending account(s) after ${scenario}`);
    }
    process.stdout.write(`\n${table(report)}\n`);
    if (values.json) await writeFile(values.json, `${JSON.stringify(report, null, 2)}\n`);
  } finally {
    await embedded?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function prepare(ownerUrl: string, orgCount: number): Promise<Setup> {
  await runMigrations({ ownerUrl, migrationsDir: migrationsDirFromHere(), appRole: { name: APP_ROLE, password: APP_PASSWORD } });
  const owner = new pg.Client(ownerUrl);
  await owner.connect();
  try {
    const ids = Array.from({ length: orgCount + 1 }, () => randomUUID());
    await owner.query('SELECT nemo.create_org(id, $2) FROM unnest($1::uuid[]) AS id', [ids, 'bench']);
    // Enough for every pair either implementation could possibly run.
    await owner.query("SELECT nemo.ledger_credit(id, 'topup', 1000000000000, 'bench', NULL) FROM unnest($1::uuid[]) AS id", [ids]);
    // Each org calls with one API key (no limits or caps): the key is looked up as in production.
    await owner.query(
      `INSERT INTO nemo.api_keys (org_id, key_id, name, role, key_hash, key_prefix, created_by)
       SELECT id, id, 'bench', 'member', sha256(convert_to(id::text, 'UTF8')), 'bench', 'platform' FROM unnest($1::uuid[]) AS id`,
      [ids],
    );
    const url = new URL(ownerUrl);
    url.username = APP_ROLE;
    url.password = APP_PASSWORD;
    return { ownerUrl, appUrl: url.toString(), hotOrg: ids[0]!, spreadOrgs: ids.slice(1) };
  } finally {
    await owner.end();
  }
}

/** Callers loop reserve -> settle until the deadline; one latency sample per pair. */
async function drive(callers: number, durationMs: number, pair: () => Promise<void>, isDeadlock: (err: unknown) => boolean): Promise<Result> {
  const samples: number[] = [];
  let deadlocks = 0;
  let errors = 0;
  const startedAt = performance.now();
  const deadline = startedAt + durationMs;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        try {
          await pair();
          samples.push(performance.now() - t0);
        } catch (err) {
          if (isDeadlock(err)) deadlocks++;
          else {
            errors++;
            if (process.env.BENCH_DEBUG) progress(`error: ${(err as Error).message}`);
          }
        }
      }
    }),
  );
  const elapsedS = (performance.now() - startedAt) / 1000;
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? 0;
  return { pairsPerSec: round(samples.length / elapsedS), p50Ms: round(at(0.5)), p99Ms: round(at(0.99)), pairs: samples.length, deadlocks, errors };
}

async function runBatched(setup: Setup, pickOrg: () => string, callers: number, durationMs: number, poolMax: number): Promise<Result> {
  const pool = new pg.Pool({ connectionString: setup.appUrl, max: poolMax });
  const writer = new LedgerBatchWriter(pool, { maxBatch: 1024, reservationTtlMs: 600_000, retryDelayMs: 100 });
  try {
    return await drive(
      callers,
      durationMs,
      async () => {
        const orgId = pickOrg();
        const reservationId = randomUUID();
        // The bench's key id is its org id.
        const granted = await writer.submit({ kind: 'reserve', orgId, reservationId, requestId: null, keyId: orgId, amountMicros: HOLD, minAmountMicros: HOLD, tokens: 1 });
        if (granted.amountMicros !== HOLD) throw new Error(`reserve refused: ${granted.refusal}`);
        await writer.submit({ kind: 'settle', orgId, reservationId, requestId: null, keyId: orgId, amountMicros: CHARGE, minAmountMicros: 0, tokens: 0 });
      },
      (err) => String((err as { cause?: { code?: string } }).cause?.code) === DEADLOCK_DETECTED,
    );
  } finally {
    await writer.drain(5_000);
    await pool.end();
  }
}

/**
 * Credit leases as the gateway runs them: the bound carved from the org's lease in process (a grant
 * only when the lease runs low), the charge written against the lease as the request's own ledger
 * row, awaited until it committed. Leases go back before the books are checked.
 */
async function runLease(setup: Setup, pickOrg: () => string, callers: number, durationMs: number, poolMax: number): Promise<Result> {
  const pool = new pg.Pool({ connectionString: setup.appUrl, max: poolMax });
  const writer = new LedgerBatchWriter(pool, { maxBatch: 1024, reservationTtlMs: 600_000, leaseTtlMs: 600_000, retryDelayMs: 100 });
  const leases = new CreditLeases((op) => writer.submit(op), { lifetimeMs: 30_000, ttlMs: 600_000, maxMicros: 100_000_000, minRequests: 16, lowWater: 0.25, chargeLingerMs: 0, recallWaitMs: 0 });
  leases.start();
  try {
    return await drive(
      callers,
      durationMs,
      async () => {
        const orgId = pickOrg();
        const lease = leases.carve(orgId, HOLD) ?? (await leases.take(orgId, HOLD));
        if (lease === undefined) throw new Error('no lease');
        const charged = writer.submit({ kind: 'charge', orgId, reservationId: randomUUID(), leaseId: lease.reservationId, requestId: null, keyId: orgId, amountMicros: CHARGE, minAmountMicros: 0, tokens: 0 });
        leases.settle(lease, HOLD, CHARGE);
        if ((await charged).amountMicros !== CHARGE) throw new Error('charge not written');
      },
      (err) => String((err as { cause?: { code?: string } }).cause?.code) === DEADLOCK_DETECTED,
    );
  } finally {
    leases.retireAll();
    await writer.drain(5_000);
    await pool.end();
  }
}

/** The textbook way: every operation its own transaction, the account row locked FOR UPDATE. */
async function runNaive(setup: Setup, pickOrg: () => string, callers: number, durationMs: number, poolMax: number): Promise<Result> {
  // As the owner: the naive baseline needs UPDATE on accounts, which the app role does not have.
  const pool = new pg.Pool({ connectionString: setup.ownerUrl, max: poolMax });
  const tx = async (fn: (client: pg.PoolClient) => Promise<void>) => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await fn(client);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  };
  try {
    return await drive(
      callers,
      durationMs,
      async () => {
        const orgId = pickOrg();
        const reservationId = randomUUID();
        await tx(async (c) => {
          const { rows } = await c.query<{ available: string }>('SELECT available FROM nemo.credit_accounts WHERE org_id = $1 FOR UPDATE', [orgId]);
          if (Number(rows[0]!.available) < HOLD) throw new Error('reserve refused');
          await c.query('UPDATE nemo.credit_accounts SET available = available - $2, held = held + $2 WHERE org_id = $1', [orgId, HOLD]);
          await c.query("INSERT INTO nemo.reservations (org_id, reservation_id, state, amount, expires_at) VALUES ($1, $2, 'reserved', $3, now() + interval '10 minutes')", [orgId, reservationId, HOLD]);
          await c.query("INSERT INTO nemo.ledger_entries (org_id, kind, available_delta, held_delta, reservation_id) VALUES ($1, 'reserve', $2, $3, $4)", [orgId, -HOLD, HOLD, reservationId]);
        });
        await tx(async (c) => {
          await c.query('SELECT 1 FROM nemo.credit_accounts WHERE org_id = $1 FOR UPDATE', [orgId]);
          await c.query("UPDATE nemo.reservations SET state = 'settled', charged = $3, closed_at = now() WHERE org_id = $1 AND reservation_id = $2", [orgId, reservationId, CHARGE]);
          await c.query('UPDATE nemo.credit_accounts SET available = available + $2, held = held - $3 WHERE org_id = $1', [orgId, HOLD - CHARGE, HOLD]);
          await c.query("INSERT INTO nemo.ledger_entries (org_id, kind, available_delta, held_delta, charged, reservation_id) VALUES ($1, 'settle', $2, $3, $4, $5)", [orgId, HOLD - CHARGE, -HOLD, CHARGE, reservationId]);
        });
      },
      (err) => (err as { code?: string }).code === DEADLOCK_DETECTED,
    );
  } finally {
    await pool.end();
  }
}

async function ledgerCheck(ownerUrl: string): Promise<number> {
  const client = new pg.Client(ownerUrl);
  await client.connect();
  try {
    return (await client.query('SELECT * FROM nemo.ledger_check()')).rowCount ?? 0;
  } finally {
    await client.end();
  }
}

function table(report: Record<string, unknown>): string {
  const lines = ['scenario  impl      pairs/s    p50 ms    p99 ms  deadlocks  errors'];
  for (const scenario of ['hot', 'spread']) {
    const s = report[scenario] as { batched: Result; naive: Result; lease: Result; ratio: number; leaseOverBatched: number };
    for (const impl of ['batched', 'naive', 'lease'] as const) {
      const r = s[impl];
      lines.push(`${scenario.padEnd(8)}  ${impl.padEnd(7)}  ${String(r.pairsPerSec).padStart(9)}  ${String(r.p50Ms).padStart(8)}  ${String(r.p99Ms).padStart(8)}  ${String(r.deadlocks).padStart(9)}  ${String(r.errors).padStart(6)}`);
    }
    lines.push(`${scenario.padEnd(8)}  batched/naive pairs/s: ${s.ratio}, lease/batched pairs/s: ${s.leaseOverBatched}`);
  }
  return lines.join('\n');
}

const round = (n: number) => Number(n.toFixed(2));
const progress = (line: string) => process.stderr.write(`${line}\n`);

main().catch((err: unknown) => {
  process.stderr.write(`bench:ledger failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
