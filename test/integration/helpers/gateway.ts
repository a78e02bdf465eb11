// Test helpers: a real gateway on port 0 built from an inline config, and a mock upstream in its
// own process (so its memory and event loop are not the gateway's).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { buildConfig } from '../../../src/config/load.js';
import { startGateway, type Gateway } from '../../../src/main.js';
import type { Principal } from '../../../src/tenancy/principal.js';
import { createTestDatabase, databaseEnv, type TestDatabase } from '../../support/test-database.js';
import { HTTP_SERVER_ENV } from '../../support/http-server-env.js';
import { withTestLedger } from '../../support/ledger-defaults.js';

export interface TestGateway {
  readonly gateway: Gateway;
  readonly url: string;
  readonly database: TestDatabase;
  /** An org created for the test, and an admin API key of it. */
  readonly orgId: string;
  readonly apiKey: string;
  /** Headers that authenticate as that key. */
  readonly auth: { authorization: string };
  close(): Promise<void>;
}

export const PLATFORM: Principal = { kind: 'platform' };

/** A real gateway on port 0 over its own fresh database, with one org and one admin key. */
export async function startTestGateway(raw: Record<string, unknown>, env: Record<string, string> = {}): Promise<TestGateway> {
  const server = { host: '127.0.0.1', port: 0, shutdownGraceMs: 2000, drainDelayMs: 0, ...(raw.server as object | undefined) };
  const database = await createTestDatabase();
  try {
    const config = buildConfig(withTestLedger({ ...raw, server }), { ...databaseEnv(database), ...HTTP_SERVER_ENV, ...env }, 'test');
    const gateway = await startGateway(config);
    const org = await gateway.admin.createOrg(PLATFORM, { name: 'test org' });
    // Plenty of credits: suites about other things never hit 402.
    await gateway.admin.addCredits(PLATFORM, org.id, { amount_micros: 1e12, idempotency_key: 'test-initial-credits' });
    const { key } = (await gateway.admin.createKey(PLATFORM, org.id, { name: 'test key', role: 'admin' })) as { key: string };
    return {
      gateway,
      url: `http://127.0.0.1:${gateway.port}`,
      database,
      orgId: org.id,
      apiKey: key,
      auth: { authorization: `Bearer ${key}` },
      async close() {
        await gateway.close(500);
        await database.drop();
      },
    };
  } catch (err) {
    await database.drop();
    throw err;
  }
}

export interface MockUpstreamProcess {
  readonly url: string;
  readonly child: ChildProcess;
  stats(): Promise<{ requests: number; completed: number; aborted: number; inFlight: number }>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** The built `nemo` command (npm test builds dist/ first). */
export const CLI = fileURLToPath(new URL('../../../dist/src/cli.js', import.meta.url));

/** Runs `nemo mock-upstream` from dist/ (npm test builds first) and waits for its listening line. */
export async function startMockUpstreamProcess(args: string[] = []): Promise<MockUpstreamProcess> {
  const child = spawn(process.execPath, [CLI, 'mock-upstream', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('mock upstream did not start within 10 s')), 10_000);
    child.once('exit', (code) => reject(new Error(`mock upstream exited with ${code}`)));
    lines.on('line', (line) => {
      const match = /listening on (http:\/\/\S+)/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
  });
  return {
    url,
    child,
    stats: async () => (await fetch(`${url}/_mock/stats`)).json() as never,
    reset: async () => void (await fetch(`${url}/_mock/reset`, { method: 'POST' })),
    async close() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

/** A deployment pointing at a mock upstream process, with per-deployment mock headers. */
export function mockDeployment(upstream: MockUpstreamProcess, headers: Record<string, string> = {}, extra: Record<string, unknown> = {}) {
  return { provider: 'openai-compatible', model: 'mock-upstream-model', baseUrl: `${upstream.url}/v1`, headers, ...extra };
}

export async function waitFor(predicate: () => Promise<boolean> | boolean, timeoutMs = 5000, stepMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}
