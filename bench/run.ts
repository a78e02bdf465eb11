// `npm run bench`: spawns the mock upstream, the bare baseline proxy and NemoRouter as separate
// processes on loopback, then loads direct (the mock), bare and nemo one after another with the
// same request, so the gateway's cost is read against a baseline from the same run and machine.
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { peakRssMb, spawnChild, waitForHttp, waitForLine } from './lib/child.js';
import { Run } from './lib/run.js';
import type { Child } from './lib/child.js';
import { freePorts } from './lib/free-port.js';
import { runLoad } from './lib/load.js';
import { TARGETS, buildReport, formatTable } from './lib/report.js';
import type { Target, TargetResult } from './lib/report.js';

const HOST = '127.0.0.1';
const STARTUP_TIMEOUT_MS = 20_000;
const SCENARIOS = ['chat', 'stream', 'latency'] as const;
type Scenario = (typeof SCENARIOS)[number];

const USAGE =
  'usage: npm run bench -- [--scenario chat|stream|latency] [--duration S] [--connections N] [--rounds N] [--json FILE]';

interface Settings {
  scenario: Scenario;
  durationS: number;
  connections: number;
  rounds: number;
  jsonPath: string | undefined;
}

function parseSettings(argv: string[]): Settings {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenario: { type: 'string', default: 'chat' },
      duration: { type: 'string', default: '10' },
      connections: { type: 'string' },
      rounds: { type: 'string', default: '3' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const scenario = values.scenario as Scenario;
  if (!SCENARIOS.includes(scenario)) throw new Error(`unknown scenario ${values.scenario}; ${USAGE}`);
  const durationS = Number(values.duration);
  if (!Number.isFinite(durationS) || durationS <= 0) throw new Error(`--duration must be > 0; ${USAGE}`);
  // latency measures one request at a time: any concurrency would measure queueing instead.
  const connections = scenario === 'latency' ? 1 : Number(values.connections ?? '64');
  if (!Number.isInteger(connections) || connections < 1) throw new Error(`--connections must be >= 1; ${USAGE}`);
  if (scenario === 'latency' && values.connections !== undefined) {
    process.stderr.write('note: the latency scenario always uses 1 connection\n');
  }
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new Error(`--rounds must be 1..20; ${USAGE}`);
  return { scenario, durationS, connections, rounds, jsonPath: values.json };
}

// No artificial time-to-first-token anywhere: the upstream should be as cheap as possible so the
// proxies' own costs dominate. The stream mock paces tokens like a real model would.
function mockArgs(scenario: Scenario): string[] {
  if (scenario === 'stream') return ['--ttft-ms', '0', '--tokens-per-second', '50', '--completion-tokens', '64'];
  return ['--ttft-ms', '0'];
}

// The mock honours max_tokens, so the stream body must allow the 64 tokens the stream mock paces.
// `nemo-free` asks for a model priced at zero: the same gateway path without the ledger (nothing
// to hold), so nemo / nemo-free is the ledger's cost, measured in the same run.
function requestBody(scenario: Scenario, target: Target): string {
  const model = target === 'nemo-free' ? 'bench-free' : 'bench-model';
  const messages = [{ role: 'user', content: 'Say hello to the benchmark' }];
  if (scenario === 'stream') return JSON.stringify({ model, messages, max_tokens: 64, stream: true });
  return JSON.stringify({ model, messages, max_tokens: 16 });
}

function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}


interface Servers {
  mock: Child;
  bare: Child;
  nemo: Child;
  urls: Record<Target, string>;
  /** Per target: the demo API key NemoRouter created in its fresh database, or (nemo-guarded) a key of the same org with guardrails. */
  headers: Record<Target, Record<string, string>>;
}

/**
 * A second key of the demo org (the demo key is its admin) whose guardrails scan prompts and
 * answers: PII redaction, deny words, injection heuristics and a token limit. Nothing in the bench
 * request matches, so the target measures the cost of looking.
 */
const BENCH_GUARDRAILS = {
  deny_words: ['project falcon', 'internal only'],
  pii: { email: 'redact', phone: 'redact', credit_card: 'block', iban: 'redact', us_ssn: 'block', ip_address: 'flag', secret: 'block' },
  injection: 'block',
  max_input_tokens: 8000,
};

