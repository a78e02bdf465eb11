// The legacy completions dialect on its own: one prompt as a user message, text_completion out.
import { describe, expect, it } from 'vitest';
import { openAiCompletionsDialect as dialect } from '../../../../src/http/dialects/openai-completions.js';
import type { Frame } from '../../../../src/http/dialects/dialect.js';
import type { ChatRequest } from '../../../../src/providers/types.js';
import type { KeyPrincipal } from '../../../../src/tenancy/principal.js';

const CTX = { requestId: 'req1', model: 'm', created: 7, clientWantsUsage: false, principal: {} as KeyPrincipal, request: {} as ChatRequest };

describe('legacy completions', () => {
  it('sends one prompt as one user message, with OpenAI\'s default max_tokens of 16', () => {
    expect(dialect.parseRequest(JSON.stringify({ model: 'm', prompt: ['Hi'], temperature: 0.5 }))).toEqual({ model: 'm', messages: [{ role: 'user', content: 'Hi' }], temperature: 0.5, max_tokens: 16 });
  });

  it.each([
    [{ model: 'm' }, 'prompt'],
    [{ model: 'm', prompt: [1, 2] }, 'prompt'],
    [{ model: 'm', prompt: 'x', suffix: 'y' }, 'suffix'],
    [{ model: 'm', prompt: 'x', logprobs: 2 }, 'logprobs'],
    [{ model: 'm', prompt: 'x', n: 2 }, 'n'],
  ])('refuses %j naming %s', (body, param) => {
    expect(() => dialect.parseRequest(JSON.stringify(body))).toThrow(expect.objectContaining({ code: 'NR_INVALID_REQUEST', param }));
  });

  it('streams text_completion chunks, skipping the role-only one, and ends with [DONE]', () => {
    const encoder = dialect.open(CTX).streamEncoder();
    const out: Frame[] = [];
    const chunk = (delta: unknown, finish: string | null) => `data: ${JSON.stringify({ id: 'chatcmpl-9', created: 5, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    encoder.frames([chunk({ role: 'assistant', content: '' }, null), chunk({ content: 'Hi' }, null), chunk({}, 'stop'), 'data: [DONE]\n\n'], out);
    encoder.end(out);
    expect(out.map(String)).toEqual([
      `data: ${JSON.stringify({ id: 'cmpl-9', object: 'text_completion', created: 5, model: 'm', choices: [{ text: 'Hi', index: 0, logprobs: null, finish_reason: null }] })}\n\n`,
      `data: ${JSON.stringify({ id: 'cmpl-9', object: 'text_completion', created: 5, model: 'm', choices: [{ text: '', index: 0, logprobs: null, finish_reason: 'stop' }] })}\n\n`,
      'data: [DONE]\n\n',
    ]);
  });

  it('turns a complete chat answer into a text_completion with its usage', () => {
    const body = JSON.stringify({ id: 'chatcmpl-1', created: 3, choices: [{ message: { role: 'assistant', content: 'Yes' }, finish_reason: 'stop' }], usage: { prompt_tokens: 2, completion_tokens: 1, total_tokens: 3 } });
    expect(JSON.parse(String(dialect.open(CTX).completion(body)))).toEqual({
      id: 'cmpl-1', object: 'text_completion', created: 3, model: 'm',
      choices: [{ text: 'Yes', index: 0, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 2, completion_tokens: 1, total_tokens: 3 },
    });
  });
});
