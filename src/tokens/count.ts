// Exact token counts for OpenAI's public encodings (gpt-tokenizer: pure JS, synchronous) and the
// chat-format accounting on top of them. Pure functions, no I/O: the worker pool and the gateway
// call them. Importing this module loads both vocabularies; config/model-encodings.ts is the cheap part.
//
// What is exact and what is not:
// - countTextTokens: exact, equal to tiktoken's. Text is ordinary text: `<|endoftext|>` in a
//   prompt is 7 ordinary tokens (tiktoken's encode_ordinary), never a special token or an error.
//   Text with a long pre-tokenizer piece goes through long-pieces.ts (same count, O(n log n)).
// - countChatPromptTokens on role/content/name messages: the OpenAI cookbook rule for
//   gpt-3.5/4/4o (3 per message, every string field's tokens, +1 with a name, 3 to prime the
//   reply), which the cookbook checks against the API's prompt_tokens.
// - Approximate, since OpenAI's accounting is unpublished, and erring high where there is a
//   choice: tool calls (3 + id + name + arguments each) and tool_call_id; tool definitions (each
//   function's JSON, longer than the TypeScript-like rendering the model is believed to see, plus
//   that rendering's framing); a named tool_choice. Text content parts are counted one by one (a
//   token or so either way per part boundary if OpenAI joins them). Image parts count 0 here: the
//   caller adds its image allowance.
import { countTokens as countCl100k, setMergeCacheSize as setCl100kMergeCacheSize } from 'gpt-tokenizer/encoding/cl100k_base';
import { countTokens as countO200k, setMergeCacheSize as setO200kMergeCacheSize } from 'gpt-tokenizer/encoding/o200k_base';
import type { ChatMessage, ChatTool, ContentPart } from '../providers/types.js';
import type { Encoding } from '../config/model-encodings.js';
import { countTextTokensLongPieces, mayHaveLongPiece } from './long-pieces.js';
import { upperBoundTokens } from './upper-bound.js';

export { upperBoundTokens };

/** Each message is wrapped as `<|im_start|>{role}<|im_sep|>{content}<|im_end|>`: 3 tokens besides role and content. */
export const TOKENS_PER_MESSAGE = 3;
/** A `name` field costs one token more than its text. */
export const TOKENS_PER_NAME = 1;
/** Every reply is primed with `<|im_start|>assistant<|im_sep|>`. */
export const REPLY_PRIMING_TOKENS = 3;
/** Per tool call, besides its id, name and arguments (the published estimate for a function_call). */
export const TOKENS_PER_TOOL_CALL = 3;
/** Once per request with tools, besides the functions and the rendering's wrapper (published estimate). */
export const TOOL_DEFINITIONS_OVERHEAD_TOKENS = 9;
/** The reverse-engineered rendering of tool definitions: its wrapper, once per request. */
const TOOLS_WRAPPER_TEXT = 'namespace functions {\n\n} // namespace functions';
/** ... and the framing of each function in it, once per tool (its name and schema are in the JSON). */
const TOOL_FRAMING_TEXT = '// \ntype  = (_: {\n}) => any;\n\n';

/**
 * gpt-tokenizer caches the merge of each piece not in the vocabulary, 100,000 per encoding by
 * default: ~28 MB of heap each once full, more than the vocabulary. 10,000 keeps it near 3 MB with
 * no measurable loss on prose, code or CJK (bench/tokens.ts). This sets the library's shared
 * encoders, so it holds for every user of gpt-tokenizer in the process.
 */
export const MERGE_CACHE_ENTRIES = 10_000;
setO200kMergeCacheSize(MERGE_CACHE_ENTRIES);
setCl100kMergeCacheSize(MERGE_CACHE_ENTRIES);

// An empty disallowed set: special-token strings in the text are neither rejected nor special.
const ORDINARY_TEXT = { disallowedSpecial: new Set<string>() };

/** The exact number of tokens of `text` under `encoding`, special-token strings counted as text. */
export function countTextTokens(text: string, encoding: Encoding): number {
  if (text.length === 0) return 0;
  // gpt-tokenizer is quadratic in a piece's length: a long run goes to the O(n log n) merge.
  if (mayHaveLongPiece(text)) return countTextTokensLongPieces(text, encoding);
  switch (encoding) {
    case 'o200k_base':
      return countO200k(text, ORDINARY_TEXT);
    case 'cl100k_base':
      return countCl100k(text, ORDINARY_TEXT);
    default:
      throw new TypeError(`unknown encoding: ${String(encoding satisfies never)}`);
  }
}

/** Tokens of a completion's text: exact with an encoding, the UTF-8 byte bound without one. */
export function countCompletionTokens(text: string, encoding: Encoding | undefined): number {
  return encoding === undefined ? upperBoundTokens(text) : countTextTokens(text, encoding);
}

/** Counts one text of a prompt; the chat format's overheads are added around it. */
export type TextCounter = (text: string) => number;

