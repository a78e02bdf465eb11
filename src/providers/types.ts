// What every provider adapter is: data (how to reach it) plus a few transforms between the
// OpenAI chat-completions shape the gateway speaks and the provider's own wire format.
import type { Dispatcher } from 'undici';
import type { Deployment } from '../config/load.js';
import type { CompletionText } from '../streaming/completion-text.js';
import type { SseEvent } from '../streaming/sse-parser.js';

/**
 * Set on a request whose cache_control marks the gateway added itself (a translated Anthropic
 * request): an OpenAI-compatible upstream gets them stripped, since it never asked for them. A
 * symbol, so it is never serialized.
 */
export const GATEWAY_CACHE_MARKS: unique symbol = Symbol('nemo.gatewayCacheMarks');

/**
 * Anthropic's extended thinking, carried beside the OpenAI shape for an Anthropic deployment (a
 * translated Messages request): on a request, its `thinking` option as the client sent it. A symbol,
 * so it is never serialized: an OpenAI-compatible upstream never sees it.
 */
export const ANTHROPIC_THINKING: unique symbol = Symbol('nemo.anthropicThinking');
/** On an assistant message: the thinking blocks of that turn, signatures included, to go back as they came. */
export const THINKING_BLOCKS: unique symbol = Symbol('nemo.thinkingBlocks');

/** A thinking block of an Anthropic answer; its signature (or the redacted data) proves it unchanged. */
export type ThinkingBlock = { type: 'thinking'; thinking: string; signature: string } | { type: 'redacted_thinking'; data: string };

/** A validated OpenAI chat-completions request body; unknown fields pass through untouched. */
export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean } | null;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  stop?: string | string[] | null;
  tools?: ChatTool[];
  tool_choice?: unknown;
  user?: string;
  [GATEWAY_CACHE_MARKS]?: boolean;
  [ANTHROPIC_THINKING]?: Record<string, unknown>;
  [extra: string]: unknown;
}

export type Role = 'system' | 'developer' | 'user' | 'assistant' | 'tool';

export interface ChatMessage {
  role: Role;
  content: string | ContentPart[] | null;
  name?: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  [THINKING_BLOCKS]?: ThinkingBlock[];
}

/** A prompt-caching breakpoint (Anthropic's; LiteLLM carries it on OpenAI content parts the same way). */
export interface CacheControl {
  type: 'ephemeral';
  ttl?: string;
}

export type ContentPart =
  | { type: 'text'; text: string; cache_control?: CacheControl }
  | { type: 'image_url'; image_url: { url: string; detail?: string }; cache_control?: CacheControl };

export interface ChatTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown> };
  cache_control?: CacheControl;
}


export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/**
 * Usage in OpenAI's shape. The parts, where the upstream reports them, each within its total:
 * cached prompt tokens (read from a prompt cache), prompt tokens written to a cache (Anthropic's
 * cache_creation_input_tokens, named as LiteLLM names it in OpenAI's shape), reasoning tokens.
 */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
  cache_creation_input_tokens?: number;
  completion_tokens_details?: { reasoning_tokens: number };
}

/** An OpenAI `chat.completion` object (non-stream response). */
export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: Array<{
    index: number;
    /** reasoning_content and thinking_blocks (LiteLLM's names): an Anthropic answer's thinking, as text and as its blocks with signatures. */
    message: { role: 'assistant'; content: string | null; tool_calls?: ToolCall[]; reasoning_content?: string; thinking_blocks?: ThinkingBlock[] };
    finish_reason: string | null;
    logprobs: null;
  }>;
  usage?: Usage;
}

/** The HTTP request to send upstream, ready for undici. */
export interface UpstreamRequest {
  /** Scheme, host and port: the undici pool key. */
  origin: string;
  path: string;
  headers: Readonly<Record<string, string>>;
  /** JSON: a string, or UTF-8 chunks of a large body (src/json/chunked-body.ts), its content-length in headers. */
  body: string | readonly Buffer[];
}

/** Per-request facts the transforms need. */
export interface TranslateContext {
  /** The gateway's request id, used as completion id where the provider has none. */
  requestId: string;
  /** The public model name the client asked for. */
  publicModel: string;
  /** Unix seconds. */
  created: number;
  /** Whether the client asked for the usage chunk (stream_options.include_usage). */
  clientWantsUsage: boolean;
}

/** Receives the OpenAI SSE frames a translator produces, each a complete `data: ...\n\n` frame. */
export interface FrameSink {
  push(frame: string | Uint8Array): void;
}

/** Turns one upstream SSE stream into OpenAI `chat.completion.chunk` frames. One per request. */
export interface StreamTranslator {
  /** Handles one upstream event; throws GatewayError('NR_UPSTREAM_BAD_RESPONSE' | 'NR_UPSTREAM_ERROR') on garbage or an upstream error event. */
  onEvent(event: SseEvent, sink: FrameSink): void;
  /** True once the upstream signalled a complete stream ([DONE], message_stop). */
  readonly finished: boolean;
  /** Usage as reported by upstream, if it was. */
  readonly usage: Usage | undefined;
  /** Completion tokens' text seen so far, in characters; for estimating when usage is missing. */
  readonly completionChars: number;
  /** Chunks that carried generated text or tool arguments: the token estimate when usage is missing. */
  readonly contentChunks: number;
  /** The generated text so far (content and tool-call arguments), for an exact count when usage is missing. */
  readonly completionText: CompletionText;
}

/** A validated OpenAI embeddings request body; unknown fields pass through untouched. */
export interface EmbeddingsRequest {
  model: string;
  /** A text, texts, one text's token ids, or several texts' token ids. */
  input: string | string[] | number[] | number[][];
  encoding_format?: 'float' | 'base64';
  dimensions?: number;
  user?: string;
  [extra: string]: unknown;
}

/** A provider's embeddings endpoint: the request to send, and what a successful answer reports. */
export interface EmbeddingsApi {
  buildRequest(request: EmbeddingsRequest, deployment: Deployment): UpstreamRequest;
  /** Checks a complete 2xx body (throws GatewayError('NR_UPSTREAM_BAD_RESPONSE') on garbage); its prompt tokens, when reported. */
  readPromptTokens(body: string): number | undefined;
}

/** The one part of an undici Dispatcher the gateway uses: dispatch with the controller handler API. */
export type UpstreamDispatcher = Pick<Dispatcher, 'dispatch'>;

export interface ProviderAdapter {
  readonly kind: Deployment['provider'];
  /** The upstream's non-stream body already is an OpenAI chat.completion: send its bytes as they came. */
  readonly passthroughResponse?: boolean;
  buildRequest(request: ChatRequest, deployment: Deployment, maxTokens: number): UpstreamRequest;
  /** Translates a complete, successful (2xx) upstream JSON body. */
  parseResponse(json: unknown, ctx: TranslateContext): ChatCompletion;
  createStreamTranslator(ctx: TranslateContext): StreamTranslator;
  /** Where requests go: undici pools for HTTP providers, an in-process dispatcher for the mock. */
  dispatcherFor?(deployment: Deployment): UpstreamDispatcher;
  /** Absent: the provider has no embeddings API. Its answer goes to the client as it came. */
  readonly embeddings?: EmbeddingsApi;
}
