// Usage numbers from upstream are untrusted input: only finite, non-negative integers count, and
// each part is capped at what it is a part of (a cached count above the prompt is not believed
// beyond the prompt), so parts can lower a charge only as far as the prices say.
import type { Usage } from './types.js';

export function readUsage(value: unknown): Usage | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const usage = value as Record<string, unknown>;
  const { prompt_tokens: prompt, completion_tokens: completion } = usage;
  if (!isCount(prompt) || !isCount(completion)) return undefined;
  return withParts({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }, {
    cached: countIn(usage.prompt_tokens_details, 'cached_tokens'),
    cacheWrite: isCount(usage.cache_creation_input_tokens) ? usage.cache_creation_input_tokens : undefined,
    reasoning: countIn(usage.completion_tokens_details, 'reasoning_tokens'),
  });
}

/** Usage with its parts (zero or absent parts left out), each capped within its total. */
export function withParts(usage: Usage, parts: { cached?: number | undefined; cacheWrite?: number | undefined; reasoning?: number | undefined }): Usage {
  const cached = Math.min(parts.cached ?? 0, usage.prompt_tokens);
  const cacheWrite = Math.min(parts.cacheWrite ?? 0, usage.prompt_tokens - cached);
  const reasoning = Math.min(parts.reasoning ?? 0, usage.completion_tokens);
  if (cached > 0) usage.prompt_tokens_details = { cached_tokens: cached };
  if (cacheWrite > 0) usage.cache_creation_input_tokens = cacheWrite;
  if (reasoning > 0) usage.completion_tokens_details = { reasoning_tokens: reasoning };
  return usage;
}

/** The parts of a usage, zero where absent. */
export function usageParts(usage: Usage): { cached: number; cacheWrite: number; reasoning: number } {
  return { cached: usage.prompt_tokens_details?.cached_tokens ?? 0, cacheWrite: usage.cache_creation_input_tokens ?? 0, reasoning: usage.completion_tokens_details?.reasoning_tokens ?? 0 };
}

function countIn(details: unknown, key: string): number | undefined {
  if (typeof details !== 'object' || details === null) return undefined;
  const n = (details as Record<string, unknown>)[key];
  return isCount(n) ? n : undefined;
}

function isCount(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}
