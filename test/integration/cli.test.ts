// The `nemo` command as a user runs it: start prints how to call it and serves; SIGTERM drains
// and exits 0; a broken config lists every problem and exits 2.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { startGateway } from '../../src/main.js';
import { createTestDatabase, databaseEnv } from '../support/test-database.js';
import { CLI, waitFor } from './helpers/gateway.js';
import { HTTP_SERVER_ENV } from '../support/http-server-env.js';

function run(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return { child, out: () => stdout, err: () => stderr };
}

describe('nemo CLI', () => {
  it('start on a fresh data dir boots embedded PostgreSQL, creates a demo key, serves it, and exits 0 on SIGTERM', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'nemo-cli-start-'));
    // Reachable by the Postgres OS user, so the cluster lives (and is removed) inside it.
    chmodSync(dataDir, 0o755);
    const { child, out, err } = run(['start'], { PORT: '0', HOST: '127.0.0.1', NEMO_CONFIG: '', NEMO_MASTER_KEY: '', DATABASE_URL: '', NEMO_DATA_DIR: dataDir });
    try {
      const deadline = Date.now() + 60_000;
      while (!/Bearer (sk-nemo-\w+)/.test(out()) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      const port = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out())?.[1];
      const key = /Bearer (sk-nemo-\w+)/.exec(out())?.[1];
      expect(port, err()).toBeDefined();
      expect(key, out()).toBeDefined();
      expect(out()).toContain('Created a demo organization');
      // Which HTTP server runs is logged: natively where a uWebSockets.js build loads (Node 20 here).
      expect(err()).toMatch(/"msg":"http server: (uWebSockets\.js|Node http module|no native uWebSockets\.js build loads here)/);
      if (process.versions.modules === '115' && process.env.NEMO_HTTP_SERVER !== 'node') expect(err()).toContain('"msg":"http server: uWebSockets.js"');
      expect(err()).toContain('embedded PostgreSQL');
      // The key never reaches the logs.
      expect(err()).not.toContain(key!);
      const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ model: 'mock-fast', messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(res.status).toBe(200);
      // The printed console address serves the console.
      const consoleUrl = /Admin console: (http:\/\/\S+\/ui)/.exec(out())?.[1];
      expect(consoleUrl, out()).toBe(`http://127.0.0.1:${port}/ui`);
      const page = await fetch(consoleUrl!);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      expect(code).toBe(0);
      expect(err()).toContain('"msg":"stopped"');

      // A second start on the same data dir keeps the demo org and prints the same key.
      const again = run(['start'], { PORT: '0', HOST: '127.0.0.1', NEMO_CONFIG: '', NEMO_MASTER_KEY: '', DATABASE_URL: '', NEMO_DATA_DIR: dataDir });
      const until = Date.now() + 60_000;
      while (!/Bearer (sk-nemo-\w+)/.test(again.out()) && Date.now() < until && again.child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      expect(again.out(), again.err()).toContain(key!);
      expect(again.out()).not.toContain('Created a demo organization');
      again.child.kill('SIGTERM');
      const [againCode] = await once(again.child, 'exit');
      expect(againCode).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 120_000);

  it('check-config lists every problem of a broken config and exits 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nemo-cli-'));
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, ['server:', '  port: "eighty"', 'models:', '  - name: a', '    deployments:', '      - provider: openai-compatible', '        model: x', '        apiKeyEnv: NEMO_TEST_UNSET_KEY', ''].join('\n'));
    const { child, err } = run(['check-config'], { NEMO_CONFIG: path });
    const [code] = await once(child, 'exit');
    rmSync(dir, { recursive: true, force: true });
    expect(code).toBe(2);
    expect(err()).toContain('server.port');
    expect(err()).toContain('baseUrl: required for provider openai-compatible');
    expect(err()).toContain('NEMO_TEST_UNSET_KEY is not set');
  });

  it('orgs/teams/keys commands manage tenants through the same service as the admin API', async () => {
    const db = await createTestDatabase();
    const env = { ...databaseEnv(db), NEMO_CONFIG: '' };
    const json = async (args: string[]) => {
      const { child, out, err } = run(args, env);
      const [code] = await once(child, 'exit');
      expect(code, err()).toBe(0);
      return JSON.parse(out()) as Record<string, unknown> & Array<Record<string, unknown>>;
    };
    try {
      const org = await json(['orgs', 'create', 'acme']);
      expect(org.name).toBe('acme');
      expect((await json(['orgs', 'list'])).map((o) => o.id)).toEqual([org.id]);
      expect(await json(['orgs', 'config', '--org', org.id as string])).toMatchObject({ logging_level: 'metadata', log_retention_days: null });
      expect(await json(['orgs', 'config', '--org', org.id as string, '--logging', 'full', '--log-retention-days', '14'])).toMatchObject({ logging_level: 'full', log_retention_days: 14 });
      expect(await json(['orgs', 'config', '--org', org.id as string, '--log-retention-days', 'default'])).toMatchObject({ logging_level: 'full', log_retention_days: null });
      const team = await json(['teams', 'create', '--org', org.id as string, 'core']);
      expect(team.org_id).toBe(org.id);
      const key = await json(['keys', 'create', '--org', org.id as string, '--name', 'ci', '--team', team.id as string, '--models', 'mock-fast']);
      expect(key.key).toMatch(/^sk-nemo-[0-9A-Za-z]{43}$/);
      // Credits through the CLI, idempotent by key: the second call changes nothing.
      const credited = await json(['credits', 'add', '--org', org.id as string, '--amount', '5000000', '--idempotency-key', 'cli-topup-1']);
      expect(credited).toMatchObject({ created: true, available_micros: 5_000_000 });
      const again = await json(['credits', 'add', '--org', org.id as string, '--amount', '5000000', '--idempotency-key', 'cli-topup-1']);
      expect(again).toMatchObject({ created: false, available_micros: 5_000_000 });
      expect(await json(['credits', 'show', '--org', org.id as string])).toMatchObject({ available_micros: 5_000_000, held_micros: 0 });
      const listed = await json(['keys', 'list', '--org', org.id as string]);
      expect(listed).toHaveLength(1);
      expect(listed[0]).not.toHaveProperty('key');
      expect(JSON.stringify(listed)).not.toContain(key.key as string);

      // The key works on a gateway over the same database, for its one model only.
      const config = buildConfig({ server: { host: '127.0.0.1', port: 0 } }, { ...databaseEnv(db), ...HTTP_SERVER_ENV }, 'test');
      const gateway = await startGateway(config);
      try {
        const ask = (model: string) =>
          fetch(`http://127.0.0.1:${gateway.port}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${key.key as string}` },
            body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
          });
        expect((await ask('mock-fast')).status).toBe(200);
        expect((await ask('mock-chat')).status).toBe(403);
        // The requests above settled: the ledger balances, and shows them.
        await waitFor(async () => (await json(['ledger', 'show', '--org', org.id as string])).filter((e) => e.kind === 'settle').length === 1, 2000, 20);
        expect(await json(['ledger', 'check'])).toEqual({ ok: true, offending: [], offending_windows: [] });
        const revoked = await json(['keys', 'revoke', '--org', org.id as string, key.id as string]);
        expect(revoked.revoked_at).toEqual(expect.any(String));
        await waitFor(async () => (await ask('mock-fast')).status === 401, 1000, 20);
      } finally {
        await gateway.close(100);
      }

      // Mistakes are clear and exit 2, without a stack trace.
      const bad = run(['keys', 'create', '--org', org.id as string], env);
      const [code] = await once(bad.child, 'exit');
      expect(code).toBe(2);
      expect(bad.err()).toContain('NR_INVALID_REQUEST');
      expect(bad.err()).not.toMatch(/\n\s+at /);
    } finally {
      await db.drop();
    }
  }, 60_000);

  it('rejects an unknown command with exit 2', async () => {
    const { child, err } = run(['frobnicate'], {});
    const [code] = await once(child, 'exit');
    expect(code).toBe(2);
    expect(err()).toContain('unknown command');
  });

  it('no command is a mistake: usage on stderr, exit 2; help asked for is usage on stdout, exit 0', async () => {
    const none = run([], {});
    const [noneCode] = await once(none.child, 'exit');
    expect(noneCode).toBe(2);
    expect(none.out()).toBe('');
    expect(none.err()).toContain('usage: nemo <command>');
    for (const ask of ['help', '--help', '-h']) {
      const help = run([ask], {});
      const [code] = await once(help.child, 'exit');
      expect(code, ask).toBe(0);
      expect(help.out(), ask).toContain('usage: nemo <command>');
      expect(help.err(), ask).toBe('');
    }
  });

  it('admin commands log only warnings and errors unless --verbose, so stderr does not drown the JSON', async () => {
    const db = await createTestDatabase();
    const env = { ...databaseEnv(db), NEMO_CONFIG: '' };
    try {
      const quiet = run(['orgs', 'list'], env);
      const [quietCode] = await once(quiet.child, 'exit');
      expect(quietCode, quiet.err()).toBe(0);
      expect(JSON.parse(quiet.out())).toEqual([]);
      expect(quiet.err()).toBe('');
      // --verbose anywhere among the arguments shows the info logs, and is not an argument of the command.
      for (const args of [['--verbose', 'orgs', 'list'], ['orgs', 'list', '--verbose']]) {
        const verbose = run(args, env);
        const [code] = await once(verbose.child, 'exit');
        expect(code, verbose.err()).toBe(0);
        expect(JSON.parse(verbose.out())).toEqual([]);
        expect(verbose.err()).toContain('"level":"info"');
        expect(verbose.err()).toContain('"msg":"database: DATABASE_URL"');
      }
    } finally {
      await db.drop();
    }
  }, 60_000);

  it('an option an admin command does not know is a mistake: exit 2, no stack trace', async () => {
    const db = await createTestDatabase();
    try {
      const { child, out, err } = run(['orgs', 'config', '--org', '00000000-0000-0000-0000-000000000000', '--bogus'], { ...databaseEnv(db), NEMO_CONFIG: '' });
      const [code] = await once(child, 'exit');
      expect(code).toBe(2);
      expect(out()).toBe('');
      expect(err()).toContain("Unknown option '--bogus'");
      expect(err()).not.toMatch(/\n\s+at /);
    } finally {
      await db.drop();
    }
  }, 60_000);

  // Only root needs an OS user for PostgreSQL; elsewhere the embedded server runs as ourselves.
  it.skipIf(process.getuid?.() !== 0)('as root without the Postgres OS user, prints the clear message alone (no stack trace) and exits 1', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'nemo-cli-no-os-user-'));
    const env = { NEMO_CONFIG: '', NEMO_MASTER_KEY: '', DATABASE_URL: '', NEMO_DATA_DIR: dataDir, NEMO_PG_OS_USER: 'nemo-no-such-user' };
    try {
      const migrate = run(['migrate'], env);
      const [code] = await once(migrate.child, 'exit');
      expect(code).toBe(1);
      expect(migrate.out()).toBe('');
      expect(migrate.err()).toBe('nemo: PostgreSQL will not run as root and there is no OS user "nemo-no-such-user" to run it as: create one or set NEMO_PG_OS_USER\n');

      // `start` logs its start-up lines first, then the same message, and no stack either.
      const start = run(['start'], { ...env, PORT: '0', HOST: '127.0.0.1' });
      const [startCode] = await once(start.child, 'exit');
      expect(startCode).toBe(1);
      expect(start.err()).toContain('nemo: PostgreSQL will not run as root and there is no OS user "nemo-no-such-user"');
      expect(start.err()).not.toMatch(/\n\s+at /);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
