// The official openai SDK as the client of a running gateway: completions, streams, and the
// SDK's typed errors for what the gateway answers.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mockCompletionText } from '../../src/providers/mock/generate.js';
import { PLATFORM, mockDeployment, startMockUpstreamProcess, startTestGateway, type MockUpstreamProcess, type TestGateway } from './helpers/gateway.js';

describe('openai SDK against the gateway', () => {
  let upstream: MockUpstreamProcess;
  let gw: TestGateway;
  let client: OpenAI;

  beforeAll(async () => {
    upstream = await startMockUpstreamProcess(['--completion-tokens', '24']);
    gw = await startTestGateway(
      {
        upstream: { maxAttempts: 2, cooldownMs: 0 },
        models: [
          { name: 'chat', deployments: [mockDeployment(upstream)] },
          { name: 'slow-stream', deployments: [mockDeployment(upstream, { 'x-mock-tokens-per-second': '200' })] },
          { name: 'in-process', deployments: [{ provider: 'mock', model: 'in-process', mock: { completionTokens: 5 } }] },
          { name: 'always-429', deployments: [mockDeployment(upstream, { 'x-mock-fault': 'http-429' })] },
          { name: 'always-500', deployments: [mockDeployment(upstream, { 'x-mock-fault': 'http-500' })] },
          { name: 'cut-stream', deployments: [mockDeployment(upstream, { 'x-mock-fault': 'cut-mid-stream', 'x-mock-tokens-per-second': '500' })] },
        ],
      },
    );
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: gw.apiKey, maxRetries: 0 });
  });

  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it('returns a non-stream completion with usage', async () => {
    const completion = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'Hello there' }] });
    expect(completion.object).toBe('chat.completion');
    expect(completion.choices[0]?.message.content).toBe(mockCompletionText(24));
    expect(completion.choices[0]?.finish_reason).toBe('stop');
    expect(completion.usage?.completion_tokens).toBe(24);
  });

  it('honours max_tokens with finish_reason length', async () => {
    const completion = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5 });
    expect(completion.choices[0]?.message.content).toBe(mockCompletionText(5));
    expect(completion.choices[0]?.finish_reason).toBe('length');
  });

  it('streams deltas that reassemble to the full text, without a usage chunk unless asked', async () => {
    const stream = await client.chat.completions.create({ model: 'slow-stream', messages: [{ role: 'user', content: 'Tell me' }], stream: true });
    let text = '';
    let chunks = 0;
    let usageChunks = 0;
    for await (const chunk of stream) {
      chunks++;
      if (chunk.usage) usageChunks++;
      text += chunk.choices[0]?.delta?.content ?? '';
    }
    expect(text).toBe(mockCompletionText(24));
    expect(chunks).toBeGreaterThanOrEqual(24);
    expect(usageChunks).toBe(0);
  });

  it('includes the usage chunk when the client asks for it', async () => {
    const stream = await client.chat.completions.create({
      model: 'chat',
      messages: [{ role: 'user', content: 'Tell me' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
    expect(usage?.completion_tokens).toBe(24);
    expect(usage?.total_tokens).toBe((usage?.prompt_tokens ?? 0) + 24);
  });

  it('serves the in-process mock provider', async () => {
    const completion = await client.chat.completions.create({ model: 'in-process', messages: [{ role: 'user', content: 'x' }] });
    expect(completion.choices[0]?.message.content).toBe(mockCompletionText(5));
  });

  it('lists models', async () => {
    const ids: string[] = [];
    for await (const model of client.models.list()) ids.push(model.id);
    expect(ids).toEqual(['chat', 'slow-stream', 'in-process', 'always-429', 'always-500', 'cut-stream']);
  });

  it('maps a wrong key to AuthenticationError (401)', async () => {
    for (const apiKey of ['sk-wrong', `sk-nemo-${'A'.repeat(43)}`]) {
      const bad = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey, maxRetries: 0 });
      const err = await bad.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
      expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('invalid_api_key');
    }
  });

  it('maps a model the key may not use to PermissionDeniedError (403)', async () => {
    const { key } = (await gw.gateway.admin.createKey(PLATFORM, gw.orgId, { name: 'chat only', allowed_models: ['chat'] })) as { key: string };
    const limited = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });
    const err = await limited.chat.completions.create({ model: 'in-process', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('model_not_allowed');
    const ok = await limited.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'x' }] });
    expect(ok.choices[0]?.message.content).toBe(mockCompletionText(24));
    const ids: string[] = [];
    for await (const model of limited.models.list()) ids.push(model.id);
    expect(ids).toEqual(['chat']);
  });

  it('maps an unknown model to NotFoundError (404)', async () => {
    const err = await client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('model_not_found');
    expect((err as InstanceType<typeof OpenAI.APIError>).param).toBe('model');
  });

  it('maps upstream rate limiting to RateLimitError (429) with Retry-After', async () => {
    const err = await client.chat.completions.create({ model: 'always-429', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect((err as InstanceType<typeof OpenAI.APIError>).headers?.get('retry-after')).toBe('1');
  });

  it('maps upstream failure to InternalServerError (5xx) without leaking internals', async () => {
    const err = await client.chat.completions.create({ model: 'always-500', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect(String((err as Error).message)).not.toMatch(/127\.0\.0\.1|ECONN|at .*\.js/);
  });

  it('maps a bad request to BadRequestError (400) with the param', async () => {
    const err = await client.chat.completions.create({ model: 'chat', messages: [] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.APIError>).param).toBe('messages');
  });

  it('raises an APIError when the stream breaks after it started, after the tokens already sent', async () => {
    const stream = await client.chat.completions.create({ model: 'cut-stream', messages: [{ role: 'user', content: 'x' }], stream: true });
    let text = '';
    const err = await (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(text.length).toBeGreaterThan(0);
    expect(mockCompletionText(24).startsWith(text)).toBe(true);
  });
});
