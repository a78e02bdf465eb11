// findEmails tries its regex only at the start of the local-part run before each '@'. Guards that
// it finds exactly what a global search of the same regex finds (the detector as it was), over
// seeded texts dense in '@', dots, long local runs and near-misses.
import { describe, expect, it } from 'vitest';
import { findEmails } from '../../../src/guardrails/detectors/email.js';
import { execAll } from '../../../src/guardrails/detectors/match.js';
import { seededRandom } from '../../support/seeded-random.js';

const GLOBAL =
  /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![A-Za-z0-9-])/g;
const globalSearch = (text: string) => execAll(GLOBAL, text, (m) => (m[0].length > 254 ? null : { start: m.index, end: m.index + m[0].length }));

const PIECES = ['a', 'bob', 'x.y', '@', '@', 'example.com', '.', '-', '+', '%', '_', ' ', '\n', 'co', 'c', '9', 'é', ',', 'mail.', 'a'.repeat(30), 'b'.repeat(70), 'd'.repeat(63) + '.'];

describe('findEmails by candidate starts', () => {
  it('finds what a global search finds, over 20,000 seeded texts', () => {
    const random = seededRandom(1805);
    let found = 0;
    for (let round = 0; round < 20_000; round++) {
      const text = Array.from({ length: Math.floor(random() * 25) }, () => PIECES[Math.floor(random() * PIECES.length)]).join('');
      const expected = globalSearch(text);
      expect(findEmails(text), JSON.stringify(text)).toEqual(expected);
      found += expected.length;
    }
    expect(found).toBeGreaterThan(500);
  });

  it('drops a match over 254 characters and goes on after it, as the global search did', () => {
    const long = `${'a'.repeat(60)}@${'d'.repeat(60)}.${'e'.repeat(60)}.${'f'.repeat(60)}.${'g'.repeat(20)}.com`;
    const text = `${long} then x@y.org and 1@2@b.io`;
    expect(long.length).toBeGreaterThan(254);
    expect(findEmails(text)).toEqual(globalSearch(text));
    expect(findEmails(text).length).toBe(2);
  });
});
