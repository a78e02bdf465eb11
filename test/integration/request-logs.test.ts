// Request logs against a real Postgres: the batched writer loses no row under concurrent load, a
// flaky database and close(); partition maintenance creates days ahead and drops only expired
// days; row-level security hides other orgs' rows; and the streaming export sends 1,000,000 rows
// through uWebSockets.js with flat memory, pauses on backpressure and lets go of an aborted cursor.
import { once } from 'node:events';
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openDatabase, type Database } from '../../src/db/database.js';
import { INSUFFICIENT_PRIVILEGE, LOCK_NOT_AVAILABLE } from '../../src/db/sqlstate.js';
import { RequestAuthenticator } from '../../src/http/authenticate.js';
import { exportStats, registerExportRoutes } from '../../src/http/routes/exports.js';
import type { HttpApp } from '../../src/http/server-api.js';
import { selectHttpServer } from '../../src/http/server.js';
import { RequestLogPartitions } from '../../src/logs/partitions.js';
import { RequestLogWriter, type RequestLogEntry } from '../../src/logs/request-log.js';
import { AdminService } from '../../src/tenancy/admin-service.js';
import { KeyAuthenticator } from '../../src/tenancy/key-authenticator.js';
import type { Principal } from '../../src/tenancy/principal.js';
import { createTestDatabase, testDatabaseConfig, type TestDatabase } from '../support/test-database.js';

const MASTER_KEY = 'request-logs-test-master-key';
const PLATFORM: Principal = { kind: 'platform' };
const BIG_EXPORT_ROWS = 1_000_000;

let testDb: TestDatabase;
let db: Database;
let owner: pg.Pool;
let admin: AdminService;
let keys: KeyAuthenticator;
let app: HttpApp | undefined;
/** Node's http module buffers more per socket than uWS: its RSS bound is looser. */
let onNodeServer = false;
let baseUrl: string;
let port: number;
/** The database's UTC day, as the partition functions see it. */
let today: Date;

interface TestOrg {
  readonly id: string;
  readonly adminAuth: { authorization: string };
  readonly memberAuth: { authorization: string };
}

async function newOrg(name: string, loggingLevel: 'none' | 'metadata' | 'full' = 'metadata'): Promise<TestOrg> {
  const org = await admin.createOrg(PLATFORM, { name });
  if (loggingLevel !== 'metadata') await admin.updateConfig(PLATFORM, org.id, { logging_level: loggingLevel });
  const adminKey = (await admin.createKey(PLATFORM, org.id, { name: 'admin', role: 'admin' })) as { key: string };
  const memberKey = (await admin.createKey(PLATFORM, org.id, { name: 'member', role: 'member' })) as { key: string };
  return { id: org.id, adminAuth: { authorization: `Bearer ${adminKey.key}` }, memberAuth: { authorization: `Bearer ${memberKey.key}` } };
}

function entry(orgId: string, requestId: string, extra: Partial<RequestLogEntry> = {}): RequestLogEntry {
  return {
    requestId, orgId, teamId: null, keyId: null, model: 'gpt-4o', deployment: 'gpt-4o#0', status: 200, statusClass: '2xx', errorCode: null,
    stream: true, promptTokens: 12, completionTokens: 34, costMicros: 56, latencyMs: 78.5, ttftMs: 9.25, guardrailAction: 'none', guardrailRules: [], ...extra,
  };
}

const ymd = (offsetDays: number) => new Date(today.getTime() + offsetDays * 86_400_000).toISOString().slice(0, 10).replaceAll('-', '');
/** A partition of the legacy table (0006), by day of creation. */
const dayName = (offsetDays: number) => `request_logs_p${ymd(offsetDays)}`;
/** A partition of nemo.request_log_entries, by expiry day. */
const expiryName = (offsetDays: number) => `request_log_entries_e${ymd(offsetDays)}`;
const dayIso = (offsetDays: number) => new Date(today.getTime() + offsetDays * 86_400_000).toISOString();

