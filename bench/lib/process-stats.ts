// What a served window cost the serving process, read from Linux's /proc: CPU time (utime + stime
// of every thread, so the worker pool counts), peak resident memory within the window, and the CPU
// of the embedded Postgres the bench started. Everything answers undefined where /proc is absent.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat times (almost always 100). */
const CLOCK_TICKS = ((): number => {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const ticks = Number(out.stdout?.trim());
  return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
})();

interface StatFields {
  ppid: number;
  comm: string;
  /** utime + stime, seconds. */
  cpuS: number;
  /** cutime + cstime: children already waited for, seconds. */
  childrenCpuS: number;
}

function readStat(pid: number): StatFields | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm is in parentheses and may itself contain spaces or parentheses: split after the last ')'.
  const close = text.lastIndexOf(')');
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
  const tick = (i: number): number => Number(fields[i - 3]) / CLOCK_TICKS;
  return { ppid: Number(fields[1]), comm: text.slice(text.indexOf('(') + 1, close), cpuS: tick(14) + tick(15), childrenCpuS: tick(16) + tick(17) };
}

/** CPU seconds (all threads) a process has used so far. */
export function cpuSeconds(pid: number): number | undefined {
  return readStat(pid)?.cpuS;
}

function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const match = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

const mb = (kb: number): number => Math.round(kb / 102.4) / 10;

/**
 * The peak RSS of a process over one window. Writing 5 to clear_refs resets the kernel's
 * high-water mark (VmHWM), so the peak is exact and belongs to this window, not to an earlier
 * scenario; where that is refused, VmRSS sampled every 100 ms stands in (a lower bound).
 */
export class PeakRss {
  private sampledKb = 0;
  private readonly exact: boolean;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number) {
    let reset = false;
    try {
      writeFileSync(`/proc/${pid}/clear_refs`, '5');
      reset = true;
    } catch {
      reset = false;
    }
    this.exact = reset;
    this.sample();
    this.timer = setInterval(() => this.sample(), 100);
    this.timer.unref();
  }

  /** Stops sampling; the window's peak in MB. */
  stop(): number | undefined {
    clearInterval(this.timer);
    this.sample();
    const hwm = this.exact ? statusKb(this.pid, 'VmHWM') : undefined;
    const peak = Math.max(hwm ?? 0, this.sampledKb);
    return peak > 0 ? mb(peak) : undefined;
  }

  private sample(): void {
    const rss = statusKb(this.pid, 'VmRSS');
    if (rss !== undefined && rss > this.sampledKb) this.sampledKb = rss;
  }
}

/** Every process's stat line, by pid. */
function processTable(): Map<number, StatFields> {
  const stats = new Map<number, StatFields>();
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return stats;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(Number(name));
    if (stat !== undefined) stats.set(Number(name), stat);
  }
  return stats;
}

/** Direct children of `ppid` whose command is `comm` (e.g. the postmaster the bench started). */
export function childrenNamed(ppid: number, comm: string): number[] {
  return [...processTable()].filter(([, stat]) => stat.ppid === ppid && stat.comm === comm).map(([pid]) => pid);
}

/**
 * CPU seconds of a process and everything below it (the embedded postmaster: its backends and
 * background workers). Exited children are in their parent's children times (cutime, cstime), live
 * ones are added one by one, so nothing is counted twice and the sum only grows.
 */
export function treeCpuSeconds(rootPid: number): number | undefined {
  const stats = processTable();
  const root = stats.get(rootPid);
  if (root === undefined) return undefined;
  const children = new Map<number, number[]>();
  for (const [pid, stat] of stats) {
    const list = children.get(stat.ppid);
    if (list === undefined) children.set(stat.ppid, [pid]);
    else list.push(pid);
  }
  let total = 0;
  const visit = (pid: number): void => {
    const stat = stats.get(pid)!;
    total += stat.cpuS + stat.childrenCpuS;
    for (const child of children.get(pid) ?? []) visit(child);
  };
  visit(rootPid);
  return total;
}