async function createGuardedKey(origin: string, admin: Record<string, string>): Promise<string> {
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${origin}${path}`, { method, headers: { ...admin, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<Record<string, unknown>>;
  };
  const orgs = (await call('GET', '/admin/v1/orgs')) as { data: Array<{ id: string }> };
  const key = await call('POST', `/admin/v1/orgs/${orgs.data[0]!.id}/keys`, { name: 'bench guarded', role: 'member', guardrail_policy: BENCH_GUARDRAILS });
  return key.key as string;
}

async function startServers(run: Run, scenario: Scenario): Promise<Servers> {
  const cli = fileURLToPath(new URL('../src/cli.js', import.meta.url));
  const bareProxy = fileURLToPath(new URL('./bare-proxy.js', import.meta.url));
  if (!existsSync(cli)) throw new Error(`${cli} not found; run \`npm run build\` first`);

  const [mockPort, barePort, nemoPort] = (await freePorts(3, HOST)) as [number, number, number];
  const mock = spawnChild('mock upstream', [cli, 'mock-upstream', '--port', String(mockPort), '--host', HOST, ...mockArgs(scenario)]);
  run.children.push(mock);
  progress(`starting mock upstream on ${HOST}:${mockPort}`);
  await waitForLine(mock, /mock upstream listening on (http:\/\/\S+)/, STARTUP_TIMEOUT_MS);
  const mockOrigin = `http://${HOST}:${mockPort}`;

  run.tmpDir = await mkdtemp(join(tmpdir(), 'nemo-bench-'));
  // Traversable, so the embedded PostgreSQL's OS user reaches its cluster inside (and it is removed with the dir).
  await chmod(run.tmpDir, 0o755);
  const configPath = join(run.tmpDir, 'config.json');
  const config = {
    models: [
      {
        name: 'bench-model',
        deployments: [
          {
            provider: 'openai-compatible',
            model: 'mock',
            baseUrl: `${mockOrigin}/v1`,
            inputPricePerMTok: 1,
            outputPricePerMTok: 2,
            maxOutputTokens: 4096,
          },
        ],
      },
      {
        name: 'bench-free',
        deployments: [{ provider: 'openai-compatible', model: 'mock', baseUrl: `${mockOrigin}/v1`, maxOutputTokens: 4096 }],
      },
    ],
  };
  await writeFile(configPath, JSON.stringify(config, null, 2));

  const bare = spawnChild('bare proxy', [bareProxy, '--port', String(barePort), '--upstream', mockOrigin]);
  run.children.push(bare);
  // A fresh embedded database in the run's temp dir: nemo creates a demo org and prints its key;
  // every request then goes through real key authentication.
  const nemoEnv: NodeJS.ProcessEnv = { ...process.env, PORT: String(nemoPort), HOST, NEMO_CONFIG: configPath, NEMO_DATA_DIR: join(run.tmpDir, 'nemo-data') };
  delete nemoEnv.NEMO_MASTER_KEY;
  delete nemoEnv.DATABASE_URL;
  const nemo = spawnChild('nemo', [cli, 'start'], nemoEnv);
  run.children.push(nemo);
  progress(`starting bare proxy on ${HOST}:${barePort} and nemo on ${HOST}:${nemoPort}`);
  const [, keyLine] = await Promise.all([
    waitForLine(bare, /bare proxy listening on (http:\/\/\S+)/, STARTUP_TIMEOUT_MS),
    waitForLine(nemo, /Bearer (sk-nemo-\w+)/, STARTUP_TIMEOUT_MS),
  ]);
  await waitForHttp(nemo, `http://${HOST}:${nemoPort}/healthz`, STARTUP_TIMEOUT_MS);

  const path = '/v1/chat/completions';
  const demo = { authorization: `Bearer ${keyLine[1]!}` };
  const guarded = { authorization: `Bearer ${await createGuardedKey(`http://${HOST}:${nemoPort}`, demo)}` };
  return {
    mock,
    bare,
    nemo,
    headers: { direct: demo, bare: demo, 'nemo-free': demo, nemo: demo, 'nemo-guarded': guarded },
    urls: {
      direct: `${mockOrigin}${path}`,
      bare: `http://${HOST}:${barePort}${path}`,
      'nemo-free': `http://${HOST}:${nemoPort}${path}`,
      nemo: `http://${HOST}:${nemoPort}${path}`,
      'nemo-guarded': `http://${HOST}:${nemoPort}${path}`,
    },
  };
}

