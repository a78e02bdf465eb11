import { describe, it, expect } from 'vitest';
import { buildConfig, type Deployment } from '../../../src/config/load.js';
import { GatewayError } from '../../../src/errors/gateway-error.js';
import { endpointOf, headersOf } from '../../../src/providers/openai-compatible/api.js';
import { buildRequest, parseResponse } from '../../../src/providers/openai-compatible/chat.js';
import { openAiCompatibleAdapter } from '../../../src/providers/openai-compatible/index.js';
import { OpenAiStreamTranslator } from '../../../src/providers/openai-compatible/stream.js';
import { GATEWAY_CACHE_MARKS, type ChatRequest, type FrameSink, type TranslateContext } from '../../../src/providers/types.js';
import { SseParser, type SseEvent } from '../../../src/streaming/sse-parser.js';
import { jsonBodyText } from '../../../src/json/chunked-body.js';

/** Deployments built the way the gateway builds them, so the api key is the non-enumerable one. */
function deployments(): { keyed: Deployment; keyless: Deployment } {
  const config = buildConfig(
    {
      models: [
        {
          name: 'gpt',
          deployments: [
            { provider: 'openai-compatible', model: 'gpt-4o-mini-2024', baseUrl: 'https://api.openai.com/v1', apiKeyEnv: 'OPENAI_KEY', headers: { 'HTTP-Referer': 'https://nemo.test', 'x-title': 'nemo' } },
            { provider: 'openai-compatible', model: 'llama3', baseUrl: 'http://localhost:11434/v1' },
          ],
        },
      ],
    },
    { OPENAI_KEY: 'sk-test-key' },
    'test',
  );
  const [keyed, keyless] = config.models.get('gpt')!.deployments;
  return { keyed: keyed!, keyless: keyless! };
}

function withBaseUrl(baseUrl: string | undefined): Deployment {
  return { ...deployments().keyless, baseUrl };
}

const request = (patch: Partial<ChatRequest> = {}): ChatRequest => ({ model: 'gpt', messages: [{ role: 'user', content: 'hi' }], ...patch });
const bodyOf = (req: ChatRequest, deployment: Deployment, maxTokens = 256) => JSON.parse(jsonBodyText(buildRequest(req, deployment, maxTokens).body)) as Record<string, unknown>;

