import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { GatewayError } from '../../../../src/errors/gateway-error.js';
import { AnthropicStreamTranslator } from '../../../../src/providers/anthropic/stream.js';
import type { FrameSink, TranslateContext } from '../../../../src/providers/types.js';
import { SseParser } from '../../../../src/streaming/sse-parser.js';
import { seededRandom as random } from '../../../support/seeded-random.js';

const created = 1_700_000_000;

function ctx(clientWantsUsage: boolean): TranslateContext {
  return { requestId: 'req_1', publicModel: 'claude', created, clientWantsUsage };
}

function fixture(name: string): Buffer {
  return readFileSync(new URL(`../../../fixtures/providers/anthropic/${name}`, import.meta.url));
}

interface Run {
  frames: string[];
  translator: AnthropicStreamTranslator;
}

/** Feeds `bytes` cut at `cuts` (sorted byte offsets) through SseParser into a fresh translator. */
function run(bytes: Buffer, cuts: number[], clientWantsUsage = false): Run {
  const frames: string[] = [];
  const sink: FrameSink = { push: (frame) => frames.push(typeof frame === 'string' ? frame : Buffer.from(frame).toString('utf8')) };
  const translator = new AnthropicStreamTranslator(ctx(clientWantsUsage));
  const parser = new SseParser((event) => translator.onEvent(event, sink));
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    // Copies, so the parser cannot lean on the chunks being views of one buffer.
    parser.push(Uint8Array.from(bytes.subarray(from, cut)));
    from = cut;
  }
  parser.end();
  return { frames, translator };
}

interface Reassembled {
  role: string | undefined;
  content: string;
  toolCalls: Array<{ id: string; name: string; arguments: string }>;
  finishReasons: string[];
  usage: unknown;
  done: boolean;
}

/** Reads frames the way an OpenAI client does, checking each frame's shape on the way. */
function reassemble(frames: string[], expectedId: string): Reassembled {
  const out: Reassembled = { role: undefined, content: '', toolCalls: [], finishReasons: [], usage: undefined, done: false };
  frames.forEach((frame, i) => {
    expect(frame.startsWith('data: ') && frame.endsWith('\n\n')).toBe(true);
    const data = frame.slice(6, -2);
    if (data === '[DONE]') {
      expect(i).toBe(frames.length - 1);
      out.done = true;
      return;
    }
    const chunk = JSON.parse(data);
    expect(chunk).toMatchObject({ id: expectedId, object: 'chat.completion.chunk', created, model: 'claude' });
    if (chunk.choices.length === 0) {
      out.usage = chunk.usage;
      return;
    }
    const choice = chunk.choices[0];
    expect(choice).toMatchObject({ index: 0, logprobs: null });
    const delta = choice.delta;
    if (delta.role !== undefined) out.role = delta.role;
    if (typeof delta.content === 'string') out.content += delta.content;
    for (const call of delta.tool_calls ?? []) {
      const slot = (out.toolCalls[call.index] ??= { id: '', name: '', arguments: '' });
      if (call.id) slot.id = call.id;
      if (call.function?.name) slot.name = call.function.name;
      slot.arguments += call.function?.arguments ?? '';
    }
    if (choice.finish_reason !== null) out.finishReasons.push(choice.finish_reason);
  });
  return out;
}

/** Every two-chunk split, then random multi-splits: all must give the frames of the unsplit stream. */
function expectSplitInvariant(bytes: Buffer, clientWantsUsage: boolean): string[] {
  const whole = run(bytes, [], clientWantsUsage).frames;
  for (let k = 0; k <= bytes.length; k++) expect(run(bytes, [k], clientWantsUsage).frames, `split at byte ${k}`).toEqual(whole);
  const next = random(0x5eed);
  for (let i = 0; i < 200; i++) {
    const cuts = Array.from({ length: 1 + Math.floor(next() * 12) }, () => Math.floor(next() * bytes.length)).sort((a, b) => a - b);
    expect(run(bytes, cuts, clientWantsUsage).frames, `cuts ${cuts.join(',')}`).toEqual(whole);
  }
  return whole;
}

