// The money tables cannot be rewritten by the gateway's own database role: connected as nemo_app
// (through the gateway's pool, with the org set as every tenant transaction sets it, and on a
// connection of its own with no org set), UPDATE, DELETE and TRUNCATE of ledger entries,
// reservations and credit accounts are refused, and the rows are unchanged. The owner cannot
// rewrite ledger entries either (a trigger refuses it).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_ROLE } from '../../src/db/database.js';
import { startTestGateway, type TestGateway } from '../integration/helpers/gateway.js';
import { appRoleConnection } from '../support/test-database.js';

const INSUFFICIENT_PRIVILEGE = '42501';

let gw: TestGateway;
let owner: pg.Client;
let app: pg.Client;

const WRITES = (table: string) => [
  `UPDATE nemo.${table} SET org_id = org_id`,
  `DELETE FROM nemo.${table}`,
  `TRUNCATE nemo.${table}`,
];
const TABLES = ['ledger_entries', 'reservations', 'credit_accounts'];

async function digest(table: string): Promise<string> {
  const { rows } = await owner.query<{ d: string }>(`SELECT count(*) || ':' || md5(coalesce(string_agg(to_jsonb(t)::text, '|' ORDER BY to_jsonb(t)::text), '')) AS d FROM nemo.${table} t`);
  return rows[0]!.d;
}

async function outcome(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
    return 'succeeded';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

beforeAll(async () => {
  gw = await startTestGateway({ models: [{ name: 'm', deployments: [{ provider: 'mock', model: 'm', inputPricePerMTok: 1, outputPricePerMTok: 1 }] }] });
  // Ledger rows of every kind: the top-up, then a reserve and its settle from a served request.
  const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { ...gw.auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'Hi' }] }) });
  expect(res.status).toBe(200);
  owner = new pg.Client({ connectionString: gw.database.url });
  await owner.connect();
  await owner.query('SET row_security = off');
  for (let i = 0; i < 50; i++) {
    const { rows } = await owner.query<{ n: number }>("SELECT count(*)::int AS n FROM nemo.ledger_entries WHERE kind = 'settle'");
    if (rows[0]!.n > 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  app = new pg.Client(appRoleConnection(gw.database));
  await app.connect();
});

afterAll(async () => {
  await app?.end();
  await owner?.end();
  await gw?.close();
});

describe('the app role cannot rewrite money', () => {
  it('has rows to protect: top-up, reserve and settle entries, a reservation and an account of the org', async () => {
    const { rows } = await owner.query<{ kind: string }>('SELECT DISTINCT kind FROM nemo.ledger_entries WHERE org_id = $1', [gw.orgId]);
    expect(rows.map((r) => r.kind).sort()).toEqual(expect.arrayContaining(['reserve', 'settle', 'topup']));
    // Under the org, the gateway's role sees them: a refused write below is not an empty table.
    const visible = await gw.gateway.db.withTenant(gw.orgId, async (client) => (await client.query('SELECT count(*)::int AS n FROM nemo.ledger_entries')).rows[0].n as number);
    expect(visible).toBeGreaterThanOrEqual(3);
  });

  it.each(TABLES)('nemo.%s: UPDATE, DELETE and TRUNCATE through the gateway pool, in the org, are refused', async (table) => {
    const before = await digest(table);
    for (const sql of WRITES(table)) {
      expect(await outcome(() => gw.gateway.db.withTenant(gw.orgId, (client) => client.query(sql))), sql).toBe(INSUFFICIENT_PRIVILEGE);
    }
    expect(await digest(table)).toBe(before);
  });

  it.each(TABLES)('nemo.%s: the same on a connection of its own as nemo_app, with no org and with the org set', async (table) => {
    const before = await digest(table);
    for (const sql of WRITES(table)) {
      expect(await outcome(() => app.query(sql)), sql).toBe(INSUFFICIENT_PRIVILEGE);
      await app.query('BEGIN');
      try {
        await app.query("SELECT set_config('nemo.org_id', $1, true)", [gw.orgId]);
        expect(await outcome(() => app.query(sql)), `${sql} (org set)`).toBe(INSUFFICIENT_PRIVILEGE);
      } finally {
        await app.query('ROLLBACK');
      }
    }
    expect(await digest(table)).toBe(before);
  });

  it('nemo_app cannot give itself the privilege back or switch off the trigger', async () => {
    // Postgres only warns ("no privileges were granted") here: what counts is that nothing changed.
    await outcome(() => app.query(`GRANT UPDATE, DELETE ON nemo.ledger_entries TO ${APP_ROLE}`));
    const { rows } = await owner.query<{ update: boolean; delete: boolean }>("SELECT has_table_privilege($1, 'nemo.ledger_entries', 'UPDATE') AS update, has_table_privilege($1, 'nemo.ledger_entries', 'DELETE') AS delete", [APP_ROLE]);
    expect(rows[0]).toEqual({ update: false, delete: false });
    expect(await outcome(() => app.query('UPDATE nemo.ledger_entries SET org_id = org_id'))).toBe(INSUFFICIENT_PRIVILEGE);
    expect(await outcome(() => app.query('ALTER TABLE nemo.ledger_entries DISABLE TRIGGER ALL'))).toBe(INSUFFICIENT_PRIVILEGE);
    expect(await outcome(() => app.query('SET ROLE postgres'))).not.toBe('succeeded');
  });

  it('even the owner cannot UPDATE or DELETE ledger entries (append-only trigger)', async () => {
    const before = await digest('ledger_entries');
    await owner.query('BEGIN');
    try {
      expect(await outcome(() => owner.query('UPDATE nemo.ledger_entries SET note = note'))).not.toBe('succeeded');
    } finally {
      await owner.query('ROLLBACK');
    }
    await owner.query('BEGIN');
    try {
      expect(await outcome(() => owner.query('DELETE FROM nemo.ledger_entries'))).not.toBe('succeeded');
    } finally {
      await owner.query('ROLLBACK');
    }
    expect(await digest('ledger_entries')).toBe(before);
  });
});
