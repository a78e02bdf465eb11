import type { Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import type { Config, Deployment, ModelRoute } from '../../../../src/config/load.js';
import { GatewayError } from '../../../../src/errors/gateway-error.js';
import { UpstreamCall, type Frame, type UpstreamDeps, type UpstreamListener, type UpstreamPlan } from '../../../../src/http/chat/upstream.js';
import { ClientGoneError, UpstreamAttempt } from '../../../../src/http/upstream-attempt.js';
import { upstreamFallbacksTotal } from '../../../../src/metrics/registry.js';
import type { DeploymentRouter } from '../../../../src/providers/router.js';
import type { ChatRequest, UpstreamDispatcher, Usage } from '../../../../src/providers/types.js';
import type { UpstreamPools } from '../../../../src/providers/upstream-pools.js';
import { chatRequest, config, route } from './fakes.js';

// mixed: two openai-compatible deployments, a (gpt-4o) and b (gpt-4); other: one mock deployment.
const MIXED = route('mixed');
const [A, B] = MIXED.deployments as [Deployment, Deployment];

class FakeController implements Dispatcher.DispatchController {
  aborted = false;
  paused = false;
  reason: Error | null = null;
  abort(reason: Error): void {
    this.aborted = true;
    this.reason = reason;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
}

/** One dispatched request: the test plays the upstream through the handler's controller API. */
class Exchange {
  readonly controller = new FakeController();
  constructor(
    readonly options: Dispatcher.DispatchOptions,
    readonly attempt: UpstreamAttempt,
  ) {}

  start(): this {
    this.attempt.onRequestStart(this.controller);
    return this;
  }

  head(status: number, headers: Record<string, string> = {}): this {
    this.attempt.onResponseStart(this.controller, status, headers);
    return this;
  }

  data(text: string): this {
    this.attempt.onResponseData(this.controller, Buffer.from(text));
    return this;
  }

  end(): this {
    this.attempt.onResponseEnd();
    return this;
  }

  error(err: Error): this {
    this.attempt.onResponseError(this.controller, err);
    return this;
  }

  answer(status: number, body: string, headers: Record<string, string> = {}): this {
    return this.start().head(status, headers).data(body).end();
  }

  get body(): Record<string, unknown> {
    return JSON.parse(this.options.body as string) as Record<string, unknown>;
  }
}

class FakeUpstream implements UpstreamDispatcher {
  readonly exchanges: Exchange[] = [];
  throwOnDispatch: Error | undefined;

  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.throwOnDispatch !== undefined) throw this.throwOnDispatch;
    if (!(handler instanceof UpstreamAttempt)) throw new Error('expected an UpstreamAttempt handler');
    this.exchanges.push(new Exchange(options, handler));
    return true;
  }

  get last(): Exchange {
    const exchange = this.exchanges.at(-1);
    if (exchange === undefined) throw new Error('nothing was dispatched');
    return exchange;
  }
}

class FakePools implements Pick<UpstreamPools, 'dispatcherFor'> {
  readonly upstreams = new Map<string, FakeUpstream>();

  of(deployment: Deployment): FakeUpstream {
    let upstream = this.upstreams.get(deployment.id);
    if (upstream === undefined) this.upstreams.set(deployment.id, (upstream = new FakeUpstream()));
    return upstream;
  }

  dispatcherFor(deployment: Deployment): UpstreamDispatcher {
    return this.of(deployment);
  }
}

/** Picks the first untried deployment in order; `none` makes it find nothing. */
class FakeRouter implements Pick<DeploymentRouter, 'pick' | 'markFailed' | 'markHealthy'> {
  readonly picks: Array<readonly string[]> = [];
  readonly failed: string[] = [];
  readonly healthy: string[] = [];
  none = false;

  pick(r: ModelRoute, tried: ReadonlySet<Deployment> | undefined): Deployment | undefined {
    this.picks.push([...(tried ?? [])].map((d) => d.id));
    if (this.none) return undefined;
    return r.deployments.find((d) => !tried?.has(d));
  }

  markFailed(deployment: Deployment): void {
    this.failed.push(deployment.id);
  }

  markHealthy(deployment: Deployment): void {
    this.healthy.push(deployment.id);
  }
}

