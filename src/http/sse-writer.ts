// Writes one response on a uWS HttpResponse: the head, a complete JSON answer, or a stream of
// frames with backpressure (the source is paused while the client is not reading, and a client
// that stops reading for good is cut off), and errors before or after the first byte.
// One preallocated cork callback serves every write: no closure per chunk.
import type { GatewayError } from '../errors/gateway-error.js';
import { errorJson, sseErrorFrame } from './error-response.js';
import { JSON_TYPE, logServerFault, sendError } from './respond.js';
import type { HttpResponse } from './server-api.js';

export const SSE_TYPE = 'text/event-stream';

/** The head of a 200 answer; x-request-id is the writer's own. */
export interface ResponseHead {
  readonly contentType: string;
  /** Time the gateway itself spent before this head, upstream waits excluded. */
  readonly overheadMs: number;
  /** Upstream attempts made, fallbacks included. */
  readonly attempts: number;
  /** x-ratelimit-* headers for a key or team with limits. */
  readonly extraHeaders: Readonly<Record<string, string>> | undefined;
}

/** How errors are worded: the route's wire format (OpenAI's by default). */
export interface ErrorFormat {
  errorBody(err: GatewayError): string;
  streamErrorFrame(err: GatewayError): string;
}
const OPENAI_ERRORS: ErrorFormat = { errorBody: errorJson, streamErrorFrame: sseErrorFrame };

/** What produces the frames: paused while the client is not reading. */
export interface Pausable {
  pause(): void;
  resume(): void;
}

type Frame = string | Uint8Array;
const NO_FRAMES: readonly Frame[] = [];

export class SseWriter {
  private sentHead = false;
  /** What the next corked write sends; set just before res.cork and cleared after. */
  private pendingHead: ResponseHead | undefined;
  private pendingFrames: readonly Frame[] = NO_FRAMES;
  private pendingBody: string | Uint8Array | undefined;
  private ending = false;
  private lastWriteOk = true;
  private paused: Pausable | undefined;
  private stalledTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly res: HttpResponse,
    private readonly requestId: string,
    private readonly stalledClientTimeoutMs: number,
    private readonly errors: ErrorFormat = OPENAI_ERRORS,
  ) {}

  get headersSent(): boolean {
    return this.sentHead;
  }

  /**
   * Writes stream frames, after the head on the first write. Returns false when the client's
   * buffer is full: the caller then hands its source to holdUntilDrained.
   */
  writeFrames(frames: readonly Frame[], head: ResponseHead | undefined): boolean {
    this.pendingHead = head;
    this.pendingFrames = frames;
    this.res.cork(this.corkedWrite);
    return this.lastWriteOk;
  }

  /** A complete answer: head and body in one corked write. */
  sendComplete(head: ResponseHead, body: string | Uint8Array): void {
    this.pendingHead = head;
    this.pendingBody = body;
    this.ending = true;
    this.res.cork(this.corkedWrite);
  }

  /** Ends a stream (with its head first when nothing was written yet). */
  endStream(head: ResponseHead | undefined): void {
    this.pendingHead = this.sentHead ? undefined : head;
    this.ending = true;
    this.res.cork(this.corkedWrite);
  }

  /** An error: the error JSON before the first byte, a final SSE `error` event after it. */
  sendError(err: GatewayError, closeConnection: boolean): void {
    if (!this.sentHead) return sendError(this.res, err, this.requestId, closeConnection, undefined, this.errors.errorBody(err));
    logServerFault(err, this.requestId);
    this.pendingFrames = [this.errors.streamErrorFrame(err)];
    this.ending = true;
    this.res.cork(this.corkedWrite);
  }

  /** Pauses `source` until the client drains its buffer; a client stalled past the timeout is cut off. */
  holdUntilDrained(source: Pausable): void {
    if (this.paused !== undefined || this.closed) return;
    this.paused = source;
    source.pause();
    this.res.onWritable(this.onWritable);
    // Cut off: res.onAborted then tells the exchange, which aborts upstream.
    this.stalledTimer = setTimeout(this.onStalled, this.stalledClientTimeoutMs);
  }

  /** The request ended: no timer outlives it. */
  close(): void {
    this.closed = true;
    // A source paused for the last frames is done: a late onWritable must not resume it.
    this.paused = undefined;
    clearTimeout(this.stalledTimer);
    this.stalledTimer = undefined;
  }

  private readonly corkedWrite = (): void => {
    const res = this.res;
    const head = this.pendingHead;
    if (head !== undefined) {
      this.pendingHead = undefined;
      this.writeHead(head);
    }
    const frames = this.pendingFrames;
    this.pendingFrames = NO_FRAMES;
    for (let i = 0; i < frames.length; i++) this.lastWriteOk = res.write(frames[i]!);
    if (!this.ending) return;
    this.ending = false;
    const body = this.pendingBody;
    this.pendingBody = undefined;
    if (body === undefined) res.end();
    else res.end(body);
  };

  private writeHead(head: ResponseHead): void {
    this.sentHead = true;
    const res = this.res;
    res
      .writeStatus('200 OK')
      .writeHeader('content-type', head.contentType)
      .writeHeader('x-request-id', this.requestId)
      .writeHeader('x-nemo-overhead-ms', head.overheadMs.toFixed(3))
      .writeHeader('x-nemo-attempts', String(head.attempts));
    if (head.contentType !== JSON_TYPE) res.writeHeader('cache-control', 'no-cache');
    const extra = head.extraHeaders;
    if (extra !== undefined) for (const name in extra) res.writeHeader(name, extra[name]!);
  }

  private readonly onWritable = (): boolean => {
    const source = this.paused;
    if (source !== undefined) {
      this.paused = undefined;
      clearTimeout(this.stalledTimer);
      this.stalledTimer = undefined;
      source.resume();
    }
    return true;
  };

  private readonly onStalled = (): void => {
    if (this.paused !== undefined && !this.closed) this.res.close();
  };
}
