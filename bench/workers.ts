// `npm run bench:workers`: what the worker pool costs against doing the work inline, for exact token
// counting (o200k_base) and a guardrail scan, on realistic prompts of 100 to 100k tokens; the size
// where a pool round trip costs as much as the inline work (what workers.inlineMaxChars should be);
// and event-loop lag while a 100k-token prompt is counted or scanned, in the pool and inline.
// Inline is the baseline, measured in the same rounds (interleaved) as the pool.
import { writeFile } from 'node:fs/promises';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { configFileSchema } from '../src/config/schema.js';
import { compilePolicy, scanText } from '../src/guardrails/policy.js';
import type { GuardrailPolicy } from '../src/guardrails/types.js';
import { countTextTokens } from '../src/tokens/count.js';
import type { ScanJob, TokenJob } from '../src/workers/messages.js';
import { WorkerPool } from '../src/workers/pool.js';
import { textOfChars, textOfTokens } from './lib/prompt-text.js';

const ENCODING = 'o200k_base';
const TOKEN_SIZES = [100, 1_000, 10_000, 100_000];
/** Extra sizes, inline vs one pool job only, so the break-even is found between close points. */
const SWEEP_CHARS = [250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000];
/** Different texts of each size, cycled, so neither side runs one text from a hot cache only. */
const VARIANTS = 4;
/** A burst of 100k-token jobs is 64 times ~0.1 s on one thread: cap a burst's characters instead. */
const MAX_BURST_CHARS = 4_000_000;
const CELL_MS = 120;
const MIN_REPS = 3;
const LAG_WINDOW_MS = 500;
const LAG_RESOLUTION_MS = 1;

/** What a gateway key might carry: PII redacted or blocked, a few deny words, injection heuristics. */
const POLICY: GuardrailPolicy = {
  pii: { email: 'redact', phone: 'redact', credit_card: 'block', secret: 'block' },
  deny_words: ['project nightingale', 'internal use only', 'do not distribute', 'acme merger', 'salary band', 'codename falcon'],
  deny_action: 'block',
  injection: 'block',
};
const COMPILED = compilePolicy(POLICY);

type Task = 'count' | 'scan';
const TASKS: readonly Task[] = ['count', 'scan'];

interface Size {
  readonly label: string;
  readonly texts: readonly string[];
  readonly chars: number;
  readonly tokens: number;
  readonly sweep: boolean;
}

interface Cell {
  /** Per job, µs: inline call time, a pool job's round trip, or (bursts) each job's time to its result. */
  samples: number[];
  /** Bursts only: wall time of a burst / its jobs, µs, one per burst. */
  perJob: number[];
  /**
   * Main-thread busy µs per job, one per repetition (event-loop utilization, active, over a job or a
   * burst): a median, like the times, so a major GC owed by an earlier cell lands in one sample only.
   */
  main: number[];
  /** Per round: the median time and main-thread cost, to show the spread behind the pooled medians. */
  roundMedians: number[];
  roundMainUs: number[];
}

const newCell = (): Cell => ({ samples: [], perJob: [], main: [], roundMedians: [], roundMainUs: [] });

function inline(task: Task, text: string): unknown {
  return task === 'count' ? countTextTokens(text, ENCODING) : scanText(COMPILED, text, 'input');
}

function pooled(pool: WorkerPool, task: Task, text: string): Promise<unknown> {
  if (task === 'count') return Promise.resolve(pool.countTokens({ kind: 'text', text, encoding: ENCODING } satisfies TokenJob));
  return Promise.resolve(pool.scan({ policyKey: 'bench', policy: POLICY, text, stage: 'input' } satisfies ScanJob));
}

/** Runs `once` until CELL_MS passed and `minReps` are done; `once` returns how many jobs it ran. */
async function fill(cell: Cell, once: (rep: number) => Promise<number> | number, minReps = MIN_REPS): Promise<void> {
  const before = cell.samples.length;
  const mainBefore = cell.main.length;
  const deadline = performance.now() + CELL_MS;
  for (let rep = 0; rep < minReps || performance.now() < deadline; rep++) {
    const elu = performance.eventLoopUtilization();
    const jobs = await once(rep);
    cell.main.push((performance.eventLoopUtilization(elu).active * 1000) / jobs);
  }
  cell.roundMedians.push(round(quantile(cell.samples.slice(before), 0.5)));
  cell.roundMainUs.push(round(quantile(cell.main.slice(mainBefore), 0.5)));
}

