import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it, expect } from 'vitest';
import { errors, type Dispatcher } from 'undici';
import type { Deployment } from '../../../../src/config/load.js';
import type { MockBehaviour } from '../../../../src/config/schema.js';
import { MockDispatcher } from '../../../../src/providers/mock/dispatcher.js';
import { MALFORMED_FRAME, mockCompletionText } from '../../../../src/providers/mock/generate.js';
import { mockAdapter } from '../../../../src/providers/mock/index.js';

const behaviour = (over: Partial<MockBehaviour> = {}): MockBehaviour => ({ ttftMs: 0, tokensPerSecond: 0, completionTokens: 8, reportUsage: true, fault: 'none', ...over });
const streamBody = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true });
const plainBody = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });

/** A handler that records every callback; hooks let a test act from inside them. */
class Recorder implements Dispatcher.DispatchHandler {
  controller: Dispatcher.DispatchController | undefined;
  status: number | undefined;
  headers: Record<string, string | string[] | undefined> = {};
  chunks: string[] = [];
  errors: Error[] = [];
  ended = false;
  readonly settled: Promise<void>;
  private settle!: () => void;

  constructor(private readonly hooks: { start?: (c: Dispatcher.DispatchController) => void; data?: (c: Dispatcher.DispatchController, n: number) => void } = {}) {
    this.settled = new Promise((resolve) => (this.settle = resolve));
  }

  get text(): string {
    return this.chunks.join('');
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    this.hooks.start?.(controller);
  }

  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>): void {
    this.status = status;
    this.headers = headers;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.ended || this.errors.length > 0) throw new Error('data after the end');
    this.chunks.push(chunk.toString('utf8'));
    this.hooks.data?.(controller, this.chunks.length);
  }

  onResponseEnd(): void {
    this.ended = true;
    this.settle();
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.errors.push(err);
    this.settle();
  }
}

function send(dispatcher: MockDispatcher, recorder: Recorder, extra: Partial<Dispatcher.DispatchOptions> = {}): Recorder {
  dispatcher.dispatch({ method: 'POST', path: '/v1/chat/completions', body: streamBody, ...extra }, recorder);
  return recorder;
}

