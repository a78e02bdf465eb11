// Property-based fuzzing of the admin API on a real gateway: every route (read from the route
// tables), called by every kind of caller with arbitrary path parameters, query strings and JSON
// bodies (near-valid ones with each field of each type, and any JSON at all). No answer is a 5xx
// (the database is up, so every error is the caller's), every error is OpenAI-shaped with a
// catalog code, no promise rejection goes unhandled, and the gateway keeps serving afterwards.
import fc from 'fast-check';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM, startTestGateway, type TestGateway } from '../integration/helpers/gateway.js';
import { adminRoutes, fillPath, type AdminRoute } from '../support/admin-routes.js';
import { errorBodyProblem, fuzzParams, fuzzTimeoutMs, trapUnhandled } from '../support/fuzz.js';

const MASTER_KEY = 'sk-master-fuzz-admin-0123456789abcdefghijklmnopqrstuvwxyz';
const ROUTES = adminRoutes();

let gw: TestGateway;
let agent: Agent;
const trap = trapUnhandled();
/** Real ids of two orgs, so fuzzed calls also hit objects that exist (in the caller's org or not). */
let ids: { orgs: string[]; teams: string[]; keys: string[] };
let callers: Record<string, string | undefined>;

async function call(route: AdminRoute, path: string, headers: Record<string, string>, body: string | undefined) {
  const res = await request(`${gw.url}${path}`, { method: route.method, headers, body, dispatcher: agent });
  return { status: res.statusCode, contentType: String(res.headers['content-type'] ?? ''), body: await res.body.text() };
}

function checkAnswer(route: AdminRoute, answer: { status: number; contentType: string; body: string }): void {
  const what = `${route.method} ${route.pattern} -> ${answer.status} ${answer.body.slice(0, 300)}`;
  expect(answer.status, what).toBeLessThan(500);
  if (answer.status >= 400) {
    expect(answer.contentType, what).toBe('application/json');
    expect(errorBodyProblem(answer.status, answer.body), what).toBeUndefined();
  } else if (answer.contentType === 'application/json') {
    expect(() => JSON.parse(answer.body), what).not.toThrow();
  } else {
    expect(answer.contentType, what).toMatch(/^(application\/x-ndjson|text\/csv)/);
  }
}

