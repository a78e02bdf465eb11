// Money is integer micro-units of the org's currency. Prices are per million tokens, so a price of
// P per MTok is exactly P micro-units per token: cost = ceil(tokens x P), rounded once per request.
// A usage's parts have their own prices: prompt tokens read from or written to a prompt cache, and
// reasoning tokens among the completion tokens; a hold prices every token at the dearest kind.
// A settle's ledger row records the usage it was priced from (PricedUsage), and its charge is
// pricedCostMicros of exactly those parts (capped at the hold).
import type { Deployment, ModelRoute } from '../config/load.js';
import type { Usage } from '../providers/types.js';
import { usageParts, withParts } from '../providers/usage.js';

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

/** The usage a charge was priced from, as its ledger row records it: token counts and image parts. */
export interface PricedUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Prompt tokens read from a prompt cache (part of promptTokens). */
  readonly cachedTokens: number;
  /** Prompt tokens written to a prompt cache (part of promptTokens). */
  readonly cacheWriteTokens: number;
  /** Part of completionTokens. */
  readonly reasoningTokens: number;
  /** Image parts of the request (charged only by a model priced per image). */
  readonly images: number;
}

/** A reported usage (its parts as usageParts reads them) with the request's image parts. */
export function pricedUsage(usage: Usage, images: number): PricedUsage {
  const { cached, cacheWrite, reasoning } = usageParts(usage);
  return { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens, cachedTokens: cached, cacheWriteTokens: cacheWrite, reasoningTokens: reasoning, images };
}

/** Tokens counted or estimated without a report: no parts, every token at its plain price. */
export function plainUsage(promptTokens: number, completionTokens: number, images: number): PricedUsage {
  return { promptTokens, completionTokens, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, images };
}

/** What a priced usage costs: its tokens as usageCostMicros prices them, plus its images. */
export function pricedCostMicros(prices: Prices, u: PricedUsage): number {
  const usage = withParts(
    { prompt_tokens: u.promptTokens, completion_tokens: u.completionTokens, total_tokens: u.promptTokens + u.completionTokens },
    { cached: u.cachedTokens, cacheWrite: u.cacheWriteTokens, reasoning: u.reasoningTokens },
  );
  return usageCostMicros(prices, usage) + imageCostMicros(prices, u.images);
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
