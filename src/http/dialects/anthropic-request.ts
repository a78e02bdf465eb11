// An Anthropic Messages request (POST /v1/messages) as an OpenAI chat request: the system prompt
// becomes a system message; text and image blocks become content parts; an assistant's tool_use
// blocks become tool_calls and a user's tool_result blocks become tool messages (placed first, right
// after the assistant message that called them, as OpenAI requires); tools, tool_choice,
// stop_sequences, max_tokens and metadata.user_id map to their OpenAI fields. Prompt-caching marks
// (cache_control on system, text, image and tool_result blocks and on tools) ride along on the
// OpenAI parts and tools, so an Anthropic deployment gets them back (an OpenAI-compatible one gets
// them stripped). The `thinking` option and an assistant turn's thinking blocks (with their
// signatures) have no OpenAI equivalent: they ride beside it under symbols, so an Anthropic
// deployment gets them back as they came and an OpenAI-compatible one never sees them. Server
// tools, documents and other block types are refused by name.
import { invalidRequest } from '../../errors/gateway-error.js';
import { ANTHROPIC_THINKING, GATEWAY_CACHE_MARKS, THINKING_BLOCKS, type CacheControl, type ChatMessage, type ChatRequest, type ChatTool, type ContentPart, type ThinkingBlock, type ToolCall } from '../../providers/types.js';
import { validateChatRequest } from '../validate-chat-request.js';
import { isRecord, parseJsonObject } from './parse.js';

export function anthropicToChatRequest(received: string | Uint8Array): ChatRequest {
  return translate(parseJsonObject(received));
}

/** POST /v1/messages/count_tokens takes a Messages body without max_tokens. */
export function anthropicCountRequest(text: string): ChatRequest {
  const body = parseJsonObject(text);
  return translate({ ...body, max_tokens: 1, stream: false });
}

function translate(body: Record<string, unknown>): ChatRequest {
  if (typeof body.model !== 'string' || body.model === '') throw invalidRequest('`model` must be a non-empty string.', 'model');
  if (!Number.isInteger(body.max_tokens) || (body.max_tokens as number) < 1) throw invalidRequest('`max_tokens` is required: a positive integer.', 'max_tokens');
  if (!Array.isArray(body.messages) || body.messages.length === 0) throw invalidRequest('`messages` must be a non-empty array.', 'messages');

  const messages: ChatMessage[] = [];
  const system = systemContent(body.system);
  if (system !== undefined) messages.push({ role: 'system', content: system });
  body.messages.forEach((message, i) => messages.push(...chatMessages(message, `messages.${i}`)));

  const request: ChatRequest = { model: body.model, messages, max_tokens: body.max_tokens as number };
  if (body.stream === true) {
    request.stream = true;
    // Anthropic's message_delta carries the usage: it must come back at the end of every stream.
    request.stream_options = { include_usage: true };
  } else if (body.stream != null && body.stream !== false) {
    throw invalidRequest('`stream` must be a boolean.', 'stream');
  }
  if (body.temperature != null) request.temperature = numberIn(body.temperature, 0, 1, 'temperature');
  if (body.top_p != null) request.top_p = numberIn(body.top_p, 0, 1, 'top_p');
  if (body.stop_sequences != null) request.stop = stopSequences(body.stop_sequences);
  if (body.tools != null) request.tools = tools(body.tools);
  if (body.tool_choice != null) Object.assign(request, toolChoice(body.tool_choice));
  if (isRecord(body.metadata) && typeof body.metadata.user_id === 'string') request.user = body.metadata.user_id;
  if (body.thinking != null) {
    const thinking = thinkingOption(body.thinking);
    if (thinking !== undefined) request[ANTHROPIC_THINKING] = thinking;
  }
  if (hasCacheMarks(request)) request[GATEWAY_CACHE_MARKS] = true;
  return validateChatRequest(request);
}

function hasCacheMarks(request: ChatRequest): boolean {
  if (request.tools?.some((t) => t.cache_control !== undefined)) return true;
  return request.messages.some((m) => Array.isArray(m.content) && m.content.some((p) => p.cache_control !== undefined));
}

/** An Anthropic cache_control mark, when the block has a well-formed one. */
function markOf(block: Record<string, unknown>): { cache_control: CacheControl } | undefined {
  const mark = block.cache_control;
  if (!isRecord(mark) || mark.type !== 'ephemeral') return undefined;
  return { cache_control: typeof mark.ttl === 'string' ? { type: 'ephemeral', ttl: mark.ttl } : { type: 'ephemeral' } };
}

