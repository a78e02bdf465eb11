// SQL injection through every admin parameter: each path parameter of each route, each query
// parameter the GET routes read, and each field of each body (top level and nested), with the
// classic payloads, called with the master key (the most privileged caller). Ids, numbers, enums
// and times must be refused with a 4xx; free text (names, notes, idempotency keys, deny words) is
// data: stored and read back byte for byte. Afterwards no table is gone, no other org's row
// changed, and only the objects the accepted calls created exist.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM, startTestGateway, type TestGateway } from '../integration/helpers/gateway.js';
import { adminRoutes, fillPath, type AdminRoute } from '../support/admin-routes.js';
import { errorBodyProblem } from '../support/fuzz.js';

const MASTER_KEY = 'sk-master-sqli-0123456789abcdefghijklmnopqrstuvwxyz';
const ROUTES = adminRoutes();

const PAYLOADS = [
  "' OR '1'='1",
  "'; DROP TABLE nemo.orgs; --",
  "1; DELETE FROM nemo.ledger_entries; --",
  '" OR 1=1 --',
  "') ; UPDATE nemo.credit_accounts SET available = 999999999999; --",
  "1 UNION SELECT key_hash::text FROM nemo.api_keys --",
  "00000000-0000-0000-0000-000000000000' OR 'a'='a",
  "$1) OR TRUE --",
  "'||(SELECT string_agg(name, ',') FROM nemo.orgs)||'",
  '\\x27; TRUNCATE nemo.teams CASCADE; --',
  "1e400",
  '-1',
  '9223372036854775808',
];

/** Valid bodies per route; each field (and nested field) is replaced by each payload in turn. */
const BODIES: Record<string, Record<string, unknown>> = {
  'POST /admin/v1/orgs': { name: 'x' },
  'POST /admin/v1/orgs/:org/teams': { name: 'x', rpm_limit: 10, tpm_limit: 10, daily_spend_cap_micros: 10, monthly_spend_cap_micros: 10, guardrail_policy: { deny_words: ['w'], deny_patterns: ['p'], deny_action: 'block', injection: 'flag', max_input_tokens: 10 } },
  'PATCH /admin/v1/orgs/:org/teams/:team': { name: 'x', rpm_limit: 10, guardrail_policy: { pii: { email: 'redact' } } },
  'POST /admin/v1/orgs/:org/members': { role: 'member', user_id: '11111111-1111-4111-8111-111111111111', team_id: null },
  'POST /admin/v1/orgs/:org/keys': { name: 'x', role: 'member', team_id: null, allowed_models: ['m'], expires_at: '2099-01-01T00:00:00Z', rpm_limit: 10 },
  'PATCH /admin/v1/orgs/:org/keys/:key': { name: 'x', tpm_limit: 10, monthly_spend_cap_micros: 10 },
  'PATCH /admin/v1/orgs/:org/config': { allowed_models: ['m'], logging_level: 'metadata', log_retention_days: 7, default_guardrail_policy: { deny_words: ['w'] } },
  'POST /admin/v1/orgs/:org/credits': { amount_micros: 1, idempotency_key: 'k', kind: 'topup', note: 'n' },
};
/** Fields that are free text: a payload there is a valid value, stored verbatim. */
const FREE_TEXT = new Set(['name', 'idempotency_key', 'note', 'guardrail_policy.deny_words.0', 'default_guardrail_policy.deny_words.0', 'guardrail_policy.deny_patterns.0']);
let unique = 0;
/** Query parameters, per route, that the route reads. */
const QUERIES: Record<string, Record<string, string>> = {
  'GET /admin/v1/orgs/:org/ledger': { limit: '10', before: '100' },
  'GET /admin/v1/orgs/:org/guardrail-events': { limit: '10', before: '100' },
  'GET /admin/v1/orgs/:org/usage': { from: '2000-01-01T00:00:00Z', to: '2100-01-01T00:00:00Z', group_by: 'day,key' },
  'GET /admin/v1/orgs/:org/logs/export': { from: '2000-01-01T00:00:00Z', to: '2100-01-01T00:00:00Z', format: 'csv' },
  'GET /admin/v1/orgs/:org/ledger/export': { from: '2000-01-01T00:00:00Z', to: '2100-01-01T00:00:00Z', format: 'ndjson' },
  'GET /admin/v1/orgs/:org/logs': {
    limit: '10', before: '2100-01-01T00:00:00.000001Z', before_log_id: '11111111-1111-4111-8111-111111111111', status_class: '2xx',
    key_id: '11111111-1111-4111-8111-111111111111', team_id: '11111111-1111-4111-8111-111111111111', model: 'm', request_id: 'r',
  },
};
/** Query parameters that are free text compared for equality: a payload there is a value that matches nothing. */
const FREE_TEXT_QUERY = new Set(['model', 'request_id']);

