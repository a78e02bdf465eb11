// Non-stream translation between OpenAI chat-completions and the Anthropic Messages API:
// the request body going up, and a complete message coming back. Streams live in stream.ts.
// Extended thinking rides beside the OpenAI shape: the request's `thinking` option and an assistant
// turn's thinking blocks (symbols set by the Messages dialect) go up as they came; an answer's
// thinking comes back as reasoning_content and thinking_blocks (LiteLLM's names).
import type { Deployment } from '../../config/load.js';
import { GatewayError, invalidRequest } from '../../errors/gateway-error.js';
import { ANTHROPIC_THINKING, THINKING_BLOCKS, type CacheControl, type ChatCompletion, type ChatMessage, type ChatRequest, type ContentPart, type ThinkingBlock, type ToolCall, type TranslateContext, type UpstreamRequest } from '../types.js';
import { cachedEndpointOf, finishReasonOf, isRecord, usageOfAnthropic } from './api.js';
import { upstreamJson } from '../upstream-json.js';

type ImageSource = { type: 'base64'; media_type: string; data: string } | { type: 'url'; url: string };
// cache_control marks (prompt-caching breakpoints) ride on the blocks the client marked.
type TextBlock = { type: 'text'; text: string; cache_control?: CacheControl };
type ImageBlock = { type: 'image'; source: ImageSource; cache_control?: CacheControl };
type ContentBlock =
  | ThinkingBlock
  | TextBlock
  | ImageBlock
  | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> }
  | { type: 'tool_result'; tool_use_id: string; content: string | Array<TextBlock | ImageBlock>; cache_control?: CacheControl };

interface AnthropicMessage {
  role: 'user' | 'assistant';
  content: ContentBlock[];
}

export function buildRequest(request: ChatRequest, deployment: Deployment, maxTokens: number): UpstreamRequest {
  const system: string[] = [];
  const systemBlocks: TextBlock[] = [];
  let systemCached = false;
  const messages: AnthropicMessage[] = [];
  for (let i = 0; i < request.messages.length; i++) {
    const message = request.messages[i]!;
    if (message.role === 'system' || message.role === 'developer') {
      const text = textOf(message.content);
      if (text !== '') system.push(text);
      for (const block of systemBlocksOf(message.content)) {
        systemBlocks.push(block);
        if (block.cache_control !== undefined) systemCached = true;
      }
      continue;
    }
    const role = message.role === 'assistant' ? 'assistant' : 'user';
    const blocks = blocksOf(message, i);
    if (blocks.length === 0) continue; // Anthropic rejects empty messages; dropping one loses nothing
    const previous = messages[messages.length - 1];
    // Anthropic requires user/assistant alternation: same-role neighbours (several tool results,
    // a tool result followed by a user note) become one message.
    if (previous?.role === role) previous.content.push(...blocks);
    else messages.push({ role, content: blocks });
  }

  const body: Record<string, unknown> = { model: deployment.model, max_tokens: maxTokens, messages };
  // A cached system prompt must stay blocks (the mark is on one); otherwise one string, as before.
  if (system.length > 0) body.system = systemCached ? systemBlocks : system.join('\n\n');
  if (request.tools && request.tools.length > 0) {
    body.tools = request.tools.map((tool) => ({
      name: tool.function.name,
      ...(tool.function.description === undefined ? {} : { description: tool.function.description }),
      input_schema: tool.function.parameters ?? { type: 'object', properties: {} },
      ...(tool.cache_control === undefined ? {} : { cache_control: tool.cache_control }),
    }));
    const toolChoice = toolChoiceOf(request.tool_choice, request.parallel_tool_calls);
    if (toolChoice) body.tool_choice = toolChoice;
  }
  if (typeof request.stop === 'string') body.stop_sequences = [request.stop];
  else if (Array.isArray(request.stop) && request.stop.length > 0) body.stop_sequences = request.stop;
  if (typeof request.temperature === 'number') body.temperature = request.temperature;
  if (typeof request.top_p === 'number') body.top_p = request.top_p;
  if (typeof request.user === 'string' && request.user !== '') body.metadata = { user_id: request.user };
  const thinking = request[ANTHROPIC_THINKING];
  if (thinking !== undefined) body.thinking = thinking;
  body.stream = request.stream === true;

  return upstreamJson(cachedEndpointOf(deployment), body);
}

