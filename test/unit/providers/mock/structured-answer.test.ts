import { describe, it, expect } from 'vitest';
import type { MockBehaviour } from '../../../../src/config/schema.js';
import { completionJson, describeCompletion, mockCompletionText, planMockResponse, streamFrames, type MockRequest } from '../../../../src/providers/mock/generate.js';
import { splitPieces, structuredAnswer } from '../../../../src/providers/mock/structured-answer.js';
import { OpenAiStreamTranslator } from '../../../../src/providers/openai-compatible/stream.js';
import { SseParser } from '../../../../src/streaming/sse-parser.js';

const behaviour = (over: Partial<MockBehaviour> = {}): MockBehaviour => ({ ttftMs: 0, tokensPerSecond: 0, completionTokens: 16, reportUsage: true, fault: 'none', ...over });
const WORDS = ['the', 'quick', 'brown', 'fox'];
const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' }, days: { type: 'integer' }, metric: { type: 'boolean' }, note: { type: 'string' } },
      required: ['city', 'days', 'metric'],
    },
  },
};
const clockTool = { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } }, required: ['zone'] } } };
const user = [{ role: 'user' as const, content: 'weather in Paris?' }];

interface ToolCallMessage {
  content: string | null;
  tool_calls?: Array<{ id: string; type: string; function: { name: string; arguments: string } }>;
}

function answer(body: MockRequest, over: Partial<MockBehaviour> = {}): { message: ToolCallMessage; finish_reason: string } {
  const json = JSON.parse(completionJson(describeCompletion({ messages: user, ...body }, behaviour(over), 'chatcmpl-mock7'))) as { choices: Array<{ message: ToolCallMessage; finish_reason: string }> };
  return json.choices[0]!;
}

/** The stream as the gateway's translator passes it on, re-split every 5 bytes. */
function streamed(body: MockRequest, over: Partial<MockBehaviour> = {}): { deltas: Array<Record<string, unknown>>; finish: string | null; translator: OpenAiStreamTranslator } {
  const frames = streamFrames(describeCompletion({ messages: user, stream: true, stream_options: { include_usage: true }, ...body }, behaviour(over), 'chatcmpl-mock7', 1));
  const bytes = Buffer.from(frames.join(''));
  const translator = new OpenAiStreamTranslator({ requestId: 'r', publicModel: 'm', created: 0, clientWantsUsage: true });
  const out: string[] = [];
  const parser = new SseParser((event) => translator.onEvent(event, { push: (frame) => out.push(String(frame)) }));
  for (let i = 0; i < bytes.length; i += 5) parser.push(bytes.subarray(i, i + 5));
  const chunks = out.filter((f) => !f.includes('[DONE]')).map((f) => JSON.parse(f.slice(6)) as { choices: Array<{ delta: Record<string, unknown>; finish_reason: string | null }> });
  const withChoice = chunks.filter((c) => c.choices.length > 0);
  return { deltas: withChoice.map((c) => c.choices[0]!.delta), finish: withChoice.at(-1)!.choices[0]!.finish_reason, translator };
}

