import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { estimateTokensInFunctions } from 'gpt-tokenizer/functionCalling';
import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../../src/providers/types.js';
import {
  countChatPromptTokens,
  countCompletionTokens,
  countMessageTokens,
  countTextTokens,
  countToolDefinitionTokens,
  REPLY_PRIMING_TOKENS,
  TOKENS_PER_MESSAGE,
  upperBoundTokens,
} from '../../../src/tokens/count.js';
import { ENCODINGS } from '../../../src/config/model-encodings.js';
import { CHATS_WITH_TOOLS, chatFixtures, textFixtures, TOOLS } from '../../fixtures/tokens/corpus.js';
import { oracle, reference } from './oracle.js';

const texts = textFixtures();
const chats = chatFixtures();
const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

describe('reference fixtures', () => {
  it('cover every corpus text and chat, and only those', () => {
    expect(Object.keys(reference.texts).sort()).toEqual([...texts.keys()].sort());
    expect(Object.keys(reference.chats).sort()).toEqual([...chats.keys()].sort());
    expect(Object.keys(reference.chatsWithTools).sort()).toEqual(CHATS_WITH_TOOLS.map((c) => c.chat).sort());
  });

  // A changed corpus with stale counts would compare new text to old numbers.
  it.each([...texts.keys()])('%s: the corpus text is the one the counts were made from', (name) => {
    expect(sha256(texts.get(name)!)).toBe(reference.texts[name]!.sha256);
  });

  it('include long documents of about 50k tokens', () => {
    expect(reference.texts['long-prose']!.o200k_base).toBeGreaterThan(45_000);
    expect(reference.texts['long-mixed']!.o200k_base).toBeGreaterThan(45_000);
  });
});

describe.each(ENCODINGS)('countTextTokens on %s', (encoding) => {
  it.each([...texts.keys()])('%s equals the reference count', (name) => {
    expect(countTextTokens(texts.get(name)!, encoding)).toBe(reference.texts[name]![encoding]);
  });

  it('equals the live oracle on every fixture', () => {
    for (const [name, text] of texts) expect([name, countTextTokens(text, encoding)]).toEqual([name, oracle.count(text, encoding)]);
  });

  it('equals the live oracle on random text (full Unicode, graphemes, runs)', () => {
    const runs = fc
      .array(fc.tuple(fc.constantFrom(' ', '\n', '\r\n', '\t', 'a', 'Z', 'é', '\u0301', '7', '!', "'s", '/', '日', '😀', '\u3000', '\u200d', '<|endoftext|>'), fc.integer({ min: 1, max: 40 })), { maxLength: 30 })
      .map((parts) => parts.map(([unit, times]) => unit.repeat(times)).join(''));
    const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.string({ unit: 'grapheme', maxLength: 200 }), runs);
    fc.assert(
      fc.property(text, (input) => countTextTokens(input, encoding) === oracle.count(input, encoding)),
      { seed: 20_240_713, numRuns: 400 },
    );
  });

  it('counts special-token strings as ordinary text instead of throwing (a prompt may contain them)', () => {
    const text = '<|endoftext|><|im_start|>system<|im_sep|>';
    expect(() => countTextTokens(text, encoding)).not.toThrow();
    expect(countTextTokens(text, encoding)).toBeGreaterThan(4);
  });

  it('is never above the UTF-8 byte bound', () => {
    for (const [name, text] of texts) expect([name, countTextTokens(text, encoding) <= upperBoundTokens(text)]).toEqual([name, true]);
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (text) => countTextTokens(text, encoding) <= upperBoundTokens(text)), { seed: 7, numRuns: 300 });
  });
});

describe('upperBoundTokens', () => {
  it('is the UTF-8 byte length', () => {
    expect(upperBoundTokens('')).toBe(0);
    expect(upperBoundTokens('abc')).toBe(3);
    expect(upperBoundTokens('é')).toBe(2);
    expect(upperBoundTokens('日')).toBe(3);
    expect(upperBoundTokens('😀')).toBe(4);
    expect(upperBoundTokens('👨‍👩‍👧‍👦')).toBe(25);
    expect(upperBoundTokens('\ud800')).toBe(3); // a lone surrogate is sent as U+FFFD
  });

  it.each([...texts.keys()])('%s: matches the stored byte length', (name) => {
    expect(upperBoundTokens(texts.get(name)!)).toBe(reference.texts[name]!.utf8Bytes);
  });
});