function blocksOf(message: ChatMessage, i: number): ContentBlock[] {
  if (message.role === 'tool') {
    if (typeof message.tool_call_id !== 'string' || message.tool_call_id === '') {
      throw invalidRequest('A tool message needs a tool_call_id.', `messages[${i}].tool_call_id`);
    }
    if (typeof message.content === 'string') return [{ type: 'tool_result', tool_use_id: message.tool_call_id, content: message.content }];
    // A mark on the result's parts marks the tool_result block, where Anthropic takes it.
    const content = partsToBlocks(message.content, i);
    const mark = content.findLast((b) => b.cache_control !== undefined)?.cache_control;
    for (const block of content) delete block.cache_control;
    return [{ type: 'tool_result', tool_use_id: message.tool_call_id, content, ...(mark === undefined ? {} : { cache_control: mark }) }];
  }
  // An assistant turn's thinking blocks go first, unchanged: Anthropic checks their signatures.
  const blocks: ContentBlock[] = message.role === 'assistant' && message[THINKING_BLOCKS] !== undefined ? [...message[THINKING_BLOCKS]] : [];
  if (typeof message.content === 'string') {
    if (message.content !== '') blocks.push({ type: 'text', text: message.content });
  } else {
    blocks.push(...partsToBlocks(message.content, i));
  }
  if (message.role === 'assistant' && message.tool_calls) {
    for (let j = 0; j < message.tool_calls.length; j++) blocks.push(toolUseOf(message.tool_calls[j]!, `messages[${i}].tool_calls[${j}]`));
  }
  return blocks;
}

function partsToBlocks(parts: ContentPart[] | null, i: number): Array<TextBlock | ImageBlock> {
  const blocks: Array<TextBlock | ImageBlock> = [];
  if (!parts) return blocks;
  for (let j = 0; j < parts.length; j++) {
    const part = parts[j]!;
    if (part.type === 'text') {
      if (part.text !== '') blocks.push(withMark({ type: 'text', text: part.text }, part.cache_control)); // empty text blocks are a 400 upstream
    } else if (part.type === 'image_url') {
      blocks.push(withMark({ type: 'image', source: imageSourceOf(part.image_url.url, `messages[${i}].content[${j}].image_url.url`) }, part.cache_control));
    } else {
      // Audio or file parts would be dropped silently otherwise, and the answer would be about something else.
      const type = String((part as { type: unknown }).type);
      throw invalidRequest(`Content part type ${JSON.stringify(type)} is not supported for this model.`, `messages[${i}].content[${j}].type`);
    }
  }
  return blocks;
}

function imageSourceOf(url: string, param: string): ImageSource {
  if (url.startsWith('data:')) {
    // data:<media type>;base64,<data>. Only the header is inspected: images can be megabytes.
    const comma = url.indexOf(',');
    const header = comma === -1 ? '' : url.slice(5, comma);
    if (!header.endsWith(';base64')) throw invalidRequest('Image data URLs must be base64-encoded.', param);
    return { type: 'base64', media_type: header.slice(0, -';base64'.length), data: url.slice(comma + 1) };
  }
  if (url.startsWith('https://') || url.startsWith('http://')) return { type: 'url', url };
  throw invalidRequest('Image URLs must be http(s) or base64 data URLs.', param);
}

function toolUseOf(call: ToolCall, param: string): ContentBlock {
  const raw = call.function.arguments;
  let input: unknown = {};
  // Models emit "" for tools without parameters; Anthropic wants an object either way.
  if (raw.trim() !== '') {
    try {
      input = JSON.parse(raw);
    } catch (err) {
      throw new GatewayError('NR_INVALID_REQUEST', 'Tool call arguments are not valid JSON.', { param: `${param}.function.arguments`, cause: err });
    }
  }
  if (!isRecord(input)) throw invalidRequest('Tool call arguments must be a JSON object.', `${param}.function.arguments`);
  return { type: 'tool_use', id: call.id, name: call.function.name, input };
}

