// `npm run bench`: the benchmark suite. Starts the mock upstream, the bare baseline proxy and
// NemoRouter (on its own database; with --fallback a second one on Node's http module) as separate
// processes on loopback, then runs each chosen scenario against direct, bare and nemo in the same
// run, so the gateway is always read against baselines from the same machine and minute. Prints a table per scenario and the targets' verdicts,
// writes JSON with --json, and fails loudly when the ledger does not match what was served.
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { bigPrompts } from './lib/big-prompts.js';
import { startEnvironment } from './lib/environment.js';
import { evaluateGoals, formatGoals } from './lib/goals.js';
import { Progress } from './lib/progress.js';
import type { ScenarioReport } from './lib/report.js';
import { Run } from './lib/run.js';
import { runScenario } from './lib/scenario-runner.js';
import { SCENARIO_SPECS } from './lib/scenarios.js';
import { formatScenario } from './lib/table.js';
import { USAGE, UsageError, maxStreams, parseSettings } from './lib/settings.js';
import type { Settings } from './lib/settings.js';
import { targetsOf } from './lib/targets.js';

const STARTUP_BUDGET_S = 150;
/** nemo's default upstream.connectionsPerOrigin: runs that need no more keep it. */
const DEFAULT_UPSTREAM_CONNECTIONS = 256;

/** A hard bound on the whole run, from the settings: every window, drain and check, with slack. */
function budgetS(settings: Settings, targets: number): number {
  let total = STARTUP_BUDGET_S;
  for (const name of settings.scenarios) {
    const spec = SCENARIO_SPECS[name];
    const window = (durationS: number) => durationS + spec.drainTimeoutMs / 1000 + 20;
    total += targets * (window(settings.warmupS ?? spec.warmupS) + settings.rounds * window(settings.durationS)) + 90;
    if (name === 'stream') total += settings.kneeSteps.length * targets * window(settings.kneeDurationS);
  }
  return total;
}

function machine(): Record<string, unknown> {
  let commit: string | undefined;
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    commit = undefined;
  }
  return { date: new Date().toISOString(), cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryMb: Math.round(totalmem() / 1048576), node: process.version, loadAvg1mAtStart: Number(loadavg()[0]!.toFixed(2)), commit };
}

/** Everything that makes the run fail: the ledger disagreeing with what was served, or its check failing. */
function ledgerFailures(reports: Record<string, ScenarioReport>): string[] {
  const failures: string[] = [];
  for (const [name, report] of Object.entries(reports)) {
    const ledger = report.ledger;
    if (ledger === undefined) continue;
    for (const m of ledger.mismatches) failures.push(`${name}: ${m.window}: the load generator saw ${m.priced2xx} priced 2xx, the ledger settled ${m.settled} holds (${m.settleEntries} settle entries)`);
    if (ledger.open !== 0) failures.push(`${name}: ${ledger.open} holds still open after the scenario`);
    if (ledger.check !== undefined && !ledger.check.ok) failures.push(`${name}: nemo ledger check failed: ${ledger.check.error ?? JSON.stringify({ offending: ledger.check.offending, offending_windows: ledger.check.offendingWindows })}`);
  }
  return failures;
}

async function main(): Promise<void> {
  const parsed = parseSettings(process.argv.slice(2));
  if (parsed === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const settings = parsed;
  const run = new Run();
  process.on('exit', () => run.killSync());
  const progress = new Progress();

  let interrupts = 0;
  process.on('SIGINT', () => {
    if (++interrupts > 1) process.exit(130);
    progress.note('interrupted; stopping children');
    void run.cleanup().finally(() => process.exit(130));
  });
  process.on('SIGTERM', () => void run.cleanup().finally(() => process.exit(143)));

  const budget = budgetS(settings, 3 + (settings.ablation ? 2 : 0) + (settings.fallback ? 1 : 0) + (settings.baselineCli !== undefined ? 1 : 0));
  const watchdog = setTimeout(() => {
    progress.note(`bench exceeded its ${Math.round(budget)} s budget; stopping children`);
    void run.cleanup().finally(() => process.exit(1));
  }, budget * 1000);
  watchdog.unref();

  try {
    const machineInfo = machine();
    const env = await startEnvironment(run, {
      orgs: settings.orgs,
      upstreamConnections: Math.max(DEFAULT_UPSTREAM_CONNECTIONS, maxStreams(settings), settings.connections ?? 0),
      databaseUrl: settings.databaseUrl,
      nodeBinary: settings.nodeBinary,
      fallback: settings.fallback,
      baselineCli: settings.baselineCli,
      log: (line) => progress.note(line),
    });
    machineInfo.database = env.database.kind;
    machineInfo.gatewayNodeBinary = settings.nodeBinary;
    const targets = targetsOf(env, { ablation: settings.ablation, fallback: settings.fallback, baseline: settings.baselineCli !== undefined });
    let prompts: string[] = [];
    if (settings.scenarios.includes('big-prompt')) {
      progress.note('making the big prompts');
      prompts = bigPrompts();
    }
    const reports: Record<string, ScenarioReport> = {};
    for (const name of settings.scenarios) {
      const report = await runScenario({ env, targets, settings, progress, signal: run.abort.signal, bigPrompts: prompts }, SCENARIO_SPECS[name]);
      reports[name] = report;
      process.stdout.write(`\n${formatScenario(report)}\n`);
    }
    machineInfo.loadAvg1mAtEnd = Number(loadavg()[0]!.toFixed(2));

    const goals = evaluateGoals(reports);
    process.stdout.write(`\ntargets (reported, not asserted):\n${formatGoals(goals)}\n`);
    const failures = ledgerFailures(reports);
    const common = { targetsMet: goals, failures, machine: machineInfo };
    const only = settings.scenarios.length === 1 ? reports[settings.scenarios[0]!] : undefined;
    const document = only !== undefined ? { ...only, ...common } : { scenario: 'all', scenarios: reports, ...common };
    if (settings.jsonPath !== undefined) {
      await writeFile(settings.jsonPath, `${JSON.stringify(document, null, 2)}\n`);
      progress.note(`wrote ${settings.jsonPath}`);
    }
    if (failures.length > 0) {
      process.stderr.write(`\nBENCH FAILED: the ledger does not match what was served\n${failures.map((f) => `  ${f}`).join('\n')}\n`);
      process.exitCode = 1;
    } else if (Object.values(reports).some((report) => report.ledger !== undefined)) {
      process.stdout.write('ledger: every priced 2xx settled exactly once; nemo ledger check passed\n');
    }
  } finally {
    clearTimeout(watchdog);
    await run.cleanup();
  }
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = 2;
    return;
  }
  process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
