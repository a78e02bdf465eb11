// GET /admin/v1/orgs/:org/logs over real HTTP and a real Postgres: the org's request logs, newest
// first and without bodies (has_bodies says whether the export holds them), filtered by equality,
// paged exactly by (created_at, log_id) across rows written in the same microsecond and across the
// legacy table of migration 0006; another org's rows never appear, bad queries are 400s.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM, startTestGateway, waitFor, type TestGateway } from './helpers/gateway.js';

interface LogRow {
  created_at: string;
  log_id: string;
  org_id: string;
  request_id: string;
  key_id: string | null;
  model: string | null;
  status: number;
  status_class: string;
  error_code: string | null;
  stream: boolean;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  cost_micros: number | null;
  latency_ms: number | null;
  ttft_ms: number | null;
  guardrail_action: string;
  has_bodies: boolean;
}

let gw: TestGateway;
let owner: pg.Client;
let orgB: { id: string; admin: string };
let adminKeyId: string;
/** Rows put straight into nemo.request_logs (0006), all at one instant: the tie the cursor must break. */
const LEGACY_AT = '2001-02-03T04:05:06.123456Z';
const LEGACY_ROWS = 5;

async function list(path: string, key = gw.apiKey): Promise<{ status: number; body: any }> {
  const res = await fetch(`${gw.url}/admin/v1/orgs/${path}`, { headers: { authorization: `Bearer ${key}` } });
  return { status: res.status, body: await res.json() };
}

async function chat(key: string, model: string, requestId: string, stream = false): Promise<number> {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'x-request-id': requestId },
    body: JSON.stringify({ model, stream, messages: [{ role: 'user', content: 'Hello' }] }),
  });
  await res.text();
  return res.status;
}

beforeAll(async () => {
  gw = await startTestGateway({
    models: [
      { name: 'm', deployments: [{ provider: 'mock', model: 'm', inputPricePerMTok: 3, outputPricePerMTok: 15 }] },
      { name: 'm2', deployments: [{ provider: 'mock', model: 'm2' }] },
    ],
    logs: { flushIntervalMs: 20 },
  });
  await gw.gateway.admin.updateConfig(PLATFORM, gw.orgId, { logging_level: 'full' });
  const keys = (await gw.gateway.admin.listKeys(PLATFORM, gw.orgId)) as Array<{ id: string }>;
  adminKeyId = keys[0]!.id;
  const b = await gw.gateway.admin.createOrg(PLATFORM, { name: 'org B' });
  await gw.gateway.admin.addCredits(PLATFORM, b.id, { amount_micros: 1e9, idempotency_key: 'b credits' });
  const bAdmin = (await gw.gateway.admin.createKey(PLATFORM, b.id, { name: 'B admin', role: 'admin' })) as { key: string };
  orgB = { id: b.id, admin: bAdmin.key };

  owner = new pg.Client({ connectionString: gw.database.url });
  await owner.connect();
  await owner.query('SET row_security = off');
  await owner.query(`SELECT nemo.ensure_request_log_partitions($1::date, 1)`, [LEGACY_AT.slice(0, 10)]);
  for (let i = 0; i < LEGACY_ROWS; i++) {
    await owner.query(
      `INSERT INTO nemo.request_logs (org_id, created_at, log_id, request_id, model, status, status_class, latency_ms)
       VALUES ($1, $2, $3, $4, 'm', 200, '2xx', 1)`,
      [gw.orgId, LEGACY_AT, randomUUID(), `legacy-${i}`],
    );
  }

  // Org A (logging full): three answers, one refusal; org B (metadata): one answer.
  expect(await chat(gw.apiKey, 'm', 'a-first')).toBe(200);
  expect(await chat(gw.apiKey, 'm2', 'a-second', true)).toBe(200);
  expect(await chat(gw.apiKey, 'm', 'a-third')).toBe(200);
  expect(await chat(gw.apiKey, 'no-such-model', 'a-refused')).toBe(404);
  expect(await chat(orgB.admin, 'm', 'b-only')).toBe(200);
  await waitFor(async () => (await list(`${gw.orgId}/logs?limit=200`)).body.data?.length === 4 + LEGACY_ROWS, 10_000, 50);
  await waitFor(async () => (await list(`${orgB.id}/logs`, orgB.admin)).body.data?.length === 1, 10_000, 50);
});

afterAll(async () => {
  await owner?.end();
  await gw?.close();
});