describe('buildRequest', () => {
  const { keyed, keyless } = deployments();

  it('strips the prompt-caching marks the gateway added to a translated request, and keeps a client\'s own', () => {
    const marked: ChatRequest = { ...request({ messages: [{ role: 'user', content: [{ type: 'text', text: 'hi', cache_control: { type: 'ephemeral' } }] }] }) };
    expect(bodyOf(marked, keyed).messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'hi', cache_control: { type: 'ephemeral' } }] }]);
    marked[GATEWAY_CACHE_MARKS] = true;
    expect(bodyOf(marked, keyed).messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'hi' }] }]);
  });

  it('sends the deployment model and passes other fields through', () => {
    const body = bodyOf(request({ temperature: 0.2, seed: 7, response_format: { type: 'json_object' } }), keyed);
    expect(body).toEqual({ model: 'gpt-4o-mini-2024', messages: [{ role: 'user', content: 'hi' }], temperature: 0.2, seed: 7, response_format: { type: 'json_object' }, max_tokens: 256 });
  });

  it('sets max_tokens to the bound when the client used max_tokens or nothing', () => {
    expect(bodyOf(request(), keyed, 100)).toMatchObject({ max_tokens: 100 });
    expect(bodyOf(request(), keyed, 100)).not.toHaveProperty('max_completion_tokens');
    expect(bodyOf(request({ max_tokens: 5000 }), keyed, 4096)).toMatchObject({ max_tokens: 4096 });
  });

  it('sets max_completion_tokens instead when the client used it', () => {
    const body = bodyOf(request({ max_completion_tokens: 50 }), keyed, 50);
    expect(body.max_completion_tokens).toBe(50);
    expect(body).not.toHaveProperty('max_tokens');
  });

  it('asks for usage on streams, keeping the client stream_options', () => {
    const body = bodyOf(request({ stream: true, stream_options: { include_usage: false, continuous_usage_stats: true } as ChatRequest['stream_options'] }), keyed);
    expect(body.stream).toBe(true);
    expect(body.stream_options).toEqual({ include_usage: true, continuous_usage_stats: true });
    expect(bodyOf(request({ stream: true }), keyed).stream_options).toEqual({ include_usage: true });
  });

  it('does not add stream_options to non-stream requests', () => {
    expect(bodyOf(request(), keyed)).not.toHaveProperty('stream_options');
    expect(bodyOf(request({ stream: false }), keyed)).not.toHaveProperty('stream_options');
  });

  it('does not modify the client request', () => {
    const req = request({ stream: true, max_tokens: 9 });
    const copy = structuredClone(req);
    buildRequest(req, keyed, 5);
    expect(req).toEqual(copy);
  });

  it('sends authorization only when the deployment has an api key', () => {
    expect(buildRequest(request(), keyed, 1).headers.authorization).toBe('Bearer sk-test-key');
    expect(buildRequest(request(), keyless, 1).headers).not.toHaveProperty('authorization');
    expect(headersOf(keyless)).not.toHaveProperty('authorization');
  });

  it('merges the deployment headers with the defaults', () => {
    expect(buildRequest(request(), keyed, 1).headers).toEqual({
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'HTTP-Referer': 'https://nemo.test',
      'x-title': 'nemo',
      authorization: 'Bearer sk-test-key',
    });
  });

  it('targets <baseUrl>/chat/completions', () => {
    expect(buildRequest(request(), keyed, 1)).toMatchObject({ origin: 'https://api.openai.com', path: '/v1/chat/completions' });
    expect(buildRequest(request(), keyless, 1)).toMatchObject({ origin: 'http://localhost:11434', path: '/v1/chat/completions' });
  });

  it.each([
    ['https://api.groq.com/openai/v1', 'https://api.groq.com', '/openai/v1/chat/completions'],
    ['https://api.groq.com/openai/v1/', 'https://api.groq.com', '/openai/v1/chat/completions'],
    ['https://openrouter.ai/api/v1//', 'https://openrouter.ai', '/api/v1/chat/completions'],
    ['http://127.0.0.1:8000', 'http://127.0.0.1:8000', '/chat/completions'],
    ['http://127.0.0.1:8000/', 'http://127.0.0.1:8000', '/chat/completions'],
  ])('endpoint of %s', (baseUrl, origin, path) => {
    expect(endpointOf(withBaseUrl(baseUrl))).toEqual({ origin, path });
  });
});

