// The built-in mock provider: OpenAI-compatible on the wire (so the openai-compatible transforms
// apply unchanged), served in-process by one MockDispatcher per deployment instead of a socket.
// One addition: a translated Messages request's `thinking` option goes to the mock in the body.
import type { Deployment } from '../../config/load.js';
import type { MockBehaviour } from '../../config/schema.js';
import { buildRequest, parseResponse } from '../openai-compatible/chat.js';
import { openAiEmbeddings } from '../openai-compatible/embeddings.js';
import { OpenAiStreamTranslator } from '../openai-compatible/stream.js';
import { ANTHROPIC_THINKING, type ChatRequest, type ProviderAdapter, type UpstreamRequest } from '../types.js';
import { MockDispatcher } from './dispatcher.js';

// load.ts fills deployment.mock for every mock deployment; this only guards hand-built ones.
const FALLBACK_BEHAVIOUR: MockBehaviour = { ttftMs: 0, tokensPerSecond: 0, completionTokens: 16, reportUsage: true, fault: 'none' };

const dispatchers = new Map<string, MockDispatcher>();

export const mockAdapter: ProviderAdapter = {
  kind: 'mock',
  passthroughResponse: true,
  buildRequest: buildMockRequest,
  parseResponse,
  createStreamTranslator: (ctx) => new OpenAiStreamTranslator(ctx),
  dispatcherFor: mockDispatcherFor,
  embeddings: openAiEmbeddings,
};

/**
 * An OpenAI-compatible upstream never sees Anthropic's `thinking` option (it rides beside the
 * request under a symbol); the mock does, as a body field, so it can answer with thinking text.
 */
function buildMockRequest(request: ChatRequest, deployment: Deployment, maxTokens: number): UpstreamRequest {
  const thinking = request[ANTHROPIC_THINKING];
  return buildRequest(thinking === undefined ? request : { ...request, thinking }, deployment, maxTokens);
}

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
