// The benchmark harness itself, not the gateway's speed: `npm run bench -- --scenario all` at toy
// sizes (1 s windows, 8 connections, 16 streams, a one-step knee, agent histories of 8k tokens) must finish, write JSON with every
// field bench/README.md documents, and pass its own ledger reconciliation and `nemo ledger check`.
// No timing is asserted. Runs on the dist/ that `npm test`'s pretest build produced; against the
// test run's PostgreSQL server when that is an external one, else on the bench's embedded cluster.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TEST_APP_PASSWORD, adminUrl } from '../support/test-database.js';

const RUNNER = fileURLToPath(new URL('../../dist/bench/run.js', import.meta.url));
const RUN_TIMEOUT_MS = 150_000;
const SCENARIOS = ['chat', 'chat-hot', 'stream', 'latency', 'big-prompt', 'mixed', 'agent'];
const AGENT_HISTORY_TOKENS = 8000;
const TARGETS = ['direct', 'bare', 'nemo'];

type Json = Record<string, any>;

interface BenchRun {
  code: number | null;
  output: string;
  json: Json | undefined;
}

const ALL_AT_TOY_SIZES = ['--scenario', 'all', '--duration', '1', '--rounds', '1', '--warmup', '0', '--connections', '8', '--orgs', '4', '--streams', '16', '--knee-steps', '8', '--knee-duration', '1', '--history-tokens', String(AGENT_HISTORY_TOKENS)];

async function runBench(jsonPath: string, options: string[] = ALL_AT_TOY_SIZES): Promise<BenchRun> {
  const args = [RUNNER, ...options, '--json', jsonPath];
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (inject('pgKind') === 'external') {
    args.push('--database-url', adminUrl());
    env.NEMO_DB_APP_PASSWORD = TEST_APP_PASSWORD;
  }
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-20_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const timer = setTimeout(() => child.kill('SIGTERM'), RUN_TIMEOUT_MS - 10_000);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearTimeout(timer);
  const json = existsSync(jsonPath) ? (JSON.parse(await readFile(jsonPath, 'utf8')) as Json) : undefined;
  return { code, output, json };
}

