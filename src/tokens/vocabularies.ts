// The BPE vocabularies (gpt-tokenizer), each loaded on its first use and only by the thread that
// uses it: o200k_base costs ~55 MB of RSS, cl100k_base ~36 MB. The gateway's own thread never
// loads one (it sends every exact count to the worker pool); a worker loads only the encodings
// of the models it is asked to count for. Loaded through require (the package's CommonJS build),
// which is synchronous, so counting stays a plain function; everything here uses that one copy.
import { createRequire } from 'node:module';
import type { Encoding } from '../config/model-encodings.js';

export interface Vocabulary {
  readonly countTokens: (text: string, options: { disallowedSpecial: Set<string> }) => number;
  /** Token bytes by rank, for the long-piece merge (long-pieces.ts). */
  readonly ranks: ReadonlyArray<string | number[] | undefined>;
  /** The encoding's pre-tokenizer split pattern. */
  readonly splitPattern: RegExp;
}

/**
 * gpt-tokenizer caches the merge of each piece not in the vocabulary, 100,000 per encoding by
 * default: ~28 MB of heap each once full, more than the vocabulary. 10,000 keeps it near 3 MB with
 * no measurable loss on prose, code or CJK (bench/tokens.ts).
 */
export const MERGE_CACHE_ENTRIES = 10_000;

const require = createRequire(import.meta.url);
const loaded = new Map<Encoding, Vocabulary>();

interface EncodingModule {
  countTokens: Vocabulary['countTokens'];
  setMergeCacheSize: (size: number) => void;
}

export function vocabulary(encoding: Encoding): Vocabulary {
  let vocab = loaded.get(encoding);
  if (vocab === undefined) {
    const module = require(`gpt-tokenizer/encoding/${encoding}`) as EncodingModule;
    module.setMergeCacheSize(MERGE_CACHE_ENTRIES);
    const constants = require('gpt-tokenizer/encodingParams/constants') as Record<string, RegExp>;
    vocab = {
      countTokens: module.countTokens,
      ranks: (require(`gpt-tokenizer/bpeRanks/${encoding}`) as { default: Vocabulary['ranks'] }).default,
      splitPattern: encoding === 'o200k_base' ? constants.O200K_TOKEN_SPLIT_REGEX! : constants.CL100K_TOKEN_SPLIT_REGEX!,
    };
    loaded.set(encoding, vocab);
  }
  return vocab;
}

/** The encodings this thread has loaded, for tests and memory reports. */
export function loadedEncodings(): Encoding[] {
  return [...loaded.keys()];
}