let gw: TestGateway;
let owner: pg.Client;
let target: { org: string; team: string; key: string };
let bystander: string;

const routeKey = (r: AdminRoute) => `${r.method} ${r.pattern}`;

/** Every leaf path of a body: `a`, `b.c`, `d.0` ... */
function leafPaths(value: unknown, prefix = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => leafPaths(v, `${prefix}${i}.`));
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => leafPaths(v, `${prefix}${k}.`));
  return [prefix.slice(0, -1)];
}

function withLeaf(value: unknown, path: string[], replacement: unknown): unknown {
  if (path.length === 0) return replacement;
  const [head, ...rest] = path;
  if (Array.isArray(value)) return value.map((v, i) => (String(i) === head ? withLeaf(v, rest, replacement) : v));
  const obj = value as Record<string, unknown>;
  return { ...obj, [head!]: withLeaf(obj[head!], rest, replacement) };
}

async function send(route: AdminRoute, path: string, body?: unknown) {
  const res = await fetch(`${gw.url}${path}`, {
    method: route.method,
    headers: { authorization: `Bearer ${MASTER_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, text: await res.text() };
}

function expectRefused(answer: { status: number; text: string }, what: string): void {
  expect(answer.status, `${what}: ${answer.text.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
  expect(answer.status, `${what}: ${answer.text.slice(0, 200)}`).toBeLessThan(500);
  expect(errorBodyProblem(answer.status, answer.text), what).toBeUndefined();
}

async function snapshot() {
  const tables = (await owner.query<{ name: string }>(`SELECT c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'nemo' AND c.relkind IN ('r', 'p') ORDER BY 1`)).rows.map((r) => r.name);
  const functions = (await owner.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'nemo'`)).rows[0]!.n;
  const bystanderRows: Record<string, string> = {};
  for (const name of tables.filter((t) => !t.includes('_e2') && t !== 'schema_migrations')) {
    const hasOrg = (await owner.query(`SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = $1::regclass AND attname = 'org_id'`, [`nemo.${name}`])).rowCount;
    if (!hasOrg) continue;
    const { rows } = await owner.query<{ d: string }>(`SELECT count(*) || ':' || md5(coalesce(string_agg(to_jsonb(t)::text, '|' ORDER BY to_jsonb(t)::text), '')) AS d FROM nemo.${pg.escapeIdentifier(name)} t WHERE org_id = $1`, [bystander]);
    bystanderRows[name] = rows[0]!.d;
  }
  const balance = (await owner.query<{ available: string }>('SELECT available FROM nemo.credit_accounts WHERE org_id = $1', [target.org])).rows[0]?.available;
  return { tables, functions, bystanderRows, balance };
}

let before: Awaited<ReturnType<typeof snapshot>>;
/** Credits the accepted calls added to the target org (payloads as idempotency keys or notes). */
let creditedMicros = 0;

beforeAll(async () => {
  gw = await startTestGateway({ models: [{ name: 'm', deployments: [{ provider: 'mock', model: 'm' }] }] }, { NEMO_MASTER_KEY: MASTER_KEY });
  owner = new pg.Client({ connectionString: gw.database.url });
  await owner.connect();
  await owner.query('SET row_security = off');
  const team = (await gw.gateway.admin.createTeam(PLATFORM, gw.orgId, { name: 'target team' })) as { id: string };
  const key = (await gw.gateway.admin.createKey(PLATFORM, gw.orgId, { name: 'target key' })) as { id: string };
  target = { org: gw.orgId, team: team.id, key: key.id };
  const other = await gw.gateway.admin.createOrg(PLATFORM, { name: 'bystander' });
  await gw.gateway.admin.addCredits(PLATFORM, other.id, { amount_micros: 1000, idempotency_key: 'bystander' });
  await gw.gateway.admin.createTeam(PLATFORM, other.id, { name: 'bystander team' });
  await gw.gateway.admin.createKey(PLATFORM, other.id, { name: 'bystander key' });
  bystander = other.id;
  before = await snapshot();
});

afterAll(async () => {
  await owner?.end();
  await gw?.close();
});

describe('SQL injection through admin parameters', () => {
  it('covers every route: each has a valid body or query on record where it takes one', () => {
    for (const r of ROUTES.filter((r) => r.takesBody)) expect(BODIES, routeKey(r)).toHaveProperty([routeKey(r)]);
  });

  it.each(ROUTES.filter((r) => r.params.length > 0).map((r) => [routeKey(r), r] as const))('%s: every path parameter', async (_name, route) => {
    for (const param of route.params) {
      for (const payload of PAYLOADS) {
        const values = { ...target, [param]: encodeURIComponent(payload) };
        const query = QUERIES[routeKey(route)];
        const path = fillPath(route, values) + (query ? `?${new URLSearchParams(query)}` : '');
        expectRefused(await send(route, path, route.takesBody ? BODIES[routeKey(route)] : undefined), `:${param} = ${payload}`);
      }
    }
  });

  it.each(Object.keys(QUERIES).map((k) => [k, ROUTES.find((r) => routeKey(r) === k)!] as const))('%s: every query parameter', async (name, route) => {
    expect(route, `${name} is not a route any more`).toBeDefined();
    for (const param of Object.keys(QUERIES[name]!)) {
      for (const payload of PAYLOADS) {
        const query = new URLSearchParams({ ...QUERIES[name], [param]: payload });
        const answer = await send(route, `${fillPath(route, target)}?${query}`);
        if (FREE_TEXT_QUERY.has(param)) {
          expect(answer.status, answer.text).toBe(200);
          expect(JSON.parse(answer.text)).toEqual({ object: 'list', data: [] });
          continue;
        }
        expectRefused(answer, `?${param}=${payload}`);
      }
    }
  });

  it.each(Object.keys(BODIES).map((k) => [k, ROUTES.find((r) => routeKey(r) === k)!] as const))('%s: every body field', async (name, route) => {
    const valid = BODIES[name]!;
    for (const leaf of leafPaths(valid)) {
      for (const payload of PAYLOADS) {
        // A fresh name each time: a duplicate name must not be what refuses the call.
        const named = 'name' in valid && leaf !== 'name' ? { ...valid, name: `x ${++unique}` } : valid;
        const body = withLeaf(named, leaf.split('.'), payload);
        const answer = await send(route, fillPath(route, target), body);
        if (!FREE_TEXT.has(leaf)) {
          expectRefused(answer, `${leaf} = ${payload}`);
          continue;
        }
        // Free text is data: accepted (or refused: a duplicate name, a pattern the linear engine cannot run), stored as sent.
        if (answer.status >= 400) {
          expectRefused(answer, `${leaf} = ${payload}`);
          continue;
        }
        expect(answer.status, answer.text).toBeLessThan(300);
        if (name === 'POST /admin/v1/orgs/:org/credits') creditedMicros += JSON.parse(answer.text).created ? 1 : 0;
        const stored = leaf === 'name' && name !== 'POST /admin/v1/orgs/:org/credits' ? (JSON.parse(answer.text) as { name: string }).name : undefined;
        if (stored !== undefined) expect(stored).toBe(payload.trim());
      }
    }
  });

  it('an injected credential is just a wrong key', async () => {
    for (const payload of PAYLOADS) {
      const res = await fetch(`${gw.url}/admin/v1/orgs`, { headers: { authorization: `Bearer ${payload}` } });
      expect(res.status).toBe(401);
    }
  });

  it('afterwards: every table and function is there, the bystander org is untouched, the balance moved only by accepted credits', async () => {
    const after = await snapshot();
    expect(after.tables).toEqual(before.tables);
    expect(after.functions).toBe(before.functions);
    expect(after.bystanderRows).toEqual(before.bystanderRows);
    expect(Number(after.balance)).toBe(Number(before.balance) + creditedMicros);
    // The payloads stored as idempotency keys and notes read back verbatim from the ledger.
    const { rows } = await owner.query<{ idempotency_key: string | null; note: string | null }>("SELECT idempotency_key, note FROM nemo.ledger_entries WHERE org_id = $1 AND kind = 'topup'", [target.org]);
    const stored = new Set(rows.flatMap((r) => [r.idempotency_key, r.note]));
    for (const payload of PAYLOADS) expect(stored.has(payload), payload).toBe(true);
  });
});
