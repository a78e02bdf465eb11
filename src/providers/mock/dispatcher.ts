// The mock upstream in-process: an undici-style dispatcher that plays the generator's response
// through undici 7's controller handler API, with the timing, pause/resume, abort and timeout
// behaviour a real undici Client would show. No sockets, so the gateway's own costs are measurable.
import { STATUS_CODES } from 'node:http';
import { errors, type Dispatcher } from 'undici';
import type { MockBehaviour } from '../../config/schema.js';
import type { UpstreamDispatcher } from '../types.js';
import { TIMER_SLACK_MS, jsonResponse, mockErrorBody, type MockResponse } from './generate.js';
import { mockPlannerFor } from './routes.js';
import { jsonBodyText } from '../../json/chunked-body.js';

export interface MockStats {
  requests: number;
  completed: number;
  /** The client gave up: aborted, or its headers/body timeout fired. */
  aborted: number;
  inFlight: number;
  /** Wall-clock time (ms since the epoch, sub-ms precision) of the latest abort; 0 before any. */
  lastAbortAtMs: number;
}

const NO_TRAILERS = Object.freeze({});

export class MockDispatcher implements UpstreamDispatcher {
  private readonly counters: MockStats = { requests: 0, completed: 0, aborted: 0, inFlight: 0, lastAbortAtMs: 0 };

  constructor(readonly behaviour: MockBehaviour) {}

  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    this.counters.requests += 1;
    this.counters.inFlight += 1;
    new MockExchange(this.counters, options, handler).start(this.behaviour);
    return true;
  }

  get stats(): MockStats {
    return { ...this.counters };
  }
}

/** One dispatched request; it is its own DispatchController, as undici's controllers are per request. */
class MockExchange implements Dispatcher.DispatchController {
  #aborted = false;
  #paused = false;
  #reason: Error | null = null;
  /** onResponseEnd or onResponseError was delivered: nothing may follow. */
  private settled = false;
  private pumping = false;
  private headersSent = false;
  private next = 0;
  private startedAt = 0;
  private response: MockResponse | undefined;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private headersTimer: NodeJS.Timeout | undefined;
  private bodyTimer: NodeJS.Timeout | undefined;
  private readonly bodyTimeoutMs: number;

  constructor(
    private readonly counters: MockStats,
    private readonly options: Dispatcher.DispatchOptions,
    private readonly handler: Dispatcher.DispatchHandler,
  ) {
    this.bodyTimeoutMs = options.bodyTimeout ?? 0;
    this.pump = this.pump.bind(this);
    this.onHeadersTimeout = this.onHeadersTimeout.bind(this);
    this.onBodyTimeout = this.onBodyTimeout.bind(this);
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  get paused(): boolean {
    return this.#paused;
  }

  get reason(): Error | null {
    return this.#reason;
  }

  abort(reason: Error): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    // Like undici: aborting a finished request is a no-op; otherwise the reason is the error.
    if (!this.settled) this.fail(reason, true);
  }

