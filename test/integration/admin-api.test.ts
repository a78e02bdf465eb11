// The admin API over real HTTP and a real Postgres: who may call which route (a table-driven matrix
// over every route in src/http/routes/admin.ts), what bad input is refused without writing anything,
// and how keys created through it behave on /v1 (model allow-lists, revocation, expiry).
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { adminClient, createKey as createKeyOverHttp, createOrg as createOrgOverHttp, type CreatedKey } from '../support/admin-client.js';

const MASTER_KEY = 'master-key-for-tests-0123456789';
const MAX_ADMIN_BODY_BYTES = 64 * 1024;
const SQL_NAME = "x'); DROP TABLE nemo.orgs; --";
/** How soon a revocation, config change or expiry must take effect, and how often we look. */
const PROPAGATION_MS = 1000;
const POLL_MS = 50;

/** docs/api.md's error table, restated so the test does not trust the catalog it checks. */
const DOCUMENTED: Record<string, { status: number; type: string; code: string }> = {
  NR_INVALID_JSON: { status: 400, type: 'invalid_request_error', code: 'invalid_json' },
  NR_INVALID_UTF8: { status: 400, type: 'invalid_request_error', code: 'invalid_encoding' },
  NR_INVALID_REQUEST: { status: 400, type: 'invalid_request_error', code: 'invalid_request' },
  NR_UNAUTHORIZED: { status: 401, type: 'authentication_error', code: 'invalid_api_key' },
  NR_FORBIDDEN: { status: 403, type: 'permission_error', code: 'forbidden' },
  NR_MODEL_NOT_ALLOWED: { status: 403, type: 'permission_error', code: 'model_not_allowed' },
  NR_NOT_FOUND: { status: 404, type: 'not_found_error', code: 'not_found' },
  NR_CONFLICT: { status: 409, type: 'invalid_request_error', code: 'conflict' },
  NR_BODY_TOO_LARGE: { status: 413, type: 'invalid_request_error', code: 'request_too_large' },
  NR_UNSUPPORTED_MEDIA_TYPE: { status: 415, type: 'invalid_request_error', code: 'unsupported_media_type' },
};

interface OrgRow { id: string; name: string; created_at: string }
interface TeamRow { id: string; org_id: string; name: string }
interface MemberRow { id: string; org_id: string; role: string; team_id: string | null }
interface KeyRow { id: string; org_id: string; name: string; role: string; prefix: string; revoked_at: string | null; key?: string }
interface ConfigRow { org_id: string; allowed_models: string[] | null; logging_level: string; updated_at: string }
interface List<T> { object: string; data: T[] }
interface ErrorBody { error: { message: string; type: string; param: string | null; code: string; nemo_code: string } }

interface Reply<T = unknown> {
  status: number;
  headers: Record<string, string>;
  text: string;
  /** Parsed when the response is JSON. */
  body: T;
}

interface CallOptions {
  headers?: Record<string, string>;
  /** Sent as JSON with Content-Type application/json. */
  json?: unknown;
  /** Sent as is, with `contentType` (if any). */
  raw?: string | Buffer;
  contentType?: string;
}

let gw: TestGateway;

async function call<T = unknown>(method: string, path: string, options: CallOptions = {}): Promise<Reply<T>> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | Buffer | undefined = options.raw;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers['content-type'] = 'application/json';
  } else if (options.contentType !== undefined) {
    headers['content-type'] = options.contentType;
  }
  const res = await request(`${gw.url}${path}`, { method: method as 'GET', headers, body });
  const text = await res.body.text();
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) flat[k] = Array.isArray(v) ? v.join(', ') : v;
  const parsed: unknown = /^application\/json/.test(flat['content-type'] ?? '') ? JSON.parse(text) : undefined;
  return { status: res.statusCode, headers: flat, text, body: parsed as T };
}

const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });
const MASTER = bearer(MASTER_KEY);

/** An OpenAI-shaped error with the documented status, type and code for `nemoCode`. */
function expectError(reply: Reply, nemoCode: string, param?: string | null): void {
  const documented = DOCUMENTED[nemoCode]!;
  expect(reply.status, reply.text).toBe(documented.status);
  expect(reply.headers['content-type']).toMatch(/^application\/json/);
  const { error } = reply.body as ErrorBody;
  expect(Object.keys(error).sort()).toEqual(['code', 'message', 'nemo_code', 'param', 'type']);
  expect(error.nemo_code).toBe(nemoCode);
  expect(error.code).toBe(documented.code);
  expect(error.type).toBe(documented.type);
  expect(typeof error.message).toBe('string');
  expect(error.message.length).toBeGreaterThan(0);
  if (param !== undefined) expect(error.param).toBe(param);
  if (nemoCode === 'NR_UNAUTHORIZED') expect(reply.headers['www-authenticate']).toBe('Bearer');
}

// ---------------------------------------------------------------------------------------------
// Fixtures: two orgs created over HTTP with the master key, each with an admin and a member key.

interface Key { id: string; secret: string }
interface OrgFixture { id: string; name: string; admin: Key; member: Key }

let orgA: OrgFixture;
let orgB: OrgFixture;
let teamB: TeamRow;

const createOrg = (name: string) => createOrgOverHttp<OrgRow>(adminClient(gw.url, MASTER), name);

async function createKey(orgId: string, body: Record<string, unknown>, auth: Record<string, string> = MASTER): Promise<Key & { row: KeyRow }> {
  const row = await createKeyOverHttp<KeyRow & CreatedKey>(adminClient(gw.url, auth).org(orgId), body);
  return { id: row.id, secret: row.key, row };
}

