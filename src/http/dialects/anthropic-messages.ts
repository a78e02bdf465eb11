// Anthropic Messages (POST /v1/messages) as a client dialect: the request is translated to OpenAI
// chat (anthropic-request.ts); the answer comes back as a `message` object, or as Anthropic's
// stream events: message_start, ping, content_block_start / content_block_delta (text_delta,
// input_json_delta for tool input, thinking_delta and signature_delta) / content_block_stop,
// message_delta with the stop reason and usage, message_stop; errors as
// {"type":"error","error":{type,message}}. Thinking comes in as reasoning_content (text) and
// thinking_blocks (signatures, redacted blocks), as the Anthropic adapter and LiteLLM send it.
import type { GatewayError } from '../../errors/gateway-error.js';
import { readUsage, usageParts } from '../../providers/usage.js';
import { clientMessage } from '../error-response.js';
import { anthropicToChatRequest } from './anthropic-request.js';
import { frameData, type ClientDialect, type DialectContext, type Frame, type StreamEncoder } from './dialect.js';
import { parseUpstreamJson } from './openai-chat.js';
import { isRecord } from './parse.js';

export const anthropicMessagesDialect: ClientDialect = {
  route: 'messages',
  identity: false,
  parseRequest: anthropicToChatRequest,
  errorBody: anthropicErrorJson,
  streamErrorFrame: (err) => `event: error\ndata: ${anthropicErrorJson(err)}\n\n`,
  open: (ctx) => ({ completion: (body) => completion(body, ctx), streamEncoder: () => new MessagesStreamEncoder(ctx) }),
};

/** Anthropic's error types, by HTTP status. */
const ERROR_TYPES: Readonly<Record<number, string>> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  503: 'overloaded_error',
  504: 'timeout_error',
};

export function anthropicErrorJson(err: GatewayError): string {
  const type = ERROR_TYPES[err.status] ?? (err.status >= 500 ? 'api_error' : 'invalid_request_error');
  return JSON.stringify({ type: 'error', error: { type, message: clientMessage(err), nemo_code: err.code } });
}

const STOP_REASONS: Readonly<Record<string, string>> = { stop: 'end_turn', length: 'max_tokens', tool_calls: 'tool_use', function_call: 'tool_use', content_filter: 'refusal' };
const stopReasonOf = (finish: unknown): string => (typeof finish === 'string' ? (STOP_REASONS[finish] ?? 'end_turn') : 'end_turn');

interface AnthropicUsage {
  input_tokens: number;
  output_tokens: number;
  cache_read_input_tokens?: number;
  cache_creation_input_tokens?: number;
}

/** OpenAI's usage in Anthropic's terms: cache reads and writes are counted apart from input_tokens. */
function usageOf(usage: unknown): AnthropicUsage {
  const u = readUsage(usage);
  if (u === undefined) return { input_tokens: 0, output_tokens: 0 };
  const { cached, cacheWrite } = usageParts(u);
  const out: AnthropicUsage = { input_tokens: u.prompt_tokens - cached - cacheWrite, output_tokens: u.completion_tokens };
  if (cached > 0) out.cache_read_input_tokens = cached;
  if (cacheWrite > 0) out.cache_creation_input_tokens = cacheWrite;
  return out;
}

function messageId(id: unknown, ctx: DialectContext): string {
  return `msg_${typeof id === 'string' ? id.replace(/^chatcmpl-/, '') : ctx.requestId}`;
}

interface ChatToolCall {
  index?: number;
  id?: string;
  function?: { name?: string; arguments?: string };
}

function toolInput(args: unknown): unknown {
  if (typeof args !== 'string' || args === '') return {};
  try {
    const input: unknown = JSON.parse(args);
    return isRecord(input) ? input : { value: input };
  } catch {
    // A model's malformed arguments reach the client as they are, under a key it can see.
    return { _raw_arguments: args };
  }
}

