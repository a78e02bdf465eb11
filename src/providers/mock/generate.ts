// The simulated OpenAI upstream's one source of bytes, shared by the in-process dispatcher and the
// standalone server: a request body and a MockBehaviour in, the exact response (status, headers,
// body pieces with their timing, and how it ends) out. Pure apart from the clock and an id counter.
import type { MockBehaviour, MockFault } from '../../config/schema.js';
import type { ChatRequest } from '../types.js';
import { structuredAnswer, type StructuredAnswer, type StructuredRequest } from './structured-answer.js';

/**
 * What the mock reads from a request; every field is untrusted and checked before use. A request
 * asks for reasoning with OpenAI's `reasoning_effort` or Anthropic's `thinking` (which the mock
 * adapter sends for a translated Messages request).
 */
export type MockRequest = Partial<Pick<ChatRequest, 'model' | 'messages' | 'stream' | 'stream_options' | 'max_tokens' | 'max_completion_tokens'>> &
  StructuredRequest & { reasoning_effort?: unknown; thinking?: unknown };

/** The facts one simulated completion is made of. */
export interface MockCompletion {
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
  stream: boolean;
  /** The request set stream_options.include_usage. */
  includeUsage: boolean;
  reportUsage: boolean;
  /** The answer's own tokens: words, or the pieces of a structured answer. */
  completionTokens: number;
  promptTokens: number;
  finishReason: 'stop' | 'length' | 'tool_calls';
  /** A tool call or JSON instead of words (structured-answer.ts). */
  structured: StructuredAnswer | undefined;
  /** Reported in prompt_tokens_details when set (at most promptTokens). */
  cachedPromptTokens: number | undefined;
  /** Spent before the answer: in completion_tokens and within max_tokens; reported in completion_tokens_details when set. */
  reasoningTokens: number | undefined;
  /** The reasoning tokens go out as text (reasoning_content, before the answer); otherwise they are only counted. */
  reasoningShown: boolean;
  /** What the usage claims instead of the truth (the absurd-usage fault). */
  reportedCompletionTokens?: number;
}

/** How a mock response goes out; both transports play it the same way. */
export interface MockResponse {
  status: number;
  /** Shared between responses: never mutate. */
  headers: Readonly<Record<string, string>>;
  /** Before the status line and the first piece. */
  firstDelayMs: number;
  /** Between two pieces; 0 when there is only one. */
  intervalMs: number;
  pieces: string[];
  /** After the last piece: finish, drop the connection, go silent; 'hang' never even sends headers. */
  ending: 'end' | 'cut' | 'stall' | 'hang';
}

// Tokens are words plus a space: plain ASCII, so no JSON escaping and text is easy to assert.
const WORDS = ['the', 'quick', 'brown', 'fox', 'jumps', 'over', 'a', 'lazy', 'dog', 'while', 'seven', 'small', 'owls', 'sing', 'at', 'dawn'];
const TOKENS = WORDS.map((w) => `${w} `);
const CYCLE_TEXT = TOKENS.join('');
// Reasoning text: other words, so a client can tell thinking from the answer at a glance.
const REASONING_WORDS = ['first', 'i', 'read', 'the', 'question', 'then', 'weigh', 'each', 'option', 'and', 'check', 'my', 'steps', 'before', 'i', 'answer'];
const REASONING_TOKENS = REASONING_WORDS.map((w) => `${w} `);
const REASONING_CYCLE_TEXT = REASONING_TOKENS.join('');
/** Reasoning text length when a request asks for reasoning and the behaviour sets no reasoningTokens. */
export const DEFAULT_REASONING_TOKENS = 16;

