// `npm run check:dashboards`: the Grafana dashboards and alert rules against a real Prometheus that
// scrapes a real gateway. Starts the mock upstream, NemoRouter (fresh embedded Postgres) and a private
// Prometheus on loopback, runs a short mixed load, then asserts that every panel query of every
// dashboard returns data and that every alert rule parses (promtool) and evaluates (Prometheus).
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse as parseYaml } from 'yaml';
import { freePorts } from '../src/free-port.js';
import { Run } from './lib/run.js';
import { spawnChild, waitForHttp, waitForLine } from './lib/child.js';
import { DASHBOARD_METRICS_CONFIG, DASHBOARD_UPSTREAM_CONFIG, dashboardModels, dashboardScenarios } from './lib/dashboard-load.js';
import { BUILTIN_VARIABLES, panelQueries, parseLabelValues, variableQueries } from './lib/dashboard-queries.js';
import type { PanelQuery } from './lib/dashboard-queries.js';
import { runMixedLoad } from './lib/mixed-load.js';
import type { LoadScenario, ScenarioResult } from './lib/mixed-load.js';
import { SCRAPE_JOB, ensurePrometheus, instantQuery, prometheusApi, runCommand, startPrometheus } from './lib/prometheus.js';

const HOST = '127.0.0.1';
/** The whole run, apt-get install included, stays under 3 minutes. */
const RUN_BUDGET_MS = 170_000;
const APT_BUDGET_MS = 110_000;
const STARTUP_TIMEOUT_MS = 30_000;
const SCRAPE_INTERVAL_S = 1;
const LOAD_MS = 8_000;
/** Scrapes that must land after the load ended before the queries run. */
const SCRAPES_AFTER_LOAD = 3;

const grafanaDir = fileURLToPath(new URL('../../grafana/', import.meta.url));
const dashboardsDir = join(grafanaDir, 'dashboards');
const alertsPath = join(grafanaDir, 'alerts.yml');
const examplePrometheusConfig = join(grafanaDir, 'prometheus.yml');

function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}


/** Matches nothing in the load but the deny word prompt: the cost of looking, and one block. */
const GUARDRAILS = {
  deny_words: ['project falcon'],
  pii: { email: 'redact', credit_card: 'block' },
  injection: 'block',
  max_input_tokens: 8000,
};

interface Gateway {
  origin: string;
  demoKey: string;
  masterKey: string;
}

async function startGateway(run: Run, ports: { mock: number; nemo: number }, metricsToken: string): Promise<Gateway> {
  const cli = fileURLToPath(new URL('../src/cli.js', import.meta.url));
  if (!existsSync(cli)) throw new Error(`${cli} not found; run \`npm run build\` first`);
  // Streams last ~150 ms, so some are open at most scrapes.
  const mock = spawnChild('mock upstream', [cli, 'mock-upstream', '--port', String(ports.mock), '--host', HOST, '--ttft-ms', '5', '--tokens-per-second', '200', '--completion-tokens', '24']);
  run.children.push(mock);
  await waitForLine(mock, /mock upstream listening on (http:\/\/\S+)/, STARTUP_TIMEOUT_MS);
  const upstream = { provider: 'openai-compatible', model: 'mock', baseUrl: `http://${HOST}:${ports.mock}/v1`, maxOutputTokens: 4096 };
  const config = {
    server: { shutdownGraceMs: 2000, drainDelayMs: 0 },
    upstream: DASHBOARD_UPSTREAM_CONFIG,
    metrics: DASHBOARD_METRICS_CONFIG,
    // Credit leases give back what they did not use after their lifetime: a short one, so the
    // audit below sees nothing held soon after the load.
    ledger: { lease: { lifetimeMs: 1000 } },
    // The load repeats the same prompts: without the result caches every long prompt's scan is a
    // pool task, so the worker panels have data all through the window.
    workers: { resultCacheMaxBytes: 0 },
    models: [
      { name: 'check-priced', deployments: [{ ...upstream, inputPricePerMTok: 1, outputPricePerMTok: 2 }] },
      { name: 'check-free', deployments: [upstream] },
      // Its only deployment answers 500 to everything: upstream errors, then 5xx for the client.
      { name: 'check-faulty', deployments: [{ ...upstream, inputPricePerMTok: 1, outputPricePerMTok: 2, headers: { 'x-mock-fault': 'http-500' } }] },
      ...dashboardModels(upstream),
    ],
  };
  const configPath = join(run.tmpDir!, 'nemo-config.json');
  await writeFile(configPath, JSON.stringify(config, null, 2));
  // A master key of this run only: it creates the org without credits (the 402 for funds).
  const masterKey = `check-${randomBytes(16).toString('hex')}`;
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(ports.nemo), HOST, NEMO_CONFIG: configPath, NEMO_DATA_DIR: join(run.tmpDir!, 'nemo-data'), NEMO_MASTER_KEY: masterKey, NEMO_METRICS_TOKEN: metricsToken };
  delete env.DATABASE_URL;
  const nemo = spawnChild('nemo', [cli, 'start'], env);
  run.children.push(nemo);
  const keyLine = await waitForLine(nemo, /Bearer (sk-nemo-\w+)/, STARTUP_TIMEOUT_MS);
  const origin = `http://${HOST}:${ports.nemo}`;
  await waitForHttp(nemo, `${origin}/healthz`, STARTUP_TIMEOUT_MS);
  return { origin, demoKey: keyLine[1]!, masterKey };
}

