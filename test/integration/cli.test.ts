// The `nemo` command as a user runs it: start prints how to call it and serves; SIGTERM drains
// and exits 0; a broken config lists every problem and exits 2.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const CLI = fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url));

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
    const { child, out, err } = run(['start'], { PORT: '0', HOST: '127.0.0.1', NEMO_CONFIG: '', NEMO_MASTER_KEY: '', DATABASE_URL: '', NEMO_DATA_DIR: dataDir });
    try {
      const deadline = Date.now() + 60_000;
      while (!/Bearer (sk-nemo-\w+)/.test(out()) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      const port = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out())?.[1];
      const key = /Bearer (sk-nemo-\w+)/.exec(out())?.[1];
      expect(port, err()).toBeDefined();
      expect(key, out()).toBeDefined();
      expect(out()).toContain('Created a demo organization');
      expect(err()).toContain('uWebSockets.js: native binary in use');
      expect(err()).toContain('embedded PostgreSQL');
      // The key never reaches the logs.
      expect(err()).not.toContain(key!);
      const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ model: 'mock-fast', messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(res.status).toBe(200);
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      expect(code).toBe(0);
      expect(err()).toContain('"msg":"stopped"');

      // A second start on the same data dir keeps the demo org and prints the same key.
      const again = run(['start'], { PORT: '0', HOST: '127.0.0.1', NEMO_CONFIG: '', NEMO_MASTER_KEY: '', DATABASE_URL: '', NEMO_DATA_DIR: dataDir });
      const until = Date.now() + 60_000;
      while (!/Bearer (sk-nemo-\w+)/.test(again.out()) && Date.now() < until && again.child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      expect(again.out()).toContain(key!);
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
    expect(code).toBe(2);
    expect(err()).toContain('server.port');
    expect(err()).toContain('baseUrl: required for provider openai-compatible');
    expect(err()).toContain('NEMO_TEST_UNSET_KEY is not set');
  });

  it('rejects an unknown command with exit 2', async () => {
    const { child, err } = run(['frobnicate'], {});
    const [code] = await once(child, 'exit');
    expect(code).toBe(2);
    expect(err()).toContain('unknown command');
  });
});
