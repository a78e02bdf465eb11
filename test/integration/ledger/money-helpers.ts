// Helpers for the ledger suites: fresh funded orgs, the books read as the database owner (no RLS),
// extra gateway processes (`nemo start`) on a test database, as production runs them, and `nemo ledger check`.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { expect } from 'vitest';
import type { Gateway } from '../../../src/main.js';
import { databaseEnv, type TestDatabase } from '../../support/test-database.js';
import { CLI, PLATFORM, waitFor } from '../helpers/gateway.js';
import { withTestLedger } from '../../support/ledger-defaults.js';

export interface FundedOrg {
  readonly orgId: string;
  readonly key: string;
  readonly auth: { authorization: string };
}

/** A new org with exactly `micros` of credits (none when 0) and an admin key of its own (`keyFields` added). */
export async function fundedOrg(gateway: Gateway, micros: number, name = 'ledger org', keyFields: Record<string, unknown> = {}): Promise<FundedOrg> {
  const org = await gateway.admin.createOrg(PLATFORM, { name });
  if (micros > 0) await gateway.admin.addCredits(PLATFORM, org.id, { amount_micros: micros, idempotency_key: `topup-${org.id}` });
  const { key } = (await gateway.admin.createKey(PLATFORM, org.id, { name: 'ledger key', role: 'admin', ...keyFields })) as { key: string };
  return { orgId: org.id, key, auth: { authorization: `Bearer ${key}` } };
}

export interface Account {
  readonly available: number;
  readonly held: number;
}

export interface LedgerRow {
  readonly kind: string;
  readonly available_delta: number;
  readonly held_delta: number;
  readonly charged: number;
  readonly reservation_id: string | null;
}

/** The books as the owner sees them: every org, no row-level security in the way. */
export class Books {
  readonly pool: pg.Pool;

  constructor(database: TestDatabase) {
    this.pool = new pg.Pool({ connectionString: database.url, max: 3 });
  }

  async account(orgId: string): Promise<Account> {
    const { rows } = await this.pool.query<{ available: string; held: string }>('SELECT available, held FROM nemo.credit_accounts WHERE org_id = $1', [orgId]);
    if (rows.length === 0) throw new Error(`no account for ${orgId}`);
    return { available: Number(rows[0]!.available), held: Number(rows[0]!.held) };
  }

  async entries(orgId: string, kind?: string): Promise<LedgerRow[]> {
    const { rows } = await this.pool.query<LedgerRow>(
      `SELECT kind, available_delta::float8 AS available_delta, held_delta::float8 AS held_delta, charged::float8 AS charged, reservation_id
       FROM nemo.ledger_entries WHERE org_id = $1 AND ($2::text IS NULL OR kind = $2) ORDER BY entry_id`,
      [orgId, kind ?? null],
    );
    return rows;
  }

  /** Reservations by state. */
  async reservationStates(orgId: string): Promise<Record<string, number>> {
    const { rows } = await this.pool.query<{ state: string; n: number }>('SELECT state, count(*)::int AS n FROM nemo.reservations WHERE org_id = $1 GROUP BY state', [orgId]);
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  /** nemo.ledger_check(): the accounts whose books do not balance (none: all is well). */
  async check(): Promise<unknown[]> {
    return (await this.pool.query('SELECT * FROM nemo.ledger_check()')).rows;
  }

  /** Settles are sent after the response: waits until nothing is held for the org. */
  async settled(orgId: string, timeoutMs = 5_000): Promise<Account> {
    await waitFor(async () => (await this.account(orgId)).held === 0, timeoutMs, 20);
    return this.account(orgId);
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

export interface GatewayProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** What the process wrote so far (both streams, last 64 KB). */
  output(): string;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for the exit: a crash. */
  kill(): Promise<void>;
}

/** `nemo start` in its own process on the test database, with `config` as its NEMO_CONFIG file. */
export async function spawnGateway(database: TestDatabase, config: Record<string, unknown>, env: Record<string, string> = {}): Promise<GatewayProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'nemo-ledger-'));
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(withTestLedger(config)));
  const child = spawn(process.execPath, [CLI, 'start'], {
    env: { ...process.env, ...databaseEnv(database), PORT: '0', HOST: '127.0.0.1', NEMO_CONFIG: file, NEMO_MASTER_KEY: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  // Always drained: a full pipe would block the gateway.
  const keep = (chunk: Buffer) => {
    out += chunk.toString();
    if (out.length > 65_536) out = out.slice(-65_536);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = once(child, 'exit');
  const finish = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(() => /listening on http:\/\/\S+/.test(out) || child.exitCode !== null, 30_000, 20);
  } catch (err) {
    await finish('SIGKILL');
    throw err;
  }
  const match = /listening on (http:\/\/\S+)/.exec(out);
  if (!match) {
    await finish('SIGKILL');
    throw new Error(`gateway process did not start:\n${out}`);
  }
  return { url: match[1]!, child, output: () => out, stop: () => finish('SIGTERM'), kill: () => finish('SIGKILL') };
}

/** `nemo ledger check` as an operator runs it: exit 0 and nothing offending. */
export async function ledgerCheckCli(env: Record<string, string>): Promise<void> {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'ledger', 'check'], { env: { ...process.env, ...env }, timeout: 30_000 });
  expect(JSON.parse(stdout)).toEqual({ ok: true, offending: [], offending_windows: [] });
}