export interface ChatPromptOptions {
  /** The request's `tools`: counted approximately, on the high side. */
  readonly tools?: readonly ChatTool[] | undefined;
  /** The request's `tool_choice`: a named function costs its name + 4, `none` 1 (published estimate). */
  readonly toolChoice?: unknown;
}

/**
 * The prompt tokens of a chat request as OpenAI counts them (exact for plain messages, see the
 * module comment for what is approximate). Image parts are not counted: add the image allowance.
 */
export function countChatPromptTokens(messages: readonly ChatMessage[], encoding: Encoding, options?: ChatPromptOptions): number {
  return countChatFormat(messages, encoding, options, (text) => countTextTokens(text, encoding));
}

/**
 * countChatPromptTokens with each text counted by `countText`, every text in a fixed order. A
 * counter that answers 0 gives the format's overheads alone: callers that count texts elsewhere
 * (cached, or in a worker) add their counts to it and get the same total.
 */
export function countChatFormat(messages: readonly ChatMessage[], encoding: Encoding, options: ChatPromptOptions | undefined, countText: TextCounter): number {
  let total = REPLY_PRIMING_TOKENS;
  for (let i = 0; i < messages.length; i++) total += countMessageTokens(messages[i]!, encoding, countText);
  if (options !== undefined) {
    if (options.tools !== undefined && options.tools.length > 0) total += countToolDefinitionTokens(options.tools, encoding, countText);
    total += countToolChoiceTokens(options.toolChoice, countText);
  }
  return total;
}

/** One message's share of countChatPromptTokens (without the reply priming). */
export function countMessageTokens(message: ChatMessage, encoding: Encoding, countText: TextCounter = (text) => countTextTokens(text, encoding)): number {
  let total = TOKENS_PER_MESSAGE + countRoleTokens(message.role, encoding, countText);
  const content = message.content;
  if (typeof content === 'string') total += countText(content);
  else if (Array.isArray(content)) total += countContentPartTokens(content, countText);
  if (typeof message.name === 'string') total += countText(message.name) + TOKENS_PER_NAME;
  if (typeof message.tool_call_id === 'string') total += countText(message.tool_call_id);
  const calls = message.tool_calls;
  if (calls !== undefined) {
    for (let i = 0; i < calls.length; i++) {
      const call = calls[i]!;
      total += TOKENS_PER_TOOL_CALL + countText(call.id) + countText(call.function.name) + countText(call.function.arguments);
    }
  }
  return total;
}

/**
 * The tokens of the `tools` definitions: each function's JSON (name, description, parameters) and
 * framing, the rendering's wrapper and a fixed overhead. JSON carries more syntax than the
 * rendering OpenAI is believed to use, so this errs high. Once per request: the stringify is fine.
 */
export function countToolDefinitionTokens(tools: readonly ChatTool[], encoding: Encoding, countText: TextCounter = (text) => countTextTokens(text, encoding)): number {
  const fixed = FIXED_COUNTS[encoding];
  let total = TOOL_DEFINITIONS_OVERHEAD_TOKENS + fixed.toolsWrapper;
  for (let i = 0; i < tools.length; i++) total += fixed.toolFraming + countText(JSON.stringify(tools[i]!.function));
  return total;
}

// `auto` and `required` are counted as nothing: neither is known to add to the prompt.
function countToolChoiceTokens(toolChoice: unknown, countText: TextCounter): number {
  if (toolChoice === 'none') return 1;
  if (typeof toolChoice === 'object' && toolChoice !== null) {
    const fn = (toolChoice as { function?: { name?: unknown } }).function;
    if (fn !== undefined && typeof fn.name === 'string') return countText(fn.name) + 4;
  }
  return 0;
}

function countContentPartTokens(parts: readonly ContentPart[], countText: TextCounter): number {
  let total = 0;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part.type === 'text') total += countText(part.text);
  }
  return total;
}

// Strings every request may need, counted once per encoding at load instead of once per use.
const KNOWN_ROLES = ['system', 'developer', 'user', 'assistant', 'tool'] as const;

interface FixedCounts {
  readonly roles: ReadonlyMap<string, number>;
  readonly toolsWrapper: number;
  readonly toolFraming: number;
}

function fixedCounts(encoding: Encoding): FixedCounts {
  return {
    roles: new Map(KNOWN_ROLES.map((role) => [role, countTextTokens(role, encoding)])),
    toolsWrapper: countTextTokens(TOOLS_WRAPPER_TEXT, encoding),
    toolFraming: countTextTokens(TOOL_FRAMING_TEXT, encoding),
  };
}

const FIXED_COUNTS: Readonly<Record<Encoding, FixedCounts>> = { o200k_base: fixedCounts('o200k_base'), cl100k_base: fixedCounts('cl100k_base') };

function countRoleTokens(role: string, encoding: Encoding, countText: TextCounter): number {
  return FIXED_COUNTS[encoding].roles.get(role) ?? countText(role);
}
