// The embeddings endpoint of OpenAI-compatible upstreams (and the mock): POST {baseUrl}/embeddings
// with the client's body and the upstream model name; the answer is passed on as it came, read only
// for its shape and its usage.
import type { Deployment } from '../../config/load.js';
import { GatewayError } from '../../errors/gateway-error.js';
import { perDeployment } from '../per-deployment.js';
import type { EmbeddingsApi, EmbeddingsRequest, UpstreamRequest } from '../types.js';
import { upstreamJson } from '../upstream-json.js';
import { cachedEndpointOf } from './api.js';

export const EMBEDDINGS_PATH_SUFFIX = '/embeddings';

const embeddingsEndpointOf = perDeployment((deployment) => {
  const { origin, headers } = cachedEndpointOf(deployment);
  const url = new URL(deployment.baseUrl ?? 'http://mock.invalid/v1');
  return { origin, path: url.pathname.replace(/\/+$/, '') + EMBEDDINGS_PATH_SUFFIX, headers };
});

export function buildEmbeddingsRequest(request: EmbeddingsRequest, deployment: Deployment): UpstreamRequest {
  return upstreamJson(embeddingsEndpointOf(deployment), { ...request, model: deployment.model });
}

/** Where the usage object is looked for, counted back from its key: OpenAI's has two or three counts. */
const MAX_USAGE_CHARS = 4096;
const DATA_KEY = /^\s*\{[^]*?"data"\s*:\s*\[/;
const USAGE_KEY = /^"usage"\s*:\s*/;

/**
 * Checks the shape of a 2xx answer, `{..."data": [...], ..."usage": {"prompt_tokens": N, ...}}`,
 * and returns N when it is a count (undefined without usage). Answers run to megabytes of vectors
 * and only pass through: the usage object alone is parsed, not the whole body (JSON.parse of an
 * 11 MB answer blocks the event loop for over 100 ms). Throws NR_UPSTREAM_BAD_RESPONSE on what is
 * not an embeddings answer.
 */
export function readEmbeddingsPromptTokens(body: string): number | undefined {
  if (!DATA_KEY.test(body) || !body.trimEnd().endsWith('}')) throw new GatewayError('NR_UPSTREAM_BAD_RESPONSE', 'The upstream answer is not an embeddings list.');
  // Vectors hold no strings but base64 (no quotes), so the last "usage" key is the answer's own.
  const at = body.lastIndexOf('"usage"');
  if (at === -1) return undefined;
  const key = USAGE_KEY.exec(body.slice(at, at + 64));
  if (key === null) return undefined;
  const usage = jsonObjectAt(body, at + key[0].length);
  const prompt = (usage as { prompt_tokens?: unknown } | undefined)?.prompt_tokens;
  return typeof prompt === 'number' && Number.isSafeInteger(prompt) && prompt >= 0 ? prompt : undefined;
}

/** The JSON object starting at `start`, parsed, when it ends within MAX_USAGE_CHARS; else undefined. */
function jsonObjectAt(text: string, start: number): unknown {
  if (text.charCodeAt(start) !== 0x7b) return undefined;
  const end = Math.min(text.length, start + MAX_USAGE_CHARS);
  let depth = 0;
  let inString = false;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b) depth++;
    else if (c === 0x7d && --depth === 0) {
      try {
        return JSON.parse(text.slice(start, i + 1));
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

export const openAiEmbeddings: EmbeddingsApi = { buildRequest: buildEmbeddingsRequest, readPromptTokens: readEmbeddingsPromptTokens };
