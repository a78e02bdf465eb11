// One try of a chat request against one deployment: an undici dispatch handler (controller API)
// that builds the provider request, reads the answer (buffered, or parsed and translated as SSE
// as it streams) and reports the outcome to its owner, the upstream call (chat/upstream.ts),
// which decides between falling back and answering.
import type { Dispatcher } from 'undici';
import type { Config, Deployment } from '../config/load.js';
import { GatewayError } from '../errors/gateway-error.js';
import type { UpstreamRequest, ChatCompletion, ChatRequest, FrameSink, ProviderAdapter, TranslateContext, Usage } from '../providers/types.js';
import { failureFromStatus, failureFromTransport, type AttemptFailure } from '../providers/upstream-errors.js';
import { log } from '../log.js';
import { readUsage } from '../providers/usage.js';
import { SseEventTooLargeError, SseParser } from '../streaming/sse-parser.js';

const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MAX_SSE_EVENT_BYTES = 4 * 1024 * 1024;
/**
 * Upstream bytes whose frames may wait for the end of the read: past it they go out at once, so a
 * producer that hands over a whole stream in one go (the in-process mock) still meets the client's
 * backpressure within this much, as a socket read (at most 64 KiB) does.
 */
const MAX_BATCH_BYTES = 64 * 1024;

/** What every attempt of one request sends and how it reads the answer; shared by its attempts. */
export interface AttemptSpec {
  readonly request: ChatRequest;
  /** The output bound sent upstream: exactly what the hold pays for. */
  readonly maxTokens: number;
  /** The prompt's bound the hold was computed with: no usage report counts more. */
  readonly promptBoundTokens: number;
  readonly ctx: TranslateContext;
  /** Receives a stream's translated frames; the owner drains it after each upstream read (flushFrames). */
  readonly sink: FrameSink;
  readonly upstream: Config['upstream'];
}

/** What an attempt reports to; every call carries the attempt so a stale one is ignored. */
export interface AttemptOwner {
  onAttemptFailed(attempt: UpstreamAttempt, failure: AttemptFailure, outcome: string): void;
  /** `completion`: the answer as parsed from `body` (its own object: the owner may change it). */
  onCompletion(attempt: UpstreamAttempt, body: string | Uint8Array, usage: Usage | undefined, completion: unknown): void;
  /** The frames of one upstream read (several HTTP chunks, at most MAX_BATCH_BYTES of them) are in the sink. */
  flushFrames(attempt: UpstreamAttempt): void;
  onStreamEnd(attempt: UpstreamAttempt, usage: Usage | undefined): void;
}

export class ClientGoneError extends Error {
  constructor() {
    super('client disconnected');
    this.name = 'ClientGoneError';
  }
}