function completion(body: string | Uint8Array, ctx: DialectContext): string {
  const chat = parseUpstreamJson(body);
  const choice = (Array.isArray(chat.choices) ? chat.choices[0] : undefined) as { message?: { content?: unknown; reasoning_content?: unknown; thinking_blocks?: unknown; tool_calls?: ChatToolCall[] }; finish_reason?: unknown } | undefined;
  const message = choice?.message ?? {};
  const content: unknown[] = [];
  content.push(...thinkingContent(message.reasoning_content, message.thinking_blocks));
  if (typeof message.content === 'string' && message.content !== '') content.push({ type: 'text', text: message.content });
  for (const call of message.tool_calls ?? []) {
    content.push({ type: 'tool_use', id: call.id ?? `toolu_${ctx.requestId}_${content.length}`, name: call.function?.name ?? '', input: toolInput(call.function?.arguments) });
  }
  return JSON.stringify({
    id: messageId(chat.id, ctx),
    type: 'message',
    role: 'assistant',
    model: ctx.model,
    content,
    stop_reason: stopReasonOf(choice?.finish_reason),
    stop_sequence: null,
    usage: usageOf(chat.usage),
  });
}

/**
 * An answer's thinking as Anthropic's blocks: the thinking_blocks with their signatures (a later
 * turn must send them back unchanged) while their text is the reasoning_content (an output
 * guardrail may have redacted that: then its text, unsigned, since the blocks' would leak what it
 * removed), else bare reasoning text as one unsigned block.
 */
function thinkingContent(reasoning: unknown, value: unknown): unknown[] {
  const thinking: Array<{ type: 'thinking'; thinking: string; signature: string }> = [];
  const redacted: unknown[] = [];
  const ordered: unknown[] = [];
  for (const block of Array.isArray(value) ? value : []) {
    if (!isRecord(block)) continue;
    if (block.type === 'thinking' && typeof block.thinking === 'string') {
      const signed = { type: 'thinking' as const, thinking: block.thinking, signature: typeof block.signature === 'string' ? block.signature : '' };
      thinking.push(signed);
      ordered.push(signed);
    } else if (block.type === 'redacted_thinking' && typeof block.data === 'string') {
      const opaque = { type: 'redacted_thinking', data: block.data };
      redacted.push(opaque);
      ordered.push(opaque);
    }
  }
  const text = typeof reasoning === 'string' ? reasoning : '';
  if (text === thinking.map((b) => b.thinking).join('')) return ordered;
  return [...(text === '' ? [] : [{ type: 'thinking', thinking: text, signature: '' }]), ...redacted];
}

const event = (type: string, payload: unknown): string => `event: ${type}\ndata: ${JSON.stringify(payload)}\n\n`;

type BlockKind = 'text' | 'thinking' | 'tool_use';

/** OpenAI chunks in, Anthropic events out; content blocks are opened and closed as the deltas change kind. */
class MessagesStreamEncoder implements StreamEncoder {
  private started = false;
  private done = false;
  private blockIndex = -1;
  private block: BlockKind | undefined;
  /** The OpenAI tool-call index the open tool_use block belongs to. */
  private toolIndex = -1;
  private stopReason = 'end_turn';
  private usage: unknown;

  constructor(private readonly ctx: DialectContext) {}

  frames(frames: readonly Frame[], out: Frame[]): void {
    for (const frame of frames) for (const data of frameData(frame)) this.onData(data, out);
  }

  end(out: Frame[]): void {
    if (!this.done) this.finish(out);
  }

