import { describe, it, expect } from 'vitest';
import type { MockBehaviour } from '../../../../src/config/schema.js';
import {
  ABSURD_COMPLETION_TOKENS,
  DEFAULT_REASONING_TOKENS,
  DONE_FRAME,
  MALFORMED_FRAME,
  completionJson,
  describeCompletion,
  mockCompletionText,
  mockPromptTokens,
  mockReasoningText,
  planMockResponse,
  streamFrames,
  type MockRequest,
} from '../../../../src/providers/mock/generate.js';
import { OpenAiStreamTranslator } from '../../../../src/providers/openai-compatible/stream.js';
import { SseParser } from '../../../../src/streaming/sse-parser.js';

const behaviour = (over: Partial<MockBehaviour> = {}): MockBehaviour => ({ ttftMs: 0, tokensPerSecond: 0, completionTokens: 16, reportUsage: true, fault: 'none', ...over });
const messages = [{ role: 'user' as const, content: 'hello there, mock' }];

interface Chunk {
  object: string;
  model: string;
  choices: Array<{ index: number; delta: { role?: string; content?: string }; finish_reason: string | null }>;
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
}

function parseFrames(frames: string[]): { chunks: Chunk[]; done: boolean } {
  const chunks: Chunk[] = [];
  let done = false;
  for (const frame of frames) {
    expect(frame.startsWith('data: ')).toBe(true);
    expect(frame.endsWith('\n\n')).toBe(true);
    const data = frame.slice(6, -2);
    if (data === '[DONE]') done = true;
    else chunks.push(JSON.parse(data) as Chunk);
  }
  return { chunks, done };
}

function frames(body: MockRequest, over: Partial<MockBehaviour> = {}): string[] {
  return streamFrames(describeCompletion({ messages, stream: true, ...body }, behaviour(over), 'chatcmpl-t', 1_700_000_000));
}

describe('mockCompletionText', () => {
  it('is deterministic words-plus-space, cycling through the word list', () => {
    expect(mockCompletionText(0)).toBe('');
    expect(mockCompletionText(3)).toBe('the quick brown ');
    expect(mockCompletionText(18)).toBe(mockCompletionText(16) + 'the quick ');
    expect(mockCompletionText(40).split(' ')).toHaveLength(41);
  });
});

describe('mockPromptTokens', () => {
  it('estimates ceil(UTF-8 bytes / 4) over string and text-part contents, at least 1', () => {
    expect(mockPromptTokens([{ role: 'user', content: 'abcde' }])).toBe(2);
    expect(mockPromptTokens([{ role: 'user', content: 'é'.repeat(4) }])).toBe(2); // 8 bytes
    expect(mockPromptTokens([{ role: 'system', content: 'abcd' }, { role: 'user', content: [{ type: 'text', text: 'abcd' }, { type: 'image_url', image_url: { url: 'x' } }] }])).toBe(2);
    expect(mockPromptTokens([])).toBe(1);
    expect(mockPromptTokens(undefined)).toBe(1);
  });
});

describe('completionJson', () => {
  it('is a chat.completion with the full text, the request model and usage', () => {
    const c = describeCompletion({ model: 'gpt-x', messages }, behaviour(), 'chatcmpl-1');
    const json = JSON.parse(completionJson(c));
    expect(json).toMatchObject({ id: 'chatcmpl-1', object: 'chat.completion', model: 'gpt-x' });
    expect(json.choices[0]).toMatchObject({ index: 0, message: { role: 'assistant', content: mockCompletionText(16) }, finish_reason: 'stop' });
    expect(json.usage).toEqual({ prompt_tokens: 5, completion_tokens: 16, total_tokens: 21 });
  });

  it('cuts at max_tokens or max_completion_tokens with finish_reason length', () => {
    for (const body of [{ max_tokens: 5 }, { max_completion_tokens: 5 }, { max_tokens: 9, max_completion_tokens: 5 }]) {
      const json = JSON.parse(completionJson(describeCompletion({ messages, ...body }, behaviour(), 'x')));
      expect(json.choices[0].message.content).toBe(mockCompletionText(5));
      expect(json.choices[0].finish_reason).toBe('length');
      expect(json.usage.completion_tokens).toBe(5);
    }
  });

  it('stops normally when max_tokens is at or above the behaviour length', () => {
    const json = JSON.parse(completionJson(describeCompletion({ messages, max_tokens: 16 }, behaviour(), 'x')));
    expect(json.choices[0].finish_reason).toBe('stop');
  });

  it('omits usage when reportUsage is false', () => {
    const json = JSON.parse(completionJson(describeCompletion({ messages }, behaviour({ reportUsage: false }), 'x')));
    expect(json).not.toHaveProperty('usage');
  });
});

