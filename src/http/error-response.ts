// The only place an error becomes a body: OpenAI-shaped JSON for plain responses and a final
// SSE `error` event once a stream has started. 5xx bodies carry the catalog message, never internals.
import { ERROR_CATALOG } from '../errors/catalog.js';
import type { GatewayError } from '../errors/gateway-error.js';

export function errorJson(err: GatewayError): string {
  const entry = ERROR_CATALOG[err.code];
  return JSON.stringify({ error: { message: clientMessage(err), type: entry.type, param: err.param, code: entry.openaiCode, nemo_code: err.code } });
}

/** What a client may read of an error, in any wire format: the catalog message for the gateway's own faults. */
export function clientMessage(err: GatewayError): string {
  return err.status >= 500 && err.code !== 'NR_UPSTREAM_ERROR' ? ERROR_CATALOG[err.code].message : clientSafe(err.message);
}

/**
 * Secrets no error body may carry: the upstream API keys and the master key. Upstream messages are
 * passed on (a 4xx about the request, an error event mid-stream), and a provider that echoes the
 * key it was called with would otherwise hand the gateway's key to any client.
 */
const secrets = new Set<string>();
const MIN_SECRET_CHARS = 8;
/** Lines of a stack trace (`    at fn (file:1:2)`) some upstreams put in their messages. */
const STACK_FRAMES = /(?:\r?\n[ \t]*at [^\n]*)+/g;

/** Registers secrets to cut out of every error message from now on. */
export function redactFromErrors(values: Iterable<string | undefined>): void {
  for (const value of values) if (value !== undefined && value.length >= MIN_SECRET_CHARS) secrets.add(value);
}

function clientSafe(message: string): string {
  let safe = message;
  for (const secret of secrets) if (safe.includes(secret)) safe = safe.split(secret).join('[redacted]');
  return safe.replace(STACK_FRAMES, '');
}

export function sseErrorFrame(err: GatewayError): string {
  return `event: error\ndata: ${errorJson(err)}\n\n`;
}

const STATUS_LINES: Record<number, string> = {
  200: '200 OK',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  402: '402 Payment Required',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  409: '409 Conflict',
  408: '408 Request Timeout',
  413: '413 Payload Too Large',
  415: '415 Unsupported Media Type',
  429: '429 Too Many Requests',
  500: '500 Internal Server Error',
  502: '502 Bad Gateway',
  503: '503 Service Unavailable',
  504: '504 Gateway Timeout',
};

export function statusLine(status: number): string {
  return STATUS_LINES[status] ?? `${status} Status`;
}