/**
 * Loads the targets in turn, round after round: on a shared 2-core machine the noise drifts over
 * seconds, so interleaving and taking medians keeps the ratios honest.
 */
async function benchTargets(run: Run, settings: Settings, servers: Servers): Promise<Array<Record<Target, TargetResult>>> {
  // A stream request takes ~1.3 s, so its warmup must be long enough to complete a few.
  const warmupS = settings.scenario === 'stream' ? 3 : 1;
  const progressBar = process.stdout.isTTY === true && process.stderr.isTTY === true;
  const servedBy: Record<Target, Child> = { direct: servers.mock, bare: servers.bare, 'nemo-free': servers.nemo, nemo: servers.nemo, 'nemo-guarded': servers.nemo };
  const bodies = Object.fromEntries(TARGETS.map((target) => [target, requestBody(settings.scenario, target)])) as Record<Target, string>;
  const signal = run.abort.signal;
  for (const target of TARGETS) {
    progress(`warming up ${target}: ${warmupS} s`);
    await runLoad({ url: servers.urls[target], body: bodies[target], headers: servers.headers[target], connections: settings.connections, signal, durationS: warmupS, progressBar: false });
  }
  const rounds: Array<Record<Target, TargetResult>> = [];
  for (let round = 1; round <= settings.rounds; round++) {
    const results: Partial<Record<Target, TargetResult>> = {};
    for (const target of TARGETS) {
      progress(`[round ${round}/${settings.rounds}] ${target}: ${settings.durationS} s x ${settings.connections} connections`);
      const result: TargetResult = await runLoad({ url: servers.urls[target], body: bodies[target], headers: servers.headers[target], connections: settings.connections, signal, durationS: settings.durationS, progressBar });
      if (signal.aborted) throw new Error('interrupted');
      // A crashed server would otherwise show up only as a column of errors.
      for (const child of [servers.mock, servedBy[target]]) {
        if (child.exited()) throw new Error(`${child.name} exited during the ${target} run:\n${child.tail().trim()}`);
      }
      const rss = peakRssMb(servedBy[target]);
      if (rss !== undefined) result.peakRssMb = rss;
      results[target] = result;
      progress(`    ${result.rps.toFixed(0)} req/s, p99 ${result.p99Ms.toFixed(2)} ms, ${result.errors} errors, ${result.non2xx} non-2xx`);
    }
    rounds.push(results as Record<Target, TargetResult>);
  }
  return rounds;
}

async function main(): Promise<void> {
  const settings = parseSettings(process.argv.slice(2));
  const run = new Run();
  process.on('exit', () => run.killSync());

  let interrupts = 0;
  process.on('SIGINT', () => {
    if (++interrupts > 1) process.exit(130);
    progress('interrupted; stopping children');
    void run.cleanup().finally(() => process.exit(130));
  });
  process.on('SIGTERM', () => void run.cleanup().finally(() => process.exit(143)));

  // Hard bound on the whole run: startup, plus per target warmup + measurement + slack for
  // autocannon to drain its last in-flight requests.
  const budgetMs = STARTUP_TIMEOUT_MS * 2 + TARGETS.length * (settings.rounds * (settings.durationS + 5) + 10) * 1000;
  const watchdog = setTimeout(() => {
    progress(`bench exceeded its ${Math.round(budgetMs / 1000)} s budget; stopping children`);
    void run.cleanup().finally(() => process.exit(1));
  }, budgetMs);
  watchdog.unref();

  try {
    progress(`scenario ${settings.scenario}: ${settings.rounds} round(s) of ${settings.durationS} s per target, ${settings.connections} connections`);
    const servers = await startServers(run, settings.scenario);
    const { durationS, connections, rounds } = settings;
    const report = buildReport(settings.scenario, { durationS, connections, rounds }, await benchTargets(run, settings, servers));
    process.stdout.write(`\n${formatTable(report)}\n`);
    if (settings.jsonPath !== undefined) {
      await writeFile(settings.jsonPath, `${JSON.stringify(report, null, 2)}\n`);
      progress(`wrote ${settings.jsonPath}`);
    }
  } finally {
    clearTimeout(watchdog);
    await run.cleanup();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
