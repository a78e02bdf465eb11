import { describe, it, expect } from 'vitest';
import { buildConfig } from '../../../src/config/load.js';
import { planMockEmbeddings } from '../../../src/providers/mock/embeddings.js';
import { buildEmbeddingsRequest, readEmbeddingsPromptTokens } from '../../../src/providers/openai-compatible/embeddings.js';
import { adapterFor } from '../../../src/providers/registry.js';
import { jsonBodyText } from '../../../src/json/chunked-body.js';

const config = buildConfig(
  {
    models: [
      { name: 'e', deployments: [{ provider: 'openai-compatible', model: 'text-embedding-3-small', baseUrl: 'https://api.example.com/v1/', apiKeyEnv: 'EMBED_KEY', headers: { 'x-extra': '1' } }] },
      { name: 'c', deployments: [{ provider: 'anthropic', model: 'claude-sonnet-4-5' }] },
      { name: 'm', deployments: [{ provider: 'mock', model: 'mock' }] },
    ],
  },
  { EMBED_KEY: 'sk-upstream-key' },
  'test',
);
const deployment = (name: string) => config.models.get(name)!.deployments[0]!;

describe('buildEmbeddingsRequest', () => {
  it('posts the client body to {baseUrl}/embeddings with the upstream model name, the key and the extra headers', () => {
    const built = buildEmbeddingsRequest({ model: 'e', input: ['a'], dimensions: 8, extra_field: true }, deployment('e'));
    expect(built.origin).toBe('https://api.example.com');
    expect(built.path).toBe('/v1/embeddings');
    expect(built.headers).toMatchObject({ authorization: 'Bearer sk-upstream-key', 'x-extra': '1', 'content-type': 'application/json' });
    expect(JSON.parse(jsonBodyText(built.body))).toEqual({ model: 'text-embedding-3-small', input: ['a'], dimensions: 8, extra_field: true });
  });

  it('is the hook of openai-compatible and mock deployments; anthropic has none', () => {
    expect(adapterFor(deployment('e')).embeddings).toBeDefined();
    expect(adapterFor(deployment('m')).embeddings).toBeDefined();
    expect(adapterFor(deployment('c')).embeddings).toBeUndefined();
  });
});

describe('readEmbeddingsPromptTokens', () => {
  const behaviour = { ttftMs: 0, tokensPerSecond: 0, completionTokens: 16, reportUsage: true, fault: 'none' as const };

  it("reads usage.prompt_tokens from the mock's answers, floats and base64", () => {
    for (const encoding_format of ['float', 'base64']) {
      const body = planMockEmbeddings({ input: ['abcdefgh', 'ijkl'], encoding_format }, behaviour).pieces[0]!;
      expect(readEmbeddingsPromptTokens(body)).toBe(3);
    }
  });

  it('reads usage wherever it is, with details nested in it, and undefined without a count', () => {
    expect(readEmbeddingsPromptTokens('{"usage":{"prompt_tokens_details":{"cached_tokens":1},"prompt_tokens":5,"total_tokens":5},"object":"list","data":[]}')).toBe(5);
    expect(readEmbeddingsPromptTokens(' {"object":"list","data":[{"embedding":[0.5]}],"model":"x"} \n')).toBeUndefined();
    expect(readEmbeddingsPromptTokens('{"data":[],"usage":null}')).toBeUndefined();
    expect(readEmbeddingsPromptTokens('{"data":[],"usage":{"prompt_tokens":-1}}')).toBeUndefined();
    expect(readEmbeddingsPromptTokens('{"data":[],"usage":{"prompt_tokens":1.5}}')).toBeUndefined();
    expect(readEmbeddingsPromptTokens('{"data":[],"usage":{"prompt_tokens":3,"note":"a } \\" {"}}')).toBe(3);
  });

  it('refuses what is not an embeddings list', () => {
    for (const body of ['', 'null', '[]', '{"object":"list"}', '{"data":{}}', '<html>{"data":[]}</html>', '{"data":[1,2']) {
      expect(() => readEmbeddingsPromptTokens(body), body).toThrow(expect.objectContaining({ code: 'NR_UPSTREAM_BAD_RESPONSE' }));
    }
  });
});
