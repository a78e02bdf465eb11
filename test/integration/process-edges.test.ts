// The gateway as a process, the way a user or a supervisor meets it: `npm start` stopped by a
// signal leaves no process and no port behind, a port in use fails the start (unless sharing is
// asked for), the printed address is the bound one with a warning for an open /metrics, and a
// restart of an unchanged checkout does not rebuild.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, chmodSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { selectHttpServer } from '../../src/http/server.js';
import { freePort } from '../../src/free-port.js';
import { portAccepts } from '../support/raw-http.js';
import { CLI, waitFor } from './helpers/gateway.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dirs: string[] = [];
const children: ChildProcess[] = [];

afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A data dir the embedded PostgreSQL's OS user can use. */
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'nemo-edges-'));
  chmodSync(dir, 0o755);
  dirs.push(dir);
  return join(dir, 'data');
}

function spawned(command: string, args: string[], env: Record<string, string>) {
  const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, NEMO_CONFIG: '', DATABASE_URL: '', NEMO_MASTER_KEY: '', NEMO_METRICS_TOKEN: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  return { child, out: () => stdout, err: () => stderr };
}

/** Every process below `pid`, read from /proc. */
function descendants(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))![1]);
      if (ppid === pid) found.push(Number(entry), ...descendants(Number(entry)));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm start and signals', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('%s to the npm start pid drains the gateway and stops the embedded PostgreSQL: no process, no port left', async (signal) => {
    const port = await freePort();
    const npm = spawned('npm', ['start'], { PORT: String(port), HOST: '127.0.0.1', NEMO_DATA_DIR: dataDir() });
    await waitFor(() => /listening on/.test(npm.out()) || npm.child.exitCode !== null, 60_000, 50);
    expect(npm.out(), npm.err()).toMatch(/listening on/);
    const below = descendants(npm.child.pid!);
    // The gateway and the embedded PostgreSQL's processes.
    expect(below.length, 'processes under npm start').toBeGreaterThan(2);

    npm.child.kill(signal);
    await waitFor(() => below.every((pid) => !alive(pid)), 30_000, 50);
    expect(below.filter(alive), npm.err()).toEqual([]);
    expect(await portAccepts(port)).toBe(false);
    expect(npm.err()).toContain('"msg":"stopped"');
  }, 90_000);
});

describe('ports', () => {
  it('a port in use fails the start with a clear error and a non-zero exit', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as { port: number }).port;
    try {
      const nemo = spawned(process.execPath, [CLI, 'start'], { PORT: String(port), HOST: '127.0.0.1', NEMO_DATA_DIR: dataDir() });
      const [code] = (await once(nemo.child, 'exit')) as [number | null];
      expect(code).not.toBe(0);
      expect(nemo.err()).toContain(`cannot listen on 127.0.0.1:${port}`);
      expect(nemo.err()).toContain('NEMO_REUSE_PORT');
      expect(nemo.err()).not.toMatch(/^\s+at /m);
    } finally {
      holder.close();
    }
  }, 60_000);

  it('two servers share a port only when both ask for it (uWS shares by default: it must not)', async () => {
    const { implementation } = selectHttpServer({ implementation: process.env.NEMO_HTTP_SERVER === 'node' ? 'node' : 'auto' });
    const port = await freePort();
    const first = implementation.createApp();
    const second = implementation.createApp();
    try {
      await first.listen('127.0.0.1', port);
      await expect(second.listen('127.0.0.1', port)).rejects.toThrow(/cannot listen/);
    } finally {
      first.stopListening();
      first.closeAll();
    }
  });
});

describe('the start line', () => {
  async function startLine(env: Record<string, string>) {
    const port = await freePort();
    const nemo = spawned(process.execPath, [CLI, 'start'], { PORT: String(port), NEMO_DATA_DIR: dataDir(), ...env });
    await waitFor(() => /listening on/.test(nemo.out()) || nemo.child.exitCode !== null, 60_000, 50);
    nemo.child.kill('SIGTERM');
    await once(nemo.child, 'exit');
    return { port, out: nemo.out(), err: nemo.err() };
  }

  it('on every interface: prints the bound address and warns that /metrics is open', async () => {
    const { port, out, err } = await startLine({ HOST: '0.0.0.0' });
    expect(out).toContain(`listening on http://0.0.0.0:${port} (every interface)`);
    expect(out).toContain(`curl http://127.0.0.1:${port}/v1/chat/completions`);
    expect(err).toMatch(/"level":"warn","msg":"\/metrics is open/);
  }, 90_000);

  it('on loopback, or with a metrics token, does not warn', async () => {
    const loopback = await startLine({ HOST: '127.0.0.1' });
    expect(loopback.out).toContain(`listening on http://127.0.0.1:${loopback.port} (models`);
    expect(loopback.err).not.toContain('/metrics is open');
    const withToken = await startLine({ HOST: '0.0.0.0', NEMO_METRICS_TOKEN: 'a-metrics-token-of-enough-length' });
    expect(withToken.err).not.toContain('/metrics is open');
  }, 90_000);
});

describe('build', () => {
  it('a build of an unchanged checkout rewrites nothing (incremental: npm start serves without recompiling)', () => {
    const first = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, encoding: 'utf8' });
    expect(first.status, first.stderr).toBe(0);
    const mtimes = () => ['src/main.js', 'src/cli.js', 'src/http/server.js', '.tsbuildinfo'].map((f) => statSync(join(ROOT, 'dist', f)).mtimeMs);
    const before = mtimes();
    const second = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, encoding: 'utf8' });
    expect(second.status, second.stderr).toBe(0);
    expect(mtimes()).toEqual(before);
  }, 60_000);
});
