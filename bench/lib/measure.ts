// One measured window: load one target with one request mix for a while, and read what it cost
// the target's process over exactly that window (CPU, peak RSS, event-loop lag, the embedded
// Postgres's CPU) and what it did to the ledger (settled holds against the 2xx seen).
import { runClosedLoop } from './closed-loop.js';
import type { GroupResult, LoadGroup } from './closed-loop.js';
import type { Environment } from './environment.js';
import { OwnLag, readBareLag, readNemoLag } from './event-loop-lag.js';
import type { EventLoopLag } from './event-loop-lag.js';
import { countsDelta, quiescentCounts, windowCounts } from './ledger-audit.js';
import type { LedgerCounts } from './ledger-audit.js';
import { PeakRss, cpuSeconds, treeCpuSeconds } from './process-stats.js';
import type { Progress } from './progress.js';
import type { Target } from './targets.js';

/** A stream silent this long counts as stalled. */
export const STALL_MS = 1000;
/** The last settles of a window commit within milliseconds; this only bounds a broken ledger. */
const SETTLE_WAIT_MS = 15_000;

export interface WindowOptions {
  env: Environment;
  target: Target;
  groups: LoadGroup[];
  durationS: number;
  startSpreadMs: number;
  drainTimeoutMs: number;
  label: string;
  progress: Progress;
  signal: AbortSignal;
}

export interface WindowLedger {
  /** 2xx answers to priced requests: each must have been settled once. */
  priced2xx: number;
  /** What the window did to the reservations and the ledger. */
  delta: LedgerCounts;
}

export interface WindowResult {
  target: string;
  durationS: number;
  groups: GroupResult[];
  cpuS: number | undefined;
  peakRssMb: number | undefined;
  lag: EventLoopLag | undefined;
  /** CPU of the embedded Postgres (nemo targets on the embedded cluster only). */
  dbCpuS: number | undefined;
  loadGen: { cpuS: number; lag: EventLoopLag | undefined };
  ledger: WindowLedger | undefined;
}

/** Reading a server's lag also resets it, so a read before the window starts the window's count. */
function readLag(target: Target): Promise<EventLoopLag | undefined> {
  if (target.kind === 'nemo') return readNemoLag(target.origin);
  if (target.kind === 'bare') return readBareLag(target.origin);
  // The mock (node:http, src/) exposes no event-loop reading.
  return Promise.resolve(undefined);
}

const difference = (after: number | undefined, before: number | undefined): number | undefined =>
  after === undefined || before === undefined ? undefined : Number((after - before).toFixed(3));

export async function measureWindow(options: WindowOptions): Promise<WindowResult> {
  const { env, target } = options;
  const pid = target.server.proc.pid!;
  const postmaster = target.kind === 'nemo' ? env.database.postmasterPid : undefined;
  const ledgerBefore = target.priced ? await quiescentCounts(env.database.client, SETTLE_WAIT_MS) : undefined;
  await readLag(target);

  const cpuBefore = cpuSeconds(pid);
  const dbBefore = postmaster === undefined ? undefined : treeCpuSeconds(postmaster);
  const peak = new PeakRss(pid);
  const ownLag = new OwnLag();
  ownLag.start();
  const ownCpuBefore = process.cpuUsage();

  const durationMs = options.durationS * 1000;
  const run = runClosedLoop({
    origin: target.origin,
    path: '/v1/chat/completions',
    groups: options.groups,
    durationMs,
    startSpreadMs: options.startSpreadMs,
    drainTimeoutMs: options.drainTimeoutMs,
    stallMs: STALL_MS,
    signal: options.signal,
  });
  const hide = options.progress.window(options.label, durationMs, run.progress);
  const groups = await run.done.finally(hide);

  const cpuAfter = cpuSeconds(pid);
  const dbAfter = postmaster === undefined ? undefined : treeCpuSeconds(postmaster);
  const peakRssMb = peak.stop();
  const ownCpu = process.cpuUsage(ownCpuBefore);
  const loadGen = { cpuS: Number(((ownCpu.user + ownCpu.system) / 1e6).toFixed(3)), lag: ownLag.stop() };
  if (options.signal.aborted) throw new Error('interrupted');
  // A crashed server would otherwise show up only as a column of errors.
  for (const child of [env.mock, target.server]) {
    if (child.exited()) throw new Error(`${child.name} exited during ${options.label}:\n${child.tail().trim()}`);
  }
  const lag = await readLag(target);

  let ledger: WindowLedger | undefined;
  if (ledgerBefore !== undefined) {
    const priced2xx = groups.filter((group) => group.priced).reduce((sum, group) => sum + group.ok, 0);
    const after = await windowCounts(env.database.client, ledgerBefore, priced2xx, SETTLE_WAIT_MS);
    ledger = { priced2xx, delta: countsDelta(after, ledgerBefore) };
  }
  return {
    target: target.name,
    durationS: options.durationS,
    groups,
    cpuS: difference(cpuAfter, cpuBefore),
    peakRssMb,
    lag,
    dbCpuS: difference(dbAfter, dbBefore),
    loadGen,
    ledger,
  };
}
