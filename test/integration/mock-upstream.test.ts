// The standalone mock upstream over real sockets, driven by undici and by the official openai SDK.
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import OpenAI from 'openai';
import { errors, request } from 'undici';
import { DEFAULT_REASONING_TOKENS, mockCompletionText, mockReasoningText } from '../../src/providers/mock/generate.js';
import { startMockUpstream, type MockUpstream } from '../../src/providers/mock/server.js';

let upstream: MockUpstream;
let client: OpenAI;
const messages = [{ role: 'user' as const, content: 'hello' }];

beforeAll(async () => {
  upstream = await startMockUpstream({ port: 0, defaults: { completionTokens: 12 } });
  client = new OpenAI({ baseURL: `${upstream.url}/v1`, apiKey: 'x', maxRetries: 0 });
});

afterAll(async () => {
  await upstream.close();
});

beforeEach(async () => {
  await request(`${upstream.url}/_mock/reset`, { method: 'POST' }).then((r) => r.body.dump());
});

function post(body: unknown, headers: Record<string, string> = {}, extra: { headersTimeout?: number; bodyTimeout?: number } = {}) {
  return request(`${upstream.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...extra,
  });
}

function sseContents(text: string): string {
  return text
    .split('\n\n')
    .filter((f) => f.startsWith('data: {"'))
    .map((f) => (JSON.parse(f.slice(6)) as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? '')
    .join('');
}

describe('mock upstream server', () => {
  it('answers a non-stream request (undici)', async () => {
    const res = await post({ model: 'gpt-test', messages });
    expect(res.statusCode).toBe(200);
    const json = (await res.body.json()) as { model: string; choices: Array<{ message: { content: string } }>; usage: unknown };
    expect(json.model).toBe('gpt-test');
    expect(json.choices[0]!.message.content).toBe(mockCompletionText(12));
    expect(json.usage).toEqual({ prompt_tokens: 2, completion_tokens: 12, total_tokens: 14 });
  });

  it('answers a non-stream request (openai SDK), cut by max_tokens', async () => {
    const completion = await client.chat.completions.create({ model: 'm', messages, max_tokens: 5 });
    expect(completion.choices[0]!.message.content).toBe(mockCompletionText(5));
    expect(completion.choices[0]!.finish_reason).toBe('length');
  });

  it('streams chunks the SDK reassembles, with the usage chunk when asked', async () => {
    const stream = await client.chat.completions.create(
      { model: 'm', messages, stream: true, stream_options: { include_usage: true } },
      { headers: { 'x-mock-tokens-per-second': '2000', 'x-mock-completion-tokens': '20' } },
    );
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(mockCompletionText(20));
    expect(usage).toMatchObject({ completion_tokens: 20 });
    expect(upstream.stats()).toEqual({ requests: 1, completed: 1, aborted: 0, inFlight: 0, lastAbortAtMs: 0 });
  });

  it('streams over fetch ending in [DONE]', async () => {
    const res = await fetch(`${upstream.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', messages, stream: true }) });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const text = await res.text();
    expect(sseContents(text)).toBe(mockCompletionText(12));
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
  });

  it('answers 400 to invalid JSON and to a bad x-mock header', async () => {
    const bad = await post('{nope');
    expect(bad.statusCode).toBe(400);
    expect(((await bad.body.json()) as { error: { code: string } }).error.code).toBe('invalid_json');
    const header = await post({ model: 'm', messages }, { 'x-mock-fault': 'explode' });
    expect(header.statusCode).toBe(400);
    expect(((await header.body.json()) as { error: { message: string } }).error.message).toMatch(/x-mock-fault/);
  });

  it('lists models and reports stats', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toContain('mock');
    await post({ model: 'm', messages }).then((r) => r.body.dump());
    const stats = await request(`${upstream.url}/_mock/stats`).then((r) => r.body.json());
    expect(stats).toEqual({ requests: 1, completed: 1, aborted: 0, inFlight: 0, lastAbortAtMs: 0 });
  });

  it('counts a request the client aborts mid-stream', async () => {
    const controller = new AbortController();
    const res = await fetch(`${upstream.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'x-mock-tokens-per-second': '50', 'x-mock-completion-tokens': '100' },
      body: JSON.stringify({ model: 'm', messages, stream: true }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    await expect(reader.read()).rejects.toThrow();
    await vi.waitFor(() => expect(upstream.stats()).toMatchObject({ requests: 1, completed: 0, aborted: 1, inFlight: 0, lastAbortAtMs: expect.any(Number) }));
  });

  it('answers tool calls the SDK reads, streamed and not, and JSON for response_format', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { q: { type: 'string' }, n: { type: 'number' } }, required: ['q', 'n'] } } }];
    const completion = await client.chat.completions.create({ model: 'm', messages, tools });
    const call = completion.choices[0]!.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(completion.choices[0]!.finish_reason).toBe('tool_calls');
    expect(call.id).toMatch(/^call_/);
    expect(JSON.parse(call.function.arguments)).toEqual({ q: 'the', n: 1 });
    const stream = client.chat.completions.stream({ model: 'm', messages, tools, stream: true });
    const final = await stream.finalChatCompletion();
    expect((final.choices[0]!.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall).function).toMatchObject({ name: 'lookup', arguments: '{"q":"the","n":1}' });
    const json = await client.chat.completions.create({ model: 'm', messages, response_format: { type: 'json_object' } });
    expect(JSON.parse(json.choices[0]!.message.content!)).toEqual({ answer: mockCompletionText(12).trimEnd() });
  });

  it('reports cached and reasoning tokens when x-mock-* headers ask', async () => {
    const completion = await client.chat.completions.create({ model: 'm', messages }, { headers: { 'x-mock-cached-prompt-tokens': '1', 'x-mock-reasoning-tokens': '4' } });
    expect(completion.usage).toMatchObject({ completion_tokens: 16, prompt_tokens_details: { cached_tokens: 1 }, completion_tokens_details: { reasoning_tokens: 4 } });
  });

  it('reasons when asked: reasoning_content before the answer, streamed and not; x-mock-reasoning-text always or never', async () => {
    const complete = await client.chat.completions.create({ model: 'm', messages, reasoning_effort: 'low' }, { headers: { 'x-mock-reasoning-tokens': '5' } });
    expect((complete.choices[0]!.message as { reasoning_content?: string }).reasoning_content).toBe(mockReasoningText(5));
    expect(complete.choices[0]!.message.content).toBe(mockCompletionText(12));
    expect(complete.usage).toMatchObject({ completion_tokens: 17, completion_tokens_details: { reasoning_tokens: 5 } });
    const stream = await client.chat.completions.create({ model: 'm', messages, reasoning_effort: 'low', stream: true, max_tokens: 20 });
    const deltas: Array<{ reasoning_content?: string; content?: string | null }> = [];
    for await (const chunk of stream) if (chunk.choices[0]) deltas.push(chunk.choices[0].delta);
    const reasoning = deltas.map((d) => d.reasoning_content ?? '').join('');
    expect(reasoning).toBe(mockReasoningText(DEFAULT_REASONING_TOKENS));
    // Within max_tokens: 16 reasoning tokens leave 4 for the answer, after the reasoning.
    expect(deltas.map((d) => d.content ?? '').join('')).toBe(mockCompletionText(4));
    expect(deltas.findLastIndex((d) => d.reasoning_content !== undefined)).toBeLessThan(deltas.findIndex((d) => (d.content ?? '') !== ''));

    const always = await client.chat.completions.create({ model: 'm', messages }, { headers: { 'x-mock-reasoning-text': 'always', 'x-mock-reasoning-tokens': '2' } });
    expect((always.choices[0]!.message as { reasoning_content?: string }).reasoning_content).toBe(mockReasoningText(2));
    const never = await client.chat.completions.create({ model: 'm', messages, reasoning_effort: 'high' }, { headers: { 'x-mock-reasoning-text': 'never' } });
    expect(never.choices[0]!.message).not.toHaveProperty('reasoning_content');
    expect(never.usage).toEqual({ prompt_tokens: 2, completion_tokens: 12, total_tokens: 14 });
  });

  it('answers embeddings.create (openai SDK): base64 by default, floats, dimensions', async () => {
    const decoded = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['hello', 'world'] });
    expect(decoded.data).toHaveLength(2);
    expect(decoded.data[0]!.embedding).toHaveLength(256);
    expect(decoded.usage).toEqual({ prompt_tokens: 3, total_tokens: 3 });
    const floats = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['hello', 'world'], encoding_format: 'float', dimensions: 32 });
    expect(floats.data[1]!.embedding).toHaveLength(32);
    // The SDK decodes base64 into float32 values: the same numbers as the float form of the same input.
    const same = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello', encoding_format: 'float' });
    expect(Array.from(decoded.data[0]!.embedding)).toEqual(same.data[0]!.embedding);
  });

  describe('faults via x-mock-fault', () => {
    it('http-429 is a RateLimitError with retry-after', async () => {
      const err = await client.chat.completions.create({ model: 'm', messages }, { headers: { 'x-mock-fault': 'http-429' } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      expect((err as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after')).toBe('1');
    });

    it('http-500 is an InternalServerError', async () => {
      const err = await client.chat.completions.create({ model: 'm', messages, stream: true }, { headers: { 'x-mock-fault': 'http-500' } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    });

    it('timeout never answers: the client gives up and the request counts as aborted', async () => {
      await expect(post({ model: 'm', messages }, { 'x-mock-fault': 'timeout' }, { headersTimeout: 100 })).rejects.toBeInstanceOf(errors.HeadersTimeoutError);
      const err = await client.chat.completions.create({ model: 'm', messages }, { headers: { 'x-mock-fault': 'timeout' }, timeout: 100 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
      await vi.waitFor(() => expect(upstream.stats()).toMatchObject({ requests: 2, aborted: 2, inFlight: 0 }));
    });

    it('cut-mid-stream drops the connection after half the tokens', async () => {
      const res = await post({ model: 'm', messages, stream: true }, { 'x-mock-fault': 'cut-mid-stream' });
      expect(res.statusCode).toBe(200);
      let text = '';
      const read = (async () => {
        for await (const chunk of res.body) text += String(chunk);
      })();
      await expect(read).rejects.toMatchObject({ code: 'UND_ERR_SOCKET' });
      expect(sseContents(text)).toBe(mockCompletionText(6));
      await vi.waitFor(() => expect(upstream.stats()).toEqual({ requests: 1, completed: 0, aborted: 0, inFlight: 0, lastAbortAtMs: 0 }));
    });

    it('cut-mid-stream breaks the SDK stream', async () => {
      const stream = await client.chat.completions.create({ model: 'm', messages, stream: true }, { headers: { 'x-mock-fault': 'cut-mid-stream', 'x-mock-tokens-per-second': '1000' } });
      await expect((async () => {
        for await (const _chunk of stream) {
          // drain
        }
      })()).rejects.toThrow();
    });

    it('stall-mid-stream goes silent until the body timeout', async () => {
      const res = await post({ model: 'm', messages, stream: true }, { 'x-mock-fault': 'stall-mid-stream' }, { bodyTimeout: 100 });
      await expect(res.body.text()).rejects.toBeInstanceOf(errors.BodyTimeoutError);
      await vi.waitFor(() => expect(upstream.stats()).toMatchObject({ aborted: 1, inFlight: 0 }));
    });

    it('stall on a non-stream request leaves the JSON body unfinished', async () => {
      const res = await post({ model: 'm', messages }, { 'x-mock-fault': 'stall-mid-stream' }, { bodyTimeout: 100 });
      expect(Number(res.headers['content-length'])).toBeGreaterThan(0);
      await expect(res.body.text()).rejects.toBeInstanceOf(errors.BodyTimeoutError);
    });

    it('malformed-sse sends a garbage frame halfway', async () => {
      const res = await post({ model: 'm', messages, stream: true }, { 'x-mock-fault': 'malformed-sse' });
      const text = await res.body.text();
      expect(text).toContain('data: {not json\n\n');
      expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    });

    it('no-done ends the stream cleanly without [DONE]', async () => {
      const res = await post({ model: 'm', messages, stream: true }, { 'x-mock-fault': 'no-done', 'x-mock-tokens-per-second': '1000' });
      const text = await res.body.text();
      expect(text).not.toContain('[DONE]');
      expect(sseContents(text)).toBe(mockCompletionText(12));
    });
  });
});
