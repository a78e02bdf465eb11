// The bench's command line, validated once: every problem is reported, defaults live here.
import { accessSync, constants, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { migrationsDirFromHere } from '../../src/db/migrate.js';
import { AGENT_HISTORY_TOKENS } from './agent-sessions.js';
import { SCENARIOS } from './scenarios.js';
import type { ScenarioName } from './scenarios.js';

export const USAGE = `usage: npm run bench -- [options]
  --scenario NAME      ${SCENARIOS.join(', ')}, or all (default chat)
  --duration S         measured seconds per target per round (default 10)
  --connections N      concurrent connections of chat, chat-hot, big-prompt, mixed and agent
                       (default: 64; big-prompt and agent 8; latency always 1)
  --streams N          concurrent streams in the stream scenario (default 1000)
  --rounds N           rounds; targets are interleaved within a round, medians reported (default 3)
  --warmup S           warmup seconds per target before the rounds (default 1; stream 2)
  --knee-steps LIST    stream scenario: stream counts of the knee ramp, or none (default 250,500,1000,2000,4000)
  --knee-duration S    seconds per knee step per target (default 5)
  --history-tokens N   agent scenario: a session's history cap in tokens, ~4 characters each
                       (default ${AGENT_HISTORY_TOKENS}; at most that: the agent keys' limit is 128,000)
  --orgs N             orgs with credits and keys that requests are spread over (default 50)
  --ablation           also load nemo-free and nemo-plain (what the ledger and the guardrails cost)
  --fallback           also load nemo-node: a second gateway process forced onto Node's http module
                       (NEMO_HTTP_SERVER=node), to read the fallback against the native build
  --baseline DIR       also load nemo-base: the gateway built in another checkout (DIR/dist/src/cli.js,
                       e.g. a git worktree of the commit before a change), as nemo, on the same database
                       and tenants, interleaved with it in every round: an A/B in one run
  --node PATH          the Node binary the gateway processes run on (default: $NEMO_BENCH_NODE,
                       else the bench's own); the mock and the bare proxy stay on the bench's
  --database-url URL   create the bench database on this server (needs NEMO_DB_APP_PASSWORD)
                       instead of on an embedded PostgreSQL in the temp dir
  --json FILE          also write the results as JSON`;

export interface Settings {
  scenarios: ScenarioName[];
  durationS: number;
  /** Undefined: each scenario's own default. */
  connections: number | undefined;
  streams: number;
  rounds: number;
  /** Undefined: each scenario's own default. */
  warmupS: number | undefined;
  kneeSteps: number[];
  kneeDurationS: number;
  /** agent: a session ends before its history would pass this many tokens. */
  historyTokens: number;
  orgs: number;
  ablation: boolean;
  /** Adds the nemo-node target (the gateway on Node's http module). */
  fallback: boolean;
  /** Adds the nemo-base target: the CLI of another checkout's build (an A/B in one run). */
  baselineCli: string | undefined;
  /** The Node binary of the gateway processes. */
  nodeBinary: string;
  databaseUrl: string | undefined;
  jsonPath: string | undefined;
}

export class UsageError extends Error {}

export function parseSettings(argv: string[]): Settings | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      scenario: { type: 'string', default: 'chat' },
      duration: { type: 'string', default: '10' },
      connections: { type: 'string' },
      streams: { type: 'string', default: '1000' },
      rounds: { type: 'string', default: '3' },
      warmup: { type: 'string' },
      'knee-steps': { type: 'string', default: '250,500,1000,2000,4000' },
      'knee-duration': { type: 'string', default: '5' },
      'history-tokens': { type: 'string', default: String(AGENT_HISTORY_TOKENS) },
      orgs: { type: 'string', default: '50' },
      ablation: { type: 'boolean', default: false },
      fallback: { type: 'boolean', default: false },
      baseline: { type: 'string' },
      node: { type: 'string' },
      'database-url': { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const problems: string[] = [];
  const number = (flag: string, text: string, min: number, max: number, integer: boolean): number => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      problems.push(`--${flag} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${JSON.stringify(text)}`);
    }
    return n;
  };
  let scenarios: ScenarioName[] = [];
  if (values.scenario === 'all') scenarios = [...SCENARIOS];
  else if ((SCENARIOS as readonly string[]).includes(values.scenario)) scenarios = [values.scenario as ScenarioName];
  else problems.push(`--scenario must be one of ${SCENARIOS.join(', ')}, all; got ${JSON.stringify(values.scenario)}`);
  const kneeText = values['knee-steps'].trim();
  const kneeSteps = kneeText === 'none' || kneeText === '' ? [] : kneeText.split(',').map((step) => number('knee-steps', step, 1, 20_000, true));
  if (kneeSteps.some((step, i) => i > 0 && step <= kneeSteps[i - 1]!)) problems.push('--knee-steps must be increasing');
  const nodeBinary = values.node ?? (process.env.NEMO_BENCH_NODE || process.execPath);
  try {
    accessSync(nodeBinary, constants.X_OK);
  } catch {
    problems.push(`${values.node !== undefined ? '--node' : 'NEMO_BENCH_NODE'} must be an executable Node binary, got ${JSON.stringify(nodeBinary)}`);
  }
  const baselineCli = values.baseline === undefined ? undefined : join(resolve(values.baseline), 'dist', 'src', 'cli.js');
  if (baselineCli !== undefined && !existsSync(baselineCli)) problems.push(`--baseline must be a built checkout (${baselineCli} not found; run \`npm run build\` there)`);
  else if (values.baseline !== undefined) {
    const mismatch = migrationMismatch(resolve(values.baseline));
    if (mismatch !== undefined) problems.push(`--baseline must have this checkout's migrations (both gateways share one database, and each checks them at start): ${mismatch}`);
  }
  const settings: Settings = {
    scenarios,
    durationS: number('duration', values.duration, 0.5, 3600, false),
    connections: values.connections === undefined ? undefined : number('connections', values.connections, 1, 10_000, true),
    streams: number('streams', values.streams, 1, 20_000, true),
    rounds: number('rounds', values.rounds, 1, 20, true),
    warmupS: values.warmup === undefined ? undefined : number('warmup', values.warmup, 0, 600, false),
    kneeSteps,
    kneeDurationS: number('knee-duration', values['knee-duration'], 0.5, 600, false),
    historyTokens: number('history-tokens', values['history-tokens'], 4_000, AGENT_HISTORY_TOKENS, true),
    orgs: number('orgs', values.orgs, 1, 1000, true),
    ablation: values.ablation,
    fallback: values.fallback,
    baselineCli,
    nodeBinary,
    databaseUrl: values['database-url'],
    jsonPath: values.json,
  };
  if (problems.length > 0) throw new UsageError(`${problems.join('\n')}\n${USAGE}`);
  return settings;
}

