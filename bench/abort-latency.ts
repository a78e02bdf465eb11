// `npm run bench:abort`: how fast a client disconnect reaches the upstream. For each target
// (bare proxy, NemoRouter) it opens a stream, waits for the first token, drops the client socket
// and reads from the mock upstream (its own process) when it saw the upstream request close.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePorts } from '../src/free-port.js';
import { spawnChild, waitForHttp, waitForLine, type Child } from './lib/child.js';

const HOST = '127.0.0.1';
const BODY = JSON.stringify({ model: 'bench-model', messages: [{ role: 'user', content: 'stream' }], max_tokens: 1000, stream: true });

interface MockStats {
  aborted: number;
  lastAbortAtMs: number;
}

async function stats(mockUrl: string): Promise<MockStats> {
  return (await fetch(`${mockUrl}/_mock/stats`)).json() as Promise<MockStats>;
}

/** One trial: ms from the client's socket destroy to the mock seeing its request aborted. */
async function trial(port: number, mockUrl: string, authorization: string): Promise<number> {
  const before = (await stats(mockUrl)).aborted;
  const socket = connect(port, HOST);
  socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: ${HOST}\r\nauthorization: ${authorization}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(BODY)}\r\n\r\n${BODY}`);
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes('"content":"the "')) resolve();
    });
  });
  const destroyedAt = performance.timeOrigin + performance.now();
  socket.destroy();
  const deadline = Date.now() + 5000;
  for (;;) {
    const now = await stats(mockUrl);
    if (now.aborted > before) return now.lastAbortAtMs - destroyedAt;
    if (Date.now() > deadline) throw new Error('upstream never saw the abort within 5 s');
    await new Promise((r) => setTimeout(r, 2));
  }
}

const percentile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { trials: { type: 'string', default: '30' }, json: { type: 'string' } } });
  const trials = Number(values.trials);
  if (!Number.isInteger(trials) || trials < 1 || trials > 1000) throw new Error('--trials must be 1..1000');
  const cli = fileURLToPath(new URL('../src/cli.js', import.meta.url));
  const bareProxy = fileURLToPath(new URL('./bare-proxy.js', import.meta.url));
  const [mockPort, barePort, nemoPort] = (await freePorts(3, HOST)) as [number, number, number];
  const children: Child[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'nemo-abort-'));
  await chmod(dir, 0o755); // the embedded PostgreSQL's OS user keeps its cluster inside
  try {
    const mock = spawnChild('mock upstream', [cli, 'mock-upstream', '--port', String(mockPort), '--tokens-per-second', '20', '--completion-tokens', '1000']);
    children.push(mock);
    await waitForLine(mock, /listening on/, 20_000);
    const mockUrl = `http://${HOST}:${mockPort}`;
    const config = join(dir, 'config.json');
    await writeFile(config, JSON.stringify({ models: [{ name: 'bench-model', deployments: [{ provider: 'openai-compatible', model: 'mock', baseUrl: `${mockUrl}/v1` }] }] }));
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(nemoPort), HOST, NEMO_CONFIG: config, NEMO_DATA_DIR: join(dir, 'nemo-data'), NEMO_DRAIN_DELAY_MS: '0' };
    delete env.NEMO_MASTER_KEY;
    delete env.DATABASE_URL;
    const nemo = spawnChild('nemo', [cli, 'start'], env);
    const bare = spawnChild('bare proxy', [bareProxy, '--port', String(barePort), '--upstream', mockUrl]);
    children.push(nemo, bare);
    const [keyLine] = await Promise.all([waitForLine(nemo, /Bearer (sk-nemo-\w+)/, 20_000), waitForLine(bare, /listening on/, 20_000)]);
    await waitForHttp(nemo, `http://${HOST}:${nemoPort}/healthz`, 20_000);
    const authorization = `Bearer ${keyLine[1]!}`;

    const report: Record<string, { p50Ms: number; p99Ms: number; maxMs: number; trials: number }> = {};
    for (const [name, port] of [['bare', barePort], ['nemo', nemoPort]] as const) {
      const samples: number[] = [];
      for (let i = 0; i < trials; i++) samples.push(await trial(port, mockUrl, authorization));
      samples.sort((a, b) => a - b);
      report[name] = { p50Ms: round(percentile(samples, 0.5)), p99Ms: round(percentile(samples, 0.99)), maxMs: round(samples.at(-1)!), trials };
      process.stdout.write(`${name.padEnd(5)} client disconnect -> upstream abort: p50 ${report[name].p50Ms} ms, p99 ${report[name].p99Ms} ms, max ${report[name].maxMs} ms (${trials} trials)\n`);
    }
    if (values.json) await writeFile(values.json, `${JSON.stringify({ scenario: 'abort-latency', targets: report }, null, 2)}\n`);
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await rm(dir, { recursive: true, force: true });
  }
}

const round = (n: number) => Number(n.toFixed(3));

main().catch((err: unknown) => {
  process.stderr.write(`bench:abort failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
