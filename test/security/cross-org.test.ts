// Org isolation in the admin API: a matrix over every admin route (read from the route tables).
// Org A's admin key against org B's resources, org A's paths holding org B's team and key ids (for
// A's admin and for the platform master key), and A's member key: every call answers 403 or 404,
// and org B's rows, in every tenant table, are exactly what they were (fingerprinted as the owner).
// A positive control first proves each request is valid: the same calls succeed where allowed.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM, startTestGateway, type TestGateway } from '../integration/helpers/gateway.js';
import { adminRoutes, fillPath, type AdminRoute } from '../support/admin-routes.js';
import { errorBodyProblem } from '../support/fuzz.js';

const MASTER_KEY = 'sk-master-cross-org-0123456789abcdefghijklmnopqrstuvwxyz';
const ROUTES = adminRoutes();
const key = (r: AdminRoute) => `${r.method} ${r.pattern}`;

/** A body each route accepts: if authorization failed, the call would change something. */
const VALID_BODIES: Record<string, unknown> = {
  'POST /admin/v1/orgs': { name: 'intruder org' },
  'POST /admin/v1/orgs/:org/teams': { name: 'intruder team' },
  'PATCH /admin/v1/orgs/:org/teams/:team': { name: 'renamed by intruder', rpm_limit: 1 },
  'POST /admin/v1/orgs/:org/members': { role: 'owner' },
  'POST /admin/v1/orgs/:org/keys': { name: 'intruder key', role: 'admin' },
  'PATCH /admin/v1/orgs/:org/keys/:key': { name: 'renamed by intruder', rpm_limit: 1, daily_spend_cap_micros: 1 },
  'PATCH /admin/v1/orgs/:org/config': { logging_level: 'none', allowed_models: ['m'] },
  'POST /admin/v1/orgs/:org/credits': { amount_micros: 1_000_000, idempotency_key: 'intruder top-up' },
};
/** Query strings the GET routes accept (the rest take none). */
const RANGE = '?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z';
const queryOf = (r: AdminRoute) => (r.method !== 'GET' ? '' : /\/(usage|export)$/.test(r.pattern) ? RANGE : /\/(ledger|guardrail-events)$/.test(r.pattern) ? '?limit=10' : '');
let calls = 0;
/** Names made unique per call, so a repeated create is never refused as a duplicate instead. */
const fresh = (body: unknown) => JSON.stringify(body).replace(/"(intruder[^"]*|renamed by intruder)"/g, (_, n: string) => `"${n} ${++calls}"`);
/** Routes only the platform may call: an org admin gets 403 even on its own org. */
const PLATFORM_ONLY = new Set(['POST /admin/v1/orgs', 'POST /admin/v1/orgs/:org/credits']);

interface Org {
  id: string;
  team: string;
  memberKeyId: string;
  adminKey: string;
  memberKey: string;
}

let gw: TestGateway;
let owner: pg.Client;
let a: Org;
let b: Org;
let c: Org;

async function makeOrg(name: string): Promise<Org> {
  const org = await gw.gateway.admin.createOrg(PLATFORM, { name });
  await gw.gateway.admin.addCredits(PLATFORM, org.id, { amount_micros: 5_000_000, idempotency_key: `${name} credits` });
  const team = (await gw.gateway.admin.createTeam(PLATFORM, org.id, { name: 'team' })) as { id: string };
  const admin = (await gw.gateway.admin.createKey(PLATFORM, org.id, { name: 'admin', role: 'admin' })) as { key: string };
  const member = (await gw.gateway.admin.createKey(PLATFORM, org.id, { name: 'member', team_id: team.id })) as { id: string; key: string };
  await gw.gateway.admin.createMember(PLATFORM, org.id, { role: 'admin', team_id: team.id });
  return { id: org.id, team: team.id, memberKeyId: member.id, adminKey: admin.key, memberKey: member.key };
}

async function call(route: AdminRoute, path: string, secret: string) {
  const takesBody = route.takesBody;
  const res = await fetch(`${gw.url}${path}${queryOf(route)}`, {
    method: route.method,
    headers: { authorization: `Bearer ${secret}`, ...(takesBody ? { 'content-type': 'application/json' } : {}) },
    body: takesBody ? fresh(VALID_BODIES[key(route)] ?? {}) : undefined,
  });
  return { status: res.status, body: await res.text() };
}

