import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import type { Deployment } from '../../../../src/config/load.js';
import { GatewayError } from '../../../../src/errors/gateway-error.js';
import { buildRequest, parseResponse } from '../../../../src/providers/anthropic/chat.js';
import { ANTHROPIC_THINKING, THINKING_BLOCKS, type ChatMessage, type ChatRequest, type TranslateContext } from '../../../../src/providers/types.js';
import { jsonBodyText } from '../../../../src/json/chunked-body.js';

function deployment(overrides: Partial<Deployment> = {}): Deployment {
  return {
    id: 'claude#0',
    encoding: undefined,
    provider: 'anthropic',
    model: 'claude-sonnet-4-20250514',
    publicModel: 'claude',
    baseUrl: 'https://api.anthropic.com/v1',
    apiKey: 'sk-ant-test',
    inputPricePerMTok: 3,
    outputPricePerMTok: 15,
    maxOutputTokens: 4096,
    weight: 1,
    headers: {},
    mock: undefined,
    ...overrides,
  };
}

function body(request: Partial<ChatRequest> & { messages: ChatMessage[] }, maxTokens = 256): Record<string, any> {
  return JSON.parse(jsonBodyText(buildRequest({ model: 'claude', ...request }, deployment(), maxTokens).body));
}

function thrown(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error('expected a GatewayError');
}

const ctx: TranslateContext = { requestId: 'req_1', publicModel: 'claude', created: 1_700_000_000, clientWantsUsage: false };

function fixture(name: string): unknown {
  return JSON.parse(readFileSync(new URL(`../../../fixtures/providers/anthropic/${name}`, import.meta.url), 'utf8'));
}