describe('npm run bench -- --scenario all (smoke)', () => {
  let dir: string;
  let run: BenchRun;

  beforeAll(async () => {
    if (!existsSync(RUNNER)) throw new Error(`${RUNNER} is missing: build first (npm test runs \`npm run build\` as pretest)`);
    dir = await mkdtemp(join(tmpdir(), 'bench-smoke-'));
    run = await runBench(join(dir, 'bench.json'));
  }, RUN_TIMEOUT_MS);

  afterAll(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('completes and writes the JSON', () => {
    expect(run.code, run.output).toBe(0);
    expect(run.json, run.output).toBeDefined();
    expect(run.json!.scenario).toBe('all');
    expect(Object.keys(run.json!.scenarios).sort()).toEqual([...SCENARIOS].sort());
    expect(run.json!.failures).toEqual([]);
    expect(run.json!.machine).toMatchObject({ cpus: expect.any(Number), node: process.version, database: inject('pgKind') });
  });

  it.each(SCENARIOS)('%s: every target has every field, and the ratios are there', (name) => {
    const report: Json = run.json!.scenarios[name];
    expect(report.scenario).toBe(name);
    expect(report.settings).toMatchObject({ durationS: 1, rounds: 1, targets: TARGETS });
    for (const target of TARGETS) {
      const result: Json = report.targets[target];
      for (const field of ['rps', 'p50Ms', 'p90Ms', 'p99Ms', 'maxMs', 'requests', 'meanRequestKb', 'ok', 'non2xx', 'errors', 'unfinished', 'cpuSPer1k', 'peakRssMb', 'loadGenCpuS']) {
        expect(result[field], `${name} ${target}.${field}`).toEqual(expect.any(Number));
      }
      expect(result.requests, `${name} ${target} sent nothing`).toBeGreaterThan(0);
      expect(result.byStatus).toEqual(expect.any(Object));
      // The mock has no event-loop reading; the two proxies do.
      if (target !== 'direct') expect(result.eventLoopLagP99Ms, `${name} ${target}.eventLoopLagP99Ms`).toEqual(expect.any(Number));
    }
    if (inject('pgKind') === 'embedded') expect(report.targets.nemo.dbCpuSPer1k).toEqual(expect.any(Number));
    for (const field of ['nemoOverBareRps', 'nemoOverDirectRps', 'bareOverDirectRps', 'addedP50Ms', 'addedP99Ms', 'bareAddedP99Ms']) {
      expect(report.ratios[field], `${name} ratios.${field}`).toEqual(expect.any(Number));
    }
    expect(report.rounds).toHaveLength(1);
  });

  it.each(SCENARIOS)('%s: every priced 2xx was settled once, and nemo ledger check passed', (name) => {
    const ledger: Json = run.json!.scenarios[name].ledger;
    expect(ledger.priced2xx, `${name}: no priced request succeeded`).toBeGreaterThan(0);
    expect(ledger).toMatchObject({ settled: ledger.priced2xx, settleEntries: ledger.priced2xx, open: 0, match: true, mismatches: [] });
    expect(ledger.check).toMatchObject({ ok: true, exitCode: 0, offending: [], offendingWindows: [] });
  });

  it('stream: timings per target, the stream section and the knee', () => {
    const report: Json = run.json!.scenarios.stream;
    for (const target of TARGETS) {
      const stream: Json = report.targets[target].stream;
      for (const field of ['concurrent', 'ttftP50Ms', 'ttftP99Ms', 'gapP50Ms', 'gapP99Ms', 'gapMaxMs', 'stalled', 'silent', 'incomplete', 'eventsPerStream']) {
        expect(stream[field], `stream ${target}.stream.${field}`).toEqual(expect.any(Number));
      }
      expect(stream.concurrent).toBe(16);
    }
    for (const field of ['concurrent', 'gapP99Ms', 'bareGapP99Ms', 'directGapP99Ms', 'addedGapP99Ms', 'ttftP99Ms', 'bareTtftP99Ms', 'stalled', 'bareStalled', 'directStalled']) {
      expect(report.streams[field], `streams.${field}`).toEqual(expect.any(Number));
    }
    expect(report.streams.knee).toMatchObject({ steps: [8], durationS: 1, maxGapP99Ms: 100 });
    for (const target of TARGETS) {
      expect(report.streams.knee.targets[target].held).toEqual(expect.any(Number));
      expect(report.streams.knee.targets[target].steps[0]).toMatchObject({ streams: 8, held: expect.any(Boolean), gapP99Ms: expect.any(Number), stalled: expect.any(Number) });
    }
  });

  it('mixed: each request shape got on nemo what it exists for (402, guardrail 400, upstream 502)', () => {
    const shapes: Json[] = run.json!.scenarios.mixed.mix.nemo;
    expect(shapes.map((s) => s.name)).toEqual(['chat', 'stream', 'stream, no usage', 'org without credits', 'guardrail block', 'upstream 500', 'cut mid-stream']);
    for (const shape of shapes) expect(shape.sawExpected, `${shape.name}: ${JSON.stringify(shape.byStatus)}`).toBe(true);
    // The 502s and cut streams charged nothing or what they produced: a request's own hold is
    // released; one that ran on a credit lease (the default mode) gives its bound back in process.
    if (process.env.NEMO_LEDGER_MODE === 'hold') expect(run.json!.scenarios.mixed.ledger.released).toBeGreaterThan(0);
  });

  it('agent: TTFT, CPU per request and request sizes per target, nemo/bare ratios, every answer a 2xx', () => {
    const report: Json = run.json!.scenarios.agent;
    expect(report.settings).toMatchObject({ concurrency: 8, historyTokens: AGENT_HISTORY_TOKENS });
    expect(report.agent).toMatchObject({ conversations: 8, historyTokens: AGENT_HISTORY_TOKENS, turnTokens: { min: 200, max: 2000 }, maxTokens: 64 });
    for (const target of TARGETS) {
      const agent: Json = report.agent.targets[target];
      for (const field of ['rps', 'ttftP50Ms', 'ttftP99Ms', 'cpuMsPerRequest', 'meanRequestKb', 'stalled']) {
        expect(agent[field], `agent ${target}.${field}`).toEqual(expect.any(Number));
      }
      expect(report.targets[target].stream.ttftP50Ms).toEqual(agent.ttftP50Ms);
      // Streamed answers, each request at least the system prompt, the tools and one turn.
      expect(agent.meanRequestKb, `agent ${target}`).toBeGreaterThan(5);
      expect(Object.keys(report.targets[target].byStatus), `agent ${target}: ${JSON.stringify(report.targets[target].byStatus)}`).toEqual(['200']);
    }
    for (const field of ['nemoOverBareRps', 'nemoOverBareTtftP50', 'nemoOverBareTtftP99', 'nemoOverBareCpuPerRequest']) {
      expect(report.agent[field], `agent.${field}`).toEqual(expect.any(Number));
    }
  });

  // Each agent request resends its session's history: nemo scans and counts it from the caches,
  // only the new turns are new work. Read from nemo's own counters through /metrics.
  it('agent: nemo answers resent history from its result caches', () => {
    const work: Json = run.json!.scenarios.agent.nemoWork;
    // At toy sizes a connection may not come back to a session within the run: at least the shared system prompt and tools hit.
    expect(work.scanVerdicts.hits, JSON.stringify(work)).toBeGreaterThan(0);
    // 8k-token histories are far below the agent key's max_input_tokens in bytes: the bound decides, nothing is counted.
    expect(work.inputLimitChecks.byteBound, JSON.stringify(work)).toBeGreaterThan(0);
    for (const name of Object.keys(run.json!.scenarios)) expect(run.json!.scenarios[name].nemoWork, name).toBeDefined();
  });

  it('reports every target as met, missed or not evaluated, and prints the verdicts', () => {
    const ids = (run.json!.targetsMet as Json[]).map((goal) => goal.id);
    expect(ids).toEqual(['chat-rps', 'latency-added-p99', 'stream-no-stall', 'stream-gap', 'stream-rss', 'stream-cpu', 'chat-event-loop-lag', 'chat-hot-rps', 'agent-rps', 'big-prompt-rps', 'chat-guardrails-rps', 'stream-knee']);
    for (const goal of run.json!.targetsMet as Json[]) {
      expect(goal).toMatchObject({ scenario: expect.any(String), text: expect.any(String), limit: expect.any(String) });
      expect([true, false, null]).toContain(goal.met);
    }
    expect(run.output).toMatch(/targets \(reported, not asserted\)/);
    expect(run.output).toMatch(/^(PASS|FAIL) {2}chat /m);
  });
});

describe('npm run bench -- --baseline DIR (smoke)', () => {
  const checkout = fileURLToPath(new URL('../..', import.meta.url));
  let dir: string;
  let run: BenchRun;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bench-baseline-'));
    // This checkout against itself: an A/A run, which only has to work and report.
    run = await runBench(join(dir, 'bench.json'), ['--scenario', 'latency', '--duration', '1', '--rounds', '1', '--warmup', '0', '--orgs', '2', '--baseline', checkout]);
  }, RUN_TIMEOUT_MS);

  afterAll(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('loads nemo-base as a fourth target, reconciles its ledger, and reports nemo against it', () => {
    expect(run.code, run.output).toBe(0);
    const report: Json = run.json!;
    expect(report.settings.targets).toEqual([...TARGETS, 'nemo-base']);
    expect(report.targets['nemo-base'].ok, run.output).toBeGreaterThan(0);
    expect(report.targets['nemo-base'].non2xx).toBe(0);
    expect(report.ratios).toMatchObject({ nemoOverBaseRps: expect.any(Number), nemoOverBaseP99: expect.any(Number), nemoOverBaseCpuPer1k: expect.any(Number) });
    expect(run.output).toMatch(/baseline: nemo\/nemo-base RPS \d/);
    expect(run.json!.failures).toEqual([]);
  });

  it('refuses a directory without a build, and a build whose migrations differ', async () => {
    const refused = await runBench(join(dir, 'none.json'), ['--baseline', dir]);
    expect(refused.code).not.toBe(0);
    expect(refused.output).toMatch(/--baseline must be a built checkout/);
    // A fake checkout: a built CLI, and migrations that lack this checkout's newest.
    const fake = join(dir, 'older');
    await mkdir(join(fake, 'dist', 'src'), { recursive: true });
    await writeFile(join(fake, 'dist', 'src', 'cli.js'), '');
    await cp(join(checkout, 'migrations'), join(fake, 'migrations'), { recursive: true });
    const newest = (await readdir(join(fake, 'migrations'))).filter((f) => f.endsWith('.sql')).sort().at(-1)!;
    await rm(join(fake, 'migrations', newest));
    const older = await runBench(join(dir, 'older.json'), ['--baseline', fake]);
    expect(older.code).not.toBe(0);
    expect(older.output).toContain(`--baseline must have this checkout's migrations`);
    expect(older.output).toContain(`only here: ${newest}`);
  });
});
