import { describe, it, expect } from 'vitest';
import { GatewayError } from '../../../../src/errors/gateway-error.js';
import { MAX_EMBEDDING_INPUTS, inputsOf, parseEmbeddingsRequest, validateEmbeddingsRequest } from '../../../../src/http/embeddings/validate.js';

function refusal(body: unknown): { code: string; param: string | null; message: string } {
  try {
    validateEmbeddingsRequest(body);
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    const e = err as GatewayError;
    return { code: e.code, param: e.param, message: e.message };
  }
  throw new Error(`accepted ${JSON.stringify(body)}`);
}

describe('validateEmbeddingsRequest', () => {
  it('accepts every input form OpenAI takes, and passes unknown fields through', () => {
    for (const input of ['text', ['a', 'b'], [1, 2, 3], [[1, 2], [3]], Array(MAX_EMBEDDING_INPUTS).fill('a')]) {
      const body = { model: 'm', input, encoding_format: 'base64', dimensions: 64, user: 'u', vendor_option: { x: 1 } };
      expect(validateEmbeddingsRequest(body)).toBe(body);
    }
  });

  it('names the offending param', () => {
    expect(refusal([])).toMatchObject({ code: 'NR_INVALID_REQUEST', param: null });
    expect(refusal({ input: 'x' })).toMatchObject({ param: 'model' });
    expect(refusal({ model: '', input: 'x' })).toMatchObject({ param: 'model' });
    expect(refusal({ model: 'm' })).toMatchObject({ param: 'input' });
    expect(refusal({ model: 'm', input: '' })).toMatchObject({ param: 'input' });
    expect(refusal({ model: 'm', input: [] })).toMatchObject({ param: 'input' });
    expect(refusal({ model: 'm', input: { text: 'x' } })).toMatchObject({ param: 'input' });
    expect(refusal({ model: 'm', input: Array(MAX_EMBEDDING_INPUTS + 1).fill('a') })).toMatchObject({ param: 'input', message: expect.stringContaining('2048') });
    expect(refusal({ model: 'm', input: ['a', ''] })).toMatchObject({ param: 'input[1]' });
    expect(refusal({ model: 'm', input: ['a', [1]] })).toMatchObject({ param: 'input[1]' });
    expect(refusal({ model: 'm', input: [1, -2] })).toMatchObject({ param: 'input' });
    expect(refusal({ model: 'm', input: [1, 2.5] })).toMatchObject({ param: 'input' });
    expect(refusal({ model: 'm', input: [[1], []] })).toMatchObject({ param: 'input[1]' });
    expect(refusal({ model: 'm', input: [[1], ['a']] })).toMatchObject({ param: 'input[1]' });
    expect(refusal({ model: 'm', input: 'x', encoding_format: 'int8' })).toMatchObject({ param: 'encoding_format' });
    for (const dimensions of [0, -1, 1.5, '64']) expect(refusal({ model: 'm', input: 'x', dimensions })).toMatchObject({ param: 'dimensions' });
    expect(refusal({ model: 'm', input: 'x', user: 7 })).toMatchObject({ param: 'user' });
    // A case-blind upstream parser would embed the input the guardrails never checked.
    expect(refusal({ model: 'm', input: 'checked', Input: 'never checked' })).toMatchObject({ param: null, message: expect.stringContaining('differ only in case') });
  });

  it('takes null encoding_format and dimensions as absent and does not send them on', () => {
    const body = validateEmbeddingsRequest({ model: 'm', input: 'x', encoding_format: null, dimensions: null });
    expect(body).toEqual({ model: 'm', input: 'x' });
  });
});

describe('parseEmbeddingsRequest', () => {
  it('refuses what is not JSON with NR_INVALID_JSON', () => {
    expect(() => parseEmbeddingsRequest('{nope')).toThrow(expect.objectContaining({ code: 'NR_INVALID_JSON' }));
  });
});

describe('inputsOf', () => {
  it('reads a single token array as one input', () => {
    expect(inputsOf({ model: 'm', input: 'a' })).toEqual(['a']);
    expect(inputsOf({ model: 'm', input: ['a', 'b'] })).toEqual(['a', 'b']);
    expect(inputsOf({ model: 'm', input: [1, 2] })).toEqual([[1, 2]]);
    expect(inputsOf({ model: 'm', input: [[1], [2]] })).toEqual([[1], [2]]);
  });
});
