import { describe, it, expect } from 'vitest';
import type { MockBehaviour } from '../../../../src/config/schema.js';
import { MAX_EMBEDDING_INPUTS, MOCK_EMBEDDING_DIMENSIONS, base64Floats, mockEmbedding, mockEmbeddingTokens, planMockEmbeddings } from '../../../../src/providers/mock/embeddings.js';
import { ABSURD_COMPLETION_TOKENS } from '../../../../src/providers/mock/generate.js';

const behaviour = (over: Partial<MockBehaviour> = {}): MockBehaviour => ({ ttftMs: 0, tokensPerSecond: 0, completionTokens: 16, reportUsage: true, fault: 'none', ...over });

interface EmbeddingsJson {
  object: string;
  model: string;
  data: Array<{ object: string; index: number; embedding: number[] | string }>;
  usage?: { prompt_tokens: number; total_tokens: number };
}

function answer(body: Record<string, unknown>, over: Partial<MockBehaviour> = {}): { status: number; json: EmbeddingsJson } {
  const plan = planMockEmbeddings(body, behaviour(over));
  return { status: plan.status, json: JSON.parse(plan.pieces.join('')) as EmbeddingsJson };
}

const norm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));

describe('mockEmbedding', () => {
  it('is a unit vector, a pure function of model and input', () => {
    const v = mockEmbedding('m', 'hello', 256);
    expect(v).toHaveLength(256);
    expect(norm(v)).toBeCloseTo(1, 5);
    expect(mockEmbedding('m', 'hello', 256)).toEqual(v);
    expect(mockEmbedding('m', 'hello!', 256)).not.toEqual(v);
    expect(mockEmbedding('other', 'hello', 256)).not.toEqual(v);
    // A token array is its own input, not the text of its numbers.
    expect(mockEmbedding('m', [1, 2], 8)).not.toEqual(mockEmbedding('m', '1,2', 8));
  });

  it('fewer dimensions are the longer vector cut and renormalized, as OpenAI shortens embeddings', () => {
    const long = mockEmbedding('m', 'x', 64);
    const short = mockEmbedding('m', 'x', 16);
    const scale = norm(long.subarray(0, 16));
    short.forEach((value, i) => expect(value).toBeCloseTo(long[i]! / scale, 6));
  });
});

describe('planMockEmbeddings', () => {
  it('answers OpenAI embeddings JSON: one float vector per input, 256 dimensions, the request model, usage', () => {
    const { status, json } = answer({ model: 'text-embedding-3-small', input: ['abcdefgh', 'é'] });
    expect(status).toBe(200);
    expect(json).toMatchObject({ object: 'list', model: 'text-embedding-3-small', usage: { prompt_tokens: 3, total_tokens: 3 } });
    expect(json.data.map((d) => [d.object, d.index])).toEqual([['embedding', 0], ['embedding', 1]]);
    const first = json.data[0]!.embedding as number[];
    expect(first).toHaveLength(MOCK_EMBEDDING_DIMENSIONS);
    expect(first).toEqual(Array.from(mockEmbedding('text-embedding-3-small', 'abcdefgh', 256)));
  });

  it('takes a string, strings, one token array or token arrays; counts tokens one each', () => {
    expect(answer({ input: 'abcd' }).json.usage!.prompt_tokens).toBe(1);
    expect(answer({ input: [1, 2, 3] }).json.data).toHaveLength(1);
    expect(answer({ input: [1, 2, 3] }).json.usage!.prompt_tokens).toBe(3);
    expect(answer({ input: [[1, 2], [3]] }).json.data).toHaveLength(2);
    expect(mockEmbeddingTokens(['abcdefgh', [1, 2]])).toBe(4);
    expect(mockEmbeddingTokens([''])).toBe(1);
  });

  it('honours dimensions and base64 (little-endian float32, as OpenAI encodes)', () => {
    const floats = answer({ model: 'm', input: 'hi', dimensions: 12 }).json.data[0]!.embedding as number[];
    expect(floats).toHaveLength(12);
    const b64 = answer({ model: 'm', input: 'hi', dimensions: 12, encoding_format: 'base64' }).json.data[0]!.embedding as string;
    expect(b64).toBe(base64Floats(mockEmbedding('m', 'hi', 12)));
    const bytes = Buffer.from(b64, 'base64');
    expect(bytes).toHaveLength(48);
    expect(Array.from({ length: 12 }, (_, i) => bytes.readFloatLE(i * 4))).toEqual(floats);
  });

  it('refuses what OpenAI refuses with a 400 error body', () => {
    for (const body of [{}, { input: [] }, { input: [{}] }, { input: [[]] }, { input: 'x', dimensions: 0 }, { input: 'x', dimensions: 1.5 }, { input: 'x', encoding_format: 'int8' }, { input: Array(MAX_EMBEDDING_INPUTS + 1).fill('a') }]) {
      const plan = planMockEmbeddings(body, behaviour());
      expect(plan.status).toBe(400);
      expect(JSON.parse(plan.pieces[0]!).error.type).toBe('invalid_request_error');
    }
  });

  it('follows the behaviour: no usage, absurd usage, faults, time to first byte', () => {
    expect(answer({ input: 'x' }, { reportUsage: false }).json).not.toHaveProperty('usage');
    expect(answer({ input: 'x' }, { fault: 'absurd-usage' }).json.usage!.prompt_tokens).toBe(ABSURD_COMPLETION_TOKENS);
    expect(planMockEmbeddings({ input: 'x' }, behaviour({ fault: 'http-429' })).status).toBe(429);
    expect(planMockEmbeddings({ input: 'x' }, behaviour({ fault: 'http-500' })).status).toBe(500);
    expect(planMockEmbeddings({ input: 'x' }, behaviour({ fault: 'timeout' })).ending).toBe('hang');
    const cut = planMockEmbeddings({ input: 'x' }, behaviour({ fault: 'cut-mid-stream' }));
    expect(cut.ending).toBe('cut');
    expect(Number(cut.headers['content-length'])).toBeGreaterThan(Buffer.byteLength(cut.pieces[0]!));
    expect(planMockEmbeddings({ input: 'x' }, behaviour({ ttftMs: 40 })).firstDelayMs).toBe(40);
  });
});
