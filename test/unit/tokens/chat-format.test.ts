import { describe, expect, it } from 'vitest';
import { ENCODINGS } from '../../../src/config/model-encodings.js';
import type { ChatMessage } from '../../../src/providers/types.js';
import { countChatFormat, FIXED_TOKENS, KNOWN_ROLES, TOOL_FRAMING_TEXT, TOOLS_WRAPPER_TEXT } from '../../../src/tokens/chat-format.js';
import { countChatPromptTokens, countTextTokens } from '../../../src/tokens/count.js';
import { loadedEncodings } from '../../../src/tokens/vocabularies.js';
import { oracle } from './oracle.js';

describe('the chat format without a tokenizer', () => {
  // The gateway's thread adds these without loading a vocabulary: they must be what the vocabularies say.
  it.each(ENCODINGS)('fixed counts equal %s\'s', (encoding) => {
    for (const role of KNOWN_ROLES) expect([role, oracle.count(role, encoding)]).toEqual([role, FIXED_TOKENS.knownRole]);
    expect(oracle.count(TOOLS_WRAPPER_TEXT, encoding)).toBe(FIXED_TOKENS.toolsWrapper);
    expect(oracle.count(TOOL_FRAMING_TEXT, encoding)).toBe(FIXED_TOKENS.toolFraming);
  });

  it('with texts counted as 0 gives the overheads: those plus the texts\' counts are the exact total', () => {
    const messages: ChatMessage[] = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: [{ type: 'text' as const, text: 'Read ' }, { type: 'text' as const, text: 'the file.' }], name: 'alice' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_9', type: 'function' as const, function: { name: 'read_file', arguments: '{"path":"a.ts"}' } }] },
      { role: 'tool', content: 'export const a = 1;', tool_call_id: 'call_9' },
    ];
    const tools = [{ type: 'function' as const, function: { name: 'read_file', description: 'Reads a file.', parameters: { type: 'object' } } }];
    const options = { tools, toolChoice: { type: 'function', function: { name: 'read_file' } } };
    for (const encoding of ENCODINGS) {
      const texts: string[] = [];
      const overheads = countChatFormat(messages, options, (text) => (texts.push(text), 0));
      const sum = texts.reduce((total, text) => total + countTextTokens(text, encoding), overheads);
      expect(sum).toBe(countChatPromptTokens(messages, encoding, options));
    }
  });
});

describe('vocabularies', () => {
  it('load on first use, one per encoding', () => {
    countTextTokens('hello', 'cl100k_base');
    expect(loadedEncodings()).toContain('cl100k_base');
  });
});
