// The mock reasons when asked, end to end through the gateway with the official SDKs: Anthropic's
// `thinking` on /v1/messages comes back as thinking blocks (complete and streamed), and a Responses
// request to a deployment whose mock always reasons gets a reasoning item with its text. Each
// request is charged exactly its priced usage, reasoning tokens at the reasoning price, and
// `nemo ledger check` is clean after.
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_REASONING_TOKENS, mockCompletionText, mockReasoningText } from '../../src/providers/mock/generate.js';
import { databaseEnv } from '../support/test-database.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { Books, fundedOrg, ledgerCheckCli, type FundedOrg } from './ledger/money-helpers.js';

const PRICES = { inputPricePerMTok: 4, outputPricePerMTok: 10, reasoningPricePerMTok: 12 };
const ANSWER_TOKENS = 12;
/** The `always` deployment's reasoning length. */
const REASONING = 6;

/** Micro-units: the answer's tokens at the output price, the reasoning tokens at the reasoning price. */
const priced = (input: number, output: number, reasoning: number) => input * PRICES.inputPricePerMTok + (output - reasoning) * PRICES.outputPricePerMTok + reasoning * PRICES.reasoningPricePerMTok;

describe('the mock reasons when asked (through the gateway, official SDKs)', () => {
  let gw: TestGateway;
  let books: Books;

  beforeAll(async () => {
    gw = await startTestGateway({
      models: [
        // Default behaviour: reasoning text only when the request asks for it.
        { name: 'mock-think', deployments: [{ provider: 'mock', model: 'mock-think', ...PRICES, mock: { completionTokens: ANSWER_TOKENS } }] },
        // Cut halfway through its reasoning: no usage ever arrives, the gateway counts what came.
        { name: 'mock-cut-reasoner', deployments: [{ provider: 'mock', model: 'mock-cut-reasoner', ...PRICES, mock: { completionTokens: 4, reasoningTokens: 40, reasoningText: 'always', fault: 'cut-mid-stream' } }] },
        // Reasons on every request, whatever it asks.
        { name: 'mock-reasoner', deployments: [{ provider: 'mock', model: 'mock-reasoner', ...PRICES, mock: { completionTokens: ANSWER_TOKENS, reasoningTokens: REASONING, reasoningText: 'always' } }] },
      ],
    });
    books = new Books(gw.database);
  });

  afterAll(async () => {
    await books?.close();
    await gw?.close();
  });

  const anthropic = (org: FundedOrg) => new Anthropic({ apiKey: org.key, baseURL: gw.url, maxRetries: 0 });
  const openai = (org: FundedOrg) => new OpenAI({ apiKey: org.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
  const thinking = { type: 'enabled' as const, budget_tokens: 1024 };

  it('messages.create with thinking: a thinking block before the text, charged with its tokens at the reasoning price', async () => {
    const org = await fundedOrg(gw.gateway, 10_000_000, 'thinking org');
    const client = anthropic(org);
    const message = await client.messages.create({ model: 'mock-think', max_tokens: 256, thinking, messages: [{ role: 'user', content: 'Think, then answer.' }] });
    expect(message.content).toEqual([
      { type: 'thinking', thinking: mockReasoningText(DEFAULT_REASONING_TOKENS), signature: '' },
      expect.objectContaining({ type: 'text', text: mockCompletionText(ANSWER_TOKENS) }),
    ]);
    expect(message.stop_reason).toBe('end_turn');
    expect(message.usage.output_tokens).toBe(ANSWER_TOKENS + DEFAULT_REASONING_TOKENS);

    // Not asked: the same deployment answers text alone, as it always did.
    const plain = await client.messages.create({ model: 'mock-think', max_tokens: 256, messages: [{ role: 'user', content: 'Just answer.' }] });
    expect(plain.content.map((b) => b.type)).toEqual(['text']);
    expect(plain.usage.output_tokens).toBe(ANSWER_TOKENS);

    const charges = await books.expectSettledBooks(org.orgId, { served: 2 });
    expect(charges.map((c) => c.charged).sort()).toEqual(
      [priced(message.usage.input_tokens, message.usage.output_tokens, DEFAULT_REASONING_TOKENS), priced(plain.usage.input_tokens, plain.usage.output_tokens, 0)].sort(),
    );
  });

  it('messages.stream with thinking: thinking_delta events first, then the text, and the final message has both', async () => {
    const org = await fundedOrg(gw.gateway, 10_000_000, 'thinking stream org');
    // A budget below the mock's default length bounds the thinking.
    const stream = anthropic(org).messages.stream({ model: 'mock-think', max_tokens: 256, thinking: { type: 'enabled', budget_tokens: 5 }, messages: [{ role: 'user', content: 'Stream your thoughts.' }] });
    const deltas: string[] = [];
    let thought = '';
    stream.on('streamEvent', (event) => {
      if (event.type === 'content_block_delta') deltas.push(event.delta.type);
    });
    stream.on('thinking', (delta) => (thought += delta));
    const message = await stream.finalMessage();
    expect(thought).toBe(mockReasoningText(5));
    expect(deltas).toEqual([...Array<string>(5).fill('thinking_delta'), ...Array<string>(ANSWER_TOKENS).fill('text_delta')]);
    expect(message.content).toEqual([{ type: 'thinking', thinking: mockReasoningText(5), signature: '' }, expect.objectContaining({ type: 'text', text: mockCompletionText(ANSWER_TOKENS) })]);
    expect(message.usage.output_tokens).toBe(ANSWER_TOKENS + 5);

    const [charge] = await books.expectSettledBooks(org.orgId, { served: 1 });
    expect(charge!.charged).toBe(priced(message.usage.input_tokens, message.usage.output_tokens, 5));
  });

  it('responses.create with reasoning: a reasoning item with its text first, then the message; reasoning tokens in the usage', async () => {
    const org = await fundedOrg(gw.gateway, 10_000_000, 'responses reasoning org');
    const response = await openai(org).responses.create({ model: 'mock-reasoner', input: 'Reason about it.', reasoning: { effort: 'low' } });
    expect(response.output.map((item) => item.type)).toEqual(['reasoning', 'message']);
    expect(response.output[0]).toMatchObject({ type: 'reasoning', summary: [], content: [{ type: 'reasoning_text', text: mockReasoningText(REASONING) }] });
    expect(response.output_text).toBe(mockCompletionText(ANSWER_TOKENS));
    expect(response.usage).toMatchObject({ output_tokens: ANSWER_TOKENS + REASONING, output_tokens_details: { reasoning_tokens: REASONING } });

    const [charge] = await books.expectSettledBooks(org.orgId, { served: 1 });
    expect(charge!.charged).toBe(priced(response.usage!.input_tokens, response.usage!.output_tokens, REASONING));
  });

  // Regression: reasoning_content was not kept as generated text, so a stream cut while the model
  // reasoned was charged for its prompt only.
  it('a stream cut while the mock reasons is charged for the reasoning text it sent', async () => {
    const org = await fundedOrg(gw.gateway, 10_000_000, 'cut reasoning org');
    const stream = await openai(org).chat.completions.create({ model: 'mock-cut-reasoner', messages: [{ role: 'user', content: 'Reason, then get cut.' }], stream: true });
    let reasoningChunks = 0;
    await expect(
      (async () => {
        for await (const chunk of stream) if ((chunk.choices[0]?.delta as { reasoning_content?: string } | undefined)?.reasoning_content) reasoningChunks++;
      })(),
    ).rejects.toThrow();
    expect(reasoningChunks).toBeGreaterThan(5);
    await books.expectSettledBooks(org.orgId, { served: 1 });
    const { rows } = await books.pool.query<{ completion_tokens: number }>("SELECT completion_tokens::float8 AS completion_tokens FROM nemo.ledger_entries WHERE org_id = $1 AND kind = 'settle'", [org.orgId]);
    // One token per reasoning word the client saw, at least (the gateway may have read a little more).
    expect(rows[0]!.completion_tokens).toBeGreaterThanOrEqual(reasoningChunks);
  });

  it('responses.create passes reasoning.effort on as reasoning_effort: a mock that reasons only when asked answers with a reasoning item', async () => {
    const org = await fundedOrg(gw.gateway, 10_000_000, 'responses effort org');
    const asked = await openai(org).responses.create({ model: 'mock-think', input: 'Think first.', reasoning: { effort: 'low' } });
    expect(asked.output.map((item) => item.type)).toEqual(['reasoning', 'message']);
    const plain = await openai(org).responses.create({ model: 'mock-think', input: 'Do not think.' });
    expect(plain.output.map((item) => item.type)).toEqual(['message']);
    await expect(openai(org).responses.create({ model: 'mock-think', input: 'x', reasoning: { effort: 'extreme' as 'low' } })).rejects.toMatchObject({ status: 400, param: 'reasoning.effort' });
    await books.expectSettledBooks(org.orgId, { served: 2 });
  });

  it('responses.create streamed with reasoning: reasoning_text deltas before the output text, the completed response has the reasoning item', async () => {
    const org = await fundedOrg(gw.gateway, 10_000_000, 'responses stream reasoning org');
    const stream = await openai(org).responses.create({ model: 'mock-reasoner', input: 'Reason, streamed.', reasoning: { effort: 'low' }, stream: true });
    const types: string[] = [];
    let reasoningText = '';
    let completed: OpenAI.Responses.Response | undefined;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.reasoning_text.delta') reasoningText += event.delta;
      if (event.type === 'response.completed') completed = event.response;
    }
    expect(reasoningText).toBe(mockReasoningText(REASONING));
    expect(types.lastIndexOf('response.reasoning_text.delta')).toBeLessThan(types.indexOf('response.output_text.delta'));
    expect(completed!.output.map((item) => item.type)).toEqual(['reasoning', 'message']);
    expect(completed!.output[0]).toMatchObject({ content: [{ type: 'reasoning_text', text: mockReasoningText(REASONING) }] });
    // output_text is the SDK's convenience on responses.create's answer, not part of a streamed event.
    expect(completed!.output[1]).toMatchObject({ type: 'message', content: [{ type: 'output_text', text: mockCompletionText(ANSWER_TOKENS) }] });
    expect(completed!.usage).toMatchObject({ output_tokens: ANSWER_TOKENS + REASONING, output_tokens_details: { reasoning_tokens: REASONING } });

    const [charge] = await books.expectSettledBooks(org.orgId, { served: 1 });
    expect(charge!.charged).toBe(priced(completed!.usage!.input_tokens, completed!.usage!.output_tokens, REASONING));
  });

  it('chat completions with reasoning_effort: reasoning_content reaches the OpenAI client, streamed and not', async () => {
    const org = await fundedOrg(gw.gateway, 10_000_000, 'chat reasoning org');
    const client = openai(org);
    const done = await client.chat.completions.create({ model: 'mock-think', reasoning_effort: 'low', messages: [{ role: 'user', content: 'Reason.' }] });
    expect((done.choices[0]!.message as { reasoning_content?: string }).reasoning_content).toBe(mockReasoningText(DEFAULT_REASONING_TOKENS));
    expect(done.usage).toMatchObject({ completion_tokens: ANSWER_TOKENS + DEFAULT_REASONING_TOKENS, completion_tokens_details: { reasoning_tokens: DEFAULT_REASONING_TOKENS } });
    const stream = await client.chat.completions.create({ model: 'mock-think', reasoning_effort: 'low', messages: [{ role: 'user', content: 'Reason.' }], stream: true, stream_options: { include_usage: true } });
    let reasoning = '';
    let content = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta as { reasoning_content?: string; content?: string | null } | undefined;
      if (delta?.reasoning_content) {
        expect(content, 'reasoning before content').toBe('');
        reasoning += delta.reasoning_content;
      }
      content += delta?.content ?? '';
      usage = chunk.usage ?? usage;
    }
    expect(reasoning).toBe(mockReasoningText(DEFAULT_REASONING_TOKENS));
    expect(content).toBe(mockCompletionText(ANSWER_TOKENS));

    const charges = await books.expectSettledBooks(org.orgId, { served: 2 });
    const each = priced(done.usage!.prompt_tokens, done.usage!.completion_tokens, DEFAULT_REASONING_TOKENS);
    expect(usage!.completion_tokens).toBe(done.usage!.completion_tokens);
    expect(charges.map((c) => c.charged)).toEqual([each, each]);
  });

  it('nemo ledger check is clean after all of it', async () => {
    expect(await books.check()).toEqual([]);
    await ledgerCheckCli(databaseEnv(gw.database));
  });
});
