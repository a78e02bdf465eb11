// Large bodies (an agent's whole conversation, hundreds of KB) are read piece by piece, never as
// one string, and sent upstream in chunks with their length: what arrives upstream must be the
// request JSON.stringify would have written, redactions included, and each request charged for
// its usage. Real gateway, real Postgres, the official openai SDK, an upstream that keeps the
// bytes it was sent.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PIECEWISE_MIN_BYTES } from '../../src/json/parse-bytes.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { Books, fundedOrg, type FundedOrg } from './ledger/money-helpers.js';

const PRICES = { inputPricePerMTok: 2, outputPricePerMTok: 7 };
const USAGE = { prompt_tokens: 70_000, completion_tokens: 5, total_tokens: 70_005 };

/** A long agent conversation: quotes, backslashes, JSON logs, non-ASCII text and an email in each turn. */
function conversation(turns: number): OpenAI.ChatCompletionMessageParam[] {
  const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'system', content: 'You are a careful coding agent. Answer in "plain" text.' }];
  for (let i = 0; i < turns; i++) {
    const log = JSON.stringify({ level: 'warn', msg: `retry ${i} of "fetch"`, path: 'C:\\repo\\src', note: 'naïve café – ☕ 😀' });
    messages.push({ role: 'user', content: `Turn ${i}: mail dev${i}@example.com about this.\n${log}\n${'The build failed again; see the trace. '.repeat(80)}` });
    messages.push({ role: 'assistant', content: null, tool_calls: [{ id: `call_${i}`, type: 'function', function: { name: 'read_file', arguments: JSON.stringify({ path: `src/a${i}.ts`, quote: '"\\' }) } }] });
    messages.push({ role: 'tool', tool_call_id: `call_${i}`, content: `export const x${i} = "${'\\'.repeat(i % 3)}";\n`.repeat(20) });
  }
  return messages;
}

