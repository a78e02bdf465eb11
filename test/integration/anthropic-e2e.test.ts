// The Anthropic adapter end to end: a local server replays recorded Messages API streams byte by
// byte in odd-sized pieces, the gateway translates, the openai SDK reads.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/providers/anthropic/${name}`, import.meta.url));

describe('anthropic provider through the gateway', () => {
  let server: Server;
  let gw: TestGateway;
  const seen: Array<{ headers: IncomingMessage['headers']; body: Record<string, unknown> }> = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(parts).toString()) as Record<string, unknown>;
        seen.push({ headers: req.headers, body });
        if (!body.stream) {
          res.writeHead(200, { 'content-type': 'application/json' }).end(fixture('message-text.json'));
          return;
        }
        const name = body.model === 'claude-tools' ? 'tool-use.sse' : 'text-utf8.sse';
        const bytes = fixture(name);
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        // 7-byte pieces split events and multi-byte characters alike.
        let offset = 0;
        const timer = setInterval(() => {
          res.write(bytes.subarray(offset, offset + 7));
          offset += 7;
          if (offset >= bytes.length) {
            clearInterval(timer);
            res.end();
          }
        }, 0);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    gw = await startTestGateway(
      {
        models: [
          { name: 'claude', deployments: [{ provider: 'anthropic', model: 'claude-text', baseUrl: `http://127.0.0.1:${port}/v1`, apiKeyEnv: 'TEST_ANTHROPIC_KEY' }] },
          { name: 'claude-tools', deployments: [{ provider: 'anthropic', model: 'claude-tools', baseUrl: `http://127.0.0.1:${port}/v1`, apiKeyEnv: 'TEST_ANTHROPIC_KEY' }] },
        ],
      },
      { TEST_ANTHROPIC_KEY: 'sk-ant-test' },
    );
  });

  afterAll(async () => {
    await gw?.close();
    await new Promise((r) => server?.close(r));
  });

  const client = () => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: gw.apiKey, maxRetries: 0 });

  it('streams translated text, usage on request, and sends Anthropic headers and body', async () => {
    const stream = await client().chat.completions.create({
      model: 'claude',
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Greet the world' }],
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 100,
    });
    let text = '';
    let finish: string | null | undefined;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe('héllo wörld — 日本語 🎉\n"done"');
    expect(finish).toBe('stop');
    expect(usage).toEqual({ prompt_tokens: 21, completion_tokens: 14, total_tokens: 35 });
    const sent = seen.at(-1)!;
    expect(sent.headers['x-api-key']).toBe('sk-ant-test');
    expect(sent.headers['anthropic-version']).toBe('2023-06-01');
    expect(sent.body).toMatchObject({ model: 'claude-text', system: 'Be brief.', max_tokens: 100, stream: true });
  });

  it('streams tool calls whose arguments reassemble to JSON', async () => {
    const stream = await client().chat.completions.create({
      model: 'claude-tools',
      messages: [{ role: 'user', content: 'weather?' }],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }],
      stream: true,
    });
    const calls: Array<{ id?: string; name?: string; args: string }> = [];
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      for (const call of chunk.choices[0]?.delta?.tool_calls ?? []) {
        const slot = (calls[call.index] ??= { args: '' });
        slot.id ??= call.id;
        slot.name ??= call.function?.name;
        slot.args += call.function?.arguments ?? '';
      }
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(finish).toBe('tool_calls');
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) {
      expect(call.id).toMatch(/^toolu_/);
      expect(() => JSON.parse(call.args)).not.toThrow();
    }
  });

  it('translates a non-stream message', async () => {
    const completion = await client().chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'hi' }] });
    expect(completion.object).toBe('chat.completion');
    expect(completion.model).toBe('claude');
    expect(typeof completion.choices[0]?.message.content).toBe('string');
    expect(completion.usage?.total_tokens).toBeGreaterThan(0);
  });
});
