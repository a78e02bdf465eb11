// API keys are hashed at rest and never logged. A full run over HTTP (org and key creation with the
// master key, keys used for answers and streams, refused, revoked, used after revocation, upstream
// and client errors) with every byte the gateway writes to stdout/stderr captured; then the logs,
// /metrics, every answer but each key's own creation response, and every row of every table in
// schema nemo are scanned for key material: whole keys, their secret part, and any 10 characters
// of the secret beyond the displayed prefix. The master key and a provider key likewise.
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, waitFor, type TestGateway } from '../integration/helpers/gateway.js';

const MASTER_KEY = 'sk-master-material-0123456789abcdefghijklmnopqrstuvwxyz';
const PROVIDER_KEY = 'sk-proj-MATERIALPROVIDERKEY0123456789abcdefghijklmnop';
/** `sk-nemo-` and the first 6 secret characters are shown on purpose (key lists, logs); the rest never. */
const DISPLAYED_CHARS = 'sk-nemo-'.length + 6;

let gw: TestGateway;
let provider: Server;
const captured: string[] = [];
const restore: Array<() => void> = [];
/** Every answer of the run, but the creation answers that hand a key out (once, by design). */
const answers: string[] = [];
const keys: Array<{ id: string; key: string }> = [];

function capture(): void {
  for (const stream of [process.stdout, process.stderr]) {
    const original = stream.write.bind(stream);
    stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      captured.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      return (original as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof stream.write;
    restore.push(() => (stream.write = original as typeof stream.write));
  }
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    const original = console[method];
    console[method] = (...args: unknown[]) => {
      captured.push(args.map(String).join(' '));
      original(...args);
    };
    restore.push(() => (console[method] = original));
  }
}

/** Fragments of a secret that must not appear: the whole, and every 10 characters past the displayed prefix. */
function fragments(secret: string, shownChars: number): string[] {
  const hidden = secret.slice(shownChars);
  const out = [secret];
  for (let i = 0; i + 10 <= hidden.length; i++) out.push(hidden.slice(i, i + 10));
  return out;
}

function findMaterial(text: string): string[] {
  const found: string[] = [];
  const secrets = [...keys.map((k) => ({ name: `key ${k.id}`, fragments: fragments(k.key, DISPLAYED_CHARS) })), { name: 'master key', fragments: fragments(MASTER_KEY, 0) }, { name: 'provider key', fragments: fragments(PROVIDER_KEY, 0) }];
  for (const secret of secrets) {
    const hit = secret.fragments.find((f) => text.includes(f));
    if (hit !== undefined) found.push(`${secret.name}: "${hit}" at ...${text.slice(Math.max(0, text.indexOf(hit) - 60), text.indexOf(hit) + hit.length + 20)}...`);
  }
  return found;
}

async function http(method: string, path: string, authorization: string | undefined, body?: unknown, keepAnswer = true) {
  const headers: Record<string, string> = {};
  if (authorization !== undefined) headers.authorization = authorization;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${gw.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (keepAnswer) answers.push(`${method} ${path} -> ${res.status}\n${[...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n${text}`);
  return { status: res.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
}

const chat = (authorization: string | undefined, model: string, stream = false, raw?: string) =>
  fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { ...(authorization === undefined ? {} : { authorization }), 'content-type': 'application/json' },
    body: raw ?? JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello' }], stream }),
  }).then(async (res) => {
    const text = await res.text();
    answers.push(`chat ${model} -> ${res.status}\n${[...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n${text}`);
    return res.status;
  });