describe('large request bodies', () => {
  let upstream: Server;
  let gw: TestGateway;
  let books: Books;
  let plain: FundedOrg;
  let guarded: FundedOrg;
  const received: Array<{ headers: IncomingHttpHeaders; bytes: Buffer }> = [];

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const bytes = Buffer.concat(parts);
        received.push({ headers: req.headers, bytes });
        const body = JSON.parse(bytes.toString('utf8')) as { model: string };
        const answer = { id: 'chatcmpl-big', object: 'chat.completion', created: 1, model: body.model, choices: [{ index: 0, message: { role: 'assistant', content: 'Read it.' }, finish_reason: 'stop', logprobs: null }], usage: USAGE };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const baseUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`;
    gw = await startTestGateway({ models: [{ name: 'agent', deployments: [{ provider: 'openai-compatible', model: 'upstream-agent', baseUrl, ...PRICES }] }] });
    books = new Books(gw.database);
    plain = await fundedOrg(gw.gateway, 10_000_000, 'large bodies, plain');
    guarded = await fundedOrg(gw.gateway, 10_000_000, 'large bodies, guarded', { guardrail_policy: { pii: { email: 'redact' } } });
  });

  afterAll(async () => {
    await books?.close();
    await gw?.close();
    await new Promise((r) => upstream?.close(r));
  });

  const client = (org: FundedOrg) => new OpenAI({ apiKey: org.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });

  it('sends upstream exactly the request, in chunks with its content-length, and charges its usage', async () => {
    const messages = conversation(60);
    const tools: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'read_file', description: 'Read a file.', parameters: { type: 'object', properties: { path: { type: 'string' } } } } }];
    const sentBytes = Buffer.byteLength(JSON.stringify({ model: 'agent', messages, tools }));
    expect(sentBytes).toBeGreaterThan(3 * PIECEWISE_MIN_BYTES);
    received.length = 0;
    const answer = await client(plain).chat.completions.create({ model: 'agent', messages, tools, max_tokens: 64, temperature: 0.5 });
    expect(answer.choices[0]!.message.content).toBe('Read it.');
    expect(received).toHaveLength(1);
    const { headers, bytes } = received[0]!;
    expect(Number(headers['content-length'])).toBe(bytes.length);
    expect(headers['transfer-encoding']).toBeUndefined();
    // Byte for byte what one JSON.stringify of the request the gateway means to send would be.
    expect(bytes.toString('utf8')).toBe(JSON.stringify({ model: 'upstream-agent', messages, tools, max_tokens: 64, temperature: 0.5 }));
    const [charge] = await books.expectSettledBooks(plain.orgId, { served: 1 });
    expect(charge!.charged).toBe(Math.ceil((USAGE.prompt_tokens * PRICES.inputPricePerMTok + USAGE.completion_tokens * PRICES.outputPricePerMTok)));
  });

  it('redacts a large prompt before it goes upstream', async () => {
    const messages = conversation(40);
    received.length = 0;
    await client(guarded).chat.completions.create({ model: 'agent', messages, max_tokens: 16 });
    const sent = JSON.parse(received[0]!.bytes.toString('utf8')) as { messages: Array<{ content: string | null }> };
    expect(sent.messages).toHaveLength(messages.length);
    const text = JSON.stringify(sent.messages);
    expect(text).not.toMatch(/dev\d+@example\.com/);
    expect(text).toContain('Turn 39: mail ');
    expect(Number(received[0]!.headers['content-length'])).toBe(received[0]!.bytes.length);
    await books.expectSettledBooks(guarded.orgId, { served: 1 });
  });

  it('passes unchanged messages on as received, and never a message the guardrails changed or another parser could read otherwise', async () => {
    // As Python's json.dumps writes by default: spaces after separators, non-ASCII escaped.
    const history = conversation(30).map((m) => JSON.stringify(m).replace(/","/g, '", "').replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
    // A repeated key: JSON.parse keeps the last value, a parser keeping the first would read the email.
    const twoContents = '{"role": "user", "content": "mail jane@example.com now", "content": "hello"}';
    const raw = `{"model": "agent", "max_tokens": 16, "messages": [${history.join(', ')}, ${twoContents}]}`;
    received.length = 0;
    const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { ...guarded.auth, 'content-type': 'application/json' }, body: raw });
    expect(res.status).toBe(200);
    const sentText = received[0]!.bytes.toString('utf8');
    const sent = JSON.parse(sentText) as { messages: unknown[] };
    const asParsed = (JSON.parse(raw) as { messages: Array<{ content: unknown }> }).messages;
    expect(sent.messages).toHaveLength(asParsed.length);
    expect(sentText).not.toMatch(/@example\.com/);
    // An unchanged tool result (no email in it) went as its received bytes, spacing and escapes included.
    expect(sentText).toContain(history[3]);
    // A redacted message was serialized again.
    expect(sentText).not.toContain(history[1]);
    expect(sent.messages.at(-1)).toEqual({ role: 'user', content: 'hello' });
    await books.expectSettledBooks(guarded.orgId, { served: 2 });
  });

  it('a conversation resent with one more turn: earlier turns come from the cache of parsed elements, and upstream still gets the whole request, redacted', async () => {
    const bodyElementHits = async () => Number(/nemo_worker_cache_lookups_total\{cache="body_elements",result="hit"\} (\d+)/.exec(await (await fetch(`${gw.url}/metrics`)).text())?.[1] ?? 0);
    const history = conversation(25);
    const next: OpenAI.ChatCompletionMessageParam = { role: 'user', content: 'Now mail ops@example.com the summary.' };
    received.length = 0;
    await client(guarded).chat.completions.create({ model: 'agent', messages: history, max_tokens: 16 });
    const hitsBefore = await bodyElementHits();
    await client(guarded).chat.completions.create({ model: 'agent', messages: [...history, next], max_tokens: 16 });
    // Every earlier message was a hit (the system prompt too: a small element, but one like the others).
    expect((await bodyElementHits()) - hitsBefore).toBe(history.length);
    const [first, second] = received.map((r) => JSON.parse(r.bytes.toString('utf8')) as { messages: Array<{ content: unknown }> });
    expect(second!.messages).toEqual([...first!.messages, { role: 'user', content: 'Now mail [REDACTED:EMAIL] the summary.' }]);
    expect(received[1]!.bytes.toString('utf8')).not.toMatch(/@example\.com/);
    expect(first!.messages.map((m) => m.content)).toEqual(history.map((m) => (typeof m.content === 'string' ? m.content.replace(/dev\d+@example\.com/g, '[REDACTED:EMAIL]') : m.content)));

    // Another org sending the same turns parses them itself: no entry is shared between tenants.
    const other = await fundedOrg(gw.gateway, 10_000_000, 'large bodies, another org');
    const hitsBeforeOther = await bodyElementHits();
    await client(other).chat.completions.create({ model: 'agent', messages: history, max_tokens: 16 });
    expect(await bodyElementHits()).toBe(hitsBeforeOther);
    // Unguarded, the same turns go as the client wrote them.
    expect(JSON.parse(received[2]!.bytes.toString('utf8'))).toEqual({ model: 'upstream-agent', messages: history, max_tokens: 16 });
    await books.expectSettledBooks(guarded.orgId, { served: 4 });
    await books.expectSettledBooks(other.orgId, { served: 1 });
  });

  it('an element sent first as a message and then as a tool is checked as a tool: its description is redacted', async () => {
    // Chat validation ignores keys it does not know, so these bytes are a valid message and a valid tool.
    const both = JSON.stringify({ role: 'user', content: 'hello', type: 'function', function: { name: 'notify', description: 'mail carol@example.com' } });
    const history = conversation(25).map((m) => JSON.stringify(m));
    const send = async (body: string) => {
      const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { ...guarded.auth, 'content-type': 'application/json' }, body });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    };
    received.length = 0;
    await send(`{"model":"agent","max_tokens":16,"messages":[${[...history, both].join(',')}]}`);
    await send(`{"model":"agent","max_tokens":16,"messages":[${history.join(',')}],"tools":[${both}]}`);
    const sent = received.map((r) => r.bytes.toString('utf8'));
    expect(sent[1]).not.toContain('carol@example.com');
    expect((JSON.parse(sent[1]!) as { tools: Array<{ function: { description: string } }> }).tools[0]!.function.description).toBe('mail [REDACTED:EMAIL]');
    await books.expectSettledBooks(guarded.orgId, { served: 6 });
  });

  it('refuses a large body that is not JSON, or not UTF-8, with the error JSON, holding nothing', async () => {
    const good = JSON.stringify({ model: 'agent', messages: conversation(30) });
    const cases: Array<[Buffer, string]> = [
      [Buffer.from(`${good.slice(0, -1)},}`), 'invalid_json'],
      [Buffer.from(`${good}x`), 'invalid_json'],
      [Buffer.from(good.replace('"role":"user"', '"role":"user",,')), 'invalid_json'],
      [Buffer.concat([Buffer.from(good.slice(0, 5000)), Buffer.from([0xff, 0xfe]), Buffer.from(good.slice(5000))]), 'invalid_encoding'],
    ];
    received.length = 0;
    for (const [body, code] of cases) {
      const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { ...plain.auth, 'content-type': 'application/json' }, body });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    }
    expect(received).toHaveLength(0);
    await books.expectSettledBooks(plain.orgId, { served: 1 });
  });
});
