import { describe, it, expect } from 'vitest';
import { GatewayError } from '../../../src/errors/gateway-error.js';
import { requestedMaxTokens, validateChatRequest } from '../../../src/http/validate-chat-request.js';
import type { ChatRequest } from '../../../src/providers/types.js';

const user = { role: 'user', content: 'hi' };
/** A valid body with `patch` applied on top. */
const body = (patch: Record<string, unknown> = {}) => ({ model: 'gpt', messages: [user], ...patch });
const withMessage = (message: unknown) => body({ messages: [message] });
const withContent = (content: unknown) => withMessage({ role: 'user', content });
const tool = (fn: Record<string, unknown>) => ({ type: 'function', function: fn });

const INVALID: Array<[name: string, input: unknown, param: string | null]> = [
  ['non-object body (string)', 'hello', null],
  ['non-object body (null)', null, null],
  ['non-object body (number)', 42, null],
  ['array body', [body()], null],
  ['model missing', { messages: [user] }, 'model'],
  ['model a number', body({ model: 4 }), 'model'],
  ['model empty', body({ model: '' }), 'model'],
  ['messages missing', { model: 'gpt' }, 'messages'],
  ['messages not an array', body({ messages: { 0: user } }), 'messages'],
  ['messages empty', body({ messages: [] }), 'messages'],
  ['message not an object', body({ messages: [user, 'hi'] }), 'messages[1]'],
  ['message null', withMessage(null), 'messages[0]'],
  ['bad role', withMessage({ role: 'robot', content: 'x' }), 'messages[0].role'],
  ['role missing', withMessage({ content: 'x' }), 'messages[0].role'],
  ['name not a string', withMessage({ role: 'user', content: 'x', name: 5 }), 'messages[0].name'],
  ['user content null', withContent(null), 'messages[0].content'],
  ['user content missing', withMessage({ role: 'user' }), 'messages[0].content'],
  ['content a number', withContent(5), 'messages[0].content'],
  ['content an object', withContent({ type: 'text', text: 'x' }), 'messages[0].content'],
  ['content part not an object', withContent(['x']), 'messages[0].content[0]'],
  ['part type input_audio', withContent([{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }]), 'messages[0].content[0].type'],
  ['part type file', withContent([{ type: 'file', file: { file_id: 'f' } }]), 'messages[0].content[0].type'],
  ['part type unknown', withContent([{ type: 'text', text: 'ok' }, { type: 'video' }]), 'messages[0].content[1].type'],
  ['part without type', withContent([{ text: 'x' }]), 'messages[0].content[0].type'],
  ['text part without text', withContent([{ type: 'text' }]), 'messages[0].content[0].text'],
  ['text part with numeric text', withContent([{ type: 'text', text: 1 }]), 'messages[0].content[0].text'],
  ['image_url without url', withContent([{ type: 'image_url', image_url: {} }]), 'messages[0].content[0].image_url'],
  ['image_url with empty url', withContent([{ type: 'image_url', image_url: { url: '' } }]), 'messages[0].content[0].image_url'],
  ['image_url as a string', withContent([{ type: 'image_url', image_url: 'https://x/y.png' }]), 'messages[0].content[0].image_url'],
  ['tool message without tool_call_id', body({ messages: [user, { role: 'tool', content: '42' }] }), 'messages[1].tool_call_id'],
  ['assistant tool_calls not an array', withMessage({ role: 'assistant', content: null, tool_calls: {} }), 'messages[0].tool_calls'],
  ['assistant tool_call without id', withMessage({ role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: 'f', arguments: '{}' } }] }), 'messages[0].tool_calls[0]'],
  ['assistant tool_call with object arguments', withMessage({ role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: {} } }] }), 'messages[0].tool_calls[0]'],
  ['assistant tool_call of wrong type', withMessage({ role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'code', function: { name: 'f', arguments: '{}' } }] }), 'messages[0].tool_calls[0]'],
  ['stream not boolean', body({ stream: 'true' }), 'stream'],
  ['stream_options without stream', body({ stream_options: { include_usage: true } }), 'stream_options'],
  ['stream_options with stream false', body({ stream: false, stream_options: { include_usage: true } }), 'stream_options'],
  ['stream_options not an object', body({ stream: true, stream_options: true }), 'stream_options'],
  ['include_usage not boolean', body({ stream: true, stream_options: { include_usage: 'yes' } }), 'stream_options.include_usage'],
  ['max_tokens 0', body({ max_tokens: 0 }), 'max_tokens'],
  ['max_tokens -1', body({ max_tokens: -1 }), 'max_tokens'],
  ['max_tokens 1.5', body({ max_tokens: 1.5 }), 'max_tokens'],
  ['max_tokens "10"', body({ max_tokens: '10' }), 'max_tokens'],
  ['max_tokens 2**60', body({ max_tokens: 2 ** 60 }), 'max_tokens'],
  ['max_tokens NaN', body({ max_tokens: NaN }), 'max_tokens'],
  ['max_completion_tokens -5', body({ max_completion_tokens: -5 }), 'max_completion_tokens'],
  ['temperature 3', body({ temperature: 3 }), 'temperature'],
  ['temperature -1', body({ temperature: -1 }), 'temperature'],
  ['temperature "hot"', body({ temperature: 'hot' }), 'temperature'],
  ['temperature NaN', body({ temperature: NaN }), 'temperature'],
  ['top_p 2', body({ top_p: 2 }), 'top_p'],
  ['presence_penalty 3', body({ presence_penalty: 3 }), 'presence_penalty'],
  ['frequency_penalty -2.5', body({ frequency_penalty: -2.5 }), 'frequency_penalty'],
  ['n 2', body({ n: 2 }), 'n'],
  ['stop with 5 strings', body({ stop: ['a', 'b', 'c', 'd', 'e'] }), 'stop'],
  ['stop a number', body({ stop: 5 }), 'stop'],
  ['stop with a non-string', body({ stop: ['a', 1] }), 'stop'],
  ['tools not an array', body({ tools: tool({ name: 'f' }) }), 'tools'],
  ['tool with a bad name', body({ tools: [tool({ name: 'f' }), tool({ name: 'has space' })] }), 'tools[1]'],
  ['tool with a name too long', body({ tools: [tool({ name: 'x'.repeat(65) })] }), 'tools[0]'],
  ['tool without function', body({ tools: [{ type: 'function' }] }), 'tools[0]'],
  ['tool of wrong type', body({ tools: [{ type: 'retrieval', function: { name: 'f' } }] }), 'tools[0]'],
  ['tool parameters not an object', body({ tools: [tool({ name: 'f', parameters: 'schema' })] }), 'tools[0].function.parameters'],
  ['tool parameters an array', body({ tools: [tool({ name: 'f', parameters: [] })] }), 'tools[0].function.parameters'],
  ['user a number', body({ user: 7 }), 'user'],
  // Keys differing only in case: a parser matching names without case (Go's) may read the one never checked or paid for.
  ['message content twice, in two cases', withMessage({ role: 'user', content: 'checked', Content: 'never checked' }), 'messages[0]'],
  ['text part text twice, in two cases', withContent([{ type: 'text', text: 'checked', TEXT: 'never checked' }]), 'messages[0].content[0]'],
  ['image part type twice, in two cases', withContent([{ type: 'image_url', image_url: { url: 'https://x/y.png' }, Type: 'text', text: 'never checked' }]), 'messages[0].content[0]'],
  ['image_url url twice, in two cases', withContent([{ type: 'image_url', image_url: { url: 'https://x/y.png', URL: 'https://z' } }]), 'messages[0].content[0].image_url'],
  ['tool call arguments twice, in two cases', withMessage({ role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}', Arguments: '{"x":1}' } }] }), 'messages[0].tool_calls[0].function'],
  ['tool description twice, in two cases', body({ tools: [tool({ name: 'f', description: 'checked', Description: 'never checked' })] }), 'tools[0].function'],
  ['max_tokens twice, in two cases', body({ max_tokens: 16, MAX_TOKENS: 100_000 }), null],
  ['messages twice, in two cases', body({ Messages: [{ role: 'user', content: 'never checked' }] }), null],
  ['include_usage twice, in two cases', body({ stream: true, stream_options: { include_usage: true, Include_Usage: false } }), 'stream_options'],
  ['a long s standing for s', withMessage({ role: 'user', content: 'checked', '\u017ftream': 'x', stream: 'y' }), 'messages[0]'],
];

describe('validateChatRequest rejects', () => {
  it('has a table of at least 30 invalid bodies', () => {
    expect(INVALID.length).toBeGreaterThanOrEqual(30);
  });

  it.each(INVALID)('%s', (_name, input, param) => {
    let thrown: unknown;
    try {
      validateChatRequest(input);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(GatewayError);
    const err = thrown as GatewayError;
    expect(err.code).toBe('NR_INVALID_REQUEST');
    expect(err.status).toBe(400);
    expect(err.param).toBe(param);
    expect(err.message.length).toBeGreaterThan(0);
  });
});

describe('validateChatRequest accepts', () => {
  const VALID: Array<[name: string, input: Record<string, unknown>]> = [
    ['string content', body()],
    ['every role', body({ messages: [{ role: 'system', content: 's' }, { role: 'developer', content: 'd' }, user, { role: 'assistant', content: 'a' }] })],
    ['content parts', withContent([{ type: 'text', text: 'what is this?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA', detail: 'low' } }])],
    ['empty string content and empty parts', body({ messages: [{ role: 'user', content: '' }, { role: 'user', content: [] }] })],
    [
      'assistant with tool_calls and null content, then the tool answer',
      body({
        messages: [
          user,
          { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
          { role: 'tool', tool_call_id: 'call_1', content: '{"temp":21}' },
        ],
        tools: [tool({ name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: {} } })],
        tool_choice: 'auto',
      }),
    ],
    ['assistant with content missing', withMessage({ role: 'assistant' })],
    ['stream with include_usage', body({ stream: true, stream_options: { include_usage: true } })],
    ['stream with null stream_options', body({ stream: false, stream_options: null })],
    ['nulls for optional fields', body({ max_tokens: null, temperature: null, top_p: null, n: null, stop: null, tools: null, user: null, stream: null })],
    ['bounds at their limits', body({ max_tokens: 1, max_completion_tokens: Number.MAX_SAFE_INTEGER, temperature: 2, top_p: 0, presence_penalty: -2, frequency_penalty: 2, n: 1 })],
    ['stop as a string and as 4 strings', body({ stop: ['a', 'b', 'c', 'd'] })],
    ['unknown extra fields', body({ response_format: { type: 'json_object' }, seed: 7, logit_bias: { 1: 2 }, metadata: { a: 'b' }, user: 'u-1' })],
    ['keys in upper case that collide with none', body({ metadata: { Team: 'a', team_id: 'b' }, messages: [{ role: 'user', content: 'x', Name_Tag: 'n' }] })],
    ['a tool schema naming properties in two cases', body({ tools: [tool({ name: 'f', parameters: { type: 'object', properties: { Name: { type: 'string' }, name: { type: 'string' } } } })] })],
  ];

  it.each(VALID)('%s', (_name, input) => {
    const copy = structuredClone(input);
    const out = validateChatRequest(input);
    // Returned as is: unknown fields pass through untouched and nothing is rewritten.
    expect(out).toBe(input);
    expect(out).toEqual(copy);
  });
});

describe('requestedMaxTokens', () => {
  const req = (patch: Record<string, unknown>) => validateChatRequest(body(patch)) as ChatRequest;

  it('prefers max_completion_tokens over max_tokens', () => {
    expect(requestedMaxTokens(req({ max_tokens: 100, max_completion_tokens: 50 }))).toBe(50);
    expect(requestedMaxTokens(req({ max_tokens: 100, max_completion_tokens: 500 }))).toBe(500);
  });

  it('falls back to max_tokens, then undefined', () => {
    expect(requestedMaxTokens(req({ max_tokens: 100 }))).toBe(100);
    expect(requestedMaxTokens(req({ max_tokens: 100, max_completion_tokens: null }))).toBe(100);
    expect(requestedMaxTokens(req({}))).toBeUndefined();
    expect(requestedMaxTokens(req({ max_tokens: null }))).toBeUndefined();
  });
});
