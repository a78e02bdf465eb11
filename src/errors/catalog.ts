// The error catalog: every error the gateway can answer with, by stable code.
// Only http/error-response.ts turns these into bodies; the error table in docs/api.md is checked against this list.

export type OpenAiErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'insufficient_quota'
  | 'api_error'
  | 'server_error';

export interface CatalogEntry {
  readonly status: number;
  readonly type: OpenAiErrorType;
  /** The OpenAI-style `code` clients branch on. */
  readonly openaiCode: string;
  readonly message: string;
}

export const ERROR_CATALOG = {
  NR_INVALID_JSON: { status: 400, type: 'invalid_request_error', openaiCode: 'invalid_json', message: 'The request body is not valid JSON.' },
  NR_INVALID_UTF8: { status: 400, type: 'invalid_request_error', openaiCode: 'invalid_encoding', message: 'The request body is not valid UTF-8.' },
  NR_INVALID_REQUEST: { status: 400, type: 'invalid_request_error', openaiCode: 'invalid_request', message: 'The request is invalid.' },
  NR_GUARDRAIL_VIOLATION: { status: 400, type: 'invalid_request_error', openaiCode: 'guardrail_violation', message: 'The request or response was blocked by a guardrail.' },
  NR_UNAUTHORIZED: { status: 401, type: 'authentication_error', openaiCode: 'invalid_api_key', message: 'Missing or invalid API key.' },
  NR_INSUFFICIENT_QUOTA: { status: 402, type: 'insufficient_quota', openaiCode: 'insufficient_quota', message: "Your organization's credits cannot cover this request." },
  NR_SPEND_CAP_REACHED: { status: 402, type: 'insufficient_quota', openaiCode: 'spend_cap_reached', message: 'A spend cap of this key or its team cannot cover this request.' },
  NR_FORBIDDEN: { status: 403, type: 'permission_error', openaiCode: 'forbidden', message: 'This key may not do that.' },
  NR_MODEL_NOT_ALLOWED: { status: 403, type: 'permission_error', openaiCode: 'model_not_allowed', message: 'This key may not use that model.' },
  NR_NOT_FOUND: { status: 404, type: 'not_found_error', openaiCode: 'not_found', message: 'No such object.' },
  NR_MODEL_NOT_FOUND: { status: 404, type: 'invalid_request_error', openaiCode: 'model_not_found', message: 'The model does not exist.' },
  NR_ROUTE_NOT_FOUND: { status: 404, type: 'invalid_request_error', openaiCode: 'unknown_url', message: 'Unknown request URL.' },
  NR_METHOD_NOT_ALLOWED: { status: 405, type: 'invalid_request_error', openaiCode: 'method_not_allowed', message: 'Method not allowed for this URL.' },
  NR_BODY_TOO_LARGE: { status: 413, type: 'invalid_request_error', openaiCode: 'request_too_large', message: 'The request body is too large.' },
  NR_CONFLICT: { status: 409, type: 'invalid_request_error', openaiCode: 'conflict', message: 'The object already exists.' },
  NR_UNSUPPORTED_MEDIA_TYPE: { status: 415, type: 'invalid_request_error', openaiCode: 'unsupported_media_type', message: 'Content-Type must be application/json.' },
  NR_RATE_LIMITED: { status: 429, type: 'rate_limit_error', openaiCode: 'rate_limit_exceeded', message: 'Rate limit reached for this key or team; retry after the time in Retry-After.' },
  NR_UPSTREAM_RATE_LIMITED: { status: 429, type: 'rate_limit_error', openaiCode: 'upstream_rate_limited', message: 'Every upstream deployment for this model is rate limited.' },
  NR_INTERNAL: { status: 500, type: 'server_error', openaiCode: 'internal_error', message: 'Internal gateway error.' },
  NR_GUARDRAIL_POLICY_INVALID: { status: 500, type: 'server_error', openaiCode: 'guardrail_policy_invalid', message: "The guardrail policy in force for this key cannot be used; an org admin must fix it (the org's config, the team's or the key's policy)." },
  NR_UPSTREAM_ERROR: { status: 502, type: 'api_error', openaiCode: 'upstream_error', message: 'The upstream provider failed.' },
  NR_UPSTREAM_BAD_RESPONSE: { status: 502, type: 'api_error', openaiCode: 'upstream_bad_response', message: 'The upstream provider sent a response the gateway could not read.' },
  NR_UPSTREAM_UNAVAILABLE: { status: 503, type: 'api_error', openaiCode: 'upstream_unavailable', message: 'No upstream deployment for this model is reachable.' },
  NR_OVERLOADED: { status: 503, type: 'api_error', openaiCode: 'overloaded', message: 'The gateway is overloaded (guardrail checks could not run in time); retry shortly.' },
  NR_DATABASE_UNAVAILABLE: { status: 503, type: 'api_error', openaiCode: 'database_unavailable', message: 'The database is unavailable; try again shortly.' },
  NR_SHUTTING_DOWN: { status: 503, type: 'api_error', openaiCode: 'shutting_down', message: 'The gateway is shutting down.' },
  NR_UPSTREAM_TIMEOUT: { status: 504, type: 'api_error', openaiCode: 'upstream_timeout', message: 'The upstream provider timed out.' },
} as const satisfies Record<string, CatalogEntry>;

export type ErrorCode = keyof typeof ERROR_CATALOG;
