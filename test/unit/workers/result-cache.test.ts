import { describe, expect, it } from 'vitest';
import { ContentKeys, contentKey, ResultCache } from '../../../src/workers/result-cache.js';

describe('ResultCache', () => {
  it('computes once per key and answers hits from the cache', () => {
    const cache = new ResultCache<number>(1 << 20, () => 8);
    let runs = 0;
    const compute = () => ++runs;
    expect(cache.getOrCompute('a', compute)).toBe(1);
    expect(cache.getOrCompute('a', compute)).toBe(1);
    expect(cache.getOrCompute('b', compute)).toBe(2);
    expect([cache.hits, cache.misses, cache.size]).toEqual([1, 2, 2]);
  });

  it('evicts the least recently used entry when over its byte bound', () => {
    const cache = new ResultCache<string>(3 * 150, (v) => v.length); // 96 + 2 * 2 + 50 bytes each: room for three
    const put = (key: string) => cache.getOrCompute(key, () => 'x'.repeat(50));
    put('k1');
    put('k2');
    put('k3');
    put('k1'); // k1 is now the most recently used: k2 goes first
    put('k4');
    expect(cache.bytes).toBeLessThanOrEqual(450);
    let recomputed = false;
    cache.getOrCompute('k1', () => ((recomputed = true), 'y'));
    expect(recomputed).toBe(false);
    cache.getOrCompute('k2', () => ((recomputed = true), 'y'));
    expect(recomputed).toBe(true);
  });

  it('never keeps a value larger than its whole bound, and keeps nothing at 0 bytes', () => {
    const small = new ResultCache<string>(100, (v) => v.length);
    small.getOrCompute('big', () => 'x'.repeat(1_000));
    expect(small.size).toBe(0);
    const off = new ResultCache<number>(0, () => 8);
    off.getOrCompute('a', () => 1);
    expect(off.size).toBe(0);
  });

  it('shares a job under way between concurrent callers', async () => {
    const cache = new ResultCache<number>(1 << 20, () => 8);
    let runs = 0;
    let finish!: (n: number) => void;
    const compute = () => {
      runs++;
      return new Promise<number>((resolve) => (finish = resolve));
    };
    const first = cache.getOrCompute('a', compute);
    const second = cache.getOrCompute('a', compute);
    finish(42);
    expect(await Promise.all([first, second])).toEqual([42, 42]);
    expect(runs).toBe(1);
    expect(cache.getOrCompute('a', compute)).toBe(42);
  });

  it('does not keep a failed job: the next caller runs it again', async () => {
    const cache = new ResultCache<number>(1 << 20, () => 8);
    await expect(cache.getOrCompute('a', () => Promise.reject(new Error('worker timed out')))).rejects.toThrow('worker timed out');
    expect(await cache.getOrCompute('a', () => Promise.resolve(7))).toBe(7);
  });
});

describe('contentKey', () => {
  it('differs for texts that differ anywhere, even past V8\'s string-hash prefix', () => {
    const base = 'a'.repeat(100_000);
    expect(contentKey(base)).not.toBe(contentKey(`${base.slice(0, -1)}b`));
    expect(contentKey(base)).toBe(contentKey('a'.repeat(100_000)));
  });

  it('keeps an entry hit lately, though it is not moved on every hit', () => {
    // Room for 20 entries; the working set of 5 is hit between each of 200 new keys.
    const cache = new ResultCache<string>(20 * 150, (v) => v.length); // 96 + 2 * 2 + 50 bytes each
    let recomputed = 0;
    for (let i = 0; i < 200; i++) {
      cache.getOrCompute(`n${i}`.slice(-2), () => 'x'.repeat(50)); // cold keys: ~100 distinct names in turn
      for (const hot of ['h1', 'h2', 'h3', 'h4', 'h5']) cache.getOrCompute(hot, () => (recomputed++, 'x'.repeat(50)));
    }
    expect(recomputed).toBe(5);
  });
});

describe('ContentKeys', () => {
  it('gives each text its content key: the scanned ones in order without hashing again, the rest hashed', () => {
    const keys = new ContentKeys();
    const [a, b, c] = ['a'.repeat(20_000), 'b'.repeat(300), 'c'.repeat(50)];
    for (const text of [a, b, c]) expect(keys.scanned(text)).toBe(contentKey(text));
    const redacted = 'b[REDACTED]';
    keys.redacted(b, redacted, 'policy-1');
    // The count's order: other texts (roles, ids) in between, the redacted text in place of b.
    const counted = ['user', a, 'call_1', redacted, 'tool', c, 'unseen'];
    const expected = counted.map((t) => contentKey(t));
    expected[3] = `${contentKey(b)}~policy-1`;
    expect(counted.map((t) => keys.of(t))).toEqual(expected);
  });

  it('derives a redacted text\'s key from the original\'s and the policy\'s, never equal to a content key', () => {
    const keys = new ContentKeys();
    const original = 'mail me at a@b.example';
    keys.scanned(original);
    keys.redacted(original, 'mail me at [EMAIL]', 'p2');
    const derived = keys.of('mail me at [EMAIL]');
    expect(derived).toBe(`${contentKey(original)}~p2`);
    expect(derived).not.toMatch(/^[A-Za-z0-9+/]+=*$/);
    // Another request with the same text and policy gets the same key, so its count is cached.
    const next = new ContentKeys();
    next.scanned(original);
    next.redacted(original, 'mail me at [EMAIL]', 'p2');
    expect(next.of('mail me at [EMAIL]')).toBe(derived);
  });

  it('hashes a text met out of order rather than take another text\'s key', () => {
    const keys = new ContentKeys();
    keys.scanned('first text');
    keys.scanned('second text');
    expect(keys.of('second text')).toBe(contentKey('second text'));
    expect(keys.of('first text')).toBe(contentKey('first text'));
    expect(keys.of('first text')).toBe(contentKey('first text'));
  });
});
