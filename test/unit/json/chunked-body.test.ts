// jsonBody must send exactly JSON.stringify's bytes, as one string or as chunks with their length.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHUNKED_MIN_CHARS, jsonBody, jsonBodyText } from '../../../src/json/chunked-body.js';

const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 60 }), fc.constantFrom('"', '\\', 'é', '😀', '\u2028', '\u0000'));
const value = fc.record({
  model: text,
  messages: fc.array(fc.record({ role: text, content: fc.oneof(text, fc.constant(null)), cache_control: fc.option(fc.jsonValue({ maxDepth: 1 }), { nil: undefined }) }), { maxLength: 6 }),
  tools: fc.option(fc.array(fc.jsonValue({ maxDepth: 3 }), { maxLength: 3 }), { nil: undefined }),
  gone: fc.constant(undefined),
  cache_control: fc.option(fc.jsonValue({ maxDepth: 1 }), { nil: undefined }),
  other: fc.jsonValue({ maxDepth: 2 }),
});

const omitting = (key: string) => (k: string, v: unknown) => (k === key ? undefined : v);

describe('jsonBody', () => {
  it('is JSON.stringify byte for byte, chunked or not, with or without an omitted key', () => {
    fc.assert(
      fc.property(value, fc.constantFrom(0, 3, CHUNKED_MIN_CHARS, 100_000), fc.boolean(), (v, pad, omit) => {
        const request: Record<string, unknown> = { ...v, messages: [...v.messages, { role: 'user', content: 'p'.repeat(pad) }] };
        const built = jsonBody(request, omit ? 'cache_control' : undefined);
        const expected = JSON.stringify(request, omit ? omitting('cache_control') : undefined);
        expect(jsonBodyText(built.body)).toBe(expected);
        if (typeof built.body === 'string') expect(built.bytes).toBeUndefined();
        else expect(built.bytes).toBe(Buffer.byteLength(expected));
        expect(typeof built.body === 'string').toBe(pad < CHUNKED_MIN_CHARS - 1_000);
      }),
      { seed: 21, numRuns: 200 },
    );
  });

  it('writes a large body in chunks no larger than 64 KiB', () => {
    const big = { messages: [{ content: 'a'.repeat(50_000) }, { content: 'é'.repeat(20_000) }, { content: 'b'.repeat(200_000) }] };
    const built = jsonBody(big);
    expect(Array.isArray(built.body)).toBe(true);
    expect(Math.max(...(built.body as Buffer[]).map((c) => c.length))).toBeLessThanOrEqual(64 * 1024);
    expect(jsonBodyText(built.body)).toBe(JSON.stringify(big));
  });

  it('escapes long strings in slices exactly as JSON.stringify, surrogate pairs and lone surrogates at every cut', () => {
    const unit = fc.constantFrom('a', 'é', '"', '\\', '\n', '\u0001', '😀', '\ud800', '\udfff', '中', '\u2028');
    fc.assert(
      fc.property(fc.array(unit, { minLength: 1, maxLength: 40 }), fc.integer({ min: 16 * 1024 - 3, max: 16 * 1024 + 3 }), fc.nat(3), (tail, lead, depth) => {
        // A long text whose interesting characters sit around the first slice boundary.
        const text = 'x'.repeat(lead) + tail.join('') + 'y'.repeat(20_000);
        let value: unknown = text;
        for (let i = 0; i < depth; i++) value = i % 2 === 0 ? { content: value, n: i } : [value, null];
        const request = { model: 'm', messages: [{ role: 'user', content: value }], padding: 'p'.repeat(CHUNKED_MIN_CHARS) };
        const built = jsonBody(request);
        expect(typeof built.body).not.toBe('string');
        expect(jsonBodyText(built.body)).toBe(JSON.stringify(request));
      }),
      { seed: 22, numRuns: 120 },
    );
  });

  it('writes a single large text without a chunk over 64 KiB', () => {
    const request = { messages: [{ role: 'user', content: 'é'.repeat(200_000) }] };
    const built = jsonBody(request);
    expect(Math.max(...(built.body as Buffer[]).map((c) => c.length))).toBeLessThanOrEqual(64 * 1024);
    expect(jsonBodyText(built.body)).toBe(JSON.stringify(request));
  });
});
