// LiteLLM interop end to end: one database whose schema public is LiteLLM's (the fixture, with rows
// inserted as LiteLLM writes them), `nemo migrate` twice and `nemo litellm sync` from the CLI, and a
// real `nemo start` with NEMO_LITELLM=1. LiteLLM keys stream through the OpenAI SDK and are charged
// in their org's nemo ledger; LiteLLM's blocked, expires, models, team and org are honoured; an
// org_admin's key administers its org and nothing else; and public is byte-identical afterwards.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient } from '../support/admin-client.js';
import { applyLiteLLMFixture, LiteLLMWriter, litellmToken, snapshotPublic, withOwner } from '../support/litellm.js';
import { appRoleConnection, createTestDatabase, databaseEnv, type TestDatabase } from '../support/test-database.js';
import { CLI, waitFor } from './helpers/gateway.js';
import { ledgerCheckCli, spawnGateway, type GatewayProcess } from './ledger/money-helpers.js';

const run = promisify(execFile);
const MASTER_KEY = 'litellm-suite-master-key-0123456789';
const PRICES = { inputPricePerMTok: 3, outputPricePerMTok: 5 };
const MODELS = [
  { name: 'm', deployments: [{ provider: 'mock', model: 'm', ...PRICES, mock: { completionTokens: 6 } }] },
  { name: 'other', deployments: [{ provider: 'mock', model: 'other', ...PRICES, mock: { completionTokens: 6 } }] },
];
/** LiteLLM answers are trusted this long here (30 s by default): short, so the suite sees a block land. */
const KEY_CACHE_TTL_MS = 500;