/** Every row of every tenant table that belongs to `orgId`, as one digest per table (as the owner, past RLS). */
async function fingerprint(orgId: string): Promise<Record<string, string>> {
  const { rows: tables } = await owner.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'nemo' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped)
      ORDER BY 1`,
  );
  const out: Record<string, string> = {};
  for (const { name } of tables) {
    const { rows } = await owner.query<{ n: number; digest: string }>(
      `SELECT count(*)::int AS n, md5(coalesce(string_agg(to_jsonb(t)::text, '|' ORDER BY to_jsonb(t)::text), '')) AS digest
         FROM nemo.${pg.escapeIdentifier(name)} t WHERE org_id = $1`,
      [orgId],
    );
    out[name] = `${rows[0]!.n}:${rows[0]!.digest}`;
  }
  return out;
}

async function orgCount(): Promise<number> {
  return (await owner.query<{ n: number }>('SELECT count(*)::int AS n FROM nemo.orgs')).rows[0]!.n;
}

beforeAll(async () => {
  gw = await startTestGateway({ models: [{ name: 'm', deployments: [{ provider: 'mock', model: 'm' }] }] }, { NEMO_MASTER_KEY: MASTER_KEY });
  owner = new pg.Client({ connectionString: gw.database.url });
  await owner.connect();
  await owner.query('SET row_security = off');
  a = await makeOrg('Org A');
  b = await makeOrg('Org B');
  c = await makeOrg('Org C (control)');
});

afterAll(async () => {
  await owner?.end();
  await gw?.close();
});

describe('the matrix covers every admin route', () => {
  it('has a valid body for every route that takes one', () => {
    expect(ROUTES.length).toBeGreaterThanOrEqual(20);
    for (const r of ROUTES.filter((r) => r.takesBody)) expect(VALID_BODIES, `add a valid body for ${key(r)}`).toHaveProperty([key(r)]);
  });
});

describe('positive control: the same calls succeed where they are allowed', () => {
  it.each(ROUTES.map((r) => [key(r), r] as const))('%s by the platform on org C', async (_name, route) => {
    const answer = await call(route, fillPath(route, { org: c.id, team: c.team, key: c.memberKeyId }), MASTER_KEY);
    expect(answer.status, answer.body).toBeLessThan(300);
  });

  it.each(ROUTES.filter((r) => !PLATFORM_ONLY.has(key(r))).map((r) => [key(r), r] as const))('%s by org C\'s admin key on org C', async (_name, route) => {
    const answer = await call(route, fillPath(route, { org: c.id, team: c.team, key: c.memberKeyId }), c.adminKey);
    expect(answer.status, answer.body).toBeLessThan(300);
  });
});

describe("org A's keys against org B", () => {
  let before: Record<string, string>;
  let orgsBefore: number;

  beforeAll(async () => {
    before = await fingerprint(b.id);
    orgsBefore = await orgCount();
  });

  const refused = (answer: { status: number; body: string }) => {
    expect([403, 404], answer.body).toContain(answer.status);
    expect(errorBodyProblem(answer.status, answer.body)).toBeUndefined();
  };

  it.each(ROUTES.filter((r) => r.params.includes('org')).map((r) => [key(r), r] as const))("%s: A's admin key on B's org and objects is refused", async (_name, route) => {
    refused(await call(route, fillPath(route, { org: b.id, team: b.team, key: b.memberKeyId }), a.adminKey));
    // The same with B's id in upper case: the org check is not fooled by another spelling.
    refused(await call(route, fillPath(route, { org: b.id.toUpperCase(), team: b.team, key: b.memberKeyId }), a.adminKey));
  });

  it.each(ROUTES.filter((r) => r.params.includes('team') || r.params.includes('key')).map((r) => [key(r), r] as const))(
    "%s: A's path holding B's team or key id is 404 for A's admin key and for the platform",
    async (_name, route) => {
      for (const secret of [a.adminKey, MASTER_KEY]) {
        const answer = await call(route, fillPath(route, { org: a.id, team: b.team, key: b.memberKeyId }), secret);
        expect(answer.status, answer.body).toBe(404);
      }
    },
  );

  it.each(ROUTES.filter((r) => r.params.includes('org')).map((r) => [key(r), r] as const))("%s: A's member key is refused even on A's own org", async (_name, route) => {
    refused(await call(route, fillPath(route, { org: a.id, team: a.team, key: a.memberKeyId }), a.memberKey));
    refused(await call(route, fillPath(route, { org: b.id, team: b.team, key: b.memberKeyId }), a.memberKey));
  });

  it("the org-level routes: A's admin key lists only A, and cannot create an org", async () => {
    const list = await fetch(`${gw.url}/admin/v1/orgs`, { headers: { authorization: `Bearer ${a.adminKey}` } });
    expect(list.status).toBe(200);
    expect(((await list.json()) as { data: Array<{ id: string }> }).data.map((o) => o.id)).toEqual([a.id]);
    const create = await fetch(`${gw.url}/admin/v1/orgs`, { method: 'POST', headers: { authorization: `Bearer ${a.adminKey}`, 'content-type': 'application/json' }, body: '{"name":"x"}' });
    expect(create.status).toBe(403);
  });

  it("A's keys cannot call /v1 as B, and the master key is not an org key on /v1", async () => {
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'Hi' }] });
    const asMaster = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' }, body });
    expect(asMaster.status).toBe(403);
    // A's key works for A (a control), and B's spend shows nothing of it.
    const asA = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${a.memberKey}`, 'content-type': 'application/json' }, body });
    expect(asA.status).toBe(200);
  });

  it("after the whole matrix, every row of org B is exactly as it was, and no org was created", async () => {
    expect(Object.keys(before)).toEqual(expect.arrayContaining(['api_keys', 'teams', 'members', 'org_config', 'credit_accounts', 'ledger_entries']));
    expect(await fingerprint(b.id)).toEqual(before);
    expect(await orgCount()).toBe(orgsBefore);
    // And B's keys still work.
    const res = await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${b.memberKey}` } });
    expect(res.status).toBe(200);
  });
});
