// The mock's embeddings endpoint (POST .../embeddings), shared by the in-process dispatcher and the
// standalone server: OpenAI's response shape, each vector a pure function of the model and one
// input (seeded from a SHA-256 of both, unit length), as floats or as base64 float32 bytes.
import { createHash } from 'node:crypto';
import type { MockBehaviour } from '../../config/schema.js';
import { ABSURD_COMPLETION_TOKENS, failedUpfront, jsonAnswer, jsonResponse, mockErrorBody, type MockResponse } from './generate.js';

export const MOCK_EMBEDDING_DIMENSIONS = 256;
/** Above OpenAI's largest (3072) and common open models' (4096). */
export const MAX_MOCK_EMBEDDING_DIMENSIONS = 8192;
/** OpenAI's limit of inputs per request. */
export const MAX_EMBEDDING_INPUTS = 2048;

/** One input: a text, or the token ids of one. */
export type EmbeddingInput = string | readonly number[];

/** The unit vector of `input` under `model`: the same arguments always give the same floats. */
export function mockEmbedding(model: string, input: EmbeddingInput, dimensions: number): Float32Array {
  const seed = createHash('sha256').update(model).update('\0').update(typeof input === 'string' ? `s${input}` : `t${input.join(',')}`).digest();
  const next = sfc32(seed.readUInt32LE(0), seed.readUInt32LE(4), seed.readUInt32LE(8), seed.readUInt32LE(12));
  const raw = new Float64Array(dimensions);
  let sumOfSquares = 0;
  for (let i = 0; i < dimensions; i++) {
    const x = next() / 2 ** 31 - 1; // [-1, 1)
    raw[i] = x;
    sumOfSquares += x * x;
  }
  const norm = Math.sqrt(sumOfSquares) || 1;
  const vector = new Float32Array(dimensions);
  for (let i = 0; i < dimensions; i++) vector[i] = raw[i]! / norm;
  return vector;
}

/** OpenAI's base64 form: the float32 values' little-endian bytes. */
export function base64Floats(vector: Float32Array): string {
  const bytes = Buffer.allocUnsafe(vector.length * 4);
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i]!, i * 4);
  return bytes.toString('base64');
}

/** Prompt tokens as the chat mock counts them: ceil(UTF-8 bytes / 4) of the texts, plus token inputs one each; at least 1. */
export function mockEmbeddingTokens(inputs: readonly EmbeddingInput[]): number {
  let bytes = 0;
  let tokens = 0;
  for (const input of inputs) {
    if (typeof input === 'string') bytes += Buffer.byteLength(input);
    else tokens += input.length;
  }
  return Math.max(1, Math.ceil(bytes / 4) + tokens);
}

/** The whole answer to one embeddings request, fault included. */
export function planMockEmbeddings(body: Record<string, unknown>, behaviour: MockBehaviour): MockResponse {
  const failed = failedUpfront(behaviour);
  if (failed !== undefined) return failed;
  const request = readRequest(body);
  if (typeof request === 'string') return jsonResponse(400, mockErrorBody(request, 'invalid_request_error', 'invalid_request'));
  const { model, inputs, dimensions, base64 } = request;
  const data = inputs.map((input, index) => {
    const vector = mockEmbedding(model, input, dimensions);
    const embedding = base64 ? `"${base64Floats(vector)}"` : `[${vector.join(',')}]`;
    return `{"object":"embedding","index":${index},"embedding":${embedding}}`;
  });
  const promptTokens = behaviour.fault === 'absurd-usage' ? ABSURD_COMPLETION_TOKENS : mockEmbeddingTokens(inputs);
  const usage = behaviour.reportUsage ? `,"usage":{"prompt_tokens":${promptTokens},"total_tokens":${promptTokens}}` : '';
  const json = `{"object":"list","data":[${data.join(',')}],"model":${JSON.stringify(model)}${usage}}`;
  return jsonAnswer(json, behaviour.ttftMs, behaviour.fault);
}

interface MockEmbeddingsRequest {
  model: string;
  inputs: EmbeddingInput[];
  dimensions: number;
  base64: boolean;
}

/** The request's facts, or what is wrong with it (as OpenAI would refuse it). */
function readRequest(body: Record<string, unknown>): MockEmbeddingsRequest | string {
  const inputs = readInputs(body.input);
  if (typeof inputs === 'string') return inputs;
  const { dimensions = MOCK_EMBEDDING_DIMENSIONS, encoding_format: format = 'float' } = body;
  if (!Number.isInteger(dimensions) || (dimensions as number) < 1 || (dimensions as number) > MAX_MOCK_EMBEDDING_DIMENSIONS) {
    return `dimensions must be an integer from 1 to ${MAX_MOCK_EMBEDDING_DIMENSIONS}.`;
  }
  if (format !== 'float' && format !== 'base64') return "encoding_format must be 'float' or 'base64'.";
  return { model: typeof body.model === 'string' ? body.model : 'mock', inputs, dimensions: dimensions as number, base64: format === 'base64' };
}

function readInputs(input: unknown): EmbeddingInput[] | string {
  if (typeof input === 'string') return [input];
  if (!Array.isArray(input) || input.length === 0) return 'input must be a string or a non-empty array.';
  if (input.length > MAX_EMBEDDING_INPUTS) return `input may hold at most ${MAX_EMBEDDING_INPUTS} items.`;
  // One token array, or a list of strings or token arrays.
  if (isTokens(input)) return [input];
  for (const item of input) {
    if (typeof item !== 'string' && !(Array.isArray(item) && item.length > 0 && isTokens(item))) return 'input items must be strings or non-empty arrays of token ids.';
  }
  return input as EmbeddingInput[];
}

function isTokens(items: readonly unknown[]): items is number[] {
  return items.every((t) => Number.isInteger(t) && (t as number) >= 0);
}

/** sfc32: a small, fast PRNG with a 128-bit state; uint32 out. */
function sfc32(a: number, b: number, c: number, d: number): () => number {
  return () => {
    a |= 0;
    b |= 0;
    c |= 0;
    d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
}