beforeAll(async () => {
  capture();
  provider = createServer((req, res) => {
    // A failing upstream that echoes the key it was called with: its answer is logged nowhere either.
    res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: `failed for ${req.headers.authorization}` } }));
  });
  await new Promise<void>((resolve) => provider.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(provider.address() as AddressInfo).port}/v1`;
  gw = await startTestGateway(
    {
      models: [
        { name: 'm', deployments: [{ provider: 'mock', model: 'm', inputPricePerMTok: 1, outputPricePerMTok: 1, mock: { ttftMs: 0, tokensPerSecond: 0, completionTokens: 8 } }] },
        { name: 'other', deployments: [{ provider: 'mock', model: 'other' }] },
        { name: 'failing', deployments: [{ provider: 'openai-compatible', model: 'failing', baseUrl, apiKeyEnv: 'MATERIAL_PROVIDER_KEY' }] },
      ],
    },
    { NEMO_MASTER_KEY: MASTER_KEY, MATERIAL_PROVIDER_KEY: PROVIDER_KEY },
  );
  keys.push({ id: 'helper', key: gw.apiKey });
});

afterAll(async () => {
  await gw?.close();
  await new Promise((r) => provider?.close(r));
  for (const undo of restore.reverse()) undo();
});

describe('a full run: keys created, used, refused, revoked and used again', () => {
  it('runs the lifecycle over HTTP', async () => {
    const master = `Bearer ${MASTER_KEY}`;
    const org = (await http('POST', '/admin/v1/orgs', master, { name: 'material org' })).json() as { id: string };
    await http('POST', `/admin/v1/orgs/${org.id}/credits`, master, { amount_micros: 1e9, idempotency_key: 'material' });
    // Creation answers carry the key once, by design: kept out of the scanned answers.
    const admin = (await http('POST', `/admin/v1/orgs/${org.id}/keys`, master, { name: 'admin', role: 'admin' }, false)).json() as { id: string; key: string };
    keys.push({ id: admin.id, key: admin.key });
    const member = (await http('POST', `/admin/v1/orgs/${org.id}/keys`, `Bearer ${admin.key}`, { name: 'member', allowed_models: ['m', 'failing'] }, false)).json() as { id: string; key: string };
    keys.push({ id: member.id, key: member.key });
    expect(member.key).toMatch(/^sk-nemo-[0-9A-Za-z]{43}$/);

    // Used: answers and streams, by Authorization and by x-api-key.
    expect(await chat(`Bearer ${member.key}`, 'm')).toBe(200);
    expect(await chat(`Bearer ${member.key}`, 'm', true)).toBe(200);
    const viaHeader = await fetch(`${gw.url}/v1/models`, { headers: { 'x-api-key': member.key } });
    answers.push(await viaHeader.text());
    expect(viaHeader.status).toBe(200);
    // Refused and failing: a model the key may not use, bad JSON, an upstream failure, the master key on /v1.
    expect(await chat(`Bearer ${member.key}`, 'other')).toBe(403);
    expect(await chat(`Bearer ${member.key}`, 'm', false, '{"model":')).toBe(400);
    expect(await chat(`Bearer ${member.key}`, 'failing')).toBe(502);
    expect(await chat(master, 'm')).toBe(403);
    // Keys that are not keys: unknown, a near miss of a real one, a truncated one.
    const nearMiss = member.key.slice(0, -1) + (member.key.endsWith('a') ? 'b' : 'a');
    for (const wrong of [`sk-nemo-${'Z'.repeat(43)}`, nearMiss, member.key.slice(0, 30)]) expect(await chat(`Bearer ${wrong}`, 'm')).toBe(401);
    // Listed, changed, revoked, then used: refused everywhere.
    const listed = await http('GET', `/admin/v1/orgs/${org.id}/keys`, `Bearer ${admin.key}`);
    expect(listed.status).toBe(200);
    expect((await http('PATCH', `/admin/v1/orgs/${org.id}/keys/${member.id}`, `Bearer ${admin.key}`, { name: 'member renamed', rpm_limit: 1000 })).status).toBe(200);
    expect((await http('POST', `/admin/v1/orgs/${org.id}/keys/${member.id}/revoke`, `Bearer ${admin.key}`)).status).toBe(200);
    await waitFor(async () => (await chat(`Bearer ${member.key}`, 'm')) === 401, 3000, 50);
    expect((await http('GET', `/admin/v1/orgs/${org.id}/keys`, `Bearer ${member.key}`)).status).toBe(401);
    // An admin route with a bad body, and one on another org: errors that log nothing secret either.
    expect((await http('POST', `/admin/v1/orgs/${org.id}/teams`, `Bearer ${admin.key}`, { name: 7 })).status).toBe(400);
    expect((await http('GET', `/admin/v1/orgs/${gw.orgId}/keys`, `Bearer ${admin.key}`)).status).toBe(404);
  });
});

describe('what the run left behind', () => {
  it('the scan has something to scan: the gateway logged during the run', () => {
    const logs = captured.join('');
    expect(logs).toContain('"msg":"migrations up to date"');
    expect(logs.length).toBeGreaterThan(1000);
    // And the scan finds material when it is there: 11 characters from the middle of a secret.
    expect(findMaterial(`... ${keys[2]!.key.slice(20, 31)} ...`)).toHaveLength(1);
  });

  it('no key material in the logs', () => {
    expect(findMaterial(captured.join(''))).toEqual([]);
  });

  it('no key material in /metrics', async () => {
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toContain('nemo_requests_total');
    expect(findMaterial(metrics)).toEqual([]);
  });

  it('no key material in any answer but the one that created the key (key lists show the prefix only)', () => {
    expect(answers.length).toBeGreaterThan(15);
    expect(findMaterial(answers.join('\n'))).toEqual([]);
    const lists = answers.filter((a) => a.startsWith('GET /admin/v1/orgs/') && a.includes('/keys -> 200'));
    expect(lists.join('')).toContain(keys[2]!.key.slice(0, DISPLAYED_CHARS));
  });

  it('keys are stored only as their SHA-256 and display prefix, and no row of any table holds key material', async () => {
    const owner = new pg.Client({ connectionString: gw.database.url });
    await owner.connect();
    try {
      await owner.query('SET row_security = off');
      for (const k of keys.slice(1)) {
        const { rows } = await owner.query<{ key_hash: Buffer; key_prefix: string }>('SELECT key_hash, key_prefix FROM nemo.api_keys WHERE key_id = $1', [k.id]);
        expect(rows).toHaveLength(1);
        expect(rows[0]!.key_hash.equals(createHash('sha256').update(k.key).digest())).toBe(true);
        expect(rows[0]!.key_prefix).toBe(k.key.slice(0, DISPLAYED_CHARS));
      }
      const { rows: tables } = await owner.query<{ name: string }>(
        `SELECT c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'nemo' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1`,
      );
      expect(tables.map((t) => t.name)).toContain('api_keys');
      let dump = '';
      for (const { name } of tables) {
        const { rows } = await owner.query<{ row: string }>(`SELECT to_jsonb(t)::text AS row FROM nemo.${pg.escapeIdentifier(name)} t`);
        dump += rows.map((r) => r.row).join('\n');
      }
      expect(dump).toContain(keys[1]!.key.slice(0, DISPLAYED_CHARS));
      expect(findMaterial(dump)).toEqual([]);
    } finally {
      await owner.end();
    }
  });
});
