// Deny patterns skip their linear-engine pass when the text holds none of their required literals:
// the literal analysis is checked on known shapes, and the skipping matcher against a plain pass of
// every pattern over seeded random patterns and texts (overlapping patterns, anchors, alternations).
import { describe, expect, it } from 'vitest';
import { denyPattern, findDenyPatterns, type DenyPatternMatch } from '../../../src/guardrails/detectors/deny-patterns.js';
import { execAll } from '../../../src/guardrails/detectors/match.js';
import { requiredLiterals } from '../../../src/guardrails/detectors/pattern-literals.js';
import { compileUserPattern } from '../../../src/guardrails/user-pattern.js';
import { seededRandom } from '../../support/seeded-random.js';

/** The matcher before the literal prefilter: every pattern's own pass, in list order. */
function everyPass(sources: readonly string[], text: string): DenyPatternMatch[] {
  return sources.flatMap((source, index) => execAll(compileUserPattern(source), text).map((m) => ({ ...m, index })));
}

describe('requiredLiterals', () => {
  it.each([
    ['ACME-[0-9]{6}', ['ACME-']],
    ['TICKET-\\d{4,8}', ['TICKET-']],
    ['(?:foo|bar)baz\\d', ['baz']],
    ['project-[a-z]+-secret', ['project-']],
    ['\\d{3}-\\d{4}', ['-']],
    ['internal\\s+only', ['internal']],
    ['^confidential$', ['confidential']],
    ['abcd?e', ['abc']],
    ['ab+cd', ['ab']],
    ['a+bcd', ['bcd']],
    ['ab*cdef', ['cdef']],
    ['a{2}bc', ['bc']],
    ['x\\.y\\-z', ['x.y-z']],
    ['cat|dog|cat', ['cat', 'dog']],
    ['\\bword\\b', ['word']],
    ['a{,3}', [',3']],
    ['[]]xy', ['xy']],
    ['(?:falcon|osprey)-(?:alpha|beta)\\d', ['falcon', 'osprey']],
    ['(ab)+', ['ab']],
    ['(?<name>abc)\\d', ['abc']],
    ['(?:cat|dog)s?', ['cat', 'dog']],
    ['(?:abc)?d', ['d']],
    ['(?:abc){0,2}d', ['d']],
    ['(?:abc){00}d', ['d']],
    ['(?:abc){1,2}d', ['abc']],
    ['(?:a|b*)x', ['x']],
    ['x(?:(?:ab|cd)e|fgh)', ['ab', 'cd', 'fgh']],
  ])('%s needs one of %j', (source, literals) => {
    expect(requiredLiterals(source)).toEqual(literals);
  });

  it.each([['cat|\\d+'], ['(?:ab)*'], ['a*'], ['\\x41BC'], ['\\u0041'], ['.'], ['[abc]']])('%s has none (always runs)', (source) => {
    expect(requiredLiterals(source)).toBeUndefined();
  });
});

const ATOMS = ['a', 'b', 'c', '-', 'ab', 'ba', 'abc', '\\-', '\\.', '.', '[ab]', '[^a]', '\\d', '\\w', '\\s', '\\b', '^', '$', '(?:a|bc)', '(a)', '(?:ab)', '(?:ab|c)', '(?:ba|cc)', '(?:a(?:bc|b)|-)', '(?<n>ab)'];
const QUANTIFIERS = ['', '', '', '*', '+', '?', '{2}', '{1,3}', '*?', '+?'];
const TEXT_PIECES = ['a', 'b', 'c', '-', '.', ' ', '1', '22', 'abc', 'ab-c', 'ba.', '\n'];

function randomPattern(random: () => number): string {
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)] as T;
  const branch = () => Array.from({ length: 1 + Math.floor(random() * 4) }, () => pick(ATOMS) + pick(QUANTIFIERS)).join('');
  return Array.from({ length: random() < 0.25 ? 2 : 1 }, branch).join('|');
}

function randomText(random: () => number): string {
  return Array.from({ length: Math.floor(random() * 40) }, () => TEXT_PIECES[Math.floor(random() * TEXT_PIECES.length)]).join('');
}

function compilable(source: string): boolean {
  try {
    compileUserPattern(source);
    return true;
  } catch {
    return false;
  }
}

describe('findDenyPatterns with the literal prefilter', () => {
  it('finds what a pass of every pattern finds, over 3,000 seeded policies and texts', () => {
    const random = seededRandom(183);
    let skipped = 0;
    for (let round = 0; round < 3_000; round++) {
      const sources = Array.from({ length: 1 + Math.floor(random() * 5) }, () => randomPattern(random)).filter(compilable);
      const patterns = sources.map((source) => denyPattern(compileUserPattern(source)));
      for (let t = 0; t < 4; t++) {
        const text = randomText(random);
        expect(findDenyPatterns(patterns, text), `${JSON.stringify(sources)} on ${JSON.stringify(text)}`).toEqual(everyPass(sources, text));
        skipped += patterns.filter((p) => p.literals !== undefined && !p.literals.some((l) => text.includes(l))).length;
      }
    }
    // The prefilter did something: the comparison is not between two full passes only.
    expect(skipped).toBeGreaterThan(1_000);
  });

  it('reports overlapping patterns each with its own matches, in list order', () => {
    const sources = ['ACME-\\d+', 'ACME', 'E-1', 'ZZZ'];
    const text = 'see ACME-123 and ACME-9';
    const patterns = sources.map((source) => denyPattern(compileUserPattern(source)));
    expect(findDenyPatterns(patterns, text)).toEqual(everyPass(sources, text));
    expect(findDenyPatterns(patterns, text).map((m) => m.index)).toEqual([0, 0, 1, 1, 2]);
  });
});
