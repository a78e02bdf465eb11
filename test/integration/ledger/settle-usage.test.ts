// The usage each charge was priced from, on its ledger row, end to end and in both ledger modes: a
// request's settle row (in hold mode its own hold settled, in lease mode its charge against a
// lease) records the prompt, completion, cached, cache-write and reasoning tokens and the image
// parts the gateway priced, the same parts its request-log row shows, and its charged amount is
// exactly what pricing gives for them (usageCostMicros, plus the images). Streamed or not, a stream
// without usage (counted), embeddings; the books balance and `nemo ledger check` is clean after.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageCostMicros, usageCostMicros, type Prices } from '../../../src/ledger/pricing.js';
import type { Usage } from '../../../src/providers/types.js';
import { withParts } from '../../../src/providers/usage.js';
import { appRoleConnection, databaseEnv } from '../../support/test-database.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { Books, fundedOrg, ledgerCheckCli, pinnedMode, type FundedOrg, type LedgerMode } from './money-helpers.js';

const PRICES = { inputPricePerMTok: 4, cachedInputPricePerMTok: 1, cacheWritePricePerMTok: 5, outputPricePerMTok: 10, reasoningPricePerMTok: 12 };
const CACHED = 9;
const REASONING = 6;
const IMAGE_PRICE = 300;

/** The same prices as pricing.ts takes them. */
const PRICED: Prices = { input: 4, output: 10, cachedInput: 1, cacheWrite: 5, reasoning: 12, image: 0 };
const VISION: Prices = { input: 4, output: 10, image: IMAGE_PRICE };
const EMBED: Prices = { input: 4, output: 0 };

interface SettleRow {
  readonly request_id: string;
  readonly charged: number;
  readonly prompt_tokens: number | null;
  readonly completion_tokens: number | null;
  readonly cached_tokens: number | null;
  readonly cache_write_tokens: number | null;
  readonly reasoning_tokens: number | null;
  readonly images: number | null;
  /** 'request': a request's own hold settled; 'lease': a charge against a credit lease. */
  readonly held_by: 'request' | 'lease';
  readonly idempotency_key: string | null;
}

/** What usageCostMicros and imageCostMicros charge for the parts a row records. */
function pricedFromRow(prices: Prices, row: SettleRow): number {
  const usage = withParts(
    { prompt_tokens: row.prompt_tokens!, completion_tokens: row.completion_tokens!, total_tokens: row.prompt_tokens! + row.completion_tokens! },
    { cached: row.cached_tokens!, cacheWrite: row.cache_write_tokens!, reasoning: row.reasoning_tokens! },
  );
  return usageCostMicros(prices, usage) + imageCostMicros(prices, row.images!);
}