describe('countCompletionTokens', () => {
  it('is exact with an encoding and the byte bound without one', () => {
    const text = texts.get('mixed-scripts')!;
    expect(countCompletionTokens(text, 'o200k_base')).toBe(reference.texts['mixed-scripts']!.o200k_base);
    expect(countCompletionTokens(text, 'cl100k_base')).toBe(reference.texts['mixed-scripts']!.cl100k_base);
    expect(countCompletionTokens(text, undefined)).toBe(Buffer.byteLength(text));
    expect(countCompletionTokens('', 'o200k_base')).toBe(0);
  });
});

describe.each(ENCODINGS)('countChatPromptTokens on %s', (encoding) => {
  it.each([...chats.keys()])('%s equals the cookbook rule on the oracle', (name) => {
    expect(countChatPromptTokens(chats.get(name)!, encoding)).toBe(reference.chats[name]![encoding]);
  });

  it.each(CHATS_WITH_TOOLS)('$chat with tools and tool_choice $toolChoice equals the documented rule on the oracle', ({ chat, toolChoice }) => {
    expect(countChatPromptTokens(chats.get(chat)!, encoding, { tools: TOOLS, toolChoice })).toBe(reference.chatsWithTools[chat]![encoding]);
  });

  it('an empty transcript is the reply priming alone', () => {
    expect(countChatPromptTokens([], encoding)).toBe(REPLY_PRIMING_TOKENS);
  });

  it('is the sum of its messages plus the priming', () => {
    const messages = chats.get('tool-round-trip')!;
    const sum = messages.reduce((total, message) => total + countMessageTokens(message, encoding), 0);
    expect(countChatPromptTokens(messages, encoding)).toBe(sum + REPLY_PRIMING_TOKENS);
  });

  it('does not count image parts (the caller adds its allowance)', () => {
    const withImage: ChatMessage[] = [
      { role: 'user', content: [{ type: 'text', text: 'Describe' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${'A'.repeat(10_000)}` } }] },
    ];
    const textOnly: ChatMessage[] = [{ role: 'user', content: [{ type: 'text', text: 'Describe' }] }];
    expect(countChatPromptTokens(withImage, encoding)).toBe(countChatPromptTokens(textOnly, encoding));
    expect(countChatPromptTokens(textOnly, encoding)).toBe(countChatPromptTokens([{ role: 'user', content: 'Describe' }], encoding));
  });

  it('a name costs its tokens and one more', () => {
    const plain = countMessageTokens({ role: 'user', content: 'hi' }, encoding);
    expect(countMessageTokens({ role: 'user', content: 'hi', name: 'alice' }, encoding)).toBe(plain + countTextTokens('alice', encoding) + 1);
  });

  it('null content costs only the message overhead and the role', () => {
    expect(countMessageTokens({ role: 'assistant', content: null }, encoding)).toBe(TOKENS_PER_MESSAGE + countTextTokens('assistant', encoding));
  });

  it('counts tool definitions above the published TypeScript-rendering estimate (errs high)', () => {
    const estimate = (tools: typeof TOOLS): number => estimateTokensInFunctions(tools.map((tool) => tool.function) as never, (text: string) => countTextTokens(text, encoding));
    expect(countToolDefinitionTokens(TOOLS, encoding)).toBeGreaterThanOrEqual(estimate(TOOLS));
    for (const tool of TOOLS) expect(countToolDefinitionTokens([tool], encoding)).toBeGreaterThanOrEqual(estimate([tool]));
  });

  it('no tools and tool_choice auto add nothing', () => {
    const messages = chats.get('single-user')!;
    expect(countChatPromptTokens(messages, encoding, { tools: [], toolChoice: 'auto' })).toBe(countChatPromptTokens(messages, encoding));
  });
});

describe('the cookbook worked example', () => {
  // The OpenAI cookbook (How to count tokens with tiktoken) prints these counts for this transcript,
  // checked there against the API's prompt_tokens: 129 for gpt-3.5-turbo / gpt-4, 124 for gpt-4o.
  it('counts 124 on o200k_base and 129 on cl100k_base', () => {
    const messages = chats.get('cookbook-example')!;
    expect(countChatPromptTokens(messages, 'o200k_base')).toBe(124);
    expect(countChatPromptTokens(messages, 'cl100k_base')).toBe(129);
  });
});
