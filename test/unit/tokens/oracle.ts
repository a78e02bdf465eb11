// The independent oracle for the token tests: `tiktoken` (OpenAI's Rust tiktoken in WASM), a
// devDependency, so always installed by `npm ci`: the live comparisons always run, beside the
// stored reference counts (test/fixtures/tokens/reference-counts.json).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Tiktoken } from 'tiktoken';
import type { ReferenceCounts } from '../../fixtures/tokens/corpus.js';
import { ENCODINGS, type Encoding } from '../../../src/config/model-encodings.js';

export interface Oracle {
  /** tiktoken's encode_ordinary length: special-token strings are ordinary text. */
  count(text: string, encoding: Encoding): number;
  /** tiktoken's own model-name to encoding table. */
  modelEncodings: Record<string, string>;
}

async function loadOracle(): Promise<Oracle> {
  const tiktoken = await import('tiktoken');
  const encoders = Object.fromEntries(ENCODINGS.map((name) => [name, tiktoken.get_encoding(name)])) as Record<Encoding, Tiktoken>;
  const modelEncodings = JSON.parse(readFileSync(createRequire(import.meta.url).resolve('tiktoken/model_to_encoding.json'), 'utf8')) as Record<string, string>;
  return { count: (text, encoding) => encoders[encoding].encode_ordinary(text).length, modelEncodings };
}

export const oracle = await loadOracle();

export const reference = JSON.parse(readFileSync(new URL('../../fixtures/tokens/reference-counts.json', import.meta.url), 'utf8')) as ReferenceCounts;
