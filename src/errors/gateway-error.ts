// The one error class of the gateway: a catalog code, a client-safe message, the offending param.
// `cause` keeps internals for logs; it never reaches a response body.
import { ERROR_CATALOG, type ErrorCode } from './catalog.js';

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly param: string | null;
  /** Seconds, forwarded as Retry-After when set (429s). */
  retryAfterS: number | undefined;
  /** Extra response headers (x-ratelimit-*). */
  headers: Readonly<Record<string, string>> | undefined;

  constructor(code: ErrorCode, message?: string, options?: { param?: string | null; cause?: unknown; retryAfterS?: number; headers?: Record<string, string> }) {
    super(message ?? ERROR_CATALOG[code].message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.status = ERROR_CATALOG[code].status;
    this.param = options?.param ?? null;
    this.retryAfterS = options?.retryAfterS;
    this.headers = options?.headers;
  }
}

/** Catch sites coerce unknowns here: anything not already typed is an internal error. */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  return new GatewayError('NR_INTERNAL', undefined, { cause: err });
}

export function invalidRequest(message: string, param: string | null = null): GatewayError {
  return new GatewayError('NR_INVALID_REQUEST', message, { param });
}
