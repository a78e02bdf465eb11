// Array literals for the ledger's batch parameters: safe elements bare, everything else quoted and
// escaped the way PostgreSQL's array parser reads it back (the round trip through a real server is
// test/integration/db/pg-array.test.ts).
import { describe, expect, it } from 'vitest';
import { arrayLiteral } from '../../../src/db/pg-array.js';

describe('arrayLiteral', () => {
  it('writes UUIDs, integers, kinds and NULL bare', () => {
    expect(arrayLiteral(['settle', '0e1f3a2b-1111-4222-8333-444455556666', null, 42, -7, undefined])).toBe('{settle,0e1f3a2b-1111-4222-8333-444455556666,NULL,42,-7,NULL}');
    expect(arrayLiteral([])).toBe('{}');
  });

  it('quotes the empty string, the word NULL in any case, and anything with other characters', () => {
    expect(arrayLiteral(['', 'NULL', 'null', 'Null', 'a b', 'a,b', '{x}', 'é', ' lead'])).toBe('{"","NULL","null","Null","a b","a,b","{x}","é"," lead"}');
  });

  it('escapes quotes and backslashes inside quotes', () => {
    expect(arrayLiteral(['say "hi"', 'C:\\path\\', '\\"'])).toBe('{"say \\"hi\\"","C:\\\\path\\\\","\\\\\\""}');
  });
});
