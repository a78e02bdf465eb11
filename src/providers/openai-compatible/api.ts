// Data for any OpenAI-compatible upstream (OpenAI, vLLM, Groq, Together, Ollama, OpenRouter ...):
// where the endpoint lives and which headers it takes.
import type { Deployment } from '../../config/load.js';
import { perDeployment } from '../per-deployment.js';

export const CHAT_PATH_SUFFIX = '/chat/completions';

/** Endpoint and headers, computed once per deployment; the headers object is shared and never written. */
export const cachedEndpointOf = perDeployment((deployment) => ({
  ...endpointOf(deployment),
  headers: Object.freeze(headersOf(deployment)) as Readonly<Record<string, string>>,
}));

export function endpointOf(deployment: Deployment): { origin: string; path: string } {
  const url = new URL(deployment.baseUrl ?? 'http://mock.invalid/v1');
  return { origin: url.origin, path: url.pathname.replace(/\/+$/, '') + CHAT_PATH_SUFFIX };
}

export function headersOf(deployment: Deployment): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...deployment.headers };
  if (deployment.apiKey) headers.authorization = `Bearer ${deployment.apiKey}`;
  return headers;
}