async function adminCall(origin: string, secret: string, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`${origin}${path}`, {
    method,
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as Record<string, unknown>;
}

interface Keys {
  demo: string;
  guarded: string;
  rpmLimited: string;
  capped: string;
  broke: string;
}

/** Keys of the demo org with guardrails, an RPM limit of 1 and a spend cap of one micro; a key of an org without credits. */
async function createKeys(gateway: Gateway): Promise<Keys> {
  const { origin, demoKey, masterKey } = gateway;
  const orgs = (await adminCall(origin, demoKey, 'GET', '/admin/v1/orgs')) as { data: Array<{ id: string }> };
  const demoOrg = orgs.data[0]!.id;
  const key = async (secret: string, org: string, body: Record<string, unknown>) =>
    (await adminCall(origin, secret, 'POST', `/admin/v1/orgs/${org}/keys`, { role: 'member', ...body })).key as string;
  const brokeOrg = (await adminCall(origin, masterKey, 'POST', '/admin/v1/orgs', { name: 'check: no credits' })).id as string;
  return {
    demo: demoKey,
    guarded: await key(demoKey, demoOrg, { name: 'check guarded', guardrail_policy: GUARDRAILS }),
    rpmLimited: await key(demoKey, demoOrg, { name: 'check rpm 1', rpm_limit: 1 }),
    capped: await key(demoKey, demoOrg, { name: 'check daily cap 1 micro', daily_spend_cap_micros: 1 }),
    broke: await key(masterKey, brokeOrg, { name: 'check broke' }),
  };
}

const CLEAN_LONG_PROMPT = 'The gateway routes each request to a deployment and settles the ledger afterwards. '.repeat(24);

function scenarios(keys: Keys): LoadScenario[] {
  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
  const chat = (model: string, content: string, extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content }], max_tokens: 24, ...extra });
  const ok = (s: number) => s === 200;
  return [
    { name: 'non-stream, priced', headers: bearer(keys.demo), body: chat('check-priced', 'Say hello'), expectStatus: ok, expectText: '200', loops: 2, pauseMs: 0 },
    { name: 'stream, priced', headers: bearer(keys.demo), body: chat('check-priced', 'Say hello', { stream: true, stream_options: { include_usage: true } }), expectStatus: ok, expectText: '200', loops: 4, pauseMs: 0 },
    { name: 'non-stream, free model', headers: bearer(keys.demo), body: chat('check-free', 'Say hello'), expectStatus: ok, expectText: '200', loops: 1, pauseMs: 0 },
    // Over workers.inlineMaxChars: the guardrail scan goes to the worker pool (result caches off here).
    { name: 'guardrails, long clean prompt', headers: bearer(keys.guarded), body: chat('check-priced', CLEAN_LONG_PROMPT, { stream: true }), expectStatus: ok, expectText: '200', loops: 2, pauseMs: 0 },
    { name: 'guardrail block (deny word)', headers: bearer(keys.guarded), body: chat('check-priced', 'Tell me about project falcon'), expectStatus: (s) => s === 400, expectText: '400', loops: 1, pauseMs: 50 },
    { name: 'faulting upstream (http-500)', headers: bearer(keys.demo), body: chat('check-faulty', 'Say hello'), expectStatus: (s) => s >= 500, expectText: '5xx', loops: 1, pauseMs: 50 },
    { name: 'org without credits', headers: bearer(keys.broke), body: chat('check-priced', 'Say hello'), expectStatus: (s) => s === 402, expectText: '402', loops: 1, pauseMs: 50 },
    { name: 'key daily spend cap', headers: bearer(keys.capped), body: chat('check-priced', 'Say hello'), expectStatus: (s) => s === 402, expectText: '402', loops: 1, pauseMs: 50 },
    { name: 'key rpm limit 1', headers: bearer(keys.rpmLimited), body: chat('check-priced', 'Say hello'), expectStatus: (s) => s === 429, expectText: '429', loops: 1, pauseMs: 50 },
  ];
}

