// Admin-written regular expressions (deny_patterns), compiled for V8's linear-time engine so no
// pattern can backtrack catastrophically on a hostile prompt. The engine is behind a V8 flag set
// once, process-wide, when this module loads (worker threads share the process's flags).
import v8 from 'node:v8';

v8.setFlagsFromString('--enable-experimental-regexp-engine');

export type PatternProblem = 'syntax' | 'not_linear' | 'unsupported';

/** A deny pattern that cannot be used; the admin API answers 400 with this message at save time. */
export class GuardrailPatternError extends Error {
  readonly problem: PatternProblem;
  /** Which pattern, when known: `deny_patterns[3]`. */
  readonly param: string | null;

  constructor(problem: PatternProblem, message: string, param: string | null = null) {
    super(param === null ? message : `${param}: ${message}`);
    this.name = 'GuardrailPatternError';
    this.problem = problem;
    this.param = param;
  }
}

const NOT_LINEAR =
  'The pattern cannot run in linear time. Backreferences (\\1), lookahead and lookbehind ((?=, (?!, (?<=, (?<!) ' +
  'and counted repetition above 16 (a{17}, a{2,50}) are not supported; use * or + instead of large counts.';
// Without the u flag (which the linear engine refuses) these escapes silently mean something else.
const UNICODE_ESCAPE = /\\[pP]\{|\\u\{/;

let linearEngine: boolean | undefined;
function hasLinearEngine(): boolean {
  if (linearEngine === undefined) {
    try {
      new RegExp('a', 'l');
      linearEngine = true;
    } catch {
      linearEngine = false;
    }
  }
  return linearEngine;
}

/**
 * Compiles `source` with flags `gl` (global, linear). Patterns are case-sensitive: this V8 refuses
 * the i and u flags together with l. Throws GuardrailPatternError for an invalid or non-linear pattern.
 */
export function compileUserPattern(source: string, param: string | null = null): RegExp {
  // Fail closed rather than fall back to the backtracking engine.
  if (!hasLinearEngine()) throw new Error('The V8 linear-time regexp engine is unavailable in this Node.js build.');
  if (UNICODE_ESCAPE.test(source)) {
    throw new GuardrailPatternError('unsupported', 'Unicode escapes (\\p{...}, \\u{...}) are not supported; use literal characters or \\uXXXX.', param);
  }
  try {
    new RegExp(source, 'g');
  } catch (err) {
    const reason = (err as Error).message.replace(/^Invalid regular expression: \/.*\/\w*: /s, '');
    throw new GuardrailPatternError('syntax', `The pattern is not a valid regular expression: ${reason}.`, param);
  }
  try {
    return new RegExp(source, 'gl');
  } catch {
    throw new GuardrailPatternError('not_linear', NOT_LINEAR, param);
  }
}
