// Anthropic Messages (/v1/messages, /v1/messages/count_tokens) and OpenAI's legacy completions
// (/v1/completions) through the gateway with the official SDKs, unmodified: the chat exchange in
// another dialect, so each request is held and charged like a chat request, its errors come in the
// route's own format, and a stream cut mid-way still settles. Tool use and extended thinking come
// from an Anthropic upstream replaying recorded streams (translated to OpenAI chunks inside, and
// back out); the same server answers as an OpenAI-compatible upstream to show what one is sent.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { Books, fundedOrg } from './ledger/money-helpers.js';

const PRICES = { inputPricePerMTok: 2, outputPricePerMTok: 7 };
const fixture = (name: string) => readFileSync(new URL(`../fixtures/providers/anthropic/${name}`, import.meta.url));

describe('/v1/messages and /v1/completions', () => {
  let upstream: Server;
  let gw: TestGateway;
  let books: Books;
  const upstreamBodies: Array<Record<string, unknown>> = [];
  /** What the OpenAI-compatible side of the upstream was sent. */
  const openAiBodies: Array<Record<string, unknown>> = [];

  const anthropic = (apiKey = gw.apiKey) => new Anthropic({ apiKey, baseURL: gw.url, maxRetries: 0 });
  const openai = (apiKey = gw.apiKey) => new OpenAI({ apiKey, baseURL: `${gw.url}/v1`, maxRetries: 0 });
  const post = (path: string, body: unknown, headers: Record<string, string> = { 'x-api-key': gw.apiKey }) =>
    fetch(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', ...headers }, body: JSON.stringify(body) }).then(async (res) => ({
      status: res.status,
      contentType: res.headers.get('content-type'),
      text: await res.text(),
    }));

  beforeAll(async () => {
    // An Anthropic upstream replaying recorded streams: text, or tool use for the model claude-tools.
    upstream = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(parts).toString()) as Record<string, unknown>;
        if (req.url?.endsWith('/chat/completions')) {
          openAiBodies.push(body);
          const answer = { id: 'chatcmpl-oa', object: 'chat.completion', created: 1, model: body.model, choices: [{ index: 0, message: { role: 'assistant', content: 'Fine.' }, finish_reason: 'stop', logprobs: null }], usage: { prompt_tokens: 9, completion_tokens: 1, total_tokens: 10 } };
          return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
        }
        upstreamBodies.push(body);
        const [json, sse] = body.model === 'claude-tools' ? ['message-tool-use.json', 'tool-use.sse'] : body.model === 'claude-thinking' ? ['message-thinking.json', 'thinking-tool-use.sse'] : ['message-text.json', 'text-utf8.sse'];
        if (!body.stream) return void res.writeHead(200, { 'content-type': 'application/json' }).end(fixture(json));
        // 5-byte pieces split events and multi-byte characters alike.
        const bytes = fixture(sse);
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        for (let at = 0; at < bytes.length; at += 5) res.write(bytes.subarray(at, at + 5));
        res.end();
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const baseUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`;
    gw = await startTestGateway(
      {
        models: [
          { name: 'm', deployments: [{ provider: 'mock', model: 'm', ...PRICES, mock: { completionTokens: 12 } }] },
          { name: 'cut', deployments: [{ provider: 'mock', model: 'cut', ...PRICES, mock: { completionTokens: 40, fault: 'cut-mid-stream' } }] },
          { name: 'claude-tools', deployments: [{ provider: 'anthropic', model: 'claude-tools', baseUrl, apiKeyEnv: 'TEST_ANTHROPIC_KEY', ...PRICES }] },
          { name: 'claude-thinking', deployments: [{ provider: 'anthropic', model: 'claude-thinking', baseUrl, apiKeyEnv: 'TEST_ANTHROPIC_KEY', ...PRICES }] },
          { name: 'oa', deployments: [{ provider: 'openai-compatible', model: 'oa', baseUrl: `${baseUrl}/oa`, ...PRICES }] },
        ],
      },
      { TEST_ANTHROPIC_KEY: 'sk-ant-test' },
    );
    books = new Books(gw.database);
  });

  afterAll(async () => {
    await books?.close();
    await gw?.close();
    await new Promise((r) => upstream?.close(r));
  });

  /** A funded org of its own, so its books hold only the requests of one test. */
  const freshOrg = (micros = 10_000_000) => fundedOrg(gw.gateway, micros, 'messages org');

  it('messages.create: an Anthropic message, charged at its priced usage', async () => {
    const org = await freshOrg();
    const message = await anthropic(org.key).messages.create({ model: 'm', max_tokens: 64, system: 'Be brief.', messages: [{ role: 'user', content: 'Say something.' }] });
    expect(message).toMatchObject({ type: 'message', role: 'assistant', model: 'm', stop_reason: 'end_turn', stop_sequence: null });
    expect(message.id).toMatch(/^msg_/);
    expect(message.content).toEqual([{ type: 'text', text: expect.stringMatching(/\S/) }]);
    expect(message.usage.input_tokens).toBeGreaterThan(0);
    expect(message.usage.output_tokens).toBe(12);
    const cost = message.usage.input_tokens * PRICES.inputPricePerMTok + message.usage.output_tokens * PRICES.outputPricePerMTok;
    await books.expectSettledBooks(org.orgId, { served: 1, charge: cost });
  });

  it('messages.stream: Anthropic events in order, the final message assembled by the SDK, charged once', async () => {
    const org = await freshOrg();
    const stream = anthropic(org.key).messages.stream({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'Stream it.' }] });
    const types: string[] = [];
    stream.on('streamEvent', (event) => types.push(event.type));
    const message = await stream.finalMessage();
    expect(types[0]).toBe('message_start');
    expect(types.slice(-2)).toEqual(['message_delta', 'message_stop']);
    expect(types).toContain('content_block_delta');
    expect(message.content).toHaveLength(1);
    expect(message.content[0]).toMatchObject({ type: 'text' });
    expect(message.stop_reason).toBe('max_tokens');
    expect(message.usage.output_tokens).toBe(5);
    const cost = message.usage.input_tokens * PRICES.inputPricePerMTok + 5 * PRICES.outputPricePerMTok;
    await books.expectSettledBooks(org.orgId, { served: 1, charge: cost });
  });

  it('tool use streams as tool_use blocks with their JSON input, and tool results go back upstream', async () => {
    const tools = [{ name: 'get_weather', description: 'Weather of a city', input_schema: { type: 'object' as const, properties: { city: { type: 'string' } }, required: ['city'] } }];
    const client = anthropic();
    const streamed = await client.messages.stream({ model: 'claude-tools', max_tokens: 256, tools, messages: [{ role: 'user', content: 'Weather in Paris?' }] }).finalMessage();
    const toolUse = streamed.content.find((b) => b.type === 'tool_use');
    expect(toolUse).toMatchObject({ type: 'tool_use', id: expect.any(String), name: expect.any(String), input: expect.any(Object) });
    expect(streamed.stop_reason).toBe('tool_use');
    const created = await client.messages.create({ model: 'claude-tools', max_tokens: 256, tools, messages: [{ role: 'user', content: 'Weather in Paris?' }] });
    expect(created.content.some((b) => b.type === 'tool_use')).toBe(true);

    // The next turn: the assistant's tool_use and the user's tool_result, through both translations.
    upstreamBodies.length = 0;
    const reply = await client.messages.create({
      model: 'claude-tools',
      max_tokens: 256,
      tools,
      tool_choice: { type: 'auto' },
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: [{ type: 'text', text: 'Checking.' }, { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: '18 C and sunny' }, { type: 'text', text: 'And tomorrow?' }] },
      ],
    });
    expect(reply.type).toBe('message');
    const sent = upstreamBodies[0] as { messages: Array<{ role: string; content: unknown }>; tools: unknown[] };
    expect(sent.tools).toHaveLength(1);
    expect(JSON.stringify(sent.messages)).toContain('"tool_use_id":"toolu_1"');
    expect(JSON.stringify(sent.messages)).toContain('18 C and sunny');
    expect(JSON.stringify(sent.messages)).toContain('"input":{"city":"Paris"}');
  });

  it('extended thinking with tools: thinking and signature deltas reach messages.stream, the signed blocks go back upstream intact, and the tokens are charged', async () => {
    const org = await freshOrg();
    const client = anthropic(org.key);
    const tools = [{ name: 'get_weather', description: 'Weather of a city', input_schema: { type: 'object' as const, properties: { city: { type: 'string' } }, required: ['city'] } }];
    const thinking = { type: 'enabled' as const, budget_tokens: 2048 };
    // The recorded usage counts a long prompt: one as long keeps the hold (the body's bytes) above its price.
    const system = 'You answer questions about the weather. '.repeat(40);
    upstreamBodies.length = 0;
    const stream = client.messages.stream({ model: 'claude-thinking', max_tokens: 4096, system, thinking, tools, messages: [{ role: 'user', content: 'Weather in Zürich?' }] });
    const deltas: string[] = [];
    stream.on('streamEvent', (event) => {
      if (event.type === 'content_block_delta') deltas.push(event.delta.type);
    });
    let thought = '';
    stream.on('thinking', (delta) => (thought += delta));
    const first = await stream.finalMessage();
    expect(upstreamBodies[0]).toMatchObject({ model: 'claude-thinking', thinking, max_tokens: 4096, stream: true });
    expect(deltas).toEqual(expect.arrayContaining(['thinking_delta', 'signature_delta', 'text_delta', 'input_json_delta']));
    expect(deltas.indexOf('signature_delta')).toBeLessThan(deltas.indexOf('text_delta'));
    expect(thought).toBe('The user wants the weather in Zürich. I should call get_weather with the city.');
    expect(first.content).toEqual([
      { type: 'thinking', thinking: thought, signature: expect.stringMatching(/^EqQBCgIYAh/) },
      { type: 'text', text: 'Let me check the weather.' },
      { type: 'tool_use', id: 'toolu_01ThinkWeather', name: 'get_weather', input: { city: 'Zürich' } },
    ]);
    expect(first.stop_reason).toBe('tool_use');
    expect(first.usage).toMatchObject({ input_tokens: 512, output_tokens: 87 });

    // The next turn sends the assistant's content back as the SDK holds it: Anthropic checks the
    // signature of every thinking block of a tool-use turn, so they must arrive unchanged, first.
    upstreamBodies.length = 0;
    const answer = await client.messages.create({
      model: 'claude-thinking',
      max_tokens: 4096,
      system,
      thinking,
      tools,
      messages: [
        { role: 'user', content: 'Weather in Zürich?' },
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01ThinkWeather', content: '18 C and sunny' }] },
      ],
    });
    const sent = upstreamBodies[0] as { thinking: unknown; messages: Array<{ role: string; content: unknown[] }> };
    expect(sent.thinking).toEqual(thinking);
    expect(sent.messages[1]).toEqual({ role: 'assistant', content: first.content });
    expect(sent.messages[2]!.content).toEqual([{ type: 'tool_result', tool_use_id: 'toolu_01ThinkWeather', content: '18 C and sunny' }]);
    // A complete answer keeps its thinking and redacted_thinking blocks, signatures and data included.
    expect(answer.content.map((b) => b.type)).toEqual(['thinking', 'redacted_thinking', 'text']);
    expect(answer.content[0]).toMatchObject({ type: 'thinking', signature: expect.stringMatching(/^EuYBCkQYAi/) });
    expect(answer.content[1]).toEqual({ type: 'redacted_thinking', data: expect.stringMatching(/^EmwKAhgB/) });

    // A redacted block passes back up as it came, too.
    upstreamBodies.length = 0;
    await client.messages.create({ model: 'claude-thinking', max_tokens: 4096, system, thinking, messages: [{ role: 'user', content: 'Again?' }, { role: 'assistant', content: answer.content }, { role: 'user', content: 'Thanks.' }] });
    expect((upstreamBodies[0] as { messages: Array<{ content: unknown }> }).messages[1]!.content).toEqual(answer.content);

    // Thinking tokens are output tokens (Anthropic counts them in output_tokens): each request is charged its priced usage.
    const charges = await books.expectSettledBooks(org.orgId, { served: 3 });
    const expected = [first.usage, answer.usage, answer.usage].map((u) => u.input_tokens * PRICES.inputPricePerMTok + u.output_tokens * PRICES.outputPricePerMTok);
    expect(charges.map((c) => c.charged).sort()).toEqual(expected.sort());
  });

  it('an OpenAI-compatible deployment never sees the thinking option or thinking blocks', async () => {
    openAiBodies.length = 0;
    const reply = await anthropic().messages.create({
      model: 'oa',
      max_tokens: 2048,
      thinking: { type: 'enabled', budget_tokens: 1024 },
      messages: [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: [{ type: 'thinking', thinking: 'Greet back.', signature: 'sig-1' }, { type: 'redacted_thinking', data: 'opaque' }, { type: 'text', text: 'Hello!' }] },
        { role: 'user', content: 'How are you?' },
      ],
    });
    expect(reply.content).toEqual([{ type: 'text', text: 'Fine.' }]);
    const sent = openAiBodies[0]!;
    expect(sent).not.toHaveProperty('thinking');
    expect(sent).not.toHaveProperty('reasoning_effort');
    expect(sent.messages).toEqual([{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' }, { role: 'user', content: 'How are you?' }]);
  });

  it('keeps prompt-caching marks on the way to an Anthropic deployment', async () => {
    upstreamBodies.length = 0;
    const mark = { type: 'ephemeral' as const };
    await anthropic().messages.create({
      model: 'claude-tools',
      max_tokens: 64,
      system: [{ type: 'text', text: 'A long, stable system prompt.', cache_control: mark }],
      tools: [{ name: 'lookup', input_schema: { type: 'object' as const }, cache_control: mark }],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'A long document.', cache_control: mark }, { type: 'text', text: 'The question.' }] }],
    });
    const sent = upstreamBodies[0] as { system: unknown; tools: Array<Record<string, unknown>>; messages: Array<{ content: unknown }> };
    expect(sent.system).toEqual([{ type: 'text', text: 'A long, stable system prompt.', cache_control: mark }]);
    expect(sent.tools[0]).toMatchObject({ name: 'lookup', cache_control: mark });
    expect(sent.messages[0]!.content).toEqual([{ type: 'text', text: 'A long document.', cache_control: mark }, { type: 'text', text: 'The question.' }]);
  });

  it('count_tokens answers locally, without a charge', async () => {
    const org = await freshOrg();
    const body = { model: 'm', messages: [{ role: 'user' as const, content: 'How many tokens is this?' }] };
    const counted = await anthropic(org.key).messages.countTokens(body);
    expect(counted.input_tokens).toBeGreaterThan(5);
    expect(await anthropic(org.key).messages.countTokens({ ...body, system: 'A long system prompt that adds tokens.' })).toMatchObject({ input_tokens: expect.any(Number) });
    expect((await anthropic(org.key).messages.countTokens({ ...body, system: 'A long system prompt that adds tokens.' })).input_tokens).toBeGreaterThan(counted.input_tokens);
    expect(await books.charges(org.orgId)).toEqual([]);
  });

  it('errors come in Anthropic\'s format, typed by the SDK', async () => {
    const bad = await post('/v1/messages', { model: 'm', messages: [{ role: 'user', content: 'no max_tokens' }] });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text)).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('max_tokens') } });
    await expect(anthropic().messages.create({ model: 'nope', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(Anthropic.NotFoundError);
    await expect(anthropic('sk-nemo-wrong').messages.create({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(Anthropic.AuthenticationError);
    const unsupported = await post('/v1/messages', { model: 'm', max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'document', source: {} }] }] });
    expect(JSON.parse(unsupported.text)).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('document') } });
    const notJson = await fetch(`${gw.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': gw.apiKey }, body: '{' });
    expect(notJson.status).toBe(400);
    expect((await notJson.json()) as unknown).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
  });

  it('an org without credits gets 402 as a billing_error, and nothing is held', async () => {
    const broke = await freshOrg(0);
    const refused = await post('/v1/messages', { model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }, { 'x-api-key': broke.key });
    expect(refused.status).toBe(402);
    expect(JSON.parse(refused.text)).toMatchObject({ type: 'error', error: { type: 'billing_error' } });
    expect(await books.account(broke.orgId)).toEqual({ available: 0, held: 0 });
  });

  it('a guardrail refusal of the prompt is an invalid_request_error, and costs nothing', async () => {
    const org = await freshOrg();
    // Set before the key's first use, so no cached copy of the key predates the policy.
    await gw.gateway.admin.updateConfig(PLATFORM, org.orgId, { default_guardrail_policy: { deny_words: ['project falcon'] } });
    const refused = await post('/v1/messages', { model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'tell me about Project Falcon' }] }, { 'x-api-key': org.key });
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.text)).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', nemo_code: 'NR_GUARDRAIL_VIOLATION' } });
    expect(await books.charges(org.orgId)).toEqual([]);
  });

  it('a stream cut mid-way ends with an Anthropic error event, and its tokens are settled', async () => {
    const org = await freshOrg();
    const res = await post('/v1/messages', { model: 'cut', max_tokens: 40, stream: true, messages: [{ role: 'user', content: 'x' }] }, { 'x-api-key': org.key });
    expect(res.status).toBe(200);
    expect(res.contentType).toMatch(/text\/event-stream/);
    expect(res.text).toMatch(/^event: message_start\n/);
    expect(res.text).toMatch(/event: error\ndata: \{"type":"error","error":\{"type":"(api_error|overloaded_error)"/);
    expect(res.text).not.toContain('message_stop');
    await books.expectSettledBooks(org.orgId, { served: 1 });
  });

  it('completions.create (legacy): text_completion objects, streamed or not, charged like chat', async () => {
    const org = await freshOrg();
    const done = await openai(org.key).completions.create({ model: 'm', prompt: 'Once upon a time', max_tokens: 8 });
    expect(done).toMatchObject({ object: 'text_completion', model: 'm', choices: [{ index: 0, text: expect.stringMatching(/\S/), finish_reason: 'length', logprobs: null }] });
    expect(done.id).toMatch(/^cmpl-/);
    const stream = await openai(org.key).completions.create({ model: 'm', prompt: ['Once'], max_tokens: 4, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      expect(chunk.object).toBe('text_completion');
      text += chunk.choices[0]?.text ?? '';
      usage = chunk.usage ?? usage;
    }
    expect(text.split(' ').filter(Boolean)).toHaveLength(4);
    expect(usage).toMatchObject({ completion_tokens: 4 });
    const charges = await books.expectSettledBooks(org.orgId, { served: 2 });
    const expected = [done.usage!, usage!].map((u) => u.prompt_tokens * PRICES.inputPricePerMTok + u.completion_tokens * PRICES.outputPricePerMTok);
    expect(charges.map((c) => c.charged).sort()).toEqual(expected.sort());
    // What has no chat equivalent is refused by name.
    await expect(openai(org.key).completions.create({ model: 'm', prompt: ['a', 'b'] })).rejects.toMatchObject({ status: 400, param: 'prompt' });
    await expect(openai(org.key).completions.create({ model: 'm', prompt: 'x', echo: true })).rejects.toMatchObject({ status: 400, param: 'echo' });
  });

  it('counts each route under its own label in the request metrics', async () => {
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/nemo_requests_total\{route="messages",model="m",status_class="2xx"\} [1-9]/);
    expect(metrics).toMatch(/nemo_requests_total\{route="completions",model="m",status_class="2xx"\} [1-9]/);
  });
});
