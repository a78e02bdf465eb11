// Data for the Anthropic Messages API: where the endpoint lives, which headers it takes, and how
// its stop reasons and usage map onto OpenAI's. No translation logic beyond table lookups here.
import type { Deployment } from '../../config/load.js';
import { perDeployment } from '../per-deployment.js';
import type { Usage } from '../types.js';
import { withParts } from '../usage.js';

export const ANTHROPIC_VERSION = '2023-06-01';
export const DEFAULT_BASE_URL = 'https://api.anthropic.com/v1';
export const MESSAGES_PATH_SUFFIX = '/messages';

/** Endpoint and headers, computed once per deployment; the headers object is shared and never written. */
export const cachedEndpointOf = perDeployment((deployment) => ({
  ...endpointOf(deployment),
  headers: Object.freeze(headersOf(deployment)) as Readonly<Record<string, string>>,
}));

export function endpointOf(deployment: Deployment): { origin: string; path: string } {
  const url = new URL(deployment.baseUrl ?? DEFAULT_BASE_URL);
  // A bare origin has pathname "/": trimming keeps the path from becoming "//messages".
  return { origin: url.origin, path: url.pathname.replace(/\/+$/, '') + MESSAGES_PATH_SUFFIX };
}

export function headersOf(deployment: Deployment): Record<string, string> {
  // Deployment headers come after the defaults so a config can pin another version or add anthropic-beta.
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'anthropic-version': ANTHROPIC_VERSION,
    ...deployment.headers,
  };
  if (deployment.apiKey) headers['x-api-key'] = deployment.apiKey;
  return headers;
}

/** Anthropic stop_reason -> OpenAI finish_reason. */
export const FINISH_REASONS: Readonly<Record<string, string>> = Object.freeze({
  end_turn: 'stop',
  stop_sequence: 'stop',
  max_tokens: 'length',
  tool_use: 'tool_calls',
  refusal: 'content_filter',
  // The turn was paused (long server-tool runs): to an OpenAI client the answer simply ended.
  pause_turn: 'stop',
});

/** Null while the message is unfinished; an unknown future reason still means "it stopped". */
export function finishReasonOf(stopReason: unknown): string | null {
  if (typeof stopReason !== 'string') return null;
  return FINISH_REASONS[stopReason] ?? 'stop';
}

/**
 * Anthropic reports cached prompt tokens apart from input_tokens; OpenAI's prompt_tokens includes
 * them, and billing settles on prompt_tokens. Undefined when input_tokens is absent or any count is garbage.
 */
export function promptTokensOf(usage: Record<string, unknown>): number | undefined {
  const input = countOf(usage.input_tokens);
  // Cache fields are absent or null when caching was not involved.
  const created = usage.cache_creation_input_tokens == null ? 0 : countOf(usage.cache_creation_input_tokens);
  const read = usage.cache_read_input_tokens == null ? 0 : countOf(usage.cache_read_input_tokens);
  if (input === undefined || created === undefined || read === undefined) return undefined;
  return input + created + read;
}

/** Anthropic's usage in OpenAI's shape, cache reads and writes as its parts; undefined on garbage. */
export function usageOfAnthropic(usage: Record<string, unknown>): Usage | undefined {
  return usageWithParts(usage, countOf(usage.output_tokens), promptTokensOf(usage));
}

/**
 * The same from a stream's pieces: the output count of message_delta, the prompt total known so far
 * (message_start's, or message_delta's restatement), and the usage whose cache counts are the parts.
 */
export function usageWithParts(usage: Record<string, unknown>, outputTokens: number | undefined, promptTokens: number | undefined): Usage | undefined {
  if (promptTokens === undefined || outputTokens === undefined) return undefined;
  return withParts({ prompt_tokens: promptTokens, completion_tokens: outputTokens, total_tokens: promptTokens + outputTokens }, {
    cached: countOf(usage.cache_read_input_tokens),
    cacheWrite: countOf(usage.cache_creation_input_tokens),
  });
}

/** Usage numbers are untrusted input that money settles on: only non-negative safe integers count. */
export function countOf(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
