// Folding for phrase matching keeps a map back to the original: every folded unit knows which
// original characters it came from, so findings can point at what the user actually sent.
import { describe, expect, it } from 'vitest';
import { foldPhrase, foldText, foldTextTransient } from '../../../src/guardrails/fold-text.js';
import { ScanInput } from '../../../src/guardrails/rules.js';

function sources(original: string): string[] {
  const folded = foldText(original);
  return Array.from({ length: folded.text.length }, (_, i) => original.slice(folded.sourceStart[i], folded.sourceEnd[i]));
}

describe('foldText', () => {
  it('lowercases, applies NFKC and drops invisible format characters', () => {
    expect(foldText('ＡＢ\u200bc\u00adＤ\ufeff').text).toBe('abcd');
    expect(foldText('ﬁ 𝐱 Ⅻ').text).toBe('fi x xii');
  });

  it('collapses whitespace runs (including no-break and ideographic spaces) to one space', () => {
    const folded = foldText('a \t\n\u00a0\u3000b');
    expect(folded.text).toBe('a b');
    expect([folded.sourceStart[1], folded.sourceEnd[1]]).toEqual([1, 6]);
  });

  it('composes what NFKC can and drops decorating marks that remain', () => {
    expect(foldText('e\u0301').text).toBe('é');
    expect(foldText('a\u0336\u0337b\ufe0f').text).toBe('ab');
  });

  it('maps each folded unit to its whole source segment', () => {
    expect(sources('Ｘe\u0301ﬁ😀')).toEqual(['Ｘ', 'e\u0301', 'ﬁ', 'ﬁ', '😀', '😀']);
  });

  it('keeps spelling marks of scripts that need them', () => {
    expect(foldText('नहीं').text).toBe('नहीं'.normalize('NFKC'));
  });

  it('grows past the original length when NFKC expands (ligatures), keeping every span', () => {
    const original = `${'ﬃ'.repeat(5_000)} ${'a'.repeat(20_000)}`;
    const folded = foldText(original);
    expect(folded.text).toBe(`${'ffi'.repeat(5_000)} ${'a'.repeat(20_000)}`);
    expect(folded.sourceStart.length).toBe(folded.text.length);
    expect(sources(original).slice(14_997, 15_002)).toEqual(['ﬃ', 'ﬃ', 'ﬃ', ' ', 'a']);
  });

  it('keeps lone surrogates as they are in the folded text', () => {
    expect(foldText('a\ud800b\udc00').text).toBe('a\ud800b\udc00');
  });

  it('foldPhrase trims what foldText keeps', () => {
    expect(foldPhrase('  Bad\u200b  WORD ')).toBe('bad word');
  });

  it('a transient fold gives the same text and maps as a kept one', () => {
    for (const original of ['Hello  World', 'Ｘe\u0301ﬁ😀 \t ok', `${'ﬃ'.repeat(3_000)} A`]) {
      const kept = foldText(original);
      const transient = foldTextTransient(original);
      expect(transient.text).toBe(kept.text);
      expect([...transient.sourceStart]).toEqual([...kept.sourceStart]);
      expect([...transient.sourceEnd]).toEqual([...kept.sourceEnd]);
    }
  });

  it('a scan input folded before another text was folds again instead of reading stale maps', () => {
    const input = new ScanInput('Project  Falcon');
    const first = input.folded;
    expect(first.sourceStart[8]).toBe(9);
    // Another fold on this thread reuses the scratch arrays behind `first`.
    foldTextTransient('x'.repeat(64));
    const again = input.folded;
    expect(again).not.toBe(first);
    expect(again.text).toBe('project falcon');
    expect([again.sourceStart[8], again.sourceEnd[13]]).toEqual([9, 15]);
    expect(input.folded).toBe(again);
  });
});
