// The request-log migration passes the lint unreviewed: its one DROP is dynamic SQL confined to
// expired partitions, and a DROP written out in a function body would still be refused.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { migrationsDirFromHere } from '../../../src/db/migrate.js';
import { lintMigration } from '../../../src/db/migration-lint.js';

const NAME = '0006_request_logs.sql';
const sql = readFileSync(join(migrationsDirFromHere(), NAME), 'utf8');

describe('0006_request_logs.sql', () => {
  it('passes the migration lint without a reviewer marker', () => {
    expect(lintMigration(NAME, sql)).toEqual([]);
    expect(sql).not.toMatch(/nemo:destructive-reviewed-by/);
  });

  it('would be refused with the DROP written out in the function body (the lint reads bodies)', () => {
    const literal = sql.replace("EXECUTE format('DROP TABLE nemo.%I', part);", 'DROP TABLE nemo.request_logs_p20000101;');
    expect(literal).not.toBe(sql);
    expect(lintMigration(NAME, literal).some((p) => /DROP TABLE is refused/.test(p))).toBe(true);
  });

  it('drops only through the expiry function, and logs each drop', () => {
    const drops = sql.match(/'DROP [^']*'/g) ?? [];
    expect(drops).toEqual(["'DROP TABLE nemo.%I'"]);
    expect(sql).toMatch(/RAISE LOG 'nemo: dropped expired request log partition/);
  });
});