type Reported =
  | { readonly kind: 'frames'; readonly deployment: string; readonly frames: string[] }
  | { readonly kind: 'completion'; readonly deployment: string; readonly body: string; readonly usage: Usage | undefined }
  | { readonly kind: 'streamEnd'; readonly deployment: string; readonly usage: Usage | undefined; readonly lastFrames: string[] }
  | { readonly kind: 'failed'; readonly error: GatewayError };

class Listener implements UpstreamListener {
  readonly reported: Reported[] = [];
  /** Called from onFrames, as the exchange does: commit the attempt once its output goes out. */
  onFramesHook: ((attempt: UpstreamAttempt) => void) | undefined;

  onFrames(attempt: UpstreamAttempt, frames: Frame[]): void {
    this.reported.push({ kind: 'frames', deployment: attempt.deployment.id, frames: frames.map(text) });
    this.onFramesHook?.(attempt);
  }

  onCompletion(attempt: UpstreamAttempt, body: string | Uint8Array, usage: Usage | undefined): void {
    this.reported.push({ kind: 'completion', deployment: attempt.deployment.id, body: text(body), usage });
  }

  onStreamEnd(attempt: UpstreamAttempt, usage: Usage | undefined, lastFrames: Frame[]): void {
    this.reported.push({ kind: 'streamEnd', deployment: attempt.deployment.id, usage, lastFrames: lastFrames.map(text) });
  }

  onFailed(error: GatewayError): void {
    this.reported.push({ kind: 'failed', error });
  }

  get failures(): GatewayError[] {
    return this.reported.flatMap((r) => (r.kind === 'failed' ? [r.error] : []));
  }
}

function text(frame: Frame): string {
  return typeof frame === 'string' ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString('utf8');
}

function setup(opts: { request?: ChatRequest; route?: ModelRoute; upstream?: Partial<Config['upstream']> } = {}) {
  const pools = new FakePools();
  const router = new FakeRouter();
  const listener = new Listener();
  const deps: UpstreamDeps = {
    config: { upstream: { ...config.upstream, ...opts.upstream } },
    router: router as unknown as DeploymentRouter,
    pools: pools as unknown as UpstreamPools,
  };
  const r = opts.route ?? MIXED;
  const plan: UpstreamPlan = {
    request: opts.request ?? chatRequest({ model: r.name }),
    route: r,
    maxTokens: 64,
    promptBoundTokens: 1_000,
    ctx: { requestId: 'req-1', publicModel: r.name, created: 1_700_000_000, clientWantsUsage: false },
  };
  const call = new UpstreamCall(deps, plan, listener);
  return { call, pools, router, listener, a: pools.of(A), b: pools.of(B) };
}

const COMPLETION = JSON.stringify({ id: 'x', object: 'chat.completion', created: 1, model: 'gpt-4', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } });
const CHUNK = 'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n';
const DONE = 'data: [DONE]\n\n';

async function fallbackCount(provider: string, cause: string): Promise<number> {
  const metric = await upstreamFallbacksTotal.get();
  return metric.values.find((v) => v.labels.provider === provider && v.labels.cause === cause)?.value ?? 0;
}

