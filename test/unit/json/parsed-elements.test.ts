import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { jsonBody, jsonBodyText } from '../../../src/json/chunked-body.js';
import { deepFreeze, ParsedElementCache, parsedElements } from '../../../src/json/parsed-elements.js';
import { PIECEWISE_MIN_BYTES, parseJsonBytes } from '../../../src/json/parse-bytes.js';

type Body = { model: string; messages: Array<Record<string, unknown>> };

const FILLER = { role: 'system', content: 'f'.repeat(PIECEWISE_MIN_BYTES) };

/** A large body (parsed piece by piece) with these messages after a filler message. */
function body(messages: readonly unknown[], spacing = ''): Buffer {
  return Buffer.from(`{"model":"m",${spacing}"messages":[${[FILLER, ...messages].map((m) => JSON.stringify(m)).join(`,${spacing}`)}]}`);
}

function parse(bytes: Buffer, org = 'org-a'): Body {
  return parseJsonBytes(bytes, org) as Body;
}

describe('parsed elements of large bodies', () => {
  beforeEach(() => parsedElements.resize(8 * 1024 * 1024));
  afterEach(() => {
    parsedElements.resize(0);
    parsedElements.clear();
  });

  it('hands a resent conversation its earlier turns as the same frozen objects, and parses only what is new', () => {
    const turns = [{ role: 'user', content: 'hello' }, { role: 'assistant', content: 'hi there' }];
    const first = parse(body(turns));
    const second = parse(body([...turns, { role: 'user', content: 'and now?' }]));
    expect(second.messages.slice(0, 3)).toEqual(first.messages);
    for (let i = 0; i < 3; i++) expect(second.messages[i]).toBe(first.messages[i]);
    expect(Object.isFrozen(second.messages[1])).toBe(true);
    expect(second.messages[3]).toEqual({ role: 'user', content: 'and now?' });
    // The body's own object and array are the request's alone: they may be changed.
    expect(Object.isFrozen(second)).toBe(false);
    expect(Object.isFrozen(second.messages)).toBe(false);
  });

  it('never shares an element between orgs', () => {
    const turns = [{ role: 'user', content: 'the same words' }];
    const a = parse(body(turns), 'org-a');
    const b = parse(body(turns), 'org-b');
    expect(b.messages[1]).toEqual(a.messages[1]);
    expect(b.messages[1]).not.toBe(a.messages[1]);
  });

  it('never hands out a message as a tool: the same bytes in another array are another object', () => {
    // Valid as both: chat validation ignores keys it does not know.
    const both = { role: 'user', content: 'hello', type: 'function', function: { name: 'f', description: 'mail alice@example.com' } };
    const asMessage = parse(body([both]));
    const asTool = parseJsonBytes(Buffer.from(`{"model":"m","messages":[${JSON.stringify(FILLER)}],"tools":[${JSON.stringify(both)}]}`), 'org-a') as { tools: object[] };
    expect(asTool.tools[0]).toEqual(asMessage.messages[1]);
    expect(asTool.tools[0]).not.toBe(asMessage.messages[1]);
  });

  it('gives a message whose bytes differ only where the fingerprint does not look its own parse', () => {
    // Same length, same first and last 40 bytes and the same middle: only a full comparison tells them apart.
    const pad = 'x'.repeat(200);
    const one = { role: 'user', content: `${pad}A${pad}${pad}` };
    const two = { role: 'user', content: `${pad}B${pad}${pad}` };
    const cache = new ParsedElementCache(1 << 20, 1 << 16);
    const bytesOf = (m: unknown) => Buffer.from(JSON.stringify(m));
    const b1 = bytesOf(one);
    const b2 = bytesOf(two);
    expect(cache.keyOf('o', b1, 0, b1.length)).toBe(cache.keyOf('o', b2, 0, b2.length));
    expect(parse(body([one])).messages[1]).toEqual(one);
    expect(parse(body([two])).messages[1]).toEqual(two);
    expect(parse(body([one])).messages[1]).toEqual(one);
  });

  it('agrees with JSON.parse on conversations that share, change and reorder messages', () => {
    const message = fc.record({
      role: fc.constantFrom('user', 'assistant', 'tool'),
      content: fc.oneof(fc.string({ maxLength: 40 }), fc.constant('jane@example.com'), fc.constant('\u00e9\u{1F600}"\\')),
    });
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(5), { maxLength: 8 }), fc.boolean(), (pool, picks, spaced) => {
        const messages = picks.map((i) => pool[i % pool.length]!);
        const bytes = body(messages, spaced ? ' ' : '');
        const expected = JSON.parse(bytes.toString('utf8')) as Body;
        const parsed = parse(bytes);
        expect(parsed).toEqual(expected);
        // What goes upstream (kept bytes where safe) is the request too.
        expect(JSON.parse(jsonBodyText(jsonBody(parsed).body))).toEqual(expected);
      }),
      { numRuns: 150, seed: 18 },
    );
  });

  it('stays within its budget, least recently used out first, and empties at 0', () => {
    const cache = new ParsedElementCache(10_000, 4_000);
    const element = (n: number) => Buffer.from(JSON.stringify({ role: 'user', content: `${n}`.padEnd(1_000, '.') }));
    const remember = (n: number) => {
      const bytes = element(n);
      const key = cache.keyOf('o', bytes, 0, bytes.length)!;
      cache.remember(key, bytes, JSON.parse(bytes.toString('utf8')) as object);
      return { bytes, key };
    };
    const first = remember(1);
    remember(2);
    expect(cache.find(first.key, first.bytes, 0, first.bytes.length)).toEqual({ role: 'user', content: '1'.padEnd(1_000, '.') });
    for (let n = 3; n < 10; n++) remember(n);
    expect(cache.bytes).toBeLessThanOrEqual(10_000);
    expect(cache.size).toBeGreaterThan(0);
    const big = Buffer.alloc(5_000, 0x20);
    expect(cache.keyOf('o', big, 0, big.length)).toBeUndefined();
    cache.resize(0);
    expect(cache.size).toBe(0);
    expect(cache.keyOf('o', first.bytes, 0, first.bytes.length)).toBeUndefined();
  });

  it('keeps hitting when conversations visited in turn hold more than its budget', () => {
    const element = (n: number) => Buffer.from(JSON.stringify({ role: 'user', content: `${n}`.padEnd(1_000, '.') }));
    const elements = Array.from({ length: 16 }, (_, n) => element(n));
    // Room for about 8 of the 16: a cache that evicts for every miss would never hit in this cycle.
    const cache = new ParsedElementCache(8 * (4 * elements[0]!.length + 400), 4_000);
    let hits = 0;
    for (let round = 0; round < 40; round++) {
      for (const bytes of elements) {
        const key = cache.keyOf('o', bytes, 0, bytes.length)!;
        if (cache.find(key, bytes, 0, bytes.length) !== undefined) {
          if (round >= 20) hits++;
        } else cache.remember(key, bytes, JSON.parse(bytes.toString('utf8')) as object);
      }
    }
    expect(hits / (20 * elements.length)).toBeGreaterThan(0.3);
  });

  it('deepFreeze freezes every object and array inside', () => {
    const value = deepFreeze({ a: [{ b: 1 }], c: { d: [2] } });
    expect(Object.isFrozen(value.a[0])).toBe(true);
    expect(Object.isFrozen(value.c.d)).toBe(true);
    expect(() => {
      'use strict';
      (value.a[0] as { b: number }).b = 2;
    }).toThrow(TypeError);
  });
});