/** One try against one deployment: an undici dispatch handler (controller API). */
export class UpstreamAttempt implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private pendingAbort: Error | undefined;
  private startedAt = 0;
  private statusCode = 0;
  private retryAfter: string | undefined;
  private chunks: Buffer[] = [];
  private bytes = 0;
  private parser: SseParser | undefined;
  private translator: ReturnType<ProviderAdapter['createStreamTranslator']> | undefined;
  private done = false;
  /** flushQueuedFrames is queued: frames wait in the sink for the end of this socket read. */
  private flushQueued = false;
  /** Upstream bytes pushed since the frames last went out. */
  private batchBytes = 0;

  constructor(
    private readonly owner: AttemptOwner,
    readonly deployment: Deployment,
    private readonly adapter: ProviderAdapter,
    private readonly spec: AttemptSpec,
  ) {}

  /** Sends the provider request the owner built for this deployment. */
  start(built: UpstreamRequest, dispatcher: Pick<Dispatcher, 'dispatch'>): void {
    const upstream = this.spec.upstream;
    this.startedAt = performance.now();
    try {
      dispatcher.dispatch(
        { method: 'POST', path: built.path, headers: built.headers, body: dispatchBody(built.body), headersTimeout: upstream.headersTimeoutMs, bodyTimeout: upstream.bodyTimeoutMs },
        this,
      );
    } catch (err) {
      this.done = true;
      const failure = failureFromTransport(err);
      this.owner.onAttemptFailed(this, failure, outcomeOf(failure));
    }
  }

  elapsedMs(): number {
    return performance.now() - this.startedAt;
  }

  /** Output tokens, estimated when usage is missing: content chunks of a stream, bytes of an answer. */
  get outputEstimate(): number {
    return this.translator !== undefined ? this.translator.contentChunks : this.bytes;
  }

  /** The text a stream generated, for an exact count when usage is missing; undefined for an answer, or past the size limit. */
  completionText(): string | undefined {
    return this.translator?.completionText.text();
  }

  abort(reason: Error): void {
    if (this.done) return;
    if (this.controller) this.controller.abort(reason);
    else this.pendingAbort = reason;
  }

  pause(): void {
    this.controller?.pause();
  }

  resume(): void {
    this.controller?.resume();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.pendingAbort) controller.abort(this.pendingAbort);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    this.statusCode = statusCode;
    if (statusCode === 429) {
      const value = headers['retry-after'];
      this.retryAfter = Array.isArray(value) ? value[0] : value;
    }
    if (statusCode >= 200 && statusCode < 300 && this.spec.request.stream === true) {
      this.translator = this.adapter.createStreamTranslator(this.spec.ctx);
      const translator = this.translator;
      const sink = this.spec.sink;
      this.parser = new SseParser((event) => translator.onEvent(event, sink), MAX_SSE_EVENT_BYTES);
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.done) return;
    if (this.parser) {
      try {
        this.parser.push(chunk);
      } catch (err) {
        // Frames translated before the bad event still go out, then the typed error.
        this.batchBytes = 0;
        this.owner.flushFrames(this);
        return this.failWith(controller, err);
      }
      // One socket read often holds several of the upstream's HTTP chunks (tokens queue up while
      // the gateway is busy): their frames go to the client together, after the read, in one write
      // and one pass of the output guard, instead of a send per chunk.
      this.batchBytes += chunk.length;
      if (this.batchBytes >= MAX_BATCH_BYTES) this.flushBatch();
      else if (!this.flushQueued) {
        this.flushQueued = true;
        queueMicrotask(this.flushQueuedFrames);
      }
      return;
    }
    const limit = this.statusCode >= 200 && this.statusCode < 300 ? this.spec.upstream.maxResponseBytes : MAX_ERROR_BODY_BYTES;
    if (this.bytes + chunk.length > limit) {
      if (limit === MAX_ERROR_BODY_BYTES) return; // keep the head of an error body, drop the rest
      return this.failWith(controller, new GatewayError('NR_UPSTREAM_BAD_RESPONSE', 'The upstream response is too large.'));
    }
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  onResponseEnd(): void {
    if (this.done) return;
    this.done = true;
    if (this.statusCode < 200 || this.statusCode >= 300) {
      const failure = failureFromStatus(this.statusCode, Buffer.concat(this.chunks, this.bytes).toString('utf8'), this.retryAfter);
      return this.owner.onAttemptFailed(this, failure, outcomeOf(failure));
    }
    if (this.translator) {
      this.parser!.end();
      // The frames still waiting go out as the stream's last ones.
      if (this.translator.finished) return this.owner.onStreamEnd(this, this.withinBound(this.translator.usage));
      this.flushBatch();
      const failure: AttemptFailure = {
        error: new GatewayError('NR_UPSTREAM_ERROR', 'The upstream stream ended before it was complete.'),
        retryable: true,
        coolDown: true,
      };
      return this.owner.onAttemptFailed(this, failure, 'error');
    }
    this.completeNonStream();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.done) return;
    this.done = true;
    if (err instanceof ClientGoneError) return;
    // What arrived before the failure goes out first, as it would have without the wait.
    this.flushBatch();
    const failure = failureFromTransport(err);
    this.owner.onAttemptFailed(this, failure, outcomeOf(failure));
  }

  private readonly flushQueuedFrames = (): void => {
    this.flushQueued = false;
    // Ended meanwhile: onStreamEnd took the frames, or the failure path flushed them.
    if (!this.done) this.flushBatch();
  };

  /** The frames waiting in the sink go out now (the queued microtask then finds none). */
  private flushBatch(): void {
    if (this.batchBytes === 0) return;
    this.batchBytes = 0;
    this.owner.flushFrames(this);
  }

  private completeNonStream(): void {
    const raw = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.bytes);
    this.chunks = []; // `bytes` stays: it is the output estimate when usage is missing
    let usage: Usage | undefined;
    let body: string | Uint8Array;
    let completion: ChatCompletion;
    try {
      let json: unknown;
      try {
        json = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new GatewayError('NR_UPSTREAM_BAD_RESPONSE');
      }
      completion = this.adapter.parseResponse(json, this.spec.ctx);
      usage = this.withinBound(readUsage(completion.usage));
      body = this.adapter.passthroughResponse ? raw : JSON.stringify(completion);
    } catch (err) {
      const failure = failureFromTransport(err);
      return this.owner.onAttemptFailed(this, failure, outcomeOf(failure));
    }
    this.owner.onCompletion(this, body, usage, completion);
  }

  /**
   * Usage as charged: the upstream was asked for at most maxTokens, so a report of more (a provider
   * bug, or a hostile upstream) counts maxTokens; the hold covers exactly that.
   */
  private withinBound(usage: Usage | undefined): Usage | undefined {
    const { maxTokens, promptBoundTokens } = this.spec;
    if (usage === undefined || (usage.completion_tokens <= maxTokens && usage.prompt_tokens <= promptBoundTokens)) return usage;
    log.warn('upstream: usage reports more tokens than the request could use; charging the bounds', {
      deployment: this.deployment.id,
      reported: { prompt: usage.prompt_tokens, completion: usage.completion_tokens },
      bounds: { prompt: promptBoundTokens, completion: maxTokens },
    });
    const prompt = Math.min(usage.prompt_tokens, promptBoundTokens);
    const completion = Math.min(usage.completion_tokens, maxTokens);
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  }

  private failWith(controller: Dispatcher.DispatchController, err: unknown): void {
    this.done = true;
    const failure = err instanceof SseEventTooLargeError
      ? failureFromTransport(new GatewayError('NR_UPSTREAM_BAD_RESPONSE', 'An upstream stream event is too large.'))
      : failureFromTransport(err);
    controller.abort(failure.error);
    this.owner.onAttemptFailed(this, failure, outcomeOf(failure));
  }
}

export function outcomeOf(failure: AttemptFailure): string {
  switch (failure.error.code) {
    case 'NR_UPSTREAM_RATE_LIMITED':
      return 'rate_limited';
    case 'NR_UPSTREAM_TIMEOUT':
      return 'timeout';
    case 'NR_UPSTREAM_UNAVAILABLE':
      return 'unavailable';
    case 'NR_UPSTREAM_BAD_RESPONSE':
      return 'bad_response';
    case 'NR_INVALID_REQUEST':
      return 'client_error';
    default:
      return 'error';
  }
}

/** A built body as undici takes it: it sends any iterable of chunks (its types list streams only). */
export function dispatchBody(body: UpstreamRequest['body']): Dispatcher.DispatchOptions['body'] {
  return body as Dispatcher.DispatchOptions['body'];
}
