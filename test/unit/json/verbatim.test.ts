// A large body's messages may go upstream as the bytes they arrived as, instead of serialized
// again: only where those bytes denote exactly the value the gateway parsed and checked (no
// repeated key, no number a parser could read differently), and only while the message is as
// parsed, however it was changed. What goes upstream must always parse to what JSON.stringify of the request would.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jsonBody, jsonBodyText } from '../../../src/json/chunked-body.js';
import { PIECEWISE_MIN_BYTES, parseJsonBytes } from '../../../src/json/parse-bytes.js';
import { forgetVerbatim, verbatimOf } from '../../../src/json/verbatim.js';

const PAD = { role: 'user', content: 'p'.repeat(PIECEWISE_MIN_BYTES) };

/** A large body whose second message is written as `message` (raw JSON text). */
function bodyWith(message: string): Buffer {
  return Buffer.from(`{"model":"m","messages":[${JSON.stringify(PAD)},${message}]}`);
}

function parsedMessages(bytes: Buffer): Array<Record<string, unknown>> {
  return (parseJsonBytes(bytes, 'org') as { messages: Array<Record<string, unknown>> }).messages;
}

/** The upstream body of a request holding the large padding message and `message` (large: written in chunks). */
function sentWith(message: object, omitKey?: string): string {
  return jsonBodyText(jsonBody({ messages: [PAD, message] }, omitKey).body);
}

/** What that body is, as JSON text, when `message` is written as `json`. */
function expectedWith(json: string): string {
  return `{"messages":[${JSON.stringify(PAD)},${json}]}`;
}

const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.constantFrom('"', '\\', 'é', '😀', '\u2028', '\u0000', '\ud800', '</script>'),
);
const message = fc.record({
  role: fc.constantFrom('user', 'assistant', 'tool'),
  content: fc.oneof(text, fc.constant(null), fc.array(fc.record({ type: fc.constant('text'), text }), { maxLength: 3 })),
  extra: fc.option(fc.jsonValue({ maxDepth: 3 }), { nil: undefined }),
});

