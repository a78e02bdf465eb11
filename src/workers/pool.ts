// The worker pool (piscina) for CPU work that must not stall the event loop streaming thousands
// of responses: token counting and guardrail scans. Jobs below `inlineMaxChars` run inline (a pool
// round trip costs more than they do, measured by `npm run bench:workers`); larger ones queue and
// leave in batches: every job queued in one turn of the event loop goes in one task per kind.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { ScanResult } from '../guardrails/types.js';
import { workerJobsTotal, workerPoolState, workerTaskSeconds } from '../metrics/registry.js';
import type { JobOutcome, ScanJob, TokenJob } from './messages.js';
import { countTokenJob } from './tasks/count-tokens.js';
import { scanJob } from './tasks/scan-text.js';

export interface WorkerPoolOptions {
  readonly threads: number;
  /** Jobs of at most this many characters run on the main thread. */
  readonly inlineMaxChars: number;
  /** Largest batch sent in one task, in characters. */
  readonly maxBatchChars: number;
  /** A task running longer is aborted and its jobs fail (callers fall back or answer an error). */
  readonly taskTimeoutMs: number;
}

interface Pending<J, R> {
  readonly job: J;
  readonly resolve: (result: R) => void;
  readonly reject: (err: unknown) => void;
}

/** A queue of one task kind: jobs queued in one event-loop turn leave together. */
class Batcher<J, R> {
  private pending: Array<Pending<J, R>> = [];
  private scheduled = false;

  constructor(
    private readonly send: (jobs: J[]) => Promise<Array<JobOutcome<R>>>,
    private readonly sizeOf: (job: J) => number,
    private readonly maxBatchChars: number,
  ) {}

  add(job: J): Promise<R> {
    return new Promise((resolve, reject) => {
      this.pending.push({ job, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const all = this.pending;
    this.pending = [];
    let start = 0;
    while (start < all.length) {
      let end = start;
      let chars = 0;
      while (end < all.length && (end === start || chars + this.sizeOf(all[end]!.job) <= this.maxBatchChars)) chars += this.sizeOf(all[end++]!.job);
      const batch = all.slice(start, end);
      this.send(batch.map((p) => p.job)).then(
        (outcomes) =>
          batch.forEach((p, i) => {
            const outcome = outcomes[i]!;
            if (outcome.ok) p.resolve(outcome.value);
            else p.reject(new Error(`worker job failed: ${outcome.error}`));
          }),
        (err: unknown) => batch.forEach((p) => p.reject(err)),
      );
      start = end;
    }
  }
}

export class WorkerPool {
  private readonly piscina: Piscina;
  private readonly counts: Batcher<TokenJob, number>;
  private readonly scans: Batcher<ScanJob, ScanResult>;

  constructor(private readonly options: WorkerPoolOptions) {
    // Threads start on first use (most requests never need one) and leave after a minute idle.
    this.piscina = new Piscina({ filename: workerFile(), minThreads: 0, maxThreads: options.threads, idleTimeout: 60_000 });
    this.counts = new Batcher((jobs) => this.run<Array<JobOutcome<number>>>('countTokens', { jobs }), tokenJobChars, options.maxBatchChars);
    this.scans = new Batcher((jobs) => this.run<Array<JobOutcome<ScanResult>>>('scan', { jobs }), (job) => job.text.length, options.maxBatchChars);
    workerPoolState.queued = () => this.piscina.queueSize;
    workerPoolState.threads = () => this.piscina.threads.length;
    workerPoolState.utilization = () => this.piscina.utilization;
  }

  /** Exact tokens where the encoding is known, else the UTF-8 byte bound. */
  countTokens(job: TokenJob): number | Promise<number> {
    if (tokenJobChars(job) <= this.options.inlineMaxChars) {
      workerJobsTotal.inc({ task: 'count_tokens', where: 'inline' });
      return countTokenJob(job);
    }
    workerJobsTotal.inc({ task: 'count_tokens', where: 'pool' });
    return this.counts.add(job);
  }

  scan(job: ScanJob): ScanResult | Promise<ScanResult> {
    if (job.text.length <= this.options.inlineMaxChars) {
      workerJobsTotal.inc({ task: 'scan', where: 'inline' });
      return scanJob(job);
    }
    workerJobsTotal.inc({ task: 'scan', where: 'pool' });
    return this.scans.add(job);
  }

  get threads(): number {
    return this.piscina.threads.length;
  }

  get queued(): number {
    return this.piscina.queueSize;
  }

  async close(): Promise<void> {
    await this.piscina.destroy();
  }

  private async run<R>(name: 'countTokens' | 'scan', task: unknown): Promise<R> {
    const startedAt = performance.now();
    try {
      // A task past its deadline is aborted (piscina ends its thread): no request waits forever on one.
      return (await this.piscina.run(task, { name, signal: AbortSignal.timeout(this.options.taskTimeoutMs) })) as R;
    } finally {
      workerTaskSeconds.observe({ task: name === 'scan' ? 'scan' : 'count_tokens' }, (performance.now() - startedAt) / 1000);
    }
  }
}

function tokenJobChars(job: TokenJob): number {
  if (job.kind === 'text') return job.text.length;
  let chars = 0;
  for (const message of job.messages) {
    if (typeof message.content === 'string') chars += message.content.length;
    else if (Array.isArray(message.content)) for (const part of message.content) if (part.type === 'text') chars += part.text.length;
    for (const call of message.tool_calls ?? []) chars += call.function.arguments.length + call.function.name.length;
  }
  for (const tool of job.tools ?? []) chars += (tool.function.description?.length ?? 0) + tool.function.name.length + 64;
  return chars;
}

/** The compiled worker entry: next to this module under dist/, or dist's copy when running from src/ (tests). */
function workerFile(): string {
  const here = fileURLToPath(new URL('./worker.js', import.meta.url));
  if (existsSync(here)) return here;
  const built = here.replace(/([\\/])src([\\/])workers([\\/])worker\.js$/, '$1dist$1src$2workers$3worker.js');
  if (!existsSync(built)) throw new Error(`worker entry not found: ${here} or ${built} (run npm run build)`);
  return built;
}
