import { describe, it, expect } from 'vitest';
import { GatewayError } from '../../../src/errors/gateway-error.js';
import { failureFromStatus, failureFromTransport } from '../../../src/providers/upstream-errors.js';

const upstreamBody = (message: string) => JSON.stringify({ error: { message, type: 'invalid_request_error', code: 'x' } });

describe('failureFromStatus', () => {
  it.each([
    ['2', 2],
    ['0', 0],
    ['1.2', 2],
    ['0.01', 1],
    ['120', 120],
  ])('429 with Retry-After %j -> %d seconds', (header, seconds) => {
    const f = failureFromStatus(429, '{}', header);
    expect(f.error.code).toBe('NR_UPSTREAM_RATE_LIMITED');
    expect(f.error.status).toBe(429);
    expect(f.error.retryAfterS).toBe(seconds);
    expect(f).toMatchObject({ retryable: true, coolDown: true });
  });

  it.each([['soon'], ['Wed, 21 Oct 2015 07:28:00 GMT'], ['-5'], ['Infinity'], [''], ['  '], [undefined]])('429 with Retry-After %j -> no retryAfterS', (header) => {
    const f = failureFromStatus(429, '', header);
    expect(f.error.code).toBe('NR_UPSTREAM_RATE_LIMITED');
    expect(f.error.retryAfterS).toBeUndefined();
    expect(f.retryable).toBe(true);
  });

  it.each([500, 502, 503, 529])('%d is a retryable upstream error that cools the deployment down', (status) => {
    const f = failureFromStatus(status, upstreamBody('stack trace at /srv/internal.py'), undefined);
    expect(f.error.code).toBe('NR_UPSTREAM_ERROR');
    expect(f.error.status).toBe(502);
    expect(f.error.message).toContain(String(status));
    expect(f.error.message).not.toContain('internal.py');
    expect(f).toMatchObject({ retryable: true, coolDown: true });
  });

  it('408 is a retryable timeout', () => {
    const f = failureFromStatus(408, '', undefined);
    expect(f.error.code).toBe('NR_UPSTREAM_TIMEOUT');
    expect(f).toMatchObject({ retryable: true, coolDown: true });
  });

  it.each([401, 403, 404])('%d is retryable with cool-down and hides the upstream body', (status) => {
    const body = upstreamBody('Incorrect API key provided: sk-proj-abc123. You can find your key at https://platform.openai.com');
    const f = failureFromStatus(status, body, undefined);
    expect(f.error.code).toBe('NR_UPSTREAM_ERROR');
    expect(f).toMatchObject({ retryable: true, coolDown: true });
    expect(f.error.message).toContain(String(status));
    expect(f.error.message).not.toContain('sk-proj-abc123');
    expect(f.error.message).not.toContain('Incorrect API key');
  });

  it.each([400, 422, 413])('%d is about the request: not retryable, carries the upstream error.message', (status) => {
    const f = failureFromStatus(status, upstreamBody("This model's maximum context length is 8192 tokens."), undefined);
    expect(f.error.code).toBe('NR_INVALID_REQUEST');
    expect(f.error.status).toBe(400);
    expect(f.error.message).toBe("This model's maximum context length is 8192 tokens.");
    expect(f).toMatchObject({ retryable: false, coolDown: false });
  });

  it('reads a string error or a top-level message too', () => {
    expect(failureFromStatus(400, JSON.stringify({ error: 'bad temperature' }), undefined).error.message).toBe('bad temperature');
    expect(failureFromStatus(400, JSON.stringify({ message: 'bad top_p' }), undefined).error.message).toBe('bad top_p');
  });

  it('caps the forwarded upstream message at 2000 characters', () => {
    const f = failureFromStatus(400, upstreamBody('x'.repeat(5000)), undefined);
    expect(f.error.message).toHaveLength(2000);
  });

  it.each([
    ['a non-JSON body', '<html><body>Bad Request from nginx</body></html>'],
    ['an empty body', ''],
    ['JSON without a message', '{"error":{"code":42}}'],
    ['JSON null', 'null'],
  ])('400 with %s gets a generic message', (_name, body) => {
    const f = failureFromStatus(400, body, undefined);
    expect(f.error.code).toBe('NR_INVALID_REQUEST');
    expect(f.error.message).toBe('The upstream provider rejected the request (400).');
    expect(f.retryable).toBe(false);
  });
});

describe('failureFromTransport', () => {
  const withCode = (code: string) => Object.assign(new Error(`socket: ${code}`), { code });

  it.each(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT'])('%s -> NR_UPSTREAM_TIMEOUT', (code) => {
    const err = withCode(code);
    const f = failureFromTransport(err);
    expect(f.error.code).toBe('NR_UPSTREAM_TIMEOUT');
    expect(f.error.status).toBe(504);
    expect(f.error.cause).toBe(err);
    expect(f).toMatchObject({ retryable: true, coolDown: true });
  });

  it.each(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT'])('%s -> NR_UPSTREAM_UNAVAILABLE', (code) => {
    const f = failureFromTransport(withCode(code));
    expect(f.error.code).toBe('NR_UPSTREAM_UNAVAILABLE');
    expect(f.error.status).toBe(503);
    expect(f).toMatchObject({ retryable: true, coolDown: true });
  });

  it.each([
    ['an unknown code', withCode('UND_ERR_SOCKET')],
    ['a plain Error', new Error('other side closed')],
    ['a string', 'boom'],
    ['null', null],
    ['a numeric code', Object.assign(new Error('x'), { code: 111 })],
  ])('%s -> NR_UPSTREAM_ERROR', (_name, err) => {
    const f = failureFromTransport(err);
    expect(f.error.code).toBe('NR_UPSTREAM_ERROR');
    expect(f.error.message).toBe('The upstream provider failed.');
    expect(f.error.cause).toBe(err);
    expect(f).toMatchObject({ retryable: true, coolDown: true });
  });

  it('keeps a GatewayError, retryable only for upstream codes', () => {
    const bad = new GatewayError('NR_UPSTREAM_BAD_RESPONSE');
    expect(failureFromTransport(bad)).toEqual({ error: bad, retryable: true, coolDown: true });
    const internal = new GatewayError('NR_INTERNAL');
    expect(failureFromTransport(internal)).toMatchObject({ error: internal, retryable: false });
  });
});
