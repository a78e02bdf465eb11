// The gateway's thread loads no tokenizer vocabulary (~55 MB for o200k_base): every exact count
// goes through the pool to a worker, and comes back exact.
import { afterAll, expect, it } from 'vitest';
import type { ChatMessage } from '../../../src/providers/types.js';
import { countChatFormat } from '../../../src/tokens/chat-format.js';
import { loadedEncodings } from '../../../src/tokens/vocabularies.js';
import { WorkerPool } from '../../../src/workers/pool.js';
import { oracle } from '../tokens/oracle.js';

const pool = new WorkerPool({ threads: 1, inlineMaxChars: 500, maxBatchChars: 65_536, taskTimeoutMs: 30_000, resultCacheMaxBytes: 1 << 20 });
afterAll(() => pool.close());

it('counts short and long prompts exactly in a worker, and this thread loads no vocabulary', async () => {
  const messages: ChatMessage[] = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: `Summarize: ${'the quick brown fox jumps over the lazy dog. '.repeat(200)}` },
  ];
  const texts: string[] = [];
  const overheads = countChatFormat(messages, undefined, (text) => (texts.push(text), 0));
  const expected = texts.reduce((sum, text) => sum + oracle.count(text, 'o200k_base'), overheads);
  expect(await pool.countTokens({ kind: 'chat', messages, encoding: 'o200k_base' })).toBe(expected);
  expect(await pool.countTokens({ kind: 'text', text: 'hi', encoding: 'cl100k_base' })).toBe(1);
  expect(loadedEncodings()).toEqual([]);
});
