// Turns an Anthropic Messages SSE stream into OpenAI chat.completion.chunk frames. Thinking goes
// out as LiteLLM sends it: thinking_delta text as `reasoning_content`, a block's signature_delta and
// a redacted_thinking block as one-block `thinking_blocks` deltas (a thinking block ends at its
// signature), so the Messages dialect can rebuild the blocks a later turn must send back.
// Frames are assembled from a prefix fixed at message_start plus the one JSON-encoded delta, so
// a text delta costs one JSON.parse and one JSON.stringify of the text; no per-event objects are built.
import { GatewayError } from '../../errors/gateway-error.js';
import { CompletionText } from '../../streaming/completion-text.js';
import type { SseEvent } from '../../streaming/sse-parser.js';
import type { FrameSink, StreamTranslator, TranslateContext, Usage } from '../types.js';
import { countOf, finishReasonOf, isRecord, promptTokensOf, usageWithParts } from './api.js';

const DONE_FRAME = 'data: [DONE]\n\n';
const CHOICE_SUFFIX = ',"finish_reason":null,"logprobs":null}]}\n\n';
/** Marks a content block that is not a tool_use (text, thinking, server tools) in toolIndexByBlock. */
const NOT_A_TOOL = -1;
/** Upstream error text is relayed to clients; a runaway one is cut. */
const MAX_MESSAGE_CHARS = 2000;

export class AnthropicStreamTranslator implements StreamTranslator {
  finished = false;
  usage: Usage | undefined = undefined;
  completionChars = 0;
  contentChunks = 0;
  readonly completionText = new CompletionText(false);

  /** `data: {"id":...,"object":...,"created":...,"model":...,` — shared by every frame. */
  private head = '';
  /** head + `"choices":[{"index":0,"delta":` — a delta and CHOICE_SUFFIX complete a frame. */
  private deltaPrefix = '';
  private started = false;
  private finishSent = false;
  private promptTokens: number | undefined = undefined;
  /** message_start's usage: its cache reads and writes are the prompt's parts. */
  private startUsage: Record<string, unknown> = {};
  /** Anthropic numbers content blocks (text and tools together); OpenAI numbers tool calls alone. */
  private readonly toolIndexByBlock: number[] = [];
  private toolCount = 0;

  constructor(private readonly ctx: TranslateContext) {}

  onEvent(event: SseEvent, sink: FrameSink): void {
    if (this.finished) return;
    if (event.event === 'ping') return;
    if (event.event === 'error') throw upstreamError(event);
    const payload = parse(event.data);
    switch (payload.type) {
      case 'message_start':
        return this.onMessageStart(payload, sink);
      case 'content_block_start':
        return this.onBlockStart(payload, sink);
      case 'content_block_delta':
        return this.onBlockDelta(payload, sink);
      case 'message_delta':
        return this.onMessageDelta(payload, sink);
      case 'message_stop':
        return this.onMessageStop(sink);
      case 'error':
        throw upstreamError(event, payload);
      default:
        // ping, content_block_stop, and event types Anthropic may add later carry nothing for OpenAI.
        return;
    }
  }

  private onMessageStart(payload: Record<string, unknown>, sink: FrameSink): void {
    if (this.started) return;
    const message = isRecord(payload.message) ? payload.message : {};
    const id = typeof message.id === 'string' ? message.id : `chatcmpl-${this.ctx.requestId}`;
    this.head = `data: {"id":${JSON.stringify(id)},"object":"chat.completion.chunk","created":${this.ctx.created},"model":${JSON.stringify(this.ctx.publicModel)},`;
    this.deltaPrefix = `${this.head}"choices":[{"index":0,"delta":`;
    this.started = true;
    if (isRecord(message.usage)) {
      this.startUsage = message.usage;
      this.promptTokens = promptTokensOf(message.usage);
    }
    sink.push(`${this.deltaPrefix}{"role":"assistant","content":""}${CHOICE_SUFFIX}`);
  }

  private onBlockStart(payload: Record<string, unknown>, sink: FrameSink): void {
    this.requireStarted();
    const index = blockIndexOf(payload);
    const block = payload.content_block;
    if (!isRecord(block)) throw badResponse();
    if (block.type === 'tool_use') {
      if (typeof block.id !== 'string' || typeof block.name !== 'string') throw badResponse();
      const ordinal = this.toolCount++;
      this.toolIndexByBlock[index] = ordinal;
      sink.push(
        `${this.deltaPrefix}{"tool_calls":[{"index":${ordinal},"id":${JSON.stringify(block.id)},"type":"function","function":{"name":${JSON.stringify(block.name)},"arguments":""}}]}${CHOICE_SUFFIX}`,
      );
      return;
    }
    this.toolIndexByBlock[index] = NOT_A_TOOL;
    // Text blocks start empty in practice; should one ever carry text, it is still part of the answer.
    if (block.type === 'text' && typeof block.text === 'string' && block.text !== '') this.pushText(block.text, sink);
    else if (block.type === 'thinking' && typeof block.thinking === 'string' && block.thinking !== '') this.pushThinking(block.thinking, sink);
    else if (block.type === 'redacted_thinking') {
      if (typeof block.data !== 'string') throw badResponse();
      sink.push(`${this.deltaPrefix}{"thinking_blocks":[{"type":"redacted_thinking","data":${JSON.stringify(block.data)}}]}${CHOICE_SUFFIX}`);
    }
  }

