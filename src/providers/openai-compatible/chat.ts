// Request and non-stream response transforms for OpenAI-compatible upstreams: the body goes
// through as the client sent it, with the upstream model name, the output bound and the
// usage request set by the gateway.
import type { Deployment } from '../../config/load.js';
import { GatewayError } from '../../errors/gateway-error.js';
import { GATEWAY_CACHE_MARKS, type ChatCompletion, type ChatRequest, type TranslateContext, type UpstreamRequest } from '../types.js';
import { upstreamJson } from '../upstream-json.js';
import { cachedEndpointOf } from './api.js';

export function buildRequest(request: ChatRequest, deployment: Deployment, maxTokens: number): UpstreamRequest {
  const body: ChatRequest = { ...request, model: deployment.model };
  // Newer OpenAI models only take max_completion_tokens; keep whichever field the client used. Only
  // one goes up, set to the bound the hold pays for: a client's second field is never passed on.
  if (request.max_completion_tokens != null) {
    body.max_completion_tokens = maxTokens;
    delete body.max_tokens;
  } else {
    body.max_tokens = maxTokens;
  }
  // Always ask for usage: settlement needs it; the chunk is stripped if the client did not ask.
  if (request.stream === true) body.stream_options = { ...request.stream_options, include_usage: true };
  // The gateway's own prompt-caching marks stay out of an OpenAI body.
  return upstreamJson(cachedEndpointOf(deployment), body as unknown as Record<string, unknown>, request[GATEWAY_CACHE_MARKS] === true ? 'cache_control' : undefined);
}

export function parseResponse(json: unknown, _ctx: TranslateContext): ChatCompletion {
  if (!isCompletion(json)) throw new GatewayError('NR_UPSTREAM_BAD_RESPONSE');
  return json;
}

function isCompletion(json: unknown): json is ChatCompletion {
  if (typeof json !== 'object' || json === null) return false;
  const choices = (json as { choices?: unknown }).choices;
  return Array.isArray(choices);
}
