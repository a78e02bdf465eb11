// Cache-aware and reasoning-aware prices end to end: the mock reports cached prompt tokens and
// reasoning tokens (OpenAI's usage details), an Anthropic upstream reports cache reads and writes;
// each request is charged its parts at their prices, exactly, the request log records the parts,
// and the hold stays an upper bound (the books balance).
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { Books, fundedOrg } from './money-helpers.js';

const PRICES = { inputPricePerMTok: 4, cachedInputPricePerMTok: 1, cacheWritePricePerMTok: 5, outputPricePerMTok: 10, reasoningPricePerMTok: 12 };
const CACHED = 9;
const REASONING = 6;
const IMAGE_PRICE = 300;

describe('cache-aware and reasoning-aware pricing', () => {
  let upstream: Server;
  let gw: TestGateway;
  let books: Books;

  beforeAll(async () => {
    // An Anthropic upstream answering with cache reads (40) and writes (3) in its usage.
    upstream = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(readFileSync(new URL('../../fixtures/providers/anthropic/message-text.json', import.meta.url))));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const baseUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`;
    gw = await startTestGateway(
      {
        models: [
          { name: 'cached', deployments: [{ provider: 'mock', model: 'cached', ...PRICES, mock: { completionTokens: 10, cachedPromptTokens: CACHED, reasoningTokens: REASONING } }] },
          { name: 'claude', deployments: [{ provider: 'anthropic', model: 'claude', baseUrl, apiKeyEnv: 'TEST_ANTHROPIC_KEY', ...PRICES }] },
          { name: 'vision', deployments: [{ provider: 'mock', model: 'vision', inputPricePerMTok: 4, outputPricePerMTok: 10, imagePriceMicros: IMAGE_PRICE, mock: { completionTokens: 5 } }] },
        ],
        logs: { flushIntervalMs: 50 },
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

  const priced = (u: OpenAI.CompletionUsage & { cache_creation_input_tokens?: number }) => {
    const cached = u.prompt_tokens_details?.cached_tokens ?? 0;
    const written = u.cache_creation_input_tokens ?? 0;
    const reasoning = u.completion_tokens_details?.reasoning_tokens ?? 0;
    return Math.ceil(
      (u.prompt_tokens - cached - written) * PRICES.inputPricePerMTok + cached * PRICES.cachedInputPricePerMTok + written * PRICES.cacheWritePricePerMTok +
        (u.completion_tokens - reasoning) * PRICES.outputPricePerMTok + reasoning * PRICES.reasoningPricePerMTok,
    );
  };

  /** The request-log rows of an org, as the owner reads them. */
  async function logged(orgId: string, n: number) {
    const owner = new pg.Client({ connectionString: gw.database.url });
    await owner.connect();
    try {
      const read = () => owner.query('SELECT prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_micros::int FROM nemo.request_log_entries WHERE org_id = $1 ORDER BY created_at', [orgId]);
      await waitFor(async () => (await read()).rowCount === n, 10_000, 50);
      return (await read()).rows;
    } finally {
      await owner.end();
    }
  }

  it('charges cached prompt tokens and reasoning tokens at their own prices, streamed or not', async () => {
    const org = await fundedOrg(gw.gateway, 10_000_000, 'cache org');
    const client = new OpenAI({ apiKey: org.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const done = await client.chat.completions.create({ model: 'cached', messages: [{ role: 'user', content: 'a prompt long enough to have cached tokens' }] });
    expect(done.usage).toMatchObject({ prompt_tokens_details: { cached_tokens: CACHED }, completion_tokens_details: { reasoning_tokens: REASONING } });
    const stream = await client.chat.completions.create({ model: 'cached', messages: [{ role: 'user', content: 'a prompt long enough to have cached tokens' }], stream: true, stream_options: { include_usage: true } });
    let streamed: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) streamed = chunk.usage ?? streamed;
    expect(streamed).toMatchObject({ prompt_tokens_details: { cached_tokens: CACHED } });

    const charges = await books.expectSettledBooks(org.orgId, { served: 2 });
    expect(charges.map((c) => c.charged).sort()).toEqual([priced(done.usage!), priced(streamed!)].sort());
    // Cheaper than the same tokens at plain prices, dearer where reasoning costs more.
    expect(priced(done.usage!)).not.toBe(done.usage!.prompt_tokens * PRICES.inputPricePerMTok + done.usage!.completion_tokens * PRICES.outputPricePerMTok);

    const rows = await logged(org.orgId, 2);
    for (const row of rows) expect(row).toMatchObject({ cached_tokens: CACHED, cache_write_tokens: null, reasoning_tokens: REASONING });
    expect(rows.map((r) => r.cost_micros).sort()).toEqual(charges.map((c) => c.charged).sort());
  });

  it('charges each image of a model priced per image on top of its tokens', async () => {
    const org = await fundedOrg(gw.gateway, 10_000_000, 'vision org');
    const client = new OpenAI({ apiKey: org.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const image = { type: 'image_url' as const, image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } };
    const done = await client.chat.completions.create({ model: 'vision', messages: [{ role: 'user', content: [{ type: 'text', text: 'Compare these.' }, image, image] }] });
    const [charge] = await books.expectSettledBooks(org.orgId, { served: 1 });
    expect(charge!.charged).toBe(done.usage!.prompt_tokens * 4 + done.usage!.completion_tokens * 10 + 2 * IMAGE_PRICE);
  });

  it('charges an Anthropic upstream\'s cache reads and writes at their prices, and shows them in OpenAI\'s usage', async () => {
    const org = await fundedOrg(gw.gateway, 10_000_000, 'anthropic cache org');
    const client = new OpenAI({ apiKey: org.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const done = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'hi' }] });
    // input 12 + cache reads 40 + cache writes 3
    expect(done.usage).toMatchObject({ prompt_tokens: 55, completion_tokens: 9, prompt_tokens_details: { cached_tokens: 40 }, cache_creation_input_tokens: 3 });
    const [charge] = await books.expectSettledBooks(org.orgId, { served: 1 });
    expect(charge!.charged).toBe(12 * 4 + 40 * 1 + 3 * 5 + 9 * 10);
    expect(await logged(org.orgId, 1)).toEqual([{ prompt_tokens: 55, completion_tokens: 9, cached_tokens: 40, cache_write_tokens: 3, reasoning_tokens: null, cost_micros: charge!.charged }]);
  });
});
