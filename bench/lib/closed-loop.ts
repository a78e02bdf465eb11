// The load generator of every scenario: N closed loops, each on its own keep-alive connection
// (one undici Client), sending its group's requests back to back until the deadline, then letting
// the requests in flight finish. Unlike autocannon it never abandons a request at the end, so the
// 2xx it counts can be compared exactly with the ledger's settlements, and it timestamps every
// body chunk, so streams get time to first token, inter-chunk gaps and stalls.
// Cheap on purpose (it shares the cores with the servers it measures): one handler object per loop,
// reused for every request; a chunk costs one clock read, a few comparisons, a native indexOf and a
// 14-byte copy, and allocates nothing.
import { Client } from 'undici';
import type { Dispatcher } from 'undici';
import { Samples } from './samples.js';

export interface RequestShape {
  /** Flat [name, value, name, value, ...], built once. */
  headers: string[];
  body: Buffer;
}

/** A loop's own request sequence, called once per request (e.g. a conversation growing turn by turn). */
export type NextRequest = () => RequestShape;

/** Loops that send one kind of request; their shapes are taken in turn (e.g. one per org's key). */
export interface LoadGroup {
  name: string;
  loops: number;
  shapes: RequestShape[];
  /** One sequence per loop instead of the shared shapes: loop i sends what sequences[i] makes. */
  sequences?: NextRequest[];
  /** SSE answers: record time to first token, chunk gaps, stalls and the final [DONE]. */
  stream: boolean;
  /** The model is priced: every 2xx must have exactly one settled reservation in the ledger. */
  priced: boolean;
  /** Pause between two requests of one loop (keeps refusal shapes a minority of a mix). */
  pauseMs?: number;
}

export interface LoadPlan {
  origin: string;
  path: string;
  groups: LoadGroup[];
  durationMs: number;
  /** Loops start evenly spread over this long, so 1,000 streams do not open in the same millisecond. */
  startSpreadMs: number;
  /** After the deadline, requests in flight get this long to finish; the rest are cut and counted as unfinished. */
  drainTimeoutMs: number;
  /** A stream silent this long (first token included) counts as stalled. */
  stallMs: number;
  signal?: AbortSignal;
}

export interface GroupResult {
  name: string;
  stream: boolean;
  priced: boolean;
  /** Requests that got a complete answer or an error (drained ones included). */
  requests: number;
  /** Complete answers that arrived before the deadline: the throughput numerator. */
  completedInWindow: number;
  /** Request body bytes sent (every request, drained ones included). */
  bodyBytes: number;
  ok: number;
  byStatus: Record<string, number>;
  /** Connection and protocol errors (a response cut mid-body included). */
  errors: number;
  /** Still running at the drain deadline: cut by us. */
  unfinished: number;
  /** Time to the last byte of 2xx answers. */
  latencyMs: Samples;
  /** Streams only (2xx): request start to the first body bytes. */
  ttftMs: Samples;
  /** Streams only (2xx): silence between two arrivals of body data (see ARRIVAL_MERGE_MS). */
  gapMs: Samples;
  /** Streams that went silent longer than stallMs, or did not finish with [DONE]. */
  stalled: number;
  silent: number;
  incomplete: number;
  /** SSE events received over all finished streams (per-stream average is events / ok). */
  events: number;
}

/** Live counters for the progress line. */
export interface LoadProgress {
  completed: number;
  errors: number;
  non2xx: number;
  inFlight: number;
}

export interface LoadRun {
  progress: LoadProgress;
  done: Promise<GroupResult[]>;
}

const ERROR_PAUSE_MS = 10;
/**
 * Body pieces less than this apart are one arrival: a server that writes an event as several
 * HTTP chunks, or catches up on several events at once, delivers them in one socket read, and the
 * client sees them together. A gap is the silence between arrivals.
 */
export const ARRIVAL_MERGE_MS = 1;
const LF_LF = Buffer.from('\n\n');
const DONE_TAIL = Buffer.from('data: [DONE]\n\n');

function emptyResult(group: LoadGroup): GroupResult {
  return {
    name: group.name,
    stream: group.stream,
    priced: group.priced,
    requests: 0,
    completedInWindow: 0,
    bodyBytes: 0,
    ok: 0,
    byStatus: {},
    errors: 0,
    unfinished: 0,
    latencyMs: new Samples(),
    ttftMs: new Samples(),
    gapMs: new Samples(),
    stalled: 0,
    silent: 0,
    incomplete: 0,
    events: 0,
  };
}