async function orgFixture(name: string): Promise<OrgFixture> {
  const org = await createOrg(name);
  const admin = await createKey(org.id, { name: `${name} admin`, role: 'admin' });
  const member = await createKey(org.id, { name: `${name} member`, role: 'member' });
  return { id: org.id, name, admin, member };
}

/** Everything the master key can see of org A (and the org list): equal before and after = nothing written. */
async function snapshotOrgA(): Promise<Record<string, unknown>> {
  const get = async (path: string) => {
    const reply = await call('GET', path, { headers: MASTER });
    expect(reply.status, `${path}: ${reply.text}`).toBe(200);
    return reply.body;
  };
  const base = `/admin/v1/orgs/${orgA.id}`;
  const [orgs, org, teams, members, keys, config] = await Promise.all(
    ['/admin/v1/orgs', base, `${base}/teams`, `${base}/members`, `${base}/keys`, `${base}/config`].map(get),
  );
  return { orgs, org, teams, members, keys, config };
}

beforeAll(async () => {
  gw = await startTestGateway(
    {
      models: [
        { name: 'm', deployments: [{ provider: 'mock', model: 'm' }] },
        { name: 'm2', deployments: [{ provider: 'mock', model: 'm2' }] },
      ],
    },
    { NEMO_MASTER_KEY: MASTER_KEY },
  );
  orgA = await orgFixture('org A');
  orgB = await orgFixture('org B');
  const team = await call<TeamRow>('POST', `/admin/v1/orgs/${orgB.id}/teams`, { headers: MASTER, json: { name: 'team of B' } });
  expect(team.status, team.text).toBe(201);
  teamB = team.body;
});

afterAll(async () => {
  await gw?.close();
});

// ---------------------------------------------------------------------------------------------
// The authorization matrix.

interface RouteCase {
  method: 'GET' | 'POST' | 'PATCH';
  /** Template as registered: `:org` is org A's id, `:key` a fresh key of org A. */
  path: string;
  status: 200 | 201;
  /** A valid body; `tag` names the caller, so a write that slipped through can be recognised. */
  body?: (tag: string) => unknown;
  /** Only the platform may call it (money admin), even within the caller's own org. */
  platformOnly?: boolean;
}

const ROUTES: RouteCase[] = [
  { method: 'POST', path: '/admin/v1/orgs', status: 201, body: (tag) => ({ name: `org by ${tag}` }) },
  { method: 'GET', path: '/admin/v1/orgs', status: 200 },
  { method: 'GET', path: '/admin/v1/orgs/:org', status: 200 },
  { method: 'POST', path: '/admin/v1/orgs/:org/teams', status: 201, body: (tag) => ({ name: `team by ${tag} ${randomUUID()}` }) },
  { method: 'GET', path: '/admin/v1/orgs/:org/teams', status: 200 },
  { method: 'PATCH', path: '/admin/v1/orgs/:org/teams/:team', status: 200, body: () => ({ rpm_limit: 600, daily_spend_cap_micros: 5_000_000 }) },
  { method: 'POST', path: '/admin/v1/orgs/:org/members', status: 201, body: () => ({ role: 'member' }) },
  { method: 'GET', path: '/admin/v1/orgs/:org/members', status: 200 },
  { method: 'POST', path: '/admin/v1/orgs/:org/keys', status: 201, body: (tag) => ({ name: `key by ${tag}`, role: 'member', allowed_models: ['m'] }) },
  { method: 'GET', path: '/admin/v1/orgs/:org/keys', status: 200 },
  { method: 'PATCH', path: '/admin/v1/orgs/:org/keys/:key', status: 200, body: () => ({ tpm_limit: 90_000, monthly_spend_cap_micros: 50_000_000 }) },
  { method: 'POST', path: '/admin/v1/orgs/:org/keys/:key/revoke', status: 200 },
  { method: 'GET', path: '/admin/v1/orgs/:org/config', status: 200 },
  { method: 'PATCH', path: '/admin/v1/orgs/:org/config', status: 200, body: () => ({ logging_level: 'full' }) },
  { method: 'POST', path: '/admin/v1/orgs/:org/credits', status: 200, platformOnly: true, body: (tag) => ({ amount_micros: 1, idempotency_key: `credit by ${tag} ${randomUUID()}` }) },
  { method: 'GET', path: '/admin/v1/orgs/:org/credits', status: 200 },
  { method: 'GET', path: '/admin/v1/orgs/:org/ledger', status: 200 },
  { method: 'GET', path: '/admin/v1/orgs/:org/logs', status: 200 },
  { method: 'GET', path: '/admin/v1/orgs/:org/spend', status: 200 },
  { method: 'GET', path: '/admin/v1/orgs/:org/usage', status: 200 },
  { method: 'GET', path: '/admin/v1/orgs/:org/guardrail-events', status: 200 },
];

type CallerName = 'no key' | 'wrong key (key-shaped)' | 'wrong key (not key-shaped)' | 'master key' | 'org A admin' | 'org A member' | 'org B admin' | 'org B member';
const CALLERS: CallerName[] = ['no key', 'wrong key (key-shaped)', 'wrong key (not key-shaped)', 'master key', 'org A admin', 'org A member', 'org B admin', 'org B member'];

function headersOf(caller: CallerName): Record<string, string> {
  switch (caller) {
    case 'no key': return {};
    case 'wrong key (key-shaped)': return bearer(`sk-nemo-${'Z'.repeat(43)}`);
    case 'wrong key (not key-shaped)': return bearer(`${MASTER_KEY}x`);
    case 'master key': return MASTER;
    case 'org A admin': return bearer(orgA.admin.secret);
    case 'org A member': return bearer(orgA.member.secret);
    case 'org B admin': return bearer(orgB.admin.secret);
    case 'org B member': return bearer(orgB.member.secret);
  }
}

