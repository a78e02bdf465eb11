// What jsonb takes of a stored response: everything but NUL, which the stored copy replaces.
import { describe, expect, it } from 'vitest';
import { jsonbSafe } from '../../../src/logs/stored-responses.js';

describe('jsonbSafe', () => {
  it('replaces escaped NULs with U+FFFD and leaves an escaped backslash before "u0000" alone', () => {
    const json = JSON.stringify({ a: 'x\u0000y', b: '\\u0000', c: '\\\u0000' });
    expect(JSON.parse(jsonbSafe(json))).toEqual({ a: 'x\ufffdy', b: '\\u0000', c: '\\\ufffd' });
  });

  it('returns text without NUL as it is', () => {
    const json = JSON.stringify({ text: 'plain \\ text' });
    expect(jsonbSafe(json)).toBe(json);
  });
});