/** Resolves once Prometheus holds `count` scrapes of the gateway taken after `afterMs`. */
async function waitForScrapes(origin: string, afterMs: number, count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const wanted = afterMs / 1000 + count * SCRAPE_INTERVAL_S;
  let last = 'no scrape yet';
  while (Date.now() < deadline) {
    const answer = await instantQuery(origin, `timestamp(up{job="${SCRAPE_JOB}"} == 1)`, Date.now() / 1000).catch(() => undefined);
    const sample = Array.isArray(answer?.result) ? answer.result[0] : undefined;
    if (sample !== undefined && typeof sample === 'object' && 'value' in sample) {
      if (Number(sample.value[1]) >= wanted) return;
      last = `last scrape at ${new Date(Number(sample.value[1]) * 1000).toISOString()}`;
    }
    await sleep(250);
  }
  throw new Error(`Prometheus did not scrape the gateway ${count} times within ${timeoutMs} ms (${last}); is /metrics up?`);
}

/**
 * What SREs see agrees with what finance sees: once every hold is closed and scraped, Prometheus's
 * nemo_credits_micros_total{operation="settled"} equals the sum of the settle rows in the ledger
 * (every org's, read through the ledger export).
 */
async function checkCreditsAgree(promOrigin: string, gateway: Gateway): Promise<string[]> {
  const orgs = ((await adminCall(gateway.origin, gateway.masterKey, 'GET', '/admin/v1/orgs')) as { data: Array<{ id: string }> }).data;
  const deadline = Date.now() + 15_000;
  for (;;) {
    const held = await Promise.all(orgs.map(async (org) => Number((await adminCall(gateway.origin, gateway.masterKey, 'GET', `/admin/v1/orgs/${org.id}/credits`)).held_micros)));
    if (held.every((micros) => micros === 0)) break;
    if (Date.now() > deadline) return [`credits: holds still open 15 s after the load (${held.join(', ')} micros held)`];
    await sleep(250);
  }
  await waitForScrapes(promOrigin, Date.now(), 1, 15_000);
  let settleRows = 0;
  const range = `from=${encodeURIComponent(new Date(0).toISOString())}&to=${encodeURIComponent(new Date(Date.now() + 86_400_000).toISOString())}&format=ndjson`;
  for (const org of orgs) {
    const response = await fetch(`${gateway.origin}/admin/v1/orgs/${org.id}/ledger/export?${range}`, { headers: { authorization: `Bearer ${gateway.masterKey}` } });
    if (!response.ok) return [`credits: ledger export of ${org.id}: ${response.status}`];
    for (const line of (await response.text()).split('\n')) {
      if (line === '') continue;
      const entry = JSON.parse(line) as { kind: string; charged: number };
      if (entry.kind === 'settle') settleRows += entry.charged;
    }
  }
  const answer = await instantQuery(promOrigin, 'sum(nemo_credits_micros_total{operation="settled"})', Date.now() / 1000);
  const sample = Array.isArray(answer?.result) ? (answer.result[0] as { value: [number, string] } | undefined) : undefined;
  const scraped = sample === undefined ? NaN : Number(sample.value[1]);
  if (scraped !== settleRows || settleRows === 0) return [`credits: Prometheus says ${scraped} micros settled, the ledger's settle rows ${settleRows}`];
  progress(`ok     credits settled: Prometheus ${scraped} micros = the ledger's settle rows ${settleRows}`);
  return [];
}