/** JSON text of `value` written unlike JSON.stringify, but denoting the same value: spaces, and escapes where none are needed. */
function looselyWritten(value: unknown, space: string, escapeAll: boolean): string {
  const json = JSON.stringify(value, null, space);
  if (!escapeAll) return json;
  // Every non-ASCII character and every slash as an escape: the same strings to any JSON parser.
  return json.replace(/[\u0080-\uffff/]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()}`);
}

describe('verbatim message bytes', () => {
  it('keeps only bytes that parse to the parsed message, and the upstream body always parses to the request', () => {
    let keptMessages = 0;
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 6 }), fc.constantFrom('', ' ', '\t'), fc.boolean(), (messages, space, escapeAll) => {
        const raw = `{"model":"m","messages":[${JSON.stringify(PAD)},${messages.map((m) => looselyWritten(m, space, escapeAll)).join(',')}]}`;
        const request = parseJsonBytes(Buffer.from(raw), 'org') as { messages: object[] };
        for (const parsed of request.messages) {
          const kept = verbatimOf(parsed);
          if (kept === undefined) continue;
          keptMessages++;
          expect(JSON.parse(Buffer.from(kept).toString('utf8'))).toStrictEqual(parsed);
        }
        const sent = jsonBodyText(jsonBody({ ...request, model: 'upstream' }).body);
        expect(JSON.stringify(JSON.parse(sent))).toBe(JSON.stringify({ ...request, model: 'upstream' }));
      }),
      { seed: 31, numRuns: 200 },
    );
    // Most generated messages are unambiguous: the property is about kept bytes, not only the fallback.
    expect(keptMessages).toBeGreaterThan(300);
  });

  it('sends an unchanged message as received: spacing and escapes kept, the same value', () => {
    const raw = '{ "role" : "user", "content" : "caf\\u00e9 \\/ ok", "n" : [1, -7, 0, 123456789012345] }';
    const [, message] = parsedMessages(bodyWith(raw));
    expect(Buffer.from(verbatimOf(message!)!).toString('utf8')).toBe(raw);
    const sent = sentWith(message!);
    expect(sent).toBe(expectedWith(raw));
    expect(JSON.parse(sent)).toEqual({ messages: [PAD, { role: 'user', content: 'café / ok', n: [1, -7, 0, 123456789012345] }] });
  });

  it('serializes again a message with a repeated key or a number a parser could read otherwise', () => {
    const ambiguous = [
      '{"role":"user","content":"an email: jane@example.com","content":"hello"}',
      '{"role":"user","content":[{"type":"text","text":"a","text":"b"}]}',
      '{"role":"user","content":"x","n":1.5}',
      '{"role":"user","content":"x","n":1e2}',
      '{"role":"user","content":"x","n":-0}',
      '{"role":"user","content":"x","n":1234567890123456}',
      '{"role":"user","content":"x","n":12345678901234567890}',
    ];
    for (const raw of ambiguous) {
      const [, message] = parsedMessages(bodyWith(raw));
      expect(verbatimOf(message!), raw).toBeUndefined();
      expect(sentWith(message!)).toBe(JSON.stringify({ messages: [PAD, message] }));
    }
  });

  it('serializes again a message once it is forgotten (changed after parsing), and never with an omitted key', () => {
    const raw = '{"role":"user","content":"mail jane@example.com","cache_control":{"type":"ephemeral"}}';
    const [, message] = parsedMessages(bodyWith(raw));
    expect(verbatimOf(message!)).toBeDefined();
    expect(sentWith(message!)).toBe(expectedWith(raw));
    expect(sentWith(message!, 'cache_control')).toBe(expectedWith('{"role":"user","content":"mail jane@example.com"}'));
    forgetVerbatim(message!);
    message!.content = 'mail [EMAIL]';
    expect(sentWith(message!)).toBe(expectedWith('{"role":"user","content":"mail [EMAIL]","cache_control":{"type":"ephemeral"}}'));
  });

  it('serializes again a message changed in place without being forgotten, however it changed', () => {
    const raw = '{"role":"user","content":[{"type":"text","text":"mail jane@example.com"}],"name":"ann"}';
    const changes: Array<[string, (m: Record<string, unknown>) => void]> = [
      ['a nested text replaced', (m) => ((m.content as Array<Record<string, unknown>>)[0]!.text = 'mail [EMAIL]')],
      ['a top-level value replaced', (m) => (m.name = 'bob')],
      ['a key added', (m) => (m.extra = 1)],
      ['a key removed', (m) => delete m.name],
      ['a part replaced by one with the same values under another key', (m) => ((m.content as unknown[])[0] = { type: 'text', txt: 'mail jane@example.com' })],
      ['a part appended', (m) => (m.content as unknown[]).push({ type: 'text', text: 'more' })],
    ];
    for (const [name, change] of changes) {
      const [, message] = parsedMessages(bodyWith(raw));
      expect(verbatimOf(message!), name).toBeDefined();
      change(message!);
      expect(verbatimOf(message!), name).toBeUndefined();
      expect(sentWith(message!), name).toBe(JSON.stringify({ messages: [PAD, message] }));
    }
    // The same string written back is the same value: the bytes still describe it.
    const [, same] = parsedMessages(bodyWith(raw));
    same!.name = ['a', 'nn'].join('');
    expect(verbatimOf(same!)).toBeDefined();
  });

  it('keeps nothing unless asked, for a small body (one JSON.parse), for elements that are not objects, or for one past 96 KiB', () => {
    const small = parseJsonBytes(Buffer.from('{"messages":[{"role":"user","content":"hi"}]}'), 'org') as { messages: object[] };
    expect(verbatimOf(small.messages[0]!)).toBeUndefined();
    // A dialect that translates the body does not ask: nothing is copied for nothing.
    const notAsked = parseJsonBytes(bodyWith('{"role":"user","content":"x"}')) as { messages: object[] };
    expect(notAsked.messages.map((m) => verbatimOf(m))).toEqual([undefined, undefined]);
    const large = parseJsonBytes(Buffer.from(`{"input":[${JSON.stringify('q'.repeat(PIECEWISE_MIN_BYTES))},[1,2]]}`), 'org') as { input: unknown[] };
    expect(verbatimOf(large.input[1] as object)).toBeUndefined();
    // Its copy would need fresh pages: serialized again, in slices, instead.
    const huge = { role: 'user', content: 'h'.repeat(100 * 1024) };
    const [, message] = parsedMessages(bodyWith(JSON.stringify(huge)));
    expect(verbatimOf(message!)).toBeUndefined();
    expect(sentWith(message!)).toBe(expectedWith(JSON.stringify(huge)));
  });

  it('keeps nothing for a deeply nested element, and parses one nested past any recursion limit', () => {
    const nested = (depth: number) => `{"role":"user","content":"x","extra":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    const [, shallow] = parsedMessages(bodyWith(nested(20)));
    expect(verbatimOf(shallow!)).toBeDefined();
    const [, deep] = parsedMessages(bodyWith(nested(40)));
    expect(verbatimOf(deep!)).toBeUndefined();
    expect(sentWith(deep!)).toBe(expectedWith(nested(40)));
    // JSON.parse takes any depth; keeping bytes must not turn such a body into an error.
    const [, deepest] = parsedMessages(bodyWith(nested(20_000)));
    expect(verbatimOf(deepest!)).toBeUndefined();
  });

  it('copies the bytes: a body buffer reused afterwards does not change what is sent', () => {
    const bytes = bodyWith('{"role":"user","content":"original"}');
    const [, message] = parsedMessages(bytes);
    expect(verbatimOf(message!)).toBeDefined();
    bytes.fill(0x20);
    expect(sentWith(message!)).toBe(expectedWith('{"role":"user","content":"original"}'));
  });
});