/** One loop: one connection, one request at a time; the handler object is reused for every request. */
class Loop implements Dispatcher.DispatchHandler {
  private readonly opts: Dispatcher.DispatchOptions;
  private startedAt = 0;
  private lastAt = 0;
  private maxSilence = 0;
  private status = 0;
  private events = 0;
  private endedWithLf = false;
  private chunks = 0;
  /** The answer's last bytes, however it was split: did it end with the SSE terminator? */
  private readonly tail = new Uint8Array(DONE_TAIL.length);
  private tailLength = 0;
  private busy = false;
  /** Set once the loop sent its last request and it finished. */
  finished = false;

  constructor(
    private readonly run: Runner,
    private readonly client: Client,
    private readonly group: LoadGroup,
    private readonly result: GroupResult,
    private readonly cursor: { next: number },
    private readonly sequence: NextRequest | undefined,
  ) {
    this.send = this.send.bind(this);
    this.opts = { origin: run.plan.origin, path: run.plan.path, method: 'POST', headers: [], body: '' };
  }

  send(): void {
    if (!this.run.open()) {
      this.finish();
      return;
    }
    const shapes = this.group.shapes;
    const shape = this.sequence === undefined ? shapes[this.cursor.next++ % shapes.length]! : this.sequence();
    this.opts.headers = shape.headers;
    this.opts.body = shape.body;
    this.result.bodyBytes += shape.body.length;
    this.status = 0;
    this.events = 0;
    this.maxSilence = 0;
    this.endedWithLf = false;
    this.chunks = 0;
    this.tailLength = 0;
    this.busy = true;
    this.run.progress.inFlight++;
    this.startedAt = performance.now();
    this.lastAt = this.startedAt;
    this.client.dispatch(this.opts, this);
  }

  onRequestStart(): void {}

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.group.stream) return;
    const now = performance.now();
    const silence = now - this.lastAt;
    this.lastAt = now;
    if (silence > this.maxSilence) this.maxSilence = silence;
    const ok = this.status >= 200 && this.status < 300;
    if (this.chunks++ === 0) {
      if (ok) this.result.ttftMs.add(silence);
    } else if (ok && silence >= ARRIVAL_MERGE_MS) this.result.gapMs.add(silence);
    // Count event boundaries, one split across two chunks included.
    if (this.endedWithLf && chunk[0] === 0x0a) this.events++;
    for (let at = chunk.indexOf(LF_LF); at !== -1; at = chunk.indexOf(LF_LF, at + 2)) this.events++;
    this.endedWithLf = chunk[chunk.length - 1] === 0x0a;
    this.keepTail(chunk);
  }

  /** Copies the chunk's end into `tail` (shifting older bytes left when the chunk is short). */
  private keepTail(chunk: Buffer): void {
    const size = this.tail.length;
    if (chunk.length >= size) {
      for (let i = 0; i < size; i++) this.tail[i] = chunk[chunk.length - size + i]!;
      this.tailLength = size;
      return;
    }
    const keep = Math.min(this.tailLength, size - chunk.length);
    this.tail.copyWithin(0, this.tailLength - keep, this.tailLength);
    this.tail.set(chunk, keep);
    this.tailLength = keep + chunk.length;
  }

  private endedWithDone(): boolean {
    if (this.tailLength < this.tail.length) return false;
    for (let i = 0; i < this.tail.length; i++) if (this.tail[i] !== DONE_TAIL[i]) return false;
    return true;
  }

  onResponseEnd(): void {
    const now = performance.now();
    const result = this.result;
    this.settle();
    result.requests++;
    result.byStatus[this.status] = (result.byStatus[this.status] ?? 0) + 1;
    if (now <= this.run.deadline) result.completedInWindow++;
    const ok = this.status >= 200 && this.status < 300;
    if (ok) {
      result.ok++;
      result.latencyMs.add(now - this.startedAt);
    } else this.run.progress.non2xx++;
    if (this.group.stream) {
      // A stream is silent until its first chunk too, and a silent end counts like a gap.
      const silent = Math.max(this.maxSilence, now - this.lastAt) > this.run.plan.stallMs;
      const incomplete = !ok || !this.endedWithDone();
      if (silent) result.silent++;
      if (incomplete) result.incomplete++;
      if (silent || incomplete) result.stalled++;
      if (ok) result.events += this.events;
    }
    this.run.progress.completed++;
    this.continue(this.group.pauseMs ?? 0);
  }

  onResponseError(_controller: Dispatcher.DispatchController, _error: Error): void {
    this.settle();
    const result = this.result;
    result.requests++;
    if (this.run.cutting) result.unfinished++;
    else {
      result.errors++;
      this.run.progress.errors++;
    }
    if (this.group.stream) {
      result.incomplete++;
      result.stalled++;
      if (this.maxSilence > this.run.plan.stallMs) result.silent++;
    }
    // A dead target would otherwise be hammered in a tight loop.
    this.continue(Math.max(ERROR_PAUSE_MS, this.group.pauseMs ?? 0));
  }

  /** Cuts the connection (drain deadline or abort); a request in flight ends in onResponseError. */
  cut(): void {
    this.client.destroy().catch(() => undefined);
  }

  close(): Promise<void> {
    return this.client.destroy().catch(() => undefined);
  }

  private settle(): void {
    if (!this.busy) return;
    this.busy = false;
    this.run.progress.inFlight--;
  }

  private continue(pauseMs: number): void {
    if (!this.run.open()) this.finish();
    else if (pauseMs > 0) setTimeout(this.send, pauseMs);
    else this.send();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.run.loopFinished();
  }
}

