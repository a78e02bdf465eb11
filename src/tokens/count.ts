// Exact token counts for OpenAI's public encodings (gpt-tokenizer: pure JS, synchronous), and the
// chat-format accounting (chat-format.ts) on top of them. Pure functions, no I/O: the worker pool
// runs them. Each vocabulary loads on its first count (vocabularies.ts); the gateway's own thread
// never calls these.
//
// countTextTokens is exact, equal to tiktoken's. Text is ordinary text: `<|endoftext|>` in a prompt
// is 7 ordinary tokens (tiktoken's encode_ordinary), never a special token or an error. Text with a
// long pre-tokenizer piece goes through long-pieces.ts (same count, O(n log n)). What the chat
// format adds, and what of it is approximate, is in chat-format.ts.
import type { Encoding } from '../config/model-encodings.js';
import type { ChatMessage, ChatTool } from '../providers/types.js';
import { countChatFormat, countMessageFormat, countToolDefinitionFormat, type ChatPromptOptions } from './chat-format.js';
import { countTextTokensLongPieces, mayHaveLongPiece } from './long-pieces.js';
import { upperBoundTokens } from './upper-bound.js';
import { vocabulary } from './vocabularies.js';

export { upperBoundTokens };
export { REPLY_PRIMING_TOKENS, TOKENS_PER_MESSAGE, TOKENS_PER_NAME, TOKENS_PER_TOOL_CALL, TOOL_DEFINITIONS_OVERHEAD_TOKENS, type ChatPromptOptions } from './chat-format.js';
export { MERGE_CACHE_ENTRIES } from './vocabularies.js';

// An empty disallowed set: special-token strings in the text are neither rejected nor special.
const ORDINARY_TEXT = { disallowedSpecial: new Set<string>() };

/** The exact number of tokens of `text` under `encoding`, special-token strings counted as text. */
export function countTextTokens(text: string, encoding: Encoding): number {
  if (text.length === 0) return 0;
  // gpt-tokenizer is quadratic in a piece's length: a long run goes to the O(n log n) merge.
  if (mayHaveLongPiece(text)) return countTextTokensLongPieces(text, encoding);
  return vocabulary(encoding).countTokens(text, ORDINARY_TEXT);
}

/** Tokens of a completion's text: exact with an encoding, the UTF-8 byte bound without one. */
export function countCompletionTokens(text: string, encoding: Encoding | undefined): number {
  return encoding === undefined ? upperBoundTokens(text) : countTextTokens(text, encoding);
}

/**
 * The prompt tokens of a chat request as OpenAI counts them (exact for plain messages, see
 * chat-format.ts for what is approximate). Image parts are not counted: add the image allowance.
 */
export function countChatPromptTokens(messages: readonly ChatMessage[], encoding: Encoding, options?: ChatPromptOptions): number {
  return countChatFormat(messages, options, (text) => countTextTokens(text, encoding));
}

/** One message's share of countChatPromptTokens (without the reply priming). */
export function countMessageTokens(message: ChatMessage, encoding: Encoding): number {
  return countMessageFormat(message, (text) => countTextTokens(text, encoding));
}

/** The tokens of the `tools` definitions (see countToolDefinitionFormat). */
export function countToolDefinitionTokens(tools: readonly ChatTool[], encoding: Encoding): number {
  return countToolDefinitionFormat(tools, (text) => countTextTokens(text, encoding));
}
