// The books, checked whole (platform-wide, outside any tenant): accounts whose balances disagree
// with their ledger entries or open reservations, and spend windows whose count disagrees with the
// holds and charges in them. No rows: all is well. Rows are as the SQL functions return them.
import type { Database } from '../db/database.js';

/** Column names as the functions return them; bigint columns arrive as strings. */
export type UnbalancedAccount = {
  readonly org_id: string;
  readonly available: string;
  readonly held: string;
  readonly ledger_available: string;
  readonly ledger_held: string;
  readonly open_reservations: string;
};

export type MiscountedWindow = {
  readonly org_id: string;
  readonly scope_id: string;
  readonly period: string;
  readonly window_start: Date;
  readonly spent_micros: string;
  readonly counted_micros: string;
};

const LEDGER_CHECK_SQL = 'SELECT * FROM nemo.ledger_check()';
const LIMIT_WINDOWS_CHECK_SQL = 'SELECT * FROM nemo.limit_windows_check()';

/** Accounts whose balances differ from their ledger entries or open reservations, or are negative. */
export async function unbalancedAccounts(db: Database): Promise<UnbalancedAccount[]> {
  return (await db.query<UnbalancedAccount>(LEDGER_CHECK_SQL)).rows;
}

/** Spend windows whose spent_micros differ from the holds and charges counted in them. */
export async function miscountedSpendWindows(db: Database): Promise<MiscountedWindow[]> {
  return (await db.query<MiscountedWindow>(LIMIT_WINDOWS_CHECK_SQL)).rows;
}
