// Admin regexes run on V8's linear-time engine: catastrophic patterns complete, non-linear
// constructs are refused at compile time with a message an admin can act on.
import { describe, expect, it } from 'vitest';
import { compilePolicy, scanText } from '../../../src/guardrails/policy.js';
import { compileUserPattern, GuardrailPatternError } from '../../../src/guardrails/user-pattern.js';

function problemOf(source: string): string | undefined {
  try {
    compileUserPattern(source);
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(GuardrailPatternError);
    return (err as GuardrailPatternError).problem;
  }
}

describe('compileUserPattern', () => {
  it('compiles with the global and linear flags, case-sensitive', () => {
    const re = compileUserPattern('ACME-[0-9]+');
    expect(re.flags).toBe('gl');
    expect('x ACME-12 acme-3'.match(re)).toEqual(['ACME-12']);
  });

  it('runs the classic catastrophic pattern (a+)+$ over 100k characters to completion', () => {
    const re = compileUserPattern('(a+)+$');
    expect(re.exec(`${'a'.repeat(100_000)}!`)).toBeNull();
    const result = scanText(compilePolicy({ deny_patterns: ['(a+)+$', '(x+x+)+y'] }), `${'a'.repeat(50_000)}!${'x'.repeat(50_000)}`, 'input');
    expect(result.findings).toEqual([]);
  });

  it.each([
    ['a backreference', '(a)\\1'],
    ['a named backreference', '(?<x>a)\\k<x>'],
    ['a lookahead', 'foo(?=bar)'],
    ['a negative lookbehind', '(?<!x)foo'],
    ['a counted repetition above 16', 'a{2,50}'],
  ])('refuses %s as not linear', (_name, source) => {
    expect(problemOf(source)).toBe('not_linear');
    expect(() => compileUserPattern(source)).toThrow(/cannot run in linear time/);
  });

  it.each([
    ['an unterminated class', '['],
    ['an unbalanced group', '(abc'],
    ['nothing to repeat', '*a'],
  ])('refuses %s as a syntax error, with V8 reason', (_name, source) => {
    expect(problemOf(source)).toBe('syntax');
    expect(() => compileUserPattern(source)).toThrow(/not a valid regular expression: \w/);
  });

  it('refuses Unicode escapes, which would silently mean something else without the u flag', () => {
    expect(problemOf('\\p{L}+')).toBe('unsupported');
    expect(problemOf('\\u{1F600}')).toBe('unsupported');
  });

  it('names the pattern in the message when given a param', () => {
    expect(() => compileUserPattern('(a)\\1', 'deny_patterns[2]')).toThrow(/^deny_patterns\[2\]: The pattern cannot run/);
  });

  it('accepts what the linear engine supports: classes, alternation, anchors, \\b, small counts', () => {
    for (const source of ['\\bproject (x|y)\\b', '^secret', '[A-Z]{3}-\\d{16}', '(?:ab|cd)*e', 'a.*b']) {
      expect(problemOf(source)).toBeUndefined();
    }
  });
});
