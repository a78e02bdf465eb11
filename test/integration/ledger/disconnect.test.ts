// What a request that does not end cleanly costs: a client that leaves mid-stream pays for the
// text produced (no usage arrives: counted exactly with the deployment's tokenizer, or by its UTF-8
// bytes where there is none), a request whose every upstream attempt fails before any byte pays
// nothing (released), and a stream the upstream cuts mid-way pays for what it produced.
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mockCompletionText } from '../../../src/providers/mock/generate.js';
import { countChatPromptTokens, countTextTokens } from '../../../src/tokens/count.js';
import { mockDeployment, startMockUpstreamProcess, startTestGateway, type MockUpstreamProcess, type TestGateway } from '../helpers/gateway.js';
import { Books, fundedOrg, LEDGER_MODE, type FundedOrg } from './money-helpers.js';

const P = 11; // output micro-units per token
const PIN = 3; // input micro-units per token, for the models that charge the prompt bound
const TOPUP = 10_000_000;
const SLOW = { 'x-mock-tokens-per-second': '50', 'x-mock-completion-tokens': '500' };
const PROMPT = [{ role: 'user' as const, content: 'tell me a long story' }];
/** Exact o200k tokens of the mock's first n words. */
const wordsTokens = (n: number) => countTextTokens(mockCompletionText(n), 'o200k_base');

interface StreamResult {
  readonly status: number;
  /** SSE events whose delta carried non-empty content. */
  readonly contentChunks: number;
  /** The data of a final `event: error`, if one came. */
  readonly errorEvent: string | undefined;
  readonly body: string;
}

/** POSTs a stream request; reads it to the end, or destroys the socket after `stopAfter` content chunks. */
function stream(port: number, authorization: string, body: string, stopAfter = Infinity): Promise<StreamResult> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization } },
      (res) => {
        let buffered = '';
        let all = '';
        let contentChunks = 0;
        let errorEvent: string | undefined;
        const done = () => resolve({ status: res.statusCode ?? 0, contentChunks, errorEvent, body: all });
        res.setEncoding('utf8');
        res.on('data', (text: string) => {
          all += text;
          buffered += text;
          let end: number;
          while ((end = buffered.indexOf('\n\n')) !== -1) {
            const event = buffered.slice(0, end);
            buffered = buffered.slice(end + 2);
            const data = /^data: (.*)$/m.exec(event)?.[1];
            if (data === undefined) continue;
            if (/^event: error$/m.test(event)) errorEvent = data;
            else if (data !== '[DONE]') {
              const content = (JSON.parse(data) as { choices?: Array<{ delta?: { content?: string } }> }).choices?.[0]?.delta?.content;
              if (typeof content === 'string' && content.length > 0) contentChunks++;
            }
            if (contentChunks >= stopAfter) {
              req.destroy();
              return done();
            }
          }
        });
        res.on('end', done);
        res.on('error', () => undefined);
      },
    );
    req.on('error', (err) => {
      if (!req.destroyed || stopAfter === Infinity) reject(err);
    });
    req.end(body);
  });
}

function chatBody(model: string, maxTokens: number): string {
  return JSON.stringify({ model, messages: PROMPT, stream: true, max_tokens: maxTokens });
}