/** `nemo <args>` against the test database, as an operator runs it. */
async function nemo(database: TestDatabase, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: { ...process.env, ...databaseEnv(database) }, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('LiteLLM interop: one database, two schema owners', () => {
  let database: TestDatabase;
  let gateway: GatewayProcess;
  let litellm: LiteLLMWriter;
  let before: Record<string, unknown>;
  const ids = {} as { orgA: string; orgB: string; teamA: string; teamElsewhere: string; blockedTeam: string };
  const keys = {} as Record<'alice' | 'bob' | 'carol' | 'blocked' | 'expired' | 'narrow' | 'orphan' | 'teamOnly' | 'blockedTeamKey', string>;

  const openai = (apiKey: string) => new OpenAI({ apiKey, baseURL: `${gateway.url}/v1`, maxRetries: 0 });
  const chat = (apiKey: string, model = 'm') =>
    fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }] }),
    }).then(async (res) => ({ status: res.status, body: (await res.json()) as { error?: { message: string; code: string } } }));
  const platform = () => adminClient(gateway.url, MASTER_KEY);
  const owner = <T>(fn: (client: pg.Client) => Promise<T>) => withOwner(database.url, fn);

  beforeAll(async () => {
    database = await createTestDatabase();
    await applyLiteLLMFixture(database.url);
    litellm = new LiteLLMWriter(database.url);
    ids.orgA = await litellm.organization('Acme');
    ids.orgB = await litellm.organization('Globex');
    ids.teamA = await litellm.team(ids.orgA, 'engineering', { models: ['m', 'other'] });
    ids.teamElsewhere = await litellm.team(null, 'no org');
    ids.blockedTeam = await litellm.team(ids.orgA, 'suspended', { blocked: true });
    await litellm.user('alice', { organizationId: ids.orgA, role: 'org_admin' });
    await litellm.user('bob', { organizationId: ids.orgA, role: 'internal_user' });
    await litellm.user('carol', { organizationId: ids.orgB, role: 'org_admin' });
    keys.alice = await litellm.key({ organizationId: ids.orgA, teamId: ids.teamA, userId: 'alice', alias: 'alice laptop' });
    keys.bob = await litellm.key({ organizationId: ids.orgA, userId: 'bob' });
    keys.carol = await litellm.key({ organizationId: ids.orgB, userId: 'carol' });
    keys.blocked = await litellm.key({ organizationId: ids.orgA, blocked: true });
    keys.expired = await litellm.key({ organizationId: ids.orgA, expires: new Date(Date.now() - 60_000) });
    keys.narrow = await litellm.key({ organizationId: ids.orgA, models: ['other'] });
    keys.orphan = await litellm.key({ teamId: ids.teamElsewhere });
    // No organization on the key: the team's is the key's.
    keys.teamOnly = await litellm.key({ teamId: ids.teamA });
    keys.blockedTeamKey = await litellm.key({ organizationId: ids.orgA, teamId: ids.blockedTeam });
    before = await snapshotPublic(database.url);
  });

  afterAll(async () => {
    await gateway?.stop();
    await database?.drop();
  });

  it('nemo migrate twice and nemo litellm sync mirror every org and team with the same ids', async () => {
    for (let i = 0; i < 2; i++) {
      const migrated = await nemo(database, ['migrate']);
      expect(migrated.code, migrated.stderr).toBe(0);
    }
    const synced = await nemo(database, ['litellm', 'sync']);
    expect(synced.code, synced.stderr).toBe(0);
    // The org-less team cannot be mirrored (a nemo team belongs to an org): reported, not guessed.
    expect(JSON.parse(synced.stdout)).toEqual({ orgs: 2, teams: 2, skipped_orgs: [], skipped_teams: [ids.teamElsewhere] });
    expect(JSON.parse((await nemo(database, ['litellm', 'sync'])).stdout)).toEqual(JSON.parse(synced.stdout));

    const orgs = await owner((c) => c.query('SELECT org_id::text, name, litellm_organization_id FROM nemo.orgs ORDER BY name'));
    expect(orgs.rows).toEqual([
      { org_id: ids.orgA, name: 'Acme', litellm_organization_id: ids.orgA },
      { org_id: ids.orgB, name: 'Globex', litellm_organization_id: ids.orgB },
    ]);
    const teams = await owner((c) => c.query('SELECT org_id::text, team_id::text, name, litellm_team_id FROM nemo.teams ORDER BY name'));
    expect(teams.rows).toEqual([
      { org_id: ids.orgA, team_id: ids.teamA, name: 'engineering', litellm_team_id: ids.teamA },
      { org_id: ids.orgA, team_id: ids.blockedTeam, name: 'suspended', litellm_team_id: ids.blockedTeam },
    ]);
    const accounts = await owner((c) => c.query('SELECT org_id::text FROM nemo.credit_accounts ORDER BY 1'));
    expect(accounts.rows.map((r) => r.org_id)).toEqual([ids.orgA, ids.orgB].sort());
  });

  it('nemo litellm doctor finds every column NemoRouter reads', async () => {
    const doctor = await nemo(database, ['litellm', 'doctor']);
    expect(doctor.code, doctor.stdout + doctor.stderr).toBe(0);
    expect(JSON.parse(doctor.stdout)).toEqual({ ok: true, problems: [] });
  });

  it('serves with NEMO_LITELLM=1, ready, and the platform tops up a mirrored org', async () => {
    gateway = await spawnGateway(database, { models: MODELS, litellm: { keyCacheTtlMs: KEY_CACHE_TTL_MS } }, { NEMO_LITELLM: '1', NEMO_MASTER_KEY: MASTER_KEY });
    const ready = await fetch(`${gateway.url}/readyz`);
    expect(await ready.json()).toMatchObject({ status: 'ready', checks: expect.arrayContaining([{ name: 'litellm_schema', ok: true }]) });
    await platform().org(ids.orgA).ok('POST', '/credits', { amount_micros: 1_000_000, idempotency_key: 'litellm-suite-topup' });
  });

  it('a LiteLLM key streams a completion through the OpenAI SDK and its org is charged in the nemo ledger', async () => {
    const stream = await openai(keys.alice).chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'stream me something' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      usage = chunk.usage ?? usage;
    }
    expect(text.length).toBeGreaterThan(0);
    expect(usage).toBeDefined();
    const cost = usage!.prompt_tokens * PRICES.inputPricePerMTok + usage!.completion_tokens * PRICES.outputPricePerMTok;

    // The charge is the key's mirror row's, in org A's ledger, and in the spend view by LiteLLM ids.
    const mirror = await owner((c) => c.query('SELECT org_id::text, key_id::text, team_id::text, role, created_by FROM nemo.api_keys WHERE litellm_token = $1', [litellmToken(keys.alice)]));
    expect(mirror.rows).toEqual([{ org_id: ids.orgA, key_id: expect.any(String), team_id: ids.teamA, role: 'admin', created_by: 'litellm' }]);
    const keyId = mirror.rows[0].key_id as string;
    await waitFor(async () => (await owner((c) => c.query(`SELECT 1 FROM nemo.ledger_entries WHERE kind = 'settle' AND key_id = $1`, [keyId]))).rowCount === 1, 10_000, 50);
    const settles = await owner((c) => c.query(`SELECT org_id::text, charged::int FROM nemo.ledger_entries WHERE kind = 'settle' AND key_id = $1`, [keyId]));
    expect(settles.rows).toEqual([{ org_id: ids.orgA, charged: cost }]);
    const spend = await owner((c) => c.query(`SELECT litellm_organization_id, litellm_team_id, litellm_key_token, requests::int, charged_micros::int FROM nemo.litellm_spend WHERE key_id = $1`, [keyId]));
    expect(spend.rows).toEqual([{ litellm_organization_id: ids.orgA, litellm_team_id: ids.teamA, litellm_key_token: litellmToken(keys.alice), requests: 1, charged_micros: cost }]);
  });

  it('keys without a team, and keys whose org is their team\'s, run the whole path too', async () => {
    expect((await chat(keys.bob)).status).toBe(200);
    expect((await chat(keys.teamOnly)).status).toBe(200);
    const mirrors = await owner((c) => c.query('SELECT org_id::text, team_id::text FROM nemo.api_keys WHERE litellm_token = ANY ($1) ORDER BY team_id NULLS FIRST', [[litellmToken(keys.bob), litellmToken(keys.teamOnly)]]));
    expect(mirrors.rows).toEqual([{ org_id: ids.orgA, team_id: null }, { org_id: ids.orgA, team_id: ids.teamA }]);
  });

  it('refuses blocked, expired, unknown and org-less LiteLLM keys with 401, and models outside the key\'s list with 403', async () => {
    const blocked = await chat(keys.blocked);
    expect(blocked).toMatchObject({ status: 401, body: { error: { message: 'The API key is blocked.' } } });
    expect((await chat(keys.blockedTeamKey)).status).toBe(401);
    expect(await chat(keys.expired)).toMatchObject({ status: 401, body: { error: { message: 'The API key has expired.' } } });
    expect((await chat('sk-not-a-key-litellm-knows')).status).toBe(401);
    expect((await chat(keys.orphan)).status).toBe(401);
    expect(await chat(keys.narrow, 'm')).toMatchObject({ status: 403, body: { error: { code: 'model_not_allowed' } } });
    expect((await chat(keys.narrow, 'other')).status).toBe(200);
    // The SDK surfaces LiteLLM's refusals as typed errors, like any key's.
    await expect(openai(keys.blocked).chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it('an org_admin\'s LiteLLM key administers its own org, through the membership join, and nothing else', async () => {
    const alice = adminClient(gateway.url, keys.alice);
    const orgKeys = await alice.org(ids.orgA).call<{ data: Array<{ name: string }> }>('GET', '/keys');
    expect(orgKeys.status).toBe(200);
    expect(orgKeys.body.data.map((k) => k.name)).toContain('alice laptop');
    expect((await alice.org(ids.orgA).call('GET', '/credits')).status).toBe(200);
    // Another org: refused, whichever way the route words it.
    expect([403, 404]).toContain((await alice.org(ids.orgB).call('GET', '/keys')).status);
    expect([403, 404]).toContain((await alice.org(ids.orgB).call('GET', '/ledger')).status);
    // Carol administers org B, and cannot read org A's ledger, logs or keys.
    const carol = adminClient(gateway.url, keys.carol);
    expect((await carol.org(ids.orgB).call('GET', '/credits')).status).toBe(200);
    for (const path of ['/ledger', '/keys', '/logs/export', '/usage', '/credits']) {
      expect([403, 404], path).toContain((await carol.org(ids.orgA).call('GET', path)).status);
    }
    // Bob is a member of org A, not its admin: /v1 only.
    expect((await adminClient(gateway.url, keys.bob).org(ids.orgA).call('GET', '/keys')).status).toBe(403);
    // No LiteLLM key is the platform: the org list is its own org.
    const orgs = await alice.call<{ data: Array<{ id: string }> }>('GET', '/orgs');
    expect(orgs.body.data.map((o) => o.id)).toEqual([ids.orgA]);
    expect((await alice.call('POST', '/orgs', { name: 'not allowed' })).status).toBe(403);
  });

  it('an org with no credits gets 402 for its LiteLLM keys, and no other org pays', async () => {
    // Credit leases of the requests above go back after their (short, in the suites) lifetime: the
    // books are compared once nothing is held.
    const accounts = () => owner((c) => c.query('SELECT org_id::text, available::int, held::int FROM nemo.credit_accounts ORDER BY 1'));
    await waitFor(async () => (await accounts()).rows.every((r) => r.held === 0), 10_000, 50);
    const before = await accounts();
    expect(await chat(keys.carol)).toMatchObject({ status: 402, body: { error: { code: 'insufficient_quota' } } });
    expect((await accounts()).rows).toEqual(before.rows);
  });

  it('nemo_app holds no privilege on public, and its view of the spend is one org\'s', async () => {
    const app = new pg.Client(appRoleConnection(database));
    await app.connect();
    try {
      const privileged = await app.query(`SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                           WHERE n.nspname = 'public' AND c.relkind = 'r'
                                             AND has_table_privilege(current_user, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')`);
      expect(privileged.rows).toEqual([]);
      await expect(app.query('SELECT token FROM public."LiteLLM_VerificationToken"')).rejects.toMatchObject({ code: '42501' });
      await app.query('BEGIN');
      await app.query(`SELECT set_config('nemo.org_id', $1, true)`, [ids.orgB]);
      expect((await app.query('SELECT * FROM nemo.litellm_spend')).rows).toEqual([]);
      expect((await app.query('SELECT * FROM nemo.api_keys WHERE litellm_token IS NOT NULL')).rows.every((r) => r.org_id === ids.orgB)).toBe(true);
      await app.query(`SELECT set_config('nemo.org_id', $1, true)`, [ids.orgA]);
      expect((await app.query('SELECT count(*)::int AS n FROM nemo.litellm_spend')).rows[0].n).toBeGreaterThan(0);
      await app.query('ROLLBACK');
    } finally {
      await app.end();
    }
  });

  it('leaves schema public byte-identical: migrate twice, sync, traffic and admin calls changed nothing in it', async () => {
    expect((await nemo(database, ['migrate'])).code).toBe(0);
    expect((await nemo(database, ['litellm', 'sync'])).code).toBe(0);
    expect(await snapshotPublic(database.url)).toEqual(before);
  });

  it('a key LiteLLM blocks or deletes stops working within the key-cache lifetime (no notification comes from LiteLLM)', async () => {
    expect((await chat(keys.bob)).status).toBe(200);
    await litellm.block(keys.bob);
    const blockedAt = Date.now();
    await waitFor(async () => (await chat(keys.bob)).status === 401, KEY_CACHE_TTL_MS + 5_000, 50);
    expect(Date.now() - blockedAt).toBeLessThan(KEY_CACHE_TTL_MS + 5_000);
    expect((await chat(keys.teamOnly)).status).toBe(200);
    await litellm.delete(keys.teamOnly);
    await waitFor(async () => (await chat(keys.teamOnly)).status === 401, KEY_CACHE_TTL_MS + 5_000, 50);
  });

  it('a LiteLLM key created after the start, of an org never synced, works once its org has credits', async () => {
    const orgC = await litellm.organization('Initech');
    const key = await litellm.key({ organizationId: orgC });
    // First use mirrors the org, with an empty account: 402, nothing charged.
    expect((await chat(key)).status).toBe(402);
    await platform().org(orgC).ok('POST', '/credits', { amount_micros: 100_000, idempotency_key: 'initech-topup' });
    expect((await chat(key)).status).toBe(200);
  });

  it('ledger check passes: every balance equals its ledger', async () => {
    await ledgerCheckCli(databaseEnv(database));
  });
});

describe('LiteLLM schema drift: doctor, /readyz and hotfixes', () => {
  let database: TestDatabase;
  let gateway: GatewayProcess | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
    await applyLiteLLMFixture(database.url);
    // An older LiteLLM: teams could not be blocked yet, and keys carried no organization.
    await withOwner(database.url, (c) => c.query('ALTER TABLE "LiteLLM_TeamTable" DROP COLUMN blocked; ALTER TABLE "LiteLLM_VerificationToken" DROP COLUMN organization_id'));
    expect((await nemo(database, ['migrate'])).code).toBe(0);
  });

  afterAll(async () => {
    await gateway?.stop();
    await database?.drop();
  });

  it('nemo litellm doctor names each missing column and exits 1', async () => {
    const doctor = await nemo(database, ['litellm', 'doctor']);
    expect(doctor.code).toBe(1);
    expect(JSON.parse(doctor.stdout)).toEqual({
      ok: false,
      problems: ['column public."LiteLLM_VerificationToken".organization_id is missing', 'column public."LiteLLM_TeamTable".blocked is missing'],
    });
  });

  it('/readyz answers 503 while the drift lasts, and ready once `nemo litellm hotfix` added the columns', async () => {
    gateway = await spawnGateway(database, { models: MODELS, litellm: { driftCheckIntervalMs: 1_000 } }, { NEMO_LITELLM: '1' });
    const notReady = await fetch(`${gateway.url}/readyz`);
    expect(notReady.status).toBe(503);
    const body = (await notReady.json()) as { checks: Array<{ name: string; ok: boolean; error?: string }> };
    expect(body.checks.find((c) => c.name === 'litellm_schema')).toMatchObject({ ok: false, error: expect.stringContaining('"LiteLLM_TeamTable".blocked is missing') });
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    expect(metrics).toMatch(/^nemo_litellm_schema_problems 2$/m);

    const hotfix = await nemo(database, ['litellm', 'hotfix']);
    expect(hotfix.code, hotfix.stderr).toBe(0);
    expect(JSON.parse(hotfix.stdout)).toEqual({ applied: ['0001_team_blocked.sql', '0002_key_organization.sql'], ok: true, problems: [] });
    // Idempotent: a second run changes nothing and succeeds.
    const snapshot = await snapshotPublic(database.url);
    expect((await nemo(database, ['litellm', 'hotfix'])).code).toBe(0);
    expect(await snapshotPublic(database.url)).toEqual(snapshot);
    await waitFor(async () => (await fetch(`${gateway!.url}/readyz`)).status === 200, 10_000, 100);
  });

  it('nemo litellm sync on a database without LiteLLM\'s tables says so and exits 1', async () => {
    const bare = await createTestDatabase();
    try {
      expect((await nemo(bare, ['migrate'])).code).toBe(0);
      const synced = await nemo(bare, ['litellm', 'sync']);
      expect(synced.code).toBe(1);
      expect(synced.stderr).toMatch(/no LiteLLM tables in schema public/);
      const doctor = await nemo(bare, ['litellm', 'doctor']);
      expect(doctor.code).toBe(1);
      expect(JSON.parse(doctor.stdout).problems).toContain('table public."LiteLLM_VerificationToken" is missing (is this LiteLLM\'s database, migrated by LiteLLM?)');
    } finally {
      await bare.drop();
    }
  });
});
