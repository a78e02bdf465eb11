import { describe, it, expect } from 'vitest';
import { parseOptions } from '../../../../src/providers/mock/cli.js';
import { behaviourFrom } from '../../../../src/providers/mock/server.js';
import type { MockBehaviour } from '../../../../src/config/schema.js';

describe('mock-upstream options', () => {
  it('defaults to 127.0.0.1:8090 and the schema behaviour', () => {
    const defaults = { ttftMs: 0, tokensPerSecond: 0, completionTokens: 16, reportUsage: true, fault: 'none' };
    expect(parseOptions([])).toEqual({ port: 8090, host: '127.0.0.1', defaults });
  });

  it('reads every flag', () => {
    const args = ['--port', '0', '--host', '0.0.0.0', '--ttft-ms', '20', '--tokens-per-second', '12.5', '--completion-tokens', '64', '--no-usage', '--fault', 'no-done'];
    expect(parseOptions(args)).toEqual({
      port: 0,
      host: '0.0.0.0',
      defaults: { ttftMs: 20, tokensPerSecond: 12.5, completionTokens: 64, reportUsage: false, fault: 'no-done' },
    });
  });

  it('reads the usage-detail flags', () => {
    expect(parseOptions(['--cached-prompt-tokens', '3', '--reasoning-tokens', '0'])).toMatchObject({ defaults: { cachedPromptTokens: 3, reasoningTokens: 0 } });
    expect(parseOptions(['--reasoning-tokens', '-1'])).toMatch(/--reasoning-tokens/);
  });

  it('reads --reasoning-text and names it when wrong', () => {
    expect(parseOptions(['--reasoning-text', 'always'])).toMatchObject({ defaults: { reasoningText: 'always' } });
    expect(parseOptions(['--reasoning-text', 'sometimes'])).toMatch(/--reasoning-text/);
  });

  it('lists every bad value in one message', () => {
    const problems = parseOptions(['--port', '70000', '--ttft-ms=-1', '--completion-tokens', 'x', '--fault', 'boom']);
    expect(typeof problems).toBe('string');
    for (const flag of ['--port', '--ttft-ms', '--completion-tokens', '--fault']) expect(problems).toContain(flag);
  });

  it('rejects unknown flags', () => {
    expect(parseOptions(['--nope'])).toMatch(/nope/);
  });
});

describe('x-mock-* header overrides', () => {
  const defaults: MockBehaviour = { ttftMs: 0, tokensPerSecond: 0, completionTokens: 16, reportUsage: true, fault: 'none' };

  it('returns the defaults object itself when no override is present', () => {
    expect(behaviourFrom({ 'content-type': 'application/json' }, defaults)).toBe(defaults);
  });

  it('applies each header', () => {
    const headers = { 'x-mock-ttft-ms': '5', 'x-mock-tokens-per-second': '100', 'x-mock-completion-tokens': '3', 'x-mock-usage': 'off', 'x-mock-fault': 'http-500' };
    expect(behaviourFrom(headers, defaults)).toEqual({ ttftMs: 5, tokensPerSecond: 100, completionTokens: 3, reportUsage: false, fault: 'http-500' });
  });

  it('applies the usage-detail headers', () => {
    const headers = { 'x-mock-cached-prompt-tokens': '7', 'x-mock-reasoning-tokens': '2' };
    expect(behaviourFrom(headers, defaults)).toEqual({ ...defaults, cachedPromptTokens: 7, reasoningTokens: 2 });
    expect(behaviourFrom({ 'x-mock-reasoning-tokens': '1.5' }, defaults)).toMatch(/x-mock-reasoning-tokens must be a non-negative integer/);
  });

  it('applies x-mock-reasoning-text', () => {
    expect(behaviourFrom({ 'x-mock-reasoning-text': 'never' }, defaults)).toEqual({ ...defaults, reasoningText: 'never' });
    expect(behaviourFrom({ 'x-mock-reasoning-text': 'yes' }, defaults)).toMatch(/x-mock-reasoning-text must be one of when-asked, always, never/);
  });

  it('explains a bad header instead of guessing', () => {
    expect(behaviourFrom({ 'x-mock-completion-tokens': '0' }, defaults)).toMatch(/x-mock-completion-tokens/);
    expect(behaviourFrom({ 'x-mock-fault': 'nope' }, defaults)).toMatch(/x-mock-fault must be one of/);
    expect(behaviourFrom({ 'x-mock-usage': 'yes' }, defaults)).toMatch(/on or off/);
    expect(behaviourFrom({ 'x-mock-ttft-ms': '' }, defaults)).toMatch(/x-mock-ttft-ms/);
  });
});
