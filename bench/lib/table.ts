// The terminal view of a scenario report: one row per target, the ratios under it, the stream and
// knee numbers for streams, the agent's TTFT and CPU per request, the answers by status for the mix,
// and the ledger's verdict.
import { heldText } from './knee.js';
import type { AgentTarget, ScenarioReport, TargetResult } from './report.js';
import { nemoWorkLine } from './nemo-work.js';
import { runtimeText } from './server-runtime.js';

const num = (value: number | undefined, digits: number): string => (value === undefined ? '-' : value.toFixed(digits));
const signed = (value: number): string => `${value >= 0 ? '+' : ''}${value.toFixed(2)}`;

function grid(header: string[], rows: string[][]): string[] {
  const widths = header.map((cell, i) => Math.max(cell.length, ...rows.map((row) => row[i]!.length)));
  // Name column left-aligned, numbers right-aligned so magnitudes line up.
  const line = (cells: string[]): string => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)];
}

function targetRows(report: ScenarioReport): string[] {
  const stream = report.streams !== undefined;
  const agent = report.agent !== undefined;
  const header = ['target', stream ? 'streams/s' : 'RPS', 'p50 ms', 'p99 ms', 'max ms', 'err/non-2xx', 'CPU s/1k', 'PG s/1k', 'RSS MB', 'lag p99 ms', 'gen lag'];
  if (stream) header.push('TTFT p99', 'gap p50', 'gap p99', 'gap max', 'stalled');
  if (agent) header.push('TTFT p50', 'TTFT p99', 'req KB');
  header.push('node / http');
  const rows = Object.entries(report.targets).map(([name, t]: [string, TargetResult]) => {
    const row = [name, t.rps.toFixed(0), num(t.p50Ms, 2), num(t.p99Ms, 2), num(t.maxMs, 2), `${t.errors}/${t.non2xx}`, num(t.cpuSPer1k, 3), num(t.dbCpuSPer1k, 3), num(t.peakRssMb, 1), num(t.eventLoopLagP99Ms, 2), num(t.loadGenLagP99Ms, 1)];
    if (stream) {
      const s = t.stream;
      row.push(num(s?.ttftP99Ms, 1), num(s?.gapP50Ms, 1), num(s?.gapP99Ms, 1), num(s?.gapMaxMs, 1), String(s?.stalled ?? '-'));
    }
    if (agent) row.push(num(t.stream?.ttftP50Ms, 1), num(t.stream?.ttftP99Ms, 1), num(t.meanRequestKb, 1));
    row.push(runtimeText(report.runtimes[name]));
    return row;
  });
  return grid(header, rows);
}

function ratioLines(report: ScenarioReport): string[] {
  const r = report.ratios;
  const lines = [
    `nemo/bare RPS ${r.nemoOverBareRps.toFixed(3)}   nemo/direct RPS ${r.nemoOverDirectRps.toFixed(3)}   bare/direct RPS ${r.bareOverDirectRps.toFixed(3)}` +
      (r.nemoOverBareCpuPer1k === undefined ? '' : `   nemo/bare CPU per request ${r.nemoOverBareCpuPer1k.toFixed(2)}`),
    `added latency (nemo - direct): p50 ${signed(r.addedP50Ms)} ms, p99 ${signed(r.addedP99Ms)} ms   (bare - direct: p99 ${signed(r.bareAddedP99Ms)} ms)`,
  ];
  if (r.nemoPlainOverNemoFreeRps !== undefined) {
    lines.push(`ledger: nemo-plain/nemo-free RPS ${r.nemoPlainOverNemoFreeRps.toFixed(3)}, p99 ${signed(r.ledgerAddedP99Ms!)} ms   guardrails: nemo/nemo-plain RPS ${r.nemoOverNemoPlainRps!.toFixed(3)}, p99 ${signed(r.guardrailsAddedP99Ms!)} ms`);
  }
  if (r.nemoNodeOverNemoRps !== undefined) {
    const nemo = runtimeText(report.runtimes.nemo);
    const fallback = runtimeText(report.runtimes['nemo-node']);
    lines.push(
      `fallback: nemo-node/nemo RPS ${r.nemoNodeOverNemoRps.toFixed(3)}, p50 ${r.nemoNodeOverNemoP50!.toFixed(3)}x, p99 ${r.nemoNodeOverNemoP99!.toFixed(3)}x` +
        (r.nemoNodeOverNemoCpuPer1k === undefined ? '' : `, CPU per request ${r.nemoNodeOverNemoCpuPer1k.toFixed(2)}x`) +
        `   nemo-node/bare RPS ${r.nemoNodeOverBareRps!.toFixed(3)}   (nemo-node: ${fallback}; nemo: ${nemo})`,
    );
  }
  if (r.nemoOverBaseRps !== undefined) {
    const t = report.targets;
    const pair = (pick: (x: TargetResult) => number | undefined, digits: number): string => `${num(pick(t.nemo!), digits)} vs ${num(pick(t['nemo-base']!), digits)}`;
    lines.push(
      `baseline: nemo/nemo-base RPS ${r.nemoOverBaseRps.toFixed(3)}, p99 ${r.nemoOverBaseP99!.toFixed(3)}x` +
        (r.nemoOverBaseCpuPer1k === undefined ? '' : `, CPU per request ${r.nemoOverBaseCpuPer1k.toFixed(3)}x`) +
        `   lag p99 ${pair((x) => x.eventLoopLagP99Ms, 2)} ms, peak RSS ${pair((x) => x.peakRssMb, 1)} MB`,
    );
  }
  return lines;
}