describe('anthropic buildRequest', () => {
  it('targets /v1/messages on the deployment origin with the version and key headers', () => {
    const up = buildRequest({ model: 'claude', messages: [{ role: 'user', content: 'hi' }] }, deployment(), 100);
    expect(up.origin).toBe('https://api.anthropic.com');
    expect(up.path).toBe('/v1/messages');
    expect(up.headers).toMatchObject({ 'anthropic-version': '2023-06-01', 'x-api-key': 'sk-ant-test', 'content-type': 'application/json' });
  });

  it('keeps a proxy base path and sends no key header without a key', () => {
    const up = buildRequest({ model: 'c', messages: [{ role: 'user', content: 'hi' }] }, deployment({ baseUrl: 'http://proxy.local:8080/anthropic/v1', apiKey: undefined }), 1);
    expect(up.origin).toBe('http://proxy.local:8080');
    expect(up.path).toBe('/anthropic/v1/messages');
    expect(up.headers['x-api-key']).toBeUndefined();
  });

  it('sets model, max_tokens, stream and passes sampling parameters', () => {
    const b = body({ messages: [{ role: 'user', content: 'hi' }], temperature: 0.2, top_p: 0.9, stream: true, user: 'u-42' }, 777);
    expect(b).toMatchObject({ model: 'claude-sonnet-4-20250514', max_tokens: 777, stream: true, temperature: 0.2, top_p: 0.9, metadata: { user_id: 'u-42' } });
    expect(body({ messages: [{ role: 'user', content: 'hi' }] }).stream).toBe(false);
  });

  it('joins system and developer messages, wherever they are, into the top-level system', () => {
    const b = body({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }] },
        { role: 'user', content: 'hi' },
        { role: 'system', content: 'No emojis.' },
      ],
    });
    expect(b.system).toBe('Be brief.\n\nAnswer in French.\n\nNo emojis.');
    expect(b.messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'hi' }] }]);
  });

  it('sends prompt-caching marks where Anthropic takes them: system blocks, text and image blocks, tool_result blocks, tools', () => {
    const mark = { type: 'ephemeral' as const };
    const b = body({
      messages: [
        { role: 'system', content: [{ type: 'text', text: 'Rules', cache_control: mark }, { type: 'text', text: 'More' }] },
        { role: 'user', content: [{ type: 'text', text: 'Doc', cache_control: { type: 'ephemeral', ttl: '1h' } }] },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 't', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: [{ type: 'text', text: 'out', cache_control: mark }] },
      ],
      tools: [{ type: 'function', function: { name: 't', parameters: { type: 'object' } }, cache_control: mark }],
    });
    expect(b.system).toEqual([{ type: 'text', text: 'Rules', cache_control: mark }, { type: 'text', text: 'More' }]);
    expect(b.messages[0].content).toEqual([{ type: 'text', text: 'Doc', cache_control: { type: 'ephemeral', ttl: '1h' } }]);
    expect(b.messages[2].content).toEqual([{ type: 'tool_result', tool_use_id: 'c1', content: [{ type: 'text', text: 'out' }], cache_control: mark }]);
    expect(b.tools[0]).toMatchObject({ name: 't', cache_control: mark });
  });

  it('omits system when there is none', () => {
    expect(body({ messages: [{ role: 'user', content: 'hi' }] })).not.toHaveProperty('system');
  });

  it('translates image parts: data URLs to base64 sources, http(s) to url sources', () => {
    const b = body({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is this?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
            { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg', detail: 'high' } },
          ],
        },
      ],
    });
    expect(b.messages[0].content).toEqual([
      { type: 'text', text: 'What is this?' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
      { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
    ]);
  });

  it('refuses image URLs it cannot express, naming the part', () => {
    const err = thrown(() => body({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'ftp://x/y.png' } }] }] }));
    expect(err.code).toBe('NR_INVALID_REQUEST');
    expect(err.param).toBe('messages[0].content[0].image_url.url');
    expect(thrown(() => body({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png,raw' } }] }] })).code).toBe('NR_INVALID_REQUEST');
  });

  it('translates tools and every tool_choice form', () => {
    const tools: ChatRequest['tools'] = [
      { type: 'function', function: { name: 'get_weather', description: 'Weather now', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
      { type: 'function', function: { name: 'ping' } },
    ];
    const messages: ChatMessage[] = [{ role: 'user', content: 'hi' }];
    const b = body({ messages, tools });
    expect(b.tools).toEqual([
      { name: 'get_weather', description: 'Weather now', input_schema: { type: 'object', properties: { city: { type: 'string' } } } },
      { name: 'ping', input_schema: { type: 'object', properties: {} } },
    ]);
    expect(b).not.toHaveProperty('tool_choice');
    expect(body({ messages, tools, tool_choice: 'auto' }).tool_choice).toEqual({ type: 'auto' });
    expect(body({ messages, tools, tool_choice: 'none' }).tool_choice).toEqual({ type: 'none' });
    expect(body({ messages, tools, tool_choice: 'required' }).tool_choice).toEqual({ type: 'any' });
    expect(body({ messages, tools, tool_choice: { type: 'function', function: { name: 'ping' } } }).tool_choice).toEqual({ type: 'tool', name: 'ping' });
    expect(body({ messages, tools, tool_choice: 'required', parallel_tool_calls: false }).tool_choice).toEqual({ type: 'any', disable_parallel_tool_use: true });
    expect(thrown(() => body({ messages, tools, tool_choice: 'sometimes' })).param).toBe('tool_choice');
  });

  it('turns assistant tool_calls into tool_use blocks and tool messages into merged tool_result blocks', () => {
    const b = body({
      messages: [
        { role: 'user', content: 'Weather and time in Paris?' },
        {
          role: 'assistant',
          content: 'Checking.',
          tool_calls: [
            { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
            { id: 'call_2', type: 'function', function: { name: 'get_time', arguments: '' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_1', content: '18°C' },
        { role: 'tool', tool_call_id: 'call_2', content: [{ type: 'text', text: '14:05' }] },
        { role: 'user', content: 'Thanks!' },
      ],
    });
    expect(b.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Weather and time in Paris?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Checking.' },
          { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'call_2', name: 'get_time', input: {} },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_1', content: '18°C' },
          { type: 'tool_result', tool_use_id: 'call_2', content: [{ type: 'text', text: '14:05' }] },
          { type: 'text', text: 'Thanks!' },
        ],
      },
    ]);
  });

  it('merges consecutive same-role messages so roles alternate', () => {
    const b = body({
      messages: [
        { role: 'user', content: 'one' },
        { role: 'user', content: 'two' },
        { role: 'assistant', content: 'three' },
        { role: 'assistant', content: null },
        { role: 'assistant', content: [{ type: 'text', text: 'four' }] },
      ],
    });
    expect(b.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'one' }, { type: 'text', text: 'two' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'three' }, { type: 'text', text: 'four' }] },
    ]);
  });

  it('refuses invalid tool call arguments, naming the param', () => {
    const broken: ChatMessage = { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{"city": Par' } }] };
    const err = thrown(() => body({ messages: [{ role: 'user', content: 'hi' }, broken] }));
    expect(err.code).toBe('NR_INVALID_REQUEST');
    expect(err.param).toBe('messages[1].tool_calls[0].function.arguments');
    const notObject: ChatMessage = { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '[1,2]' } }] };
    expect(thrown(() => body({ messages: [notObject] })).param).toBe('messages[0].tool_calls[0].function.arguments');
  });

  it('refuses a tool message without tool_call_id', () => {
    expect(thrown(() => body({ messages: [{ role: 'tool', content: 'x' }] })).param).toBe('messages[0].tool_call_id');
  });

  it('sends the thinking option and an assistant turn\'s thinking blocks first, as they came', () => {
    const blocks = [{ type: 'thinking' as const, thinking: 'Call the tool.', signature: 'sig' }, { type: 'redacted_thinking' as const, data: 'opaque' }];
    const sent = body({
      [ANTHROPIC_THINKING]: { type: 'enabled', budget_tokens: 1024 },
      messages: [
        { role: 'user', content: 'Weather?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 't1', type: 'function', function: { name: 'w', arguments: '{}' } }], [THINKING_BLOCKS]: blocks },
        { role: 'tool', tool_call_id: 't1', content: 'sunny' },
      ],
    });
    expect(sent.thinking).toEqual({ type: 'enabled', budget_tokens: 1024 });
    expect(sent.messages[1]).toEqual({ role: 'assistant', content: [...blocks, { type: 'tool_use', id: 't1', name: 'w', input: {} }] });
    expect(body({ messages: [{ role: 'user', content: 'x' }] })).not.toHaveProperty('thinking');
  });

  it('maps stop to stop_sequences', () => {
    const messages: ChatMessage[] = [{ role: 'user', content: 'hi' }];
    expect(body({ messages, stop: 'END' }).stop_sequences).toEqual(['END']);
    expect(body({ messages, stop: ['a', 'b'] }).stop_sequences).toEqual(['a', 'b']);
    expect(body({ messages, stop: null })).not.toHaveProperty('stop_sequences');
  });
});

