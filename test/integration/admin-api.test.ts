// The admin API over real HTTP and a real Postgres: who may call which route (a table-driven matrix
// over every route in src/http/routes/admin.ts), what bad input is refused without writing anything,
// and how keys created through it behave on /v1 (model allow-lists, revocation, expiry).
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const MASTER_KEY = 'master-key-for-tests-0123456789';
const MAX_ADMIN_BODY_BYTES = 64 * 1024;
const SQL_NAME = "x'); DROP TABLE nemo.orgs; --";
/** How soon a revocation, config change or expiry must take effect, and how often we look. */
const PROPAGATION_MS = 1000;
const POLL_MS = 50;

/** README's error table, restated so the test does not trust the catalog it checks. */
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

async function createOrg(name: string): Promise<OrgRow> {
  const reply = await call<OrgRow>('POST', '/admin/v1/orgs', { headers: MASTER, json: { name } });
  expect(reply.status, reply.text).toBe(201);
  return reply.body;
}

async function createKey(orgId: string, body: Record<string, unknown>, auth: Record<string, string> = MASTER): Promise<Key & { row: KeyRow }> {
  const reply = await call<KeyRow>('POST', `/admin/v1/orgs/${orgId}/keys`, { headers: auth, json: body });
  expect(reply.status, reply.text).toBe(201);
  return { id: reply.body.id, secret: reply.body.key!, row: reply.body };
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
}

const ROUTES: RouteCase[] = [
  { method: 'POST', path: '/admin/v1/orgs', status: 201, body: (tag) => ({ name: `org by ${tag}` }) },
  { method: 'GET', path: '/admin/v1/orgs', status: 200 },
  { method: 'GET', path: '/admin/v1/orgs/:org', status: 200 },
  { method: 'POST', path: '/admin/v1/orgs/:org/teams', status: 201, body: (tag) => ({ name: `team by ${tag} ${randomUUID()}` }) },
  { method: 'GET', path: '/admin/v1/orgs/:org/teams', status: 200 },
  { method: 'POST', path: '/admin/v1/orgs/:org/members', status: 201, body: () => ({ role: 'member' }) },
  { method: 'GET', path: '/admin/v1/orgs/:org/members', status: 200 },
  { method: 'POST', path: '/admin/v1/orgs/:org/keys', status: 201, body: (tag) => ({ name: `key by ${tag}`, role: 'member', allowed_models: ['m'] }) },
  { method: 'GET', path: '/admin/v1/orgs/:org/keys', status: 200 },
  { method: 'POST', path: '/admin/v1/orgs/:org/keys/:key/revoke', status: 200 },
  { method: 'GET', path: '/admin/v1/orgs/:org/config', status: 200 },
  { method: 'PATCH', path: '/admin/v1/orgs/:org/config', status: 200, body: () => ({ logging_level: 'full' }) },
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
    const path = route.path.replace(':org', orgA.id).replace(':key', victim?.id ?? '');
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
    if (route.method === 'GET' && key !== 'GET /admin/v1/orgs/:org/config') {
      const list = body as List<{ org_id: string }>;
      expect(list.object).toBe('list');
      expect(list.data.length).toBeGreaterThan(0);
      for (const row of list.data) expect(row.org_id).toBe(orgA.id);
      return;
    }
    expect((body as { org_id: string }).org_id).toBe(orgA.id);
    if (key === 'POST /admin/v1/orgs/:org/keys') expect((body as KeyRow).key).toMatch(/^sk-nemo-[0-9A-Za-z]{43}$/);
    if (key.endsWith('/revoke')) expect(body).toMatchObject({ id: victimId, revoked_at: expect.any(String) });
  }
});