  private onData(data: string, out: Frame[]): void {
    // The closing events wait for end(): the exchange may seal the answer first.
    if (this.done || data === '[DONE]') return;
    const chunk = parseUpstreamJson(data);
    this.start(chunk.id, out);
    if (chunk.usage != null) this.usage = chunk.usage;
    const choice = (Array.isArray(chunk.choices) ? chunk.choices[0] : undefined) as { delta?: Record<string, unknown>; finish_reason?: unknown } | undefined;
    if (choice === undefined) return;
    const delta = choice.delta ?? {};
    if (typeof delta.reasoning_content === 'string' && delta.reasoning_content !== '') {
      this.open('thinking', out, { type: 'thinking', thinking: '', signature: '' });
      out.push(event('content_block_delta', { type: 'content_block_delta', index: this.blockIndex, delta: { type: 'thinking_delta', thinking: delta.reasoning_content } }));
    }
    if (Array.isArray(delta.thinking_blocks)) for (const block of delta.thinking_blocks as unknown[]) this.onThinkingBlock(block, out);
    if (typeof delta.content === 'string' && delta.content !== '') {
      this.open('text', out, { type: 'text', text: '' });
      out.push(event('content_block_delta', { type: 'content_block_delta', index: this.blockIndex, delta: { type: 'text_delta', text: delta.content } }));
    }
    if (Array.isArray(delta.tool_calls)) for (const call of delta.tool_calls as ChatToolCall[]) this.onToolCall(call, out);
    if (choice.finish_reason != null) this.stopReason = stopReasonOf(choice.finish_reason);
  }

  /** A signature ends its thinking block (the next thinking is another block); a redacted block is whole in one piece. */
  private onThinkingBlock(block: unknown, out: Frame[]): void {
    if (!isRecord(block)) return;
    if (block.type === 'thinking' && typeof block.signature === 'string' && block.signature !== '') {
      this.open('thinking', out, { type: 'thinking', thinking: '', signature: '' });
      out.push(event('content_block_delta', { type: 'content_block_delta', index: this.blockIndex, delta: { type: 'signature_delta', signature: block.signature } }));
      this.close(out);
    } else if (block.type === 'redacted_thinking' && typeof block.data === 'string') {
      this.close(out);
      this.blockIndex++;
      out.push(event('content_block_start', { type: 'content_block_start', index: this.blockIndex, content_block: { type: 'redacted_thinking', data: block.data } }));
      out.push(event('content_block_stop', { type: 'content_block_stop', index: this.blockIndex }));
    }
  }

  private onToolCall(call: ChatToolCall, out: Frame[]): void {
    const index = call.index ?? 0;
    if (this.block !== 'tool_use' || index !== this.toolIndex) {
      this.close(out);
      this.toolIndex = index;
      this.blockIndex++;
      this.block = 'tool_use';
      const id = call.id ?? `toolu_${this.ctx.requestId}_${index}`;
      out.push(event('content_block_start', { type: 'content_block_start', index: this.blockIndex, content_block: { type: 'tool_use', id, name: call.function?.name ?? '', input: {} } }));
    }
    const args = call.function?.arguments;
    if (typeof args === 'string' && args !== '') {
      out.push(event('content_block_delta', { type: 'content_block_delta', index: this.blockIndex, delta: { type: 'input_json_delta', partial_json: args } }));
    }
  }

  private start(id: unknown, out: Frame[]): void {
    if (this.started) return;
    this.started = true;
    out.push(event('message_start', {
      type: 'message_start',
      message: { id: messageId(id, this.ctx), type: 'message', role: 'assistant', model: this.ctx.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0 } },
    }));
    out.push(event('ping', { type: 'ping' }));
  }

  private open(kind: BlockKind, out: Frame[], contentBlock: unknown): void {
    if (this.block === kind) return;
    this.close(out);
    this.blockIndex++;
    this.block = kind;
    out.push(event('content_block_start', { type: 'content_block_start', index: this.blockIndex, content_block: contentBlock }));
  }

  private close(out: Frame[]): void {
    if (this.block === undefined) return;
    out.push(event('content_block_stop', { type: 'content_block_stop', index: this.blockIndex }));
    this.block = undefined;
  }

  private finish(out: Frame[]): void {
    this.start(undefined, out);
    this.close(out);
    this.done = true;
    out.push(event('message_delta', { type: 'message_delta', delta: { stop_reason: this.stopReason, stop_sequence: null }, usage: usageOf(this.usage) }));
    out.push(event('message_stop', { type: 'message_stop' }));
  }
}
