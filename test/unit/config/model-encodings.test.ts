import { describe, expect, it } from 'vitest';
import { DEFAULT_MODEL_ENCODINGS, ENCODINGS, encodingForModel, isEncoding } from '../../../src/config/model-encodings.js';
import { oracle } from '../tokens/oracle.js';

describe('encodingForModel', () => {
  it.each([
    ['gpt-4o', 'o200k_base'],
    ['gpt-4o-mini-2024-07-18', 'o200k_base'],
    ['chatgpt-4o-latest', 'o200k_base'],
    ['gpt-4.1-nano', 'o200k_base'],
    ['gpt-4.5-preview', 'o200k_base'],
    ['gpt-5', 'o200k_base'],
    ['gpt-5.1-codex', 'o200k_base'],
    ['gpt-5-mini-2025-08-07', 'o200k_base'],
    ['o1', 'o200k_base'],
    ['o1-preview-2024-09-12', 'o200k_base'],
    ['o3-mini', 'o200k_base'],
    ['o4-mini-deep-research', 'o200k_base'],
    ['gpt-4', 'cl100k_base'],
    ['gpt-4-0613', 'cl100k_base'],
    ['gpt-4-turbo-2024-04-09', 'cl100k_base'],
    ['gpt-4-32k', 'cl100k_base'],
    ['gpt-3.5-turbo', 'cl100k_base'],
    ['gpt-3.5-turbo-instruct', 'cl100k_base'],
    ['gpt-35-turbo', 'cl100k_base'],
    ['text-embedding-3-small', 'cl100k_base'],
  ])('%s uses %s', (model, encoding) => {
    expect(encodingForModel(model)).toBe(encoding);
  });

  it.each(['claude-3-5-sonnet-20241022', 'claude-sonnet-4-5', 'llama-3.1-70b-instruct', 'meta-llama/Llama-3.3-70B-Instruct', 'mistral-large-latest', 'gemini-2.0-flash', 'gpt-oss-120b', 'mock', ''])(
    '%s has no public tokenizer: undefined (use the upper bound)',
    (model) => {
      expect(encodingForModel(model)).toBeUndefined();
    },
  );

  it('matches a family only up to a - or . boundary', () => {
    expect(encodingForModel('o10')).toBeUndefined();
    expect(encodingForModel('o1x-preview')).toBeUndefined();
    expect(encodingForModel('gpt-40')).toBeUndefined();
    expect(encodingForModel('gpt-4ox')).toBeUndefined();
  });

  it('looks through a routing prefix, a fine-tune wrapper, case and surrounding space', () => {
    expect(encodingForModel('openai/gpt-4o-mini')).toBe('o200k_base');
    expect(encodingForModel('azure/deployments/gpt-35-turbo')).toBe('cl100k_base');
    expect(encodingForModel('ft:gpt-4o-mini-2024-07-18:acme::9x8y7z')).toBe('o200k_base');
    expect(encodingForModel('ft:gpt-3.5-turbo-0613:acme::abc')).toBe('cl100k_base');
    expect(encodingForModel('GPT-4O')).toBe('o200k_base');
    expect(encodingForModel(' gpt-4.1 ')).toBe('o200k_base');
  });

  it('takes a table of its own (first match wins)', () => {
    const rules = [{ family: 'my-gpt', encoding: 'o200k_base' as const }];
    expect(encodingForModel('my-gpt-prod', rules)).toBe('o200k_base');
    expect(encodingForModel('gpt-4o', rules)).toBeUndefined();
  });

  it('the default table is frozen', () => {
    expect(Object.isFrozen(DEFAULT_MODEL_ENCODINGS)).toBe(true);
    expect(Object.isFrozen(DEFAULT_MODEL_ENCODINGS[0])).toBe(true);
  });

  it('agrees with tiktoken on every OpenAI chat and embedding model it names', () => {
    const families = /^(gpt-|chatgpt-|o\d|text-embedding-)/;
    const checked = Object.entries(oracle.modelEncodings).filter(([model]) => families.test(model));
    expect(checked.length).toBeGreaterThan(50);
    for (const [model, encoding] of checked) {
      expect([model, encodingForModel(model) ?? 'undefined']).toEqual([model, isEncoding(encoding) ? encoding : 'undefined']);
    }
  });
});

describe('isEncoding', () => {
  it('knows exactly the supported encodings', () => {
    for (const encoding of ENCODINGS) expect(isEncoding(encoding)).toBe(true);
    expect(isEncoding('p50k_base')).toBe(false);
    expect(isEncoding(undefined)).toBe(false);
  });
});
