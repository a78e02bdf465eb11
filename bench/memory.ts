// `npm run bench:memory`: what each part of the gateway costs in resident memory, each measured in
// a fresh process after a full GC (medians of --rounds): the Node runtime alone, the gateway's
// modules on the main thread, one idle worker thread, a worker with each tokenizer vocabulary,
// and what a vocabulary costs on the main thread (which the gateway no longer loads). The deltas
// are the components: RSS is what the kernel counts, shared pages included, so treat them as ±2 MB.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Encoding } from '../src/config/model-encodings.js';

const PROBES = ['runtime', 'gateway', 'gateway+worker', 'gateway+worker+o200k_base', 'gateway+worker+cl100k_base', 'gateway+main-o200k_base', 'gateway+main-cl100k_base'] as const;
type Probe = (typeof PROBES)[number];

interface Reading {
  readonly rssMb: number;
  readonly heapUsedMb: number;
}

const MB = 1024 * 1024;
const SAMPLE_TEXT = 'The gateway counts this text once so the vocabulary is loaded. '.repeat(40);

/** Runs in the child: load what the probe names, settle, GC, print the reading. */
async function probe(name: Probe): Promise<void> {
  if (name !== 'runtime') await import('../src/main.js');
  if (name.startsWith('gateway+worker')) {
    const { WorkerPool } = await import('../src/workers/pool.js');
    const pool = new WorkerPool({ threads: 1, inlineMaxChars: 0, maxBatchChars: 65_536, taskTimeoutMs: 60_000 });
    const encoding = name.split('+')[2] as Encoding | undefined;
    // A scan starts the thread without a vocabulary; a count loads one in it.
    await pool.scan({ policyKey: 'memory', policy: { pii: { email: 'redact' } }, text: SAMPLE_TEXT, stage: 'input' });
    if (encoding !== undefined) await pool.countTokens({ kind: 'text', text: SAMPLE_TEXT, encoding });
  }
  if (name.startsWith('gateway+main-')) {
    const { countTextTokens } = await import('../src/tokens/count.js');
    countTextTokens(SAMPLE_TEXT, name.slice('gateway+main-'.length) as Encoding);
  }
  await new Promise((resolve) => setTimeout(resolve, 300));
  for (let i = 0; i < 3; i++) (globalThis as { gc?: () => void }).gc?.();
  const usage = process.memoryUsage();
  process.stdout.write(`${JSON.stringify({ rssMb: usage.rss / MB, heapUsedMb: usage.heapUsed / MB })}\n`);
  process.exit(0);
}

function measure(name: Probe): Promise<Reading> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--probe', name], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line.startsWith('{')) return reject(new Error(`probe ${name} exited ${code}: ${out}`));
      resolve(JSON.parse(line) as Reading);
    });
  });
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { probe: { type: 'string' }, rounds: { type: 'string', default: '3' }, json: { type: 'string' } } });
  if (values.probe !== undefined) return probe(values.probe as Probe);
  const rounds = Number(values.rounds);
  const readings = new Map<Probe, Reading[]>(PROBES.map((p) => [p, []]));
  // Rounds interleave the probes, so drifting load on a shared machine touches each alike.
  for (let round = 0; round < rounds; round++) for (const p of PROBES) readings.get(p)!.push(await measure(p));
  const rss = Object.fromEntries(PROBES.map((p) => [p, median(readings.get(p)!.map((r) => r.rssMb))])) as Record<Probe, number>;
  const components = {
    runtimeMb: rss.runtime,
    gatewayMainThreadMb: rss.gateway - rss.runtime,
    idleWorkerMb: rss['gateway+worker'] - rss.gateway,
    o200kInWorkerMb: rss['gateway+worker+o200k_base'] - rss['gateway+worker'],
    cl100kInWorkerMb: rss['gateway+worker+cl100k_base'] - rss['gateway+worker'],
    o200kOnMainThreadMb: rss['gateway+main-o200k_base'] - rss.gateway,
    cl100kOnMainThreadMb: rss['gateway+main-cl100k_base'] - rss.gateway,
  };
  const fixed = (n: number): string => n.toFixed(1).padStart(7);
  const lines = [
    `RSS by component (MB, median of ${rounds} fresh processes each, after GC):`,
    `  Node runtime                         ${fixed(components.runtimeMb)}`,
    `  gateway modules, main thread         ${fixed(components.gatewayMainThreadMb)}   (total ${rss.gateway.toFixed(1)})`,
    `  one worker thread, idle              ${fixed(components.idleWorkerMb)}`,
    `  o200k_base vocabulary in a worker    ${fixed(components.o200kInWorkerMb)}`,
    `  cl100k_base vocabulary in a worker   ${fixed(components.cl100kInWorkerMb)}`,
    `  o200k_base on the main thread        ${fixed(components.o200kOnMainThreadMb)}   (not loaded by the gateway)`,
    `  cl100k_base on the main thread       ${fixed(components.cl100kOnMainThreadMb)}   (not loaded by the gateway)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (values.json !== undefined) await writeFile(values.json, `${JSON.stringify({ rounds, rssMb: rss, components, readings: Object.fromEntries(readings) }, null, 2)}\n`);
}

await main();
