import { describe, expect, it } from 'vitest';
import { requestLogRow, type ChatOutcome } from '../../../../src/http/chat/log-row.js';
import type { Finding } from '../../../../src/guardrails/types.js';
import { chatRequest, principal } from './fakes.js';

function outcome(patch: Partial<ChatOutcome> = {}): ChatOutcome {
  return {
    requestId: 'req-1',
    principal: principal({ teamId: 'team-1', logRetentionDays: 90 }),
    model: 'paid',
    deploymentId: 'paid-a',
    clientGone: false,
    status: 200,
    errorCode: null,
    request: chatRequest(),
    usage: { prompt_tokens: 11, completion_tokens: 22, total_tokens: 33 },
    chargedMicros: 55,
    latencyMs: 12.5,
    ttftMs: 3.25,
    findings: [],
    requestText: undefined,
    answerText: undefined,
    streamText: undefined,
    ...patch,
  };
}

const full = principal({ loggingLevel: 'full' });

describe('requestLogRow', () => {
  it('carries the request, its principal, usage, charge and timings', () => {
    const o = outcome();
    expect(requestLogRow(o)).toEqual({
      requestId: 'req-1',
      orgId: o.principal.orgId,
      teamId: 'team-1',
      keyId: o.principal.keyId,
      model: 'paid',
      deployment: 'paid-a',
      status: 200,
      statusClass: '2xx',
      errorCode: null,
      stream: false,
      promptTokens: 11,
      completionTokens: 22,
      // No parts reported: none recorded.
      cachedTokens: null,
      cacheWriteTokens: null,
      reasoningTokens: null,
      costMicros: 55,
      latencyMs: 12.5,
      ttftMs: 3.25,
      guardrailAction: 'none',
      guardrailRules: [],
      retentionDays: 90,
    });
  });

  it('logs 499 client_closed when the client left, whatever status was set', () => {
    const row = requestLogRow(outcome({ clientGone: true, status: 200 }));
    expect(row.status).toBe(499);
    expect(row.statusClass).toBe('client_closed');
    expect(requestLogRow(outcome({ clientGone: true, status: 502, errorCode: 'NR_UPSTREAM_ERROR' }))).toMatchObject({ status: 499, statusClass: 'client_closed' });
  });

  it('records the usage parts the upstream reported', () => {
    const usage = { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120, prompt_tokens_details: { cached_tokens: 60 }, cache_creation_input_tokens: 10, completion_tokens_details: { reasoning_tokens: 5 } };
    expect(requestLogRow(outcome({ usage }))).toMatchObject({ promptTokens: 100, completionTokens: 20, cachedTokens: 60, cacheWriteTokens: 10, reasoningTokens: 5 });
  });

  it('logs an error with its status class and code, and nulls for what never happened', () => {
    const row = requestLogRow(outcome({ status: 402, errorCode: 'NR_INSUFFICIENT_QUOTA', model: undefined, deploymentId: undefined, usage: undefined, chargedMicros: null, ttftMs: null, request: undefined }));
    expect(row).toMatchObject({ status: 402, statusClass: '4xx', errorCode: 'NR_INSUFFICIENT_QUOTA', model: null, deployment: null, promptTokens: null, completionTokens: null, costMicros: null, ttftMs: null, stream: false });
    expect(requestLogRow(outcome({ status: 503 })).statusClass).toBe('5xx');
  });

  it('marks a stream', () => {
    expect(requestLogRow(outcome({ request: chatRequest({ stream: true }) })).stream).toBe(true);
  });

  it('carries no bodies below full logging', () => {
    const row = requestLogRow(outcome({ requestText: '{"raw":true}', answerText: '{"answer":true}', streamText: 'text' }));
    expect(row).not.toHaveProperty('requestBody');
    expect(row).not.toHaveProperty('responseBody');
    expect(requestLogRow(outcome({ principal: principal({ loggingLevel: 'none' }), requestText: 'x', answerText: 'y' }))).not.toHaveProperty('requestBody');
  });

  it('at full logs the body as received and the answer as sent', () => {
    const row = requestLogRow(outcome({ principal: full, requestText: '{ "model" : "paid" }', answerText: '{"id":"a"}' }));
    expect(row.requestBody).toBe('{ "model" : "paid" }');
    expect(row.responseBody).toBe('{"id":"a"}');
  });

  it('at full logs a redacted request as its redacted JSON, never the raw text', () => {
    // The exchange drops the received text once the input guardrails changed the request.
    const request = chatRequest({ messages: [{ role: 'user', content: 'mail [REDACTED:EMAIL] now' }] });
    const row = requestLogRow(outcome({ principal: full, request, requestText: undefined }));
    expect(row.requestBody).toBe(JSON.stringify(request));
    expect(row.requestBody).toContain('[REDACTED:EMAIL]');
  });

  it("at full logs a stream's generated text, and only for a stream", () => {
    expect(requestLogRow(outcome({ principal: full, request: chatRequest({ stream: true }), streamText: 'generated' })).responseBody).toBe('generated');
    expect(requestLogRow(outcome({ principal: full, streamText: 'generated' })).responseBody).toBeNull();
    expect(requestLogRow(outcome({ principal: full, request: chatRequest({ stream: true }) })).responseBody).toBeNull();
    expect(requestLogRow(outcome({ principal: full, request: undefined })).requestBody).toBeNull();
  });

  it('logs the strongest guardrail action and each rule once', () => {
    const f = (rule: string, action: Finding['action']): Finding => ({ rule, action, start: 0, end: 1 });
    expect(requestLogRow(outcome({ findings: [f('pii:email', 'flag'), f('pii:phone', 'redact'), f('pii:email', 'flag')] }))).toMatchObject({ guardrailAction: 'redact', guardrailRules: ['pii:email', 'pii:phone'] });
    expect(requestLogRow(outcome({ findings: [f('pii:email', 'redact'), f('deny_word:0', 'block'), f('injection:x', 'flag')] })).guardrailAction).toBe('block');
    expect(requestLogRow(outcome({ findings: [f('injection:x', 'flag')] })).guardrailAction).toBe('flag');
  });
});