async function partitions(parent = 'nemo.request_log_entries'): Promise<string[]> {
  const { rows } = await owner.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = $1::regclass ORDER BY 1`,
    [parent],
  );
  return rows.map((r) => r.name);
}

async function ownerCount(orgId: string): Promise<number> {
  return (await owner.query<{ n: number }>('SELECT count(*)::int AS n FROM nemo.request_log_entries WHERE org_id = $1', [orgId])).rows[0]!.n;
}

function exportUrl(orgId: string, kind: 'logs' | 'ledger', format: 'ndjson' | 'csv', from = dayIso(-1), to = dayIso(2)): string {
  return `${baseUrl}/admin/v1/orgs/${orgId}/${kind}/export?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}&format=${format}`;
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  db = await openDatabase(testDatabaseConfig(testDb, 8));
  owner = new pg.Pool({ connectionString: testDb.url, max: 3 });
  admin = new AdminService(db, new Set());
  keys = new KeyAuthenticator(db, { ttlMs: 60_000, negativeTtlMs: 1_000, negativeMaxEntries: 100 });
  const { rows } = await owner.query<{ day: string }>("SELECT to_char((now() AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD') AS day");
  today = new Date(`${rows[0]!.day}T00:00:00Z`);

  const { implementation } = selectHttpServer({ implementation: process.env.NEMO_HTTP_SERVER === 'node' ? 'node' : 'auto' });
  onNodeServer = !implementation.native;
  app = implementation.createApp();
  registerExportRoutes(app, { admin, auth: new RequestAuthenticator(keys, MASTER_KEY), db, exports: { stalledClientTimeoutMs: 3_000 } });
  app.any('/*', (res) => void res.writeStatus('404 Not Found').end());
  port = await app.listen('127.0.0.1', 0);
  baseUrl = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  app?.stopListening();
  app?.closeAll();
  (app as unknown as { close?: () => void } | undefined)?.close?.();
  await keys?.close();
  await owner?.end();
  await db?.close();
  await testDb?.drop();
});

describe('the batched writer', () => {
  it('loses no row and writes none twice: 50,000 rows from concurrent producers over a flaky database, then close()', async () => {
    const orgA = await newOrg('writer A');
    const orgB = await newOrg('writer B');
    // A database that fails one call in six before it runs, and one in six after it committed
    // (a lost answer): retries must keep every row, exactly once.
    let calls = 0;
    const flaky = {
      async query(text: string, values?: unknown[]) {
        calls++;
        if (calls % 6 === 0) throw new Error('injected: connection lost before the statement');
        const result = await db.query(text, values);
        if (calls % 6 === 3) throw new Error('injected: connection lost after the commit');
        return result;
      },
    } as Pick<Database, 'query'>;
    const writer = new RequestLogWriter(flaky, { defaultRetentionDays: 30, flushIntervalMs: 20, maxBatchRows: 1_000, maxQueuedRows: 100_000, maxRetryDelayMs: 50 });
    const producers = 25;
    const perProducer = 2_000;
    await Promise.all(
      Array.from({ length: producers }, async (_, p) => {
        for (let i = 0; i < perProducer; i++) {
          expect(writer.record(entry(p % 2 === 0 ? orgA.id : orgB.id, `p${p}-r${i}`))).toBe(true);
          if (i % 100 === 0) await new Promise((resolve) => setImmediate(resolve));
        }
      }),
    );
    // close() right after the last record: what is queued or in flight is written before it resolves.
    await writer.close(30_000);
    expect(writer.dropped).toBe(0);
    expect(writer.queued).toBe(0);
    expect(writer.written).toBe(producers * perProducer);

    const { rows } = await owner.query<{ n: number; distinct_requests: number; a: number; b: number }>(
      `SELECT count(*)::int AS n, count(DISTINCT request_id)::int AS distinct_requests,
              count(*) FILTER (WHERE org_id = $1)::int AS a, count(*) FILTER (WHERE org_id = $2)::int AS b
         FROM nemo.request_log_entries WHERE org_id IN ($1, $2)`,
      [orgA.id, orgB.id],
    );
    expect(rows[0]).toEqual({ n: 50_000, distinct_requests: 50_000, a: 26_000, b: 24_000 });
    // Each producer's rows keep the times they were recorded at, in its order.
    const order = await owner.query<{ request_id: string; at: number }>("SELECT request_id, extract(epoch FROM created_at)::float8 AS at FROM nemo.request_log_entries WHERE org_id = $1 AND request_id LIKE 'p0-%'", [orgA.id]);
    const times = order.rows.sort((x, y) => Number(x.request_id.slice(4)) - Number(y.request_id.slice(4))).map((r) => r.at);
    expect(times.length).toBe(perProducer);
    expect(times.every((t, i) => i === 0 || t >= times[i - 1]!)).toBe(true);
  }, 60_000);

  it("honours the org's logging level: none writes nothing, metadata no bodies, full keeps them", async () => {
    const none = await newOrg('level none', 'none');
    const metadata = await newOrg('level metadata', 'metadata');
    const full = await newOrg('level full', 'full');
    const writer = new RequestLogWriter(db, { defaultRetentionDays: 30, flushIntervalMs: 10, maxBatchRows: 100, maxQueuedRows: 1_000 });
    for (const org of [none, metadata, full]) {
      writer.record(entry(org.id, `body-${org.id}`, { requestBody: '{"messages":[]}', responseBody: 'hello, "world"', guardrailAction: 'redact', guardrailRules: ['pii:email', 'deny_word:1'] }));
    }
    await writer.close();
    expect(await ownerCount(none.id)).toBe(0);
    const { rows } = await owner.query<{ org_id: string; request_body: string | null; response_body: string | null; guardrail_rules: string[]; guardrail_action: string }>(
      'SELECT org_id, request_body, response_body, guardrail_rules, guardrail_action FROM nemo.request_log_entries WHERE org_id IN ($1, $2)',
      [metadata.id, full.id],
    );
    const byOrg = new Map(rows.map((r) => [r.org_id, r]));
    expect(byOrg.get(metadata.id)).toMatchObject({ request_body: null, response_body: null, guardrail_rules: ['pii:email', 'deny_word:1'], guardrail_action: 'redact' });
    expect(byOrg.get(full.id)).toMatchObject({ request_body: '{"messages":[]}', response_body: 'hello, "world"' });
  });

  it('writes a body with a lone surrogate or a NUL (as U+FFFD) with the rest of its batch, instead of failing the batch on every retry', async () => {
    const full = await newOrg('lone surrogates', 'full');
    const writer = new RequestLogWriter(db, { defaultRetentionDays: 30, flushIntervalMs: 10, maxBatchRows: 100, maxQueuedRows: 1_000, maxBodyChars: 4 });
    writer.record(entry(full.id, 'surrogate-before', { requestBody: 'ok', responseBody: 'ok' }));
    // An upstream's broken escape ("\ud83d" alone), and a pair the 4-character cut splits.
    writer.record(entry(full.id, 'surrogate-lone', { requestBody: 'a\ud83db', responseBody: 'abc😀' }));
    writer.record(entry(full.id, 'surrogate-nul', { requestBody: 'a\0b', responseBody: '\0' }));
    writer.record(entry(full.id, 'surrogate-after', { requestBody: 'ok', responseBody: 'ok' }));
    // An upstream's usage past the integer columns: logged as unknown, not refused.
    writer.record(entry(full.id, 'surrogate-tokens', { promptTokens: 3_000_000_000, completionTokens: 7 }));
    await writer.close(2_000);
    expect(writer.dropped).toBe(0);
    const { rows } = await owner.query<{ request_id: string; request_body: string | null; response_body: string | null; prompt_tokens: number | null; completion_tokens: number }>(
      'SELECT request_id, request_body, response_body, prompt_tokens, completion_tokens FROM nemo.request_log_entries WHERE org_id = $1 ORDER BY request_id',
      [full.id],
    );
    expect(rows).toEqual([
      { request_id: 'surrogate-after', request_body: 'ok', response_body: 'ok', prompt_tokens: 12, completion_tokens: 34 },
      { request_id: 'surrogate-before', request_body: 'ok', response_body: 'ok', prompt_tokens: 12, completion_tokens: 34 },
      { request_id: 'surrogate-lone', request_body: 'a\ufffdb', response_body: 'abc\ufffd', prompt_tokens: 12, completion_tokens: 34 },
      { request_id: 'surrogate-nul', request_body: 'a\ufffdb', response_body: '\ufffd', prompt_tokens: 12, completion_tokens: 34 },
      { request_id: 'surrogate-tokens', request_body: null, response_body: null, prompt_tokens: null, completion_tokens: 7 },
    ]);
  });

  it('creates the partition of an expiry day the maintenance job has not reached, then writes the row', async () => {
    const org = await newOrg('far future');
    const writer = new RequestLogWriter(db, { defaultRetentionDays: 30, flushIntervalMs: 10, maxBatchRows: 100, maxQueuedRows: 1_000 });
    writer.record(entry(org.id, 'future-row', { at: new Date(today.getTime() + 100 * 86_400_000 + 5_000) }));
    writer.record(entry(org.id, 'own-retention', { retentionDays: 3 }));
    await writer.close();
    expect(await ownerCount(org.id)).toBe(2);
    expect(await partitions()).toEqual(expect.arrayContaining([expiryName(130), expiryName(3)]));
  });

  it("keeps each row until its org's retention has passed: the expiry day is the created day plus the retention", async () => {
    const org = await newOrg('retention');
    await admin.updateConfig(PLATFORM, org.id, { log_retention_days: 7 });
    const writer = new RequestLogWriter(db, { defaultRetentionDays: 30, flushIntervalMs: 10, maxBatchRows: 100, maxQueuedRows: 1_000 });
    writer.record(entry(org.id, 'seven', { retentionDays: 7 }));
    writer.record(entry(org.id, 'default', { retentionDays: null }));
    writer.record(entry(org.id, 'clamped', { retentionDays: 99_999 }));
    await writer.close();
    const { rows } = await owner.query<{ request_id: string; expires_on: string }>(
      "SELECT request_id, to_char(expires_on, 'YYYYMMDD') AS expires_on FROM nemo.request_log_entries WHERE org_id = $1 ORDER BY request_id",
      [org.id],
    );
    expect(rows).toEqual([
      { request_id: 'clamped', expires_on: ymd(731) },
      { request_id: 'default', expires_on: ymd(30) },
      { request_id: 'seven', expires_on: ymd(7) },
    ]);
  });
});

describe('partition maintenance', () => {
  it("creates the partitions ahead for every org's retention and drops only expired days, logging each", async () => {
    const short = await newOrg('retention 7');
    await admin.updateConfig(PLATFORM, short.id, { log_retention_days: 7 });
    // Expired: expiry days 3 and 1 days ago; kept: today's (its day has not ended) and beyond.
    await db.query('SELECT nemo.ensure_request_log_entry_partitions($1::date[])', [[-3, -1, 0, 5].map((d) => dayIso(d).slice(0, 10))]);
    for (const offset of [-3, -1, 0, 5]) {
      await owner.query(
        `INSERT INTO nemo.request_log_entries (org_id, created_at, log_id, expires_on, request_id, status, status_class)
         VALUES ($1, $2::date - 7 + interval '1 hour', gen_random_uuid(), $2::date, $3, 200, '2xx')`,
        [short.id, dayIso(offset).slice(0, 10), `expires${offset}`],
      );
    }
    // The legacy table, by day of creation: expired past the default retention of 30 days.
    await db.query('SELECT nemo.ensure_request_log_partitions($1::date, 2)', [dayIso(-45).slice(0, 10)]);
    await db.query('SELECT nemo.ensure_request_log_partitions($1::date, 2)', [dayIso(-31).slice(0, 10)]);
    for (const offset of [-45, -31, -30, 0]) {
      await owner.query(
        `INSERT INTO nemo.request_logs (org_id, created_at, log_id, request_id, status, status_class)
         VALUES ($1, $2::timestamptz + interval '1 hour', gen_random_uuid(), $3, 200, '2xx')`,
        [short.id, dayIso(offset), `day${offset}`],
      );
    }
    const expired = [expiryName(-3), expiryName(-1), dayName(-45), dayName(-44), dayName(-31)];

    // Two instances at once: the advisory lock serializes them; between them each day once.
    const instances = [0, 1].map(() => new RequestLogPartitions(db, { daysAhead: 7, retentionDays: 30, intervalMs: 3_600_000 }));
    const logSpy = vi.spyOn(process.stderr, 'write');
    const results = await Promise.all(instances.map((i) => i.runOnce()));
    const logged = logSpy.mock.calls.map((c) => String(c[0])).filter((line) => line.includes('expired partition dropped'));
    logSpy.mockRestore();
    const dropped = results.flatMap((r) => r.dropped).sort();
    expect(dropped).toEqual([...expired].sort());
    expect(new Set(results.flatMap((r) => r.created)).size).toBe(results.flatMap((r) => r.created).length);
    expect(logged.length).toBe(expired.length);

    // Rows written from yesterday to 7 days ahead find their partition, at 7 days' retention and at 30.
    const now = await partitions();
    for (let day = -1; day <= 7; day++) expect(now).toEqual(expect.arrayContaining([expiryName(day + 7), expiryName(day + 30)]));
    for (const name of expired) expect([...now, ...(await partitions('nemo.request_logs'))]).not.toContain(name);
    const kept = await owner.query<{ request_id: string }>('SELECT request_id FROM nemo.request_log_entries WHERE org_id = $1 ORDER BY expires_on', [short.id]);
    expect(kept.rows.map((r) => r.request_id)).toEqual(['expires0', 'expires5']);
    const keptLegacy = await owner.query<{ request_id: string }>('SELECT request_id FROM nemo.request_logs WHERE org_id = $1 ORDER BY created_at', [short.id]);
    expect(keptLegacy.rows.map((r) => r.request_id)).toEqual(['day-30', 'day0']);

    // Every partition of both tables has row-level security enabled, forced and its policy, like the parent.
    const { rows: security } = await owner.query<{ relname: string; ok: boolean }>(
      `SELECT c.relname, c.relrowsecurity AND c.relforcerowsecurity AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid) AS ok
         FROM pg_class c
        WHERE c.oid IN ('nemo.request_logs'::regclass, 'nemo.request_log_entries'::regclass)
           OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent IN ('nemo.request_logs'::regclass, 'nemo.request_log_entries'::regclass))`,
    );
    expect(security.length).toBeGreaterThan(20);
    expect(security.filter((r) => !r.ok)).toEqual([]);

    // Idempotent: a second run finds nothing to do; start() runs once at once.
    expect(await instances[0]!.runOnce()).toEqual({ created: [], dropped: [] });
    expect(await instances[1]!.start()).toEqual({ created: [], dropped: [] });
    await Promise.all(instances.map((i) => i.close()));
  });

  it('gives up a drop that would wait behind a long reader instead of queueing every write behind it', async () => {
    await db.query('SELECT nemo.ensure_request_log_partitions($1::date, 1)', [dayIso(-60).slice(0, 10)]);
    const reader = await owner.connect();
    try {
      await reader.query('BEGIN');
      await reader.query('SELECT count(*) FROM nemo.request_logs');
      const startedAt = performance.now();
      await expect(db.query('SELECT nemo.drop_expired_request_log_partitions(30)')).rejects.toMatchObject({ cause: { code: LOCK_NOT_AVAILABLE } });
      expect(performance.now() - startedAt).toBeLessThan(8_000);
    } finally {
      await reader.query('ROLLBACK');
      reader.release();
    }
    expect((await db.query<{ name: string }>('SELECT p AS name FROM nemo.drop_expired_request_log_partitions(30) AS p')).rows).toEqual([{ name: dayName(-60) }]);
  }, 20_000);

  it('refuses a retention below one day', async () => {
    await expect(db.query('SELECT nemo.drop_expired_request_log_partitions(0)')).rejects.toThrow(/at least 1 day/);
    expect(() => new RequestLogPartitions(db, { daysAhead: 7, retentionDays: 0, intervalMs: 1_000 })).toThrow(/retentionDays/);
  });
});

describe('row-level security and authorization of the export', () => {
  let orgA: TestOrg;
  let orgB: TestOrg;

  beforeAll(async () => {
    orgA = await newOrg('rls A', 'full');
    orgB = await newOrg('rls B', 'full');
    const writer = new RequestLogWriter(db, { defaultRetentionDays: 30, flushIntervalMs: 10, maxBatchRows: 100, maxQueuedRows: 1_000 });
    for (let i = 0; i < 3; i++) writer.record(entry(orgA.id, `a-${i}`, { requestBody: 'secret of A, "quoted"\nsecond line' }));
    for (let i = 0; i < 2; i++) writer.record(entry(orgB.id, `b-${i}`));
    await writer.close();
  });

  it('shows nemo_app only the tenant of the transaction, and nothing with no tenant', async () => {
    const seen = await db.withTenant(orgB.id, async (client) => (await client.query<{ org_id: string }>('SELECT DISTINCT org_id FROM nemo.request_log_entries')).rows);
    expect(seen).toEqual([{ org_id: orgB.id }]);
    const counted = await db.withTenant(orgB.id, async (client) => (await client.query<{ n: number }>('SELECT count(*)::int AS n FROM nemo.request_log_entries WHERE org_id = $1', [orgA.id])).rows[0]!.n);
    expect(counted).toBe(0);
    expect((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM nemo.request_log_entries')).rows[0]!.n).toBe(0);
    // Partitions are reachable only through the parent.
    await expect(db.query(`SELECT count(*) FROM nemo.${expiryName(30)}`)).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE });
    await expect(db.query(`SELECT count(*) FROM nemo.${dayName(0)}`)).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE });
  });

  it("exports an org's own rows to its admin key and to the platform, as NDJSON", async () => {
    for (const auth of [orgB.adminAuth, { authorization: `Bearer ${MASTER_KEY}` }]) {
      const res = await fetch(exportUrl(orgB.id, 'logs', 'ndjson'), { headers: auth });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/x-ndjson');
      const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.map((l) => l.request_id).sort()).toEqual(['b-0', 'b-1']);
      expect(lines[0]).toMatchObject({ org_id: orgB.id, status: 200, status_class: '2xx', stream: true, cost_micros: 56, latency_ms: 78.5, guardrail_rules: [] });
    }
  });

  it('escapes CSV fields (commas, quotes, line breaks)', async () => {
    const res = await fetch(exportUrl(orgA.id, 'logs', 'csv'), { headers: orgA.adminAuth });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    const text = await res.text();
    expect(text.startsWith('created_at,request_id,org_id,')).toBe(true);
    expect(text).toContain('"secret of A, ""quoted""\nsecond line"');
    expect(text.split('\r\n').filter((l) => l !== '').length).toBe(4);
  });

  it('refuses other orgs, member keys, anonymous callers and bad ranges', async () => {
    const status = async (url: string, headers: Record<string, string>) => (await fetch(url, { headers })).status;
    expect(await status(exportUrl(orgB.id, 'logs', 'ndjson'), orgA.adminAuth)).toBe(404);
    expect(await status(exportUrl(orgA.id, 'logs', 'ndjson'), orgA.memberAuth)).toBe(403);
    expect(await status(exportUrl(orgA.id, 'ledger', 'ndjson'), {})).toBe(401);
    expect(await status(`${baseUrl}/admin/v1/orgs/${orgA.id}/logs/export?from=2026-01-02&to=2026-01-01`, orgA.adminAuth)).toBe(400);
    expect(await status(`${baseUrl}/admin/v1/orgs/${orgA.id}/logs/export?to=2026-01-01`, orgA.adminAuth)).toBe(400);
  });

  it("exports the org's ledger entries", async () => {
    await admin.addCredits(PLATFORM, orgA.id, { amount_micros: 1_000, idempotency_key: 'export-topup-a' });
    await admin.addCredits(PLATFORM, orgB.id, { amount_micros: 2_000, idempotency_key: 'export-topup-b' });
    const res = await fetch(exportUrl(orgA.id, 'ledger', 'ndjson'), { headers: orgA.adminAuth });
    expect(res.status).toBe(200);
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([expect.objectContaining({ org_id: orgA.id, kind: 'topup', available_delta: 1_000, idempotency_key: 'export-topup-a' })]);
  });
});

describe(`the streaming export of ${BIG_EXPORT_ROWS.toLocaleString('en')} rows`, () => {
  let big: TestOrg;

  beforeAll(async () => {
    big = await newOrg('big export');
    // Straight in as the owner, 10 µs apart, spread over three expiry days (three retentions).
    await db.query('SELECT nemo.ensure_request_log_entry_partitions($1::date[])', [[7, 30, 90].map((d) => dayIso(d).slice(0, 10))]);
    await owner.query(
      `INSERT INTO nemo.request_log_entries (org_id, created_at, log_id, expires_on, request_id, key_id, model, deployment, status, status_class, stream,
                                             prompt_tokens, completion_tokens, cost_micros, latency_ms, ttft_ms, guardrail_action, guardrail_rules)
       SELECT $1, $2::timestamptz + i * interval '10 microseconds', gen_random_uuid(), $2::date + (ARRAY[7, 30, 90])[i % 3 + 1], 'req-' || i, $1, 'gpt-4o', 'gpt-4o#0', 200, '2xx', i % 2 = 0,
              10, 20, 30, 12.5, 3.25, 'none', '{}'
         FROM generate_series(1, ${BIG_EXPORT_ROWS}) AS i`,
      [big.id, dayIso(0)],
    );
    await owner.query('ANALYZE nemo.request_log_entries');
  }, 60_000);

  it('sends every row with flat memory', async () => {
    const before = process.memoryUsage();
    let peakRss = before.rss;
    let peakHeap = before.heapUsed;
    const sampler = setInterval(() => {
      const now = process.memoryUsage();
      peakRss = Math.max(peakRss, now.rss);
      peakHeap = Math.max(peakHeap, now.heapUsed);
    }, 50);
    let lines = 0;
    let bytes = 0;
    let last = '';
    try {
      const res = await fetch(exportUrl(big.id, 'logs', 'ndjson'), { headers: big.adminAuth });
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        bytes += value.byteLength;
        for (let i = 0; i < value.length; i++) if (value[i] === 10) lines++;
        last = (last + Buffer.from(value.subarray(Math.max(0, value.length - 1_000))).toString('latin1')).slice(-1_000);
      }
    } finally {
      clearInterval(sampler);
    }
    expect(lines).toBe(BIG_EXPORT_ROWS);
    expect(JSON.parse(last.slice(last.lastIndexOf('\n', last.length - 2) + 1)), 'the last line').toMatchObject({ request_id: `req-${BIG_EXPORT_ROWS}` });
    const mb = (n: number) => n / (1024 * 1024);
    console.info(`export: ${mb(bytes).toFixed(0)} MB sent; heap +${mb(peakHeap - before.heapUsed).toFixed(1)} MB, RSS +${mb(peakRss - before.rss).toFixed(1)} MB at peak`);
    // The body is far larger than the bound: buffering it anywhere would break it.
    expect(mb(bytes)).toBeGreaterThan(200);
    expect(mb(peakHeap - before.heapUsed), 'heap growth, MB').toBeLessThan(100);
    expect(mb(peakRss - before.rss), 'RSS growth, MB').toBeLessThan(onNodeServer ? 160 : 100);
  }, 60_000);

  it('stops reading the cursor while the client does not read, and releases it when the client leaves', async () => {
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.pause();
    const batchesAtStart = exportStats.batchesSent;
    socket.write(`GET /admin/v1/orgs/${big.id}/logs/export?from=${encodeURIComponent(dayIso(-1))}&to=${encodeURIComponent(dayIso(2))} HTTP/1.1\r\nhost: x\r\nauthorization: ${big.adminAuth.authorization}\r\n\r\n`);
    await vi.waitFor(() => expect(exportStats.batchesSent).toBeGreaterThan(batchesAtStart), { timeout: 5_000, interval: 20 });
    await new Promise((resolve) => setTimeout(resolve, 700));
    const paused = exportStats.batchesSent;
    await new Promise((resolve) => setTimeout(resolve, 700));
    // Nothing read from the cursor while the socket is full: far fewer than the 1,000 batches.
    expect(exportStats.batchesSent).toBe(paused);
    expect(paused - batchesAtStart).toBeLessThan(200);
    expect(exportStats.active).toBe(1);

    socket.destroy();
    await vi.waitFor(() => expect(exportStats.active).toBe(0), { timeout: 5_000, interval: 20 });
    // The cursor is closed and its connection back in the pool, its transaction ended.
    await vi.waitFor(() => expect(db.pool.totalCount - db.pool.idleCount).toBe(0), { timeout: 5_000, interval: 20 });
    const { rows } = await owner.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'nemo_app' AND state <> 'idle' AND datname = current_database()");
    expect(rows[0]!.n).toBe(0);
  }, 20_000);

  it('cuts off a client that stops reading for longer than the stall timeout', async () => {
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.pause();
    const closed = once(socket, 'close');
    socket.write(`GET /admin/v1/orgs/${big.id}/logs/export?from=${encodeURIComponent(dayIso(-1))}&to=${encodeURIComponent(dayIso(2))} HTTP/1.1\r\nhost: x\r\nauthorization: ${big.adminAuth.authorization}\r\n\r\n`);
    // A paused socket sees its end only once it reads again; resume after the timeout passed.
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    expect(exportStats.active).toBe(0);
    socket.resume();
    await closed;
    await vi.waitFor(() => expect(db.pool.totalCount - db.pool.idleCount).toBe(0), { timeout: 5_000, interval: 20 });
  }, 20_000);
});
