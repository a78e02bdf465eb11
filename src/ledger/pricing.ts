// Money is integer micro-units of the org's currency. Prices are per million tokens, so a price of
// P per MTok is exactly P micro-units per token: cost = ceil(tokens x P), rounded once per request.
// A usage's parts have their own prices: prompt tokens read from or written to a prompt cache, and
// reasoning tokens among the completion tokens; a hold prices every token at the dearest kind.
import type { Deployment, ModelRoute } from '../config/load.js';
import type { Usage } from '../providers/types.js';
import { usageParts } from '../providers/usage.js';

export interface Prices {
  /** Micro-units per input token. */
  readonly input: number;
  /** Micro-units per output token. */
  readonly output: number;
  /** Per prompt token read from a prompt cache (default: input). */
  readonly cachedInput?: number;
  /** Per prompt token written to a prompt cache (default: input). */
  readonly cacheWrite?: number;
  /** Per reasoning token (default: output). */
  readonly reasoning?: number;
  /** Per input image, for a model priced per image (default: 0, images are tokens). */
  readonly image?: number;
}

export function pricesOf(deployment: Deployment): Prices {
  const input = deployment.inputPricePerMTok;
  const output = deployment.outputPricePerMTok;
  return {
    input,
    output,
    cachedInput: deployment.cachedInputPricePerMTok ?? input,
    cacheWrite: deployment.cacheWritePricePerMTok ?? input,
    reasoning: deployment.reasoningPricePerMTok ?? output,
    image: deployment.imagePriceMicros ?? 0,
  };
}

/**
 * The dearest prices among a route's deployments, each token at its dearest kind (a cache write
 * may cost more than plain input): a fallback, or a usage's parts, can never cost more than was held.
 */
export function boundingPrices(route: ModelRoute): Prices {
  let input = 0;
  let output = 0;
  let image = 0;
  for (const d of route.deployments) {
    const p = pricesOf(d);
    input = Math.max(input, p.input, p.cachedInput ?? 0, p.cacheWrite ?? 0);
    output = Math.max(output, p.output, p.reasoning ?? 0);
    image = Math.max(image, p.image ?? 0);
  }
  return { input, output, image };
}

/** The per-image part of a request's cost: 0 unless its model is priced per image. */
export function imageCostMicros(prices: Prices, images: number): number {
  return images * (prices.image ?? 0);
}

/** What a reported usage costs: each part at its own price, rounded up once. */
export function usageCostMicros(prices: Prices, usage: Usage): number {
  const { cached, cacheWrite, reasoning } = usageParts(usage);
  const plainInput = usage.prompt_tokens - cached - cacheWrite;
  const plainOutput = usage.completion_tokens - reasoning;
  return Math.ceil(
    plainInput * prices.input + cached * (prices.cachedInput ?? prices.input) + cacheWrite * (prices.cacheWrite ?? prices.input) +
      plainOutput * prices.output + reasoning * (prices.reasoning ?? prices.output),
  );
}

export function costMicros(prices: Prices, inputTokens: number, outputTokens: number): number {
  return Math.ceil(inputTokens * prices.input + outputTokens * prices.output);
}

/**
 * The largest output bound a hold of `amountMicros` pays for after the prompt's bound, or
 * `maxOutputTokens` when output is free.
 */
export function affordableOutputTokens(prices: Prices, amountMicros: number, promptTokens: number, maxOutputTokens: number): number {
  if (prices.output === 0) return maxOutputTokens;
  const leftMicros = amountMicros - promptTokens * prices.input;
  return Math.max(0, Math.min(maxOutputTokens, Math.floor(leftMicros / prices.output)));
}