async function measureInline(cell: Cell, task: Task, size: Size): Promise<void> {
  await fill(cell, (rep) => {
    const started = performance.now();
    inline(task, size.texts[rep % size.texts.length]!);
    cell.samples.push((performance.now() - started) * 1000);
    return 1;
  });
}

async function measureSingle(cell: Cell, pool: WorkerPool, task: Task, size: Size): Promise<void> {
  await fill(cell, async (rep) => {
    const started = performance.now();
    await pooled(pool, task, size.texts[rep % size.texts.length]!);
    cell.samples.push((performance.now() - started) * 1000);
    return 1;
  });
}

/** `burst` jobs queued in one turn of the event loop: the pool sends them as few batched tasks. */
async function measureBurst(cell: Cell, pool: WorkerPool, task: Task, size: Size, burst: number): Promise<void> {
  await fill(cell, async () => {
    const started = performance.now();
    const done = Array.from({ length: burst }, (_, i) => pooled(pool, task, size.texts[i % size.texts.length]!).then(() => (performance.now() - started) * 1000));
    const times = await Promise.all(done);
    cell.samples.push(...times);
    cell.perJob.push(((performance.now() - started) * 1000) / burst);
    return burst;
  }, 1);
}

function burstOf(size: Size, burst: number): number {
  return Math.max(2, Math.min(burst, Math.floor(MAX_BURST_CHARS / size.chars)));
}

/** Event-loop lag over one window while `work` runs back to back (or nothing, for the idle baseline). */
async function lagWindow(work: (() => Promise<unknown>) | undefined): Promise<Lag> {
  const histogram = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
  histogram.enable();
  const deadline = performance.now() + LAG_WINDOW_MS;
  let jobs = 0;
  while (performance.now() < deadline) {
    if (work === undefined) await sleep(LAG_WINDOW_MS);
    else await work();
    jobs++;
  }
  histogram.disable();
  // The histogram records whole timer intervals: lag is what exceeds the resolution.
  const lag = (ns: number) => round(Math.max(0, ns / 1e6 - LAG_RESOLUTION_MS), 2);
  return { maxMs: lag(histogram.max), p99Ms: lag(histogram.percentile(99)), jobs: work === undefined ? 0 : jobs };
}

/** Lag windows in turn (idle, then each task in the pool and inline), `rounds` times. */
async function measureLag(pool: WorkerPool, text: string, rounds: number): Promise<{ modes: string[]; lagRounds: Array<Record<string, Lag>> }> {
  const modes: Array<[string, (() => Promise<unknown>) | undefined]> = [
    ['idle', undefined],
    ...TASKS.flatMap((task): Array<[string, () => Promise<unknown>]> => [
      [`${task} in pool`, () => pooled(pool, task, text)],
      [
        `${task} inline`,
        async () => {
          inline(task, text);
          await new Promise((resolve) => setImmediate(resolve)); // let timers run between jobs, as a server would
        },
      ],
    ]),
  ];
  const lagRounds: Array<Record<string, Lag>> = [];
  for (let r = 0; r < rounds; r++) {
    const one: Record<string, Lag> = {};
    for (const [name, work] of modes) one[name] = await lagWindow(work);
    lagRounds.push(one);
  }
  return { modes: modes.map(([name]) => name), lagRounds };
}

