// What SREs see in Prometheus agrees with what finance sees in the ledger: after a mixed run
// (answers with usage, streams, a client that leaves mid-stream, a stream without usage counted
// exactly, a request refused for credits), the credits counters on /metrics equal the sums of the
// ledger's rows for the same run, to the micro-unit: in hold mode row for row; in lease mode the
// charges, and the lease counters the leases' grants and returns.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, waitFor, type TestGateway } from './helpers/gateway.js';
import { Books, fundedOrg, LEDGER_MODE } from './ledger/money-helpers.js';

const MODELS = [
  { name: 'priced', deployments: [{ provider: 'mock', model: 'p', inputPricePerMTok: 3, outputPricePerMTok: 11, mock: { completionTokens: 24 } }] },
  { name: 'no-usage', deployments: [{ provider: 'mock', model: 'n', inputPricePerMTok: 3, outputPricePerMTok: 11, mock: { completionTokens: 30, reportUsage: false } }] },
  { name: 'slow', deployments: [{ provider: 'mock', model: 's', inputPricePerMTok: 3, outputPricePerMTok: 11, mock: { completionTokens: 400, tokensPerSecond: 100 } }] },
];

let gw: TestGateway;
let books: Books;

beforeAll(async () => {
  gw = await startTestGateway({ models: MODELS });
  books = new Books(gw.database);
});

afterAll(async () => {
  await books?.close();
  await gw?.close();
});

async function chat(authorization: string, body: object): Promise<number> {
  const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body: JSON.stringify(body) });
  await res.body.text();
  return res.statusCode;
}

