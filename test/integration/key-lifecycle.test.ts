// An API key's life through HTTP across two gateway instances on one database: created on one,
// used on the other, revoked on the first, refused by the second within a second (LISTEN/NOTIFY);
// and a key that expires stops working by itself.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseEnv } from '../support/test-database.js';
import { startTestGateway, waitFor, type TestGateway } from './helpers/gateway.js';

const CLI = fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url));
const MODELS = [{ name: 'm', deployments: [{ provider: 'mock', model: 'm', mock: { completionTokens: 2 } }] }];

describe('API key lifecycle across instances', () => {
  let first: TestGateway;
  let second: ChildProcess;
  let secondUrl: string;
  let configDir: string;

  beforeAll(async () => {
    first = await startTestGateway({ models: MODELS });
    // The second instance is its own process on the same database, as in production.
    const dir = (configDir = mkdtempSync(join(tmpdir(), 'nemo-keys-')));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ models: MODELS }));
    second = spawn(process.execPath, [CLI, 'start'], {
      env: { ...process.env, ...databaseEnv(first.database), PORT: '0', HOST: '127.0.0.1', NEMO_CONFIG: join(dir, 'config.json'), NEMO_MASTER_KEY: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    second.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    let err = '';
    second.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    await waitFor(() => /listening on (http:\/\/\S+)/.test(out) || second.exitCode !== null, 30_000, 20);
    const match = /listening on (http:\/\/\S+)/.exec(out);
    if (!match) throw new Error(`second gateway did not start: ${err}`);
    secondUrl = match[1]!;
  });

  afterAll(async () => {
    if (second && second.exitCode === null) {
      second.kill('SIGTERM');
      await once(second, 'exit');
    }
    await first?.close();
    if (configDir) rmSync(configDir, { recursive: true, force: true });
  });

  const chat = (url: string, key: string) =>
    fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
    }).then(async (res) => ({ status: res.status, body: await res.text() }));

  const admin = (path: string, body?: unknown) =>
    fetch(`${first.url}/admin/v1/orgs/${first.orgId}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...first.auth },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(async (res) => ({ status: res.status, json: (await res.json()) as Record<string, unknown> }));

  it('a revoked key stops working on the other instance within a second', async () => {
    const created = await admin('/keys', { name: 'to revoke' });
    expect(created.status).toBe(201);
    const key = created.json.key as string;
    // Used on both: both caches now hold it.
    expect((await chat(first.url, key)).status).toBe(200);
    expect((await chat(secondUrl, key)).status).toBe(200);
    expect((await chat(secondUrl, key)).status).toBe(200);

    const revoked = await admin(`/keys/${created.json.id as string}/revoke`);
    expect(revoked.status).toBe(200);
    expect(revoked.json.revoked_at).toEqual(expect.any(String));
    const revokedAt = Date.now();
    await waitFor(async () => (await chat(secondUrl, key)).status === 401, 1000, 20);
    const refusedAfterMs = Date.now() - revokedAt;
    expect(refusedAfterMs).toBeLessThan(1000);
    const answer = await chat(first.url, key);
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.body).error.code).toBe('invalid_api_key');
    // The secret is nowhere in what the gateway says back.
    expect(answer.body).not.toContain(key);
  });

  it('an expiring key works until its time, then both instances refuse it', async () => {
    const expiresAt = new Date(Date.now() + 1500).toISOString();
    const created = await admin('/keys', { name: 'short lived', expires_at: expiresAt });
    expect(created.status).toBe(201);
    const key = created.json.key as string;
    expect((await chat(first.url, key)).status).toBe(200);
    expect((await chat(secondUrl, key)).status).toBe(200);
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(expiresAt) - Date.now() + 50)));
    for (const url of [first.url, secondUrl]) {
      const answer = await chat(url, key);
      expect(answer.status).toBe(401);
      expect(JSON.parse(answer.body).error.message).toMatch(/expired/);
    }
  });

  it('an org config change reaches the other instance within a second', async () => {
    const created = await admin('/keys', { name: 'model gated' });
    const key = created.json.key as string;
    expect((await chat(secondUrl, key)).status).toBe(200);
    const patched = await fetch(`${first.url}/admin/v1/orgs/${first.orgId}/config`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', ...first.auth },
      body: JSON.stringify({ allowed_models: [] }),
    });
    expect(patched.status).toBe(200);
    await waitFor(async () => (await chat(secondUrl, key)).status === 403, 1000, 20);
    await fetch(`${first.url}/admin/v1/orgs/${first.orgId}/config`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', ...first.auth },
      body: JSON.stringify({ allowed_models: null }),
    });
    await waitFor(async () => (await chat(secondUrl, key)).status === 200, 1000, 20);
  });
});