describe('UpstreamCall: the first attempt', () => {
  it("sends the adapter's request to the picked deployment, with the output bound and the timeouts", () => {
    const { call, a, b, router } = setup();
    call.start();
    expect(router.picks).toEqual([[]]);
    expect(a.exchanges).toHaveLength(1);
    expect(b.exchanges).toHaveLength(0);
    const sent = a.last;
    expect(sent.options).toMatchObject({ method: 'POST', path: '/v1/chat/completions', headersTimeout: config.upstream.headersTimeoutMs, bodyTimeout: config.upstream.bodyTimeoutMs });
    expect(sent.body).toMatchObject({ model: 'gpt-4o', max_tokens: 64 });
    expect(call.attempts).toBe(1);
    expect(call.lastDeployment).toBe(A);
  });

  it('reports a complete answer with its usage and marks the deployment healthy', () => {
    const { call, a, listener, router } = setup();
    call.start();
    a.last.answer(200, COMPLETION);
    expect(listener.reported).toEqual([{ kind: 'completion', deployment: A.id, body: COMPLETION, usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } }]);
    expect(router.healthy).toEqual([A.id]);
  });

  it('reports the frames of each socket read together, then the end of a complete stream', async () => {
    const { call, a, listener, router } = setup({ request: chatRequest({ model: 'mixed', stream: true }) });
    call.start();
    expect(a.last.body).toMatchObject({ stream_options: { include_usage: true } });
    // Chunks undici hands over in one go (one socket read) are reported once, after it.
    a.last.start().head(200, { 'content-type': 'text/event-stream' }).data(CHUNK).data(CHUNK);
    expect(listener.reported).toEqual([]);
    await Promise.resolve();
    expect(listener.reported).toEqual([{ kind: 'frames', deployment: A.id, frames: [CHUNK, CHUNK] }]);
    a.last.data(CHUNK);
    await Promise.resolve();
    // The end takes the frames still waiting as the last ones.
    a.last.data(DONE).end();
    await Promise.resolve();
    expect(listener.reported).toEqual([
      { kind: 'frames', deployment: A.id, frames: [CHUNK, CHUNK] },
      { kind: 'frames', deployment: A.id, frames: [CHUNK] },
      { kind: 'streamEnd', deployment: A.id, usage: undefined, lastFrames: [DONE] },
    ]);
    expect(router.healthy).toEqual([A.id]);
  });

  it('sends a read at once past 64 KiB of it, so a pause from the client is seen before the next chunk', () => {
    const { call, a, listener } = setup({ request: chatRequest({ model: 'mixed', stream: true }) });
    // As the exchange does when the client's buffer is full.
    listener.onFramesHook = () => call.pause();
    call.start();
    const exchange = a.last.start().head(200);
    let chunks = 0;
    // A producer that hands everything over in one go (the in-process mock can) checks the pause between chunks.
    while (!exchange.controller.paused && chunks < 10_000) {
      exchange.data(CHUNK);
      chunks++;
    }
    expect(exchange.controller.paused).toBe(true);
    expect(chunks).toBe(Math.ceil((64 * 1024) / Buffer.byteLength(CHUNK)));
    expect(listener.reported).toEqual([{ kind: 'frames', deployment: A.id, frames: Array<string>(chunks).fill(CHUNK) }]);
  });

  it('reports nothing waiting for the end of a read once stopped (the client left)', async () => {
    const { call, a, listener } = setup({ request: chatRequest({ model: 'mixed', stream: true }) });
    call.start();
    a.last.start().head(200).data(CHUNK);
    call.stop(new ClientGoneError());
    await Promise.resolve();
    expect(listener.reported).toEqual([]);
    expect(a.last.controller.reason).toBeInstanceOf(ClientGoneError);
  });

  it('asks for the output bound in the field the client used', () => {
    const { call, a } = setup({ request: chatRequest({ model: 'mixed', max_completion_tokens: 10 }) });
    call.start();
    expect(a.last.body).toMatchObject({ max_completion_tokens: 64 });
    expect(a.last.body).not.toHaveProperty('max_tokens');
  });

  // Regression: a client sending both fields was held for max_completion_tokens while its
  // max_tokens went upstream untouched; an upstream reading max_tokens generated past the hold.
  it('never asks upstream for more output than the hold pays for, whichever fields the client sent', () => {
    const { call, a } = setup({ request: chatRequest({ model: 'mixed', max_completion_tokens: 10, max_tokens: 100_000 }) });
    call.start();
    const body = a.last.body;
    expect(body.max_completion_tokens).toBe(64);
    expect(body.max_tokens).toBeUndefined();
  });

  it('fails with NR_UPSTREAM_UNAVAILABLE when the router finds no deployment', () => {
    const { call, router, listener, a } = setup();
    router.none = true;
    call.start();
    expect(listener.failures.map((e) => e.code)).toEqual(['NR_UPSTREAM_UNAVAILABLE']);
    expect(a.exchanges).toEqual([]);
    expect(call.attempts).toBe(0);
  });

  it('answers NR_INVALID_REQUEST when the request nests JSON too deeply to serialize', () => {
    let nested: unknown = 0;
    for (let i = 0; i < 200_000; i++) nested = [nested];
    const { call, a, b, listener } = setup({ request: chatRequest({ model: 'mixed', metadata: nested }) });
    call.start();
    expect(listener.reported).toHaveLength(1);
    expect(listener.failures[0]).toMatchObject({ code: 'NR_INVALID_REQUEST', status: 400, message: 'The request nests JSON too deeply.' });
    expect(a.exchanges).toEqual([]);
    expect(b.exchanges).toEqual([]);
  });

  it('pauses and resumes the running attempt', () => {
    const { call, a } = setup();
    call.start();
    a.last.start();
    call.pause();
    expect(a.last.controller.paused).toBe(true);
    call.resume();
    expect(a.last.controller.paused).toBe(false);
  });
});