/** The most streams any window opens: both proxies get that many upstream connections. */
export function maxStreams(settings: Settings): number {
  if (!settings.scenarios.includes('stream')) return 0;
  return Math.max(settings.streams, ...settings.kneeSteps);
}

/** How the baseline's migrations differ from this checkout's (names and contents), or undefined. */
function migrationMismatch(baselineRoot: string): string | undefined {
  const read = (dir: string): Map<string, string> => {
    if (!existsSync(dir)) return new Map();
    return new Map(readdirSync(dir).filter((f) => f.endsWith('.sql')).map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
  };
  const ours = read(migrationsDirFromHere());
  const theirs = read(join(baselineRoot, 'migrations'));
  const onlyHere = [...ours.keys()].filter((f) => !theirs.has(f));
  const onlyThere = [...theirs.keys()].filter((f) => !ours.has(f));
  const edited = [...ours.keys()].filter((f) => theirs.has(f) && theirs.get(f) !== ours.get(f));
  const parts = [
    onlyHere.length > 0 ? `only here: ${onlyHere.join(', ')}` : '',
    onlyThere.length > 0 ? `only in the baseline: ${onlyThere.join(', ')}` : '',
    edited.length > 0 ? `different: ${edited.join(', ')}` : '',
  ].filter(Boolean);
  return parts.length > 0 ? parts.join('; ') : undefined;
}
