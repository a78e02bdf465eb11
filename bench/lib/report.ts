// Turns per-target load results into the comparison table and the JSON document that runs are
// compared by. The ratios are the point of the run: the gateway is always judged against a
// baseline measured in the same run on the same machine.
import type { LoadResult } from './load.js';

/** nemo-free: nemo on a model priced at zero, so the same path without the ledger; nemo-guarded: nemo with a key whose guardrails scan prompts and answers. */
export const TARGETS = ['direct', 'bare', 'nemo-free', 'nemo', 'nemo-guarded'] as const;
export type Target = (typeof TARGETS)[number];

export interface TargetResult extends LoadResult {
  /** Peak RSS of the process serving this target (VmHWM), when the OS exposes it. */
  peakRssMb?: number;
}

export interface BenchSettings {
  durationS: number;
  connections: number;
  /** Each round loads every target once, in turn; reported numbers are medians over rounds. */
  rounds: number;
}

export interface BenchReport {
  scenario: string;
  settings: BenchSettings;
  targets: Record<Target, TargetResult>;
  /** Every round's raw numbers, so the spread behind each median can be read. */
  rounds: Array<Record<Target, TargetResult>>;
  ratios: { nemoOverBareRps: number; nemoOverDirectRps: number; addedP99Ms: number; nemoOverNemoFreeRps: number; ledgerAddedP99Ms: number; guardedOverNemoRps: number; guardrailsAddedP99Ms: number };
}

const ratio = (a: number, b: number): number => (b > 0 ? Number((a / b).toFixed(3)) : 0);

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** The median of every numeric field across rounds (errors are summed: one is one too many). */
function medianResult(results: TargetResult[]): TargetResult {
  const out: Record<string, number> = {};
  for (const key of Object.keys(results[0]!)) {
    const values = results.map((r) => (r as unknown as Record<string, number>)[key]).filter((v): v is number => typeof v === 'number');
    out[key] = key === 'errors' || key === 'non2xx' || key === 'requests' ? values.reduce((a, b) => a + b, 0) : Number(median(values).toFixed(3));
  }
  if (results.every((r) => r.peakRssMb !== undefined)) out.peakRssMb = Math.max(...results.map((r) => r.peakRssMb!));
  return out as unknown as TargetResult;
}

export function buildReport(scenario: string, settings: BenchSettings, rounds: Array<Record<Target, TargetResult>>): BenchReport {
  const targets = Object.fromEntries(TARGETS.map((t) => [t, medianResult(rounds.map((r) => r[t]))])) as Record<Target, TargetResult>;
  return {
    scenario,
    settings,
    targets,
    rounds,
    ratios: {
      nemoOverBareRps: ratio(targets.nemo.rps, targets.bare.rps),
      nemoOverDirectRps: ratio(targets.nemo.rps, targets.direct.rps),
      addedP99Ms: Number((targets.nemo.p99Ms - targets.direct.p99Ms).toFixed(3)),
      nemoOverNemoFreeRps: ratio(targets.nemo.rps, targets['nemo-free'].rps),
      ledgerAddedP99Ms: Number((targets.nemo.p99Ms - targets['nemo-free'].p99Ms).toFixed(3)),
      guardedOverNemoRps: ratio(targets['nemo-guarded'].rps, targets.nemo.rps),
      guardrailsAddedP99Ms: Number((targets['nemo-guarded'].p99Ms - targets.nemo.p99Ms).toFixed(3)),
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
  const { nemoOverBareRps, nemoOverDirectRps, addedP99Ms, nemoOverNemoFreeRps, ledgerAddedP99Ms, guardedOverNemoRps, guardrailsAddedP99Ms } = report.ratios;
  return [
    `medians of ${report.settings.rounds} round(s), ${report.settings.durationS} s x ${report.settings.connections} connections per target per round`,
    line(header),
    ...rows.map(line),
    '',
    `nemo/bare RPS ${nemoOverBareRps.toFixed(3)}   nemo/direct RPS ${nemoOverDirectRps.toFixed(3)}   ` +
      `added p99 ${addedP99Ms >= 0 ? '+' : ''}${addedP99Ms.toFixed(2)} ms (nemo - direct)`,
    `ledger: nemo/nemo-free RPS ${nemoOverNemoFreeRps.toFixed(3)}   added p99 ${ledgerAddedP99Ms >= 0 ? '+' : ''}${ledgerAddedP99Ms.toFixed(2)} ms (nemo - nemo-free)`,
    `guardrails: nemo-guarded/nemo RPS ${guardedOverNemoRps.toFixed(3)}   added p99 ${guardrailsAddedP99Ms >= 0 ? '+' : ''}${guardrailsAddedP99Ms.toFixed(2)} ms (nemo-guarded - nemo)`,
  ].join('\n');
}