/** The system prompt: a string, or text parts when its blocks carry cache marks (joined otherwise). */
function systemContent(system: unknown): string | ContentPart[] | undefined {
  if (system == null) return undefined;
  if (typeof system === 'string') return system;
  if (!Array.isArray(system)) throw invalidRequest('`system` must be a string or an array of text blocks.', 'system');
  const parts: ContentPart[] = system.map((block, i) => {
    if (!isRecord(block) || block.type !== 'text' || typeof block.text !== 'string') throw invalidRequest('`system` blocks must be text blocks.', `system.${i}`);
    return { type: 'text', text: block.text, ...markOf(block) };
  });
  return parts.some((p) => p.cache_control !== undefined) ? parts : parts.map((p) => (p.type === 'text' ? p.text : '')).join('\n\n');
}

/** One Anthropic message as one or more OpenAI messages (tool results first). */
function chatMessages(message: unknown, at: string): ChatMessage[] {
  if (!isRecord(message)) throw invalidRequest('Each message must be an object.', at);
  const role = message.role;
  if (role !== 'user' && role !== 'assistant') throw invalidRequest('`role` must be "user" or "assistant".', `${at}.role`);
  const content = message.content;
  if (typeof content === 'string') return [{ role, content }];
  if (!Array.isArray(content)) throw invalidRequest('`content` must be a string or an array of content blocks.', `${at}.content`);

  const parts: ContentPart[] = [];
  const toolCalls: ToolCall[] = [];
  const toolResults: ChatMessage[] = [];
  const thinking: ThinkingBlock[] = [];
  content.forEach((block, j) => {
    const where = `${at}.content.${j}`;
    if (!isRecord(block)) throw invalidRequest('Each content block must be an object.', where);
    switch (block.type) {
      case 'text':
        if (typeof block.text !== 'string') throw invalidRequest('A text block needs `text`.', where);
        parts.push({ type: 'text', text: block.text, ...markOf(block) });
        return;
      case 'image':
        if (role !== 'user') throw invalidRequest('Images belong in user messages.', where);
        parts.push({ type: 'image_url', image_url: { url: imageUrl(block.source, where) }, ...markOf(block) });
        return;
      case 'tool_use':
        if (role !== 'assistant') throw invalidRequest('tool_use blocks belong in assistant messages.', where);
        if (typeof block.id !== 'string' || typeof block.name !== 'string') throw invalidRequest('A tool_use block needs `id` and `name`.', where);
        toolCalls.push({ id: block.id, type: 'function', function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) } });
        return;
      case 'tool_result':
        if (role !== 'user') throw invalidRequest('tool_result blocks belong in user messages.', where);
        if (typeof block.tool_use_id !== 'string') throw invalidRequest('A tool_result block needs `tool_use_id`.', where);
        toolResults.push({ role: 'tool', tool_call_id: block.tool_use_id, content: toolResultContent(block, where) });
        return;
      case 'thinking':
        if (role !== 'assistant') throw invalidRequest('thinking blocks belong in assistant messages.', where);
        if (typeof block.thinking !== 'string' || typeof block.signature !== 'string') throw invalidRequest('A thinking block needs `thinking` and `signature` (strings).', where);
        thinking.push({ type: 'thinking', thinking: block.thinking, signature: block.signature });
        return;
      case 'redacted_thinking':
        if (role !== 'assistant') throw invalidRequest('redacted_thinking blocks belong in assistant messages.', where);
        if (typeof block.data !== 'string') throw invalidRequest('A redacted_thinking block needs `data` (a string).', where);
        thinking.push({ type: 'redacted_thinking', data: block.data });
        return;
      default:
        throw invalidRequest(`Content blocks of type ${JSON.stringify(String(block.type).slice(0, 64))} are not supported.`, where);
    }
  });

  const out: ChatMessage[] = [...toolResults];
  if (role === 'assistant') {
    const text = parts.map((p) => (p.type === 'text' ? p.text : '')).join('');
    if (text !== '' || toolCalls.length > 0 || thinking.length > 0) {
      // A turn of thinking alone keeps an empty text: OpenAI's null content needs tool calls beside it.
      const assistant: ChatMessage = { role, content: text === '' && toolCalls.length > 0 ? null : text, ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}) };
      // The blocks go back first in their turn, in their order, as Anthropic's answers place them.
      if (thinking.length > 0) assistant[THINKING_BLOCKS] = thinking;
      out.push(assistant);
    }
  } else if (parts.length > 0) {
    out.push({ role, content: parts });
  }
  if (out.length === 0) throw invalidRequest('A message needs at least one content block.', `${at}.content`);
  return out;
}

