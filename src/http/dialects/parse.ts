// Reading a client's body as JSON, with the catalog's errors.
import { isUtf8 } from 'node:buffer';
import { GatewayError, invalidRequest } from '../../errors/gateway-error.js';
import { parseJsonBytes } from '../../json/parse-bytes.js';

/**
 * The body as received (its bytes: checked as UTF-8, a large one parsed piece by piece) or as text.
 * `receivedBy`: the body goes upstream as it is (OpenAI chat), for this org: its elements keep their
 * bytes (json/verbatim.ts) and their parse is cached (json/parsed-elements.ts); a dialect that
 * translates would only copy them for nothing.
 */
export function parseJsonBody(body: string | Uint8Array, receivedBy?: string): unknown {
  if (typeof body !== 'string' && !isUtf8(body)) throw new GatewayError('NR_INVALID_UTF8');
  try {
    return typeof body === 'string' ? JSON.parse(body) : parseJsonBytes(body, receivedBy);
  } catch {
    throw new GatewayError('NR_INVALID_JSON');
  }
}

export function parseJsonObject(body: string | Uint8Array): Record<string, unknown> {
  const parsed = parseJsonBody(body);
  if (!isRecord(parsed)) throw invalidRequest('The request body must be a JSON object.');
  return parsed;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
