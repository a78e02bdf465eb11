// OpenAI's Responses API (/v1/responses) through the gateway with the official openai SDK,
// unmodified: the chat exchange in another dialect, so each request is held and charged like a chat
// request; responses are stored in the org's nemo.stored_responses (before the answer's last bytes
// go out), continued with previous_response_id, retrieved and deleted, never across orgs; a stream
// cut mid-way ends with an error event, is settled and stores nothing. A capturing OpenAI-compatible
// upstream shows what a continuation sends upstream.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoredResponseRetention } from '../../src/logs/stored-response-retention.js';
import { PLATFORM, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { Books, fundedOrg } from './ledger/money-helpers.js';

const PRICES = { inputPricePerMTok: 2, outputPricePerMTok: 7 };
const WEATHER_TOOL = { type: 'function' as const, name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }, strict: false };

describe('/v1/responses', () => {
  let upstream: Server;
  let gw: TestGateway;
  let books: Books;
  const upstreamBodies: Array<{ messages: Array<{ role: string; content: unknown }> } & Record<string, unknown>> = [];

  const openai = (apiKey = gw.apiKey) => new OpenAI({ apiKey, baseURL: `${gw.url}/v1`, maxRetries: 0 });
  const post = (body: unknown, key = gw.apiKey) =>
    fetch(`${gw.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(body) }).then(async (res) => ({
      status: res.status,
      contentType: res.headers.get('content-type'),
      text: await res.text(),
    }));
  /** Rows of the org's stored responses, as the owner sees them (no RLS). */
  const storedRows = async (orgId: string) =>
    (await books.pool.query<{ response_id: string; model: string; key_id: string; retention_days: number }>(
      `SELECT response_id, model, key_id, round(extract(epoch FROM expires_at - created_at) / 86400)::int AS retention_days
         FROM nemo.stored_responses WHERE org_id = $1 ORDER BY created_at`,
      [orgId],
    )).rows;

  beforeAll(async () => {
    // An OpenAI-compatible upstream that records what it is sent and answers "Answer <n>".
    upstream = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(parts).toString()) as (typeof upstreamBodies)[number];
        upstreamBodies.push(body);
        // capture-reasoning reasons as DeepSeek and vLLM report it: reasoning_content and a count.
        const reasons = body.model === 'capture-reasoning';
        const message = { role: 'assistant', content: `Answer ${upstreamBodies.length}`, ...(reasons ? { reasoning_content: 'Let me think.' } : {}) };
        const usage = { prompt_tokens: 10, completion_tokens: reasons ? 6 : 2, total_tokens: reasons ? 16 : 12, ...(reasons ? { completion_tokens_details: { reasoning_tokens: 4 } } : {}) };
        const answer = { id: `chatcmpl-${upstreamBodies.length}`, object: 'chat.completion', created: 1, model: body.model, choices: [{ index: 0, message, finish_reason: 'stop', logprobs: null }], usage };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const baseUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`;
    gw = await startTestGateway({
      models: [
        { name: 'm', deployments: [{ provider: 'mock', model: 'm', ...PRICES, mock: { completionTokens: 12 } }] },
        { name: 'cut', deployments: [{ provider: 'mock', model: 'cut', ...PRICES, mock: { completionTokens: 40, fault: 'cut-mid-stream' } }] },
        { name: 'capture', deployments: [{ provider: 'openai-compatible', model: 'capture', baseUrl, ...PRICES }] },
        { name: 'capture-reasoning', deployments: [{ provider: 'openai-compatible', model: 'capture-reasoning', baseUrl, ...PRICES }] },
        { name: 'reasoner', deployments: [{ provider: 'mock', model: 'reasoner', ...PRICES, mock: { completionTokens: 5, reasoningTokens: 3 } }] },
      ],
    });
    books = new Books(gw.database);
  });

  afterAll(async () => {
    await books?.close();
    await gw?.close();
    await new Promise((r) => upstream?.close(r));
  });

  /** A funded org of its own, so its books hold only the requests of one test. */
  const freshOrg = (micros = 10_000_000) => fundedOrg(gw.gateway, micros, 'responses org');
  const priced = (usage: { input_tokens: number; output_tokens: number }) => usage.input_tokens * PRICES.inputPricePerMTok + usage.output_tokens * PRICES.outputPricePerMTok;

  it('responses.create: a response object, charged at its priced usage, stored and retrieved as sent', async () => {
    const org = await freshOrg();
    const client = openai(org.key);
    const response = await client.responses.create({ model: 'm', instructions: 'Be brief.', input: 'Say something.', max_output_tokens: 64, metadata: { ticket: 't-1' } });
    expect(response).toMatchObject({ object: 'response', status: 'completed', model: 'm', instructions: 'Be brief.', max_output_tokens: 64, metadata: { ticket: 't-1' }, store: true, previous_response_id: null, error: null });
    expect(response.id).toMatch(/^resp_[0-9a-f]{48}$/);
    expect(response.output).toEqual([{ id: expect.stringMatching(/^msg_/), type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: expect.stringMatching(/\S/), annotations: [] }] }]);
    expect(response.output_text).toMatch(/\S/);
    expect(response.usage).toMatchObject({ output_tokens: 12, input_tokens_details: { cached_tokens: 0 }, output_tokens_details: { reasoning_tokens: 0 } });
    expect(response.usage!.total_tokens).toBe(response.usage!.input_tokens + 12);
    await books.expectSettledBooks(org.orgId, { served: 1, charge: priced(response.usage!) });

    expect(await client.responses.retrieve(response.id)).toEqual(response);
    expect(await storedRows(org.orgId)).toEqual([{ response_id: response.id, model: 'm', key_id: expect.any(String), retention_days: 30 }]);
  });

  it('responses.create with stream: typed events numbered in order, the final response from response.completed, charged once and stored', async () => {
    const org = await freshOrg();
    const client = openai(org.key);
    const stream = await client.responses.create({ model: 'm', input: 'Stream it.', max_output_tokens: 5, stream: true });
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const event of stream) events.push(event);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const types = events.map((e) => e.type);
    expect(types.slice(0, 4)).toEqual(['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
    expect(types.filter((t) => t === 'response.output_text.delta')).toHaveLength(5);
    expect(types.slice(-4)).toEqual(['response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.incomplete']);
    const final = events.at(-1) as OpenAI.Responses.ResponseIncompleteEvent;
    expect(final.response).toMatchObject({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, usage: { output_tokens: 5 } });
    await books.expectSettledBooks(org.orgId, { served: 1, charge: priced(final.response.usage!) });
    const retrieved = await client.responses.retrieve(final.response.id);
    expect(retrieved.output).toEqual(final.response.output);
    expect(retrieved.usage).toEqual(final.response.usage);

    // The SDK's own stream helper assembles the same events into its final response.
    const helper = client.responses.stream({ model: 'm', input: 'Again.' });
    const assembled = await helper.finalResponse();
    expect(assembled.status).toBe('completed');
    expect(assembled.output_text.split(' ').filter(Boolean)).toHaveLength(12);
  });

  it('previous_response_id continues a stored conversation: its input and answer go upstream, its instructions do not', async () => {
    const client = openai();
    const first = await client.responses.create({ model: 'capture', instructions: 'Rules one.', input: 'My name is Ada.' });
    upstreamBodies.length = 0;
    const second = await client.responses.create({ model: 'capture', instructions: 'Rules two.', input: [{ role: 'user', content: [{ type: 'input_text', text: 'What is my name?' }] }], previous_response_id: first.id });
    expect(second.previous_response_id).toBe(first.id);
    expect(upstreamBodies[0]!.messages).toEqual([
      { role: 'system', content: 'Rules two.' },
      { role: 'user', content: 'My name is Ada.' },
      { role: 'assistant', content: first.output_text },
      { role: 'user', content: [{ type: 'text', text: 'What is my name?' }] },
    ]);
    // A chain: the third turn carries both earlier ones.
    upstreamBodies.length = 0;
    await client.responses.create({ model: 'capture', input: 'And now?', previous_response_id: second.id });
    expect(upstreamBodies[0]!.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant', 'user']);
  });

  it('a function call round trip: the call stored, its output sent back by previous_response_id', async () => {
    const client = openai();
    const called = await client.responses.create({ model: 'm', input: 'Weather in Paris?', tools: [WEATHER_TOOL] });
    const call = called.output.find((item): item is OpenAI.Responses.ResponseFunctionToolCall => item.type === 'function_call');
    expect(call).toMatchObject({ type: 'function_call', name: 'get_weather', call_id: expect.any(String), status: 'completed' });
    expect(JSON.parse(call!.arguments)).toMatchObject({ city: expect.any(String) });
    const answered = await client.responses.create({ model: 'm', previous_response_id: called.id, tools: [WEATHER_TOOL], input: [{ type: 'function_call_output', call_id: call!.call_id, output: '18 C and sunny' }] });
    expect(answered.output).toEqual([expect.objectContaining({ type: 'message' })]);

    // Streamed, the call comes as function_call_arguments events.
    const stream = client.responses.stream({ model: 'm', input: 'Weather in Oslo?', tools: [WEATHER_TOOL] });
    const types: string[] = [];
    stream.on('event', (event) => types.push(event.type));
    const final = await stream.finalResponse();
    expect(types).toContain('response.function_call_arguments.delta');
    expect(types).toContain('response.function_call_arguments.done');
    expect(final.output).toEqual([expect.objectContaining({ type: 'function_call', name: 'get_weather' })]);
  });

  it('responses.delete removes it: retrieve and previous_response_id answer 404 after', async () => {
    const client = openai();
    const response = await client.responses.create({ model: 'm', input: 'x' });
    const deleted = await fetch(`${gw.url}/v1/responses/${response.id}`, { method: 'DELETE', headers: gw.auth });
    expect(deleted.status).toBe(200);
    expect(await deleted.json()).toEqual({ id: response.id, object: 'response', deleted: true });
    await expect(client.responses.retrieve(response.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(client.responses.delete(response.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(client.responses.create({ model: 'm', input: 'y', previous_response_id: response.id })).rejects.toMatchObject({ status: 404, param: 'previous_response_id' });
    // The SDK's own delete succeeds on a stored one.
    const other = await client.responses.create({ model: 'm', input: 'z' });
    await client.responses.delete(other.id);
    await expect(client.responses.retrieve(other.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('inputItems.list: the items a response was generated from, earlier turns included, paged by after, limit and order', async () => {
    const client = openai();
    const first = await client.responses.create({ model: 'm', instructions: 'Not an item.', input: 'My name is Ada.' });
    const second = await client.responses.create({
      model: 'm',
      previous_response_id: first.id,
      input: [
        { role: 'developer', content: 'Answer in one word.' },
        { role: 'user', content: [{ type: 'input_text', text: 'What is my name?' }, { type: 'input_image', image_url: 'https://example.com/a.png', detail: 'low' }] },
      ],
    });
    const asc = await client.responses.inputItems.list(second.id, { order: 'asc' });
    expect(asc.data).toEqual([
      { id: expect.stringMatching(/^msg_[0-9a-f]{48}$/), type: 'message', status: 'completed', role: 'user', content: [{ type: 'input_text', text: 'My name is Ada.' }] },
      { id: expect.stringMatching(/^msg_/), type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: first.output_text, annotations: [] }] },
      { id: expect.stringMatching(/^msg_/), type: 'message', status: 'completed', role: 'developer', content: [{ type: 'input_text', text: 'Answer in one word.' }] },
      {
        id: expect.stringMatching(/^msg_/), type: 'message', status: 'completed', role: 'user',
        content: [{ type: 'input_text', text: 'What is my name?' }, { type: 'input_image', image_url: 'https://example.com/a.png', detail: 'low' }],
      },
    ]);
    expect(asc).toMatchObject({ has_more: false });
    // OpenAI's default order is desc; ids are stable from one call to the next.
    const desc = await client.responses.inputItems.list(second.id);
    expect(desc.data.map((i) => i.id)).toEqual(asc.data.map((i) => i.id).reverse());
    // One item per page: the SDK follows `after` (the last id) while has_more.
    const paged: string[] = [];
    for await (const item of client.responses.inputItems.list(second.id, { order: 'asc', limit: 1 })) paged.push(item.id!);
    expect(paged).toEqual(asc.data.map((i) => i.id));
    const page = await fetch(`${gw.url}/v1/responses/${second.id}/input_items?order=asc&limit=2&after=${asc.data[0]!.id!}`, { headers: gw.auth });
    expect(await page.json()).toEqual({ object: 'list', data: asc.data.slice(1, 3), first_id: asc.data[1]!.id, last_id: asc.data[2]!.id, has_more: true });

    // Function calls and their outputs come back as their items.
    const called = await client.responses.create({ model: 'm', input: 'Weather in Paris?', tools: [WEATHER_TOOL] });
    const call = called.output.find((item): item is OpenAI.Responses.ResponseFunctionToolCall => item.type === 'function_call')!;
    const answered = await client.responses.create({ model: 'm', previous_response_id: called.id, tools: [WEATHER_TOOL], input: [{ type: 'function_call_output', call_id: call.call_id, output: '18 C' }] });
    const items = (await client.responses.inputItems.list(answered.id, { order: 'asc' })).data;
    expect(items.map((i) => i.type)).toEqual(['message', 'function_call', 'function_call_output']);
    expect(items[1]).toMatchObject({ type: 'function_call', call_id: call.call_id, name: 'get_weather', arguments: call.arguments });
    expect(items[2]).toMatchObject({ type: 'function_call_output', call_id: call.call_id, output: '18 C' });

    // Bad parameters are refused by name; an unknown id is a 404.
    await expect(client.responses.inputItems.list(second.id, { limit: 101 })).rejects.toMatchObject({ status: 400, param: 'limit' });
    await expect(client.responses.inputItems.list(second.id, { order: 'sideways' as 'asc' })).rejects.toMatchObject({ status: 400, param: 'order' });
    await expect(client.responses.inputItems.list(second.id, { after: 'msg_unknown' })).rejects.toMatchObject({ status: 400, param: 'after' });
    await expect(client.responses.inputItems.list('resp_unknown')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('responses.cancel: background mode is not supported, so a stored response answers 400 as a synchronous one does at OpenAI', async () => {
    const client = openai();
    const response = await client.responses.create({ model: 'm', input: 'x' });
    const refused = await client.responses.cancel(response.id).then(() => undefined, (err: unknown) => err);
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    expect(refused).toMatchObject({ status: 400, type: 'invalid_request_error', message: expect.stringContaining('background') });
    expect((await client.responses.retrieve(response.id)).status).toBe('completed');
    await expect(client.responses.cancel('resp_unknown')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const wrongMethod = await fetch(`${gw.url}/v1/responses/${response.id}/cancel`, { headers: gw.auth });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
    // Background requests stay refused by name.
    await expect(client.responses.create({ model: 'm', input: 'x', background: true })).rejects.toMatchObject({ status: 400, param: 'background' });
  });

  it('reasoning the upstream reports is a reasoning item: its text first, or a bare item from the usage count, and priced', async () => {
    const org = await freshOrg();
    const client = openai(org.key);
    const texted = await client.responses.create({ model: 'capture-reasoning', input: 'Think first.' });
    expect(texted.output.map((i) => i.type)).toEqual(['reasoning', 'message']);
    expect(texted.output[0]).toMatchObject({ id: expect.stringMatching(/^rs_/), type: 'reasoning', summary: [], content: [{ type: 'reasoning_text', text: 'Let me think.' }] });
    expect(texted.usage).toMatchObject({ output_tokens: 6, output_tokens_details: { reasoning_tokens: 4 } });
    // The continuation sends the answer back, not the reasoning.
    upstreamBodies.length = 0;
    await client.responses.create({ model: 'capture-reasoning', input: 'And then?', previous_response_id: texted.id });
    expect(upstreamBodies[0]!.messages[1]).toEqual({ role: 'assistant', content: texted.output_text });

    const counted = await client.responses.create({ model: 'reasoner', input: 'Think.' });
    expect(counted.output.map((i) => i.type)).toEqual(['reasoning', 'message']);
    expect(counted.output[0]).toEqual({ id: expect.stringMatching(/^rs_/), type: 'reasoning', status: 'completed', summary: [] });
    expect(counted.usage).toMatchObject({ output_tokens: 8, output_tokens_details: { reasoning_tokens: 3 } });

    // Streamed, reasoning known from the usage alone comes last, announced and done before response.completed.
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    const stream = await client.responses.create({ model: 'reasoner', input: 'Think.', stream: true });
    for await (const event of stream) events.push(event);
    expect(events.map((e) => e.type).slice(-3)).toEqual(['response.output_item.added', 'response.output_item.done', 'response.completed']);
    const completed = events.at(-1) as OpenAI.Responses.ResponseCompletedEvent;
    expect(completed.response.output.map((i) => i.type)).toEqual(['message', 'reasoning']);
    expect((events.at(-2) as OpenAI.Responses.ResponseOutputItemDoneEvent).output_index).toBe(1);
    expect((await client.responses.retrieve(completed.response.id)).output).toEqual(completed.response.output);
    // Reasoning tokens are output tokens: every request charged its priced usage (no reasoning price: the output price).
    const charges = await books.expectSettledBooks(org.orgId, { served: 4 });
    const expected = [texted.usage!, texted.usage!, counted.usage!, completed.response.usage!].map(priced);
    expect(charges.map((c) => c.charged).sort()).toEqual(expected.sort());
  });

  it('store: false answers as usual and keeps nothing', async () => {
    const org = await freshOrg();
    const client = openai(org.key);
    const response = await client.responses.create({ model: 'm', input: 'x', store: false });
    expect(response).toMatchObject({ status: 'completed', store: false });
    await expect(client.responses.retrieve(response.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(client.responses.create({ model: 'm', input: 'y', previous_response_id: response.id })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect(await storedRows(org.orgId)).toEqual([]);
  });

  it('keeps a response its org\'s log retention, and never serves or keeps one past it', async () => {
    const org = await freshOrg();
    // Set before the key's first use, so its first lookup carries it.
    await gw.gateway.admin.updateConfig(PLATFORM, org.orgId, { log_retention_days: 3 });
    const client = openai(org.key);
    const response = await client.responses.create({ model: 'm', input: 'x' });
    expect(await storedRows(org.orgId)).toEqual([expect.objectContaining({ response_id: response.id, retention_days: 3 })]);

    // Three expired rows, swept in batches of two; a fresh one stays.
    await client.responses.create({ model: 'm', input: 'x' });
    await client.responses.create({ model: 'm', input: 'x' });
    await books.pool.query("UPDATE nemo.stored_responses SET expires_at = now() - interval '1 second' WHERE org_id = $1", [org.orgId]);
    await expect(client.responses.retrieve(response.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(client.responses.create({ model: 'm', input: 'y', previous_response_id: response.id })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const kept = await client.responses.create({ model: 'm', input: 'kept' });
    const retention = new StoredResponseRetention(gw.gateway.db, { intervalMs: 60_000, batchRows: 2 });
    expect(await retention.runOnce()).toBe(3);
    await retention.close();
    expect((await storedRows(org.orgId)).map((r) => r.response_id)).toEqual([kept.id]);
  });

  it('another org answers 404 to retrieve, delete, input items, cancel and previous_response_id, and the response stays', async () => {
    const owner = await freshOrg();
    const stranger = await freshOrg();
    const response = await openai(owner.key).responses.create({ model: 'm', input: 'private' });
    await expect(openai(stranger.key).responses.retrieve(response.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const deleted = await fetch(`${gw.url}/v1/responses/${response.id}`, { method: 'DELETE', headers: stranger.auth });
    expect(deleted.status).toBe(404);
    expect(await deleted.json()).toMatchObject({ error: { code: 'not_found', nemo_code: 'NR_NOT_FOUND' } });
    await expect(openai(stranger.key).responses.create({ model: 'm', input: 'x', previous_response_id: response.id })).rejects.toMatchObject({ status: 404, param: 'previous_response_id', message: expect.stringContaining('previous response not found') });
    await expect(openai(stranger.key).responses.inputItems.list(response.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(openai(stranger.key).responses.cancel(response.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect(await books.charges(stranger.orgId)).toEqual([]);
    expect((await openai(owner.key).responses.retrieve(response.id)).id).toBe(response.id);
    expect((await openai(owner.key).responses.inputItems.list(response.id)).data).toEqual([expect.objectContaining({ role: 'user', content: [{ type: 'input_text', text: 'private' }] })]);
  });

  it('an org without credits gets 402 insufficient_quota, and nothing is held or stored', async () => {
    const broke = await freshOrg(0);
    await expect(openai(broke.key).responses.create({ model: 'm', input: 'x' })).rejects.toMatchObject({ status: 402, code: 'insufficient_quota' });
    expect(await books.account(broke.orgId)).toEqual({ available: 0, held: 0 });
    expect(await storedRows(broke.orgId)).toEqual([]);
  });

  it('a guardrail refusal of the prompt is a 400 guardrail_violation, and costs nothing', async () => {
    const org = await freshOrg();
    // Set before the key's first use, so its first lookup carries it.
    await gw.gateway.admin.updateConfig(PLATFORM, org.orgId, { default_guardrail_policy: { deny_words: ['project falcon'] } });
    const refused = await post({ model: 'm', input: 'tell me about Project Falcon' }, org.key);
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.text)).toMatchObject({ error: { type: 'invalid_request_error', code: 'guardrail_violation', nemo_code: 'NR_GUARDRAIL_VIOLATION' } });
    expect(await books.charges(org.orgId)).toEqual([]);
    expect(await storedRows(org.orgId)).toEqual([]);
  });

  it('a stream cut mid-way ends with an error event, its tokens are settled, and nothing is stored', async () => {
    const org = await freshOrg();
    const res = await post({ model: 'cut', input: 'x', max_output_tokens: 40, stream: true }, org.key);
    expect(res.status).toBe(200);
    expect(res.contentType).toMatch(/text\/event-stream/);
    expect(res.text).toMatch(/^event: response\.created\n/);
    expect(res.text).toContain('event: response.output_text.delta');
    expect(res.text).toMatch(/event: error\ndata: \{"error":\{/);
    expect(res.text).not.toContain('response.completed');
    await books.expectSettledBooks(org.orgId, { served: 1 });
    expect(await storedRows(org.orgId)).toEqual([]);
    // The SDK raises the error event.
    const stream = await openai(org.key).responses.create({ model: 'cut', input: 'x', stream: true });
    await expect((async () => {
      for await (const _ of stream) void _;
    })()).rejects.toBeInstanceOf(OpenAI.APIError);
  });

  it('refuses what has no chat equivalent by name, in OpenAI\'s error format', async () => {
    await expect(openai().responses.create({ model: 'm', input: 'x', tools: [{ type: 'web_search' }] })).rejects.toMatchObject({ status: 400, param: 'tools[0].type' });
    await expect(openai().responses.create({ model: 'm', input: 'x', truncation: 'auto' })).rejects.toMatchObject({ status: 400, param: 'truncation' });
    const unknownModel = await post({ model: 'nope', input: 'x' });
    expect(unknownModel.status).toBe(404);
    expect(JSON.parse(unknownModel.text)).toMatchObject({ error: { code: 'model_not_found' } });
    const badKey = await fetch(`${gw.url}/v1/responses/resp_x`, { headers: { authorization: 'Bearer sk-nemo-wrong' } });
    expect(badKey.status).toBe(401);
    const wrongMethod = await fetch(`${gw.url}/v1/responses/resp_x`, { method: 'PUT', headers: gw.auth });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('GET, DELETE');
  });

  it('counts the route under its own label in the request metrics', async () => {
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/nemo_requests_total\{route="responses",model="m",status_class="2xx"\} [1-9]/);
  });
});
