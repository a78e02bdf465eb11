// OpenAI's legacy text completions (POST /v1/completions) for older clients: one prompt becomes one
// user message of a chat request, and the answer becomes `text_completion` objects, streamed or
// not. What has no chat equivalent (several prompts, token prompts, suffix, echo, logprobs, best_of)
// is refused by name rather than silently dropped.
import { invalidRequest } from '../../errors/gateway-error.js';
import type { ChatRequest } from '../../providers/types.js';
import { errorJson, sseErrorFrame } from '../error-response.js';
import { validateChatRequest } from '../validate-chat-request.js';
import { frameData, type ClientDialect, type DialectContext, type Frame, type StreamEncoder } from './dialect.js';
import { parseUpstreamJson } from './openai-chat.js';
import { parseJsonObject } from './parse.js';

/** OpenAI's default for this API when max_tokens is absent. */
const DEFAULT_MAX_TOKENS = 16;
const DONE_FRAME = 'data: [DONE]\n\n';
/** Fields that pass to the chat request as they are. */
const SHARED = ['model', 'stream', 'stream_options', 'temperature', 'top_p', 'stop', 'presence_penalty', 'frequency_penalty', 'seed', 'user', 'n', 'logit_bias'] as const;

export const openAiCompletionsDialect: ClientDialect = {
  route: 'completions',
  identity: false,
  parseRequest,
  errorBody: errorJson,
  streamErrorFrame: sseErrorFrame,
  open: (ctx) => ({ completion: (body) => completion(body, ctx), streamEncoder: () => new CompletionsStreamEncoder(ctx) }),
};

function parseRequest(received: string | Uint8Array): ChatRequest {
  const body = parseJsonObject(received);
  const prompt = promptOf(body.prompt);
  for (const field of ['suffix', 'best_of'] as const) if (body[field] != null) throw invalidRequest(`\`${field}\` is not supported.`, field);
  if (body.echo != null && body.echo !== false) throw invalidRequest('`echo` is not supported.', 'echo');
  if (body.logprobs != null) throw invalidRequest('`logprobs` is not supported.', 'logprobs');
  const request: Record<string, unknown> = { messages: [{ role: 'user', content: prompt }] };
  for (const field of SHARED) if (body[field] !== undefined) request[field] = body[field];
  request.max_tokens = body.max_tokens === undefined ? DEFAULT_MAX_TOKENS : body.max_tokens;
  return validateChatRequest(request);
}

/** One prompt, as a string or a one-string array. */
function promptOf(prompt: unknown): string {
  if (typeof prompt === 'string') return prompt;
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === 'string') return prompt[0];
  if (Array.isArray(prompt) && prompt.length > 1) throw invalidRequest('Only one prompt per request is supported.', 'prompt');
  if (prompt === undefined) throw invalidRequest('`prompt` is required.', 'prompt');
  throw invalidRequest('`prompt` must be a string (token arrays are not supported).', 'prompt');
}

interface ChatChoice {
  message?: { content?: unknown };
  delta?: { content?: unknown };
  finish_reason?: unknown;
}

function completion(body: string | Uint8Array, ctx: DialectContext): string {
  const chat = parseUpstreamJson(body);
  const choice = (Array.isArray(chat.choices) ? chat.choices[0] : undefined) as ChatChoice | undefined;
  const text = typeof choice?.message?.content === 'string' ? choice.message.content : '';
  return JSON.stringify({
    id: completionId(chat.id, ctx),
    object: 'text_completion',
    created: typeof chat.created === 'number' ? chat.created : ctx.created,
    model: ctx.model,
    choices: [{ text, index: 0, logprobs: null, finish_reason: typeof choice?.finish_reason === 'string' ? choice.finish_reason : 'stop' }],
    ...(chat.usage === undefined ? {} : { usage: chat.usage }),
  });
}

function completionId(id: unknown, ctx: DialectContext): string {
  return `cmpl-${typeof id === 'string' ? id.replace(/^chatcmpl-/, '') : ctx.requestId}`;
}

class CompletionsStreamEncoder implements StreamEncoder {
  private id: string | undefined;
  private done = false;

  constructor(private readonly ctx: DialectContext) {}

  frames(frames: readonly Frame[], out: Frame[]): void {
    for (const frame of frames) for (const data of frameData(frame)) this.onData(data, out);
  }

  end(out: Frame[]): void {
    if (this.done) return;
    this.done = true;
    out.push(DONE_FRAME);
  }

  private onData(data: string, out: Frame[]): void {
    // [DONE] waits for end(): the exchange may seal the answer first.
    if (this.done || data === '[DONE]') return;
    const chunk = parseUpstreamJson(data);
    this.id ??= completionId(chunk.id, this.ctx);
    const base = { id: this.id, object: 'text_completion', created: typeof chunk.created === 'number' ? chunk.created : this.ctx.created, model: this.ctx.model };
    const choices = Array.isArray(chunk.choices) ? (chunk.choices as ChatChoice[]) : [];
    if (choices.length === 0) {
      // The usage chunk: sent only to a client that asked for it (the translator already filtered).
      if (chunk.usage != null) out.push(`data: ${JSON.stringify({ ...base, choices: [], usage: chunk.usage })}\n\n`);
      return;
    }
    const choice = choices[0]!;
    const text = typeof choice.delta?.content === 'string' ? choice.delta.content : '';
    const finish = typeof choice.finish_reason === 'string' ? choice.finish_reason : null;
    // The role-only first chunk carries nothing for this format.
    if (text === '' && finish === null) return;
    out.push(`data: ${JSON.stringify({ ...base, choices: [{ text, index: 0, logprobs: null, finish_reason: finish }] })}\n\n`);
  }
}
