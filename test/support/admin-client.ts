// The admin API over real HTTP, for tests: a client bound to a gateway's base URL and a caller (the
// master key, an org's admin key, or raw auth headers), and the fixtures suites build with it.
import { randomUUID } from 'node:crypto';
import { request, type Dispatcher } from 'undici';
import { expect } from 'vitest';

export type AdminMethod = 'GET' | 'POST' | 'PATCH';

/** A key, sent as `Authorization: Bearer <key>`, or the auth headers to send as they are. */
export type AdminCaller = string | Readonly<Record<string, string>>;

export interface AdminReply<T = any> {
  readonly status: number;
  /** The parsed JSON answer. */
  readonly body: T;
}

export interface AdminClient {
  /** One request; `path` is below /admin/v1 (below /admin/v1/orgs/:org for a client from `org()`); a body goes as JSON. */
  call<T = any>(method: AdminMethod, path: string, body?: unknown): Promise<AdminReply<T>>;
  /** `call`, throwing on a status of 300 or more; resolves with the parsed answer. */
  ok<T = any>(method: AdminMethod, path: string, body?: unknown): Promise<T>;
  /** The same caller on one org's routes. */
  org(orgId: string): AdminClient;
}

export interface AdminClientOptions {
  /** The undici dispatcher to send through (default: undici's global one). */
  readonly dispatcher?: Dispatcher;
}

export function adminClient(baseUrl: string, caller: AdminCaller, options: AdminClientOptions = {}): AdminClient {
  const auth = typeof caller === 'string' ? { authorization: `Bearer ${caller}` } : caller;
  const at = (prefix: string): AdminClient => {
    const call = async <T>(method: AdminMethod, path: string, body?: unknown): Promise<AdminReply<T>> => {
      const res = await request(`${prefix}${path}`, {
        method,
        headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        ...(options.dispatcher === undefined ? {} : { dispatcher: options.dispatcher }),
      });
      return { status: res.statusCode, body: (await res.body.json()) as T };
    };
    return {
      call,
      async ok<T>(method: AdminMethod, path: string, body?: unknown): Promise<T> {
        const res = await call<T>(method, path, body);
        if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
        return res.body;
      },
      org: (orgId) => at(`${prefix}/orgs/${orgId}`),
    };
  };
  return at(`${baseUrl}/admin/v1`);
}

/** What creating a key answers: its row, and the secret (shown this once). */
export interface CreatedKey {
  readonly id: string;
  readonly key: string;
}

/** POST /orgs as `platform` (the master key); expects 201 and resolves with the org's row. */
export async function createOrg<T extends { id: string } = { id: string; name: string }>(platform: AdminClient, name: string): Promise<T> {
  const { status, body } = await platform.call<T>('POST', '/orgs', { name });
  expect(status, JSON.stringify(body)).toBe(201);
  return body;
}

/** POST /keys on an org's client (`adminClient(...).org(id)`), a random name unless `fields` has one; expects 201. */
export async function createKey<T extends CreatedKey = CreatedKey>(org: AdminClient, fields: Record<string, unknown> = {}): Promise<T> {
  const { status, body } = await org.call<T>('POST', '/keys', { name: `key ${randomUUID().slice(0, 6)}`, ...fields });
  expect(status, JSON.stringify(body)).toBe(201);
  return body;
}

/** POST /teams on an org's client, a random name unless `fields` has one; expects 201 and resolves with the team's id. */
export async function createTeam(org: AdminClient, fields: Record<string, unknown> = {}): Promise<string> {
  const { status, body } = await org.call<{ id: string }>('POST', '/teams', { name: `team ${randomUUID().slice(0, 6)}`, ...fields });
  expect(status, JSON.stringify(body)).toBe(201);
  return body.id;
}

export interface OrgOverHttp {
  readonly orgId: string;
  readonly keyId: string;
  readonly key: string;
  /** The key's Authorization header value. */
  readonly authorization: string;
}

/** A new org made as `platform` (the master key), with `micros` of credits (none when 0) and an admin key (`keyFields` added). */
export async function fundedOrgOverHttp(platform: AdminClient, name: string, micros: number, keyFields: Record<string, unknown> = {}): Promise<OrgOverHttp> {
  const org = await platform.ok<{ id: string }>('POST', '/orgs', { name });
  if (micros > 0) await platform.ok('POST', `/orgs/${org.id}/credits`, { amount_micros: micros, idempotency_key: `initial-${org.id}` });
  const key = await platform.ok<CreatedKey>('POST', `/orgs/${org.id}/keys`, { name: `${name} key`, role: 'admin', ...keyFields });
  return { orgId: org.id, keyId: key.id, key: key.key, authorization: `Bearer ${key.key}` };
}

/** A row of GET /orgs/:org/spend: one limit window of a key or a team. */
export interface SpendWindow {
  scope: 'key' | 'team';
  scope_id: string;
  period: 'minute' | 'day' | 'month';
  window_start: string;
  requests: number;
  tokens: number;
  spent_micros: number;
  rpm_limit: number | null;
  tpm_limit: number | null;
  cap_micros: number | null;
}

/** GET /spend on an org's client; expects 200 and a list. */
export async function spendWindows(org: AdminClient): Promise<SpendWindow[]> {
  const { status, body } = await org.call<{ object: string; data: SpendWindow[] }>('GET', '/spend');
  expect(status, JSON.stringify(body)).toBe(200);
  expect(body.object).toBe('list');
  return body.data;
}
