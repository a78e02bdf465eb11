// Money is integer micro-units of the org's currency. Prices are per million tokens, so a price of
// P per MTok is exactly P micro-units per token: cost = ceil(tokens x P), rounded once per request.
import type { Deployment, ModelRoute } from '../config/load.js';

export interface Prices {
  /** Micro-units per input token. */
  readonly input: number;
  /** Micro-units per output token. */
  readonly output: number;
}

export function pricesOf(deployment: Deployment): Prices {
  return { input: deployment.inputPricePerMTok, output: deployment.outputPricePerMTok };
}

/** The dearest prices among a route's deployments: a fallback can never cost more than was held. */
export function boundingPrices(route: ModelRoute): Prices {
  let input = 0;
  let output = 0;
  for (const d of route.deployments) {
    input = Math.max(input, d.inputPricePerMTok);
    output = Math.max(output, d.outputPricePerMTok);
  }
  return { input, output };
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
