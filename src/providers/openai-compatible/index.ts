// The OpenAI-compatible adapter: the base every OpenAI-speaking provider reuses.
import type { ProviderAdapter } from '../types.js';
import { buildRequest, parseResponse } from './chat.js';
import { openAiEmbeddings } from './embeddings.js';
import { OpenAiStreamTranslator } from './stream.js';

export const openAiCompatibleAdapter: ProviderAdapter = {
  kind: 'openai-compatible',
  passthroughResponse: true,
  buildRequest,
  parseResponse,
  createStreamTranslator: (ctx) => new OpenAiStreamTranslator(ctx),
  embeddings: openAiEmbeddings,
};
