import { describe, it, expect } from 'vitest';
import { anthropicAdapter, mapAnthropicError } from '../../../../src/providers/anthropic/index.js';

describe('anthropicAdapter', () => {
  it('is the anthropic kind and leaves dispatching to the gateway pools', () => {
    expect(anthropicAdapter.kind).toBe('anthropic');
    expect(anthropicAdapter.dispatcherFor).toBeUndefined();
    const translator = anthropicAdapter.createStreamTranslator({ requestId: 'r', publicModel: 'm', created: 1, clientWantsUsage: false });
    expect(translator.finished).toBe(false);
    expect(translator.usage).toBeUndefined();
    expect(translator.completionChars).toBe(0);
  });
});

describe('mapAnthropicError', () => {
  it('reads the type and message of an Anthropic error body', () => {
    const body = '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011"}';
    expect(mapAnthropicError(529, body)).toBe('overloaded_error: Overloaded');
    expect(mapAnthropicError(400, '{"type":"error","error":{"message":"max_tokens: too large"}}')).toBe('max_tokens: too large');
  });

  it('falls back to the status for bodies that are not Anthropic errors', () => {
    expect(mapAnthropicError(502, '<html>Bad Gateway</html>')).toBe('Anthropic responded with HTTP 502');
    expect(mapAnthropicError(500, '{"error":"boom"}')).toBe('Anthropic responded with HTTP 500');
    expect(mapAnthropicError(503, '')).toBe('Anthropic responded with HTTP 503');
  });
});
