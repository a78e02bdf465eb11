// Deny patterns: the admin's regular expressions, compiled by compileUserPattern (linear time), run
// over the original text. Each pattern reports its own non-overlapping matches. The linear engine
// scans every character, so a pattern whose required literals (pattern-literals.ts) are all absent
// from the text is skipped: same matches, one fast substring search instead of a regex pass.
import { execAll, type Match } from './match.js';
import { requiredLiterals } from './pattern-literals.js';

export interface DenyPatternMatch extends Match {
  /** Index of the pattern in the policy's list. */
  readonly index: number;
}

export interface DenyPattern {
  readonly re: RegExp;
  /** A match contains at least one of these; undefined: no such literal is known, always run. */
  readonly literals: readonly string[] | undefined;
}

export function denyPattern(re: RegExp): DenyPattern {
  return { re, literals: requiredLiterals(re.source) };
}

function mayMatch(pattern: DenyPattern, text: string): boolean {
  if (pattern.literals === undefined) return true;
  for (const literal of pattern.literals) if (text.includes(literal)) return true;
  return false;
}

export function findDenyPatterns(patterns: readonly DenyPattern[], text: string): DenyPatternMatch[] {
  const out: DenyPatternMatch[] = [];
  patterns.forEach((pattern, index) => {
    if (!mayMatch(pattern, text)) return;
    for (const m of execAll(pattern.re, text)) out.push({ start: m.start, end: m.end, index });
  });
  return out;
}
