// Cache-aware and reasoning-aware prices: each part of a usage at its own price, parts never
// believed beyond their totals, and a hold that prices every token at its dearest kind, so no
// usage's parts can cost more than was held.
import { describe, expect, it } from 'vitest';
import type { Deployment, ModelRoute } from '../../../src/config/load.js';
import { boundingPrices, costMicros, imageCostMicros, plainUsage, pricedCostMicros, pricedUsage, pricesOf, usageCostMicros } from '../../../src/ledger/pricing.js';
import { readUsage } from '../../../src/providers/usage.js';
import { usageOfAnthropic } from '../../../src/providers/anthropic/api.js';

const deployment = (prices: Partial<Deployment>) => ({ inputPricePerMTok: 3, outputPricePerMTok: 15, ...prices }) as Deployment;
const route = (...deployments: Deployment[]) => ({ name: 'm', deployments }) as unknown as ModelRoute;

describe('usage parts', () => {
  it('reads OpenAI\'s cached and reasoning tokens, and LiteLLM\'s cache_creation_input_tokens', () => {
    expect(readUsage({ prompt_tokens: 100, completion_tokens: 50, prompt_tokens_details: { cached_tokens: 60 }, completion_tokens_details: { reasoning_tokens: 30 }, cache_creation_input_tokens: 10 })).toEqual({
      prompt_tokens: 100, completion_tokens: 50, total_tokens: 150,
      prompt_tokens_details: { cached_tokens: 60 }, cache_creation_input_tokens: 10, completion_tokens_details: { reasoning_tokens: 30 },
    });
  });

  it('caps each part within its total and ignores garbage parts', () => {
    expect(readUsage({ prompt_tokens: 10, completion_tokens: 5, prompt_tokens_details: { cached_tokens: 1e9 }, cache_creation_input_tokens: 7, completion_tokens_details: { reasoning_tokens: 99 } })).toEqual({
      prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, prompt_tokens_details: { cached_tokens: 10 }, completion_tokens_details: { reasoning_tokens: 5 },
    });
    expect(readUsage({ prompt_tokens: 10, completion_tokens: 5, prompt_tokens_details: { cached_tokens: -3 }, completion_tokens_details: { reasoning_tokens: 'x' } })).toEqual({ prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 });
  });

  it('takes Anthropic\'s cache reads and writes as parts of the prompt', () => {
    expect(usageOfAnthropic({ input_tokens: 20, cache_read_input_tokens: 500, cache_creation_input_tokens: 80, output_tokens: 9 })).toEqual({
      prompt_tokens: 600, completion_tokens: 9, total_tokens: 609, prompt_tokens_details: { cached_tokens: 500 }, cache_creation_input_tokens: 80,
    });
  });
});

describe('prices', () => {
  it('prices images per image only where a deployment says so, and holds at the dearest', () => {
    expect(imageCostMicros(pricesOf(deployment({})), 3)).toBe(0);
    expect(imageCostMicros(pricesOf(deployment({ imagePriceMicros: 700 })), 3)).toBe(2_100);
    expect(boundingPrices(route(deployment({ imagePriceMicros: 700 }), deployment({ imagePriceMicros: 900 }))).image).toBe(900);
  });

  it('charges each part at its price, rounded up once', () => {
    const prices = pricesOf(deployment({ cachedInputPricePerMTok: 0.3, cacheWritePricePerMTok: 3.75, reasoningPricePerMTok: 20 }));
    const usage = readUsage({ prompt_tokens: 1000, completion_tokens: 200, prompt_tokens_details: { cached_tokens: 600 }, cache_creation_input_tokens: 100, completion_tokens_details: { reasoning_tokens: 50 } })!;
    // 300 plain x 3 + 600 cached x 0.3 + 100 written x 3.75 + 150 plain out x 15 + 50 reasoning x 20
    expect(usageCostMicros(prices, usage)).toBe(Math.ceil(900 + 180 + 375 + 2250 + 1000));
  });

  it('without part prices, parts cost what plain tokens cost', () => {
    const prices = pricesOf(deployment({}));
    const usage = readUsage({ prompt_tokens: 1000, completion_tokens: 200, prompt_tokens_details: { cached_tokens: 600 }, completion_tokens_details: { reasoning_tokens: 50 } })!;
    expect(usageCostMicros(prices, usage)).toBe(costMicros(prices, 1000, 200));
  });

  it('holds every token at its dearest kind across deployments, so a usage\'s parts never cost more than the hold', () => {
    const r = route(deployment({ cacheWritePricePerMTok: 3.75, cachedInputPricePerMTok: 0.3 }), deployment({ inputPricePerMTok: 2, outputPricePerMTok: 10, reasoningPricePerMTok: 18 }));
    expect(boundingPrices(r)).toEqual({ input: 3.75, output: 18, image: 0 });
    const held = costMicros(boundingPrices(r), 1000, 200);
    for (const d of r.deployments) {
      for (const parts of [{ cached: 0, write: 1000, reasoning: 200 }, { cached: 1000, write: 0, reasoning: 0 }, { cached: 300, write: 300, reasoning: 100 }]) {
        const usage = readUsage({ prompt_tokens: 1000, completion_tokens: 200, prompt_tokens_details: { cached_tokens: parts.cached }, cache_creation_input_tokens: parts.write, completion_tokens_details: { reasoning_tokens: parts.reasoning } })!;
        expect(usageCostMicros(pricesOf(d), usage)).toBeLessThanOrEqual(held);
      }
    }
  });
});

describe('the usage a settle row records', () => {
  const prices = pricesOf(deployment({ cachedInputPricePerMTok: 0.3, cacheWritePricePerMTok: 3.75, reasoningPricePerMTok: 20, imagePriceMicros: 500 }));

  it('takes a reported usage\'s parts, and costs exactly what usageCostMicros and imageCostMicros charge for them', () => {
    const usage = readUsage({ prompt_tokens: 100, completion_tokens: 50, prompt_tokens_details: { cached_tokens: 60 }, completion_tokens_details: { reasoning_tokens: 30 }, cache_creation_input_tokens: 10 })!;
    const priced = pricedUsage(usage, 2);
    expect(priced).toEqual({ promptTokens: 100, completionTokens: 50, cachedTokens: 60, cacheWriteTokens: 10, reasoningTokens: 30, images: 2 });
    expect(pricedCostMicros(prices, priced)).toBe(usageCostMicros(prices, usage) + imageCostMicros(prices, 2));
    // Parts capped as read: a cached count above the prompt is recorded as the prompt.
    expect(pricedUsage(readUsage({ prompt_tokens: 5, completion_tokens: 1, prompt_tokens_details: { cached_tokens: 9 } })!, 0)).toMatchObject({ promptTokens: 5, cachedTokens: 5 });
  });

  it('records counted or estimated tokens without parts, at the plain prices', () => {
    for (const [prompt, completion, images] of [[0, 0, 0], [40, 7, 0], [1_234, 5_678, 3]] as const) {
      const priced = plainUsage(prompt, completion, images);
      expect(priced).toEqual({ promptTokens: prompt, completionTokens: completion, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, images });
      expect(pricedCostMicros(prices, priced)).toBe(costMicros(prices, prompt, completion) + imageCostMicros(prices, images));
    }
  });
});