interface RuleState {
  name: string;
  health: string;
  lastError?: string;
}

/** Every rule of alerts.yml loaded by Prometheus and evaluated at least once without error. */
async function checkRulesEvaluate(origin: string, expected: number, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let rules: RuleState[] = [];
  while (Date.now() < deadline) {
    const data = await prometheusApi<{ groups: Array<{ rules: RuleState[] }> }>(origin, '/api/v1/rules', {});
    rules = data.groups.flatMap((g) => g.rules);
    if (rules.length === expected && rules.every((r) => r.health !== 'unknown')) break;
    await sleep(250);
  }
  const problems = rules.filter((r) => r.health !== 'ok').map((r) => `alert rule ${r.name}: health ${r.health}${r.lastError ? `: ${r.lastError}` : ''}`);
  if (rules.length !== expected) problems.push(`Prometheus loaded ${rules.length} rules, grafana/alerts.yml has ${expected}`);
  return problems;
}

function countRules(alertsYaml: string): number {
  const doc = parseYaml(alertsYaml) as { groups?: Array<{ rules?: unknown[] }> };
  return (doc.groups ?? []).reduce((n, g) => n + (g.rules?.length ?? 0), 0);
}

interface PanelVerdict {
  query: PanelQuery;
  series: number;
  problem: string | undefined;
}

/** Data: at least one sample that is a number (NaN is what histogram_quantile gives with nothing observed). */
async function checkPanel(origin: string, query: PanelQuery, atS: number): Promise<PanelVerdict> {
  if (query.expr === undefined) return { query, series: 0, problem: query.problem };
  try {
    const answer = await instantQuery(origin, query.expr, atS);
    if (answer.resultType === 'scalar' || answer.resultType === 'string') return { query, series: 1, problem: undefined };
    const samples = answer.result as Array<{ value: [number, string] }>;
    if (samples.length === 0) return { query, series: 0, problem: 'empty result' };
    const numeric = samples.filter((s) => s.value[1] !== 'NaN').length;
    return { query, series: numeric, problem: numeric === 0 ? `only NaN (${samples.length} series)` : undefined };
  } catch (error) {
    return { query, series: 0, problem: `query error: ${error instanceof Error ? error.message : String(error)}` };
  }
}

async function checkDashboards(origin: string): Promise<{ verdicts: PanelVerdict[]; problems: string[] }> {
  const files = (await readdir(dashboardsDir)).filter((f) => f.endsWith('.json')).sort();
  if (files.length === 0) return { verdicts: [], problems: ['no dashboards in grafana/dashboards'] };
  const atS = Date.now() / 1000;
  const verdicts: PanelVerdict[] = [];
  const problems: string[] = [];
  for (const file of files) {
    const dashboard: unknown = JSON.parse(await readFile(join(dashboardsDir, file), 'utf8'));
    const queries = panelQueries(file, dashboard as Parameters<typeof panelQueries>[1]);
    if (queries.length === 0) problems.push(`${file}: no panel queries`);
    verdicts.push(...(await Promise.all(queries.map((q) => checkPanel(origin, q, atS)))));
    for (const variable of variableQueries(file, dashboard as Parameters<typeof variableQueries>[1])) {
      const parsed = parseLabelValues(variable.definition);
      if (parsed === undefined) {
        problems.push(`${file}: variable $${variable.name}: unsupported query ${JSON.stringify(variable.definition)}`);
        continue;
      }
      const params: Record<string, string | string[]> = { start: String(atS - 300), end: String(atS) };
      if (parsed.match !== undefined) params['match[]'] = [parsed.match];
      const values = await prometheusApi<string[]>(origin, `/api/v1/label/${parsed.label}/values`, params).catch((e: unknown) => [String(e)]);
      if (values.length === 0) problems.push(`${file}: variable $${variable.name} (${variable.definition}) has no values`);
      else progress(`ok     variable $${variable.name}: ${values.join(', ')}`);
    }
  }
  return { verdicts, problems };
}

