// The model table used when no NEMO_CONFIG is given: the built-in mock provider, so that
// `npm start` serves completions on a fresh clone with no keys and no network.
import type { ConfigFile } from './schema.js';

type Models = NonNullable<ConfigFile['models']>;
const mock = (model: string, ttftMs: number, tokensPerSecond: number, completionTokens: number) => ({
  provider: 'mock' as const,
  model,
  inputPricePerMTok: 1,
  outputPricePerMTok: 2,
  maxOutputTokens: 4096,
  weight: 1,
  headers: {},
  mock: { ttftMs, tokensPerSecond, completionTokens, reportUsage: true, fault: 'none' as const },
});

export const DEFAULT_MOCK_MODELS: Models = [
  { name: 'mock-fast', ownedBy: 'nemorouter', deployments: [mock('mock-fast', 0, 0, 16)] },
  { name: 'mock-chat', ownedBy: 'nemorouter', deployments: [mock('mock-chat', 150, 60, 64)] },
  { name: 'mock-long', ownedBy: 'nemorouter', deployments: [mock('mock-long', 300, 120, 512)] },
];