describe('parseResponse', () => {
  const ctx: TranslateContext = { requestId: 'req_1', publicModel: 'gpt', created: 1, clientWantsUsage: false };

  it('returns a completion as it came', () => {
    const completion = { id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'gpt-4o', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop', logprobs: null }] };
    expect(parseResponse(completion, ctx)).toBe(completion);
  });

  it.each([
    ['null', null],
    ['a string', 'ok'],
    ['a number', 1],
    ['an array', [{ choices: [] }]],
    ['an object without choices', { id: 'x', object: 'chat.completion' }],
    ['choices not an array', { choices: { 0: {} } }],
  ])('rejects %s with NR_UPSTREAM_BAD_RESPONSE', (_name, json) => {
    expect(() => parseResponse(json, ctx)).toThrow(GatewayError);
    try {
      parseResponse(json, ctx);
    } catch (err) {
      expect((err as GatewayError).code).toBe('NR_UPSTREAM_BAD_RESPONSE');
    }
  });

  it('is wired into the adapter', () => {
    expect(openAiCompatibleAdapter).toMatchObject({ kind: 'openai-compatible', passthroughResponse: true, buildRequest, parseResponse });
    expect(openAiCompatibleAdapter.createStreamTranslator(ctx)).toBeInstanceOf(OpenAiStreamTranslator);
  });
});

describe('OpenAiStreamTranslator', () => {
  const chunk = (content: string) => JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [{ index: 0, delta: { content }, finish_reason: null }] });
  const usageChunk = '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}';

  function translate(events: SseEvent[], clientWantsUsage = false): { frames: string[]; translator: OpenAiStreamTranslator } {
    const frames: string[] = [];
    const sink: FrameSink = { push: (f) => frames.push(typeof f === 'string' ? f : Buffer.from(f).toString('utf8')) };
    const translator = new OpenAiStreamTranslator({ requestId: 'req_1', publicModel: 'gpt', created: 1, clientWantsUsage });
    for (const e of events) translator.onEvent(e, sink);
    return { frames, translator };
  }
  const data = (d: string, event?: string): SseEvent => ({ event, data: d });

  /** Raw upstream bytes through the real parser, at every two-chunk split. */
  function translateBytes(raw: string, clientWantsUsage: boolean): string {
    const bytes = Buffer.from(raw, 'utf8');
    let whole: string | undefined;
    for (let k = 0; k <= bytes.length; k++) {
      const out: Buffer[] = [];
      const translator = new OpenAiStreamTranslator({ requestId: 'r', publicModel: 'gpt', created: 1, clientWantsUsage });
      const sink: FrameSink = { push: (f) => out.push(Buffer.from(f)) };
      const parser = new SseParser((e) => translator.onEvent(e, sink));
      parser.push(Uint8Array.from(bytes.subarray(0, k)));
      parser.push(Uint8Array.from(bytes.subarray(k)));
      parser.end();
      const text = Buffer.concat(out).toString('utf8');
      if (whole === undefined) whole = text;
      expect(text, `split at byte ${k}`).toBe(whole);
    }
    return whole!;
  }

  it('rejects a chunk that is not one JSON object (malformed SSE) as NR_UPSTREAM_BAD_RESPONSE', () => {
    for (const bad of ['{not json', 'not json}', 'hello', '']) {
      expect(() => translate([data(chunk('ok')), data(bad)]), JSON.stringify(bad)).toThrow(expect.objectContaining({ code: 'NR_UPSTREAM_BAD_RESPONSE' }));
    }
  });

  it('treats a chunk with an "error" key that is not first as an upstream error', () => {
    expect(() => translate([data('{"id":"x","error":{"message":"boom"}}')])).toThrow(expect.objectContaining({ code: 'NR_UPSTREAM_ERROR' }));
  });

  it('passes frames through byte-identical as data: ...\\n\\n', () => {
    const raw = [chunk('héllo 日本 🎉'), chunk(' "quoted"\\n'), usageChunk].map((d) => `data: ${d}\n\n`).join('') + 'data: [DONE]\n\n';
    expect(translateBytes(raw, true)).toBe(raw);
  });

  it('sets finished on [DONE] and forwards it', () => {
    const { frames, translator } = translate([data(chunk('a'))]);
    expect(translator.finished).toBe(false);
    translator.onEvent(data('[DONE]'), { push: (f) => frames.push(Buffer.from(f).toString('utf8')) });
    expect(translator.finished).toBe(true);
    expect(frames).toEqual([`data: ${chunk('a')}\n\n`, 'data: [DONE]\n\n']);
  });

  it('captures the usage chunk and strips it when the client did not ask for usage', () => {
    const { frames, translator } = translate([data(chunk('a')), data(usageChunk), data('[DONE]')], false);
    expect(translator.usage).toEqual({ prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 });
    expect(frames).toEqual([`data: ${chunk('a')}\n\n`, 'data: [DONE]\n\n']);
  });

  it('captures and forwards the usage chunk when the client asked for it', () => {
    const { frames, translator } = translate([data(chunk('a')), data(usageChunk), data('[DONE]')], true);
    expect(translator.usage).toEqual({ prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 });
    expect(frames).toEqual([`data: ${chunk('a')}\n\n`, `data: ${usageChunk}\n\n`, 'data: [DONE]\n\n']);
  });

  it('keeps a chunk that has choices as well as usage, and still reads the usage', () => {
    const both = '{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}';
    const { frames, translator } = translate([data(both)], false);
    expect(frames).toEqual([`data: ${both}\n\n`]);
    expect(translator.usage).toEqual({ prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 });
  });

  it('detects usage written with whitespace ("usage": {)', () => {
    const spaced = '{ "choices": [], "usage" : {\n "prompt_tokens": 4, "completion_tokens": 5 } }';
    const { frames, translator } = translate([data(spaced)], false);
    expect(translator.usage).toEqual({ prompt_tokens: 4, completion_tokens: 5, total_tokens: 9 });
    expect(frames).toEqual([]);
  });

  it('does not take "usage": { inside generated text for a usage chunk', () => {
    const text = chunk('the "usage": {"prompt_tokens": 1, "completion_tokens": 1} is');
    const { frames, translator } = translate([data(text)], false);
    expect(translator.usage).toBeUndefined();
    expect(frames).toEqual([`data: ${text}\n\n`]);
  });

  it.each([
    ['negative', '{"prompt_tokens":-1,"completion_tokens":3}'],
    ['float', '{"prompt_tokens":1.5,"completion_tokens":3}'],
    ['string', '{"prompt_tokens":"9","completion_tokens":3}'],
    ['1e300', '{"prompt_tokens":1e300,"completion_tokens":3}'],
    ['missing', '{"completion_tokens":3}'],
  ])('ignores absurd usage (%s)', (_name, usage) => {
    const { frames, translator } = translate([data(`{"choices":[],"usage":${usage}}`)], false);
    expect(translator.usage).toBeUndefined();
    expect(frames).toEqual([]);
  });

  it('keeps the last good usage when a later one is absurd', () => {
    const { translator } = translate([data(usageChunk), data('{"choices":[],"usage":{"prompt_tokens":-1,"completion_tokens":-1}}')], true);
    expect(translator.usage).toEqual({ prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 });
  });

  it('counts completion characters from the frames', () => {
    const { translator } = translate([data(chunk('abc')), data(chunk('de'))]);
    expect(translator.completionChars).toBe(chunk('abc').length + chunk('de').length);
  });

  it.each([
    ['an {"error": ...} data frame', data('{"error":{"message":"overloaded","type":"server_error"}}')],
    ['an error frame with leading whitespace', data('  { "error" : "boom" }')],
    ['an event: error frame', data('{"message":"stream reset"}', 'error')],
    ['an event: error frame with non-JSON data', data('internal failure', 'error')],
  ])('throws NR_UPSTREAM_ERROR on %s', (_name, event) => {
    const { translator } = translate([data(chunk('a'))]);
    const frames: unknown[] = [];
    let thrown: unknown;
    try {
      translator.onEvent(event, { push: (f) => frames.push(f) });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(GatewayError);
    expect((thrown as GatewayError).code).toBe('NR_UPSTREAM_ERROR');
    expect(frames).toEqual([]);
  });

  it('counts content chunks and keeps their text, with or without spaces around the key\'s colon', () => {
    const spaced = '{"choices":[{"index":0,"delta":{"content": "spaced"},"finish_reason":null}]}';
    const role = JSON.stringify({ choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] });
    const { translator } = translate([data(role), data(chunk('one ')), data(spaced), data(chunk('two'))]);
    expect(translator.contentChunks).toBe(3);
    expect(translator.completionText.text()).toBe('one two');
  });

  it('names the upstream message in the mid-stream error', () => {
    expect(() => translate([data('{"error":{"message":"overloaded"}}')])).toThrow('Upstream error: overloaded');
  });

  it('throws NR_UPSTREAM_BAD_RESPONSE on invalid JSON in a usage-bearing chunk', () => {
    let thrown: unknown;
    try {
      translate([data('{"choices":[],"usage":{"prompt_tokens":1,')]);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(GatewayError);
    expect((thrown as GatewayError).code).toBe('NR_UPSTREAM_BAD_RESPONSE');
  });
});
