// Small helpers that write a whole response on a uWS HttpResponse. Callers that answer after an
// await must be inside res.cork(); these helpers cork themselves so every caller is safe.
import { GatewayError } from '../errors/gateway-error.js';
import { log } from '../log.js';
import { errorJson, statusLine } from './error-response.js';
import type { HttpResponse } from './server-api.js';

export const JSON_TYPE = 'application/json';
const JSON_CONTENT_TYPE = /^application\/json\s*(;|$)/i;

/** `application/json`, with or without parameters such as a charset. */
export function isJsonContentType(contentType: string): boolean {
  return JSON_CONTENT_TYPE.test(contentType);
}

export function sendJson(res: HttpResponse, status: number, body: string | Uint8Array, requestId: string, extraHeaders?: Record<string, string>): void {
  res.cork(() => {
    res.writeStatus(statusLine(status)).writeHeader('content-type', JSON_TYPE).writeHeader('x-request-id', requestId);
    if (extraHeaders) for (const name in extraHeaders) res.writeHeader(name, extraHeaders[name]!);
    res.end(body);
  });
}

/** An error answer; `body` is its wire format (OpenAI's error JSON unless a route speaks another). */
export function sendError(res: HttpResponse, err: GatewayError, requestId: string, closeConnection = false, extraHeaders?: Record<string, string>, body: string = errorJson(err)): void {
  logServerFault(err, requestId);
  res.cork(() => {
    // uWS fixes the status line at the first header written: the status always goes first.
    res.writeStatus(statusLine(err.status)).writeHeader('content-type', JSON_TYPE).writeHeader('x-request-id', requestId);
    if (extraHeaders) for (const name in extraHeaders) res.writeHeader(name, extraHeaders[name]!);
    if (err.retryAfterS !== undefined) res.writeHeader('retry-after', String(err.retryAfterS));
    if (err.headers) for (const name in err.headers) res.writeHeader(name, err.headers[name]!);
    if (err.code === 'NR_UNAUTHORIZED') res.writeHeader('www-authenticate', 'Bearer');
    res.end(body, closeConnection);
  });
}

/** Faults of the gateway itself are logged with their cause; the client only sees the catalog message. */
export function logServerFault(err: GatewayError, requestId: string): void {
  if (err.code !== 'NR_INTERNAL' && err.code !== 'NR_DATABASE_UNAVAILABLE') return;
  const cause = err.cause instanceof Error ? { cause: err.cause.message, causeCode: (err.cause as { code?: unknown }).code, stack: err.cause.stack } : { cause: String(err.cause) };
  log.error('request failed', { requestId, code: err.code, ...cause });
}