const SSE_HEADERS = Object.freeze({ 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
const JSON_TYPE = 'application/json';
export const MALFORMED_FRAME = 'data: {not json\n\n';
export const DONE_FRAME = 'data: [DONE]\n\n';

// Per-token frame tails, precomputed for both shapes (with and without `"usage":null`).
const CHUNK_TAIL = ',"logprobs":null,"finish_reason":null}]';
const TOKEN_TAILS = [false, true].map((withUsage) =>
  TOKENS.map((t) => `{"content":"${t}"}${CHUNK_TAIL}${withUsage ? ',"usage":null' : ''}}\n\n`),
);
const REASONING_TAILS = [false, true].map((withUsage) =>
  REASONING_TOKENS.map((t) => `{"reasoning_content":"${t}"}${CHUNK_TAIL}${withUsage ? ',"usage":null' : ''}}\n\n`),
);

/** Node timers fire on whole milliseconds: a piece due within this much goes now instead of re-arming. */
export const TIMER_SLACK_MS = 1;

let idSeq = 0;
/** Per-process counter: unique enough for a simulator and free of crypto calls on the hot path. */
export function nextMockId(): string {
  idSeq += 1;
  return `chatcmpl-mock${idSeq.toString(36)}`;
}

/** The exact completion text of n tokens, for asserting reassembly. */
export function mockCompletionText(n: number): string {
  const whole = Math.floor(n / TOKENS.length);
  return CYCLE_TEXT.repeat(whole) + TOKENS.slice(0, n - whole * TOKENS.length).join('');
}

/** The exact reasoning text of n tokens, for asserting reassembly. */
export function mockReasoningText(n: number): string {
  const whole = Math.floor(n / REASONING_TOKENS.length);
  return REASONING_CYCLE_TEXT.repeat(whole) + REASONING_TOKENS.slice(0, n - whole * REASONING_TOKENS.length).join('');
}

/** ceil(UTF-8 bytes of all message text / 4), at least 1. */
export function mockPromptTokens(messages: unknown): number {
  let bytes = 0;
  if (Array.isArray(messages)) {
    for (const message of messages) {
      const content = (message as { content?: unknown } | null)?.content;
      if (typeof content === 'string') bytes += Buffer.byteLength(content);
      else if (Array.isArray(content)) {
        for (const part of content) {
          const text = (part as { text?: unknown } | null)?.text;
          if (typeof text === 'string') bytes += Buffer.byteLength(text);
        }
      }
    }
  }
  return Math.max(1, Math.ceil(bytes / 4));
}

export function describeCompletion(body: MockRequest, behaviour: MockBehaviour, id: string, created = Math.floor(Date.now() / 1000)): MockCompletion {
  const limit = Math.min(tokenLimit(body.max_tokens), tokenLimit(body.max_completion_tokens));
  const mode = behaviour.reasoningText ?? 'when-asked';
  const budget = mode === 'never' ? undefined : reasoningBudget(body);
  const shown = mode === 'always' || budget !== undefined;
  const wantedReasoning = shown ? Math.min(behaviour.reasoningTokens ?? DEFAULT_REASONING_TOKENS, budget ?? Infinity) : behaviour.reasoningTokens;
  const reasoningTokens = wantedReasoning === undefined ? undefined : Math.min(wantedReasoning, limit);
  const room = limit - (reasoningTokens ?? 0);
  // Most requests offer no tools and no response_format: no look at them at all.
  const structured = body.tools === undefined && body.response_format === undefined ? undefined : structuredAnswer(body, behaviour.completionTokens, toolCallIdOf(id), WORDS);
  const wanted = structured === undefined ? behaviour.completionTokens : structured.pieces.length;
  const cut = room < wanted;
  const stream = body.stream === true;
  const promptTokens = mockPromptTokens(body.messages);
  return {
    id,
    created,
    model: typeof body.model === 'string' ? body.model : 'mock',
    stream,
    includeUsage: stream && body.stream_options?.include_usage === true,
    reportUsage: behaviour.reportUsage,
    completionTokens: cut ? room : wanted,
    promptTokens,
    finishReason: cut ? 'length' : structured?.kind === 'tool_call' ? 'tool_calls' : 'stop',
    structured,
    cachedPromptTokens: behaviour.cachedPromptTokens === undefined ? undefined : Math.min(behaviour.cachedPromptTokens, promptTokens),
    reasoningTokens,
    reasoningShown: shown && reasoningTokens !== undefined && reasoningTokens > 0,
  };
}

/**
 * How many tokens the request lets the mock reason: Infinity when it asks with `reasoning_effort`
 * (any but "none") or a `thinking` option (any type but "disabled"; `budget_tokens` bounds it),
 * undefined when it does not ask.
 */
function reasoningBudget(body: MockRequest): number | undefined {
  const thinking = body.thinking as { type?: unknown; budget_tokens?: unknown } | null | undefined;
  if (typeof thinking === 'object' && thinking !== null && thinking.type !== 'disabled') {
    return typeof thinking.budget_tokens === 'number' && thinking.budget_tokens > 0 ? Math.floor(thinking.budget_tokens) : Infinity;
  }
  return typeof body.reasoning_effort === 'string' && body.reasoning_effort !== 'none' ? Infinity : undefined;
}

/** A tool call's id follows from its completion's: `chatcmpl-mock1f` calls `call_mock1f`. */
function toolCallIdOf(completionId: string): string {
  return `call_${completionId.slice(completionId.lastIndexOf('-') + 1)}`;
}

function tokenLimit(value: unknown): number {
  return typeof value === 'number' && value >= 0 ? Math.floor(value) : Infinity;
}

/** The usage the absurd-usage fault reports: far beyond any output bound. */
export const ABSURD_COMPLETION_TOKENS = 1e12;

function usageJson(c: MockCompletion): string {
  const completion = c.reportedCompletionTokens ?? c.completionTokens + (c.reasoningTokens ?? 0);
  const cached = c.cachedPromptTokens === undefined ? '' : `,"prompt_tokens_details":{"cached_tokens":${c.cachedPromptTokens}}`;
  const reasoning = c.reasoningTokens === undefined ? '' : `,"completion_tokens_details":{"reasoning_tokens":${c.reasoningTokens}}`;
  return `{"prompt_tokens":${c.promptTokens},"completion_tokens":${completion},"total_tokens":${c.promptTokens + completion}${cached}${reasoning}}`;
}

/** The non-stream `chat.completion` body. */
export function completionJson(c: MockCompletion): string {
  const usage = c.reportUsage ? `,"usage":${usageJson(c)}` : '';
  return (
    `{"id":${JSON.stringify(c.id)},"object":"chat.completion","created":${c.created},"model":${JSON.stringify(c.model)},` +
    `"choices":[{"index":0,"message":{"role":"assistant",${reasoningField(c)}${messageFields(c)},"refusal":null},` +
    `"logprobs":null,"finish_reason":"${c.finishReason}"}]${usage},"system_fingerprint":null}`
  );
}

/** A complete message's `reasoning_content` (DeepSeek's and vLLM's name) and a comma, when shown. */
function reasoningField(c: MockCompletion): string {
  return c.reasoningShown ? `"reasoning_content":"${mockReasoningText(c.reasoningTokens!)}",` : '';
}

/** A complete message's `content` (and `tool_calls`), cut at completionTokens. */
function messageFields(c: MockCompletion): string {
  const s = c.structured;
  if (s === undefined) return `"content":"${mockCompletionText(c.completionTokens)}"`;
  const text = JSON.stringify(s.pieces.slice(0, c.completionTokens).join(''));
  if (s.kind === 'json') return `"content":${text}`;
  return `"content":null,"tool_calls":[{"id":${JSON.stringify(s.id)},"type":"function","function":{"name":${JSON.stringify(s.name)},"arguments":${text}}}]`;
}

/**
 * The SSE frames in OpenAI's order: role chunk, one chunk per token (shown reasoning first, then the
 * answer), the finish chunk, the usage chunk (only when asked for and reported), [DONE].
 * frames[1..streamedTokens(c)] are the tokens.
 */
export function streamFrames(c: MockCompletion): string[] {
  const head = `data: {"id":${JSON.stringify(c.id)},"object":"chat.completion.chunk","created":${c.created},"model":${JSON.stringify(c.model)},"system_fingerprint":null,"choices":`;
  const usageNull = c.includeUsage ? ',"usage":null' : '';
  const choiceHead = `${head}[{"index":0,"delta":`;
  const s = c.structured;
  // A tool call's header may not come before the reasoning: then it rides with its first fragment.
  const headerFirst = !c.reasoningShown;
  const frames: string[] = [`${choiceHead}${headerFirst || s?.kind !== 'tool_call' ? roleDelta(s) : '{"role":"assistant","content":null}'}${CHUNK_TAIL}${usageNull}}\n\n`];
  if (c.reasoningShown) {
    const tails = REASONING_TAILS[c.includeUsage ? 1 : 0]!;
    for (let i = 0; i < c.reasoningTokens!; i++) frames.push(choiceHead + tails[i % tails.length]!);
  }
  if (s === undefined) {
    const tails = TOKEN_TAILS[c.includeUsage ? 1 : 0]!;
    for (let i = 0; i < c.completionTokens; i++) frames.push(choiceHead + tails[i % tails.length]!);
  } else {
    // As OpenAI streams them: a tool call's header first (above), then its arguments in fragments.
    const [before, after] = s.kind === 'json' ? ['{"content":', '}'] : ['{"tool_calls":[{"index":0,"function":{"arguments":', '}}]}'];
    for (let i = 0; i < c.completionTokens; i++) {
      const opening = i === 0 && !headerFirst && s.kind === 'tool_call' ? toolCallHead(s) : before;
      frames.push(`${choiceHead}${opening}${JSON.stringify(s.pieces[i])}${after}${CHUNK_TAIL}${usageNull}}\n\n`);
    }
  }
  frames.push(`${choiceHead}{},"logprobs":null,"finish_reason":"${c.finishReason}"}]${usageNull}}\n\n`);
  if (c.includeUsage && c.reportUsage) frames.push(`${head}[],"usage":${usageJson(c)}}\n\n`);
  frames.push(DONE_FRAME);
  return frames;
}

/** The first chunk's delta: the role, and a tool call's id, type and name with empty arguments. */
function roleDelta(s: StructuredAnswer | undefined): string {
  if (s?.kind !== 'tool_call') return '{"role":"assistant","content":""}';
  return `{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":${JSON.stringify(s.id)},"type":"function","function":{"name":${JSON.stringify(s.name)},"arguments":""}}]}`;
}

/** A tool call's first fragment after shown reasoning: its id, type and name, up to the arguments' value. */
function toolCallHead(s: Extract<StructuredAnswer, { kind: 'tool_call' }>): string {
  return `{"tool_calls":[{"index":0,"id":${JSON.stringify(s.id)},"type":"function","function":{"name":${JSON.stringify(s.name)},"arguments":`;
}

/** Token frames in a stream: the shown reasoning and the answer. */
function streamedTokens(c: MockCompletion): number {
  return c.completionTokens + (c.reasoningShown ? c.reasoningTokens! : 0);
}

export function mockErrorBody(message: string, type: string, code: string | null): string {
  return JSON.stringify({ error: { message, type, param: null, code } });
}

/** A plain JSON answer sent at once (errors, 400s, the server's own routes). */
export function jsonResponse(status: number, body: string, extraHeaders?: Record<string, string>): MockResponse {
  const headers = { 'content-type': JSON_TYPE, 'content-length': String(Buffer.byteLength(body)), ...extraHeaders };
  return { status, headers, firstDelayMs: 0, intervalMs: 0, pieces: [body], ending: 'end' };
}

const RATE_LIMITED_BODY = mockErrorBody('Rate limit reached (simulated by the NemoRouter mock upstream).', 'requests', 'rate_limit_exceeded');
const SERVER_ERROR_BODY = mockErrorBody('The server had an error while processing your request (simulated).', 'server_error', null);

/** The whole answer to one chat-completions request, fault included. */
export function planMockResponse(body: MockRequest, behaviour: MockBehaviour, id: string): MockResponse {
  const fault = behaviour.fault;
  const failed = failedUpfront(behaviour);
  if (failed !== undefined) return failed;
  const c = describeCompletion(body, behaviour, id);
  if (fault === 'absurd-usage') c.reportedCompletionTokens = ABSURD_COMPLETION_TOKENS;
  const intervalMs = behaviour.tokensPerSecond > 0 ? 1000 / behaviour.tokensPerSecond : 0;
  // Reasoning tokens are "generated" before the first visible one; shown, they stream as tokens.
  const thinkingMs = (c.reasoningTokens ?? 0) * intervalMs;
  if (c.stream) {
    const hiddenMs = c.reasoningShown ? 0 : thinkingMs;
    return { status: 200, headers: SSE_HEADERS, firstDelayMs: behaviour.ttftMs + hiddenMs, intervalMs, ...streamPieces(streamFrames(c), streamedTokens(c), fault, intervalMs === 0) };
  }
  // A non-stream answer arrives once the whole completion is "generated".
  return jsonAnswer(completionJson(c), behaviour.ttftMs + thinkingMs + c.completionTokens * intervalMs, fault);
}

/** The faults that answer before any body is looked at: 429, 500, or never. */
export function failedUpfront(behaviour: MockBehaviour): MockResponse | undefined {
  const fault = behaviour.fault;
  if (fault === 'http-429') return { ...jsonResponse(429, RATE_LIMITED_BODY, { 'retry-after': '1' }), firstDelayMs: behaviour.ttftMs };
  if (fault === 'http-500') return { ...jsonResponse(500, SERVER_ERROR_BODY), firstDelayMs: behaviour.ttftMs };
  if (fault === 'timeout') return { status: 0, headers: SSE_HEADERS, firstDelayMs: 0, intervalMs: 0, pieces: [], ending: 'hang' };
  return undefined;
}

/** A complete JSON answer after `firstDelayMs`; the mid-stream faults truncate it. */
export function jsonAnswer(json: string, firstDelayMs: number, fault: MockFault): MockResponse {
  if (fault === 'cut-mid-stream' || fault === 'stall-mid-stream') {
    // content-length promises the whole body, so the client notices the missing half.
    const half = json.slice(0, json.length >> 1);
    return { ...jsonResponse(200, json), firstDelayMs, pieces: [half], ending: fault === 'cut-mid-stream' ? 'cut' : 'stall' };
  }
  if (fault === 'malformed-sse') return { ...jsonResponse(200, json.slice(0, json.length >> 1)), firstDelayMs };
  return { ...jsonResponse(200, json), firstDelayMs };
}

/**
 * Groups frames into pieces sent one per token interval: the role chunk rides with the first token
 * and the closing frames with the last. A mid-stream fault strikes after half the tokens.
 */
function streamPieces(frames: string[], tokens: number, fault: MockFault, batched: boolean): Pick<MockResponse, 'pieces' | 'ending'> {
  const half = tokens >> 1;
  const last = fault === 'no-done' ? frames.length - 1 : frames.length;
  const pieces: string[] = [];
  let current = '';
  for (let i = 0; i < last; i++) {
    if (!batched && i >= 2 && i <= tokens) {
      pieces.push(current);
      current = '';
    }
    current += frames[i];
    if (i !== half) continue;
    if (fault === 'malformed-sse') current += MALFORMED_FRAME;
    else if (fault === 'cut-mid-stream' || fault === 'stall-mid-stream') {
      pieces.push(current);
      return { pieces, ending: fault === 'cut-mid-stream' ? 'cut' : 'stall' };
    }
  }
  pieces.push(current);
  return { pieces, ending: 'end' };
}