function streamLines(report: ScenarioReport): string[] {
  const s = report.streams;
  if (s === undefined) return [];
  const fallback =
    (s.nemoNodeGapP99Ms === undefined ? '' : `; nemo-node gap p99 ${s.nemoNodeGapP99Ms.toFixed(1)} ms, ${s.nemoNodeStalled ?? 0} stalled`) +
    (s.nemoBaseGapP99Ms === undefined ? '' : `; nemo-base gap p99 ${s.nemoBaseGapP99Ms.toFixed(1)} ms, ${s.nemoBaseStalled ?? 0} stalled`);
  const lines = [`streams: ${s.concurrent} concurrent; gap p99 nemo ${s.gapP99Ms.toFixed(1)} ms vs bare ${s.bareGapP99Ms.toFixed(1)} ms (${signed(s.addedGapP99Ms)} ms); stalled nemo ${s.stalled}, bare ${s.bareStalled}, direct ${s.directStalled}${fallback}`];
  const knee = s.knee;
  if (knee !== undefined) {
    lines.push(`knee (gap p99 <= ${knee.maxGapP99Ms} ms, no stall; ${knee.durationS} s per step):`);
    for (const [name, t] of Object.entries(knee.targets)) {
      const steps = t.steps.map((step) => `${step.streams}: gap p99 ${step.gapP99Ms.toFixed(0)} ms, ${step.stalled} stalled${step.held ? '' : ' (not held)'}`).join('; ');
      lines.push(`  ${name.padEnd(10)} holds ${heldText(t.held, knee.steps)}   [${steps}]`);
    }
  }
  return lines;
}

function agentLines(report: ScenarioReport): string[] {
  const a = report.agent;
  if (a === undefined) return [];
  const per = (pick: (t: AgentTarget) => string): string => Object.entries(a.targets).map(([name, t]) => `${name} ${pick(t)}`).join(', ');
  return [
    `agent: ${a.conversations} conversations, history up to ${a.historyTokens} tokens, turns of ${a.turnTokens.min}-${a.turnTokens.max} tokens, max_tokens ${a.maxTokens}`,
    `  TTFT p50/p99 ms: ${per((t) => `${t.ttftP50Ms.toFixed(1)}/${t.ttftP99Ms.toFixed(1)}`)}   CPU ms per request: ${per((t) => num(t.cpuMsPerRequest, 2))}`,
    `  nemo/bare: RPS ${a.nemoOverBareRps.toFixed(3)}, TTFT p50 ${a.nemoOverBareTtftP50.toFixed(2)}x, p99 ${a.nemoOverBareTtftP99.toFixed(2)}x` +
      (a.nemoOverBareCpuPerRequest === undefined ? '' : `, CPU per request ${a.nemoOverBareCpuPerRequest.toFixed(2)}x`) +
      `   mean request KB: ${per((t) => t.meanRequestKb.toFixed(1))}   stalled: ${per((t) => String(t.stalled))}`,
  ];
}

function mixLines(report: ScenarioReport): string[] {
  if (report.mix === undefined) return [];
  const lines = ['answers by request shape (status x count; 0 = no HTTP answer):'];
  for (const [target, shapes] of Object.entries(report.mix)) {
    lines.push(`  ${target}:`);
    for (const shape of shapes) {
      const statuses = Object.entries(shape.byStatus).map(([status, n]) => `${status} x${n}`).join(', ');
      lines.push(`    ${shape.name.padEnd(20)} ${statuses}${shape.sawExpected ? '' : `   (never got the expected ${shape.expectText})`}`);
    }
  }
  return lines;
}

function ledgerLines(report: ScenarioReport): string[] {
  const l = report.ledger;
  if (l === undefined) return [];
  const check = l.check === undefined ? 'not run' : l.check.ok ? 'ok' : `FAILED${l.check.error ? `: ${l.check.error}` : ` (${l.check.offending.length} accounts, ${l.check.offendingWindows.length} windows)`}`;
  const lines = [`ledger: ${l.priced2xx} priced 2xx, ${l.settled} settled requests, ${l.settleEntries} settle entries, ${l.released} released, ${l.open} open: ${l.match ? 'match' : 'MISMATCH'}; nemo ledger check: ${check}`];
  for (const m of l.mismatches) lines.push(`  MISMATCH in ${m.window}: ${m.priced2xx} priced 2xx, ${m.settled} settled, ${m.settleEntries} settle entries`);
  return lines;
}

export function formatScenario(report: ScenarioReport): string {
  const s = report.settings;
  return [
    `== ${report.scenario}: ${report.description}`,
    `   medians of ${String(s.rounds)} round(s), ${String(s.durationS)} s per target per round, concurrency ${String(s.concurrency)}`,
    ...targetRows(report),
    '',
    ...ratioLines(report),
    ...streamLines(report),
    ...agentLines(report),
    ...mixLines(report),
    ...(report.nemoWork === undefined ? [] : [nemoWorkLine(report.nemoWork)]),
    ...ledgerLines(report),
  ].join('\n');
}