  private onBlockDelta(payload: Record<string, unknown>, sink: FrameSink): void {
    this.requireStarted();
    const index = blockIndexOf(payload);
    const delta = payload.delta;
    if (!isRecord(delta)) throw badResponse();
    if (delta.type === 'text_delta') {
      if (typeof delta.text !== 'string') throw badResponse();
      if (delta.text !== '') this.pushText(delta.text, sink);
    } else if (delta.type === 'input_json_delta') {
      if (typeof delta.partial_json !== 'string') throw badResponse();
      const ordinal = this.toolIndexByBlock[index];
      if (ordinal === undefined || ordinal === NOT_A_TOOL) throw badResponse();
      // Anthropic opens every tool input with an empty piece; an empty OpenAI delta would be noise.
      if (delta.partial_json === '') return;
      this.completionChars += delta.partial_json.length;
      this.contentChunks++;
      this.completionText.append(delta.partial_json);
      sink.push(`${this.deltaPrefix}{"tool_calls":[{"index":${ordinal},"function":{"arguments":${JSON.stringify(delta.partial_json)}}}]}${CHOICE_SUFFIX}`);
    } else if (delta.type === 'thinking_delta') {
      if (typeof delta.thinking !== 'string') throw badResponse();
      if (delta.thinking !== '') this.pushThinking(delta.thinking, sink);
    } else if (delta.type === 'signature_delta') {
      if (typeof delta.signature !== 'string') throw badResponse();
      sink.push(`${this.deltaPrefix}{"thinking_blocks":[{"type":"thinking","thinking":"","signature":${JSON.stringify(delta.signature)}}]}${CHOICE_SUFFIX}`);
    }
    // citations_delta has no chat-completions equivalent.
  }

  private onMessageDelta(payload: Record<string, unknown>, sink: FrameSink): void {
    this.requireStarted();
    if (isRecord(payload.usage)) {
      // Counts here are cumulative; newer API versions may restate input tokens too.
      const restated = payload.usage.input_tokens != null;
      const prompt = restated ? promptTokensOf(payload.usage) : undefined;
      if (prompt !== undefined) this.promptTokens = prompt;
      const usage = usageWithParts(restated ? payload.usage : this.startUsage, countOf(payload.usage.output_tokens), this.promptTokens);
      if (usage !== undefined) this.usage = usage;
    }
    const finishReason = isRecord(payload.delta) ? finishReasonOf(payload.delta.stop_reason) : null;
    if (finishReason !== null) this.pushFinish(finishReason, sink);
  }

  private onMessageStop(sink: FrameSink): void {
    this.requireStarted();
    // OpenAI clients wait for a finish_reason; a stream that ended without stop_reason still ended.
    if (!this.finishSent) this.pushFinish('stop', sink);
    if (this.ctx.clientWantsUsage && this.usage) {
      sink.push(`${this.head}"choices":[],"usage":${JSON.stringify(this.usage)}}\n\n`);
    }
    sink.push(DONE_FRAME);
    this.finished = true;
  }

  private pushText(text: string, sink: FrameSink): void {
    this.completionChars += text.length;
    this.contentChunks++;
    this.completionText.append(text);
    sink.push(`${this.deltaPrefix}{"content":${JSON.stringify(text)}}${CHOICE_SUFFIX}`);
  }

  /** Thinking is generated output (Anthropic counts it in output_tokens): it counts toward the estimate too. */
  private pushThinking(text: string, sink: FrameSink): void {
    this.completionChars += text.length;
    this.contentChunks++;
    this.completionText.append(text);
    sink.push(`${this.deltaPrefix}{"reasoning_content":${JSON.stringify(text)}}${CHOICE_SUFFIX}`);
  }

  private pushFinish(finishReason: string, sink: FrameSink): void {
    if (this.finishSent) return;
    this.finishSent = true;
    sink.push(`${this.deltaPrefix}{},"finish_reason":${JSON.stringify(finishReason)},"logprobs":null}]}\n\n`);
  }

  private requireStarted(): void {
    // Content before message_start has no id to put on its chunks: the stream is not Anthropic's.
    if (!this.started) throw badResponse();
  }
}

function parse(data: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch (err) {
    throw new GatewayError('NR_UPSTREAM_BAD_RESPONSE', undefined, { cause: err });
  }
  if (!isRecord(parsed)) throw badResponse();
  return parsed;
}

function blockIndexOf(payload: Record<string, unknown>): number {
  const index = payload.index;
  // Bounded so a hostile index cannot make toolIndexByBlock a huge sparse array.
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > 10_000) throw badResponse();
  return index;
}

/** An `error` event (overloaded_error, api_error ...): the message is Anthropic's, the event stays as cause. */
function upstreamError(event: SseEvent, payload?: Record<string, unknown>): GatewayError {
  let body = payload;
  if (body === undefined) {
    try {
      const parsed: unknown = JSON.parse(event.data);
      if (isRecord(parsed)) body = parsed;
    } catch {
      // unreadable error body: the catalog message stands
    }
  }
  const error = body && isRecord(body.error) ? body.error : undefined;
  const message = typeof error?.message === 'string' && error.message !== '' ? error.message.slice(0, MAX_MESSAGE_CHARS) : undefined;
  return new GatewayError('NR_UPSTREAM_ERROR', message, { cause: event });
}

function badResponse(): GatewayError {
  return new GatewayError('NR_UPSTREAM_BAD_RESPONSE');
}
