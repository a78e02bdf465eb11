// The built-in mock provider: OpenAI-compatible on the wire (so the openai-compatible transforms
// apply unchanged), served in-process by one MockDispatcher per deployment instead of a socket.
import type { Deployment } from '../../config/load.js';
import type { MockBehaviour } from '../../config/schema.js';
import { buildRequest, parseResponse } from '../openai-compatible/chat.js';
import { openAiEmbeddings } from '../openai-compatible/embeddings.js';
import { OpenAiStreamTranslator } from '../openai-compatible/stream.js';
import type { ProviderAdapter } from '../types.js';
import { MockDispatcher } from './dispatcher.js';

// load.ts fills deployment.mock for every mock deployment; this only guards hand-built ones.
const FALLBACK_BEHAVIOUR: MockBehaviour = { ttftMs: 0, tokensPerSecond: 0, completionTokens: 16, reportUsage: true, fault: 'none' };

const dispatchers = new Map<string, MockDispatcher>();

export const mockAdapter: ProviderAdapter = {
  kind: 'mock',
  passthroughResponse: true,
  buildRequest,
  parseResponse,
  createStreamTranslator: (ctx) => new OpenAiStreamTranslator(ctx),
  dispatcherFor: mockDispatcherFor,
  embeddings: openAiEmbeddings,
};

/**
 * Cached by deployment id so its stats accumulate across requests; a config with other behaviour
 * under the same id (a reload, a second gateway in one test) gets a fresh dispatcher.
 */
export function mockDispatcherFor(deployment: Deployment): MockDispatcher {
  const behaviour = deployment.mock ?? FALLBACK_BEHAVIOUR;
  let dispatcher = dispatchers.get(deployment.id);
  if (dispatcher === undefined || dispatcher.behaviour !== behaviour) {
    dispatcher = new MockDispatcher(behaviour);
    dispatchers.set(deployment.id, dispatcher);
  }
  return dispatcher;
}
