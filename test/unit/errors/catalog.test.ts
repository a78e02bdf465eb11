import { existsSync, readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { ERROR_CATALOG, type CatalogEntry } from '../../../src/errors/catalog.js';
import { GatewayError } from '../../../src/errors/gateway-error.js';

const OPENAI_TYPES = new Set(['invalid_request_error', 'authentication_error', 'permission_error', 'not_found_error', 'rate_limit_error', 'insufficient_quota', 'api_error', 'server_error']);
const entries = Object.entries(ERROR_CATALOG) as Array<[string, CatalogEntry]>;

describe('ERROR_CATALOG', () => {
  it('is not empty', () => {
    expect(entries.length).toBeGreaterThan(0);
  });

  it.each(entries)('%s has a 4xx/5xx status, a type, a snake_case openaiCode and a message', (code, entry) => {
    expect(code).toMatch(/^NR_[A-Z0-9]+(_[A-Z0-9]+)*$/);
    expect(Number.isInteger(entry.status)).toBe(true);
    expect(entry.status).toBeGreaterThanOrEqual(400);
    expect(entry.status).toBeLessThan(600);
    expect(OPENAI_TYPES.has(entry.type)).toBe(true);
    expect(entry.openaiCode).toMatch(/^[a-z][a-z0-9]*(_[a-z0-9]+)*$/);
    expect(entry.message.length).toBeGreaterThan(0);
  });

  it('has unique codes and unique openaiCodes', () => {
    const codes = entries.map(([code]) => code);
    expect(new Set(codes).size).toBe(codes.length);
    const openaiCodes = entries.map(([, e]) => e.openaiCode);
    expect(new Set(openaiCodes).size).toBe(openaiCodes.length);
  });

  it('gives 5xx codes a server-side type and 4xx codes a client-side type', () => {
    for (const [code, entry] of entries) {
      const serverSide = entry.type === 'api_error' || entry.type === 'server_error';
      expect(serverSide, code).toBe(entry.status >= 500);
    }
  });

  it.each(entries)('GatewayError(%s) takes its status and default message from the catalog', (code, entry) => {
    const err = new GatewayError(code as keyof typeof ERROR_CATALOG);
    expect(err.status).toBe(entry.status);
    expect(err.message).toBe(entry.message);
    expect(err.param).toBeNull();
  });
});

describe('docs/api.md error table', () => {
  const docUrl = new URL('../../../docs/api.md', import.meta.url);

  /** Rows of the form `| NR_CODE | status | openai_code |` (extra columns ignored, backticks allowed). */
  function documentedRows(): Array<{ code: string; status: number; openaiCode: string }> {
    const text = readFileSync(docUrl, 'utf8');
    return text
      .split(/\r?\n/)
      .filter((line) => line.startsWith('| NR_'))
      .map((line) => {
        const cells = line.split('|').slice(1, -1).map((c) => c.trim().replace(/^`|`$/g, ''));
        return { code: cells[0] ?? '', status: Number(cells[1]), openaiCode: cells[2] ?? '' };
      });
  }

  it('exists', () => {
    expect(existsSync(docUrl), 'docs/api.md is missing: it must document every error code').toBe(true);
  });

  it('has exactly one row per catalog code, with the catalog status and openaiCode', () => {
    expect(existsSync(docUrl), 'docs/api.md is missing').toBe(true);
    const rows = documentedRows();
    const codes = rows.map((r) => r.code);
    expect(new Set(codes).size, `duplicate rows: ${codes.join(', ')}`).toBe(codes.length);
    const documented = Object.fromEntries(rows.map((r) => [r.code, { status: r.status, openaiCode: r.openaiCode }]));
    const catalog = Object.fromEntries(entries.map(([code, e]) => [code, { status: e.status, openaiCode: e.openaiCode }]));
    expect(documented).toEqual(catalog);
  });
});
