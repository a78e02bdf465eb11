// Runs one scenario against every target: a warmup per target, then rounds in which the targets
// take turns (noise on a shared machine drifts over seconds, so it hits every target alike), the
// stream knee when it applies, and the ledger reconciliation and `nemo ledger check` at the end.
import type { Environment } from './environment.js';
import { runKnee } from './knee.js';
import type { KneeResult } from './knee.js';
import { LedgerTally, runLedgerCheck } from './ledger-audit.js';
import { measureWindow } from './measure.js';
import type { WindowResult } from './measure.js';
import { loadGroups, verdicts } from './mixed-load.js';
import type { ScenarioResult } from './mixed-load.js';
import { readNemoCounters, workBetween } from './nemo-work.js';
import type { Progress } from './progress.js';
import { AGENT_MAX_TOKENS, AGENT_TURN_TOKENS } from './agent-sessions.js';
import { agentSection, combineRounds, ratiosOf, streamSection, targetResult } from './report.js';
import type { ScenarioReport, TargetResult } from './report.js';
import type { ScenarioInput, ScenarioSpec } from './scenarios.js';
import type { Settings } from './settings.js';
import type { Target } from './targets.js';

const LEDGER_CHECK_TIMEOUT_MS = 60_000;

export interface ScenarioContext {
  env: Environment;
  targets: Target[];
  settings: Settings;
  progress: Progress;
  signal: AbortSignal;
  bigPrompts: readonly string[];
}

/** Concurrent loops of a scenario: --streams for streams, one for latency, else --connections or the scenario's default. */
export function concurrencyOf(spec: ScenarioSpec, settings: Settings): number {
  if (spec.name === 'latency') return 1;
  return spec.name === 'stream' ? settings.streams : (settings.connections ?? spec.connections);
}

function summaryLine(label: string, r: TargetResult): string {
  const stream = r.stream ? `, gap p99 ${r.stream.gapP99Ms.toFixed(1)} ms, ${r.stream.stalled} stalled` : '';
  return `    ${label}: ${r.rps.toFixed(0)}/s, p99 ${r.p99Ms.toFixed(2)} ms, ${r.errors} errors, ${r.non2xx} non-2xx${stream}`;
}

export async function runScenario(ctx: ScenarioContext, spec: ScenarioSpec): Promise<ScenarioReport> {
  const { env, targets, settings, progress, signal } = ctx;
  const tally = new LedgerTally();
  const concurrency = concurrencyOf(spec, settings);
  const mixOf = (target: Target, streams = settings.streams) => {
    const input: ScenarioInput = { target, tenants: env.tenants, connections: concurrency, streams, bigPrompts: ctx.bigPrompts, historyTokens: settings.historyTokens };
    return spec.mix(input);
  };

  const measure = async (target: Target, durationS: number, label: string, streams?: number): Promise<WindowResult> => {
    const window = await measureWindow({
      env,
      target,
      groups: loadGroups(mixOf(target, streams)),
      durationS,
      startSpreadMs: spec.startSpreadMs,
      drainTimeoutMs: spec.drainTimeoutMs,
      label: `[${spec.name}] ${label}`,
      progress,
      signal,
    });
    if (window.ledger !== undefined) tally.add(`${spec.name} ${label}`, window.ledger.priced2xx, window.ledger.delta);
    return window;
  };

  const countersBefore = await readNemoCounters(env.origins.nemo);
  const warmupS = settings.warmupS ?? spec.warmupS;
  if (warmupS > 0) {
    for (const target of targets) {
      progress.note(`[${spec.name}] warming up ${target.name}: ${warmupS} s`);
      await measure(target, warmupS, `warmup ${target.name}`);
    }
  }

  const rounds: Array<Record<string, TargetResult>> = [];
  const mixTotals: Record<string, ScenarioResult[]> = {};
  for (let round = 1; round <= settings.rounds; round++) {
    const results: Record<string, TargetResult> = {};
    for (const target of targets) {
      const label = `round ${round}/${settings.rounds} ${target.name}`;
      progress.note(`[${spec.name}] ${label}: ${settings.durationS} s x ${concurrency} ${spec.name === 'stream' ? 'streams' : 'connections'}`);
      const window = await measure(target, settings.durationS, label);
      // The agent's streams are its loops; the mixed scenario's stream shapes are only some of them.
      results[target.name] = targetResult(window, spec.stream ? settings.streams : spec.name === 'agent' ? concurrency : 0);
      progress.note(summaryLine(target.name, results[target.name]!));
      if (spec.name === 'mixed') addVerdicts(mixTotals, target.name, verdicts(mixOf(target), window.groups));
    }
    rounds.push(results);
  }

  let knee: KneeResult | undefined;
  if (spec.name === 'stream' && settings.kneeSteps.length > 0) {
    knee = await runKnee(settings.kneeSteps, settings.kneeDurationS, targets, async (target, streams, label) => {
      progress.note(`[${spec.name}] ${label}: ${settings.kneeDurationS} s`);
      const result = targetResult(await measure(target, settings.kneeDurationS, label, streams), streams);
      progress.note(summaryLine(target.name, result));
      return result;
    });
  }

  const targetsCombined = Object.fromEntries(targets.map((t) => [t.name, combineRounds(rounds.map((r) => r[t.name]!))]));
  const report: ScenarioReport = {
    scenario: spec.name,
    description: spec.description,
    settings: {
      durationS: settings.durationS,
      rounds: settings.rounds,
      warmupS,
      concurrency,
      orgs: settings.orgs,
      keysUsed: spec.name === 'chat-hot' ? 1 : settings.orgs,
      ...(spec.name === 'agent' ? { historyTokens: settings.historyTokens } : {}),
      targets: targets.map((t) => t.name),
    },
    runtimes: Object.fromEntries(targets.flatMap((t) => (t.runtime === undefined ? [] : [[t.name, t.runtime]]))),
    targets: targetsCombined,
    ratios: ratiosOf(targetsCombined),
    rounds,
  };
  report.nemoWork = workBetween(countersBefore, await readNemoCounters(env.origins.nemo));
  if (spec.stream) report.streams = streamSection(targetsCombined, settings.streams, knee);
  if (spec.name === 'mixed') report.mix = mixTotals;
  if (spec.name === 'agent') {
    report.agent = agentSection(targetsCombined, { conversations: concurrency, historyTokens: settings.historyTokens, turnTokens: { ...AGENT_TURN_TOKENS }, maxTokens: AGENT_MAX_TOKENS });
  }
  if (tally.windows > 0) {
    progress.note(`[${spec.name}] nemo ledger check`);
    report.ledger = tally.result(await runLedgerCheck(env.cli, env.nemoEnv, LEDGER_CHECK_TIMEOUT_MS));
  }
  return report;
}

/** Sums one round's answers by status into the scenario's totals, per target and shape. */
function addVerdicts(totals: Record<string, ScenarioResult[]>, target: string, round: ScenarioResult[]): void {
  const existing = totals[target];
  if (existing === undefined) {
    totals[target] = round;
    return;
  }
  round.forEach((shape, i) => {
    const into = existing[i]!;
    for (const [status, n] of Object.entries(shape.byStatus)) into.byStatus[status] = (into.byStatus[status] ?? 0) + n;
    into.sawExpected ||= shape.sawExpected;
  });
}
