import fc from 'fast-check';
import { CL100K_TOKEN_SPLIT_REGEX, O200K_TOKEN_SPLIT_REGEX } from 'gpt-tokenizer/encodingParams/constants';
import { countTokens as gptTokenizerO200k } from 'gpt-tokenizer/encoding/o200k_base';
import { countTokens as gptTokenizerCl100k } from 'gpt-tokenizer/encoding/cl100k_base';
import { describe, expect, it } from 'vitest';
import { countTextTokens } from '../../../src/tokens/count.js';
import { ENCODINGS, type Encoding } from '../../../src/config/model-encodings.js';
import { countTextTokensLongPieces, LONG_PIECE_CHARS, mayHaveLongPiece } from '../../../src/tokens/long-pieces.js';
import { textFixtures } from '../../fixtures/tokens/corpus.js';
import { oracle, reference } from './oracle.js';

const texts = textFixtures();
const ordinary = { disallowedSpecial: new Set<string>() };
const gptTokenizer = (text: string, encoding: Encoding): number => (encoding === 'o200k_base' ? gptTokenizerO200k(text, ordinary) : gptTokenizerCl100k(text, ordinary));

const longestPiece = (text: string): number => {
  let longest = 0;
  for (const pattern of [O200K_TOKEN_SPLIT_REGEX, CL100K_TOKEN_SPLIT_REGEX]) for (const [piece] of text.matchAll(pattern)) longest = Math.max(longest, piece.length);
  return longest;
};

/** Runs of characters from every class the split patterns tell apart, some long. */
const runs = (maxRun: number) =>
  fc
    .array(fc.tuple(fc.constantFrom(' ', '\n', '\r', '\t', '\u00a0', 'a', 'Q', 'é', 'ǅ', '\u0301', '\u20dd', '5', '٣', '!', '/', "'", "'ll", '日', 'ア', '😀', '𝒜', '\u200b', '\ud800'), fc.integer({ min: 1, max: maxRun })), { maxLength: 12 })
    .map((parts) => parts.map(([unit, times]) => unit.repeat(times)).join(''));

describe('mayHaveLongPiece', () => {
  it('never misses a piece longer than the limit, under either split pattern', () => {
    fc.assert(
      fc.property(runs(40), fc.integer({ min: 6, max: 30 }), (text, limit) => mayHaveLongPiece(text, limit) || longestPiece(text) <= limit),
      { seed: 42, numRuns: 3_000 },
    );
  });

  it('is false for ordinary text and for text no longer than the limit', () => {
    expect(mayHaveLongPiece(texts.get('ascii-prose')!)).toBe(false);
    expect(mayHaveLongPiece(texts.get('code')!)).toBe(false);
    expect(mayHaveLongPiece(texts.get('cjk-long')!)).toBe(false);
    expect(mayHaveLongPiece('a'.repeat(LONG_PIECE_CHARS))).toBe(false);
  });

  it('is true for a long run of letters, punctuation, whitespace or CJK', () => {
    for (const name of ['long-runs', 'cjk-without-punctuation', 'spaces-1000', 'newlines-500']) expect([name, mayHaveLongPiece(texts.get(name)!)]).toEqual([name, true]);
  });
});

describe.each(ENCODINGS)('countTextTokensLongPieces on %s', (encoding) => {
  // The long path must be exact on everything, not only on the runs that send text to it.
  it.each([...texts.keys()])('%s equals the reference count', (name) => {
    expect(countTextTokensLongPieces(texts.get(name)!, encoding)).toBe(reference.texts[name]![encoding]);
  });

  it('equals gpt-tokenizer on random runs', () => {
    fc.assert(
      fc.property(runs(120), (text) => countTextTokensLongPieces(text, encoding) === gptTokenizer(text, encoding)),
      { seed: 1_337, numRuns: 500 },
    );
  });

  it('equals the live oracle on long runs of every kind', () => {
    // tiktoken 1.0.22 is quadratic too: runs of 8k keep this near a second.
    const cases = [' '.repeat(8_000), 'a'.repeat(8_000), '='.repeat(8_000), '\n'.repeat(8_000), '\u0301'.repeat(4_000), '日本'.repeat(3_000), '😀'.repeat(3_000), `x${' \t'.repeat(4_000)}y`];
    for (const text of cases) expect([text.slice(0, 4), countTextTokens(text, encoding)]).toEqual([text.slice(0, 4), oracle.count(text, encoding)]);
  });
});

describe('long pieces stay fast', () => {
  // Regression: gpt-tokenizer alone takes ~6 s for 100k spaces and minutes for 1 MB of one letter.
  // Not a timing assertion: the call must merely end well within the test timeout.
  it.each(ENCODINGS)('1 MB of one repeated character on %s', (encoding) => {
    expect(countTextTokens('a'.repeat(1_000_000), encoding)).toBe(125_000);
    expect(countTextTokens(' '.repeat(1_000_000), encoding)).toBeGreaterThan(0);
  });
});
