// Validates a POST /v1/embeddings body by hand, as validate-chat-request.ts does for chat: what the
// gateway needs (model, input) and what an upstream would only refuse later (encoding_format,
// dimensions). Unknown fields pass through to the upstream untouched.
import { GatewayError, invalidRequest } from '../../errors/gateway-error.js';
import type { EmbeddingsRequest } from '../../providers/types.js';
import { refuseCaseVariantKeys } from '../case-variant-keys.js';
import { parseJsonBody } from '../dialects/parse.js';

/** OpenAI's limit of inputs per request. */
export const MAX_EMBEDDING_INPUTS = 2048;

/** One input as the gateway reads it: a text, or one text's token ids. */
export type EmbeddingInput = string | readonly number[];

export function parseEmbeddingsRequest(body: string | Uint8Array): EmbeddingsRequest {
  return validateEmbeddingsRequest(parseJsonBody(body));
}

export function validateEmbeddingsRequest(body: unknown): EmbeddingsRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalidRequest('The request body must be a JSON object.');
  const b = body as Record<string, unknown>;
  refuseCaseVariantKeys(b, null);
  if (typeof b.model !== 'string' || b.model.length === 0) throw invalidRequest('`model` must be a non-empty string.', 'model');
  validateInput(b.input);
  // null is absent, as in chat; an upstream may refuse an explicit null, so it is not sent on.
  if (b.encoding_format === null) delete b.encoding_format;
  else if (b.encoding_format !== undefined && b.encoding_format !== 'float' && b.encoding_format !== 'base64') {
    throw invalidRequest("`encoding_format` must be 'float' or 'base64'.", 'encoding_format');
  }
  if (b.dimensions === null) delete b.dimensions;
  else if (b.dimensions !== undefined && !(Number.isSafeInteger(b.dimensions) && (b.dimensions as number) > 0)) {
    throw invalidRequest('`dimensions` must be a positive integer.', 'dimensions');
  }
  if (b.user != null && typeof b.user !== 'string') throw invalidRequest('`user` must be a string.', 'user');
  return b as EmbeddingsRequest;
}

/** The request's inputs one by one: a single token array is one input, as OpenAI reads it. */
export function inputsOf(request: EmbeddingsRequest): EmbeddingInput[] {
  const { input } = request;
  if (typeof input === 'string') return [input];
  if (input.length > 0 && typeof input[0] === 'number') return [input as number[]];
  return input as EmbeddingInput[];
}

/**
 * A non-empty string, or a non-empty array of at most MAX_EMBEDDING_INPUTS items, all of one kind:
 * non-empty strings, token ids (one input), or non-empty arrays of token ids.
 */
function validateInput(input: unknown): void {
  if (typeof input === 'string') {
    if (input.length === 0) throw invalidRequest('`input` must not be empty.', 'input');
    return;
  }
  if (!Array.isArray(input)) throw invalidRequest('`input` must be a string, an array of strings, or an array of token arrays.', 'input');
  if (input.length === 0) throw invalidRequest('`input` must not be empty.', 'input');
  if (input.length > MAX_EMBEDDING_INPUTS) throw invalidRequest(`\`input\` may hold at most ${MAX_EMBEDDING_INPUTS} items.`, 'input');
  const first: unknown = input[0];
  if (typeof first === 'number') {
    if (!isTokenIds(input)) throw invalidRequest('`input` as token ids must hold only non-negative integers.', 'input');
    return;
  }
  const strings = typeof first === 'string';
  for (let i = 0; i < input.length; i++) {
    const item: unknown = input[i];
    const at = `input[${i}]`;
    if (strings) {
      if (typeof item !== 'string') throw invalidRequest(`${at} must be a string, like the other items.`, at);
      if (item.length === 0) throw invalidRequest(`${at} must not be empty.`, at);
    } else {
      if (!Array.isArray(item) || item.length === 0) throw invalidRequest(`${at} must be a string or a non-empty array of token ids.`, at);
      if (!isTokenIds(item)) throw invalidRequest(`${at} must hold only non-negative integers.`, at);
    }
  }
}

function isTokenIds(items: readonly unknown[]): boolean {
  for (const t of items) if (!Number.isSafeInteger(t) || (t as number) < 0) return false;
  return true;
}