/**
 * The `thinking` option, sent on as given: `{type: "enabled", budget_tokens}` checked here, another
 * type (a newer API's) left to the upstream to judge; `{type: "disabled"}` is the same as none.
 */
function thinkingOption(value: unknown): Record<string, unknown> | undefined {
  if (!isRecord(value) || typeof value.type !== 'string') throw invalidRequest('`thinking` must be an object with a `type`.', 'thinking');
  if (value.type === 'disabled') return undefined;
  if (value.type === 'enabled' && (!Number.isSafeInteger(value.budget_tokens) || (value.budget_tokens as number) < 1)) {
    throw invalidRequest('`thinking.budget_tokens` must be a positive integer.', 'thinking.budget_tokens');
  }
  return value;
}

function imageUrl(source: unknown, at: string): string {
  if (isRecord(source) && source.type === 'base64' && typeof source.media_type === 'string' && typeof source.data === 'string') return `data:${source.media_type};base64,${source.data}`;
  if (isRecord(source) && source.type === 'url' && typeof source.url === 'string') return source.url;
  throw invalidRequest('An image source must be base64 (media_type, data) or a url.', `${at}.source`);
}

/** A tool result's text; as one marked text part when the block carries a cache mark. */
function toolResultContent(block: Record<string, unknown>, at: string): string | ContentPart[] {
  const text = toolResultText(block, at);
  const mark = markOf(block);
  return mark === undefined ? text : [{ type: 'text', text, ...mark }];
}

function toolResultText(block: Record<string, unknown>, at: string): string {
  const content = block.content;
  let text: string;
  if (content == null) text = '';
  else if (typeof content === 'string') text = content;
  else if (Array.isArray(content)) {
    text = content
      .map((part, k) => {
        if (isRecord(part) && part.type === 'text' && typeof part.text === 'string') return part.text;
        throw invalidRequest('tool_result content must be text.', `${at}.content.${k}`);
      })
      .join('\n');
  } else throw invalidRequest('tool_result content must be a string or text blocks.', `${at}.content`);
  return block.is_error === true ? `Error: ${text}` : text;
}

function tools(value: unknown): ChatTool[] {
  if (!Array.isArray(value)) throw invalidRequest('`tools` must be an array.', 'tools');
  return value.map((tool, i) => {
    if (!isRecord(tool) || typeof tool.name !== 'string') throw invalidRequest('Each tool needs a `name`.', `tools.${i}`);
    if (tool.type !== undefined && tool.type !== 'custom') throw invalidRequest(`Server tools (${JSON.stringify(String(tool.type).slice(0, 64))}) are not supported.`, `tools.${i}.type`);
    if (!isRecord(tool.input_schema)) throw invalidRequest('Each tool needs an `input_schema` object.', `tools.${i}.input_schema`);
    return { type: 'function', function: { name: tool.name, ...(typeof tool.description === 'string' ? { description: tool.description } : {}), parameters: tool.input_schema }, ...markOf(tool) };
  });
}

function toolChoice(value: unknown): Pick<ChatRequest, 'tool_choice'> & { parallel_tool_calls?: boolean } {
  if (!isRecord(value)) throw invalidRequest('`tool_choice` must be an object.', 'tool_choice');
  const parallel = value.disable_parallel_tool_use === true ? { parallel_tool_calls: false } : {};
  switch (value.type) {
    case 'auto':
      return { tool_choice: 'auto', ...parallel };
    case 'any':
      return { tool_choice: 'required', ...parallel };
    case 'none':
      return { tool_choice: 'none' };
    case 'tool':
      if (typeof value.name !== 'string') throw invalidRequest('`tool_choice.name` is required for type "tool".', 'tool_choice.name');
      return { tool_choice: { type: 'function', function: { name: value.name } }, ...parallel };
    default:
      throw invalidRequest('`tool_choice.type` must be auto, any, tool or none.', 'tool_choice.type');
  }
}

function stopSequences(value: unknown): string[] {
  if (!Array.isArray(value) || !value.every((s) => typeof s === 'string')) throw invalidRequest('`stop_sequences` must be an array of strings.', 'stop_sequences');
  return value as string[];
}

function numberIn(value: unknown, min: number, max: number, param: string): number {
  if (typeof value !== 'number' || !(value >= min && value <= max)) throw invalidRequest(`\`${param}\` must be a number from ${min} to ${max}.`, param);
  return value;
}