function formatStatuses(result: ScenarioResult): string {
  return Object.entries(result.byStatus)
    .map(([status, n]) => `${status === '0' ? 'network error' : status} x${n}`)
    .join(', ');
}

/** promtool on the rule file and the example config: no servers needed, so first and fastest. */
async function staticChecks(promtool: string): Promise<string[]> {
  const problems: string[] = [];
  for (const [what, args] of [
    ['promtool check rules grafana/alerts.yml', ['check', 'rules', alertsPath]],
    ['promtool check config grafana/prometheus.yml', ['check', 'config', examplePrometheusConfig]],
  ] as const) {
    try {
      await runCommand(promtool, [...args], 20_000);
      progress(`ok     ${what}`);
    } catch (error) {
      problems.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return problems;
}

/** The gateway (with its mock upstream) and a Prometheus that scrapes it, side by side. */
async function startServers(run: Run, prometheusBinary: string): Promise<{ gateway: Gateway; promOrigin: string }> {
  run.tmpDir = await mkdtemp(join(tmpdir(), 'nemo-check-dashboards-'));
  // Traversable, so the embedded PostgreSQL's OS user reaches its cluster inside.
  await chmod(run.tmpDir, 0o755);
  const [mockPort, nemoPort, promPort] = (await freePorts(3, HOST)) as [number, number, number];
  progress(`starting mock upstream (${HOST}:${mockPort}), nemo (${HOST}:${nemoPort}) and prometheus (${HOST}:${promPort})`);
  // /metrics behind a token, as the per-org top-N requires: Prometheus scrapes with it.
  const metricsToken = `metrics-${randomBytes(16).toString('hex')}`;
  const prometheusOptions = {
    binary: prometheusBinary,
    bearerToken: metricsToken,
    dataDir: join(run.tmpDir, 'prometheus-data'),
    configPath: join(run.tmpDir, 'prometheus.yml'),
    host: HOST,
    port: promPort,
    target: `${HOST}:${nemoPort}`,
    rulesPath: alertsPath,
    scrapeIntervalS: SCRAPE_INTERVAL_S,
  };
  const [gateway] = await Promise.all([
    startGateway(run, { mock: mockPort, nemo: nemoPort }, metricsToken),
    startPrometheus(prometheusOptions, STARTUP_TIMEOUT_MS, (child) => run.children.push(child)),
  ]);
  return { gateway, promOrigin: `http://${HOST}:${promPort}` };
}

/** Runs the load; the scenarios that never got their status are problems. */
async function loadGateway(run: Run, gateway: Gateway, keys: Keys): Promise<string[]> {
  const results = await runMixedLoad(`${gateway.origin}/v1/chat/completions`, [...scenarios(keys), ...dashboardScenarios(keys.demo)], LOAD_MS, run.abort.signal);
  if (run.abort.signal.aborted) throw new Error('interrupted');
  const problems: string[] = [];
  for (const result of results) {
    progress(`${result.sawExpected ? 'ok   ' : 'FAIL '}  load: ${result.name}: ${formatStatuses(result)}`);
    if (!result.sawExpected) problems.push(`load scenario "${result.name}" never got ${result.expectText} (${formatStatuses(result)})`);
  }
  return problems;
}

/** One line per target; the empty ones again as one problem, listed. */
function reportPanels(verdicts: PanelVerdict[]): string[] {
  for (const v of verdicts) {
    progress(`${v.problem === undefined ? 'ok   ' : 'EMPTY'}  ${v.query.file} #${v.query.panelId ?? '?'} "${v.query.panelTitle}" [${v.query.refId}]: ${v.problem ?? `${v.series} series`}`);
  }
  const empty = verdicts.filter((v) => v.problem !== undefined);
  if (empty.length === 0) return [];
  const list = empty.map((v) => `  - ${v.query.file} panel #${v.query.panelId ?? '?'} "${v.query.panelTitle}" [${v.query.refId}]: ${v.problem}\n      ${v.query.expr ?? v.query.raw}`);
  return [`${empty.length} of ${verdicts.length} panel queries returned no data ($__rate_interval = ${BUILTIN_VARIABLES.__rate_interval}):\n${list.join('\n')}`];
}

/** Ctrl-C, SIGTERM and the time budget all end in the same teardown. */
function guard(run: Run): NodeJS.Timeout {
  process.on('exit', () => run.killSync());
  let interrupts = 0;
  process.on('SIGINT', () => {
    if (++interrupts > 1) process.exit(130);
    progress('interrupted; stopping children');
    void run.cleanup().finally(() => process.exit(130));
  });
  process.on('SIGTERM', () => void run.cleanup().finally(() => process.exit(143)));
  const watchdog = setTimeout(() => {
    progress(`check:dashboards exceeded its ${RUN_BUDGET_MS / 1000} s budget; stopping children`);
    void run.cleanup().finally(() => process.exit(1));
  }, RUN_BUDGET_MS);
  watchdog.unref();
  return watchdog;
}

async function main(): Promise<void> {
  const startedAt = performance.now();
  const seconds = () => ((performance.now() - startedAt) / 1000).toFixed(1);
  const run = new Run();
  const watchdog = guard(run);
  try {
    const bins = await ensurePrometheus(APT_BUDGET_MS, progress);
    progress(`prometheus: ${bins.prometheus}, promtool: ${bins.promtool}${bins.installSeconds === undefined ? ' (already installed)' : ''}`);
    const problems = await staticChecks(bins.promtool);
    const ruleCount = countRules(await readFile(alertsPath, 'utf8'));

    const { gateway, promOrigin } = await startServers(run, bins.prometheus);
    progress(`[${seconds()} s] gateway and prometheus ready`);
    const keys = await createKeys(gateway);
    // A scrape before the load: counters that exist at start are seen rising from their first value.
    await waitForScrapes(promOrigin, Date.now(), 1, 10_000);
    progress(`[${seconds()} s] mixed load: ${LOAD_MS / 1000} s`);
    problems.push(...(await loadGateway(run, gateway, keys)));
    await waitForScrapes(promOrigin, Date.now(), SCRAPES_AFTER_LOAD, 15_000);

    problems.push(...(await checkCreditsAgree(promOrigin, gateway)));
    const ruleProblems = await checkRulesEvaluate(promOrigin, ruleCount, 10_000);
    if (ruleProblems.length === 0) progress(`ok     ${ruleCount} alert rules loaded and evaluated by Prometheus`);
    const { verdicts, problems: dashboardProblems } = await checkDashboards(promOrigin);
    problems.push(...ruleProblems, ...dashboardProblems, ...reportPanels(verdicts));

    if (problems.length > 0) {
      process.stderr.write(`\ncheck:dashboards FAILED after ${seconds()} s:\n${problems.map((p) => `- ${p}`).join('\n')}\n`);
      process.exitCode = 1;
    } else {
      const install = bins.installSeconds === undefined ? '' : `; apt-get update ${bins.updateSeconds!.toFixed(1)} s + install ${bins.installSeconds.toFixed(1)} s`;
      process.stdout.write(`check:dashboards passed: ${verdicts.length} panel queries returned data, ${ruleCount} alert rules valid; ${seconds()} s${install}\n`);
    }
  } finally {
    clearTimeout(watchdog);
    await run.cleanup();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`check:dashboards failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