async function main(): Promise<void> {
  const defaults = configFileSchema.shape.workers.parse(undefined);
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      threads: { type: 'string', default: String(defaults.threads) },
      burst: { type: 'string', default: '64' },
      json: { type: 'string' },
    },
  });
  const rounds = Number(values.rounds);
  const threads = Number(values.threads);
  const burst = Number(values.burst);
  if (![rounds, threads, burst].every((n) => Number.isInteger(n) && n > 0)) throw new Error('--rounds, --threads and --burst must be positive integers');
  const startedAt = performance.now();

  progress('building texts');
  const count = (text: string) => countTextTokens(text, ENCODING);
  const sizes: Size[] = [
    ...TOKEN_SIZES.map((tokens) => sized(`${tokens}`, Array.from({ length: tokens >= 100_000 ? 2 : VARIANTS }, (_, v) => textOfTokens(tokens * 10 + v, tokens, count)), false)),
    ...SWEEP_CHARS.map((chars) => sized(`${chars}c`, Array.from({ length: VARIANTS }, (_, v) => textOfChars(chars * 10 + v, chars)), true)),
  ];

  const pool = new WorkerPool({ threads, inlineMaxChars: 0, maxBatchChars: defaults.maxBatchChars, taskTimeoutMs: defaults.taskTimeoutMs });
  try {
    progress(`warming up ${threads} worker thread(s)`);
    await warmUp(pool, sizes, threads);

    const cells = new Map<string, Cell>();
    const cell = (key: string) => cells.get(key) ?? cells.set(key, newCell()).get(key)!;
    for (let r = 0; r < rounds; r++) {
      progress(`round ${r + 1}/${rounds}: inline, single pool jobs${r === 0 ? `, bursts of up to ${burst}` : ', bursts'}`);
      for (const size of sizes) {
        for (const task of TASKS) {
          await measureInline(cell(`${task}/${size.label}/inline`), task, size);
          await measureSingle(cell(`${task}/${size.label}/single`), pool, task, size);
          if (!size.sweep) await measureBurst(cell(`${task}/${size.label}/burst`), pool, task, size, burstOf(size, burst));
        }
      }
    }

    progress('event-loop lag while a 100k-token prompt is processed');
    const { modes, lagRounds } = await measureLag(pool, sizes.find((s) => s.label === '100000')!.texts[0]!, rounds);

    const report = buildReport({ rounds, threads, burst, configDefaults: defaults }, sizes, cells, modes, lagRounds);
    report.elapsedS = round((performance.now() - startedAt) / 1000, 1);
    process.stdout.write(`\n${render(report)}\n`);
    if (values.json !== undefined) {
      await writeFile(values.json, `${JSON.stringify(report, null, 2)}\n`);
      progress(`wrote ${values.json}`);
    }
  } finally {
    await pool.close();
  }
}

function sized(label: string, texts: string[], sweep: boolean): Size {
  const chars = Math.round(texts.reduce((sum, t) => sum + t.length, 0) / texts.length);
  const tokens = Math.round(texts.reduce((sum, t) => sum + countTextTokens(t, ENCODING), 0) / texts.length);
  return { label, texts, chars, tokens, sweep };
}

/**
 * Starts the threads, loads the tokenizer and compiles the policy in each, and checks the pool agrees
 * with inline. Copies go out one turn apart, so each is its own task (jobs of one turn share one).
 */
async function warmUp(pool: WorkerPool, sizes: readonly Size[], threads: number): Promise<void> {
  for (const size of sizes) {
    for (const text of size.texts) {
      for (const task of TASKS) {
        const expected = JSON.stringify(inline(task, text));
        const copies: Array<Promise<unknown>> = [];
        for (let i = 0; i < threads; i++) {
          copies.push(pooled(pool, task, text));
          await new Promise((resolve) => setImmediate(resolve));
        }
        const results = await Promise.all(copies);
        if (results.some((result) => JSON.stringify(result) !== expected)) throw new Error(`pool and inline disagree on a ${task} of ${size.label}`);
      }
    }
  }
}

interface Stats {
  p50Us: number;
  p99Us: number;
  n: number;
  /** Main-thread busy µs per job (event-loop utilization), median over repetitions. */
  mainUsPerJob: number;
  roundP50Us: number[];
  roundMainUs: number[];
}

const stats = (cell: Cell): Stats => ({
  p50Us: round(quantile(cell.samples, 0.5)),
  p99Us: round(quantile(cell.samples, 0.99)),
  n: cell.samples.length,
  mainUsPerJob: round(quantile(cell.main, 0.5)),
  roundP50Us: cell.roundMedians,
  roundMainUs: cell.roundMainUs,
});

interface Row {
  task: Task;
  size: string;
  sweep: boolean;
  tokens: number;
  chars: number;
  inline: Stats;
  single: Stats;
  /** Pool round trip minus the same work inline (medians): what a hand-off adds to the request. */
  overheadUs: number;
  burst: (Stats & { jobs: number; perJobUs: number }) | undefined;
}

/** Characters; a string (`<= 246`, `> 385520`) when the crossing lies outside the measured sizes. */
type Chars = number | string;

interface BreakEven {
  /** Inline work = what a hand-off adds to the request (pool round trip minus the same work inline). */
  latencyChars: Chars;
  /** Inline work = what a pool job costs the main thread (posting, cloning, resolving). */
  mainThreadChars: Chars;
  /** The larger of the two: beyond it the pool wins on both counts. */
  chars: Chars;
}

