// The answer side of the Responses dialect, shared by complete answers and streams: OpenAI's
// `response` object and its output items (a `reasoning` item where the upstream reported reasoning,
// a `message` with output_text, `function_call`s), the usage
// in its shape, the status a chat finish reason means, and the assistant message a stored
// conversation ends with.
import { randomBytes } from 'node:crypto';
import type { ChatMessage, ToolCall } from '../../providers/types.js';
import { isRecord } from './parse.js';
import type { ResponseEcho } from './responses-request.js';

export interface OutputText {
  readonly type: 'output_text';
  readonly text: string;
  readonly annotations: readonly unknown[];
}

export interface MessageItem {
  readonly id: string;
  readonly type: 'message';
  readonly status: ItemStatus;
  readonly role: 'assistant';
  readonly content: readonly OutputText[];
}

export interface FunctionCallItem {
  readonly id: string;
  readonly type: 'function_call';
  readonly status: ItemStatus;
  readonly call_id: string;
  readonly name: string;
  readonly arguments: string;
}

/**
 * The upstream reasoned: its text (`reasoning_content`, as DeepSeek, vLLM and the gateway's
 * Anthropic adapter send it) as reasoning_text content, or only a count of reasoning tokens in the
 * usage (OpenAI's reasoning models through chat completions), then with no content. No summary.
 */
export interface ReasoningItem {
  readonly id: string;
  readonly type: 'reasoning';
  readonly status: ItemStatus;
  readonly summary: readonly unknown[];
  readonly content?: readonly { readonly type: 'reasoning_text'; readonly text: string }[];
}

export type OutputItem = ReasoningItem | MessageItem | FunctionCallItem;
export type ItemStatus = 'in_progress' | 'completed' | 'incomplete';
export type ResponseStatus = 'in_progress' | 'completed' | 'incomplete';

export interface ResponseUsage {
  readonly input_tokens: number;
  readonly input_tokens_details: { readonly cached_tokens: number };
  readonly output_tokens: number;
  readonly output_tokens_details: { readonly reasoning_tokens: number };
  readonly total_tokens: number;
}

/** What every response object of one request shares. */
export interface ResponseBase {
  readonly id: string;
  readonly createdAt: number;
  readonly model: string;
  readonly echo: ResponseEcho;
}

/** How a chat answer ended, as a response's status. */
export interface Ending {
  readonly status: 'completed' | 'incomplete';
  readonly incompleteDetails: { readonly reason: string } | null;
}

/** OpenAI's ids: a prefix and 48 hex digits (random: a client's x-request-id may repeat). */
export function newId(prefix: 'resp' | 'msg' | 'fc' | 'rs'): string {
  return `${prefix}_${randomBytes(24).toString('hex')}`;
}

export function endingOf(finishReason: unknown): Ending {
  if (finishReason === 'length') return { status: 'incomplete', incompleteDetails: { reason: 'max_output_tokens' } };
  if (finishReason === 'content_filter') return { status: 'incomplete', incompleteDetails: { reason: 'content_filter' } };
  return { status: 'completed', incompleteDetails: null };
}

interface ChatUsage {
  prompt_tokens?: unknown;
  completion_tokens?: unknown;
  total_tokens?: unknown;
  prompt_tokens_details?: { cached_tokens?: unknown } | null;
  completion_tokens_details?: { reasoning_tokens?: unknown } | null;
}

const count = (value: unknown): number => (typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0);

/** A chat usage object in the Responses shape; null when the upstream reported none. */
export function usageOf(usage: unknown): ResponseUsage | null {
  if (!isRecord(usage)) return null;
  const u = usage as ChatUsage;
  const input = count(u.prompt_tokens);
  const output = count(u.completion_tokens);
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: count(u.prompt_tokens_details?.cached_tokens) },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: count(u.completion_tokens_details?.reasoning_tokens) },
    total_tokens: typeof u.total_tokens === 'number' ? u.total_tokens : input + output,
  };
}

export function reasoningItem(id: string, text: string, status: ItemStatus): ReasoningItem {
  return text === '' ? { id, type: 'reasoning', status, summary: [] } : { id, type: 'reasoning', status, summary: [], content: [{ type: 'reasoning_text', text }] };
}

/** The upstream's usage counts reasoning tokens. */
export function reportsReasoning(usage: ResponseUsage | null): boolean {
  return usage !== null && usage.output_tokens_details.reasoning_tokens > 0;
}

/** The response object; `ending` undefined: still in progress (no usage yet). */
export function responseObject(base: ResponseBase, output: readonly OutputItem[], ending: Ending | undefined, usage: ResponseUsage | null): Record<string, unknown> {
  const echo = base.echo;
  return {
    id: base.id,
    object: 'response',
    created_at: base.createdAt,
    status: ending?.status ?? 'in_progress',
    background: false,
    error: null,
    incomplete_details: ending?.incompleteDetails ?? null,
    instructions: echo.instructions,
    max_output_tokens: echo.max_output_tokens,
    model: base.model,
    output,
    parallel_tool_calls: echo.parallel_tool_calls,
    previous_response_id: echo.previous_response_id,
    // Reasoning options are accepted and not applied: none is reported.
    reasoning: { effort: null, summary: null },
    store: echo.store,
    temperature: echo.temperature,
    text: echo.text,
    tool_choice: echo.tool_choice,
    tools: echo.tools,
    top_p: echo.top_p,
    truncation: 'disabled',
    usage: ending === undefined ? null : usage,
    user: echo.user,
    metadata: echo.metadata,
  };
}

/** The assistant turn of these output items, as the chat message a continuation sends upstream. */
export function assistantMessage(output: readonly OutputItem[]): ChatMessage {
  let text = '';
  const calls: ToolCall[] = [];
  for (const item of output) {
    // Reasoning is not sent back upstream: chat has no place for it.
    if (item.type === 'reasoning') continue;
    if (item.type === 'message') for (const part of item.content) text += part.text;
    else calls.push({ id: item.call_id, type: 'function', function: { name: item.name, arguments: item.arguments } });
  }
  if (calls.length === 0) return { role: 'assistant', content: text };
  return { role: 'assistant', content: text === '' ? null : text, tool_calls: calls };
}