describe('AnthropicStreamTranslator', () => {
  it('streams multi-byte UTF-8 text intact at every byte boundary', () => {
    const bytes = fixture('text-utf8.sse');
    const frames = expectSplitInvariant(bytes, false);
    const out = reassemble(frames, 'msg_01TextUtf8Fixture');
    expect(out.role).toBe('assistant');
    expect(out.content).toBe('héllo wörld — 日本語 🎉\n"done"');
    expect(out.toolCalls).toEqual([]);
    expect(out.finishReasons).toEqual(['stop']);
    expect(out.usage).toBeUndefined();
    expect(out.done).toBe(true);
    expect(JSON.parse(frames[0]!.slice(6, -2)).choices[0].delta).toEqual({ role: 'assistant', content: '' });
  });

  it('decodes a character split inside its own bytes (regression: 4-byte emoji across chunks)', () => {
    const bytes = fixture('text-utf8.sse');
    const emoji = bytes.indexOf(Buffer.from('🎉'));
    expect(emoji).toBeGreaterThan(0);
    for (const inside of [1, 2, 3]) {
      expect(reassemble(run(bytes, [emoji + inside]).frames, 'msg_01TextUtf8Fixture').content).toBe('héllo wörld — 日本語 🎉\n"done"');
    }
  });

  it('sends the usage chunk, with cached prompt tokens, only when the client asked for it', () => {
    const bytes = fixture('pings-max-tokens.sse');
    const withUsage = reassemble(expectSplitInvariant(bytes, true), 'msg_01PingFixture');
    expect(withUsage.usage).toEqual({ prompt_tokens: 2105, completion_tokens: 3, total_tokens: 2108, prompt_tokens_details: { cached_tokens: 2000 }, cache_creation_input_tokens: 100 });
    expect(withUsage.content).toBe('Once upon a time');
    expect(withUsage.finishReasons).toEqual(['length']);
    expect(withUsage.done).toBe(true);

    const { frames, translator } = run(bytes, []);
    expect(reassemble(frames, 'msg_01PingFixture').usage).toBeUndefined();
    expect(frames.some((f) => f.includes('"choices":[]'))).toBe(false);
    // Settlement needs usage whether or not the client sees it.
    expect(translator.usage).toEqual({ prompt_tokens: 2105, completion_tokens: 3, total_tokens: 2108, prompt_tokens_details: { cached_tokens: 2000 }, cache_creation_input_tokens: 100 });
    expect(translator.finished).toBe(true);
    expect(translator.completionChars).toBe('Once upon a time'.length);
  });

  it('places the usage chunk after the finish chunk and right before [DONE]', () => {
    const { frames } = run(fixture('text-utf8.sse'), [], true);
    expect(frames.at(-1)).toBe('data: [DONE]\n\n');
    expect(JSON.parse(frames.at(-2)!.slice(6, -2))).toMatchObject({ choices: [], usage: { prompt_tokens: 21, completion_tokens: 14, total_tokens: 35 } });
    expect(JSON.parse(frames.at(-3)!.slice(6, -2)).choices[0]).toEqual({ index: 0, delta: {}, finish_reason: 'stop', logprobs: null });
  });

  it('streams text then two tool calls whose arguments reassemble to the input JSON', () => {
    const bytes = fixture('tool-use.sse');
    const { frames, translator } = run(bytes, []);
    expect(expectSplitInvariant(bytes, false)).toEqual(frames);
    const out = reassemble(frames, 'msg_01ToolUseFixture');
    expect(out.content).toBe("I'll check the weather and the time in Zürich.");
    expect(out.toolCalls.map((c) => ({ ...c, arguments: JSON.parse(c.arguments) }))).toEqual([
      { id: 'toolu_01WeatherCall', name: 'get_weather', arguments: { location: 'Zürich, CH', unit: 'celsius' } },
      { id: 'toolu_02TimeCall', name: 'get_time', arguments: { tz: 'Europe/Zurich' } },
    ]);
    expect(out.finishReasons).toEqual(['tool_calls']);
    expect(out.done).toBe(true);
    expect(translator.usage).toEqual({ prompt_tokens: 472, completion_tokens: 89, total_tokens: 561 });
    // Tool calls are numbered among themselves (0, 1), not by Anthropic block index (1, 2).
    const opening = frames.filter((f) => f.includes('"type":"function"')).map((f) => JSON.parse(f.slice(6, -2)).choices[0].delta.tool_calls[0]);
    expect(opening).toEqual([
      { index: 0, id: 'toolu_01WeatherCall', type: 'function', function: { name: 'get_weather', arguments: '' } },
      { index: 1, id: 'toolu_02TimeCall', type: 'function', function: { name: 'get_time', arguments: '' } },
    ]);
    expect(translator.completionChars).toBe(
      "I'll check the weather and the time in Zürich.".length + '{"location": "Zürich, CH", "unit": "celsius"}'.length + '{"tz": "Europe/Zurich"}'.length,
    );
  });

  it('throws NR_UPSTREAM_ERROR with the upstream message on an error event, after the text before it', () => {
    const bytes = fixture('error-mid-stream.sse');
    for (const cuts of [[], [bytes.indexOf('event: error') + 3], [bytes.length - 5]]) {
      const frames: string[] = [];
      const translator = new AnthropicStreamTranslator(ctx(true));
      const parser = new SseParser((event) => translator.onEvent(event, { push: (f) => frames.push(String(f)) }));
      let err: unknown;
      try {
        let from = 0;
        for (const cut of [...cuts, bytes.length]) {
          parser.push(bytes.subarray(from, cut));
          from = cut;
        }
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).code).toBe('NR_UPSTREAM_ERROR');
      expect((err as GatewayError).message).toBe('Overloaded');
      expect((err as GatewayError).cause).toMatchObject({ event: 'error' });
      expect(reassemble(frames, 'msg_01ErrorFixture').content).toBe('Partial answer');
      expect(translator.finished).toBe(false);
      expect(translator.usage).toBeUndefined();
    }
  });

  it('treats an error payload under the default event name as an upstream error too', () => {
    const translator = new AnthropicStreamTranslator(ctx(false));
    const data = '{"type":"error","error":{"type":"api_error","message":"Internal server error"}}';
    expect(() => translator.onEvent({ event: undefined, data }, { push: () => {} })).toThrow(expect.objectContaining({ code: 'NR_UPSTREAM_ERROR' }));
  });

  it('throws NR_UPSTREAM_BAD_RESPONSE on unreadable data or content before message_start', () => {
    const sink = { push: () => {} };
    const bad = (data: string) => () => new AnthropicStreamTranslator(ctx(false)).onEvent({ event: 'content_block_delta', data }, sink);
    expect(bad('{"type":"content_block_delta",')).toThrow(expect.objectContaining({ code: 'NR_UPSTREAM_BAD_RESPONSE' }));
    expect(bad('{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}')).toThrow(
      expect.objectContaining({ code: 'NR_UPSTREAM_BAD_RESPONSE' }),
    );
  });

  it('passes thinking on as reasoning_content and thinking_blocks, skips unknown events, and distrusts garbage usage', () => {
    const frames: string[] = [];
    const sink: FrameSink = { push: (f) => frames.push(String(f)) };
    const translator = new AnthropicStreamTranslator(ctx(true));
    const events: Array<[string, unknown]> = [
      ['message_start', { type: 'message_start', message: { id: 'msg_x', usage: { input_tokens: 7, cache_read_input_tokens: null, output_tokens: 1 } } }],
      ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '' } }],
      ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'hmm' } }],
      ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'sig' } }],
      ['content_block_start', { type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } }],
      ['content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'ok' } }],
      ['some_future_event', { type: 'some_future_event' }],
      ['message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: -5 } }],
      ['message_stop', { type: 'message_stop' }],
    ];
    for (const [event, data] of events) translator.onEvent({ event, data: JSON.stringify(data) }, sink);
    const out = reassemble(frames, 'msg_x');
    expect(out.content).toBe('ok');
    expect(out.finishReasons).toEqual(['stop']);
    expect(translator.usage).toBeUndefined();
    expect(out.usage).toBeUndefined();
    // Thinking is generated text: it counts toward the estimate when usage is missing.
    expect(translator.completionChars).toBe(5);
    const deltas = frames.filter((f) => f.startsWith('data: {')).map((f) => JSON.parse(f.slice(6)).choices[0]?.delta);
    expect(deltas).toContainEqual({ reasoning_content: 'hmm' });
    expect(deltas).toContainEqual({ thinking_blocks: [{ type: 'thinking', thinking: '', signature: 'sig' }] });
  });

  it('translates a recorded thinking and tool-use stream cut anywhere: the thinking, its signature, then text and tool input', () => {
    const bytes = fixture('thinking-tool-use.sse');
    const next = random(0x7a1c);
    for (let trial = 0; trial < 20; trial++) {
      const cuts = Array.from({ length: 12 }, () => Math.floor(next() * bytes.length)).sort((a, b) => a - b);
      const { frames, translator } = run(bytes, cuts, true);
      let reasoning = '';
      const signatures: string[] = [];
      const order: string[] = [];
      for (const frame of frames) {
        if (!frame.startsWith('data: {')) continue;
        const delta = JSON.parse(frame.slice(6)).choices[0]?.delta ?? {};
        if (delta.reasoning_content) (reasoning += delta.reasoning_content), order.push('thinking');
        for (const block of delta.thinking_blocks ?? []) signatures.push(block.signature), order.push('signature');
        if (delta.content) order.push('text');
      }
      expect(reasoning).toBe('The user wants the weather in Zürich. I should call get_weather with the city.');
      expect(signatures).toEqual([expect.stringMatching(/^EqQBCgIYAh/)]);
      expect(order.indexOf('signature')).toBeLessThan(order.indexOf('text'));
      const out = reassemble(frames, 'msg_01ThinkingToolFixture');
      expect(out.content).toBe('Let me check the weather.');
      expect(out.toolCalls).toEqual([{ id: 'toolu_01ThinkWeather', name: 'get_weather', arguments: '{"city": "Zürich"}' }]);
      expect(out.finishReasons).toEqual(['tool_calls']);
      expect(translator.usage).toEqual({ prompt_tokens: 512, completion_tokens: 87, total_tokens: 599 });
    }
  });

  it('emits nothing for ping events', () => {
    const frames: string[] = [];
    const translator = new AnthropicStreamTranslator(ctx(false));
    translator.onEvent({ event: 'ping', data: '{"type":"ping"}' }, { push: (f) => frames.push(String(f)) });
    expect(frames).toEqual([]);
    expect(translator.finished).toBe(false);
  });
});
