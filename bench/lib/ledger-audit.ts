// The money side of every run: after each window on a priced target, the ledger must hold exactly
// one settled request per 2xx the load generator saw (a request's own hold settled, or its charge
// against a credit lease), and `nemo ledger check` must pass after each scenario. Counts come
// straight from the bench database's tables, not from the gateway.
import { spawn } from 'node:child_process';
import type pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';

export interface LedgerCounts {
  /** Requests settled: their own holds, and their charges against leases. */
  settled: number;
  /** Requests' own holds released (a request that ran on a lease and produced nothing writes no row). */
  released: number;
  expired: number;
  /** Requests' own holds not settled or released yet (leases are not requests). */
  open: number;
  /** `settle` rows of the append-only ledger: one per settled request. */
  settleEntries: number;
}

const COUNTS_SQL = `
  SELECT (count(*) FILTER (WHERE kind = 'request' AND state = 'settled')
          + (SELECT count(*) FROM nemo.ledger_entries WHERE kind = 'settle' AND idempotency_key IS NOT NULL))::int AS settled,
         count(*) FILTER (WHERE kind = 'request' AND state = 'released')::int AS released,
         count(*) FILTER (WHERE kind = 'request' AND state = 'expired')::int AS expired,
         count(*) FILTER (WHERE kind = 'request' AND state = 'reserved')::int AS open,
         (SELECT count(*)::int FROM nemo.ledger_entries WHERE kind = 'settle') AS "settleEntries"
    FROM nemo.reservations`;

export async function ledgerCounts(client: pg.Client): Promise<LedgerCounts> {
  const { rows } = await client.query<LedgerCounts>(COUNTS_SQL);
  return rows[0]!;
}

/**
 * Waits until no request's hold is open and the settles stopped coming: the gateway settles after
 * the last byte, through its batched writer, so the final settles (and charges against leases,
 * which hold nothing of their own to wait for) commit shortly after the load generator is done.
 */
export async function quiescentCounts(client: pg.Client, timeoutMs: number): Promise<LedgerCounts> {
  const deadline = Date.now() + timeoutMs;
  let previous: LedgerCounts | undefined;
  for (;;) {
    const counts = await ledgerCounts(client);
    const still = previous !== undefined && counts.settleEntries === previous.settleEntries && counts.settled === previous.settled;
    if ((counts.open === 0 && still) || Date.now() >= deadline) return counts;
    previous = counts;
    await sleep(100);
  }
}

/**
 * The counts once a window's settles are in: no hold open, at least `expected` requests (the load
 * generator's priced 2xx) settled since `before`, and nothing more arriving. On a loaded machine a
 * settle can commit well after a quiet 100 ms (tests run beside the bench in CI); one that never
 * comes still shows as a mismatch, at the timeout.
 */
export async function windowCounts(client: pg.Client, before: LedgerCounts, expected: number, timeoutMs: number): Promise<LedgerCounts> {
  const deadline = Date.now() + timeoutMs;
  let previous: LedgerCounts | undefined;
  for (;;) {
    const counts = await ledgerCounts(client);
    const arrived = counts.settled - before.settled >= expected;
    const still = previous !== undefined && counts.settleEntries === previous.settleEntries && counts.settled === previous.settled;
    if ((counts.open === 0 && arrived && still) || Date.now() >= deadline) return counts;
    previous = counts;
    await sleep(100);
  }
}

/** The difference between two snapshots: what one window did. */
export function countsDelta(after: LedgerCounts, before: LedgerCounts): LedgerCounts {
  return {
    settled: after.settled - before.settled,
    released: after.released - before.released,
    expired: after.expired - before.expired,
    open: after.open,
    settleEntries: after.settleEntries - before.settleEntries,
  };
}

export interface LedgerCheck {
  ok: boolean;
  exitCode: number | null;
  offending: unknown[];
  offendingWindows: unknown[];
  /** Set when the command's output was not the JSON document it prints. */
  error?: string;
}

/** `nemo ledger check` against the run's database, as an operator would run it. */
export async function runLedgerCheck(cli: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<LedgerCheck> {
  const child = spawn(process.execPath, [cli, 'ledger', 'check'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-2000)));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exitCode = await new Promise<number | null>((resolve) => {
    child.once('close', (code) => resolve(code));
    child.once('error', () => resolve(null));
  });
  clearTimeout(timer);
  try {
    const result = JSON.parse(stdout) as { ok: boolean; offending: unknown[]; offending_windows: unknown[] };
    return { ok: result.ok === true && exitCode === 0, exitCode, offending: result.offending, offendingWindows: result.offending_windows };
  } catch {
    return { ok: false, exitCode, offending: [], offendingWindows: [], error: `no JSON from nemo ledger check (exit ${exitCode}): ${(stderr || stdout).trim().slice(-500)}` };
  }
}

export interface LedgerSummary {
  /** 2xx answers to priced requests over every window of the scenario (warmups and knee included). */
  priced2xx: number;
  settled: number;
  settleEntries: number;
  released: number;
  expired: number;
  /** Holds still open after the last window (should be 0). */
  open: number;
  /** Every window had exactly one settled reservation and one settle entry per priced 2xx. */
  match: boolean;
  mismatches: Array<{ window: string; priced2xx: number; settled: number; settleEntries: number }>;
  check?: LedgerCheck;
}

/** Adds up the windows of a scenario and remembers each one that did not reconcile. */
export class LedgerTally {
  private readonly summary: LedgerSummary = { priced2xx: 0, settled: 0, settleEntries: 0, released: 0, expired: 0, open: 0, match: true, mismatches: [] };
  /** Windows on priced targets so far; without any there is nothing to reconcile. */
  windows = 0;

  add(window: string, priced2xx: number, delta: LedgerCounts): void {
    this.windows++;
    const s = this.summary;
    s.priced2xx += priced2xx;
    s.settled += delta.settled;
    s.settleEntries += delta.settleEntries;
    s.released += delta.released;
    s.expired += delta.expired;
    s.open = delta.open;
    if (delta.settled !== priced2xx || delta.settleEntries !== priced2xx || delta.open !== 0) {
      s.match = false;
      s.mismatches.push({ window, priced2xx, settled: delta.settled, settleEntries: delta.settleEntries });
    }
  }

  result(check: LedgerCheck | undefined): LedgerSummary {
    return check === undefined ? { ...this.summary } : { ...this.summary, check };
  }
}
