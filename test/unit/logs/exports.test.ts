// Export formatting (RFC 4180 CSV, NDJSON) and the export query's validation.
import { describe, expect, it } from 'vitest';
import { parseExportQuery } from '../../../src/http/routes/exports.js';
import { csvField, csvLine, exportColumns, ndjsonLine } from '../../../src/logs/exports.js';

describe('CSV', () => {
  it('quotes fields with commas, quotes and line breaks, doubling quotes', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField('cr\rhere')).toBe('"cr\rhere"');
    expect(csvField(null)).toBe('');
    expect(csvField(42.5)).toBe('42.5');
    expect(csvField(false)).toBe('false');
    expect(csvField(['pii:email', 'deny_word:1'])).toBe('pii:email;deny_word:1');
  });

  it('ends every line with CRLF', () => {
    expect(csvLine(['a', null, 'b,c'])).toBe('a,,"b,c"\r\n');
  });
});

describe('NDJSON', () => {
  it('writes one object per line with the columns as keys', () => {
    const line = ndjsonLine(['a', 'b', 'c', 'd', 'e'])(['x"y\n', 3, null, ['r1'], true]);
    expect(line.endsWith('}\n')).toBe(true);
    expect(line.slice(0, -1)).not.toContain('\n');
    expect(JSON.parse(line)).toEqual({ a: 'x"y\n', b: 3, c: null, d: ['r1'], e: true });
  });

  it('writes non-finite numbers as null', () => {
    expect(JSON.parse(ndjsonLine(['n'])([Number.POSITIVE_INFINITY]))).toEqual({ n: null });
  });

  it('has the documented columns', () => {
    expect(exportColumns('logs')).toContain('guardrail_action');
    expect(exportColumns('ledger')).toContain('entry_id');
    expect(exportColumns('ledger').slice(-6)).toEqual(['prompt_tokens', 'completion_tokens', 'cached_tokens', 'cache_write_tokens', 'reasoning_tokens', 'images']);
  });
});

describe('parseExportQuery', () => {
  const parse = (q: string) => parseExportQuery(new URLSearchParams(q));

  it('takes ISO times and a format, ndjson by default', () => {
    const { range, format } = parse('from=2026-01-01T00:00:00Z&to=2026-01-02');
    expect(format).toBe('ndjson');
    expect(range.from.toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(range.to.toISOString()).toBe('2026-01-02T00:00:00.000Z');
    expect(parse('from=2026-01-01&to=2026-01-02&format=csv').format).toBe('csv');
  });

  it('refuses missing, malformed or reversed times and unknown formats', () => {
    expect(() => parse('to=2026-01-02')).toThrow(/from/);
    expect(() => parse('from=yesterday&to=2026-01-02')).toThrow(/ISO 8601/);
    expect(() => parse('from=2026-01-02&to=2026-01-01')).toThrow(/after/);
    expect(() => parse('from=2026-01-01&to=2026-01-02&format=xml')).toThrow(/format/);
    expect(() => parse('from=2026-13-45&to=2026-01-02')).toThrow(/ISO 8601/);
  });

  it('refuses times outside years 1 to 9999, which PostgreSQL cannot read as ISO text (a fuzzing find)', () => {
    expect(() => parse('from=0000-01-01T00:00:00Z&to=1970-01-01')).toThrow(/0001-01-01/);
    expect(() => parse('from=0001-01-01T00:30:00%2B01:00&to=1970-01-01')).toThrow(/0001-01-01/);
    expect(() => parse('from=2026-01-01&to=9999-12-31T23:59:59-14:00')).toThrow(/9999-12-31/);
    expect(parse('from=0001-01-01T00:00:00Z&to=1970-01-01').range.from.toISOString()).toBe('0001-01-01T00:00:00.000Z');
  });

  it('reads a time without an offset as UTC, with a T or a space', () => {
    const { range } = parse('from=2026-01-01T10:30&to=2026-01-02 08:00:05.5');
    expect(range.from.toISOString()).toBe('2026-01-01T10:30:00.000Z');
    expect(range.to.toISOString()).toBe('2026-01-02T08:00:05.500Z');
    expect(parse('from=2026-01-01T10:30%2B02:00&to=2026-01-02').range.from.toISOString()).toBe('2026-01-01T08:30:00.000Z');
  });
});