/** The status a caller must get on a route aimed at org A: a number for success, a nemo_code for an error. */
function expectedOutcome(caller: CallerName, route: RouteCase): number | string {
  const orgScoped = route.path.includes(':org');
  switch (caller) {
    case 'no key':
    case 'wrong key (key-shaped)':
    case 'wrong key (not key-shaped)':
      return 'NR_UNAUTHORIZED';
    case 'master key':
      return route.status;
    case 'org A admin':
      if (route.platformOnly) return 'NR_FORBIDDEN';
      return orgScoped || route.method === 'GET' ? route.status : 'NR_FORBIDDEN';
    case 'org A member':
      return 'NR_FORBIDDEN';
    case 'org B admin':
      // Org A does not exist for org B's keys: never 403, never 2xx.
      return orgScoped ? 'NR_NOT_FOUND' : route.method === 'GET' ? route.status : 'NR_FORBIDDEN';
    case 'org B member':
      return orgScoped ? 'NR_NOT_FOUND' : 'NR_FORBIDDEN';
  }
}

const MATRIX = ROUTES.flatMap((route) => CALLERS.map((caller) => ({ route, caller, label: `${route.method} ${route.path}`, expected: expectedOutcome(caller, route) })));

describe('authorization matrix', () => {
  it('covers every route registered in src/http/routes/admin.ts', async () => {
    const source = await readFile(new URL('../../src/http/routes/admin.ts', import.meta.url), 'utf8');
    const registered = [...source.matchAll(/\[\s*'(get|post|patch)',\s*'(\/admin\/[^']+)',\s*(\d{3})/g)].map((m) => `${m[1]!.toUpperCase()} ${m[2]} ${m[3]}`);
    expect(registered.length).toBeGreaterThan(0);
    expect(ROUTES.map((r) => `${r.method} ${r.path} ${r.status}`).sort()).toEqual(registered.sort());
  });

  it.each(MATRIX)('$caller: $label -> $expected', async ({ route, caller, expected }) => {
    // A fresh victim per cell: revoking is idempotent, so an already revoked key would hide a bad revoke.
    const victim = route.path.includes(':key') ? await createKey(orgA.id, { name: 'revoke victim' }) : undefined;
    const team = route.path.includes(':team') ? await call<TeamRow>('POST', `/admin/v1/orgs/${orgA.id}/teams`, { headers: MASTER, json: { name: `victim ${randomUUID()}` } }) : undefined;
    const path = route.path.replace(':org', orgA.id).replace(':key', victim?.id ?? '').replace(':team', team?.body.id ?? '');
    const json = route.body?.(caller);
    const before = typeof expected === 'string' ? await snapshotOrgA() : undefined;

    const reply = await call(route.method, path, { headers: headersOf(caller), json });

    if (typeof expected === 'string') {
      expectError(reply, expected);
      expect(await snapshotOrgA()).toEqual(before);
      return;
    }
    expect(reply.status, reply.text).toBe(expected);
    expect(reply.headers['content-type']).toMatch(/^application\/json/);
    checkSuccessBody(caller, route, reply.body, victim?.id);
  });

  function checkSuccessBody(caller: CallerName, route: RouteCase, body: unknown, victimId: string | undefined): void {
    const key = `${route.method} ${route.path}`;
    if (key === 'GET /admin/v1/orgs') {
      const ids = (body as List<OrgRow>).data.map((o) => o.id);
      if (caller === 'org A admin') expect(ids).toEqual([orgA.id]);
      else if (caller === 'org B admin') expect(ids).toEqual([orgB.id]);
      else expect(ids).toEqual(expect.arrayContaining([orgA.id, orgB.id]));
      return;
    }
    if (key === 'POST /admin/v1/orgs') {
      expect((body as OrgRow).name).toBe(`org by ${caller}`);
      return;
    }
    if (key === 'GET /admin/v1/orgs/:org') {
      expect(body).toMatchObject({ id: orgA.id, name: orgA.name });
      return;
    }
    if (key === 'GET /admin/v1/orgs/:org/usage') {
      expect(body).toMatchObject({ object: 'usage', org_id: orgA.id, group_by: ['day'] });
      return;
    }
    if (route.method === 'GET' && key !== 'GET /admin/v1/orgs/:org/config' && key !== 'GET /admin/v1/orgs/:org/credits') {
      const list = body as List<{ org_id: string }>;
      expect(list.object).toBe('list');
      // Org A's keys have sent no traffic: no spend windows, guardrail events or request logs yet.
      if (!['GET /admin/v1/orgs/:org/spend', 'GET /admin/v1/orgs/:org/guardrail-events', 'GET /admin/v1/orgs/:org/logs'].includes(key)) expect(list.data.length).toBeGreaterThan(0);
      for (const row of list.data) expect(row.org_id).toBe(orgA.id);
      return;
    }
    expect((body as { org_id: string }).org_id).toBe(orgA.id);
    if (key === 'POST /admin/v1/orgs/:org/members') expect((body as MemberRow).role).toBe('member');
    if (key === 'POST /admin/v1/orgs/:org/keys') expect((body as KeyRow).key).toMatch(/^sk-nemo-[0-9A-Za-z]{43}$/);
    if (key.endsWith('/revoke')) expect(body).toMatchObject({ id: victimId, revoked_at: expect.any(String) });
    if (key === 'PATCH /admin/v1/orgs/:org/keys/:key') expect(body).toMatchObject({ id: victimId, tpm_limit: 90_000, monthly_spend_cap_micros: 50_000_000 });
    if (key === 'PATCH /admin/v1/orgs/:org/teams/:team') expect(body).toMatchObject({ rpm_limit: 600, daily_spend_cap_micros: 5_000_000 });
  }
});


// ---------------------------------------------------------------------------------------------
// Secrets and cross-org key ids.

describe('key secrets and cross-org key ids', () => {
  it('returns the secret only from the create call; lists carry a short prefix of it and never `key`', async () => {
    const created = await createKey(orgA.id, { name: 'secret check' }, bearer(orgA.admin.secret));
    expect(created.secret).toMatch(/^sk-nemo-[0-9A-Za-z]{43}$/);
    expect(created.row.prefix.length).toBeLessThan(16);
    expect(created.secret.startsWith(created.row.prefix)).toBe(true);

    for (const auth of [MASTER, bearer(orgA.admin.secret)]) {
      const list = await call<List<KeyRow>>('GET', `/admin/v1/orgs/${orgA.id}/keys`, { headers: auth });
      expect(list.status).toBe(200);
      const listed = list.body.data.find((k) => k.id === created.id);
      expect(listed).toMatchObject({ name: 'secret check', prefix: created.row.prefix });
      for (const row of list.body.data) {
        expect(row).not.toHaveProperty('key');
        expect(row).not.toHaveProperty('key_hash');
        expect(typeof row.prefix).toBe('string');
        expect(row.prefix.length).toBeLessThan(16);
      }
      for (const secret of [created.secret, orgA.admin.secret, orgA.member.secret]) expect(list.text).not.toContain(secret);
    }
    // Revoking answers the key row too, without the secret.
    const revoked = await call<KeyRow>('POST', `/admin/v1/orgs/${orgA.id}/keys/${created.id}/revoke`, { headers: MASTER });
    expect(revoked.status).toBe(200);
    expect(revoked.body).not.toHaveProperty('key');
    expect(revoked.text).not.toContain(created.secret);
  });

  it("does not list another org's key ids under an org's path", async () => {
    const idsOf = async (orgId: string, auth: Record<string, string>) => {
      const list = await call<List<KeyRow>>('GET', `/admin/v1/orgs/${orgId}/keys`, { headers: auth });
      expect(list.status, list.text).toBe(200);
      return list.body.data.map((k) => k.id);
    };
    for (const auth of [MASTER, bearer(orgA.admin.secret)]) {
      const ids = await idsOf(orgA.id, auth);
      expect(ids).toEqual(expect.arrayContaining([orgA.admin.id, orgA.member.id]));
      expect(ids).not.toContain(orgB.admin.id);
      expect(ids).not.toContain(orgB.member.id);
    }
    for (const auth of [MASTER, bearer(orgB.admin.secret)]) {
      const ids = await idsOf(orgB.id, auth);
      expect(ids).toEqual(expect.arrayContaining([orgB.admin.id, orgB.member.id]));
      expect(ids).not.toContain(orgA.admin.id);
      expect(ids).not.toContain(orgA.member.id);
    }
  });

  it("answers 404 to revoking another org's key through one's own org path, and the key keeps working", async () => {
    for (const auth of [bearer(orgA.admin.secret), MASTER]) {
      const reply = await call('POST', `/admin/v1/orgs/${orgA.id}/keys/${orgB.member.id}/revoke`, { headers: auth });
      expectError(reply, 'NR_NOT_FOUND');
    }
    const listB = await call<List<KeyRow>>('GET', `/admin/v1/orgs/${orgB.id}/keys`, { headers: MASTER });
    expect(listB.body.data.find((k) => k.id === orgB.member.id)?.revoked_at).toBeNull();
    expect((await chat(bearer(orgB.member.secret), 'm')).status).toBe(200);
  });
});

// ---------------------------------------------------------------------------------------------
// Bad input: refused with a 4xx OpenAI error, and nothing written.

const ORGS = '/admin/v1/orgs';
const TEAMS = '/admin/v1/orgs/:org/teams';
const MEMBERS = '/admin/v1/orgs/:org/members';
const KEYS = '/admin/v1/orgs/:org/keys';
const CONFIG = '/admin/v1/orgs/:org/config';

interface BadInput {
  name: string;
  path: string;
  /** A JSON body (built late: some refer to fixtures), or raw bytes with `contentType`. */
  json?: () => unknown;
  raw?: string | Buffer;
  contentType?: string;
  nemoCode: string;
  param?: string | null;
}

const longName = 'n'.repeat(201);
const invalidUtf8 = Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
const bigBody = () => ({ name: 'x'.repeat(MAX_ADMIN_BODY_BYTES) });

const BAD_INPUTS: BadInput[] = [
  // Wrong types.
  { name: 'org name a number', path: ORGS, json: () => ({ name: 5 }), nemoCode: 'NR_INVALID_REQUEST', param: 'name' },
  { name: 'team name a number', path: TEAMS, json: () => ({ name: 5 }), nemoCode: 'NR_INVALID_REQUEST', param: 'name' },
  { name: 'key name a number', path: KEYS, json: () => ({ name: 5 }), nemoCode: 'NR_INVALID_REQUEST', param: 'name' },
  { name: 'key name null', path: KEYS, json: () => ({ name: null }), nemoCode: 'NR_INVALID_REQUEST', param: 'name' },
  { name: "key role 'root'", path: KEYS, json: () => ({ name: 'k', role: 'root' }), nemoCode: 'NR_INVALID_REQUEST', param: 'role' },
  { name: "key allowed_models 'm' (not a list)", path: KEYS, json: () => ({ name: 'k', allowed_models: 'm' }), nemoCode: 'NR_INVALID_REQUEST', param: 'allowed_models' },
  { name: 'key allowed_models [5]', path: KEYS, json: () => ({ name: 'k', allowed_models: [5] }), nemoCode: 'NR_INVALID_REQUEST', param: 'allowed_models.0' },
  { name: "key expires_at 'tomorrow'", path: KEYS, json: () => ({ name: 'k', expires_at: 'tomorrow' }), nemoCode: 'NR_INVALID_REQUEST', param: 'expires_at' },
  { name: 'key expires_at a number', path: KEYS, json: () => ({ name: 'k', expires_at: Date.now() + 60_000 }), nemoCode: 'NR_INVALID_REQUEST', param: 'expires_at' },
  { name: "key team_id 'not-a-uuid'", path: KEYS, json: () => ({ name: 'k', team_id: 'not-a-uuid' }), nemoCode: 'NR_INVALID_REQUEST', param: 'team_id' },
  { name: "member role 'root'", path: MEMBERS, json: () => ({ role: 'root' }), nemoCode: 'NR_INVALID_REQUEST', param: 'role' },
  { name: "member user_id 'abc'", path: MEMBERS, json: () => ({ role: 'member', user_id: 'abc' }), nemoCode: 'NR_INVALID_REQUEST', param: 'user_id' },
  { name: "member team_id 'not-a-uuid'", path: MEMBERS, json: () => ({ role: 'member', team_id: 'not-a-uuid' }), nemoCode: 'NR_INVALID_REQUEST', param: 'team_id' },
  { name: "config allowed_models 'm' (not a list)", path: CONFIG, json: () => ({ allowed_models: 'm' }), nemoCode: 'NR_INVALID_REQUEST', param: 'allowed_models' },
  { name: "config logging_level 'verbose'", path: CONFIG, json: () => ({ logging_level: 'verbose' }), nemoCode: 'NR_INVALID_REQUEST', param: 'logging_level' },
  { name: 'config default_guardrail_policy a list', path: CONFIG, json: () => ({ default_guardrail_policy: [] }), nemoCode: 'NR_INVALID_REQUEST', param: 'default_guardrail_policy' },
  { name: 'org body a JSON array', path: ORGS, raw: '[]', contentType: 'application/json', nemoCode: 'NR_INVALID_REQUEST' },
  { name: 'org body JSON null', path: ORGS, raw: 'null', contentType: 'application/json', nemoCode: 'NR_INVALID_REQUEST' },
  { name: 'key body a JSON string', path: KEYS, raw: '"k"', contentType: 'application/json', nemoCode: 'NR_INVALID_REQUEST' },
  // Unknown fields.
  { name: 'org with an unknown field', path: ORGS, json: () => ({ name: 'x', admin: true }), nemoCode: 'NR_INVALID_REQUEST', param: null },
  { name: 'team with an unknown field', path: TEAMS, json: () => ({ name: 'x', admin: true }), nemoCode: 'NR_INVALID_REQUEST', param: null },
  { name: 'key with an unknown field', path: KEYS, json: () => ({ name: 'x', admin: true }), nemoCode: 'NR_INVALID_REQUEST', param: null },
  { name: "key naming another org in an unknown org_id field", path: KEYS, json: () => ({ name: 'x', org_id: orgB.id }), nemoCode: 'NR_INVALID_REQUEST', param: null },
  { name: 'member with an unknown field', path: MEMBERS, json: () => ({ role: 'member', admin: true }), nemoCode: 'NR_INVALID_REQUEST', param: null },
  { name: 'config with an unknown field', path: CONFIG, json: () => ({ admin: true }), nemoCode: 'NR_INVALID_REQUEST', param: null },
  // Names: missing, empty, whitespace, oversized, containing NUL (Postgres text cannot hold it).
  ...[ORGS, TEAMS, KEYS].flatMap((path): BadInput[] => [
    { name: `${path}: missing name`, path, json: () => ({}), nemoCode: 'NR_INVALID_REQUEST', param: 'name' },
    { name: `${path}: empty name`, path, json: () => ({ name: '' }), nemoCode: 'NR_INVALID_REQUEST', param: 'name' },
    { name: `${path}: whitespace name`, path, json: () => ({ name: ' \t\n ' }), nemoCode: 'NR_INVALID_REQUEST', param: 'name' },
    { name: `${path}: 201-character name`, path, json: () => ({ name: longName }), nemoCode: 'NR_INVALID_REQUEST', param: 'name' },
    { name: `${path}: name with a NUL character`, path, json: () => ({ name: 'a\u0000b' }), nemoCode: 'NR_INVALID_REQUEST' },
  ]),
  // Framing: JSON, encoding, media type, size.
  { name: 'org: invalid JSON', path: ORGS, raw: '{"name":', contentType: 'application/json', nemoCode: 'NR_INVALID_JSON' },
  { name: 'team: invalid JSON', path: TEAMS, raw: '{"name": "t",}', contentType: 'application/json', nemoCode: 'NR_INVALID_JSON' },
  { name: 'config: empty body', path: CONFIG, raw: '', contentType: 'application/json', nemoCode: 'NR_INVALID_JSON' },
  { name: 'key: invalid UTF-8', path: KEYS, raw: invalidUtf8, contentType: 'application/json', nemoCode: 'NR_INVALID_UTF8' },
  { name: 'org: text/plain', path: ORGS, raw: '{"name":"x"}', contentType: 'text/plain', nemoCode: 'NR_UNSUPPORTED_MEDIA_TYPE' },
  { name: 'key: form-encoded', path: KEYS, raw: 'name=x', contentType: 'application/x-www-form-urlencoded', nemoCode: 'NR_UNSUPPORTED_MEDIA_TYPE' },
  { name: 'config: no Content-Type', path: CONFIG, raw: '{"logging_level":"none"}', nemoCode: 'NR_UNSUPPORTED_MEDIA_TYPE' },
  { name: 'team: application/jsonx', path: TEAMS, raw: '{"name":"x"}', contentType: 'application/jsonx', nemoCode: 'NR_UNSUPPORTED_MEDIA_TYPE' },
  { name: 'org: body over 64 KiB', path: ORGS, raw: JSON.stringify(bigBody()), contentType: 'application/json', nemoCode: 'NR_BODY_TOO_LARGE' },
  { name: 'key: body over 64 KiB', path: KEYS, raw: JSON.stringify(bigBody()), contentType: 'application/json', nemoCode: 'NR_BODY_TOO_LARGE' },
  // References that do not hold.
  { name: 'key allowed_models naming an unknown model', path: KEYS, json: () => ({ name: 'k', allowed_models: ['m', 'no-such-model'] }), nemoCode: 'NR_INVALID_REQUEST', param: 'allowed_models' },
  { name: 'config allowed_models naming an unknown model', path: CONFIG, json: () => ({ allowed_models: ['no-such-model'] }), nemoCode: 'NR_INVALID_REQUEST', param: 'allowed_models' },
  { name: 'key expires_at in the past', path: KEYS, json: () => ({ name: 'k', expires_at: new Date(Date.now() - 60_000).toISOString() }), nemoCode: 'NR_INVALID_REQUEST', param: 'expires_at' },
  { name: "key team_id of another org's team", path: KEYS, json: () => ({ name: 'k', team_id: teamB.id }), nemoCode: 'NR_INVALID_REQUEST', param: 'team_id' },
  { name: "member team_id of another org's team", path: MEMBERS, json: () => ({ role: 'member', team_id: teamB.id }), nemoCode: 'NR_INVALID_REQUEST', param: 'team_id' },
  { name: 'key team_id of no team at all', path: KEYS, json: () => ({ name: 'k', team_id: randomUUID() }), nemoCode: 'NR_INVALID_REQUEST', param: 'team_id' },
  { name: 'duplicate team name', path: TEAMS, json: () => ({ name: 'dup team' }), nemoCode: 'NR_CONFLICT' },
  { name: 'duplicate team name up to surrounding whitespace', path: TEAMS, json: () => ({ name: '  dup team ' }), nemoCode: 'NR_CONFLICT' },
];

describe('bad input', () => {
  beforeAll(async () => {
    const team = await call('POST', `/admin/v1/orgs/${orgA.id}/teams`, { headers: bearer(orgA.admin.secret), json: { name: 'dup team' } });
    expect(team.status, team.text).toBe(201);
  });

  it.each(BAD_INPUTS)('$name -> $nemoCode', async (bad) => {
    // Organizations are the master key's; the rest is done as org A's admin.
    const auth = bad.path === ORGS ? MASTER : bearer(orgA.admin.secret);
    const method = bad.path === CONFIG ? 'PATCH' : 'POST';
    const before = await snapshotOrgA();
    const reply = await call(method, bad.path.replace(':org', orgA.id), { headers: auth, json: bad.json?.(), raw: bad.raw, contentType: bad.contentType });
    expectError(reply, bad.nemoCode, bad.param);
    expect(await snapshotOrgA()).toEqual(before);
  });
});

describe('bad ids in the path', () => {
  const BAD_IDS = [
    { name: "'abc'", id: () => 'abc' },
    { name: "' OR 1=1 --", id: () => encodeURIComponent("' OR 1=1 --") },
    { name: 'a well-formed unknown uuid', id: () => randomUUID() },
  ];
  const ORG_ROUTES = ROUTES.filter((r) => r.path.includes(':org'));
  const CASES = ORG_ROUTES.flatMap((route) => BAD_IDS.map((bad) => ({ route, bad, label: `${route.method} ${route.path}` })));

  it.each(CASES)('org id $bad.name: $label -> 404 for the master key and an org admin', async ({ route, bad }) => {
    const before = await snapshotOrgA();
    const victim = route.path.includes(':key') ? await createKey(orgA.id, { name: 'revoke victim' }) : undefined;
    const path = route.path.replace(':org', bad.id()).replace(':key', victim?.id ?? '');
    for (const auth of [MASTER, bearer(orgA.admin.secret)]) {
      const reply = await call(route.method, path, { headers: auth, json: route.body?.('bad path') });
      expectError(reply, 'NR_NOT_FOUND');
    }
    const after = await snapshotOrgA();
    if (victim) {
      const keys = (after.keys as List<KeyRow>).data;
      expect(keys.find((k) => k.id === victim.id)?.revoked_at).toBeNull();
    } else {
      expect(after).toEqual(before);
    }
  });

  it.each([
    { name: "'abc'", id: () => 'abc' },
    { name: "' OR 1=1 --", id: () => encodeURIComponent("' OR 1=1 --") },
    { name: 'a well-formed unknown uuid', id: () => randomUUID() },
    { name: "org B's key", id: () => orgB.admin.id },
  ])('key id $name in a revoke path -> 404', async ({ id }) => {
    const before = await snapshotOrgA();
    for (const auth of [MASTER, bearer(orgA.admin.secret)]) {
      expectError(await call('POST', `/admin/v1/orgs/${orgA.id}/keys/${id()}/revoke`, { headers: auth }), 'NR_NOT_FOUND');
    }
    expect(await snapshotOrgA()).toEqual(before);
  });
});

describe('names are data', () => {
  it(`stores ${JSON.stringify(SQL_NAME)} verbatim as an org, team and key name, and nemo.orgs survives`, async () => {
    const org = await createOrg(SQL_NAME);
    expect(org.name).toBe(SQL_NAME);
    const got = await call<OrgRow>('GET', `/admin/v1/orgs/${org.id}`, { headers: MASTER });
    expect(got.body.name).toBe(SQL_NAME);

    const team = await call<TeamRow>('POST', `/admin/v1/orgs/${orgA.id}/teams`, { headers: bearer(orgA.admin.secret), json: { name: SQL_NAME } });
    expect(team.status, team.text).toBe(201);
    const key = await createKey(orgA.id, { name: SQL_NAME }, bearer(orgA.admin.secret));
    const teams = await call<List<TeamRow>>('GET', `/admin/v1/orgs/${orgA.id}/teams`, { headers: MASTER });
    expect(teams.body.data.find((t) => t.id === team.body.id)?.name).toBe(SQL_NAME);
    const keys = await call<List<KeyRow>>('GET', `/admin/v1/orgs/${orgA.id}/keys`, { headers: MASTER });
    expect(keys.body.data.find((k) => k.id === key.id)?.name).toBe(SQL_NAME);

    const db = new pg.Client(gw.database.url);
    await db.connect();
    try {
      const { rows } = await db.query<{ present: boolean; name: string | null; orgs: string }>(
        `SELECT to_regclass('nemo.orgs') IS NOT NULL AS present,
                (SELECT name FROM nemo.orgs WHERE org_id = $1) AS name,
                (SELECT count(*) FROM nemo.orgs)::text AS orgs`,
        [org.id],
      );
      expect(rows[0]).toMatchObject({ present: true, name: SQL_NAME });
      const listed = await call<List<OrgRow>>('GET', ORGS, { headers: MASTER });
      expect(listed.body.data.map((o) => o.id)).toEqual(expect.arrayContaining([gw.orgId, orgA.id, orgB.id, org.id]));
      expect(Number(rows[0]!.orgs)).toBe(listed.body.data.length);
    } finally {
      await db.end();
    }
  });

  it('accepts a 200-character name and non-ASCII names, and trims surrounding whitespace', async () => {
    const max = 'n'.repeat(200);
    expect((await createOrg(max)).name).toBe(max);
    const unicode = 'Équipe 東京 🚀 "quoted" \\ back';
    expect((await createOrg(unicode)).name).toBe(unicode);
    expect((await createOrg('  padded  ')).name).toBe('padded');
  });

  it("lets two orgs have a team of the same name (uniqueness does not reveal another org's names)", async () => {
    const reply = await call<TeamRow>('POST', `/admin/v1/orgs/${orgA.id}/teams`, { headers: bearer(orgA.admin.secret), json: { name: teamB.name } });
    expect(reply.status, reply.text).toBe(201);
    expect(reply.body).toMatchObject({ org_id: orgA.id, name: teamB.name });
  });
});

// ---------------------------------------------------------------------------------------------
// Keys in use on /v1: allow-lists, revocation, org config, expiry. In the helper's own org, so
// config changes here do not touch org A and B above.

const chat = (headers: Record<string, string>, model: string) =>
  call<{ choices?: Array<{ message: { content: string } }> }>('POST', '/v1/chat/completions', { headers, json: { model, messages: [{ role: 'user', content: 'Hello' }] } });

/** Sends every POLL_MS until `status` comes back or `timeoutMs` passes; the last reply and the time taken. */
async function pollUntil(send: () => Promise<Reply>, status: number, timeoutMs = PROPAGATION_MS): Promise<{ reply: Reply; elapsedMs: number }> {
  const start = performance.now();
  for (;;) {
    const reply = await send();
    const elapsedMs = performance.now() - start;
    if (reply.status === status || elapsedMs > timeoutMs) return { reply, elapsedMs };
    await sleep(POLL_MS);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Calls `send` every POLL_MS from now until `expiresAtMs + PROPAGATION_MS`: every reply received before
 * the expiry must be 200, every request sent after it must be 401.
 */
async function expectExpiry(send: () => Promise<Reply>, expiresAtMs: number): Promise<void> {
  let sawOk = false;
  let sawExpired = false;
  while (Date.now() < expiresAtMs + PROPAGATION_MS) {
    const sentAt = Date.now();
    const reply = await send();
    const receivedAt = Date.now();
    if (reply.status === 401) {
      expect(receivedAt, 'refused before the key expired').toBeGreaterThanOrEqual(expiresAtMs);
      expectError(reply, 'NR_UNAUTHORIZED');
      sawExpired = true;
    } else {
      expect(reply.status, `${reply.status} ${sentAt - expiresAtMs} ms after expiry: ${reply.text}`).toBe(sentAt < expiresAtMs ? 200 : 401);
      sawOk = true;
    }
    await sleep(POLL_MS);
  }
  expect(sawOk, 'the key worked before it expired').toBe(true);
  expect(sawExpired, 'the key was refused after it expired').toBe(true);
}

describe('keys on /v1', () => {
  const orgAdmin = () => bearer(gw.apiKey);
  const keysPath = () => `/admin/v1/orgs/${gw.orgId}/keys`;

  it("a member key with allowed_models ['m'] may use m, not m2; revoked, it gets 401 within 1 s", async () => {
    const member = await createKey(gw.orgId, { name: 'm only', role: 'member', allowed_models: ['m'] }, orgAdmin());
    const ok = await chat(bearer(member.secret), 'm');
    expect(ok.status, ok.text).toBe(200);
    expect(typeof ok.body.choices?.[0]?.message.content).toBe('string');
    expectError(await chat(bearer(member.secret), 'm2'), 'NR_MODEL_NOT_ALLOWED', 'model');

    const revoke = await call<KeyRow>('POST', `${keysPath()}/${member.id}/revoke`, { headers: orgAdmin() });
    expect(revoke.status, revoke.text).toBe(200);
    const { reply, elapsedMs } = await pollUntil(() => chat(bearer(member.secret), 'm'), 401);
    expectError(reply, 'NR_UNAUTHORIZED');
    expect(elapsedMs).toBeLessThanOrEqual(PROPAGATION_MS);
  });

  it("PATCH config allowed_models ['m2'] stops the org admin key using m within 1 s; null lifts it", async () => {
    expect((await chat(orgAdmin(), 'm')).status).toBe(200);
    const patch = await call<ConfigRow>('PATCH', `/admin/v1/orgs/${gw.orgId}/config`, { headers: orgAdmin(), json: { allowed_models: ['m2'] } });
    expect(patch.status, patch.text).toBe(200);
    expect(patch.body.allowed_models).toEqual(['m2']);
    try {
      const { reply, elapsedMs } = await pollUntil(() => chat(orgAdmin(), 'm'), 403);
      expectError(reply, 'NR_MODEL_NOT_ALLOWED', 'model');
      expect(elapsedMs).toBeLessThanOrEqual(PROPAGATION_MS);
      expect((await chat(orgAdmin(), 'm2')).status).toBe(200);
    } finally {
      const lift = await call<ConfigRow>('PATCH', `/admin/v1/orgs/${gw.orgId}/config`, { headers: orgAdmin(), json: { allowed_models: null } });
      expect(lift.status, lift.text).toBe(200);
      expect(lift.body.allowed_models).toBeNull();
    }
    const { reply } = await pollUntil(() => chat(orgAdmin(), 'm'), 200);
    expect(reply.status).toBe(200);
  });

  it('a key with expires_at ~1.5 s ahead works, then gets 401 once it has passed', async () => {
    const expiresAtMs = Date.now() + 1500;
    const key = await createKey(gw.orgId, { name: 'short-lived', expires_at: new Date(expiresAtMs).toISOString() }, orgAdmin());
    await expectExpiry(() => chat(bearer(key.secret), 'm'), expiresAtMs);
  });

  it('an admin key with expires_at ~1.5 s ahead manages its org, then gets 401 from the admin API once it has passed', async () => {
    const expiresAtMs = Date.now() + 1500;
    const key = await createKey(gw.orgId, { name: 'short-lived admin', role: 'admin', expires_at: new Date(expiresAtMs).toISOString() }, orgAdmin());
    await expectExpiry(() => call('GET', `/admin/v1/orgs/${gw.orgId}/keys`, { headers: bearer(key.secret) }), expiresAtMs);
  });

  it('a revoked admin key gets 401 from the admin API within 1 s', async () => {
    const admin = await createKey(gw.orgId, { name: 'to revoke', role: 'admin' }, orgAdmin());
    expect((await call('GET', `/admin/v1/orgs/${gw.orgId}`, { headers: bearer(admin.secret) })).status).toBe(200);
    // Revoked with its own key: the call that revokes it is the last it may make.
    const revoke = await call('POST', `${keysPath()}/${admin.id}/revoke`, { headers: bearer(admin.secret) });
    expect(revoke.status, revoke.text).toBe(200);
    const { reply, elapsedMs } = await pollUntil(() => call('GET', `/admin/v1/orgs/${gw.orgId}`, { headers: bearer(admin.secret) }), 401);
    expectError(reply, 'NR_UNAUTHORIZED');
    expect(elapsedMs).toBeLessThanOrEqual(PROPAGATION_MS);
  });
});

describe('x-api-key in place of Authorization: Bearer', () => {
  it('authenticates member, admin and master keys', async () => {
    const member = await createKey(gw.orgId, { name: 'x-api-key member' }, { 'x-api-key': gw.apiKey });
    expect(member.row.org_id).toBe(gw.orgId);
    const ok = await chat({ 'x-api-key': member.secret }, 'm');
    expect(ok.status, ok.text).toBe(200);

    const org = await call<OrgRow>('GET', `/admin/v1/orgs/${gw.orgId}`, { headers: { 'x-api-key': gw.apiKey } });
    expect(org.status, org.text).toBe(200);
    expect(org.body.id).toBe(gw.orgId);

    const orgs = await call<List<OrgRow>>('GET', ORGS, { headers: { 'x-api-key': MASTER_KEY } });
    expect(orgs.status, orgs.text).toBe(200);
    expect(orgs.body.data.map((o) => o.id)).toEqual(expect.arrayContaining([gw.orgId, orgA.id, orgB.id]));
  });

  it('refuses a wrong x-api-key with 401, and a member key with 403 on the admin API', async () => {
    expectError(await call('GET', ORGS, { headers: { 'x-api-key': 'not-the-master-key' } }), 'NR_UNAUTHORIZED');
    expectError(await chat({ 'x-api-key': `sk-nemo-${'a'.repeat(43)}` }, 'm'), 'NR_UNAUTHORIZED');
    expectError(await call('GET', `/admin/v1/orgs/${orgA.id}`, { headers: { 'x-api-key': orgA.member.secret } }), 'NR_FORBIDDEN');
  });
});
