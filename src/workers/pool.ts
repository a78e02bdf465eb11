// The worker pool (piscina) for CPU work that must not stall the event loop streaming thousands
// of responses: token counting and guardrail scans. Jobs below `inlineMaxChars` run inline (a pool
// round trip costs more than they do, measured by `npm run bench:workers`); larger ones queue and
// leave in batches: every job queued in one turn of the event loop goes in one task per kind.
// Exact token counts always run in a worker: this thread loads no vocabulary (~55 MB each).
// Results are cached by content (result-cache.ts): a text seen before is neither counted nor
// scanned again, and a chat prompt is counted text by text so a resent conversation costs only
// its new turns.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { redactFindings } from '../guardrails/redact-findings.js';
import type { ScanResult } from '../guardrails/types.js';
import type { Encoding } from '../config/model-encodings.js';
import { workerCacheState, workerJobsTotal, workerPoolState, workerTaskSeconds } from '../metrics/registry.js';
import { countMessageFormat, countToolChoiceFormat, countToolFormat, REPLY_PRIMING_TOKENS, TOOL_DEFINITIONS_HEADER_TOKENS, type TextCounter } from '../tokens/chat-format.js';
import { upperBoundChatTokens, upperBoundTokens } from '../tokens/upper-bound.js';
import type { JobOutcome, ScanJob, TokenJob } from './messages.js';
import { contentKey, ResultCache, type ContentKeys } from './result-cache.js';
import { scanJob } from './tasks/scan-text.js';

export interface WorkerPoolOptions {
  readonly threads: number;
  /** Jobs of at most this many characters run on the main thread. */
  readonly inlineMaxChars: number;
  /** Largest batch sent in one task, in characters. */
  readonly maxBatchChars: number;
  /** A task running longer is aborted and its jobs fail (callers fall back or answer an error). */
  readonly taskTimeoutMs: number;
  /** Bytes the token-count and verdict caches may hold together; 0 or absent: no caching (benches measuring the work itself). */
  readonly resultCacheMaxBytes?: number;
}

/** Shorter texts are scanned again rather than cached: the hash and the entry would cost about as much. */
const MIN_CACHED_SCAN_CHARS = 32;

