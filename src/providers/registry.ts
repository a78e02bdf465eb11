// Provider kind -> adapter. Adding a provider is a folder plus one line here.
import type { Deployment } from '../config/load.js';
import { anthropicAdapter } from './anthropic/index.js';
import { mockAdapter } from './mock/index.js';
import { openAiCompatibleAdapter } from './openai-compatible/index.js';
import type { ProviderAdapter } from './types.js';

const ADAPTERS: Readonly<Record<Deployment['provider'], ProviderAdapter>> = {
  'openai-compatible': openAiCompatibleAdapter,
  anthropic: anthropicAdapter,
  mock: mockAdapter,
};

export function adapterFor(deployment: Deployment): ProviderAdapter {
  return ADAPTERS[deployment.provider];
}
