// Turns per-target load results into the comparison table and the JSON document that runs are
// compared by. The ratios are the point of the run: the gateway is always judged against a
// baseline measured in the same run on the same machine.
import type { LoadResult } from './load.js';

export const TARGETS = ['direct', 'bare', 'nemo'] as const;
export type Target = (typeof TARGETS)[number];

export interface TargetResult extends LoadResult {
  /** Peak RSS of the process serving this target (VmHWM), when the OS exposes it. */
  peakRssMb?: number;
}

export interface BenchReport {
  scenario: string;
  targets: Record<Target, TargetResult>;
  ratios: { nemoOverBareRps: number; nemoOverDirectRps: number; addedP99Ms: number };
}

const ratio = (a: number, b: number): number => (b > 0 ? Number((a / b).toFixed(3)) : 0);

export function buildReport(scenario: string, targets: Record<Target, TargetResult>): BenchReport {
  return {
    scenario,
    targets,
    ratios: {
      nemoOverBareRps: ratio(targets.nemo.rps, targets.bare.rps),
      nemoOverDirectRps: ratio(targets.nemo.rps, targets.direct.rps),
      addedP99Ms: Number((targets.nemo.p99Ms - targets.direct.p99Ms).toFixed(3)),
    },
  };
}

export function formatTable(report: BenchReport): string {
  const header = ['target', 'RPS', 'p50 ms', 'p99 ms', 'max ms', 'errors/non-2xx', 'peak RSS MB'];
  const rows = TARGETS.map((name) => {
    const t = report.targets[name];
    return [
      name,
      t.rps.toFixed(0),
      t.p50Ms.toFixed(2),
      t.p99Ms.toFixed(2),
      t.maxMs.toFixed(2),
      `${t.errors}/${t.non2xx}`,
      t.peakRssMb === undefined ? '-' : t.peakRssMb.toFixed(1),
    ];
  });
  const widths = header.map((cell, i) => Math.max(cell.length, ...rows.map((row) => row[i]!.length)));
  // Name column left-aligned, numbers right-aligned so magnitudes line up.
  const line = (cells: string[]): string =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  const { nemoOverBareRps, nemoOverDirectRps, addedP99Ms } = report.ratios;
  return [
    line(header),
    ...rows.map(line),
    '',
    `nemo/bare RPS ${nemoOverBareRps.toFixed(3)}   nemo/direct RPS ${nemoOverDirectRps.toFixed(3)}   ` +
      `added p99 ${addedP99Ms >= 0 ? '+' : ''}${addedP99Ms.toFixed(2)} ms (nemo - direct)`,
  ].join('\n');
}