describe('GET /admin/v1/orgs/:org/logs', () => {
  it('lists the org\'s requests newest first, with status, tokens, cost, latency and TTFT, and no bodies', async () => {
    const { status, body } = await list(`${gw.orgId}/logs`);
    expect(status).toBe(200);
    expect(body.object).toBe('list');
    const rows = body.data as LogRow[];
    expect(rows.map((r) => r.request_id).slice(0, 4)).toEqual(['a-refused', 'a-third', 'a-second', 'a-first']);
    expect(rows.map((r) => r.created_at)).toEqual([...rows.map((r) => r.created_at)].sort().reverse());
    const [refused, , streamed, first] = rows;
    expect(first).toMatchObject({ org_id: gw.orgId, key_id: adminKeyId, model: 'm', status: 200, status_class: '2xx', error_code: null, stream: false, has_bodies: true });
    expect(first!.prompt_tokens).toBeGreaterThan(0);
    expect(first!.completion_tokens).toBeGreaterThan(0);
    expect(first!.cost_micros).toBeGreaterThan(0);
    expect(first!.latency_ms).toBeGreaterThan(0);
    // Time to first token is a stream's.
    expect(first!.ttft_ms).toBeNull();
    expect(streamed).toMatchObject({ model: 'm2', stream: true });
    expect(streamed!.ttft_ms).toBeGreaterThan(0);
    expect(refused).toMatchObject({ status: 404, status_class: '4xx', error_code: 'NR_MODEL_NOT_FOUND' });
    for (const row of rows) expect(row).not.toHaveProperty('request_body');
    for (const row of rows) expect(row).not.toHaveProperty('response_body');
    expect(rows.find((r) => r.request_id === 'b-only')).toBeUndefined();
  });

  it('filters by status class, model, key and request id', async () => {
    const ids = async (query: string) => ((await list(`${gw.orgId}/logs?${query}`)).body.data as LogRow[]).map((r) => r.request_id);
    expect(await ids('status_class=4xx')).toEqual(['a-refused']);
    expect(await ids('model=m2')).toEqual(['a-second']);
    expect(await ids(`key_id=${adminKeyId}&status_class=2xx`)).toEqual(['a-third', 'a-second', 'a-first']);
    expect(await ids('request_id=a-first')).toEqual(['a-first']);
    expect(await ids(`team_id=${randomUUID()}`)).toEqual([]);
    // Free text is data: an injection-shaped value is compared, not run.
    expect(await ids(`model=${encodeURIComponent("m' OR '1'='1")}`)).toEqual([]);
  });

  it('pages exactly with before and before_log_id, across rows of one instant and the legacy table', async () => {
    const all = ((await list(`${gw.orgId}/logs?limit=200`)).body.data as LogRow[]).map((r) => r.log_id);
    expect(all).toHaveLength(4 + LEGACY_ROWS);
    const seen: string[] = [];
    let query = 'limit=2';
    for (let page = 0; page < 10; page++) {
      const rows = (await list(`${gw.orgId}/logs?${query}`)).body.data as LogRow[];
      seen.push(...rows.map((r) => r.log_id));
      if (rows.length < 2) break;
      const last = rows[rows.length - 1]!;
      query = `limit=2&before=${encodeURIComponent(last.created_at)}&before_log_id=${last.log_id}`;
    }
    expect(seen).toEqual(all);
    const legacy = ((await list(`${gw.orgId}/logs?limit=200`)).body.data as LogRow[]).filter((r) => r.request_id.startsWith('legacy-'));
    expect(legacy.map((r) => r.created_at)).toEqual(Array(LEGACY_ROWS).fill(LEGACY_AT));
    // The time alone: everything strictly older.
    const older = (await list(`${gw.orgId}/logs?before=${encodeURIComponent(LEGACY_AT)}`)).body.data as LogRow[];
    expect(older).toEqual([]);
  });

  it('shows another org only its own rows, and bodies only where the org logs them', async () => {
    const { body } = await list(`${orgB.id}/logs`, orgB.admin);
    expect((body.data as LogRow[]).map((r) => [r.request_id, r.org_id, r.has_bodies])).toEqual([['b-only', orgB.id, false]]);
    const across = await list(`${gw.orgId}/logs`, orgB.admin);
    expect(across.status).toBe(404);
    expect(across.body.error.message).toBe('No such organization.');
  });

  it.each([
    ['limit=0', 'limit'],
    ['limit=201', 'limit'],
    ['status_class=9xx', 'status_class'],
    ['before=yesterday', 'before'],
    ['before_log_id=42', 'before_log_id'],
    ['key_id=not-a-uuid', 'key_id'],
    ['colour=red', null],
  ])('refuses ?%s with a 400 naming %s', async (query, param) => {
    const { status, body } = await list(`${gw.orgId}/logs?${query}`);
    expect(status).toBe(400);
    expect(body.error.code).toBe('invalid_request');
    expect(body.error.param).toBe(param);
  });
});