interface Lag {
  maxMs: number;
  p99Ms: number;
  jobs: number;
}

interface Report {
  scenario: 'workers';
  node: string;
  settings: { rounds: number; threads: number; burst: number; configDefaults: { threads: number; inlineMaxChars: number; maxBatchChars: number } } & Record<string, unknown>;
  rows: Row[];
  breakEven: Record<Task, BreakEven> & { suggestedInlineMaxChars: number | undefined; currentDefault: number };
  eventLoop: Record<string, { maxMs: number; p99Ms: number; jobsPerWindow: number; rounds: Lag[] }>;
  elapsedS?: number;
}

function buildReport(settings: Report['settings'], sizes: readonly Size[], cells: Map<string, Cell>, modes: string[], lagRounds: Array<Record<string, Lag>>): Report {
  const rows: Row[] = [];
  const breakEven = {} as Record<Task, BreakEven>;
  for (const task of TASKS) {
    const points: Array<{ chars: number; inlineUs: number; singleUs: number; mainUs: number }> = [];
    for (const size of [...sizes].sort((a, b) => a.chars - b.chars)) {
      const inlineStats = stats(cells.get(`${task}/${size.label}/inline`)!);
      const single = stats(cells.get(`${task}/${size.label}/single`)!);
      const burstCell = cells.get(`${task}/${size.label}/burst`);
      const burst = burstCell === undefined ? undefined : { ...stats(burstCell), jobs: burstCell.samples.length / burstCell.perJob.length, perJobUs: round(quantile(burstCell.perJob, 0.5)) };
      rows.push({ task, size: size.sweep ? `${size.label.slice(0, -1)} chars` : `${size.label} tokens`, sweep: size.sweep, tokens: size.tokens, chars: size.chars, inline: inlineStats, single, overheadUs: round(single.p50Us - inlineStats.p50Us), burst });
      points.push({ chars: size.chars, inlineUs: inlineStats.p50Us, singleUs: single.p50Us, mainUs: single.mainUsPerJob });
    }
    const latencyChars = crossing(points.map((p) => ({ chars: p.chars, diff: p.inlineUs - (p.singleUs - p.inlineUs) })));
    const mainThreadChars = crossing(points.map((p) => ({ chars: p.chars, diff: p.inlineUs - p.mainUs })));
    const both = [latencyChars, mainThreadChars].map(numeric);
    breakEven[task] = { latencyChars, mainThreadChars, chars: both.includes(undefined) ? `> ${points.at(-1)!.chars}` : Math.max(...(both as number[])) };
  }
  // One setting serves both tasks: the smaller break-even, so neither stalls the loop well past its own.
  const perTask = TASKS.map((task) => numeric(breakEven[task].chars));
  const suggested = perTask.includes(undefined) ? undefined : niceRound(Math.min(...(perTask as number[])));
  const eventLoop: Report['eventLoop'] = {};
  for (const mode of modes) {
    const of = (field: 'maxMs' | 'p99Ms' | 'jobs') => round(quantile(lagRounds.map((r) => r[mode]![field]), 0.5), 2);
    eventLoop[mode] = { maxMs: of('maxMs'), p99Ms: of('p99Ms'), jobsPerWindow: of('jobs'), rounds: lagRounds.map((r) => r[mode]!) };
  }
  return {
    scenario: 'workers',
    node: process.version,
    settings: { ...settings, encoding: ENCODING, variantsPerSize: VARIANTS, cellMs: CELL_MS, lagWindowMs: LAG_WINDOW_MS, lagResolutionMs: LAG_RESOLUTION_MS, policy: POLICY },
    rows,
    breakEven: { ...breakEven, suggestedInlineMaxChars: suggested, currentDefault: settings.configDefaults.inlineMaxChars },
    eventLoop,
  };
}

/**
 * Where `diff` turns non-negative for good (after the last negative point), interpolated on
 * log(chars): a noisy small size that happens to cross early does not count.
 */
function crossing(points: ReadonlyArray<{ chars: number; diff: number }>): Chars {
  const last = points.findLastIndex((p) => p.diff < 0);
  if (last === -1) return `<= ${points[0]!.chars}`;
  if (last === points.length - 1) return `> ${points[last]!.chars}`;
  const a = points[last]!;
  const b = points[last + 1]!;
  const t = -a.diff / (b.diff - a.diff);
  return Math.round(Math.exp(Math.log(a.chars) + t * (Math.log(b.chars) - Math.log(a.chars))));
}