/** The gateway's value of one counter series, named with its labels (0 when absent). */
async function counter(series: string): Promise<number> {
  const text = await (await request(`${gw.url}/metrics`)).body.text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

/** The gateway's credits counter for one `operation` label. */
const credits = (operation: string) => counter(`nemo_credits_micros_total{operation="${operation}"}`);

describe('credits on /metrics and in the ledger', () => {
  it('agree to the micro-unit after a mixed run', async () => {
    const rich = await fundedOrg(gw.gateway, 50_000_000, 'metrics rich');
    const poor = await fundedOrg(gw.gateway, 100, 'metrics poor');
    const messages = [{ role: 'user', content: 'agree with the ledger' }];
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push(await chat(rich.auth.authorization, { model: 'priced', messages, max_tokens: 50 }));
    for (let i = 0; i < 5; i++) statuses.push(await chat(rich.auth.authorization, { model: 'priced', messages, stream: true }));
    for (let i = 0; i < 3; i++) statuses.push(await chat(rich.auth.authorization, { model: 'no-usage', messages, stream: true, max_tokens: 100 }));
    statuses.push(await chat(poor.auth.authorization, { model: 'priced', messages, max_tokens: 50 }));
    // A client that leaves mid-stream: charged for what was produced, the rest released.
    const controller = new AbortController();
    const res = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...rich.auth },
      body: JSON.stringify({ model: 'slow', messages, stream: true, max_tokens: 400 }),
      signal: controller.signal,
    });
    for await (const _chunk of res.body) {
      controller.abort();
      break;
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(18);
    expect(statuses.filter((s) => s === 402)).toHaveLength(1);

    // Every hold and lease of both orgs closed (settles, releases and lease returns go through the batched writer).
    await Promise.all([books.settled(rich.orgId, 10_000), books.settled(poor.orgId, 10_000)]);
    const { rows } = await books.pool.query<{ kind: string; reserved: number; settled: number; released: number }>(
      `SELECT r.kind,
              coalesce(sum(e.held_delta) FILTER (WHERE e.kind = 'reserve'), 0)::float8 AS reserved,
              coalesce(sum(e.charged) FILTER (WHERE e.kind = 'settle'), 0)::float8 AS settled,
              coalesce(sum(e.available_delta) FILTER (WHERE e.kind IN ('settle', 'release')), 0)::float8 AS released
       FROM nemo.ledger_entries e JOIN nemo.reservations r ON r.org_id = e.org_id AND r.reservation_id = e.reservation_id
       WHERE e.kind IN ('reserve', 'settle', 'release') GROUP BY r.kind`,
    );
    const none = { reserved: 0, settled: 0, released: 0 };
    const of = (kind: string) => {
      const row = rows.find((r) => r.kind === kind);
      return row === undefined ? none : { reserved: row.reserved, settled: row.settled, released: row.released };
    };
    // Per-request holds, and credit leases (a lease's charges are its requests' settle rows).
    const [holds, leases] = [of('request'), of('lease')];
    const charged = holds.settled + leases.settled;
    expect(charged).toBeGreaterThan(0);
    // Everything reserved in the ledger was charged or given back.
    expect(holds.reserved).toBe(holds.settled + holds.released);
    expect(leases.reserved).toBe(leases.settled + leases.released);
    expect({ granted: await counter('nemo_ledger_lease_granted_micros_total'), returned: await counter('nemo_ledger_lease_returned_micros_total') }).toEqual({ granted: leases.reserved, returned: leases.released });
    // The requests' counters: what was charged is the ledger's charges; what was reserved was charged or released.
    await waitFor(async () => (await credits('reserved')) === (await credits('settled')) + (await credits('released')), 5_000);
    expect(await credits('settled')).toBe(charged);
    if (LEDGER_MODE === 'hold') {
      // Every request held its own bound: the counters are the ledger's rows, one for one.
      expect(leases).toEqual(none);
      expect({ reserved: await credits('reserved'), settled: await credits('settled'), released: await credits('released') }).toEqual(holds);
    } else {
      // Bounds carved from leases are not rows of their own: the counters hold more than the holds' rows.
      expect(await credits('reserved')).toBeGreaterThanOrEqual(holds.reserved);
      expect(leases.reserved).toBeGreaterThan(0);
    }
    expect(await books.check()).toEqual([]);
  });

  it('the usage report (by key and model) equals the ledger per key and model', async () => {
    const org = await fundedOrg(gw.gateway, 50_000_000, 'usage org');
    const second = (await gw.gateway.admin.createKey({ kind: 'platform' }, org.orgId, { name: 'second', role: 'member' })) as { id: string; key: string };
    const messages = [{ role: 'user', content: 'usage' }];
    for (let i = 0; i < 4; i++) expect(await chat(org.auth.authorization, { model: 'priced', messages, max_tokens: 40 })).toBe(200);
    for (let i = 0; i < 3; i++) expect(await chat(`Bearer ${second.key}`, { model: 'no-usage', messages, stream: true, max_tokens: 60 })).toBe(200);
    await books.settled(org.orgId, 10_000);
    const res = await request(`${gw.url}/admin/v1/orgs/${org.orgId}/usage?group_by=key,model`, { headers: org.auth });
    const report = (await res.body.json()) as { data: Array<{ key_id: string; model: string; requests: number; charged_micros: number; held_micros: number }> };
    expect(res.statusCode).toBe(200);
    const { rows } = await books.pool.query<{ key_id: string; model: string; requests: number; charged: number }>(
      // A charge against a lease names its key and model itself; a hold's settle through its reservation.
      `SELECT coalesce(e.key_id, r.key_id) AS key_id, coalesce(e.model, r.model) AS model, count(*)::int AS requests, sum(e.charged)::float8 AS charged
       FROM nemo.ledger_entries e JOIN nemo.reservations r ON r.org_id = e.org_id AND r.reservation_id = e.reservation_id
       WHERE e.org_id = $1 AND e.kind = 'settle' GROUP BY 1, 2 ORDER BY 1, 2`,
      [org.orgId],
    );
    expect(rows).toHaveLength(2);
    expect(report.data.map((g) => ({ key_id: g.key_id, model: g.model, requests: g.requests, charged: g.charged_micros })).sort((a, b) => a.model.localeCompare(b.model)))
      .toEqual([...rows].sort((a, b) => a.model.localeCompare(b.model)));
    expect(report.data.every((g) => g.held_micros === 0)).toBe(true);
    // Bad input is a 400, not a report.
    const bad = await request(`${gw.url}/admin/v1/orgs/${org.orgId}/usage?group_by=key,colour`, { headers: org.auth });
    expect(bad.statusCode).toBe(400);
    expect(((await bad.body.json()) as { error: { code: string } }).error.code).toBe('invalid_request');
    // Year 0 is valid ISO 8601 but not PostgreSQL input: a 400 naming the parameter, not a 500.
    const yearZero = await request(`${gw.url}/admin/v1/orgs/${org.orgId}/usage?from=0000-01-01T00:00:00Z`, { headers: org.auth });
    expect(yearZero.statusCode).toBe(400);
    expect(((await yearZero.body.json()) as { error: { param: string } }).error.param).toBe('from');
    // In range as an instant but year 0 as written, which PostgreSQL cannot read: a 400 too.
    const edge = await request(`${gw.url}/admin/v1/orgs/${org.orgId}/usage?from=${encodeURIComponent('0000-12-31T23:00:00-01:00')}`, { headers: org.auth });
    expect(edge.statusCode).toBe(400);
    expect(((await edge.body.json()) as { error: { param: string } }).error.param).toBe('from');
  });
});
