// The big-prompt scenario's prompts: seeded mixed text (prose, code, JSON logs, a few emails and
// phone numbers: bench/lib/prompt-text.ts) of ~20k o200k tokens, ~80 KB each. Over the guarded
// keys' byte bound but under their token limit, so nemo counts every one exactly and scans it.
import { countTextTokens } from '../../src/tokens/count.js';
import { textOfTokens } from './prompt-text.js';

export const BIG_PROMPT_TOKENS = 20_000;
/** A few different texts, taken in turn, so nothing downstream can answer from a cache. */
const SEEDS = [20_001, 20_002, 20_003, 20_004];

export function bigPrompts(): string[] {
  return SEEDS.map((seed) => textOfTokens(seed, BIG_PROMPT_TOKENS, (text) => countTextTokens(text, 'o200k_base')));
}