  pause(): void {
    this.#paused = true;
    // undici's body timeout does not run while the consumer holds the stream paused.
    this.clearBodyTimer();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.settled) return;
    if (this.headersSent) this.armBodyTimer();
    // A pending timer will pump anyway; a re-entrant resume (inside onResponseData) lets the running loop go on.
    if (this.timer === undefined && this.immediate === undefined) this.pump();
  }

  start(behaviour: MockBehaviour): void {
    this.startedAt = performance.now();
    this.handler.onRequestStart?.(this, {});
    if (this.settled) return;
    this.response = this.plan(behaviour);
    const headersTimeoutMs = this.options.headersTimeout ?? 0;
    if (headersTimeoutMs > 0 && (this.response.ending === 'hang' || this.response.firstDelayMs >= headersTimeoutMs)) {
      this.headersTimer = setTimeout(this.onHeadersTimeout, headersTimeoutMs);
    }
    if (this.response.ending === 'hang') return;
    this.schedule(this.response.firstDelayMs);
  }

  private plan(behaviour: MockBehaviour): MockResponse {
    const { method, path, body } = this.options;
    const planner = method === 'POST' ? mockPlannerFor(path.split('?', 1)[0]!) : undefined;
    if (planner === undefined) {
      return jsonResponse(404, mockErrorBody(`The mock upstream has no route ${method} ${path}.`, 'invalid_request_error', 'unknown_url'));
    }
    let text: string | undefined;
    if (typeof body === 'string') text = body;
    else if (body instanceof Uint8Array) text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
    else if (Array.isArray(body)) text = jsonBodyText(body as Uint8Array[]); // a large body, in chunks
    let parsed: unknown;
    try {
      parsed = text === undefined ? undefined : JSON.parse(text);
    } catch {
      // answered below
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      return jsonResponse(400, mockErrorBody('The request body must be a JSON object.', 'invalid_request_error', 'invalid_json'));
    }
    return planner(parsed as Record<string, unknown>, behaviour);
  }

  private schedule(delayMs: number): void {
    if (delayMs > 0) this.timer = setTimeout(this.pump, delayMs);
    else this.immediate = setImmediate(this.pump);
  }

  /** Sends everything that is due, then sleeps until the next piece, a resume, or forever (stall). */
  private pump(): void {
    this.timer = undefined;
    this.immediate = undefined;
    const response = this.response;
    if (this.pumping || this.settled || this.#paused || response === undefined || response.ending === 'hang') return;
    this.pumping = true;
    try {
      const elapsed = performance.now() - this.startedAt;
      if (!this.headersSent) {
        if (response.firstDelayMs - elapsed > TIMER_SLACK_MS) return this.schedule(response.firstDelayMs - elapsed);
        this.sendHeaders(response);
      }
      while (this.next < response.pieces.length) {
        if (this.settled || this.#paused) return;
        const dueMs = response.firstDelayMs + this.next * response.intervalMs;
        if (dueMs - elapsed > TIMER_SLACK_MS) return this.schedule(dueMs - elapsed);
        const piece = response.pieces[this.next]!;
        this.next += 1;
        this.handler.onResponseData?.(this, Buffer.from(piece));
        this.armBodyTimer();
      }
      if (this.settled || this.#paused) return;
      if (response.ending === 'end') this.finish();
      else if (response.ending === 'cut') this.fail(new errors.SocketError('other side closed'), false);
      // 'stall': silence; only the body timeout (if any) ends it.
    } catch (err) {
      // A throwing handler fails the request, as undici does.
      if (!this.settled) this.fail(err instanceof Error ? err : new Error(String(err)), true);
    } finally {
      this.pumping = false;
    }
  }

  private sendHeaders(response: MockResponse): void {
    this.headersSent = true;
    clearTimeout(this.headersTimer);
    this.handler.onResponseStart?.(this, response.status, { ...response.headers }, STATUS_CODES[response.status]);
    this.armBodyTimer();
  }

  private finish(): void {
    this.settled = true;
    this.clearTimers();
    this.counters.inFlight -= 1;
    this.counters.completed += 1;
    this.handler.onResponseEnd?.(this, NO_TRAILERS);
  }

  private fail(err: Error, countAsAborted: boolean): void {
    this.settled = true;
    this.clearTimers();
    this.counters.inFlight -= 1;
    if (countAsAborted) {
      this.counters.aborted += 1;
      this.counters.lastAbortAtMs = performance.timeOrigin + performance.now();
    }
    this.handler.onResponseError?.(this, err);
  }

  private onHeadersTimeout(): void {
    this.headersTimer = undefined;
    if (!this.settled && !this.headersSent) this.fail(new errors.HeadersTimeoutError('Headers Timeout Error'), true);
  }

  private onBodyTimeout(): void {
    this.bodyTimer = undefined;
    if (!this.settled && !this.#paused) this.fail(new errors.BodyTimeoutError('Body Timeout Error'), true);
  }

  private armBodyTimer(): void {
    if (this.bodyTimeoutMs <= 0 || this.settled || this.#paused) return;
    if (this.bodyTimer === undefined) this.bodyTimer = setTimeout(this.onBodyTimeout, this.bodyTimeoutMs);
    else this.bodyTimer.refresh();
  }

  private clearBodyTimer(): void {
    clearTimeout(this.bodyTimer);
    this.bodyTimer = undefined;
  }

  private clearTimers(): void {
    clearTimeout(this.timer);
    clearImmediate(this.immediate);
    clearTimeout(this.headersTimer);
    this.clearBodyTimer();
    this.timer = undefined;
    this.immediate = undefined;
    this.headersTimer = undefined;
  }
}