const anyJson = fc.jsonValue({ maxDepth: 3 });
const weird = fc.oneof(anyJson, fc.string({ unit: 'binary', maxLength: 30 }), fc.constantFrom(null, true, 0, -1, 1.5, 2 ** 53, 1e308, '', '\u0000', "'; DROP TABLE nemo.orgs; --", [], {}));
const name = fc.oneof(fc.string({ maxLength: 50 }), fc.string({ unit: 'binary', maxLength: 50 }), fc.constantFrom('x'.repeat(201), '  ', 'a\u0000b', "Robert'); DROP TABLE nemo.api_keys;--"));
const limit = fc.oneof(fc.integer({ min: -2, max: 3_000_000_000 }), fc.constant(null), weird);
const policy = fc.oneof(
  fc.record(
    {
      deny_words: fc.oneof(fc.array(name, { maxLength: 3 }), weird),
      deny_patterns: fc.oneof(fc.array(fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('(a+)+$', '(?<=x)y', '\\1(a)', 'a{17}', '[', 'ACME-[0-9]{6}', '(?i)x')), { maxLength: 3 }), weird),
      deny_action: fc.oneof(fc.constantFrom('block', 'flag'), weird),
      pii: fc.oneof(fc.dictionary(fc.constantFrom('email', 'phone', 'credit_card', 'iban', 'us_ssn', 'ip_address', 'secret', 'other'), fc.oneof(fc.constantFrom('block', 'redact', 'flag', null), weird)), weird),
      injection: fc.oneof(fc.constantFrom('block', 'flag', null), weird),
      max_input_tokens: limit,
      scan_output: fc.oneof(fc.boolean(), weird),
    },
    { requiredKeys: [] },
  ),
  weird,
);
const iso = fc.oneof(fc.date({ min: new Date('1970-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }).map((d) => d.toISOString()), fc.constantFrom('2024-13-45T25:61:00Z', '0000-01-01T00:00:00Z', '0001-01-01T00:30:00+01:00', '9999-12-31T23:59:59+14:00', '9999-12-31T23:59:59-14:00', 'yesterday', ''), fc.string({ maxLength: 30 }));
/** Fields of every admin body, each sometimes right, sometimes any type; plus unknown fields. */
const body = fc.oneof(
  fc.record(
    {
      name,
      role: fc.oneof(fc.constantFrom('owner', 'admin', 'member'), weird),
      user_id: fc.oneof(fc.uuid(), weird),
      team_id: fc.oneof(fc.uuid(), fc.constant(null), weird),
      allowed_models: fc.oneof(fc.array(fc.oneof(fc.constant('m'), name), { maxLength: 3 }), fc.constant(null), weird),
      expires_at: fc.oneof(iso, fc.constant(null), weird),
      rpm_limit: limit,
      tpm_limit: limit,
      daily_spend_cap_micros: limit,
      monthly_spend_cap_micros: limit,
      guardrail_policy: fc.oneof(policy, fc.constant(null)),
      default_guardrail_policy: policy,
      logging_level: fc.oneof(fc.constantFrom('none', 'metadata', 'full'), weird),
      log_retention_days: limit,
      amount_micros: fc.oneof(fc.integer({ min: -1_000_000, max: 1_000_000 }), fc.constantFrom(2 ** 53, -(2 ** 53), 1e20), weird),
      idempotency_key: fc.oneof(name, weird),
      kind: fc.oneof(fc.constantFrom('topup', 'refund', 'adjustment'), weird),
      note: fc.oneof(name, weird),
      unknown_field: weird,
    },
    { requiredKeys: [] },
  ),
  anyJson,
);
const pathValue = (real: string[]) =>
  fc.oneof(
    fc.constantFrom(...real),
    fc.uuid(),
    fc.constantFrom('', '%00', '..', "1' OR '1'='1", '00000000-0000-0000-0000-000000000000', 'FFFFFFFF-FFFF-4FFF-BFFF-FFFFFFFFFFFF'),
    fc.string({ unit: 'binary', maxLength: 40 }).map(encodeURIComponent),
  );
const query = fc.dictionary(
  fc.oneof(fc.constantFrom('limit', 'before', 'from', 'to', 'format', 'group_by'), fc.string({ maxLength: 10 })),
  fc.oneof(fc.constantFrom('1', '0', '-1', '1000', '1001', '1e3', '9'.repeat(30), 'ndjson', 'csv', 'day,key,team,model', 'day,,bogus'), iso, fc.string({ unit: 'binary', maxLength: 20 })),
  { maxKeys: 4 },
);

beforeAll(async () => {
  gw = await startTestGateway({ models: [{ name: 'm', deployments: [{ provider: 'mock', model: 'm' }] }] }, { NEMO_MASTER_KEY: MASTER_KEY });
  agent = new Agent({ connections: 4 });
  const other = await gw.gateway.admin.createOrg(PLATFORM, { name: 'other org' });
  const teams: string[] = [];
  const keys: string[] = [];
  const secrets: Record<string, string> = {};
  for (const org of [gw.orgId, other.id]) {
    teams.push(((await gw.gateway.admin.createTeam(PLATFORM, org, { name: 'team' })) as { id: string }).id);
    for (const role of ['admin', 'member'] as const) {
      const key = (await gw.gateway.admin.createKey(PLATFORM, org, { name: role, role })) as { id: string; key: string };
      keys.push(key.id);
      secrets[`${org === gw.orgId ? 'own' : 'other'} ${role}`] = key.key;
    }
  }
  ids = { orgs: [gw.orgId, other.id], teams, keys };
  callers = { master: MASTER_KEY, 'org admin': gw.apiKey, 'org member': secrets['own member'], 'other org admin': secrets['other admin'], nobody: undefined, garbage: 'sk-nemo-notakey' };
});

afterAll(async () => {
  trap.uninstall();
  await agent?.close();
  await gw?.close();
});

describe('the admin API under fuzzing', () => {
  it('has routes to fuzz', () => {
    expect(ROUTES.length).toBeGreaterThanOrEqual(20);
  });

  it('answers every route, any caller, any path parameters, query and body with a success or an OpenAI-shaped 4xx', async () => {
    const route = fc.constantFrom(...ROUTES);
    const caller = fc.constantFrom('master', 'org admin', 'org member', 'other org admin', 'nobody', 'garbage');
    const payload = fc.oneof({ weight: 4, arbitrary: body.map((b) => JSON.stringify(b)) }, { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 60 }) });
    const contentType = fc.oneof({ weight: 6, arbitrary: fc.constant('application/json') }, { weight: 1, arbitrary: fc.constantFrom('text/plain', '') });
    await fc.assert(
      fc.asyncProperty(
        route,
        caller,
        pathValue(ids.orgs),
        pathValue(ids.teams),
        pathValue(ids.keys),
        query,
        payload,
        contentType,
        async (r, who, org, team, key, q, raw, type) => {
          const qs = new URLSearchParams(q).toString();
          const path = fillPath(r, { org, team, key }) + (qs ? `?${qs}` : '');
          const headers: Record<string, string> = {};
          const secret = callers[who];
          if (secret !== undefined) headers.authorization = `Bearer ${secret}`;
          if (r.takesBody && type !== '') headers['content-type'] = type;
          checkAnswer(r, await call(r, path, headers, r.takesBody ? raw : undefined));
        },
      ),
      fuzzParams(5),
    );
  }, fuzzTimeoutMs(5));

  it('answers each route called by its org admin on real objects with any body: a success or an OpenAI-shaped 4xx', async () => {
    // The same, concentrated where validation and SQL actually run: authorized calls on real ids.
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ROUTES), body, query, fc.boolean(), async (r, b, q, master) => {
        const qs = new URLSearchParams(q).toString();
        const path = fillPath(r, { org: gw.orgId, team: ids.teams[0]!, key: ids.keys[1]! }) + (qs ? `?${qs}` : '');
        const headers: Record<string, string> = { authorization: `Bearer ${master ? MASTER_KEY : gw.apiKey}` };
        if (r.takesBody) headers['content-type'] = 'application/json';
        checkAnswer(r, await call(r, path, headers, r.takesBody ? JSON.stringify(b) : undefined));
      }),
      fuzzParams(5),
    );
  }, fuzzTimeoutMs(5));

  it('keeps serving, and no promise rejection went unhandled', async () => {
    const res = await fetch(`${gw.url}/admin/v1/orgs/${gw.orgId}`, { headers: gw.auth });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { id: string }).id).toBe(gw.orgId);
    const ready = await fetch(`${gw.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(trap.problems).toEqual([]);
  });
});
