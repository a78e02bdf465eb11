// A real Prometheus for checks: find (or apt-install) the Debian `prometheus` package's binaries,
// run a private instance on loopback with its own data dir and scrape config, and query its HTTP API.
// Never touches the packaged service: its port, data and config stay the package's own.
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { spawnProcess, waitForHttp } from './child.js';
import type { Child } from './child.js';

export interface PrometheusBinaries {
  prometheus: string;
  promtool: string;
  /** Seconds `apt-get install` took in this run; undefined when the binaries were already there. */
  installSeconds: number | undefined;
  /** Seconds `apt-get update` took, when it ran. */
  updateSeconds: number | undefined;
}

/** Debian's way to keep maintainer scripts from starting services (exit 101: "action forbidden"). */
const POLICY_RC_D = '/usr/sbin/policy-rc.d';

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Runs a command to completion within `timeoutMs`; rejects with its output tail on failure. */
export function runCommand(command: string, args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-8000);
    };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`${command}: ${error.message}`));
    });
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else reject(new Error(`${command} ${args.join(' ')} failed (${signal ?? `exit ${code}`}${signal === 'SIGKILL' ? `, over ${timeoutMs} ms` : ''}):\n${output.trim()}`));
    });
  });
}

/**
 * The binaries, installed from Debian's `prometheus` package when missing (root only). The package's
 * own service is kept from starting with a temporary policy-rc.d when the machine has none.
 */
export async function ensurePrometheus(timeoutMs: number, progress: (line: string) => void): Promise<PrometheusBinaries> {
  const found = { prometheus: onPath('prometheus'), promtool: onPath('promtool') };
  if (found.prometheus !== undefined && found.promtool !== undefined) {
    return { prometheus: found.prometheus, promtool: found.promtool, installSeconds: undefined, updateSeconds: undefined };
  }
  if (process.getuid?.() !== 0) {
    throw new Error('prometheus/promtool not on PATH; install the Debian package first: sudo apt-get install -y prometheus');
  }
  const deadline = Date.now() + timeoutMs;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const ownPolicy = !existsSync(POLICY_RC_D);
  // Removed on every way out, process.exit on Ctrl-C included: it would block services for good.
  const removePolicy = (): void => rmSync(POLICY_RC_D, { force: true });
  if (ownPolicy) {
    process.once('exit', removePolicy);
    await writeFile(POLICY_RC_D, '#!/bin/sh\n# written by npm run check:dashboards for the length of one apt-get install\nexit 101\n', { mode: 0o755 });
  }
  try {
    progress('prometheus not on PATH: apt-get update');
    let startedAt = performance.now();
    await runCommand('apt-get', ['update', '-qq'], Math.max(1, deadline - Date.now()), env);
    const updateSeconds = (performance.now() - startedAt) / 1000;
    progress(`apt-get update: ${updateSeconds.toFixed(1)} s; apt-get install -y --no-install-recommends prometheus`);
    startedAt = performance.now();
    await runCommand('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'prometheus'], Math.max(1, deadline - Date.now()), env);
    const installSeconds = (performance.now() - startedAt) / 1000;
    progress(`apt-get install: ${installSeconds.toFixed(1)} s`);
    const prometheus = onPath('prometheus');
    const promtool = onPath('promtool');
    if (prometheus === undefined || promtool === undefined) throw new Error('apt-get installed prometheus, but prometheus/promtool are still not on PATH');
    return { prometheus, promtool, installSeconds, updateSeconds };
  } finally {
    if (ownPolicy) {
      removePolicy();
      process.off('exit', removePolicy);
    }
  }
}

export interface PrometheusOptions {
  binary: string;
  dataDir: string;
  configPath: string;
  host: string;
  port: number;
  /** host:port of the gateway whose /metrics is scraped. */
  target: string;
  /** The gateway's metrics token, sent as a bearer token with every scrape. */
  bearerToken?: string;
  rulesPath: string;
  scrapeIntervalS: number;
}

export const SCRAPE_JOB = 'nemorouter';

/**
 * Starts a private Prometheus and resolves once /-/ready answers 200. `onSpawn` sees the child
 * before it is ready, so whoever tears down also stops a Prometheus that never got ready.
 */
export async function startPrometheus(options: PrometheusOptions, timeoutMs: number, onSpawn: (child: Child) => void): Promise<Child> {
  const interval = `${options.scrapeIntervalS}s`;
  const config = [
    'global:',
    `  scrape_interval: ${interval}`,
    `  evaluation_interval: ${interval}`,
    'rule_files:',
    `  - ${JSON.stringify(options.rulesPath)}`,
    'scrape_configs:',
    `  - job_name: ${SCRAPE_JOB}`,
    `    scrape_interval: ${interval}`,
    `    scrape_timeout: ${interval}`,
    '    metrics_path: /metrics',
    ...(options.bearerToken === undefined ? [] : ['    authorization:', `      credentials: ${JSON.stringify(options.bearerToken)}`]),
    '    static_configs:',
    `      - targets: [${JSON.stringify(options.target)}]`,
    '',
  ].join('\n');
  await writeFile(options.configPath, config);
  const child = spawnProcess('prometheus', options.binary, [
    `--config.file=${options.configPath}`,
    `--storage.tsdb.path=${options.dataDir}`,
    `--web.listen-address=${options.host}:${options.port}`,
    '--storage.tsdb.retention.time=1h',
    '--log.level=warn',
  ]);
  onSpawn(child);
  await waitForHttp(child, `http://${options.host}:${options.port}/-/ready`, timeoutMs);
  return child;
}

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface QueryAnswer {
  resultType: string;
  result: Sample[] | [number, string];
}

interface ApiEnvelope<T> {
  status: 'success' | 'error';
  data?: T;
  errorType?: string;
  error?: string;
}

/** GET on Prometheus's HTTP API; throws with Prometheus's own error text on a bad query. */
export async function prometheusApi<T>(origin: string, path: string, params: Record<string, string | string[]>): Promise<T> {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    for (const item of Array.isArray(value) ? value : [value]) search.append(name, item);
  }
  const response = await fetch(`${origin}${path}?${search.toString()}`, { signal: AbortSignal.timeout(10_000) });
  const body = (await response.json()) as ApiEnvelope<T>;
  if (body.status !== 'success' || body.data === undefined) throw new Error(`${body.errorType ?? response.status}: ${body.error ?? 'no data'}`);
  return body.data;
}

/** An instant query at `timeS` (Unix seconds). */
export function instantQuery(origin: string, expr: string, timeS: number): Promise<QueryAnswer> {
  return prometheusApi<QueryAnswer>(origin, '/api/v1/query', { query: expr, time: timeS.toFixed(3) });
}