function contents(text: string): string {
  return text
    .split('\n\n')
    .filter((f) => f.startsWith('data: {') && f !== MALFORMED_FRAME.trim())
    .map((f) => (JSON.parse(f.slice(6)) as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? '')
    .join('');
}

describe('MockDispatcher', () => {
  it('answers a non-stream request with a chat.completion and content-length', async () => {
    const r = send(new MockDispatcher(behaviour()), new Recorder(), { body: plainBody });
    await r.settled;
    expect(r.status).toBe(200);
    expect(r.headers['content-length']).toBe(String(Buffer.byteLength(r.text)));
    expect(JSON.parse(r.text).choices[0].message.content).toBe(mockCompletionText(8));
  });

  it('sends a 0 tokens/s stream in one data callback, after onRequestStart returned', async () => {
    const r = new Recorder();
    send(new MockDispatcher(behaviour()), r);
    expect(r.controller).toBeDefined();
    expect(r.status).toBeUndefined();
    await r.settled;
    expect(r.chunks).toHaveLength(1);
    expect(r.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(contents(r.text)).toBe(mockCompletionText(8));
    expect(r.text.endsWith('data: [DONE]\n\n')).toBe(true);
  });

  it('paces tokens and waits ttft before the headers', async () => {
    const r = send(new MockDispatcher(behaviour({ ttftMs: 40, tokensPerSecond: 500 })), new Recorder());
    await sleep(10);
    expect(r.status).toBeUndefined();
    await r.settled;
    expect(r.chunks).toHaveLength(8);
    expect(contents(r.text)).toBe(mockCompletionText(8));
  });

  it('stops emitting while paused and carries on after resume', async () => {
    const r = send(new MockDispatcher(behaviour({ tokensPerSecond: 1000 })), new Recorder({ data: (c, n) => n === 2 && c.pause() }));
    await sleep(40);
    expect(r.chunks).toHaveLength(2);
    expect(r.ended).toBe(false);
    r.controller!.resume();
    await r.settled;
    expect(r.chunks).toHaveLength(8);
    expect(contents(r.text)).toBe(mockCompletionText(8));
  });

  it('holds the end while paused after the only chunk', async () => {
    const r = send(new MockDispatcher(behaviour()), new Recorder({ data: (c) => c.pause() }));
    await sleep(20);
    expect(r.chunks).toHaveLength(1);
    expect(r.ended).toBe(false);
    r.controller!.resume();
    await r.settled;
    expect(r.ended).toBe(true);
  });

  it('abort mid-stream reports the reason once and emits nothing after', async () => {
    const dispatcher = new MockDispatcher(behaviour({ tokensPerSecond: 1000 }));
    const reason = new Error('client went away');
    const r = send(dispatcher, new Recorder({ data: (c, n) => n === 3 && (c.abort(reason), c.abort(new Error('again'))) }));
    await r.settled;
    await sleep(30);
    expect(r.errors).toEqual([reason]);
    expect(r.chunks).toHaveLength(3);
    expect(r.controller!.aborted).toBe(true);
    expect(r.controller!.reason).toBe(reason);
    expect(dispatcher.stats).toMatchObject({ requests: 1, completed: 0, aborted: 1, inFlight: 0, lastAbortAtMs: expect.any(Number) });
  });

  it('abort in onRequestStart fails before any headers', async () => {
    const r = send(new MockDispatcher(behaviour()), new Recorder({ start: (c) => c.abort(new Error('early')) }));
    await r.settled;
    await sleep(10);
    expect(r.status).toBeUndefined();
    expect(r.errors.map((e) => e.message)).toEqual(['early']);
  });

  it('abort after the end is a no-op', async () => {
    const dispatcher = new MockDispatcher(behaviour());
    const r = send(dispatcher, new Recorder());
    await r.settled;
    r.controller!.abort(new Error('late'));
    expect(r.errors).toEqual([]);
    expect(dispatcher.stats).toEqual({ requests: 1, completed: 1, aborted: 0, inFlight: 0, lastAbortAtMs: 0 });
  });

  it('answers 400 to a body that is not JSON and 404 to other routes', async () => {
    const bad = send(new MockDispatcher(behaviour()), new Recorder(), { body: '{nope' });
    const lost = send(new MockDispatcher(behaviour()), new Recorder(), { method: 'GET', path: '/v1/embeddings' });
    await Promise.all([bad.settled, lost.settled]);
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text).error.code).toBe('invalid_json');
    expect(lost.status).toBe(404);
  });

  it('answers POST .../embeddings with the embeddings planner', async () => {
    const r = send(new MockDispatcher(behaviour({ ttftMs: 5 })), new Recorder(), { path: '/v1/embeddings?x=1', body: JSON.stringify({ model: 'e', input: ['a', 'b'], dimensions: 4 }) });
    await r.settled;
    expect(r.status).toBe(200);
    const json = JSON.parse(r.text) as { data: Array<{ embedding: number[] }>; usage: unknown };
    expect(json.data.map((d) => d.embedding.length)).toEqual([4, 4]);
    expect(json.usage).toEqual({ prompt_tokens: 1, total_tokens: 1 });
  });

  describe('faults', () => {
    it('http-429 with retry-after and an OpenAI error body', async () => {
      const r = send(new MockDispatcher(behaviour({ fault: 'http-429' })), new Recorder());
      await r.settled;
      expect(r.status).toBe(429);
      expect(r.headers['retry-after']).toBe('1');
      expect(JSON.parse(r.text).error.type).toBe('requests');
    });

    it('http-500 with an error body', async () => {
      const r = send(new MockDispatcher(behaviour({ fault: 'http-500' })), new Recorder());
      await r.settled;
      expect(r.status).toBe(500);
      expect(JSON.parse(r.text).error.type).toBe('server_error');
    });

    it('timeout: no headers, then undici HeadersTimeoutError after headersTimeout', async () => {
      const dispatcher = new MockDispatcher(behaviour({ fault: 'timeout' }));
      const r = send(dispatcher, new Recorder(), { headersTimeout: 30 });
      await r.settled;
      expect(r.status).toBeUndefined();
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]).toBeInstanceOf(errors.HeadersTimeoutError);
      expect(r.errors[0]).toMatchObject({ name: 'HeadersTimeoutError', code: 'UND_ERR_HEADERS_TIMEOUT' });
      expect(dispatcher.stats).toMatchObject({ aborted: 1, inFlight: 0 });
    });

    it('timeout without headersTimeout hangs until aborted', async () => {
      const r = send(new MockDispatcher(behaviour({ fault: 'timeout' })), new Recorder());
      await sleep(30);
      expect(r.status).toBeUndefined();
      expect(r.errors).toEqual([]);
      r.controller!.abort(new Error('gave up'));
      await r.settled;
      expect(r.errors.map((e) => e.message)).toEqual(['gave up']);
    });

    it('cut-mid-stream: half the tokens, then UND_ERR_SOCKET', async () => {
      const dispatcher = new MockDispatcher(behaviour({ fault: 'cut-mid-stream', tokensPerSecond: 1000 }));
      const r = send(dispatcher, new Recorder());
      await r.settled;
      expect(contents(r.text)).toBe(mockCompletionText(4));
      expect(r.errors[0]).toMatchObject({ code: 'UND_ERR_SOCKET', message: 'other side closed' });
      expect(dispatcher.stats).toEqual({ requests: 1, completed: 0, aborted: 0, inFlight: 0, lastAbortAtMs: 0 });
    });

    it('stall-mid-stream: half the tokens, then silence until the body timeout', async () => {
      const r = send(new MockDispatcher(behaviour({ fault: 'stall-mid-stream' })), new Recorder(), { bodyTimeout: 30 });
      await r.settled;
      expect(contents(r.text)).toBe(mockCompletionText(4));
      expect(r.errors[0]).toBeInstanceOf(errors.BodyTimeoutError);
      expect(r.errors[0]).toMatchObject({ code: 'UND_ERR_BODY_TIMEOUT' });
    });

    it('the body timeout does not run while the consumer is paused', async () => {
      const r = send(new MockDispatcher(behaviour({ tokensPerSecond: 1000 })), new Recorder({ data: (c, n) => n === 1 && c.pause() }), { bodyTimeout: 15 });
      await sleep(50);
      expect(r.errors).toEqual([]);
      r.controller!.resume();
      await r.settled;
      expect(r.ended).toBe(true);
    });

    it('malformed-sse: a garbage frame halfway, then a normal end', async () => {
      const r = send(new MockDispatcher(behaviour({ fault: 'malformed-sse' })), new Recorder());
      await r.settled;
      expect(r.ended).toBe(true);
      expect(r.text).toContain(MALFORMED_FRAME);
      expect(r.text.endsWith('data: [DONE]\n\n')).toBe(true);
    });

    it('no-done: ends normally without [DONE]', async () => {
      const r = send(new MockDispatcher(behaviour({ fault: 'no-done' })), new Recorder());
      await r.settled;
      expect(r.ended).toBe(true);
      expect(r.text).not.toContain('[DONE]');
      expect(contents(r.text)).toBe(mockCompletionText(8));
    });

    it('non-stream cut: a truncated body, then UND_ERR_SOCKET', async () => {
      const r = send(new MockDispatcher(behaviour({ fault: 'cut-mid-stream' })), new Recorder(), { body: plainBody });
      await r.settled;
      expect(Number(r.headers['content-length'])).toBeGreaterThan(r.text.length);
      expect(r.errors[0]).toMatchObject({ code: 'UND_ERR_SOCKET' });
    });
  });
});

describe('mockAdapter', () => {
  const deployment = (id: string, mock: MockBehaviour): Deployment => ({ id, provider: 'mock', model: 'mock', mock }) as unknown as Deployment;

  it('passes bodies through and keeps one dispatcher per deployment id', () => {
    expect(mockAdapter).toMatchObject({ kind: 'mock', passthroughResponse: true });
    const fast = behaviour();
    const a = mockAdapter.dispatcherFor!(deployment('mock-fast#0', fast));
    expect(a).toBeInstanceOf(MockDispatcher);
    expect(mockAdapter.dispatcherFor!(deployment('mock-fast#0', fast))).toBe(a);
    expect(mockAdapter.dispatcherFor!(deployment('other#0', fast))).not.toBe(a);
  });

  it('replaces the dispatcher when the same id comes with other behaviour', () => {
    const first = mockAdapter.dispatcherFor!(deployment('reloaded#0', behaviour()));
    const second = mockAdapter.dispatcherFor!(deployment('reloaded#0', behaviour({ fault: 'http-500' })));
    expect(second).not.toBe(first);
    expect((second as MockDispatcher).behaviour.fault).toBe('http-500');
  });
});
