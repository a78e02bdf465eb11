import { afterEach, describe, expect, it, vi } from 'vitest';
import { GatewayError } from '../../../src/errors/gateway-error.js';
import { JSON_TYPE } from '../../../src/http/respond.js';
import { SSE_TYPE, SseWriter, type Pausable, type ResponseHead } from '../../../src/http/sse-writer.js';
import type { HttpResponse } from '../../../src/http/server-api.js';

type Chunk = Parameters<HttpResponse['write']>[0];

/** Every call on the response, with the cork it ran in (0: outside any cork). */
type Call =
  | { readonly op: 'status'; readonly value: string; readonly cork: number }
  | { readonly op: 'header'; readonly name: string; readonly value: string; readonly cork: number }
  | { readonly op: 'write'; readonly chunk: string; readonly cork: number }
  | { readonly op: 'end'; readonly body: string | undefined; readonly closeConnection: boolean | undefined; readonly cork: number }
  | { readonly op: 'close'; readonly cork: number };

type ResponsePart = Pick<HttpResponse, 'writeStatus' | 'writeHeader' | 'write' | 'end' | 'cork' | 'onWritable' | 'close'>;

/** A uWS response that records what is written; write() answers from `writeAnswers`, then true. */
class FakeResponse implements ResponsePart {
  readonly calls: Call[] = [];
  readonly corkCallbacks: Array<() => void> = [];
  readonly writableHandlers: Array<(offset: number) => boolean> = [];
  writeAnswers: boolean[] = [];
  private currentCork = 0;

  asResponse(): HttpResponse {
    return this as unknown as HttpResponse;
  }

  cork(cb: () => void): HttpResponse {
    this.corkCallbacks.push(cb);
    const outer = this.currentCork;
    this.currentCork = this.corkCallbacks.length;
    try {
      cb();
    } finally {
      this.currentCork = outer;
    }
    return this.asResponse();
  }

  writeStatus(status: Chunk): HttpResponse {
    this.calls.push({ op: 'status', value: text(status), cork: this.currentCork });
    return this.asResponse();
  }

  writeHeader(key: Chunk, value: Chunk): HttpResponse {
    this.calls.push({ op: 'header', name: text(key), value: text(value), cork: this.currentCork });
    return this.asResponse();
  }

  write(chunk: Chunk): boolean {
    this.calls.push({ op: 'write', chunk: text(chunk), cork: this.currentCork });
    return this.writeAnswers.shift() ?? true;
  }

  end(body?: Chunk, closeConnection?: boolean): HttpResponse {
    this.calls.push({ op: 'end', body: body === undefined ? undefined : text(body), closeConnection, cork: this.currentCork });
    return this.asResponse();
  }

  onWritable(handler: (offset: number) => boolean): HttpResponse {
    this.writableHandlers.push(handler);
    return this.asResponse();
  }

  close(): HttpResponse {
    this.calls.push({ op: 'close', cork: this.currentCork });
    return this.asResponse();
  }

  ops(op: Call['op']): Call[] {
    return this.calls.filter((c) => c.op === op);
  }

  headers(): Record<string, string> {
    const headers: Record<string, string> = {};
    for (const c of this.calls) if (c.op === 'header') headers[c.name] = c.value;
    return headers;
  }

  writes(): string[] {
    return this.calls.flatMap((c) => (c.op === 'write' ? [c.chunk] : []));
  }
}

function text(value: Chunk): string {
  if (typeof value === 'string') return value;
  if (value instanceof ArrayBuffer) return Buffer.from(value).toString('utf8');
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
}

class FakeSource implements Pausable {
  pauses = 0;
  resumes = 0;
  pause(): void {
    this.pauses++;
  }
  resume(): void {
    this.resumes++;
  }
}

const STALL_MS = 5_000;

function setup() {
  const res = new FakeResponse();
  const writer = new SseWriter(res.asResponse(), 'req-abc', STALL_MS);
  return { res, writer };
}

