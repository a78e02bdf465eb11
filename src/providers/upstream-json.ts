// A provider request's JSON body and headers: a large body goes as chunks, with its length.
import { jsonBody } from '../json/chunked-body.js';
import type { UpstreamRequest } from './types.js';

export function upstreamJson(
  endpoint: { readonly origin: string; readonly path: string; readonly headers: Readonly<Record<string, string>> },
  value: Record<string, unknown>,
  omitKey?: string,
): UpstreamRequest {
  const { body, bytes } = jsonBody(value, omitKey);
  const headers = bytes === undefined ? endpoint.headers : { ...endpoint.headers, 'content-length': String(bytes) };
  return { origin: endpoint.origin, path: endpoint.path, headers, body };
}