describe('anthropic parseResponse', () => {
  it('translates a text message, counting cached prompt tokens', () => {
    expect(parseResponse(fixture('message-text.json'), ctx)).toEqual({
      id: 'msg_01TextBody',
      object: 'chat.completion',
      created: 1_700_000_000,
      model: 'claude',
      choices: [{ index: 0, message: { role: 'assistant', content: 'héllo wörld — 日本語 🎉' }, finish_reason: 'stop', logprobs: null }],
      usage: { prompt_tokens: 55, completion_tokens: 9, total_tokens: 64, prompt_tokens_details: { cached_tokens: 40 }, cache_creation_input_tokens: 3 },
    });
  });

  it('translates tool_use blocks into tool_calls with JSON-string arguments', () => {
    const completion = parseResponse(fixture('message-tool-use.json'), ctx);
    const choice = completion.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBe('Let me look that up.');
    expect(choice.message.tool_calls).toEqual([
      { id: 'toolu_01A09q90qw90lq917835lq9', type: 'function', function: { name: 'get_weather', arguments: '{"location":"San Francisco, CA","unit":"celsius"}' } },
      { id: 'toolu_01B', type: 'function', function: { name: 'get_time', arguments: '{}' } },
    ]);
    expect(completion.usage).toEqual({ prompt_tokens: 472, completion_tokens: 89, total_tokens: 561 });
  });

  it('keeps thinking as reasoning_content and the blocks with their signatures as thinking_blocks', () => {
    const completion = parseResponse(fixture('message-thinking.json'), ctx);
    const message = completion.choices[0]!.message;
    expect(message.content).toBe('It is 18 °C and sunny in Zürich.');
    expect(message.reasoning_content).toBe('The tool says 18 C and sunny. A short answer will do.');
    expect(message.thinking_blocks).toEqual([
      { type: 'thinking', thinking: message.reasoning_content, signature: expect.stringMatching(/^EuYBCkQYAi/) },
      { type: 'redacted_thinking', data: expect.stringMatching(/^EmwKAhgB/) },
    ]);
    // Thinking is in Anthropic's output_tokens: priced as output.
    expect(completion.usage).toEqual({ prompt_tokens: 640, completion_tokens: 42, total_tokens: 682 });
    expect(() => parseResponse({ id: 'm', type: 'message', content: [{ type: 'thinking', thinking: 'x' }], usage: {} }, ctx)).toThrow(GatewayError);
  });

  it('maps max_tokens and refusal stop reasons', () => {
    const message = (stop_reason: string) => ({ id: 'm', type: 'message', role: 'assistant', content: [], stop_reason, usage: { input_tokens: 1, output_tokens: 0 } });
    expect(parseResponse(message('max_tokens'), ctx).choices[0]!.finish_reason).toBe('length');
    expect(parseResponse(message('refusal'), ctx).choices[0]!.finish_reason).toBe('content_filter');
    expect(parseResponse(message('end_turn'), ctx).choices[0]!.message.content).toBe('');
  });

  it('leaves usage out when the counts are not non-negative integers', () => {
    const message = { id: 'm', type: 'message', role: 'assistant', content: [{ type: 'text', text: 'x' }], stop_reason: 'end_turn', usage: { input_tokens: 3, output_tokens: -1 } };
    expect(parseResponse(message, ctx).usage).toBeUndefined();
    expect(parseResponse({ ...message, usage: { input_tokens: 2.5, output_tokens: 1 } }, ctx).usage).toBeUndefined();
  });

  it('rejects bodies that are not Anthropic messages', () => {
    for (const bad of [null, 'text', [], { type: 'error', error: {} }, { type: 'message', content: 'x' }, { type: 'message', content: [{ type: 'text' }] }]) {
      expect(thrown(() => parseResponse(bad, ctx)).code).toBe('NR_UPSTREAM_BAD_RESPONSE');
    }
  });
});
