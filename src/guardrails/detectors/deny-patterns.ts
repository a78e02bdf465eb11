// Deny patterns: the admin's regular expressions, already compiled by compileUserPattern (linear
// time), run over the original text. Each pattern reports its own non-overlapping matches.
import { execAll, type Match } from './match.js';

export interface DenyPatternMatch extends Match {
  /** Index of the pattern in the policy's list. */
  readonly index: number;
}

export function findDenyPatterns(patterns: readonly RegExp[], text: string): DenyPatternMatch[] {
  const out: DenyPatternMatch[] = [];
  patterns.forEach((pattern, index) => {
    for (const m of execAll(pattern, text)) out.push({ start: m.start, end: m.end, index });
  });
  return out;
}
