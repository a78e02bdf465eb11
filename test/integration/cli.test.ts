// The `nemo` command as a user runs it: start prints how to call it and serves; SIGTERM drains
// and exits 0; a broken config lists every problem and exits 2.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
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
  it('start serves the built-in mock models, prints a curl line, and exits 0 on SIGTERM', async () => {
    const { child, out, err } = run(['start'], { PORT: '0', HOST: '127.0.0.1', NEMO_CONFIG: '', NEMO_MASTER_KEY: '' });
    const deadline = Date.now() + 10_000;
    while (!/listening on http:\/\/127\.0\.0\.1:(\d+)/.test(out()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const port = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out())?.[1];
    expect(port, err()).toBeDefined();
    expect(out()).toContain('curl http://127.0.0.1:');
    expect(err()).toContain('uWebSockets.js: native binary in use');
    const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock-fast', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.status).toBe(200);
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
    expect(err()).toContain('"msg":"stopped"');
  });

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
