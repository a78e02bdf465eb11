// The chat format's token accounting around a prompt's texts, with no tokenizer: the caller counts
// each text (exactly, from a cache, or in a worker) and this adds what the format puts around it.
// Loads no vocabulary, so the gateway's thread can use it (tokens/count.ts is the counting half).
//
// What is exact and what is not:
// - role/content/name messages: the OpenAI cookbook rule for gpt-3.5/4/4o (3 per message, every
//   string field's tokens, +1 with a name, 3 to prime the reply), which the cookbook checks
//   against the API's prompt_tokens.
// - Approximate, since OpenAI's accounting is unpublished, and erring high where there is a
//   choice: tool calls (3 + id + name + arguments each) and tool_call_id; tool definitions (each
//   function's JSON, longer than the TypeScript-like rendering the model is believed to see, plus
//   that rendering's framing); a named tool_choice. Text content parts are counted one by one (a
//   token or so either way per part boundary if OpenAI joins them). Image parts count 0 here: the
//   caller adds its image allowance.
import type { ChatMessage, ChatTool, ContentPart } from '../providers/types.js';

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
export const TOOLS_WRAPPER_TEXT = 'namespace functions {\n\n} // namespace functions';
/** ... and the framing of each function in it, once per tool (its name and schema are in the JSON). */
export const TOOL_FRAMING_TEXT = '// \ntype  = (_: {\n}) => any;\n\n';
/**
 * Tokens of the fixed strings above and of each known role, the same in o200k_base and cl100k_base
 * (test/unit/tokens/chat-format.test.ts checks them against both vocabularies).
 */
export const FIXED_TOKENS = Object.freeze({
  knownRole: 1,
  toolsWrapper: 7,
  toolFraming: 12,
});
export const KNOWN_ROLES: ReadonlySet<string> = new Set(['system', 'developer', 'user', 'assistant', 'tool']);

/** Counts one text of a prompt; the chat format's overheads are added around it. */
export type TextCounter = (text: string) => number;

export interface ChatPromptOptions {
  /** The request's `tools`: counted approximately, on the high side. */
  readonly tools?: readonly ChatTool[] | undefined;
  /** The request's `tool_choice`: a named function costs its name + 4, `none` 1 (published estimate). */
  readonly toolChoice?: unknown;
}

/**
 * A chat prompt's tokens with each text counted by `countText`, every text in a fixed order. A
 * counter that answers 0 gives the format's overheads alone: callers that count the texts
 * elsewhere add their counts to it and get the same total.
 */
export function countChatFormat(messages: readonly ChatMessage[], options: ChatPromptOptions | undefined, countText: TextCounter): number {
  let total = REPLY_PRIMING_TOKENS;
  for (let i = 0; i < messages.length; i++) total += countMessageFormat(messages[i]!, countText);
  if (options !== undefined) {
    if (options.tools !== undefined && options.tools.length > 0) total += countToolDefinitionFormat(options.tools, countText);
    total += countToolChoiceFormat(options.toolChoice, countText);
  }
  return total;
}

/** One message's share of countChatFormat (without the reply priming). */
export function countMessageFormat(message: ChatMessage, countText: TextCounter): number {
  let total = TOKENS_PER_MESSAGE + (KNOWN_ROLES.has(message.role) ? FIXED_TOKENS.knownRole : countText(message.role));
  const content = message.content;
  if (typeof content === 'string') total += countText(content);
  else if (Array.isArray(content)) total += countContentParts(content, countText);
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
export function countToolDefinitionFormat(tools: readonly ChatTool[], countText: TextCounter): number {
  let total = TOOL_DEFINITIONS_HEADER_TOKENS;
  for (let i = 0; i < tools.length; i++) total += countToolFormat(tools[i]!, countText);
  return total;
}

/** What countToolDefinitionFormat adds once for a non-empty `tools`, besides each tool's share. */
export const TOOL_DEFINITIONS_HEADER_TOKENS = TOOL_DEFINITIONS_OVERHEAD_TOKENS + FIXED_TOKENS.toolsWrapper;

/** One tool's share of countToolDefinitionFormat. */
export function countToolFormat(tool: ChatTool, countText: TextCounter): number {
  return FIXED_TOKENS.toolFraming + countText(JSON.stringify(tool.function));
}

// `auto` and `required` are counted as nothing: neither is known to add to the prompt.
export function countToolChoiceFormat(toolChoice: unknown, countText: TextCounter): number {
  if (toolChoice === 'none') return 1;
  if (typeof toolChoice === 'object' && toolChoice !== null) {
    const fn = (toolChoice as { function?: { name?: unknown } }).function;
    if (fn !== undefined && typeof fn.name === 'string') return countText(fn.name) + 4;
  }
  return 0;
}

function countContentParts(parts: readonly ContentPart[], countText: TextCounter): number {
  let total = 0;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part.type === 'text') total += countText(part.text);
  }
  return total;
}