/** A bound at the low end counts as that size; one past the high end is unknown. */
function numeric(chars: Chars): number | undefined {
  if (typeof chars === 'number') return chars;
  return chars.startsWith('<=') ? Number(chars.slice(3)) : undefined;
}

/** Two significant digits, rounded down: a default on the inline side of the measured break-even. */
function niceRound(chars: number): number {
  const step = 10 ** Math.max(0, Math.floor(Math.log10(chars)) - 1);
  return Math.floor(chars / step) * step;
}

function render(report: Report): string {
  const s = report.settings;
  const lines = [
    `${s.threads} worker thread(s) (config default ${s.configDefaults.threads}), ${ENCODING}, ${s.rounds} rounds; µs per job, p50/p99 over all rounds;`,
    'main: main-thread busy µs per job (event-loop utilization); burst: N jobs queued at once, µs/job = burst wall time / N',
    '',
    'task   tokens    chars    inline p50/p99     pool p50/p99   main    burst N   µs/job   job p99    main',
  ];
  for (const row of report.rows.filter((r) => !r.sweep)) {
    const b = row.burst!;
    lines.push(
      `${row.task.padEnd(5)} ${pad(row.tokens, 7)} ${pad(row.chars, 8)}  ${pair(row.inline)}  ${pair(row.single)} ${pad(us(row.single.mainUsPerJob), 6)}  ${pad(b.jobs, 7)} ${pad(us(b.perJobUs), 8)} ${pad(us(b.p99Us), 9)} ${pad(us(b.mainUsPerJob), 7)}`,
    );
  }
  lines.push('', 'break-even sweep, medians in µs: overhead = pool round trip - inline; main = main-thread cost of a pool job');
  lines.push('   chars  count inline   pool overhead  main   scan inline   pool overhead  main');
  const byChars = [...new Set(report.rows.map((r) => r.chars))].sort((a, b) => a - b);
  for (const chars of byChars) {
    const cols = TASKS.map((task) => {
      const r = report.rows.find((row) => row.chars === chars && row.task === task)!;
      return `${pad(us(r.inline.p50Us), 12)} ${pad(us(r.single.p50Us), 7)} ${pad(us(r.overheadUs), 8)} ${pad(us(r.single.mainUsPerJob), 5)}`;
    });
    lines.push(`${pad(chars, 8)} ${cols.join('  ')}`);
  }
  const be = report.breakEven;
  lines.push('', 'break-even in chars: inline work = pool overhead (latency), = main-thread cost of a pool job (main); pool wins on both above the larger');
  for (const task of TASKS) lines.push(`  ${task.padEnd(5)}  latency ${pad(be[task].latencyChars, 8)}   main ${pad(be[task].mainThreadChars, 8)}   both ${pad(be[task].chars, 8)}`);
  lines.push(`  suggested workers.inlineMaxChars: ${be.suggestedInlineMaxChars ?? '-'} (current default ${be.currentDefault})`);
  lines.push('', `event-loop lag in ms while one ${report.rows.find((r) => r.tokens > 50_000)?.tokens ?? ''}-token prompt after another is processed (${LAG_WINDOW_MS} ms windows, median over rounds)`);
  lines.push('mode                max     p99  jobs/window');
  for (const [mode, v] of Object.entries(report.eventLoop)) lines.push(`${mode.padEnd(14)} ${pad(v.maxMs, 8)} ${pad(v.p99Ms, 7)} ${pad(mode === 'idle' ? '-' : v.jobsPerWindow, 12)}`);
  lines.push('', `${report.elapsedS} s`);
  return lines.join('\n');
}

const pad = (value: unknown, width: number) => String(value ?? '-').padStart(width);
const us = (value: number) => (Math.abs(value) < 100 ? value.toFixed(1) : String(Math.round(value)));
const pair = (stats: Stats) => `${pad(us(stats.p50Us), 7)}/${us(stats.p99Us).padEnd(7)}`;

function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

const round = (n: number, digits = 1) => Number(n.toFixed(digits));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const progress = (line: string) => process.stderr.write(`${line}\n`);

main().catch((err: unknown) => {
  process.stderr.write(`bench:workers failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
