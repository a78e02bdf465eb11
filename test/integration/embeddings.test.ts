// POST /v1/embeddings end to end: the real gateway on port 0 over a real Postgres, the in-process
// mock's embeddings, the official openai SDK's embeddings.create (floats, base64, dimensions, token
// ids), and the books: every served request charged usage.prompt_tokens x the serving deployment's
// input price, a missing usage charged at the held bound, nothing charged for a refusal or a failed
// upstream, the books balanced at the end. Runs in both ledger modes (NEMO_LEDGER_MODE).
import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base64Floats, mockEmbedding, mockEmbeddingTokens } from '../../src/providers/mock/embeddings.js';
import { startTestGateway, waitFor, type TestGateway } from './helpers/gateway.js';
import { Books, fundedOrg, type FundedOrg } from './ledger/money-helpers.js';

const PRICE = 7; // input price per MTok = micro-units per prompt token
const DEAR = 9; // a deployment that fails: the hold is at its price, the charge at the one that serves
const TOPUP = 100_000_000;
const mock = (extra: Record<string, unknown> = {}) => ({ ttftMs: 0, tokensPerSecond: 0, completionTokens: 8, reportUsage: true, fault: 'none', ...extra });

let gw: TestGateway;
let books: Books;
let org: FundedOrg;
let client: OpenAI;
let seq = 0;

beforeAll(async () => {
  gw = await startTestGateway({
    models: [
      { name: 'embed', deployments: [{ provider: 'mock', model: 'mock-embed', inputPricePerMTok: PRICE, outputPricePerMTok: 100, mock: mock() }] },
      {
        name: 'embed-fallback',
        deployments: [
          // Picked first (almost surely: weight), fails with a 500, cools down; the other one serves.
          { id: 'failing', provider: 'mock', model: 'mock-embed', inputPricePerMTok: DEAR, weight: 1e6, mock: mock({ fault: 'http-500' }) },
          { id: 'serving', provider: 'mock', model: 'mock-embed', inputPricePerMTok: PRICE, weight: 1e-6, mock: mock() },
        ],
      },
      { name: 'embed-nousage', deployments: [{ provider: 'mock', model: 'mock-embed', inputPricePerMTok: PRICE, mock: mock({ reportUsage: false }) }] },
      { name: 'embed-down', deployments: [{ provider: 'mock', model: 'mock-embed', inputPricePerMTok: PRICE, mock: mock({ fault: 'http-500' }) }] },
      { name: 'embed-free', deployments: [{ provider: 'mock', model: 'mock-embed', mock: mock() }] },
      { name: 'embed-slow', deployments: [{ provider: 'mock', model: 'mock-embed', inputPricePerMTok: PRICE, mock: mock({ ttftMs: 2000 }) }] },
      { name: 'claude', deployments: [{ provider: 'anthropic', model: 'claude-sonnet-4-5', baseUrl: 'http://127.0.0.1:9/v1', inputPricePerMTok: 3 }] },
      {
        // The Anthropic deployment has no embeddings API: never tried, however heavy its weight.
        name: 'mixed',
        deployments: [
          { provider: 'anthropic', model: 'claude-sonnet-4-5', baseUrl: 'http://127.0.0.1:9/v1', inputPricePerMTok: 3, weight: 1e6 },
          { provider: 'mock', model: 'mock-embed', inputPricePerMTok: PRICE, mock: mock() },
        ],
      },
    ],
    logs: { flushIntervalMs: 50 },
  });
  books = new Books(gw.database);
  org = await fundedOrg(gw.gateway, TOPUP, 'embeddings org');
  client = sdk(org.key);
});

afterAll(async () => {
  await books?.close();
  await gw?.close();
});

function sdk(key: string): OpenAI {
  return new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });
}

function requestId(label: string): string {
  return `emb-${label}-${++seq}-${Date.now()}`;
}

async function chargeOf(orgId: string, id: string): Promise<number | undefined> {
  await books.settled(orgId);
  return (await books.charges(orgId)).find((c) => c.request_id === id)?.charged;
}

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string; nemo_code: string };
}

/** A raw POST, for exact bodies and the error JSON as sent. */
async function post(body: unknown, key = org.key, headers: Record<string, string> = {}): Promise<{ status: number; json: unknown; headers: Headers }> {
  const res = await fetch(`${gw.url}/v1/embeddings`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json(), headers: res.headers };
}

