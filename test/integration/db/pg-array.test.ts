// arrayLiteral against PostgreSQL's own array parser: any text array written as a literal and cast
// to text[] comes back element for element, NULLs included, as pg's own conversion sends it.
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arrayLiteral } from '../../../src/db/pg-array.js';
import { adminUrl } from '../../support/test-database.js';

describe('arrayLiteral through PostgreSQL', () => {
  let client: pg.Client;

  beforeAll(async () => {
    client = new pg.Client(adminUrl());
    await client.connect();
  });

  afterAll(async () => {
    await client?.end();
  });

  async function roundTrip(values: Array<string | null>): Promise<Array<string | null>> {
    const { rows } = await client.query<{ a: Array<string | null> }>('SELECT $1::text[] AS a', [arrayLiteral(values)]);
    return rows[0]!.a;
  }

  it('reads every text array back as it was sent', async () => {
    // Strings of the characters the array syntax cares about, plus any unicode (no NUL: text refuses it).
    const special = fc.constantFrom('{', '}', ',', '"', '\\', ' ', '\t', '\n', 'N', 'U', 'L', 'n', 'u', 'l', 'a', '0', '-', '.', ':', '_', 'é', '😀');
    const text = fc.oneof(
      fc.array(special, { maxLength: 8 }).map((chars) => chars.join('')),
      fc.string({ unit: 'grapheme', maxLength: 12 }).filter((s) => !s.includes('\0')),
      fc.constantFrom('NULL', 'null', '', 'settle', '0e1f3a2b-1111-4222-8333-444455556666'),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.option(text, { nil: null }), { maxLength: 12 }), async (values) => {
        expect(await roundTrip(values)).toEqual(values);
      }),
      { numRuns: 300 },
    );
  });

  it('casts integers and UUIDs written bare', async () => {
    const { rows } = await client.query<{ n: string[]; u: string[] }>('SELECT $1::bigint[] AS n, $2::uuid[] AS u', [
      arrayLiteral([9_007_199_254_740_991, -1, null]),
      arrayLiteral(['0e1f3a2b-1111-4222-8333-444455556666', null]),
    ]);
    expect(rows[0]).toEqual({ n: ['9007199254740991', '-1', null], u: ['0e1f3a2b-1111-4222-8333-444455556666', null] });
  });
});
