// The text a stream generated, read from OpenAI chunks without parsing them: the same pieces as
// a plain search of every `"content":"`, `"reasoning_content":"` and `"arguments":"` key, on random chunks with escapes,
// quotes, backslashes and near-miss keys; and the unescaped text at the end.
import { describe, expect, it } from 'vitest';
import { CompletionText } from '../../../src/streaming/completion-text.js';
import { seededRandom } from '../../support/seeded-random.js';

/** The reference: each key found by a search for the whole key, its value up to the unescaped quote; content and reasoning in the order they come. */
function referencePieces(json: string): string[] {
  const pieces: string[] = [];
  for (const keys of [['"content":"', '"reasoning_content":"'], ['"arguments":"']]) {
    let from = 0;
    for (;;) {
      let at = -1;
      let key = '';
      for (const k of keys) {
        const i = json.indexOf(k, from);
        if (i !== -1 && (at === -1 || i < at)) [at, key] = [i, k];
      }
      if (at === -1) break;
      const start = at + key.length;
      let end = -1;
      for (let i = start; i < json.length; i++) {
        const c = json.charCodeAt(i);
        if (c === 0x5c) i++;
        else if (c === 0x22) {
          end = i;
          break;
        }
      }
      if (end === -1) break;
      pieces.push(json.slice(start, end));
      from = end + 1;
    }
  }
  return pieces;
}

describe('CompletionText', () => {
  it('keeps what a whole-key search keeps, on random chunks', () => {
    const random = seededRandom(11);
    const parts = ['"content":"', '"reasoning_content":"', 'reasoning_co', '_content":"', '"arguments":"', 'content":"', 'ntent":"', '"co', '"ar', 'guments":"', 'x', ' ', '"', '\\', '\\"', '\\\\', '\\n', 'é', '😀', '{', '}', ':', ','];
    for (let n = 0; n < 5_000; n++) {
      let json = '';
      const count = Math.floor(random() * 16);
      for (let k = 0; k < count; k++) json += parts[Math.floor(random() * parts.length)];
      const text = new CompletionText(false);
      text.appendFromChunk(json);
      expect(text.text(), json).toBe(referencePieces(json).join(''));
    }
  });

  it('unescapes the JSON strings of OpenAI chunks once, at the end', () => {
    const text = new CompletionText(true);
    for (const content of ['héllo ', 'line\nbreak ', 'a "quote" ', 'back\\slash ', '😀']) {
      text.appendFromChunk(JSON.stringify({ choices: [{ index: 0, delta: { content }, finish_reason: null }] }));
    }
    text.appendFromChunk(JSON.stringify({ choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"a":1}' } }] } }] }));
    expect(text.text()).toBe('héllo line\nbreak a "quote" back\\slash 😀{"a":1}');
  });
});
