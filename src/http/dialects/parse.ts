// Reading a client's body as a JSON object, with the catalog's errors.
import { GatewayError, invalidRequest } from '../../errors/gateway-error.js';

export function parseJsonObject(text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new GatewayError('NR_INVALID_JSON');
  }
  if (!isRecord(parsed)) throw invalidRequest('The request body must be a JSON object.');
  return parsed;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
