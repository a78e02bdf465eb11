// An org's logging level and retention, end to end: set through the admin API, carried by the key
// lookup, honoured by the gateway through the official openai SDK. `none` writes no row, `metadata`
// no bodies, `full` the request as sent upstream and the answer as the client got it (streams
// too); the retention decides each row's expiry partition.
import OpenAI from 'openai';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, fundedOrgOverHttp } from '../support/admin-client.js';
import { startTestGateway, waitFor, type TestGateway } from './helpers/gateway.js';

const MODELS = [{ name: 'logged', deployments: [{ provider: 'mock', model: 'l', inputPricePerMTok: 1, outputPricePerMTok: 2, mock: { completionTokens: 12 } }] }];
const DEFAULT_RETENTION_DAYS = 30;
const MASTER_KEY = 'nemo-master-request-log-levels-0123456789';

let gw: TestGateway;
let owner: pg.Pool;

beforeAll(async () => {
  gw = await startTestGateway({ models: MODELS, logs: { flushIntervalMs: 20, retentionDays: DEFAULT_RETENTION_DAYS } }, { NEMO_MASTER_KEY: MASTER_KEY });
  owner = new pg.Pool({ connectionString: gw.database.url, max: 2 });
});

afterAll(async () => {
  await owner?.end();
  await gw?.close();
});

interface LoggedRow {
  request_id: string;
  stream: boolean;
  request_body: string | null;
  response_body: string | null;
  days_kept: number;
}

/** The admin API on one org as the platform (master key). */
const asPlatform = (orgId: string) => adminClient(gw.url, MASTER_KEY).org(orgId);

/** An org with credits and an admin key, configured through the admin API (as its own admin). */
async function orgWith(config: Record<string, unknown>): Promise<{ id: string; client: OpenAI }> {
  const { orgId, key } = await fundedOrgOverHttp(adminClient(gw.url, MASTER_KEY), 'log levels', 1e9, { name: 'k' });
  const patched = await adminClient(gw.url, key).org(orgId).call('PATCH', '/config', config);
  expect(patched.status).toBe(200);
  expect(patched.body).toMatchObject(config);
  return { id: orgId, client: new OpenAI({ apiKey: key, baseURL: `${gw.url}/v1`, maxRetries: 0 }) };
}

/** One answer and one stream; resolves with what the client received. */
async function traffic(client: OpenAI): Promise<{ answer: string; streamed: string }> {
  const completion = await client.chat.completions.create({ model: 'logged', messages: [{ role: 'user', content: 'log me, please' }], max_tokens: 20 });
  let streamed = '';
  const stream = await client.chat.completions.create({ model: 'logged', messages: [{ role: 'user', content: 'and stream me' }], max_tokens: 20, stream: true });
  for await (const chunk of stream) streamed += chunk.choices[0]?.delta.content ?? '';
  return { answer: JSON.stringify(completion), streamed };
}

async function rowsOf(orgId: string): Promise<LoggedRow[]> {
  const { rows } = await owner.query<LoggedRow>(
    `SELECT request_id, stream, request_body, response_body, expires_on - (created_at AT TIME ZONE 'UTC')::date AS days_kept
       FROM nemo.request_log_entries WHERE org_id = $1 ORDER BY created_at`,
    [orgId],
  );
  return rows;
}

describe("an org's logging level and retention", () => {
  it('full: keeps the request as sent upstream, the answer as received and a stream\'s text, for the org\'s retention', async () => {
    const org = await orgWith({ logging_level: 'full', log_retention_days: 7 });
    const { answer, streamed } = await traffic(org.client);
    await waitFor(async () => (await rowsOf(org.id)).length === 2, 5_000);
    const [plain, stream] = await rowsOf(org.id);
    expect(plain!.stream).toBe(false);
    expect(JSON.parse(plain!.request_body!)).toMatchObject({ model: 'logged', messages: [{ role: 'user', content: 'log me, please' }], max_tokens: 20 });
    expect(JSON.parse(plain!.response_body!)).toEqual(JSON.parse(answer));
    expect(stream!.stream).toBe(true);
    expect(JSON.parse(stream!.request_body!)).toMatchObject({ messages: [{ role: 'user', content: 'and stream me' }], stream: true });
    expect(streamed.length).toBeGreaterThan(0);
    expect(stream!.response_body).toBe(streamed);
    expect([plain!.days_kept, stream!.days_kept]).toEqual([7, 7]);
  });

  it('metadata: one row per request, no bodies, kept for the default retention', async () => {
    const org = await orgWith({ logging_level: 'metadata' });
    await traffic(org.client);
    await waitFor(async () => (await rowsOf(org.id)).length === 2, 5_000);
    for (const row of await rowsOf(org.id)) expect(row).toMatchObject({ request_body: null, response_body: null, days_kept: DEFAULT_RETENTION_DAYS });
  });

  it('none: no row at all, and the gateway sends none (nothing is dropped or queued for it)', async () => {
    const org = await orgWith({ logging_level: 'none' });
    const before = await metric('nemo_request_log_rows_written_total');
    await traffic(org.client);
    // A metadata org's request afterwards: once its row is written, the none org's would have been.
    const witness = await orgWith({ logging_level: 'metadata' });
    await witness.client.chat.completions.create({ model: 'logged', messages: [{ role: 'user', content: 'witness' }], max_tokens: 5 });
    await waitFor(async () => (await rowsOf(witness.id)).length === 1, 5_000);
    expect(await rowsOf(org.id)).toEqual([]);
    expect((await metric('nemo_request_log_rows_written_total')) - before).toBe(1);
  });

  it('a change of level or retention reaches the gateway at once (the key cache is invalidated)', async () => {
    const org = await orgWith({ logging_level: 'metadata' });
    await org.client.chat.completions.create({ model: 'logged', messages: [{ role: 'user', content: 'before' }], max_tokens: 5 });
    const res = await asPlatform(org.id).call('PATCH', '/config', { logging_level: 'full', log_retention_days: 400 });
    expect(res.status).toBe(200);
    await waitFor(async () => {
      await org.client.chat.completions.create({ model: 'logged', messages: [{ role: 'user', content: 'after' }], max_tokens: 5 });
      return (await rowsOf(org.id)).some((r) => r.request_body !== null);
    }, 5_000, 50);
    const rows = await rowsOf(org.id);
    expect(rows[0]).toMatchObject({ request_body: null, days_kept: DEFAULT_RETENTION_DAYS });
    expect(rows.at(-1)).toMatchObject({ days_kept: 400 });
  });

  it('refuses a bad retention with 400 and changes nothing', async () => {
    const org = await orgWith({ log_retention_days: 9 });
    for (const bad of [0, 732, 1.5, '7', -1]) {
      const res = await asPlatform(org.id).call('PATCH', '/config', { log_retention_days: bad });
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(res.body.error.type).toBe('invalid_request_error');
    }
    const config = (await asPlatform(org.id).call('GET', '/config')).body;
    expect(config).toMatchObject({ log_retention_days: 9 });
    // null returns the org to the default.
    const reset = await asPlatform(org.id).call('PATCH', '/config', { log_retention_days: null });
    expect(reset.body).toMatchObject({ log_retention_days: null });
  });
});

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}