describe('settlement of streams that do not end cleanly', () => {
  let upstream: MockUpstreamProcess;
  let gw: TestGateway;
  let books: Books;

  beforeAll(async () => {
    upstream = await startMockUpstreamProcess();
    const priced = (headers: Record<string, string>, input = 0, encoding = 'o200k_base') =>
      mockDeployment(upstream, headers, { inputPricePerMTok: input, outputPricePerMTok: P, maxOutputTokens: 1000, encoding });
    gw = await startTestGateway({
      models: [
        { name: 'slow', deployments: [priced(SLOW)] },
        { name: 'slow-priced-prompt', deployments: [priced(SLOW, PIN)] },
        { name: 'no-usage', deployments: [priced({ 'x-mock-completion-tokens': '30', 'x-mock-usage': 'off' }, PIN)] },
        { name: 'no-usage-no-tokenizer', deployments: [priced({ 'x-mock-completion-tokens': '30', 'x-mock-usage': 'off' }, PIN, 'none')] },
        { name: 'all-fail', deployments: [priced({ 'x-mock-fault': 'http-500' }, PIN), priced({ 'x-mock-fault': 'http-500' }, PIN)] },
        { name: 'cut', deployments: [priced({ 'x-mock-fault': 'cut-mid-stream', 'x-mock-completion-tokens': '40' })] },
      ],
    });
    books = new Books(gw.database);
  });

  afterAll(async () => {
    await books?.close();
    await gw?.close();
    await upstream?.close();
  });

  /**
   * After the request: charged once ('settle': one charge row; 'release': none), nothing held or
   * open, the books balance. In hold mode also the shape: one hold, closed by one `kind` row.
   */
  async function closedOnce(org: FundedOrg, kind: 'settle' | 'release'): Promise<number> {
    const charges = await books.expectSettledBooks(org.orgId, { served: kind === 'settle' ? 1 : 0 });
    const charged = charges[0]?.charged ?? 0;
    expect(await books.account(org.orgId)).toEqual({ available: TOPUP - charged, held: 0 });
    if (LEDGER_MODE === 'hold') {
      expect(await books.entries(org.orgId, kind)).toHaveLength(1);
      expect(await books.entries(org.orgId, 'reserve')).toHaveLength(1);
      expect(await books.reservationStates(org.orgId)).toEqual({ [kind === 'settle' ? 'settled' : 'released']: 1 });
    }
    return charged;
  }

  it('a client that leaves after N chunks pays for the tokens of the text produced (exact count, give or take a chunk in flight)', async () => {
    const org = await fundedOrg(gw.gateway, TOPUP);
    const n = 12;
    const result = await stream(gw.gateway.port, org.auth.authorization, chatBody('slow', 500), n);
    expect(result.status).toBe(200);
    expect(result.contentChunks).toBe(n);
    const charged = await closedOnce(org, 'settle');
    expect(charged % P).toBe(0);
    expect(charged / P).toBeGreaterThanOrEqual(wordsTokens(n - 1));
    expect(charged / P).toBeLessThanOrEqual(wordsTokens(n + 2));
  });

  it('with a priced prompt, the disconnect charge is the exact prompt plus the text produced', async () => {
    const org = await fundedOrg(gw.gateway, TOPUP);
    const n = 8;
    const body = chatBody('slow-priced-prompt', 500);
    const result = await stream(gw.gateway.port, org.auth.authorization, body, n);
    expect(result.status).toBe(200);
    const charged = await closedOnce(org, 'settle');
    const promptCost = countChatPromptTokens(PROMPT, 'o200k_base') * PIN;
    expect((charged - promptCost) % P).toBe(0);
    expect((charged - promptCost) / P).toBeGreaterThanOrEqual(wordsTokens(n - 1));
    expect((charged - promptCost) / P).toBeLessThanOrEqual(wordsTokens(n + 2));
  });

  it('a complete stream without usage pays exactly its prompt and completion tokens', async () => {
    const org = await fundedOrg(gw.gateway, TOPUP);
    const body = chatBody('no-usage', 100);
    const result = await stream(gw.gateway.port, org.auth.authorization, body);
    expect(result.status).toBe(200);
    expect(result.contentChunks).toBe(30);
    expect(await closedOnce(org, 'settle')).toBe(countChatPromptTokens(PROMPT, 'o200k_base') * PIN + wordsTokens(30) * P);
  });

  it('images in a counted prompt are charged at the allowance the hold used', async () => {
    const org = await fundedOrg(gw.gateway, TOPUP);
    const messages = [{ role: 'user' as const, content: [{ type: 'text' as const, text: 'what is in these pictures?' }, { type: 'image_url' as const, image_url: { url: 'https://example.com/a.png' } }, { type: 'image_url' as const, image_url: { url: 'https://example.com/b.png' } }] }];
    const result = await stream(gw.gateway.port, org.auth.authorization, JSON.stringify({ model: 'no-usage', messages, stream: true, max_tokens: 100 }));
    expect(result.status).toBe(200);
    const allowance = gw.gateway.config.ledger.imageTokenAllowance;
    expect(await closedOnce(org, 'settle')).toBe((countChatPromptTokens(messages, 'o200k_base') + 2 * allowance) * PIN + wordsTokens(30) * P);
  });

  it('without a tokenizer the count is the UTF-8 byte bound (never fewer than the tokens), capped at max_tokens', async () => {
    const org = await fundedOrg(gw.gateway, TOPUP);
    const body = chatBody('no-usage-no-tokenizer', 100);
    const result = await stream(gw.gateway.port, org.auth.authorization, body);
    expect(result.status).toBe(200);
    const completionBytes = Buffer.byteLength(mockCompletionText(30));
    expect(completionBytes).toBeGreaterThan(wordsTokens(30));
    expect(await closedOnce(org, 'settle')).toBe(Buffer.byteLength(body) * PIN + Math.min(100, completionBytes) * P);
  });

  it('a request whose every upstream attempt fails before any byte is released: charged 0', async () => {
    const org = await fundedOrg(gw.gateway, TOPUP);
    await upstream.reset();
    const result = await stream(gw.gateway.port, org.auth.authorization, chatBody('all-fail', 100));
    expect(result.status).toBeGreaterThanOrEqual(500);
    expect((await upstream.stats()).requests).toBe(2);
    expect(await closedOnce(org, 'release')).toBe(0);
    expect((await books.entries(org.orgId, 'settle'))).toHaveLength(0);
  });

  it('an upstream that cuts the stream mid-way is charged for the text it produced', async () => {
    const org = await fundedOrg(gw.gateway, TOPUP);
    const result = await stream(gw.gateway.port, org.auth.authorization, chatBody('cut', 100));
    expect(result.status).toBe(200);
    expect(result.errorEvent).toBeDefined();
    // The mock cuts after half of its 40 tokens.
    expect(result.contentChunks).toBe(20);
    expect(await closedOnce(org, 'settle')).toBe(wordsTokens(20) * P);
  });
});
