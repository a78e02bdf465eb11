// Credit grants and balances: top-ups, refunds and adjustments through nemo.ledger_credit (one
// ledger entry per idempotency key), and an org's balance. Callers authorize; this runs the SQL.
import type { Database } from '../db/database.js';

export const CREDIT_KINDS = ['topup', 'refund', 'adjustment'] as const;
export type CreditKind = (typeof CREDIT_KINDS)[number];

export interface CreditGrant {
  readonly orgId: string;
  readonly kind: CreditKind;
  /** Positive for top-ups and refunds (the function refuses others); either sign for adjustments. */
  readonly amountMicros: number;
  /** The grant is applied once per org, kind and key; a repeat returns the first entry. */
  readonly idempotencyKey: string;
  readonly note: string | null;
}

export interface GrantedCredit {
  readonly entryId: number;
  /** False: the idempotency key had been applied before and nothing changed. */
  readonly created: boolean;
  readonly availableMicros: number;
  readonly heldMicros: number;
}

export interface CreditBalance {
  readonly availableMicros: number;
  readonly heldMicros: number;
  /** null: the org has no account row yet. */
  readonly updatedAt: Date | null;
}

/** A SECURITY DEFINER function: one statement outside any tenant, the account row locked inside. */
const GRANT_SQL = 'SELECT * FROM nemo.ledger_credit($1, $2, $3, $4, $5)';
/** Under the org's tenant: row-level security leaves its own account only. */
const BALANCE_SQL = 'SELECT available, held, updated_at FROM nemo.credit_accounts';

export async function grantCredit(db: Database, grant: CreditGrant): Promise<GrantedCredit> {
  const { rows } = await db.query<{ entry_id: string; created: boolean; available: string; held: string }>(GRANT_SQL, [
    grant.orgId,
    grant.kind,
    grant.amountMicros,
    grant.idempotencyKey,
    grant.note,
  ]);
  const row = rows[0]!;
  return { entryId: Number(row.entry_id), created: row.created, availableMicros: Number(row.available), heldMicros: Number(row.held) };
}

export async function creditBalance(db: Database, orgId: string): Promise<CreditBalance> {
  return db.withTenant(orgId, async (client) => {
    const { rows } = await client.query<{ available: string; held: string; updated_at: Date }>(BALANCE_SQL);
    const row = rows[0];
    return { availableMicros: Number(row?.available ?? 0), heldMicros: Number(row?.held ?? 0), updatedAt: row?.updated_at ?? null };
  });
}