function toolChoiceOf(choice: unknown, parallel: unknown): Record<string, unknown> | undefined {
  let result: Record<string, unknown>;
  if (choice === undefined || choice === null) {
    if (parallel !== false) return undefined;
    result = { type: 'auto' };
  } else if (choice === 'none') {
    return { type: 'none' }; // takes no disable_parallel_tool_use
  } else if (choice === 'auto') {
    result = { type: 'auto' };
  } else if (choice === 'required') {
    result = { type: 'any' };
  } else if (isRecord(choice) && choice.type === 'function' && isRecord(choice.function) && typeof choice.function.name === 'string') {
    result = { type: 'tool', name: choice.function.name };
  } else {
    throw invalidRequest('tool_choice must be "none", "auto", "required" or {"type":"function","function":{"name":...}}.', 'tool_choice');
  }
  if (parallel === false) result.disable_parallel_tool_use = true;
  return result;
}

function textOf(content: string | ContentPart[] | null): string {
  if (typeof content === 'string') return content;
  if (!content) return '';
  let text = '';
  for (const part of content) if (part.type === 'text') text += part.text;
  return text;
}

/** A system message as text blocks: one per text part (with its mark), or the string whole. */
function systemBlocksOf(content: string | ContentPart[] | null): TextBlock[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  if (!content) return [];
  const blocks: TextBlock[] = [];
  for (const part of content) if (part.type === 'text' && part.text !== '') blocks.push(withMark({ type: 'text', text: part.text }, part.cache_control));
  return blocks;
}

/** Only Anthropic's own kind of mark goes up: anything else a client put there is dropped. */
function withMark<B extends TextBlock | ImageBlock>(block: B, mark: CacheControl | undefined): B {
  if (mark?.type === 'ephemeral') block.cache_control = typeof mark.ttl === 'string' ? { type: 'ephemeral', ttl: mark.ttl } : { type: 'ephemeral' };
  return block;
}

/** Translates a complete Anthropic message (2xx body) into an OpenAI chat.completion. */
export function parseResponse(json: unknown, ctx: TranslateContext): ChatCompletion {
  if (!isRecord(json) || json.type !== 'message' || !Array.isArray(json.content)) throw badResponse();
  let text = '';
  let sawText = false;
  let reasoning = '';
  const thinking: ThinkingBlock[] = [];
  const toolCalls: ToolCall[] = [];
  for (const block of json.content) {
    if (!isRecord(block)) throw badResponse();
    if (block.type === 'thinking') {
      if (typeof block.thinking !== 'string' || typeof block.signature !== 'string') throw badResponse();
      reasoning += block.thinking;
      thinking.push({ type: 'thinking', thinking: block.thinking, signature: block.signature });
    } else if (block.type === 'redacted_thinking') {
      if (typeof block.data !== 'string') throw badResponse();
      thinking.push({ type: 'redacted_thinking', data: block.data });
    } else if (block.type === 'text') {
      if (typeof block.text !== 'string') throw badResponse();
      text += block.text;
      sawText = true;
    } else if (block.type === 'tool_use') {
      if (typeof block.id !== 'string' || typeof block.name !== 'string' || !isRecord(block.input)) throw badResponse();
      toolCalls.push({ id: block.id, type: 'function', function: { name: block.name, arguments: JSON.stringify(block.input) } });
    }
    // Server-tool blocks have no chat-completions equivalent.
  }
  const message: ChatCompletion['choices'][number]['message'] = {
    role: 'assistant',
    // OpenAI sends null content beside tool calls and "" for an empty answer.
    content: sawText || toolCalls.length === 0 ? text : null,
  };
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  if (reasoning !== '') message.reasoning_content = reasoning;
  if (thinking.length > 0) message.thinking_blocks = thinking;
  const completion: ChatCompletion = {
    id: typeof json.id === 'string' ? json.id : `chatcmpl-${ctx.requestId}`,
    object: 'chat.completion',
    created: ctx.created,
    model: ctx.publicModel,
    choices: [{ index: 0, message, finish_reason: finishReasonOf(json.stop_reason) ?? 'stop', logprobs: null }],
  };
  const usage = isRecord(json.usage) ? usageOfAnthropic(json.usage) : undefined;
  if (usage) completion.usage = usage;
  return completion;
}

function badResponse(): GatewayError {
  return new GatewayError('NR_UPSTREAM_BAD_RESPONSE');
}
