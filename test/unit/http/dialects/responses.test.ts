// The Responses dialect on its own: requests translated to OpenAI chat and refusals by field, OpenAI
// chunks re-encoded as typed events with consecutive sequence numbers, complete answers as response
// objects, a stored conversation continued, and the answer sealed (stored) as it is sent. Postgres is
// a recording fake here; the integration suite runs the real table.
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { Database } from '../../../../src/db/database.js';
import { GatewayError } from '../../../../src/errors/gateway-error.js';
import type { DialectContext, Frame } from '../../../../src/http/dialects/dialect.js';
import { responsesDialect } from '../../../../src/http/dialects/openai-responses.js';
import type { ChatRequest } from '../../../../src/providers/types.js';
import type { KeyPrincipal } from '../../../../src/tenancy/principal.js';

interface Query {
  readonly orgId: string;
  readonly sql: string;
  readonly values: unknown[];
}

/** withTenant over a client that records each query and answers with `rows`. */
function fakeDb(rows: unknown[] = []): { db: Pick<Database, 'withTenant'>; queries: Query[] } {
  const queries: Query[] = [];
  const db = {
    withTenant: async <T>(orgId: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> =>
      fn({ query: async (sql: string, values: unknown[]) => (queries.push({ orgId, sql, values }), { rows, rowCount: rows.length }) } as unknown as pg.PoolClient),
  };
  return { db, queries };
}

const PRINCIPAL = { kind: 'key', orgId: '00000000-0000-4000-8000-00000000000a', keyId: '00000000-0000-4000-8000-00000000000b', logRetentionDays: null } as unknown as KeyPrincipal;
const dialectWith = (rows: unknown[] = []) => {
  const fake = fakeDb(rows);
  return { dialect: responsesDialect({ db: fake.db, config: { logs: { retentionDays: 30 } } }), queries: fake.queries };
};
const { dialect } = dialectWith();
const parse = (body: unknown) => dialect.parseRequest(JSON.stringify(body));
const ctxFor = (request: ChatRequest, principal = PRINCIPAL): DialectContext => ({ requestId: 'req1', model: 'm', created: 7, clientWantsUsage: true, principal, request });
const chunk = (delta: unknown, finish: string | null = null) => `data: ${JSON.stringify({ id: 'chatcmpl-abc', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
const usageChunk = (usage: unknown) => `data: ${JSON.stringify({ id: 'chatcmpl-abc', choices: [], usage })}\n\n`;

type Event = Record<string, unknown> & { type: string; sequence_number: number };

/** Parses frames as `event: <type>` + `data: <json>` pairs, checking the two name the same type. */
function eventsOf(frames: Frame[]): Event[] {
  return frames.map((f) => {
    const [, name, data] = /^event: (\S+)\ndata: (.*)\n\n$/s.exec(String(f))!;
    const event = JSON.parse(data!) as Event;
    expect(event.type).toBe(name);
    return event;
  });
}

describe('Responses request translation', () => {
  it('maps instructions, input items, tools, tool_choice, text.format, max_output_tokens, reasoning.effort and user', () => {
    const request = parse({
      model: 'm',
      instructions: 'Be brief.',
      input: [
        { role: 'developer', content: 'Dev note.' },
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hi' }, { type: 'input_image', image_url: 'data:image/png;base64,AAAA', detail: 'low' }] },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Checking.', annotations: [] }] },
        { type: 'reasoning', id: 'rs_1', summary: [] },
        { type: 'function_call', call_id: 'call_1', name: 'lookup', arguments: '{"q":1}' },
        { type: 'function_call', call_id: 'call_2', name: 'lookup', arguments: '{"q":2}' },
        { type: 'function_call_output', call_id: 'call_1', output: 'found' },
        { type: 'function_call_output', call_id: 'call_2', output: [{ type: 'input_text', text: 'also ' }, { type: 'input_text', text: 'found' }] },
      ],
      max_output_tokens: 100,
      temperature: 0.5,
      top_p: 0.9,
      tools: [{ type: 'function', name: 'lookup', description: 'Look up', parameters: { type: 'object', properties: {} }, strict: true }],
      tool_choice: { type: 'function', name: 'lookup' },
      parallel_tool_calls: false,
      text: { format: { type: 'json_schema', name: 'answer', schema: { type: 'object' }, strict: true } },
      user: 'u-1',
      metadata: { ticket: '42' },
      reasoning: { effort: 'low' },
      truncation: 'disabled',
      store: false,
    });
    expect(request.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'developer', content: 'Dev note.' },
      { role: 'user', content: [{ type: 'text', text: 'Hi' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA', detail: 'low' } }] },
      // The turn's calls join its message, as chat has it.
      { role: 'assistant', content: 'Checking.', tool_calls: [
        { id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '{"q":1}' } },
        { id: 'call_2', type: 'function', function: { name: 'lookup', arguments: '{"q":2}' } },
      ] },
      { role: 'tool', tool_call_id: 'call_1', content: 'found' },
      { role: 'tool', tool_call_id: 'call_2', content: 'also found' },
    ]);
    expect(request).toEqual({
      model: 'm',
      messages: request.messages,
      max_tokens: 100,
      temperature: 0.5,
      top_p: 0.9,
      tools: [{ type: 'function', function: { name: 'lookup', description: 'Look up', parameters: { type: 'object', properties: {} }, strict: true } }],
      tool_choice: { type: 'function', function: { name: 'lookup' } },
      parallel_tool_calls: false,
      response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object' }, strict: true } },
      // Chat's name for reasoning.effort.
      reasoning_effort: 'low',
      user: 'u-1',
    });
  });

  it('takes a string input as one user message, json_object as response_format, and leaves store on by default', () => {
    const request = parse({ model: 'm', input: 'Hello', text: { format: { type: 'json_object' } } });
    expect(request).toEqual({ model: 'm', messages: [{ role: 'user', content: 'Hello' }], response_format: { type: 'json_object' } });
    expect(dialect.open(ctxFor(request)).seal).toBeTypeOf('function');
    expect(dialect.open(ctxFor(parse({ model: 'm', input: 'x', store: false }))).seal).toBeUndefined();
  });

  it('asks for usage at the end of every stream', () => {
    expect(parse({ model: 'm', input: 'x', stream: true })).toMatchObject({ stream: true, stream_options: { include_usage: true } });
  });

  it('ignores null fields, whatever their name', () => {
    expect(parse({ model: 'm', input: 'x', prompt: null, include: null, instructions: null })).toEqual({ model: 'm', messages: [{ role: 'user', content: 'x' }] });
  });

  it.each([
    [{ model: 'm' }, 'input'],
    [{ model: 'm', input: [] }, 'input'],
    [{ input: 'x' }, 'model'],
    [{ model: 'm', input: 'x', tools: [{ type: 'web_search' }] }, 'tools[0].type'],
    [{ model: 'm', input: 'x', tools: [{ type: 'file_search', vector_store_ids: ['vs_1'] }] }, 'tools[0].type'],
    [{ model: 'm', input: 'x', tools: [{ type: 'function' }] }, 'tools[0].name'],
    [{ model: 'm', input: 'x', tool_choice: { type: 'web_search_preview' } }, 'tool_choice.type'],
    [{ model: 'm', input: 'x', tool_choice: 'sometimes' }, 'tool_choice'],
    [{ model: 'm', input: 'x', truncation: 'auto' }, 'truncation'],
    [{ model: 'm', input: 'x', background: true }, 'background'],
    [{ model: 'm', input: 'x', include: ['message.output_text.logprobs'] }, 'include'],
    [{ model: 'm', input: 'x', prompt: { id: 'pmpt_1' } }, 'prompt'],
    [{ model: 'm', input: 'x', conversation: 'conv_1' }, 'conversation'],
    [{ model: 'm', input: 'x', top_logprobs: 2 }, 'top_logprobs'],
    [{ model: 'm', input: 'x', text: { format: { type: 'grammar' } } }, 'text.format.type'],
    [{ model: 'm', input: 'x', text: { format: { type: 'json_schema', schema: {} } } }, 'text.format.name'],
    [{ model: 'm', input: 'x', max_output_tokens: 0 }, 'max_output_tokens'],
    [{ model: 'm', input: 'x', temperature: 3 }, 'temperature'],
    [{ model: 'm', input: 'x', metadata: { n: 1 } }, 'metadata'],
    [{ model: 'm', input: 'x', previous_response_id: 5 }, 'previous_response_id'],
    [{ model: 'm', input: 'x', store: 'yes' }, 'store'],
    [{ model: 'm', input: [{ role: 'tool', content: 'x' }] }, 'input[0].role'],
    [{ model: 'm', input: [{ type: 'item_reference', id: 'msg_1' }] }, 'input[0].type'],
    [{ model: 'm', input: [{ role: 'user', content: [{ type: 'input_file', file_id: 'file_1' }] }] }, 'input[0].content[0].type'],
    [{ model: 'm', input: [{ role: 'user', content: [{ type: 'input_image', file_id: 'file_1' }] }] }, 'input[0].content[0].image_url'],
    [{ model: 'm', input: [{ role: 'system', content: [{ type: 'input_image', image_url: 'https://x/y.png' }] }] }, 'input[0].content[0]'],
    [{ model: 'm', input: [{ type: 'function_call', call_id: 'c', name: 'f' }] }, 'input[0].arguments'],
    [{ model: 'm', input: [{ type: 'function_call_output', output: 'x' }] }, 'input[0].call_id'],
  ])('refuses %j naming %s', (body, param) => {
    expect(() => parse(body)).toThrow(expect.objectContaining({ code: 'NR_INVALID_REQUEST', param }));
  });
});

describe('Responses stream encoding', () => {
  it('sends the typed events in order, numbered from 0 without gaps, and the whole response at the end', () => {
    const request = parse({ model: 'm', input: 'x', stream: true, tools: [{ type: 'function', name: 'f' }], metadata: { a: 'b' } });
    const encoder = dialect.open(ctxFor(request)).streamEncoder();
    const out: Frame[] = [];
    encoder.frames([
      chunk({ role: 'assistant', content: '' }),
      chunk({ content: 'Hel' }),
      chunk({ content: 'lo' }),
      chunk({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'f', arguments: '' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '{"a":' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '1}' } }] }),
      chunk({}, 'tool_calls'),
      usageChunk({ prompt_tokens: 10, completion_tokens: 4, total_tokens: 14, prompt_tokens_details: { cached_tokens: 6 }, completion_tokens_details: { reasoning_tokens: 1 } }),
      'data: [DONE]\n\n',
    ], out);
    const beforeEnd = out.length;
    encoder.end(out);
    const events = eventsOf(out);
    expect(events.map((e) => e.type)).toEqual([
      'response.created', 'response.in_progress',
      'response.output_item.added', 'response.content_part.added', 'response.output_text.delta', 'response.output_text.delta',
      'response.output_text.done', 'response.content_part.done', 'response.output_item.done',
      'response.output_item.added', 'response.function_call_arguments.delta', 'response.function_call_arguments.delta',
      // The last item closes with the stream, after the seal; the reasoning the usage reports comes last.
      'response.function_call_arguments.done', 'response.output_item.done', 'response.output_item.added', 'response.output_item.done', 'response.completed',
    ]);
    expect(beforeEnd).toBe(12);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));

    const [created, , added, , delta, , textDone, partDone, messageDone, callAdded, , , argsDone, callDone, reasoningAdded, reasoningDone, completed] = events;
    expect(created!.response).toMatchObject({ object: 'response', status: 'in_progress', model: 'm', output: [], usage: null, metadata: { a: 'b' }, created_at: 7 });
    const messageId = (added!.item as { id: string }).id;
    expect(messageId).toMatch(/^msg_[0-9a-f]{48}$/);
    expect(added).toMatchObject({ output_index: 0, item: { type: 'message', status: 'in_progress', role: 'assistant', content: [] } });
    expect(delta).toMatchObject({ item_id: messageId, output_index: 0, content_index: 0, delta: 'Hel' });
    expect(textDone).toMatchObject({ item_id: messageId, text: 'Hello' });
    expect(partDone).toMatchObject({ part: { type: 'output_text', text: 'Hello', annotations: [] } });
    expect(messageDone).toMatchObject({ output_index: 0, item: { id: messageId, status: 'completed', content: [{ type: 'output_text', text: 'Hello' }] } });
    expect(callAdded).toMatchObject({ output_index: 1, item: { type: 'function_call', status: 'in_progress', call_id: 'call_1', name: 'f', arguments: '' } });
    expect((callAdded!.item as { id: string }).id).toMatch(/^fc_/);
    expect(argsDone).toMatchObject({ output_index: 1, name: 'f', arguments: '{"a":1}' });
    expect(callDone).toMatchObject({ output_index: 1, item: { type: 'function_call', status: 'completed', call_id: 'call_1', arguments: '{"a":1}' } });
    expect(reasoningAdded).toMatchObject({ output_index: 2, item: { type: 'reasoning', status: 'in_progress', summary: [] } });
    expect(reasoningDone).toMatchObject({ output_index: 2, item: { id: (reasoningAdded!.item as { id: string }).id, type: 'reasoning', status: 'completed', summary: [] } });
    const response = completed!.response as Record<string, unknown>;
    expect(response).toMatchObject({
      id: (created!.response as { id: string }).id,
      status: 'completed',
      incomplete_details: null,
      output: [messageDone!.item, callDone!.item, reasoningDone!.item],
      usage: { input_tokens: 10, input_tokens_details: { cached_tokens: 6 }, output_tokens: 4, output_tokens_details: { reasoning_tokens: 1 }, total_tokens: 14 },
      tools: [{ type: 'function', name: 'f', description: null, parameters: null, strict: null }],
      tool_choice: 'auto',
      store: true,
      error: null,
    });
  });

  it('streams reasoning_content as a reasoning item with reasoning_text events, before the message', () => {
    const request = parse({ model: 'm', input: 'x', stream: true });
    const encoder = dialect.open(ctxFor(request)).streamEncoder();
    const out: Frame[] = [];
    encoder.frames([
      chunk({ role: 'assistant', reasoning_content: 'Let me ' }),
      chunk({ reasoning_content: 'think.' }),
      chunk({ content: 'Done.' }),
      chunk({}, 'stop'),
      usageChunk({ prompt_tokens: 3, completion_tokens: 9, total_tokens: 12, completion_tokens_details: { reasoning_tokens: 7 } }),
    ], out);
    encoder.end(out);
    const events = eventsOf(out);
    expect(events.map((e) => e.type)).toEqual([
      'response.created', 'response.in_progress',
      'response.output_item.added', 'response.content_part.added', 'response.reasoning_text.delta', 'response.reasoning_text.delta',
      'response.reasoning_text.done', 'response.content_part.done', 'response.output_item.done',
      'response.output_item.added', 'response.content_part.added', 'response.output_text.delta',
      'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed',
    ]);
    const reasoning = events[2]!.item as { id: string };
    expect(reasoning).toMatchObject({ id: expect.stringMatching(/^rs_[0-9a-f]{48}$/), type: 'reasoning', status: 'in_progress', summary: [], content: [] });
    expect(events[3]).toMatchObject({ item_id: reasoning.id, output_index: 0, content_index: 0, part: { type: 'reasoning_text', text: '' } });
    expect(events[5]).toMatchObject({ item_id: reasoning.id, output_index: 0, content_index: 0, delta: 'think.' });
    expect(events[6]).toMatchObject({ item_id: reasoning.id, text: 'Let me think.' });
    const item = { id: reasoning.id, type: 'reasoning', status: 'completed', summary: [], content: [{ type: 'reasoning_text', text: 'Let me think.' }] };
    expect(events[8]).toMatchObject({ output_index: 0, item });
    expect(events[9]).toMatchObject({ output_index: 1, item: { type: 'message' } });
    // Reasoning with its text is not repeated at the end for its count.
    expect((events.at(-1)!.response as { output: unknown[] }).output).toEqual([item, events[14]!.item]);
  });

  it('ends a stream cut at max_output_tokens with response.incomplete, and closes one that sent no chunk', () => {
    const request = parse({ model: 'm', input: 'x', stream: true, max_output_tokens: 1 });
    const encoder = dialect.open(ctxFor(request)).streamEncoder();
    const out: Frame[] = [];
    encoder.frames([chunk({ content: 'x' }, 'length')], out);
    encoder.end(out);
    const events = eventsOf(out);
    expect(events.at(-1)).toMatchObject({ type: 'response.incomplete', response: { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, max_output_tokens: 1 } });
    expect(events.at(-2)).toMatchObject({ type: 'response.output_item.done', item: { status: 'incomplete' } });

    const empty: Frame[] = [];
    const silent = dialect.open(ctxFor(request)).streamEncoder();
    silent.end(empty);
    silent.end(empty);
    expect(eventsOf(empty).map((e) => e.type)).toEqual(['response.created', 'response.in_progress', 'response.completed']);
  });
});

describe('Responses complete answers', () => {
  const complete = (message: unknown, finish: string, usage?: unknown) =>
    JSON.parse(String(dialect.open(ctxFor(parse({ model: 'm', input: 'x', instructions: 'Hi' }))).completion(JSON.stringify({ id: 'chatcmpl-z', choices: [{ message, finish_reason: finish }], usage })))) as Record<string, unknown>;

  it('turns a text answer into a response with one message item', () => {
    const response = complete({ role: 'assistant', content: 'ok' }, 'stop', { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });
    expect(response).toMatchObject({
      object: 'response', status: 'completed', model: 'm', created_at: 7, instructions: 'Hi', previous_response_id: null, parallel_tool_calls: true,
      text: { format: { type: 'text' } }, metadata: {}, temperature: null, top_p: null, max_output_tokens: null, error: null, incomplete_details: null,
      output: [{ type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'ok', annotations: [] }] }],
      usage: { input_tokens: 3, input_tokens_details: { cached_tokens: 0 }, output_tokens: 2, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 5 },
    });
    expect(response.id).toMatch(/^resp_[0-9a-f]{48}$/);
  });

  it('turns tool calls alone into function_call items, and a cut answer into an incomplete one', () => {
    const calls = complete({ role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"x":2}' } }] }, 'tool_calls');
    expect(calls.output).toEqual([{ id: expect.stringMatching(/^fc_/), type: 'function_call', status: 'completed', call_id: 'c1', name: 'f', arguments: '{"x":2}' }]);
    expect(calls.usage).toBeNull();
    expect(complete({ role: 'assistant', content: 'cu' }, 'length')).toMatchObject({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, output: [{ status: 'incomplete' }] });
  });

  it('refuses an upstream body that is not JSON', () => {
    expect(() => dialect.open(ctxFor(parse({ model: 'm', input: 'x' }))).completion('nope')).toThrow(expect.objectContaining({ code: 'NR_UPSTREAM_BAD_RESPONSE' }));
  });

  it('words errors in OpenAI\'s format, before and after the first byte', () => {
    expect(JSON.parse(dialect.errorBody(new GatewayError('NR_INSUFFICIENT_QUOTA')))).toMatchObject({ error: { code: 'insufficient_quota', nemo_code: 'NR_INSUFFICIENT_QUOTA' } });
    expect(dialect.streamErrorFrame(new GatewayError('NR_UPSTREAM_BAD_RESPONSE'))).toMatch(/^event: error\ndata: \{"error":\{/);
  });
});

describe('Responses storage', () => {
  it('continues a stored conversation after the new instructions, before the new input', async () => {
    const previous = [{ role: 'user', content: 'first' }, { role: 'assistant', content: 'answer' }];
    const { dialect: reading, queries } = dialectWith([{ conversation: previous }]);
    const request = reading.parseRequest(JSON.stringify({ model: 'm', input: 'second', instructions: 'New rules.', previous_response_id: 'resp_1' }));
    const continued = await reading.prepare!(request, PRINCIPAL);
    expect(continued.messages).toEqual([{ role: 'system', content: 'New rules.' }, ...previous, { role: 'user', content: 'second' }]);
    expect(queries).toEqual([{ orgId: PRINCIPAL.orgId, sql: expect.stringContaining('FROM nemo.stored_responses'), values: ['resp_1'] }]);
    // The continuation is still this dialect's request: it opens a session that echoes the id.
    const response = JSON.parse(String(reading.open(ctxFor(continued)).completion(JSON.stringify({ choices: [{ message: { content: 'ok' }, finish_reason: 'stop' }] })))) as Record<string, unknown>;
    expect(response.previous_response_id).toBe('resp_1');
  });

  it('answers 404 for a previous response the org does not have, and reads nothing without one', async () => {
    const { dialect: reading, queries } = dialectWith([]);
    const missing = reading.parseRequest(JSON.stringify({ model: 'm', input: 'x', previous_response_id: 'resp_gone' }));
    await expect(reading.prepare!(missing, PRINCIPAL)).rejects.toMatchObject({ code: 'NR_NOT_FOUND', status: 404, param: 'previous_response_id', message: 'previous response not found' });
    const plain = reading.parseRequest(JSON.stringify({ model: 'm', input: 'x' }));
    queries.length = 0;
    expect(await reading.prepare!(plain, PRINCIPAL)).toBe(plain);
    expect(queries).toEqual([]);
  });

  it('seals a complete answer: the response as sent and the conversation without the instructions, kept the org\'s retention', async () => {
    const { dialect: storing, queries } = dialectWith();
    const request = storing.parseRequest(JSON.stringify({ model: 'm', input: 'question', instructions: 'Rules.' }));
    const session = storing.open(ctxFor(request, { ...PRINCIPAL, logRetentionDays: 3 }));
    const sent = String(session.completion(JSON.stringify({ choices: [{ message: { content: 'reply' }, finish_reason: 'stop' }] })));
    await session.seal!();
    expect(queries).toHaveLength(1);
    const [orgId, responseId, keyId, model, responseJson, conversationJson, days] = queries[0]!.values as string[];
    expect({ orgId, keyId, model, days }).toEqual({ orgId: PRINCIPAL.orgId, keyId: PRINCIPAL.keyId, model: 'm', days: 3 });
    expect(queries[0]!.orgId).toBe(PRINCIPAL.orgId);
    expect(responseJson).toBe(sent);
    expect(responseId).toBe((JSON.parse(sent) as { id: string }).id);
    expect(JSON.parse(conversationJson!)).toEqual([{ role: 'user', content: 'question' }, { role: 'assistant', content: 'reply' }]);
  });

  it('seals a stream before its closing events, with the same response the client then gets', async () => {
    const { dialect: storing, queries } = dialectWith();
    const request = storing.parseRequest(JSON.stringify({ model: 'm', input: 'x', stream: true, tools: [{ type: 'function', name: 'f' }] }));
    const session = storing.open(ctxFor(request));
    const encoder = session.streamEncoder();
    const out: Frame[] = [];
    encoder.frames([chunk({ content: 'Let me look.' }), chunk({ tool_calls: [{ index: 0, id: 'call_9', function: { name: 'f', arguments: '{}' } }] }, 'tool_calls'), usageChunk({ prompt_tokens: 1, completion_tokens: 2 })], out);
    await session.seal!();
    const [, , , , stored, conversation, days] = queries[0]!.values as string[];
    expect(days).toBe(30);
    expect(JSON.parse(conversation!)).toEqual([
      { role: 'user', content: 'x' },
      { role: 'assistant', content: 'Let me look.', tool_calls: [{ id: 'call_9', type: 'function', function: { name: 'f', arguments: '{}' } }] },
    ]);
    encoder.end(out);
    const completed = eventsOf(out).at(-1)!;
    expect(completed.type).toBe('response.completed');
    expect(completed.response).toEqual(JSON.parse(stored!));
  });
});
