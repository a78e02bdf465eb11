// The Anthropic Messages dialect on its own: requests translated to OpenAI chat, OpenAI chunks
// re-encoded as Anthropic events (block indices, kinds, stop reason, usage), errors in its format.
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../../src/errors/gateway-error.js';
import { anthropicMessagesDialect as dialect } from '../../../../src/http/dialects/anthropic-messages.js';
import { anthropicCountRequest } from '../../../../src/http/dialects/anthropic-request.js';
import type { Frame } from '../../../../src/http/dialects/dialect.js';
import { ANTHROPIC_THINKING, GATEWAY_CACHE_MARKS, THINKING_BLOCKS, type ChatRequest } from '../../../../src/providers/types.js';
import type { KeyPrincipal } from '../../../../src/tenancy/principal.js';

const CTX = { requestId: 'req1', model: 'm', created: 1, clientWantsUsage: true, principal: {} as KeyPrincipal, request: {} as ChatRequest };
const parse = (body: unknown) => dialect.parseRequest(JSON.stringify(body));
const chunk = (delta: unknown, finish: string | null = null) => `data: ${JSON.stringify({ id: 'chatcmpl-abc', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;

/** The events an encoder writes for these frames, as [event, payload] pairs. */
function events(frames: Frame[], end = false): Array<[string, Record<string, unknown>]> {
  const encoder = dialect.open(CTX).streamEncoder();
  const out: Frame[] = [];
  encoder.frames(frames, out);
  if (end) encoder.end(out);
  return out.map((f) => {
    const [, name, data] = /^event: (\S+)\ndata: (.*)\n\n$/s.exec(String(f))!;
    return [name!, JSON.parse(data!) as Record<string, unknown>];
  });
}

describe('Anthropic request translation', () => {
  it('maps system, content blocks, tools, tool_choice, stop sequences and the user id', () => {
    const request = parse({
      model: 'm',
      max_tokens: 100,
      system: [{ type: 'text', text: 'One.' }, { type: 'text', text: 'Two.' }],
      stop_sequences: ['END'],
      metadata: { user_id: 'u-1' },
      tools: [{ name: 'lookup', description: 'Look up', input_schema: { type: 'object', properties: {} } }],
      tool_choice: { type: 'tool', name: 'lookup', disable_parallel_tool_use: true },
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'Hi' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } }] },
        { role: 'assistant', content: [{ type: 'thinking', thinking: 'hmm', signature: 's' }, { type: 'tool_use', id: 't1', name: 'lookup', input: { q: 1 } }] },
        { role: 'user', content: [{ type: 'text', text: 'thanks' }, { type: 'tool_result', tool_use_id: 't1', content: [{ type: 'text', text: 'found' }], is_error: true }] },
      ],
    });
    expect(request.messages).toEqual([
      { role: 'system', content: 'One.\n\nTwo.' },
      { role: 'user', content: [{ type: 'text', text: 'Hi' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] },
      // The thinking block rides beside the OpenAI message, for an Anthropic deployment.
      { role: 'assistant', content: null, tool_calls: [{ id: 't1', type: 'function', function: { name: 'lookup', arguments: '{"q":1}' } }], [THINKING_BLOCKS]: [{ type: 'thinking', thinking: 'hmm', signature: 's' }] },
      // The tool result comes first, right after the call it answers.
      { role: 'tool', tool_call_id: 't1', content: 'Error: found' },
      { role: 'user', content: [{ type: 'text', text: 'thanks' }] },
    ]);
    expect(request).toMatchObject({ max_tokens: 100, stop: ['END'], user: 'u-1', tool_choice: { type: 'function', function: { name: 'lookup' } }, parallel_tool_calls: false });
    expect(request.tools).toEqual([{ type: 'function', function: { name: 'lookup', description: 'Look up', parameters: { type: 'object', properties: {} } } }]);
  });

  it('carries prompt-caching marks on system, text, image and tool_result blocks and on tools, and flags them as the gateway\'s', () => {
    const mark = { type: 'ephemeral', ttl: '1h' };
    const request = parse({
      model: 'm',
      max_tokens: 1,
      system: [{ type: 'text', text: 'Long rules.', cache_control: mark }, { type: 'text', text: 'More.' }],
      tools: [{ name: 't', input_schema: { type: 'object' }, cache_control: { type: 'ephemeral' } }],
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'Doc', cache_control: mark }, { type: 'image', source: { type: 'url', url: 'https://x/y.png' }, cache_control: mark }] },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'u1', name: 't', input: {} }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'u1', content: 'out', cache_control: mark }] },
      ],
    });
    expect(request.messages[0]).toEqual({ role: 'system', content: [{ type: 'text', text: 'Long rules.', cache_control: mark }, { type: 'text', text: 'More.' }] });
    expect(request.messages[1]!.content).toEqual([{ type: 'text', text: 'Doc', cache_control: mark }, { type: 'image_url', image_url: { url: 'https://x/y.png' }, cache_control: mark }]);
    expect(request.messages[3]).toEqual({ role: 'tool', tool_call_id: 'u1', content: [{ type: 'text', text: 'out', cache_control: mark }] });
    expect(request.tools![0]!.cache_control).toEqual({ type: 'ephemeral' });
    expect(request[GATEWAY_CACHE_MARKS]).toBe(true);
    // Without marks: the system prompt stays one string and nothing is flagged.
    const plain = parse({ model: 'm', max_tokens: 1, system: [{ type: 'text', text: 'A' }, { type: 'text', text: 'B' }], messages: [{ role: 'user', content: 'x' }] });
    expect(plain.messages[0]).toEqual({ role: 'system', content: 'A\n\nB' });
    expect(plain[GATEWAY_CACHE_MARKS]).toBeUndefined();
  });

  it('carries the thinking option and an assistant turn\'s thinking blocks under symbols, never as JSON', () => {
    const request = parse({
      model: 'm',
      max_tokens: 2048,
      thinking: { type: 'enabled', budget_tokens: 1024 },
      messages: [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: [{ type: 'redacted_thinking', data: 'opaque' }, { type: 'thinking', thinking: 'Greet.', signature: 'sig' }, { type: 'text', text: 'Hello' }] },
        { role: 'assistant', content: [{ type: 'thinking', thinking: 'Only thought.', signature: 'sig2' }] },
        { role: 'user', content: 'Again' },
      ],
    });
    expect(request[ANTHROPIC_THINKING]).toEqual({ type: 'enabled', budget_tokens: 1024 });
    expect(request.messages[1]![THINKING_BLOCKS]).toEqual([{ type: 'redacted_thinking', data: 'opaque' }, { type: 'thinking', thinking: 'Greet.', signature: 'sig' }]);
    expect(request.messages[1]!.content).toBe('Hello');
    // A turn of thinking alone stays a turn, with empty text.
    expect(request.messages[2]).toEqual({ role: 'assistant', content: '', [THINKING_BLOCKS]: [{ type: 'thinking', thinking: 'Only thought.', signature: 'sig2' }] });
    const json = JSON.stringify(request);
    expect(json).not.toContain('thinking');
    expect(json).not.toContain('sig');
    // Disabled is the same as none; malformed options and blocks are refused by name.
    expect(parse({ model: 'm', max_tokens: 5, thinking: { type: 'disabled' }, messages: [{ role: 'user', content: 'x' }] })[ANTHROPIC_THINKING]).toBeUndefined();
    const refused = (body: unknown) => {
      try {
        parse(body);
      } catch (err) {
        return (err as GatewayError).param;
      }
      return undefined;
    };
    expect(refused({ model: 'm', max_tokens: 5, thinking: { type: 'enabled' }, messages: [{ role: 'user', content: 'x' }] })).toBe('thinking.budget_tokens');
    expect(refused({ model: 'm', max_tokens: 5, thinking: 'on', messages: [{ role: 'user', content: 'x' }] })).toBe('thinking');
    expect(refused({ model: 'm', max_tokens: 5, messages: [{ role: 'assistant', content: [{ type: 'thinking', thinking: 'x' }] }] })).toBe('messages.0.content.0');
    expect(refused({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'thinking', thinking: 'x', signature: 's' }] }] })).toBe('messages.0.content.0');
  });

  it('asks for usage at the end of every stream', () => {
    expect(parse({ model: 'm', max_tokens: 1, stream: true, messages: [{ role: 'user', content: 'x' }] })).toMatchObject({ stream: true, stream_options: { include_usage: true } });
  });

  it.each([
    [{ model: 'm', messages: [{ role: 'user', content: 'x' }] }, 'max_tokens'],
    [{ model: 'm', max_tokens: 1, messages: [] }, 'messages'],
    [{ model: 'm', max_tokens: 1, messages: [{ role: 'system', content: 'x' }] }, 'messages.0.role'],
    [{ model: 'm', max_tokens: 1, messages: [{ role: 'user', content: [{ type: 'document', source: {} }] }] }, 'messages.0.content.0'],
    [{ model: 'm', max_tokens: 1, tools: [{ type: 'web_search_20250305', name: 'web_search' }], messages: [{ role: 'user', content: 'x' }] }, 'tools.0.type'],
    [{ model: 'm', max_tokens: 1, temperature: 3, messages: [{ role: 'user', content: 'x' }] }, 'temperature'],
    [{ model: 'm', max_tokens: 1, tool_choice: { type: 'sometimes' }, messages: [{ role: 'user', content: 'x' }] }, 'tool_choice.type'],
  ])('refuses %j naming %s', (body, param) => {
    expect(() => parse(body)).toThrow(expect.objectContaining({ code: 'NR_INVALID_REQUEST', param }));
  });

  it('counts a body without max_tokens', () => {
    expect(anthropicCountRequest(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }] })).messages).toHaveLength(1);
  });
});

describe('Anthropic stream encoding', () => {
  it('opens and closes a block per kind, in order, with the stop reason and usage at the end', () => {
    const seen = events([
      chunk({ role: 'assistant', content: '' }),
      chunk({ content: 'Hel' }),
      chunk({ content: 'lo' }),
      chunk({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'f', arguments: '' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '{"a":' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '1}' } }] }),
      chunk({ tool_calls: [{ index: 1, id: 'call_2', type: 'function', function: { name: 'g', arguments: '{}' } }] }),
      chunk({}, 'tool_calls'),
      `data: ${JSON.stringify({ id: 'chatcmpl-abc', choices: [], usage: { prompt_tokens: 10, completion_tokens: 4, prompt_tokens_details: { cached_tokens: 6 } } })}\n\n`,
      'data: [DONE]\n\n',
    ], true);
    expect(seen.map(([name, p]) => `${name}${p.index === undefined ? '' : `:${String(p.index)}`}`)).toEqual([
      'message_start', 'ping',
      'content_block_start:0', 'content_block_delta:0', 'content_block_delta:0', 'content_block_stop:0',
      'content_block_start:1', 'content_block_delta:1', 'content_block_delta:1', 'content_block_stop:1',
      'content_block_start:2', 'content_block_delta:2', 'content_block_stop:2',
      'message_delta', 'message_stop',
    ]);
    expect(seen[0]![1]).toMatchObject({ message: { id: 'msg_abc', model: 'm', role: 'assistant', content: [] } });
    expect(seen[6]![1]).toMatchObject({ content_block: { type: 'tool_use', id: 'call_1', name: 'f', input: {} } });
    expect(seen[7]![1]).toMatchObject({ delta: { type: 'input_json_delta', partial_json: '{"a":' } });
    expect(seen[13]![1]).toEqual({ type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { input_tokens: 4, output_tokens: 4, cache_read_input_tokens: 6 } });
  });

  it('streams thinking as thinking_delta then signature_delta in one block, and a redacted block whole', () => {
    const got = events([
      chunk({ role: 'assistant', content: '' }),
      chunk({ reasoning_content: 'Let me ' }),
      chunk({ reasoning_content: 'think.' }),
      chunk({ thinking_blocks: [{ type: 'thinking', thinking: '', signature: 'sig-1' }] }),
      chunk({ thinking_blocks: [{ type: 'redacted_thinking', data: 'opaque' }] }),
      chunk({ reasoning_content: 'More.' }),
      chunk({ thinking_blocks: [{ type: 'thinking', thinking: '', signature: 'sig-2' }] }),
      chunk({ content: 'Answer.' }),
      chunk({}, 'stop'),
    ], true);
    const blocks = got.filter(([name]) => name.startsWith('content_block')).map(([name, p]) => [name, p.index, p.content_block ?? p.delta ?? null]);
    expect(blocks).toEqual([
      ['content_block_start', 0, { type: 'thinking', thinking: '', signature: '' }],
      ['content_block_delta', 0, { type: 'thinking_delta', thinking: 'Let me ' }],
      ['content_block_delta', 0, { type: 'thinking_delta', thinking: 'think.' }],
      ['content_block_delta', 0, { type: 'signature_delta', signature: 'sig-1' }],
      ['content_block_stop', 0, null],
      ['content_block_start', 1, { type: 'redacted_thinking', data: 'opaque' }],
      ['content_block_stop', 1, null],
      ['content_block_start', 2, { type: 'thinking', thinking: '', signature: '' }],
      ['content_block_delta', 2, { type: 'thinking_delta', thinking: 'More.' }],
      ['content_block_delta', 2, { type: 'signature_delta', signature: 'sig-2' }],
      ['content_block_stop', 2, null],
      ['content_block_start', 3, { type: 'text', text: '' }],
      ['content_block_delta', 3, { type: 'text_delta', text: 'Answer.' }],
      ['content_block_stop', 3, null],
    ]);
  });

  it('answers thinking blocks with their signatures, or bare reasoning text with an empty one', () => {
    const answer = (message: unknown) => JSON.parse(String(dialect.open(CTX).completion(JSON.stringify({ id: 'chatcmpl-1', choices: [{ index: 0, message, finish_reason: 'stop' }] })))) as { content: unknown[] };
    const blocks = [{ type: 'thinking', thinking: 'Hm.', signature: 'sig' }, { type: 'redacted_thinking', data: 'opaque' }];
    expect(answer({ role: 'assistant', content: 'Hi', reasoning_content: 'Hm.', thinking_blocks: blocks }).content).toEqual([...blocks, { type: 'text', text: 'Hi' }]);
    expect(answer({ role: 'assistant', content: 'Hi', reasoning_content: 'Hm.' }).content).toEqual([{ type: 'thinking', thinking: 'Hm.', signature: '' }, { type: 'text', text: 'Hi' }]);
    // Reasoning text an output guardrail redacted wins over the blocks' original text, unsigned.
    expect(answer({ role: 'assistant', content: 'Hi', reasoning_content: '[REDACTED]', thinking_blocks: blocks }).content).toEqual([
      { type: 'thinking', thinking: '[REDACTED]', signature: '' }, { type: 'redacted_thinking', data: 'opaque' }, { type: 'text', text: 'Hi' },
    ]);
  });

  it('closes a stream that ended without [DONE] too', () => {
    const seen = events([chunk({ content: 'x' }, 'length')], true);
    expect(seen.map(([name]) => name)).toEqual(['message_start', 'ping', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    expect(seen[5]![1]).toMatchObject({ delta: { stop_reason: 'max_tokens' } });
  });

  it('turns a complete answer into a message, tool input parsed', () => {
    const body = JSON.stringify({ id: 'chatcmpl-z', choices: [{ message: { role: 'assistant', content: 'ok', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"x":2}' } }] }, finish_reason: 'tool_calls' }], usage: { prompt_tokens: 3, completion_tokens: 2 } });
    expect(JSON.parse(String(dialect.open(CTX).completion(body)))).toEqual({
      id: 'msg_z', type: 'message', role: 'assistant', model: 'm',
      content: [{ type: 'text', text: 'ok' }, { type: 'tool_use', id: 'c1', name: 'f', input: { x: 2 } }],
      stop_reason: 'tool_use', stop_sequence: null, usage: { input_tokens: 3, output_tokens: 2 },
    });
  });

  it('words errors as Anthropic does, by status', () => {
    expect(JSON.parse(dialect.errorBody(new GatewayError('NR_INSUFFICIENT_QUOTA')))).toMatchObject({ type: 'error', error: { type: 'billing_error' } });
    expect(JSON.parse(dialect.errorBody(new GatewayError('NR_RATE_LIMITED')))).toMatchObject({ error: { type: 'rate_limit_error' } });
    expect(dialect.streamErrorFrame(new GatewayError('NR_UPSTREAM_BAD_RESPONSE'))).toMatch(/^event: error\ndata: \{"type":"error","error":\{"type":"api_error"/);
  });
});
