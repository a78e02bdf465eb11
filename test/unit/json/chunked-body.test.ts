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

  it('writes a large body in chunks no larger than 64 KiB, except a single text larger than that', () => {
    const big = { messages: [{ content: 'a'.repeat(50_000) }, { content: 'é'.repeat(20_000) }, { content: 'b'.repeat(200_000) }] };
    const built = jsonBody(big);
    expect(Array.isArray(built.body)).toBe(true);
    const sizes = (built.body as Buffer[]).map((c) => c.length);
    expect(sizes.filter((n) => n > 64 * 1024)).toEqual([Buffer.byteLength(JSON.stringify(big.messages[2]))]);
    expect(jsonBodyText(built.body)).toBe(JSON.stringify(big));
  });
});