class Runner {
  readonly progress: LoadProgress = { completed: 0, errors: 0, non2xx: 0, inFlight: 0 };
  readonly deadline: number;
  cutting = false;
  private readonly loops: Loop[] = [];
  private readonly results: GroupResult[];
  private running = 0;
  private resolve!: (results: GroupResult[]) => void;
  readonly done: Promise<GroupResult[]>;
  private drainTimer: NodeJS.Timeout | undefined;

  constructor(readonly plan: LoadPlan) {
    this.done = new Promise((resolve) => (this.resolve = resolve));
    this.deadline = performance.now() + plan.durationMs;
    this.results = plan.groups.map(emptyResult);
    const clientOptions: Client.Options = {
      pipelining: 1,
      keepAliveTimeout: 60_000,
      headersTimeout: 30_000,
      // A hung stream ends here at the latest; the drain deadline usually cuts it first.
      bodyTimeout: 30_000,
    };
    plan.groups.forEach((group, g) => {
      const cursor = { next: 0 };
      for (let i = 0; i < group.loops; i++) this.loops.push(new Loop(this, new Client(plan.origin, clientOptions), group, this.results[g]!, cursor, group.sequences?.[i]));
    });
  }

  open(): boolean {
    return !this.cutting && performance.now() < this.deadline && this.plan.signal?.aborted !== true;
  }

  start(): void {
    this.running = this.loops.length;
    if (this.running === 0) {
      this.complete();
      return;
    }
    const stepMs = this.loops.length > 1 ? this.plan.startSpreadMs / this.loops.length : 0;
    this.loops.forEach((loop, i) => {
      if (stepMs * i < 1) loop.send();
      else setTimeout(loop.send, stepMs * i);
    });
    this.drainTimer = setTimeout(this.cutAll, this.plan.durationMs + this.plan.drainTimeoutMs);
    this.plan.signal?.addEventListener('abort', this.cutAll, { once: true });
  }

  /** Drain deadline or abort: cut every connection still busy. Loops whose start is still pending find the run closed when their timer fires, and finish. */
  private readonly cutAll = (): void => {
    this.cutting = true;
    for (const loop of this.loops) if (!loop.finished) loop.cut();
  };

  loopFinished(): void {
    if (--this.running === 0) this.complete();
  }

  private complete(): void {
    clearTimeout(this.drainTimer);
    this.plan.signal?.removeEventListener('abort', this.cutAll);
    void Promise.all(this.loops.map((loop) => loop.close())).then(() => this.resolve(this.results));
  }
}

/** Starts the loops at once and returns live counters plus the per-group results once every loop is done. */
export function runClosedLoop(plan: LoadPlan): LoadRun {
  const runner = new Runner(plan);
  runner.start();
  return { progress: runner.progress, done: runner.done };
}