describe.each<LedgerMode>(['hold', 'lease'])('settle rows record the usage they were priced from (%s mode)', (mode) => {
  let gw: TestGateway;
  let books: Books;
  let org: FundedOrg;

  beforeAll(async () => {
    const pinned = pinnedMode(mode);
    gw = await startTestGateway(
      {
        ledger: pinned.ledger,
        models: [
          { name: 'cached', deployments: [{ provider: 'mock', model: 'cached', ...PRICES, mock: { completionTokens: 10, cachedPromptTokens: CACHED, reasoningTokens: REASONING } }] },
          { name: 'silent', deployments: [{ provider: 'mock', model: 'silent', ...PRICES, mock: { completionTokens: 7, reportUsage: false } }] },
          { name: 'vision', deployments: [{ provider: 'mock', model: 'vision', inputPricePerMTok: 4, outputPricePerMTok: 10, imagePriceMicros: IMAGE_PRICE, mock: { completionTokens: 5 } }] },
          { name: 'embed', deployments: [{ provider: 'mock', model: 'mock-embed', inputPricePerMTok: 4, mock: { completionTokens: 8 } }] },
        ],
        logs: { flushIntervalMs: 50 },
      },
      pinned.env,
    );
    books = new Books(gw.database);
    org = await fundedOrg(gw.gateway, 100_000_000, `settle usage ${mode}`);
  });

  afterAll(async () => {
    await books?.close();
    await gw?.close();
  });

  async function post(path: string, requestId: string, body: Record<string, unknown>): Promise<string> {
    const res = await fetch(`${gw.url}${path}`, { method: 'POST', headers: { ...org.auth, 'content-type': 'application/json', 'x-request-id': requestId }, body: JSON.stringify(body) });
    expect(res.status, await res.clone().text()).toBe(200);
    return res.text();
  }

  /** The usage a non-stream answer or a stream's last usage chunk reported to the client. */
  function reportedUsage(text: string, stream: boolean): Record<string, unknown> | undefined {
    if (!stream) return (JSON.parse(text) as { usage?: Record<string, unknown> }).usage;
    let usage: Record<string, unknown> | undefined;
    for (const line of text.split('\n')) {
      if (!line.startsWith('data: {')) continue;
      usage = (JSON.parse(line.slice(6)) as { usage?: Record<string, unknown> | null }).usage ?? usage;
    }
    return usage;
  }

  async function settleRow(requestId: string): Promise<SettleRow> {
    const read = () =>
      books.pool.query<SettleRow>(
        `SELECT e.request_id, e.charged::float8 AS charged, e.prompt_tokens::float8 AS prompt_tokens, e.completion_tokens::float8 AS completion_tokens,
                e.cached_tokens::float8 AS cached_tokens, e.cache_write_tokens::float8 AS cache_write_tokens, e.reasoning_tokens::float8 AS reasoning_tokens,
                e.images::float8 AS images, r.kind AS held_by, e.idempotency_key
         FROM nemo.ledger_entries e JOIN nemo.reservations r ON r.org_id = e.org_id AND r.reservation_id = e.reservation_id
         WHERE e.org_id = $1 AND e.kind = 'settle' AND e.request_id = $2`,
        [org.orgId, requestId],
      );
    await waitFor(async () => (await read()).rowCount === 1, 10_000, 20);
    return (await read()).rows[0]!;
  }

  async function loggedParts(requestId: string) {
    const read = () =>
      books.pool.query('SELECT prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_micros::float8 AS cost_micros FROM nemo.request_log_entries WHERE org_id = $1 AND request_id = $2', [org.orgId, requestId]);
    await waitFor(async () => (await read()).rowCount === 1, 10_000, 50);
    return (await read()).rows[0] as Record<string, number | null>;
  }

  const expectedHolder = mode === 'hold' ? 'request' : 'lease';

  it.each([false, true])('records cached and reasoning tokens on the settle row, charged exactly their price (stream: %s)', async (stream) => {
    const requestId = `parts-${stream ? 'stream' : 'answer'}-${randomUUID()}`;
    const text = await post('/v1/chat/completions', requestId, {
      model: 'cached', messages: [{ role: 'user', content: 'a prompt long enough to have cached tokens' }], stream, ...(stream ? { stream_options: { include_usage: true } } : {}),
    });
    const usage = reportedUsage(text, stream) as unknown as Usage;
    expect(usage).toMatchObject({ prompt_tokens_details: { cached_tokens: CACHED }, completion_tokens_details: { reasoning_tokens: REASONING } });

    const row = await settleRow(requestId);
    expect(row).toMatchObject({
      prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens, cached_tokens: CACHED, cache_write_tokens: 0, reasoning_tokens: REASONING, images: 0,
      held_by: expectedHolder,
    });
    // In lease mode the row is the request's charge against the lease, idempotent by its own id.
    expect(row.idempotency_key === null).toBe(mode === 'hold');
    expect(row.charged).toBe(pricedFromRow(PRICED, row));
    expect(row.charged).toBe(usageCostMicros(PRICED, usage));
    // The request log shows the same parts and the same charge (no part written: null there, 0 here).
    expect(await loggedParts(requestId)).toEqual({
      prompt_tokens: row.prompt_tokens, completion_tokens: row.completion_tokens, cached_tokens: CACHED, cache_write_tokens: null, reasoning_tokens: REASONING, cost_micros: row.charged,
    });
  });

  it('records the counted tokens of a stream whose upstream reported no usage, charged at the plain prices', async () => {
    const requestId = `counted-${randomUUID()}`;
    await post('/v1/chat/completions', requestId, { model: 'silent', messages: [{ role: 'user', content: 'count me' }], stream: true });
    const row = await settleRow(requestId);
    expect(row).toMatchObject({ cached_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0, images: 0, held_by: expectedHolder });
    // Counted with the deployment's tokenizer (the mock's 7 chunks of text).
    expect(row.prompt_tokens).toBeGreaterThan(0);
    expect(row.completion_tokens).toBeGreaterThan(0);
    expect(row.charged).toBe(row.prompt_tokens! * PRICES.inputPricePerMTok + row.completion_tokens! * PRICES.outputPricePerMTok);
    expect(row.charged).toBe(pricedFromRow(PRICED, row));
  });

  it('records the image parts of a model priced per image, charged on top of the tokens', async () => {
    const requestId = `images-${randomUUID()}`;
    const image = { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } };
    const text = await post('/v1/chat/completions', requestId, { model: 'vision', messages: [{ role: 'user', content: [{ type: 'text', text: 'Compare these.' }, image, image] }] });
    const usage = reportedUsage(text, false) as { prompt_tokens: number; completion_tokens: number };
    const row = await settleRow(requestId);
    expect(row).toMatchObject({ prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens, cached_tokens: 0, reasoning_tokens: 0, images: 2 });
    expect(row.charged).toBe(pricedFromRow(VISION, row));
    expect(row.charged).toBe(usage.prompt_tokens * 4 + usage.completion_tokens * 10 + 2 * IMAGE_PRICE);
  });

  it('records the prompt tokens of an embeddings request', async () => {
    const requestId = `embed-${randomUUID()}`;
    const text = await post('/v1/embeddings', requestId, { model: 'embed', input: ['one text', 'and another'] });
    const usage = (JSON.parse(text) as { usage: { prompt_tokens: number } }).usage;
    const row = await settleRow(requestId);
    expect(row).toMatchObject({ prompt_tokens: usage.prompt_tokens, completion_tokens: 0, cached_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0, images: 0, held_by: expectedHolder });
    expect(row.charged).toBe(pricedFromRow(EMBED, row));
  });

  it('lists the parts in the admin API\'s ledger, and leaves the books balanced', async () => {
    const requestId = `listed-${randomUUID()}`;
    await post('/v1/chat/completions', requestId, { model: 'cached', messages: [{ role: 'user', content: 'a prompt long enough to have cached tokens, listed' }] });
    const row = await settleRow(requestId);
    const res = await fetch(`${gw.url}/admin/v1/orgs/${org.orgId}/ledger?limit=100`, { headers: org.auth });
    const listed = ((await res.json()) as { data: Array<Record<string, unknown>> }).data.find((e) => e.kind === 'settle' && e.request_id === requestId);
    expect(listed).toMatchObject({
      charged: row.charged, prompt_tokens: row.prompt_tokens, completion_tokens: row.completion_tokens, cached_tokens: CACHED, cache_write_tokens: 0, reasoning_tokens: REASONING, images: 0,
    });
    // Every request above settled exactly once; nothing held, the books balance.
    await books.expectSettledBooks(org.orgId, { served: 6 });
    await ledgerCheckCli(databaseEnv(gw.database));
    // No settle row of this org goes without its parts; nothing else carries any.
    const { rows } = await books.pool.query<{ kind: string; with_parts: number; without: number }>(
      `SELECT kind, count(*) FILTER (WHERE prompt_tokens IS NOT NULL)::int AS with_parts, count(*) FILTER (WHERE prompt_tokens IS NULL)::int AS without
       FROM nemo.ledger_entries WHERE org_id = $1 GROUP BY kind ORDER BY kind`,
      [org.orgId],
    );
    for (const r of rows) expect(r, r.kind).toMatchObject(r.kind === 'settle' ? { with_parts: 6, without: 0 } : { with_parts: 0 });
  });

  it('carries the parts in the ledger export, NDJSON and CSV', async () => {
    const range = `from=${encodeURIComponent(new Date(Date.now() - 3_600_000).toISOString())}&to=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`;
    const exported = async (format: string) => {
      const res = await fetch(`${gw.url}/admin/v1/orgs/${org.orgId}/ledger/export?${range}&format=${format}`, { headers: org.auth });
      expect(res.status).toBe(200);
      return res.text();
    };
    const PARTS = ['prompt_tokens', 'completion_tokens', 'cached_tokens', 'cache_write_tokens', 'reasoning_tokens', 'images'] as const;
    const lines = (await exported('ndjson')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const settles = lines.filter((l) => l.kind === 'settle');
    expect(settles).toHaveLength(6);
    for (const line of settles) {
      const row = await settleRow(line.request_id as string);
      for (const part of PARTS) expect(line[part], part).toBe(row[part]);
    }
    for (const line of lines.filter((l) => l.kind !== 'settle')) for (const part of PARTS) expect(line[part], `${String(line.kind)} ${part}`).toBeNull();

    const csv = (await exported('csv')).split('\r\n').filter((l) => l !== '');
    const header = csv[0]!.split(',');
    expect(header.slice(-PARTS.length)).toEqual([...PARTS]);
    const cached = csv.slice(1).map((l) => l.split(',')).find((f) => f[header.indexOf('kind')] === 'settle' && f[header.indexOf('cached_tokens')] === String(CACHED));
    expect(cached?.[header.indexOf('reasoning_tokens')]).toBe(String(REASONING));
  });
});

