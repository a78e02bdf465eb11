// PostgreSQL going away and coming back: new requests fail closed at once (503, no inference
// without a hold), /readyz says not ready, and the gateway serves again as soon as the database
// is back, without a restart. Runs its own embedded PostgreSQL so it can stop it.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pgClient from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded.js';
import { startGateway, type Gateway } from '../../src/main.js';
import { PLATFORM, waitFor } from './helpers/gateway.js';
import { fundedOrg } from './ledger/money-helpers.js';
import { HTTP_SERVER_ENV } from '../support/http-server-env.js';
import { withTestLedger } from '../support/ledger-defaults.js';

describe('database outage', () => {
  let dataDir: string;
  let pg: EmbeddedPostgres;
  let gateway: Gateway;
  let url: string;
  let key: string;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'nemo-outage-'));
    chmodSync(dataDir, 0o755);
    pg = await startEmbeddedPostgres({ dataDir });
    const config = buildConfig(
      withTestLedger({ server: { host: '127.0.0.1', port: 0 }, models: [{ name: 'm', deployments: [{ provider: 'mock', model: 'm', inputPricePerMTok: 1, outputPricePerMTok: 1, mock: { completionTokens: 2 } }] }] }),
      { DATABASE_URL: pg.ownerUrl, NEMO_DB_APP_PASSWORD: 'nemo_app_outage_password', ...HTTP_SERVER_ENV },
      'test',
    );
    gateway = await startGateway(config);
    url = `http://127.0.0.1:${gateway.port}`;
    key = (await fundedOrg(gateway, 1e9, 'outage', { name: 'k', role: 'member' })).key;
  }, 60_000);

  afterAll(async () => {
    await gateway?.close(100);
    await pg?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  /** Every chat sent, by request id, with its status. */
  const sent = new Map<string, number>();
  let seq = 0;
  const chat = () => {
    const requestId = `outage-${++seq}`;
    return fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, 'x-request-id': requestId },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
    }).then(async (res) => {
      sent.set(requestId, res.status);
      return { status: res.status, body: await res.text() };
    });
  };
  const ready = () => fetch(`${url}/readyz`).then((res) => res.status);

  it('fails closed while the database is down and serves again once it is back', async () => {
    expect((await chat()).status).toBe(200);
    expect(await ready()).toBe(200);

    await pg.stop();
    const down = await chat();
    expect(down.status).toBe(503);
    expect(JSON.parse(down.body).error).toMatchObject({ code: 'database_unavailable', nemo_code: 'NR_DATABASE_UNAVAILABLE' });
    expect(down.body).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|postgres/i);
    expect(await ready()).toBe(503);

    // The same cluster on the same data dir and port, as after a database restart.
    pg = await startEmbeddedPostgres({ dataDir, port: Number(new URL(pg.ownerUrl).port) });
    await waitFor(async () => (await chat()).status === 200, 10_000, 100);
    expect(await ready()).toBe(200);
    // Nothing was held or charged for the refused requests; every served one was charged once
    // (1 prompt token and 2 output tokens at 1 each), also the one whose charge met the outage
    // (retried until it committed), in either ledger mode; and what its hold or lease kept went
    // back. Read as the owner: the app role sees no rows without a tenant.
    const owner = new pgClient.Client(pg.ownerUrl);
    await owner.connect();
    try {
      const openHolds = async () => (await owner.query<{ n: string }>("SELECT count(*)::text AS n FROM nemo.reservations WHERE state = 'reserved'")).rows[0]!.n;
      await waitFor(async () => (await openHolds()) === '0', 10_000, 50);
      const { rows } = await owner.query<{ held: string; settled: string }>(
        "SELECT (SELECT sum(held) FROM nemo.credit_accounts)::text AS held, (SELECT count(*) FROM nemo.ledger_entries WHERE kind = 'settle')::text AS settled",
      );
      expect(rows[0]).toMatchObject({ held: '0' });
      expect(Number(rows[0]!.settled)).toBeGreaterThanOrEqual(2);
      const charges = await owner.query<{ request_id: string; n: number; charged: string }>(
        "SELECT request_id, count(*)::int AS n, sum(charged)::text AS charged FROM nemo.ledger_entries WHERE kind = 'settle' GROUP BY request_id",
      );
      const served = [...sent].filter(([, status]) => status === 200).map(([id]) => id);
      expect([...sent.values()].every((status) => status === 200 || status === 503)).toBe(true);
      expect(charges.rows.sort((a, b) => a.request_id.localeCompare(b.request_id))).toEqual(served.sort().map((request_id) => ({ request_id, n: 1, charged: '3' })));
      const refused = [...sent].filter(([, status]) => status !== 200).map(([id]) => id);
      expect(refused.length).toBeGreaterThanOrEqual(1);
      expect((await owner.query('SELECT request_id FROM nemo.ledger_entries WHERE request_id = ANY($1::text[])', [refused])).rows).toEqual([]);
    } finally {
      await owner.end();
    }
    expect((await gateway.admin.ledgerCheck(PLATFORM)).length).toBe(0);
  }, 60_000);
});