function sseHead(patch: Partial<ResponseHead> = {}): ResponseHead {
  return { contentType: SSE_TYPE, overheadMs: 1.23456, attempts: 2, extraHeaders: undefined, ...patch };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('SseWriter head', () => {
  it('writes the head once, before the first frames, with the request id, overhead, attempts and no-cache', () => {
    const { res, writer } = setup();
    expect(writer.headersSent).toBe(false);
    writer.writeFrames(['data: a\n\n', Buffer.from('data: b\n\n')], sseHead({ extraHeaders: { 'x-ratelimit-remaining-requests': '9' } }));
    expect(writer.headersSent).toBe(true);
    writer.writeFrames(['data: c\n\n'], undefined);

    expect(res.ops('status')).toEqual([{ op: 'status', value: '200 OK', cork: 1 }]);
    expect(res.calls[0]!.op).toBe('status');
    const firstWrite = res.calls.findIndex((c) => c.op === 'write');
    expect(res.calls.slice(1, firstWrite).every((c) => c.op === 'header')).toBe(true);
    expect(res.headers()).toEqual({
      'content-type': SSE_TYPE,
      'x-request-id': 'req-abc',
      'x-nemo-overhead-ms': '1.235',
      'x-nemo-attempts': '2',
      'cache-control': 'no-cache',
      'x-ratelimit-remaining-requests': '9',
    });
    expect(res.writes()).toEqual(['data: a\n\n', 'data: b\n\n', 'data: c\n\n']);
    expect(res.ops('end')).toEqual([]);
  });

  it('sends a complete JSON answer as head and body in one cork, without cache-control', () => {
    const { res, writer } = setup();
    writer.sendComplete(sseHead({ contentType: JSON_TYPE, attempts: 1, extraHeaders: { 'x-ratelimit-limit-tokens': '1000' } }), '{"id":"x"}');
    expect(res.corkCallbacks).toHaveLength(1);
    expect(res.calls.every((c) => c.cork === 1)).toBe(true);
    expect(res.headers()).toEqual({ 'content-type': JSON_TYPE, 'x-request-id': 'req-abc', 'x-nemo-overhead-ms': '1.235', 'x-nemo-attempts': '1', 'x-ratelimit-limit-tokens': '1000' });
    expect(res.ops('end')).toEqual([{ op: 'end', body: '{"id":"x"}', closeConnection: undefined, cork: 1 }]);
    expect(res.writes()).toEqual([]);
  });

  it('ends a stream that wrote nothing with its head first, and one that did without a second head', () => {
    const empty = setup();
    empty.writer.endStream(sseHead());
    expect(empty.res.ops('status')).toHaveLength(1);
    expect(empty.res.calls.at(-1)).toEqual({ op: 'end', body: undefined, closeConnection: undefined, cork: 1 });

    const { res, writer } = setup();
    writer.writeFrames(['data: a\n\n'], sseHead());
    writer.endStream(sseHead());
    expect(res.ops('status')).toHaveLength(1);
    expect(res.calls.at(-1)).toEqual({ op: 'end', body: undefined, closeConnection: undefined, cork: 2 });
  });
});

describe('SseWriter corking', () => {
  it('writes all frames of one call inside one cork', () => {
    const { res, writer } = setup();
    writer.writeFrames(['data: 1\n\n', 'data: 2\n\n', 'data: 3\n\n'], sseHead());
    writer.writeFrames(['data: 4\n\n', 'data: 5\n\n'], undefined);
    expect(res.corkCallbacks).toHaveLength(2);
    const writes = res.ops('write');
    expect(writes.map((c) => c.cork)).toEqual([1, 1, 1, 2, 2]);
    expect(res.calls.every((c) => c.cork !== 0)).toBe(true);
  });

  it('uses one preallocated cork callback for frames, ends and errors after the head', () => {
    const { res, writer } = setup();
    writer.writeFrames(['data: 1\n\n'], sseHead());
    writer.writeFrames(['data: 2\n\n'], undefined);
    writer.writeFrames(['data: 3\n\n'], undefined);
    writer.sendError(new GatewayError('NR_UPSTREAM_ERROR'), false);
    expect(res.corkCallbacks).toHaveLength(4);
    expect(new Set(res.corkCallbacks).size).toBe(1);

    const other = setup();
    other.writer.sendComplete(sseHead({ contentType: JSON_TYPE }), '{}');
    // Per writer, not shared across writers (it closes over its own response).
    expect(other.res.corkCallbacks[0]).not.toBe(res.corkCallbacks[0]);
  });
});

describe('SseWriter backpressure', () => {
  it('reports a full client buffer and pauses the source until the client drains', () => {
    const { res, writer } = setup();
    const source = new FakeSource();
    res.writeAnswers = [false];
    expect(writer.writeFrames(['data: 1\n\n'], sseHead())).toBe(false);
    writer.holdUntilDrained(source);
    expect(source.pauses).toBe(1);
    expect(res.writableHandlers).toHaveLength(1);

    // A second hold while paused neither pauses again nor registers another handler.
    writer.holdUntilDrained(source);
    expect(source.pauses).toBe(1);
    expect(res.writableHandlers).toHaveLength(1);

    expect(res.writableHandlers[0]!(0)).toBe(true);
    expect(source.resumes).toBe(1);
    // uWS may call onWritable again: the source is resumed once only.
    res.writableHandlers[0]!(0);
    expect(source.resumes).toBe(1);
    expect(writer.writeFrames(['data: 2\n\n'], undefined)).toBe(true);
  });

  it('reports the last write of a call, after an earlier one was refused', () => {
    const { res, writer } = setup();
    res.writeAnswers = [true, false];
    expect(writer.writeFrames(['data: 1\n\n', 'data: 2\n\n'], sseHead())).toBe(false);
  });

  it('cuts off a client that stays stalled for stalledClientTimeoutMs', () => {
    vi.useFakeTimers();
    const { res, writer } = setup();
    writer.writeFrames(['data: 1\n\n'], sseHead());
    writer.holdUntilDrained(new FakeSource());
    vi.advanceTimersByTime(STALL_MS - 1);
    expect(res.ops('close')).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(res.ops('close')).toHaveLength(1);
  });

  it('does not cut off a client that drained in time', () => {
    vi.useFakeTimers();
    const { res, writer } = setup();
    writer.writeFrames(['data: 1\n\n'], sseHead());
    writer.holdUntilDrained(new FakeSource());
    vi.advanceTimersByTime(STALL_MS - 1);
    res.writableHandlers[0]!(0);
    vi.advanceTimersByTime(STALL_MS * 2);
    expect(res.ops('close')).toEqual([]);
  });

  it('gives a client that stalls again a full timeout from its new stall', () => {
    vi.useFakeTimers();
    const { res, writer } = setup();
    const source = new FakeSource();
    writer.writeFrames(['data: 1\n\n'], sseHead());
    writer.holdUntilDrained(source);
    vi.advanceTimersByTime(STALL_MS - 10);
    res.writableHandlers[0]!(0);
    writer.holdUntilDrained(source);
    expect(source.pauses).toBe(2);
    // The first stall's deadline passes: the client is reading again, so it stays.
    vi.advanceTimersByTime(20);
    expect(res.ops('close')).toEqual([]);
    vi.advanceTimersByTime(STALL_MS - 20);
    expect(res.ops('close')).toHaveLength(1);
  });

  it('does not cut off a client after close(), and holds nothing once closed', () => {
    vi.useFakeTimers();
    const { res, writer } = setup();
    writer.writeFrames(['data: 1\n\n'], sseHead());
    writer.holdUntilDrained(new FakeSource());
    writer.close();
    vi.advanceTimersByTime(STALL_MS * 2);
    expect(res.ops('close')).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);

    const late = new FakeSource();
    writer.holdUntilDrained(late);
    expect(late.pauses).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('SseWriter errors', () => {
  it('answers the OpenAI error JSON with its status before the first byte', () => {
    const { res, writer } = setup();
    writer.sendError(new GatewayError('NR_INSUFFICIENT_QUOTA', 'Your credits cannot cover this.'), true);
    expect(res.ops('status')).toEqual([{ op: 'status', value: '402 Payment Required', cork: 1 }]);
    expect(res.headers()).toMatchObject({ 'content-type': JSON_TYPE, 'x-request-id': 'req-abc' });
    expect(res.headers()).not.toHaveProperty('cache-control');
    const end = res.ops('end');
    expect(end).toHaveLength(1);
    expect(end[0]).toMatchObject({ closeConnection: true });
    const body = JSON.parse((end[0] as { body: string }).body) as unknown;
    expect(body).toEqual({ error: { message: 'Your credits cannot cover this.', type: 'insufficient_quota', param: null, code: 'insufficient_quota', nemo_code: 'NR_INSUFFICIENT_QUOTA' } });
    expect(res.writes()).toEqual([]);
    expect(writer.headersSent).toBe(false);
  });

  it('carries Retry-After and the error headers of a 429 before the first byte', () => {
    const { res, writer } = setup();
    writer.sendError(new GatewayError('NR_RATE_LIMITED', undefined, { retryAfterS: 7, headers: { 'x-ratelimit-remaining-requests': '0' } }), false);
    expect(res.ops('status')).toEqual([{ op: 'status', value: '429 Too Many Requests', cork: 1 }]);
    expect(res.headers()).toMatchObject({ 'retry-after': '7', 'x-ratelimit-remaining-requests': '0' });
    expect(res.ops('end')[0]).toMatchObject({ closeConnection: false });
  });

  it('ends a started stream with an SSE error event, then end(), and no second head', () => {
    const { res, writer } = setup();
    writer.writeFrames(['data: 1\n\n'], sseHead());
    writer.sendError(new GatewayError('NR_UPSTREAM_TIMEOUT'), true);
    expect(res.ops('status')).toHaveLength(1);
    const writes = res.writes();
    expect(writes).toHaveLength(2);
    const frame = writes[1]!;
    expect(frame.startsWith('event: error\ndata: ')).toBe(true);
    expect(frame.endsWith('\n\n')).toBe(true);
    expect(JSON.parse(frame.slice('event: error\ndata: '.length))).toMatchObject({ error: { nemo_code: 'NR_UPSTREAM_TIMEOUT', type: 'api_error' } });
    expect(res.calls.at(-1)).toEqual({ op: 'end', body: undefined, closeConnection: undefined, cork: 2 });
    // The error event and the end go out in the same cork.
    expect(res.ops('write').at(-1)!.cork).toBe(2);
  });
});