/** An instance of the previous release still calls ledger_apply_v3: its settles stay exact and record no usage. */
describe('ledger_apply_v3 after migration 0012', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startTestGateway({ models: [{ name: 'any', deployments: [{ provider: 'mock', model: 'any' }] }] });
  });

  afterAll(async () => {
    await gw?.close();
  });

  it('settles a hold and charges a lease as before, with no usage on the rows', async () => {
    const org = await fundedOrg(gw.gateway, 10_000, 'v3 org');
    // As the gateway calls it (the app role), the rows read as the owner (no tenant, no RLS).
    const app = new pg.Client(appRoleConnection(gw.database));
    const owner = new pg.Client({ connectionString: gw.database.url });
    await app.connect();
    await owner.connect();
    try {
      const v3 = (kinds: string[], res: string[], leases: Array<string | null>, amounts: number[], mins: number[]) =>
        app.query<{ op: number; amount: string; refusal: string | null }>(
          'SELECT op, amount, refusal FROM nemo.ledger_apply_v3($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 60000, 60000) ORDER BY op',
          [kinds, kinds.map(() => org.orgId), res, leases, kinds.map((k, i) => (k === 'lease' ? 'lease:v3' : `v3 request ${i}`)), kinds.map(() => null), amounts, mins, kinds.map(() => 1), kinds.map(() => null)],
        );
      const [hold, lease, charge] = [randomUUID(), randomUUID(), randomUUID()];
      expect((await v3(['reserve', 'lease'], [hold, lease], [null, null], [1_000, 2_000], [1_000, 1])).rows.map((r) => Number(r.amount))).toEqual([1_000, 2_000]);
      expect((await v3(['settle', 'charge'], [hold, charge], [null, lease], [400, 300], [0, 0])).rows.map((r) => Number(r.amount))).toEqual([400, 300]);
      const { rows } = await owner.query(
        `SELECT charged::int, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, images
         FROM nemo.ledger_entries WHERE org_id = $1 AND kind = 'settle' ORDER BY charged DESC`,
        [org.orgId],
      );
      const none = { prompt_tokens: null, completion_tokens: null, cached_tokens: null, cache_write_tokens: null, reasoning_tokens: null, images: null };
      expect(rows).toEqual([{ charged: 400, ...none }, { charged: 300, ...none }]);
      expect((await app.query('SELECT * FROM nemo.ledger_check()')).rows).toEqual([]);
    } finally {
      await app.end();
      await owner.end();
    }
  });
});