describe('streamFrames', () => {
  it('sends role, one chunk per token, finish, [DONE], and no usage unless asked', () => {
    const f = frames({ model: 'm' }, { completionTokens: 4 });
    const { chunks, done } = parseFrames(f);
    expect(done).toBe(true);
    expect(f.at(-1)).toBe(DONE_FRAME);
    expect(chunks).toHaveLength(6);
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
    expect(chunks.slice(1, 5).map((c) => c.choices[0]!.delta)).toEqual(['the ', 'quick ', 'brown ', 'fox '].map((content) => ({ content })));
    expect(chunks[5]!.choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' });
    for (const chunk of chunks) {
      expect(chunk).toMatchObject({ object: 'chat.completion.chunk', model: 'm' });
      expect(chunk).not.toHaveProperty('usage');
    }
  });

  it('with include_usage: usage:null on every chunk, then a choices:[] usage chunk before [DONE]', () => {
    const { chunks } = parseFrames(frames({ stream_options: { include_usage: true } }, { completionTokens: 3 }));
    const usageChunk = chunks.at(-1)!;
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage).toEqual({ prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 });
    for (const chunk of chunks.slice(0, -1)) expect(chunk.usage).toBeNull();
  });

  it('with include_usage but reportUsage off: no usage chunk', () => {
    const { chunks } = parseFrames(frames({ stream_options: { include_usage: true } }, { completionTokens: 3, reportUsage: false }));
    expect(chunks.every((c) => c.choices.length === 1)).toBe(true);
  });

  it('finishes with length when max_tokens cuts the stream', () => {
    const { chunks } = parseFrames(frames({ max_tokens: 2 }));
    expect(chunks).toHaveLength(4);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('length');
  });

  it('reassembles through the SSE parser and the OpenAI translator to mockCompletionText', () => {
    const bytes = Buffer.from(frames({ stream_options: { include_usage: true } }, { completionTokens: 40 }).join(''));
    const translator = new OpenAiStreamTranslator({ requestId: 'r', publicModel: 'm', created: 0, clientWantsUsage: true });
    const out: string[] = [];
    const parser = new SseParser((event) => translator.onEvent(event, { push: (frame) => out.push(String(frame)) }));
    for (let i = 0; i < bytes.length; i += 7) parser.push(bytes.subarray(i, i + 7));
    const text = out
      .filter((frame) => !frame.includes('[DONE]'))
      .map((frame) => (JSON.parse(frame.slice(6)) as Chunk).choices[0]?.delta.content ?? '')
      .join('');
    expect(text).toBe(mockCompletionText(40));
    expect(translator.finished).toBe(true);
    expect(translator.usage).toEqual({ prompt_tokens: 5, completion_tokens: 40, total_tokens: 45 });
  });
});