describe('POST /v1/embeddings (openai SDK)', () => {
  it('answers floats, one deterministic vector per input, and charges usage.prompt_tokens x the input price', async () => {
    const id = requestId('float');
    const input = ['the quick brown fox', 'jumps over the lazy dog'];
    const { data, response } = await client.embeddings.create({ model: 'embed', input, encoding_format: 'float' }, { headers: { 'x-request-id': id } }).withResponse();
    expect(response.headers.get('x-request-id')).toBe(id);
    expect(response.headers.get('x-nemo-attempts')).toBe('1');
    expect(Number(response.headers.get('x-nemo-overhead-ms'))).toBeGreaterThanOrEqual(0);
    expect(data.object).toBe('list');
    expect(data.model).toBe('mock-embed'); // the upstream's answer, passed on as it came
    expect(data.data.map((d) => d.index)).toEqual([0, 1]);
    expect(data.data[0]!.embedding).toEqual(Array.from(mockEmbedding('mock-embed', input[0]!, 256)));
    expect(data.usage).toEqual({ prompt_tokens: mockEmbeddingTokens(input), total_tokens: mockEmbeddingTokens(input) });
    expect(await chargeOf(org.orgId, id)).toBe(data.usage.prompt_tokens * PRICE);
  });

  it('answers base64 (the SDK default, decoded by it) with dimensions, and base64 as sent when asked', async () => {
    const id = requestId('base64');
    const decoded = await client.embeddings.create({ model: 'embed', input: 'hello', dimensions: 64 }, { headers: { 'x-request-id': id } });
    expect(decoded.data[0]!.embedding).toHaveLength(64);
    expect(Array.from(decoded.data[0]!.embedding)).toEqual(Array.from(mockEmbedding('mock-embed', 'hello', 64)));
    const raw = await client.embeddings.create({ model: 'embed', input: 'hello', dimensions: 64, encoding_format: 'base64' });
    expect(raw.data[0]!.embedding).toBe(base64Floats(mockEmbedding('mock-embed', 'hello', 64)));
    expect(await chargeOf(org.orgId, id)).toBe(decoded.usage.prompt_tokens * PRICE);
  });

  it('takes token ids: one array, or one array per input', async () => {
    const one = await client.embeddings.create({ model: 'embed', input: [1, 2, 3], encoding_format: 'float' });
    expect(one.data).toHaveLength(1);
    expect(one.usage.prompt_tokens).toBe(3);
    const many = await client.embeddings.create({ model: 'embed', input: [[1, 2], [3]], encoding_format: 'float' });
    expect(many.data).toHaveLength(2);
    expect(many.data[1]!.embedding).toEqual(Array.from(mockEmbedding('mock-embed', [3], 256)));
  });

  it('falls back past a failing deployment before answering, and charges the serving deployment price', async () => {
    const id = requestId('fallback');
    const { data, response } = await client.embeddings.create({ model: 'embed-fallback', input: 'fall back', encoding_format: 'float' }, { headers: { 'x-request-id': id } }).withResponse();
    expect(response.headers.get('x-nemo-attempts')).toBe('2');
    expect(await chargeOf(org.orgId, id)).toBe(data.usage.prompt_tokens * PRICE);
  });

  it('skips deployments whose provider has no embeddings API', async () => {
    const { data, response } = await client.embeddings.create({ model: 'mixed', input: 'mixed' }).withResponse();
    expect(response.headers.get('x-nemo-attempts')).toBe('1');
    expect(data.data).toHaveLength(1);
  });

  it('charges an answer without usage at the held bound: the body UTF-8 bytes', async () => {
    const id = requestId('nousage');
    const body = JSON.stringify({ model: 'embed-nousage', input: ['häll', 'ö'], encoding_format: 'float' });
    const res = await post(body, org.key, { 'x-request-id': id });
    expect(res.status).toBe(200);
    expect(res.json).not.toHaveProperty('usage');
    expect(await chargeOf(org.orgId, id)).toBe(Buffer.byteLength(body) * PRICE);
  });

  it('a free model answers and writes no charge', async () => {
    const id = requestId('free');
    await client.embeddings.create({ model: 'embed-free', input: 'free' }, { headers: { 'x-request-id': id } });
    expect(await chargeOf(org.orgId, id)).toBeUndefined();
  });

  it('an upstream that fails answers 502 and charges nothing (the hold is released)', async () => {
    const id = requestId('down');
    const err = await client.embeddings.create({ model: 'embed-down', input: 'x' }, { headers: { 'x-request-id': id } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APIError);
    expect((err as APIError).status).toBe(502);
    expect(((err as APIError).error as ErrorBody['error']).code).toBe('upstream_error');
    expect(await chargeOf(org.orgId, id)).toBeUndefined();
  });

  it('refuses an org without credits with 402 insufficient_quota, holding and charging nothing', async () => {
    const poor = await fundedOrg(gw.gateway, 0, 'poor org');
    const err = await sdk(poor.key).embeddings.create({ model: 'embed', input: 'no money' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APIError);
    expect((err as APIError).status).toBe(402);
    expect(((err as APIError).error as ErrorBody['error']).code).toBe('insufficient_quota');
    expect(await books.account(poor.orgId)).toEqual({ available: 0, held: 0 });
    expect(await books.charges(poor.orgId)).toEqual([]);
  });
});

describe('limits and the client', () => {
  it("counts requests against the key's per-minute limit: 429 with Retry-After past it", async () => {
    const limited = await fundedOrg(gw.gateway, TOPUP, 'rpm org', { rpm_limit: 1 });
    expect((await post({ model: 'embed', input: 'first' }, limited.key)).status).toBe(200);
    const second = await post({ model: 'embed', input: 'second' }, limited.key);
    expect(second.status).toBe(429);
    expect((second.json as ErrorBody).error.code).toBe('rate_limit_exceeded');
    expect(Number(second.headers.get('retry-after'))).toBeGreaterThan(0);
    await books.expectSettledBooks(limited.orgId, { served: 1 });
  });

  it('releases the hold when the client leaves before the answer', async () => {
    const leaving = await fundedOrg(gw.gateway, TOPUP, 'leaving org');
    const controller = new AbortController();
    const sent = fetch(`${gw.url}/v1/embeddings`, {
      method: 'POST',
      headers: { authorization: `Bearer ${leaving.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'embed-slow', input: 'too slow' }),
      signal: controller.signal,
    });
    // Held once admitted: the org's available balance drops (in lease mode, by a whole lease).
    await waitFor(async () => (await books.account(leaving.orgId)).available < TOPUP, 1500, 10);
    controller.abort();
    await expect(sent).rejects.toThrow();
    const account = await books.settled(leaving.orgId);
    expect(account).toEqual({ available: TOPUP, held: 0 });
    await books.expectSettledBooks(leaving.orgId, { served: 0 });
  });
});

describe("the key's guardrails on the input", () => {
  let guarded: FundedOrg;

  beforeAll(async () => {
    guarded = await fundedOrg(gw.gateway, TOPUP, 'guarded org', { guardrail_policy: { deny_words: ['project falcon'], pii: { email: 'redact' } } });
  });

  it('block the input with 400 guardrail_violation naming the rule, and charge nothing', async () => {
    const id = requestId('blocked');
    const res = await post({ model: 'embed', input: ['fine', 'all about Project Falcon'] }, guarded.key, { 'x-request-id': id });
    expect(res.status).toBe(400);
    const { error } = res.json as ErrorBody;
    expect(error).toMatchObject({ type: 'invalid_request_error', param: 'input', code: 'guardrail_violation', nemo_code: 'NR_GUARDRAIL_VIOLATION' });
    expect(error.message).toMatch(/deny_word/);
    expect(error.message).not.toMatch(/falcon/i);
    expect(await chargeOf(guarded.orgId, id)).toBeUndefined();
    await waitFor(async () => (await books.pool.query('SELECT 1 FROM nemo.guardrail_events WHERE request_id = $1', [id])).rowCount === 1, 5000, 50);
  });

  it('redact it: the upstream embeds the redacted text', async () => {
    const answer = await sdk(guarded.key).embeddings.create({ model: 'embed', input: 'mail owl@example.com', encoding_format: 'float' });
    expect(answer.data[0]!.embedding).toEqual(Array.from(mockEmbedding('mock-embed', 'mail [REDACTED:EMAIL]', 256)));
  });

  it('refuse token ids they cannot read', async () => {
    const res = await post({ model: 'embed', input: [1, 2, 3] }, guarded.key);
    expect(res.status).toBe(400);
    expect((res.json as ErrorBody).error).toMatchObject({ param: 'input', code: 'invalid_request' });
  });

  it('hold the input to max_input_tokens', async () => {
    const limited = await fundedOrg(gw.gateway, TOPUP, 'limited org', { guardrail_policy: { max_input_tokens: 10 } });
    expect((await post({ model: 'embed', input: 'short' }, limited.key)).status).toBe(200);
    const res = await post({ model: 'embed', input: ['one two three four five six', 'seven eight nine ten eleven twelve'] }, limited.key);
    expect(res.status).toBe(400);
    expect((res.json as ErrorBody).error.message).toMatch(/max_input_tokens/);
  });
});

describe('errors, as OpenAI error JSON', () => {
  const cases: Array<[label: string, body: unknown, status: number, code: string, param: string | null]> = [
    ['no model', { input: 'x' }, 400, 'invalid_request', 'model'],
    ['no input', { model: 'embed' }, 400, 'invalid_request', 'input'],
    ['empty input', { model: 'embed', input: [] }, 400, 'invalid_request', 'input'],
    ['empty string', { model: 'embed', input: '' }, 400, 'invalid_request', 'input'],
    ['mixed input', { model: 'embed', input: ['a', 1] }, 400, 'invalid_request', 'input[1]'],
    ['too many inputs', { model: 'embed', input: Array(2049).fill('a') }, 400, 'invalid_request', 'input'],
    ['bad encoding_format', { model: 'embed', input: 'x', encoding_format: 'int8' }, 400, 'invalid_request', 'encoding_format'],
    ['bad dimensions', { model: 'embed', input: 'x', dimensions: 0 }, 400, 'invalid_request', 'dimensions'],
    ['unknown model', { model: 'nope', input: 'x' }, 404, 'model_not_found', 'model'],
    ['a model without embeddings', { model: 'claude', input: 'x' }, 400, 'invalid_request', 'model'],
  ];

  it.each(cases)('%s', async (_label, body, status, code, param) => {
    const res = await post(body);
    expect(res.status).toBe(status);
    const { error } = res.json as ErrorBody;
    expect(error).toMatchObject({ code, param });
    expect(typeof error.message).toBe('string');
    expect(Object.keys(error).sort()).toEqual(['code', 'message', 'nemo_code', 'param', 'type']);
  });

  it('says a model without an embeddings API does not support embeddings', async () => {
    expect(((await post({ model: 'claude', input: 'x' })).json as ErrorBody).error.message).toMatch(/does not support embeddings/);
  });

  it('401 without a key, 415 without JSON, 400 on invalid JSON', async () => {
    expect((await fetch(`${gw.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(401);
    expect((await fetch(`${gw.url}/v1/embeddings`, { method: 'POST', headers: { authorization: `Bearer ${org.key}`, 'content-type': 'text/plain' }, body: '{}' })).status).toBe(415);
    expect((await post('{nope')).status).toBe(400);
  });

  it('the SDK raises them as APIErrors', async () => {
    const err = await client.embeddings.create({ model: 'nope', input: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
  });
});

describe('accounting', () => {
  it('logs a request-log row and counts route="embeddings" in /metrics', async () => {
    const id = requestId('logged');
    const answer = await client.embeddings.create({ model: 'embed', input: 'log me' }, { headers: { 'x-request-id': id } });
    await waitFor(async () => (await books.pool.query('SELECT 1 FROM nemo.request_log_entries WHERE request_id = $1', [id])).rowCount === 1, 5000, 50);
    const { rows } = await books.pool.query('SELECT model, status, prompt_tokens, completion_tokens, cost_micros::float8 AS cost FROM nemo.request_log_entries WHERE request_id = $1', [id]);
    expect(rows[0]).toEqual({ model: 'embed', status: 200, prompt_tokens: answer.usage.prompt_tokens, completion_tokens: 0, cost: answer.usage.prompt_tokens * PRICE });
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/nemo_requests_total\{route="embeddings",model="embed",status_class="2xx"\} \d+/);
  });

  it('leaves the books balanced: nothing held, every charge accounted for', async () => {
    await books.expectSettledBooks(org.orgId);
  });
});