describe('tool calls', () => {
  it('calls the first tool with arguments built from its schema: required strings a word, integers 1, booleans true', () => {
    const choice = answer({ tools: [weatherTool, clockTool] });
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toHaveLength(1);
    const call = choice.message.tool_calls![0]!;
    expect(call).toMatchObject({ id: 'call_mock7', type: 'function', function: { name: 'get_weather' } });
    expect(JSON.parse(call.function.arguments)).toEqual({ city: 'the', days: 1, metric: true });
  });

  it('calls the tool tool_choice names; answers with text for tool_choice none or after a tool result', () => {
    expect(answer({ tools: [weatherTool, clockTool], tool_choice: { type: 'function', function: { name: 'get_time' } } }).message.tool_calls![0]!.function.name).toBe('get_time');
    expect(answer({ tools: [weatherTool, clockTool], tool_choice: 'required' }).message.tool_calls![0]!.function.name).toBe('get_weather');
    for (const body of [
      { tools: [weatherTool], tool_choice: 'none' },
      { tools: [weatherTool], messages: [...user, { role: 'assistant', content: null, tool_calls: [] }, { role: 'tool', tool_call_id: 'call_1', content: '21 C' }] },
      { tools: [] },
    ] as MockRequest[]) {
      const choice = answer(body);
      expect(choice.finish_reason).toBe('stop');
      expect(choice.message.content).toBe(mockCompletionText(16));
      expect(choice.message).not.toHaveProperty('tool_calls');
    }
  });

  it('streams as OpenAI does: the header with id, type, name and empty arguments, then argument fragments', () => {
    const { deltas, finish, translator } = streamed({ tools: [weatherTool] });
    expect(deltas[0]).toEqual({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: 'call_mock7', type: 'function', function: { name: 'get_weather', arguments: '' } }] });
    const fragments = deltas.slice(1, -1).map((d) => (d.tool_calls as Array<{ index: number; function: { arguments: string } }>)[0]!);
    expect(fragments.length).toBeGreaterThan(3);
    expect(fragments.every((f) => f.index === 0 && f.function.arguments.length > 0)).toBe(true);
    expect(JSON.parse(fragments.map((f) => f.function.arguments).join(''))).toEqual({ city: 'the', days: 1, metric: true });
    expect(finish).toBe('tool_calls');
    // The gateway's translator sees the arguments as generated text, and usage counts one token per fragment.
    expect(translator.completionText.text()).toBe('{"city":"the","days":1,"metric":true}');
    expect(translator.usage!.completion_tokens).toBe(fragments.length);
  });

  it('cuts the arguments at max_tokens with finish_reason length', () => {
    const choice = answer({ tools: [weatherTool], max_tokens: 2 });
    expect(choice.finish_reason).toBe('length');
    expect(choice.message.tool_calls![0]!.function.arguments).toBe('{"city":');
  });

  it('a tool without parameters gets {}', () => {
    expect(answer({ tools: [{ type: 'function', function: { name: 'ping' } }] }).message.tool_calls![0]!.function.arguments).toBe('{}');
  });
});

describe('response_format', () => {
  it('json_object: a JSON object answer of completionTokens words', () => {
    const choice = answer({ response_format: { type: 'json_object' } }, { completionTokens: 5 });
    expect(choice.finish_reason).toBe('stop');
    expect(JSON.parse(choice.message.content!)).toEqual({ answer: mockCompletionText(5).trimEnd() });
  });

  it('json_schema: an object with the schema required properties of every type', () => {
    const schema = {
      type: 'object',
      properties: {
        name: { type: 'string' },
        score: { type: 'number', minimum: 3 },
        count: { type: 'integer' },
        ok: { type: 'boolean' },
        tags: { type: 'array', items: { type: 'string' } },
        owner: { type: 'object', properties: { email: { type: 'string', format: 'email' }, age: { type: ['integer', 'null'] } }, required: ['email', 'age'] },
        level: { enum: ['low', 'high'] },
        kind: { anyOf: [{ type: 'null' }, { $ref: '#/$defs/Kind' }] },
        optional: { type: 'string' },
      },
      required: ['name', 'score', 'count', 'ok', 'tags', 'owner', 'level', 'kind'],
      $defs: { Kind: { type: 'string', const: 'fox' } },
    };
    const choice = answer({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } });
    expect(JSON.parse(choice.message.content!)).toEqual({
      name: 'the', score: 3, count: 1, ok: true, tags: ['quick'], owner: { email: 'owl@example.com', age: 1 }, level: 'low', kind: 'fox',
    });
  });

  it('streams the JSON as content fragments that reassemble to it', () => {
    const { deltas, finish } = streamed({ response_format: { type: 'json_object' } }, { completionTokens: 3 });
    expect(deltas[0]).toEqual({ role: 'assistant', content: '' });
    expect(JSON.parse(deltas.slice(1, -1).map((d) => d.content).join(''))).toEqual({ answer: 'the quick brown' });
    expect(finish).toBe('stop');
  });

  it('tools win over response_format; text is the default', () => {
    expect(answer({ tools: [weatherTool], response_format: { type: 'json_object' } }).finish_reason).toBe('tool_calls');
    expect(answer({ response_format: { type: 'text' } }).message.content).toBe(mockCompletionText(16));
  });

  it('survives hostile schemas: $ref cycles, non-objects, odd types', () => {
    const cyclic = { type: 'object', properties: { next: { $ref: '#' } }, required: ['next'] };
    const a = structuredAnswer({ response_format: { type: 'json_schema', json_schema: { schema: cyclic } } }, 4, 'c', WORDS);
    expect(() => JSON.parse(a!.pieces.join(''))).not.toThrow();
    for (const schema of [{ type: 'weird' }, { properties: 'x', required: [1, 'a'] }, { type: 'array' }]) {
      const b = structuredAnswer({ response_format: { type: 'json_schema', json_schema: { schema } } }, 4, 'c', WORDS);
      expect(() => JSON.parse(b!.pieces.join(''))).not.toThrow();
    }
  });
});