describe('planMockResponse', () => {
  const streamBody: MockRequest = { model: 'm', messages, stream: true };

  it('sends a whole stream as one piece at 0 tokens/s, one piece per token otherwise', () => {
    const batched = planMockResponse(streamBody, behaviour({ completionTokens: 8, ttftMs: 30 }), 'x');
    expect(batched).toMatchObject({ status: 200, firstDelayMs: 30, intervalMs: 0, ending: 'end' });
    expect(batched.pieces).toHaveLength(1);
    const paced = planMockResponse(streamBody, behaviour({ completionTokens: 8, tokensPerSecond: 100 }), 'x');
    expect(paced.intervalMs).toBe(10);
    expect(paced.pieces).toHaveLength(8);
    expect(paced.pieces.join('')).toBe(batched.pieces[0]);
    expect(paced.headers['content-type']).toMatch(/^text\/event-stream/);
  });

  it('delays a non-stream answer by the whole generation time', () => {
    const plan = planMockResponse({ messages }, behaviour({ completionTokens: 10, tokensPerSecond: 100, ttftMs: 5 }), 'x');
    expect(plan.firstDelayMs).toBe(105);
    expect(plan.headers['content-length']).toBe(String(Buffer.byteLength(plan.pieces[0]!)));
  });

  it('http-429 and http-500 answer with OpenAI error bodies', () => {
    const limited = planMockResponse(streamBody, behaviour({ fault: 'http-429' }), 'x');
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toBe('1');
    expect(JSON.parse(limited.pieces[0]!).error.code).toBe('rate_limit_exceeded');
    const failed = planMockResponse(streamBody, behaviour({ fault: 'http-500' }), 'x');
    expect(failed.status).toBe(500);
    expect(JSON.parse(failed.pieces[0]!).error.type).toBe('server_error');
  });

  it('timeout never answers', () => {
    expect(planMockResponse(streamBody, behaviour({ fault: 'timeout' }), 'x').ending).toBe('hang');
  });

  it('cut and stall stop after half the tokens', () => {
    for (const fault of ['cut-mid-stream', 'stall-mid-stream'] as const) {
      const plan = planMockResponse(streamBody, behaviour({ completionTokens: 8, fault }), 'x');
      expect(plan.ending).toBe(fault === 'cut-mid-stream' ? 'cut' : 'stall');
      const { chunks, done } = parseFrames(plan.pieces.join('').split(/(?<=\n\n)/));
      expect(done).toBe(false);
      expect(chunks.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe(mockCompletionText(4));
    }
  });

  it('malformed-sse inserts a broken frame halfway; no-done drops [DONE]', () => {
    const malformed = planMockResponse(streamBody, behaviour({ completionTokens: 8, fault: 'malformed-sse', tokensPerSecond: 50 }), 'x');
    expect(malformed.pieces[3]!.endsWith(MALFORMED_FRAME)).toBe(true);
    expect(malformed.pieces.at(-1)!.endsWith(DONE_FRAME)).toBe(true);
    const noDone = planMockResponse(streamBody, behaviour({ fault: 'no-done' }), 'x');
    expect(noDone.ending).toBe('end');
    expect(noDone.pieces.join('')).not.toContain('[DONE]');
    expect(noDone.pieces.join('')).toContain('"finish_reason":"stop"');
  });

  it('absurd-usage claims 10^12 completion tokens in the usage, stream and not, with the true text', () => {
    const answer = JSON.parse(planMockResponse({ messages, max_tokens: 4 }, behaviour({ fault: 'absurd-usage' }), 'x').pieces[0]!) as {
      choices: Array<{ message: { content: string } }>;
      usage: { completion_tokens: number; total_tokens: number; prompt_tokens: number };
    };
    expect(answer.choices[0]!.message.content).toBe(mockCompletionText(4));
    expect(answer.usage).toEqual({ prompt_tokens: mockPromptTokens(messages), completion_tokens: ABSURD_COMPLETION_TOKENS, total_tokens: mockPromptTokens(messages) + ABSURD_COMPLETION_TOKENS });
    const stream = planMockResponse({ ...streamBody, stream_options: { include_usage: true }, max_tokens: 4 }, behaviour({ fault: 'absurd-usage' }), 'x');
    expect(stream.ending).toBe('end');
    const { chunks, done } = parseFrames(stream.pieces.join('').split(/(?<=\n\n)/));
    expect(done).toBe(true);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(mockCompletionText(4));
    expect(chunks.at(-1)!.usage!.completion_tokens).toBe(ABSURD_COMPLETION_TOKENS);
  });

  it('non-stream faults truncate the JSON body', () => {
    const cut = planMockResponse({ messages }, behaviour({ fault: 'cut-mid-stream' }), 'x');
    expect(cut.ending).toBe('cut');
    expect(Number(cut.headers['content-length'])).toBeGreaterThan(Buffer.byteLength(cut.pieces[0]!));
    const malformed = planMockResponse({ messages }, behaviour({ fault: 'malformed-sse' }), 'x');
    expect(malformed.ending).toBe('end');
    expect(() => JSON.parse(malformed.pieces[0]!)).toThrow();
    expect(malformed.headers['content-length']).toBe(String(Buffer.byteLength(malformed.pieces[0]!)));
  });
});

describe('reasoning text', () => {
  interface Message { content: string | null; reasoning_content?: string; tool_calls?: Array<{ id: string; function: { name: string; arguments: string } }> }
  const answer = (body: MockRequest, over: Partial<MockBehaviour> = {}) => {
    const json = JSON.parse(completionJson(describeCompletion({ messages, ...body }, behaviour(over), 'chatcmpl-t', 1_700_000_000))) as {
      choices: Array<{ message: Message; finish_reason: string }>;
      usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number; completion_tokens_details?: { reasoning_tokens: number } };
    };
    return { message: json.choices[0]!.message, finish: json.choices[0]!.finish_reason, usage: json.usage };
  };
  const deltas = (f: string[]) => parseFrames(f).chunks.map((c) => c.choices[0]?.delta as (Record<string, unknown> & { reasoning_content?: string }) | undefined);

  it('mockReasoningText is deterministic and other words than the answer', () => {
    expect(mockReasoningText(3)).toBe('first i read ');
    expect(mockReasoningText(18)).toBe(mockReasoningText(16) + 'first i ');
    expect(mockReasoningText(16)).not.toContain('fox');
  });

  it('reasoning_effort: reasoning_content before the answer, counted in completion_tokens and reported as reasoning tokens', () => {
    const { message, finish, usage } = answer({ reasoning_effort: 'low' });
    expect(message.reasoning_content).toBe(mockReasoningText(DEFAULT_REASONING_TOKENS));
    expect(message.content).toBe(mockCompletionText(16));
    expect(finish).toBe('stop');
    expect(usage).toEqual({ prompt_tokens: 5, completion_tokens: 16 + DEFAULT_REASONING_TOKENS, total_tokens: 5 + 16 + DEFAULT_REASONING_TOKENS, completion_tokens_details: { reasoning_tokens: DEFAULT_REASONING_TOKENS } });
  });

  it('thinking: bounded by budget_tokens; the behaviour reasoningTokens sets the length', () => {
    expect(answer({ thinking: { type: 'enabled', budget_tokens: 5 } }).message.reasoning_content).toBe(mockReasoningText(5));
    expect(answer({ thinking: { type: 'enabled', budget_tokens: 1024 } }, { reasoningTokens: 7 }).usage.completion_tokens_details).toEqual({ reasoning_tokens: 7 });
    expect(answer({ reasoning_effort: 'high' }, { reasoningTokens: 7 }).message.reasoning_content).toBe(mockReasoningText(7));
  });

  it('within max_tokens: the reasoning goes first, the answer gets what is left', () => {
    const { message, finish, usage } = answer({ reasoning_effort: 'low', max_tokens: 20 });
    expect(message.reasoning_content).toBe(mockReasoningText(16));
    expect(message.content).toBe(mockCompletionText(4));
    expect(finish).toBe('length');
    expect(usage.completion_tokens).toBe(20);
  });

  it('is not shown when not asked (thinking disabled, reasoning_effort none), nor with reasoningText never: the same bytes as before', () => {
    const plain = completionJson(describeCompletion({ messages }, behaviour({ reasoningTokens: 3 }), 'chatcmpl-t', 1));
    for (const [body, over] of [
      [{ thinking: { type: 'disabled' } }, {}],
      [{ reasoning_effort: 'none' }, {}],
      [{ reasoning_effort: 'low' }, { reasoningText: 'never' }],
      [{ thinking: { type: 'enabled', budget_tokens: 2 } }, { reasoningText: 'never' }],
    ] as const) {
      expect(completionJson(describeCompletion({ messages, ...body }, behaviour({ reasoningTokens: 3, ...over }), 'chatcmpl-t', 1))).toBe(plain);
      const streamed = (b: MockRequest) => streamFrames(describeCompletion({ messages, stream: true, ...b }, behaviour({ reasoningTokens: 3, ...over }), 'chatcmpl-t', 1)).join('');
      expect(streamed(body)).toBe(streamed({}));
    }
    expect(plain).not.toContain('reasoning_content');
  });

  it('reasoningText always: every answer reasons', () => {
    expect(answer({}, { reasoningText: 'always', reasoningTokens: 4 }).message.reasoning_content).toBe(mockReasoningText(4));
  });

  it('streams reasoning_content chunks first, then the content, which reassemble through the OpenAI translator', () => {
    const f = frames({ reasoning_effort: 'medium', stream_options: { include_usage: true } }, { completionTokens: 3, reasoningTokens: 4 });
    const d = deltas(f);
    expect(d[0]).toEqual({ role: 'assistant', content: '' });
    expect(d.slice(1, 5)).toEqual(['first ', 'i ', 'read ', 'the '].map((reasoning_content) => ({ reasoning_content })));
    expect(d.slice(5, 8)).toEqual(['the ', 'quick ', 'brown '].map((content) => ({ content })));
    const translator = new OpenAiStreamTranslator({ requestId: 'r', publicModel: 'm', created: 0, clientWantsUsage: true });
    const out: string[] = [];
    const parser = new SseParser((event) => translator.onEvent(event, { push: (frame) => out.push(String(frame)) }));
    parser.push(Buffer.from(f.join('')));
    expect(translator.usage).toEqual({ prompt_tokens: 5, completion_tokens: 7, total_tokens: 12, completion_tokens_details: { reasoning_tokens: 4 } });
    const passed = out.filter((frame) => frame.startsWith('data: {')).map((frame) => JSON.parse(frame.slice(6)) as { choices: Array<{ delta: { reasoning_content?: string; content?: string } }> });
    expect(passed.map((c) => c.choices[0]?.delta.reasoning_content ?? '').join('')).toBe(mockReasoningText(4));
    expect(passed.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(mockCompletionText(3));
  });

  it('a tool call after reasoning: its id and name ride with the first argument fragment, never before the reasoning', () => {
    const tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] } } }];
    const f = frames({ tools, reasoning_effort: 'low' }, { reasoningTokens: 2 });
    const d = deltas(f);
    expect(d[0]).toEqual({ role: 'assistant', content: null });
    expect(d.slice(1, 3)).toEqual([{ reasoning_content: 'first ' }, { reasoning_content: 'i ' }]);
    expect(d[3]).toMatchObject({ tool_calls: [{ index: 0, id: 'call_t', type: 'function', function: { name: 'lookup' } }] });
    const args = d.flatMap((x) => (x?.tool_calls as Array<{ function: { arguments: string } }> | undefined) ?? []).map((c) => c.function.arguments).join('');
    const complete = answer({ tools, reasoning_effort: 'low' }, { reasoningTokens: 2 });
    expect(args).toBe(complete.message.tool_calls![0]!.function.arguments);
    expect(complete.message.reasoning_content).toBe(mockReasoningText(2));
    expect(parseFrames(f).chunks.at(-1)!.choices[0]!.finish_reason).toBe('tool_calls');
  });

  it('paced: shown reasoning streams one token a piece from the first byte; hidden reasoning delays the first token', () => {
    const body: MockRequest = { messages, stream: true, reasoning_effort: 'low' };
    const shown = planMockResponse(body, behaviour({ completionTokens: 4, reasoningTokens: 3, tokensPerSecond: 100, ttftMs: 5 }), 'x');
    expect(shown.firstDelayMs).toBe(5);
    expect(shown.pieces).toHaveLength(7);
    const hidden = planMockResponse({ ...body, reasoning_effort: undefined }, behaviour({ completionTokens: 4, reasoningTokens: 3, tokensPerSecond: 100, ttftMs: 5 }), 'x');
    expect(hidden.firstDelayMs).toBe(35);
    expect(hidden.pieces).toHaveLength(4);
    const complete = planMockResponse({ messages, reasoning_effort: 'low' }, behaviour({ completionTokens: 4, reasoningTokens: 3, tokensPerSecond: 100, ttftMs: 5 }), 'x');
    expect(complete.firstDelayMs).toBe(75);
  });
});