describe('UpstreamCall: fallback', () => {
  it('falls back to the next deployment on a retryable failure while nothing reached the client', async () => {
    const before = await fallbackCount('openai-compatible', 'error');
    const { call, a, b, listener, router } = setup();
    call.start();
    a.last.answer(500, '{"error":{"message":"boom"}}');
    expect(router.failed).toEqual([A.id]);
    expect(router.picks).toEqual([[], [A.id]]);
    expect(b.exchanges).toHaveLength(1);
    expect(b.last.body).toMatchObject({ model: 'gpt-4', max_tokens: 64 });
    expect(listener.reported).toEqual([]);
    expect(await fallbackCount('openai-compatible', 'error')).toBe(before + 1);

    b.last.answer(200, COMPLETION);
    expect(listener.reported).toMatchObject([{ kind: 'completion', deployment: B.id }]);
    expect(call.attempts).toBe(2);
    expect(call.lastDeployment).toBe(B);
    expect(router.healthy).toEqual([B.id]);
  });

  it('falls back on a transport failure, a refused dispatch and a stream cut before the client saw it', async () => {
    const refused = setup();
    refused.a.throwOnDispatch = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    refused.call.start();
    expect(refused.b.exchanges).toHaveLength(1);

    const reset = setup();
    reset.call.start();
    reset.a.last.start().error(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    expect(reset.b.exchanges).toHaveLength(1);

    // Frames went to the listener, but it never committed: the client saw nothing yet.
    const cut = setup({ request: chatRequest({ model: 'mixed', stream: true }) });
    cut.call.start();
    cut.a.last.start().head(200).data(CHUNK).end();
    expect(cut.b.exchanges).toHaveLength(1);
    expect(cut.listener.failures).toEqual([]);
    // The next attempt's frames are its own: nothing of the cut one waits in the sink.
    const other = CHUNK.replace('"hi"', '"ho"');
    cut.b.last.start().head(200).data(other).data(DONE).end();
    expect(cut.listener.reported).toEqual([
      { kind: 'frames', deployment: A.id, frames: [CHUNK] },
      { kind: 'streamEnd', deployment: B.id, usage: undefined, lastFrames: [other, DONE] },
    ]);
  });

  it('reports the last failure once every deployment failed', async () => {
    const before = await fallbackCount('openai-compatible', 'rate_limited');
    const { call, a, b, listener } = setup();
    call.start();
    a.last.answer(429, '{}', { 'retry-after': '3' });
    b.last.answer(429, '{}', { 'retry-after': '9' });
    expect(listener.failures).toHaveLength(1);
    expect(listener.failures[0]).toMatchObject({ code: 'NR_UPSTREAM_RATE_LIMITED', retryAfterS: 9 });
    expect(call.attempts).toBe(2);
    expect(await fallbackCount('openai-compatible', 'rate_limited')).toBe(before + 1);
  });

  it('does not fall back after commit(): the client already has output of this attempt', async () => {
    const before = await fallbackCount('openai-compatible', 'error');
    const { call, a, b, listener } = setup({ request: chatRequest({ model: 'mixed', stream: true }) });
    listener.onFramesHook = (attempt) => call.commit(attempt);
    call.start();
    a.last.start().head(200).data(CHUNK).error(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    expect(b.exchanges).toEqual([]);
    expect(listener.reported.map((r) => r.kind)).toEqual(['frames', 'failed']);
    expect(listener.failures[0]!.code).toBe('NR_UPSTREAM_ERROR');
    expect(await fallbackCount('openai-compatible', 'error')).toBe(before);
  });

  it('does not fall back on a failure about the request itself', () => {
    const { call, a, b, listener, router } = setup();
    call.start();
    a.last.answer(400, '{"error":{"message":"context length exceeded"}}');
    expect(b.exchanges).toEqual([]);
    expect(listener.failures).toHaveLength(1);
    expect(listener.failures[0]).toMatchObject({ code: 'NR_INVALID_REQUEST', message: 'context length exceeded' });
    expect(router.failed).toEqual([]);
  });

  it('does not fall back past upstream.maxAttempts', () => {
    const { call, a, b, listener } = setup({ upstream: { maxAttempts: 1 } });
    call.start();
    a.last.answer(503, '');
    expect(b.exchanges).toEqual([]);
    expect(listener.failures.map((e) => e.code)).toEqual(['NR_UPSTREAM_ERROR']);
  });

  it('does not retry the only deployment of a route', () => {
    const only = route('other');
    const { call, pools, listener } = setup({ route: only });
    call.start();
    pools.of(only.deployments[0]!).last.answer(500, '');
    expect(pools.of(only.deployments[0]!).exchanges).toHaveLength(1);
    expect(listener.failures).toHaveLength(1);
  });
});

describe('UpstreamCall: stop and stale attempts', () => {
  it('reports nothing once stopped: not a failure, not a fallback, not an answer', () => {
    const failing = setup();
    failing.call.start();
    failing.call.stop();
    failing.a.last.answer(500, '');
    expect(failing.listener.reported).toEqual([]);
    expect(failing.b.exchanges).toEqual([]);

    const answering = setup();
    answering.call.start();
    answering.call.stop();
    answering.a.last.answer(200, COMPLETION);
    expect(answering.listener.reported).toEqual([]);

    const streaming = setup({ request: chatRequest({ model: 'mixed', stream: true }) });
    streaming.call.start();
    streaming.a.last.start().head(200);
    streaming.call.stop();
    streaming.a.last.data(CHUNK).data(DONE).end();
    expect(streaming.listener.reported).toEqual([]);
  });

  it('aborts the running attempt with the reason given to stop()', () => {
    const { call, a, b, listener } = setup();
    call.start();
    a.last.start();
    const reason = new GatewayError('NR_SHUTTING_DOWN');
    call.stop(reason);
    expect(a.last.controller.reason).toBe(reason);
    // undici then fails the request with that reason: nothing is reported, nothing retried.
    a.last.error(reason);
    expect(listener.reported).toEqual([]);
    expect(b.exchanges).toEqual([]);
  });

  it('aborts an attempt stopped before its request started as soon as it starts', () => {
    const { call, a, listener } = setup();
    call.start();
    const reason = new ClientGoneError();
    call.stop(reason);
    expect(a.last.controller.aborted).toBe(false);
    a.last.start();
    expect(a.last.controller.reason).toBe(reason);
    a.last.error(reason);
    expect(listener.reported).toEqual([]);
  });

  it('ignores reports from an attempt that is no longer the current one', async () => {
    const { call, a, b, listener, router } = setup({ request: chatRequest({ model: 'mixed', stream: true }) });
    call.start();
    const stale = a.last;
    stale.answer(500, '');
    expect(b.exchanges).toHaveLength(1);
    const failedBefore = [...router.failed];

    call.onCompletion(stale.attempt, COMPLETION, undefined);
    call.onStreamEnd(stale.attempt, undefined);
    call.flushFrames(stale.attempt);
    call.onAttemptFailed(stale.attempt, { error: new GatewayError('NR_UPSTREAM_ERROR'), retryable: true, coolDown: true }, 'error');
    expect(listener.reported).toEqual([]);
    expect(router.failed).toEqual(failedBefore);
    expect(router.healthy).toEqual([]);
    expect(b.exchanges).toHaveLength(1);

    // The current attempt still reports.
    b.last.start().head(200).data(CHUNK);
    await Promise.resolve();
    expect(listener.reported).toEqual([{ kind: 'frames', deployment: B.id, frames: [CHUNK] }]);
  });
});
