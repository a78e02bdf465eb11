// parseJsonBytes must be JSON.parse, value and failure alike, for bodies large enough to be parsed
// piece by piece: random request-shaped JSON (strings full of quotes, backslashes, escapes and
// non-ASCII text), written with random whitespace, and the same bytes damaged at random.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PIECEWISE_MIN_BYTES, parseJsonBytes } from '../../../src/json/parse-bytes.js';

const nasty = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('"', '\\', '\\"', '\\\\"', '"\\', '{', '}', '[', ']', ',', ':', '\u2028', 'é', '😀', '\u0000'),
);
const text = fc.array(nasty, { maxLength: 12 }).map((parts) => parts.join(''));
const message = fc.record({
  role: fc.constantFrom('user', 'assistant', 'tool', 'system'),
  content: fc.oneof(text, fc.constant(null), fc.array(fc.record({ type: fc.constant('text'), text }), { maxLength: 3 })),
  extra: fc.option(fc.jsonValue({ maxDepth: 3 }), { nil: undefined }),
});
const body = fc.record({
  model: text,
  messages: fc.array(message, { minLength: 1, maxLength: 8 }),
  stream: fc.boolean(),
  n: fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true })),
  tools: fc.option(fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }), { nil: undefined }),
  meta: fc.jsonValue({ maxDepth: 2 }),
});

/** JSON with whitespace between every token, and a padding message making it large. */
function write(value: unknown, space: string, pad: number): Buffer {
  const padded = { ...(value as object), messages: [...(value as { messages: unknown[] }).messages, { role: 'user', content: 'x'.repeat(pad) }] };
  const json = JSON.stringify(padded, null, space).replace(/\n/g, space.includes('\t') ? '\r\n' : '\n');
  return Buffer.from(json);
}

/** JSON.parse's outcome, to compare: the value as JSON (key order included) or that it threw. */
function outcome(parse: () => unknown): string {
  try {
    const value = parse();
    return `ok ${JSON.stringify(value)} ${Object.getPrototypeOf(value) === Object.prototype}`;
  } catch (err) {
    return `threw ${(err as Error).name}`;
  }
}

describe('parseJsonBytes', () => {
  it('gives what JSON.parse gives for large request bodies', () => {
    fc.assert(
      fc.property(body, fc.constantFrom('', ' ', '\t', '  '), (value, space) => {
        const bytes = write(value, space, PIECEWISE_MIN_BYTES);
        expect(bytes.length).toBeGreaterThanOrEqual(PIECEWISE_MIN_BYTES);
        expect(outcome(() => parseJsonBytes(bytes, 'org'))).toBe(outcome(() => JSON.parse(bytes.toString('utf8'))));
      }),
      { seed: 11, numRuns: 150 },
    );
  });

  it('fails where JSON.parse fails, and agrees where damage still parses', () => {
    fc.assert(
      fc.property(body, fc.nat(), fc.constantFrom('"', '\\', '{', '}', '[', ']', ',', ':', ' ', 'x', '1', ''), (value, at, put) => {
        const bytes = write(value, '', PIECEWISE_MIN_BYTES);
        // Damage outside the padding (near the front, where the structure is).
        const i = at % Math.min(bytes.length, 2_000);
        const damaged = Buffer.concat([bytes.subarray(0, i), Buffer.from(put), bytes.subarray(i + 1)]);
        expect(outcome(() => parseJsonBytes(damaged, 'org'))).toBe(outcome(() => JSON.parse(damaged.toString('utf8'))));
      }),
      { seed: 12, numRuns: 400 },
    );
  });

  it('keeps JSON.parse semantics for repeated keys and __proto__, and refuses trailing bytes', () => {
    const pad = `"${'p'.repeat(PIECEWISE_MIN_BYTES)}"`;
    const cases = [
      `{"a":1,"b":[${pad}],"a":2}`,
      `{"__proto__":{"polluted":true},"messages":[${pad}]}`,
      `{"messages":[${pad}],"messages":[]}`,
      `{"messages":[${pad}]} x`,
      `{"messages":[${pad}]}}`,
      `{"messages":[${pad},]}`,
      `{"messages":[${pad}] "b":1}`,
      `[${pad}]`,
      ` \r\n{ "messages" : [ ${pad} , 1 , true , null , -0.5e3 ] , "s" : "\\u00e9\\"" } \n`,
      `{"messages":[${pad}],"n":01}`,
      `{"messages":[${pad}],"n":tru}`,
      `{"m\\u0065ssages":[${pad}],"messages":[1]}`,
    ];
    for (const json of cases) {
      const bytes = Buffer.from(json);
      expect(outcome(() => parseJsonBytes(bytes)), json.slice(0, 40)).toBe(outcome(() => JSON.parse(json)));
    }
    const parsed = parseJsonBytes(Buffer.from(cases[1]!)) as Record<string, unknown>;
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
    expect(Object.keys(parsed)).toEqual(['__proto__', 'messages']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('reads a view into a larger buffer (as a body assembled from chunks)', () => {
    const json = `{"messages":[{"role":"user","content":"${'y'.repeat(PIECEWISE_MIN_BYTES)}"}]}`;
    const backing = Buffer.from(`XXXX${json}YYYY`);
    expect(parseJsonBytes(backing.subarray(4, 4 + json.length))).toEqual(JSON.parse(json));
  });
});