describe('splitPieces', () => {
  it('cuts after structural characters and spaces, never inside an escape, and rejoins exactly', () => {
    const text = JSON.stringify({ a: 'x "y" z', b: [1, 2], c: 'tab\there' });
    const pieces = splitPieces(text);
    expect(pieces.join('')).toBe(text);
    expect(pieces.every((p) => !p.endsWith('\\'))).toBe(true);
    expect(pieces.slice(0, 3)).toEqual(['{', '"a":', '"x ']);
  });
});

describe('usage details', () => {
  const usageOf = (body: MockRequest, over: Partial<MockBehaviour>) => (JSON.parse(completionJson(describeCompletion({ messages: user, ...body }, behaviour(over), 'x'))) as { usage: Record<string, unknown> }).usage;

  it('carries cached_tokens (at most prompt_tokens) and reasoning_tokens only when set', () => {
    expect(usageOf({}, {})).toEqual({ prompt_tokens: 5, completion_tokens: 16, total_tokens: 21 });
    expect(usageOf({}, { cachedPromptTokens: 3, reasoningTokens: 10 })).toEqual({
      prompt_tokens: 5, completion_tokens: 26, total_tokens: 31, prompt_tokens_details: { cached_tokens: 3 }, completion_tokens_details: { reasoning_tokens: 10 },
    });
    expect(usageOf({}, { cachedPromptTokens: 1000 })).toMatchObject({ prompt_tokens: 5, prompt_tokens_details: { cached_tokens: 5 } });
    expect(usageOf({}, { cachedPromptTokens: 0, reasoningTokens: 0 })).toMatchObject({ prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 } });
  });

  it('reasoning counts within max_tokens: the visible answer gets what is left', () => {
    const c = describeCompletion({ messages: user, max_tokens: 12 }, behaviour({ reasoningTokens: 10 }), 'x');
    expect(c).toMatchObject({ completionTokens: 2, reasoningTokens: 10, finishReason: 'length' });
    const json = JSON.parse(completionJson(c)) as { choices: Array<{ message: { content: string } }>; usage: { completion_tokens: number } };
    expect(json.choices[0]!.message.content).toBe(mockCompletionText(2));
    expect(json.usage.completion_tokens).toBe(12);
    expect(describeCompletion({ messages: user, max_tokens: 4 }, behaviour({ reasoningTokens: 10 }), 'x')).toMatchObject({ completionTokens: 0, reasoningTokens: 4 });
  });

  it('the stream usage chunk carries the details too; reasoning delays the first token', () => {
    const plan = planMockResponse({ messages: user, stream: true, stream_options: { include_usage: true } }, behaviour({ reasoningTokens: 5, cachedPromptTokens: 2, tokensPerSecond: 100, ttftMs: 10 }), 'x');
    expect(plan.firstDelayMs).toBe(60);
    const usageFrame = plan.pieces.join('').split('\n\n').filter((f) => f.includes('"usage":{')).at(-1)!;
    expect(JSON.parse(usageFrame.slice(6)).usage).toMatchObject({ completion_tokens: 21, prompt_tokens_details: { cached_tokens: 2 }, completion_tokens_details: { reasoning_tokens: 5 } });
  });
});
