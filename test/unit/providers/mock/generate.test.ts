import { describe, it, expect } from 'vitest';
import type { MockBehaviour } from '../../../../src/config/schema.js';
import {
  ABSURD_COMPLETION_TOKENS,
  DONE_FRAME,
  MALFORMED_FRAME,
  completionJson,
  describeCompletion,
  mockCompletionText,
  mockPromptTokens,
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
