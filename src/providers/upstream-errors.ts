// Classifies a failed upstream attempt: what the client is told, and whether the next
// deployment may be tried (only before the first byte reached the client).
import { GatewayError } from '../errors/gateway-error.js';

export interface AttemptFailure {
  error: GatewayError;
  /** Another deployment may serve this request. */
  retryable: boolean;
  /** The deployment itself is unhealthy and should cool down. */
  coolDown: boolean;
}

/** A non-2xx upstream answer. The upstream's own message reaches the client only for its 4xx about the request. */
export function failureFromStatus(status: number, body: string, retryAfter: string | undefined): AttemptFailure {
  if (status === 429) {
    // Delta-seconds only; an HTTP-date or garbage is dropped rather than read as "retry now".
    const retryAfterS = retryAfter !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(retryAfter) ? Math.ceil(Number(retryAfter)) : undefined;
    return { error: new GatewayError('NR_UPSTREAM_RATE_LIMITED', undefined, { retryAfterS }), retryable: true, coolDown: true };
  }
  if (status === 408) return { error: new GatewayError('NR_UPSTREAM_TIMEOUT'), retryable: true, coolDown: true };
  if (status >= 500) return { error: new GatewayError('NR_UPSTREAM_ERROR', `The upstream provider answered ${status}.`), retryable: true, coolDown: true };
  // 401/403/404 mean this deployment is misconfigured (key, model name): another may work.
  if (status === 401 || status === 403 || status === 404) {
    return { error: new GatewayError('NR_UPSTREAM_ERROR', `The upstream provider refused the gateway's request (${status}).`), retryable: true, coolDown: true };
  }
  // Other 4xx are about the request itself (e.g. context too long): every deployment would say the same.
  const message = upstreamMessage(body) ?? `The upstream provider rejected the request (${status}).`;
  return { error: new GatewayError('NR_INVALID_REQUEST', message), retryable: false, coolDown: false };
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT']);

/** A transport error: timeouts, refused connections, sockets closed mid-response. */
export function failureFromTransport(err: unknown): AttemptFailure {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && TIMEOUT_CODES.has(code)) {
    return { error: new GatewayError('NR_UPSTREAM_TIMEOUT', undefined, { cause: err }), retryable: true, coolDown: true };
  }
  if (typeof code === 'string' && UNREACHABLE_CODES.has(code)) {
    return { error: new GatewayError('NR_UPSTREAM_UNAVAILABLE', undefined, { cause: err }), retryable: true, coolDown: true };
  }
  if (err instanceof GatewayError) return { error: err, retryable: err.code.startsWith('NR_UPSTREAM'), coolDown: true };
  return { error: new GatewayError('NR_UPSTREAM_ERROR', undefined, { cause: err }), retryable: true, coolDown: true };
}

function upstreamMessage(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown };
    if (typeof parsed.error === 'object' && typeof parsed.error?.message === 'string') return parsed.error.message.slice(0, 2000);
    if (typeof parsed.error === 'string') return parsed.error.slice(0, 2000);
    if (typeof parsed.message === 'string') return parsed.message.slice(0, 2000);
  } catch {
    // not JSON
  }
  return undefined;
}