// Label children resolved once: these count every text of every prompt.
const COUNTED_INLINE = workerJobsTotal.labels('count_tokens', 'inline');
const COUNTED_IN_POOL = workerJobsTotal.labels('count_tokens', 'pool');
const SCANNED_INLINE = workerJobsTotal.labels('scan', 'inline');
const SCANNED_IN_POOL = workerJobsTotal.labels('scan', 'pool');

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
  private readonly textCounts: ResultCache<number>;
  private readonly verdicts: ResultCache<ScanResult>;
  private readonly caching: boolean;
  /** Token totals of shared (frozen) messages and tools, by what they were counted as and the encoding (`message:o200k_base`): see countChat. */
  private readonly ownerCounts = new WeakMap<object, Partial<Record<string, number>>>();

  constructor(private readonly options: WorkerPoolOptions) {
    // Threads start on first use (most requests never need one) and leave after a minute idle.
    this.piscina = new Piscina({ filename: workerFile(), minThreads: 0, maxThreads: options.threads, idleTimeout: 60_000 });
    this.counts = new Batcher((jobs) => this.run<Array<JobOutcome<number>>>('countTokens', { jobs }), tokenJobChars, options.maxBatchChars);
    this.scans = new Batcher((jobs) => this.run<Array<JobOutcome<ScanResult>>>('scan', { jobs }), (job) => job.text.length, options.maxBatchChars);
    workerPoolState.queued = () => this.piscina.queueSize;
    workerPoolState.threads = () => this.piscina.threads.length;
    workerPoolState.utilization = () => this.piscina.utilization;
    // Verdicts are few and small next to the counts' many tiny entries: a quarter of the budget for the counts.
    const cacheBytes = options.resultCacheMaxBytes ?? 0;
    this.caching = cacheBytes > 0;
    this.textCounts = new ResultCache(Math.floor(cacheBytes / 4), () => 8);
    this.verdicts = new ResultCache(cacheBytes - Math.floor(cacheBytes / 4), scanResultBytes);
    workerCacheState.caches = { token_counts: this.textCounts, scan_verdicts: this.verdicts };
  }

  /**
   * Exact tokens where the encoding is known (in a worker), else the UTF-8 byte bound. `keys`: the
   * request's content keys, when its texts were hashed already (by its scans).
   */
  countTokens(job: TokenJob, keys?: ContentKeys): number | Promise<number> {
    if (job.encoding === undefined) {
      // The bound needs no vocabulary: inline unless a big prompt's JSON would hold the loop.
      if (tokenJobChars(job) <= this.options.inlineMaxChars) {
        COUNTED_INLINE.inc();
        return job.kind === 'text' ? upperBoundTokens(job.text) : upperBoundChatTokens(job.messages, job.tools);
      }
      COUNTED_IN_POOL.inc();
      return this.counts.add(job);
    }
    if (job.kind === 'text') return this.countText(job.text, job.encoding, keys);
    return this.countChat(job, job.encoding, keys);
  }

  /**
   * A chat prompt text by text, as countChatFormat sums it: the format's overheads here, each text
   * from the cache or a worker. A shared (frozen) message or tool, a cached parse that every
   * request of a conversation carries (json/parsed-elements.ts), keeps its total by identity.
   */
  private countChat(job: Extract<TokenJob, { kind: 'chat' }>, encoding: Encoding, keys: ContentKeys | undefined): number | Promise<number> {
    let total = REPLY_PRIMING_TOKENS;
    let pending: Array<Promise<number>> | undefined;
    const add = (count: number | Promise<number>) => {
      if (typeof count === 'number') total += count;
      else (pending ??= []).push(count);
    };
    for (const message of job.messages) add(this.countOwner(message, `message:${encoding}`, encoding, keys, (countText) => countMessageFormat(message, countText)));
    const tools = job.tools;
    if (tools !== undefined && tools.length > 0) {
      total += TOOL_DEFINITIONS_HEADER_TOKENS;
      for (const tool of tools) add(this.countOwner(tool, `tool:${encoding}`, encoding, keys, (countText) => countToolFormat(tool, countText)));
    }
    add(countToolChoiceFormat(job.toolChoice, (text) => this.countTextNow(text, encoding, keys, (count) => add(count))));
    if (pending === undefined) return total;
    return Promise.all(pending).then((counts) => counts.reduce((sum, n) => sum + n, total));
  }

  /** One message's or tool's share (`share`, given a text counter), remembered for a shared one under `as`. */
  private countOwner(owner: object, as: string, encoding: Encoding, keys: ContentKeys | undefined, share: (countText: TextCounter) => number): number | Promise<number> {
    const shared = this.caching && Object.isFrozen(owner);
    if (shared) {
      const known = this.ownerCounts.get(owner)?.[as];
      if (known !== undefined) return known;
    }
    let pending: Array<Promise<number>> | undefined;
    const sum = share((text) => this.countTextNow(text, encoding, keys, (count) => (pending ??= []).push(count)));
    const count = pending === undefined ? sum : Promise.all(pending).then((counts) => counts.reduce((total, n) => total + n, sum));
    if (shared) {
      const remember = (n: number) => void this.ownerCounts.set(owner, { ...this.ownerCounts.get(owner), [as]: n });
      // A failed count (a worker timeout) is not remembered; the caller sees the failure.
      if (typeof count === 'number') remember(count);
      else count.then(remember, () => {});
    }
    return count;
  }

  /** A text's count if known now, else 0 with the pending count handed to `later`. */
  private countTextNow(text: string, encoding: Encoding, keys: ContentKeys | undefined, later: (count: Promise<number>) => void): number {
    const count = this.countText(text, encoding, keys);
    if (typeof count === 'number') return count;
    later(count);
    return 0;
  }

  private countText(text: string, encoding: Encoding, keys: ContentKeys | undefined): number | Promise<number> {
    if (text.length === 0) return 0;
    const count = () => {
      COUNTED_IN_POOL.inc();
      return this.counts.add({ kind: 'text', text, encoding });
    };
    if (!this.caching) return count();
    return this.textCounts.getOrCompute(`${encoding === 'o200k_base' ? 'o' : 'c'}${keys?.of(text) ?? contentKey(text)}`, count);
  }

  /** `keys`: the request's content keys, kept for its token count (which then hashes no text twice). */
  scan(job: ScanJob, keys?: ContentKeys): ScanResult | Promise<ScanResult> {
    if (!this.caching || job.text.length < MIN_CACHED_SCAN_CHARS) return this.runScan(job);
    // The policy key is a hash of the merged policy: a changed policy never meets an old verdict.
    // A verdict is kept without its redacted text (conversations would be held twice over) and
    // the text is rebuilt from the findings each time.
    const verdict = this.verdicts.getOrCompute(`${job.stage === 'input' ? '<' : '>'}${job.policyKey}${keys?.scanned(job.text) ?? contentKey(job.text)}`, () => then(this.runScan(job), withoutText));
    return then(verdict, (v) => (v.findings.length === 0 ? v : { blocked: v.blocked, findings: v.findings, redacted: redactFindings(job.text, v.findings) }));
  }

  private runScan(job: ScanJob): ScanResult | Promise<ScanResult> {
    if (job.text.length <= this.options.inlineMaxChars) {
      SCANNED_INLINE.inc();
      return scanJob(job);
    }
    SCANNED_IN_POOL.inc();
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

/** What a cached verdict holds: its findings (the redacted text is not kept). */
function scanResultBytes(result: ScanResult): number {
  return 64 + 96 * result.findings.length;
}

function withoutText(result: ScanResult): ScanResult {
  return result.redacted === undefined ? result : { blocked: result.blocked, findings: result.findings, redacted: undefined };
}

function then<T, R>(value: T | Promise<T>, next: (value: T) => R): R | Promise<R> {
  return value instanceof Promise ? value.then(next) : next(value);
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
