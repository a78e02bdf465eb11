// Starts what a bench run measures, each in its own process on loopback: the mock upstream, the
// bare proxy in front of it, and NemoRouter in front of it on the bench's own database (with
// --fallback a second NemoRouter on Node's http module, on the same database), then creates the
// tenants through the admin API and reads what each server runs. Everything is registered with the
// Run for teardown.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts } from '../../src/free-port.js';
import { openBenchDatabase } from './bench-database.js';
import type { BenchDatabase } from './bench-database.js';
import { spawnChild, spawnProcess, waitForHttp, waitForLine } from './child.js';
import type { Child } from './child.js';
import { nemoConfig } from './nemo-config.js';
import type { Run } from './run.js';
import { readBareRuntime, readNemoRuntime } from './server-runtime.js';
import type { ServerRuntime } from './server-runtime.js';
import { createTenants } from './tenants.js';
import type { Tenants } from './tenants.js';

const HOST = '127.0.0.1';
const STARTUP_TIMEOUT_MS = 30_000;

export interface EnvironmentOptions {
  orgs: number;
  /** Upstream connections of both proxies: at least the most streams the run opens. */
  upstreamConnections: number;
  /** A server to create the bench database on, instead of an embedded cluster. */
  databaseUrl: string | undefined;
  /** The Node binary of the gateway processes (the mock and the bare proxy run on the bench's). */
  nodeBinary: string;
  /** Also start nemo-node: the same gateway with NEMO_HTTP_SERVER=node. */
  fallback: boolean;
  /** Also start nemo-base from this CLI: another checkout's build, on the same database and tenants. */
  baselineCli: string | undefined;
  log: (line: string) => void;
}

export interface Environment {
  mock: Child;
  bare: Child;
  nemo: Child;
  /** With --fallback: the gateway on Node's http module, on the same database and tenants. */
  nemoNode: Child | undefined;
  /** With --baseline: the other checkout's gateway, on the same database and tenants. */
  nemoBase: Child | undefined;
  origins: { mock: string; bare: string; nemo: string; nemoNode: string | undefined; nemoBase: string | undefined };
  /** What each server process runs, as it reports it: bare, nemo, nemo-node, nemo-base. */
  runtimes: { bare: ServerRuntime; nemo: ServerRuntime; nemoNode: ServerRuntime | undefined; nemoBase: ServerRuntime | undefined };
  database: BenchDatabase;
  tenants: Tenants;
  /** dist/src/cli.js, for `nemo ledger check`. */
  cli: string;
  /** The env nemo runs with (DATABASE_URL and its app password), for the CLI against the same database. */
  nemoEnv: NodeJS.ProcessEnv;
}

export async function startEnvironment(run: Run, options: EnvironmentOptions): Promise<Environment> {
  const cli = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
  const bareProxy = fileURLToPath(new URL('../bare-proxy.js', import.meta.url));
  if (!existsSync(cli)) throw new Error(`${cli} not found; run \`npm run build\` first`);

  run.tmpDir = await mkdtemp(join(tmpdir(), 'nemo-bench-'));
  // Traversable, so the embedded PostgreSQL's OS user reaches its cluster inside (removed with the dir).
  await chmod(run.tmpDir, 0o755);

  const [mockPort, barePort, nemoPort, nemoNodePort, nemoBasePort] = (await freePorts(5, HOST)) as [number, number, number, number, number];
  const origins = {
    mock: `http://${HOST}:${mockPort}`,
    bare: `http://${HOST}:${barePort}`,
    nemo: `http://${HOST}:${nemoPort}`,
    nemoNode: options.fallback ? `http://${HOST}:${nemoNodePort}` : undefined,
    nemoBase: options.baselineCli !== undefined ? `http://${HOST}:${nemoBasePort}` : undefined,
  };
  // The mock's defaults are the fastest answer; scenarios slow it down per request (x-mock-* headers).
  const mock = spawnChild('mock upstream', [cli, 'mock-upstream', '--port', String(mockPort), '--host', HOST, '--ttft-ms', '0', '--tokens-per-second', '0']);
  run.children.push(mock);
  const bare = spawnChild('bare proxy', [bareProxy, '--port', String(barePort), '--upstream', origins.mock, '--connections', String(options.upstreamConnections)]);
  run.children.push(bare);
  // Listen for their ready lines now: they may well print them while the database starts.
  const proxiesReady = Promise.all([
    waitForLine(mock, /mock upstream listening on (http:\/\/\S+)/, STARTUP_TIMEOUT_MS),
    waitForLine(bare, /bare proxy listening on (http:\/\/\S+)/, STARTUP_TIMEOUT_MS),
  ]);
  proxiesReady.catch(() => undefined); // awaited below; a failure meanwhile must not be "unhandled"

  options.log(`starting PostgreSQL (${options.databaseUrl === undefined ? 'embedded' : 'given server'}), mock ${origins.mock}, bare ${origins.bare}`);
  const database = await openBenchDatabase(run.tmpDir, options.databaseUrl);
  run.afterChildren.push(() => database.close());
  run.killSyncExtra.push(() => database.killSync());

  const configPath = join(run.tmpDir, 'nemo-config.json');
  await writeFile(configPath, JSON.stringify(nemoConfig(origins.mock, options.upstreamConnections), null, 2));
  // A master key of this run only: it creates the orgs and their keys.
  const masterKey = `bench-${randomBytes(16).toString('hex')}`;
  const nemoEnv: NodeJS.ProcessEnv = { ...process.env, NEMO_CONFIG: configPath, DATABASE_URL: database.url, NEMO_DB_APP_PASSWORD: database.appPassword };
  delete nemoEnv.NEMO_DATA_DIR;
  delete nemoEnv.NEMO_MASTER_KEY;
  const startGateway = async (name: string, port: number, extraEnv: NodeJS.ProcessEnv, gatewayCli = cli): Promise<Child> => {
    const child = spawnProcess(name, options.nodeBinary, [gatewayCli, 'start'], { ...nemoEnv, PORT: String(port), HOST, NEMO_MASTER_KEY: masterKey, ...extraEnv });
    run.children.push(child);
    options.log(`starting ${name} on http://${HOST}:${port}${options.nodeBinary === process.execPath ? '' : ` with ${options.nodeBinary}`}`);
    await waitForLine(child, /NemoRouter listening on (http:\/\/\S+)/, STARTUP_TIMEOUT_MS);
    await waitForHttp(child, `http://${HOST}:${port}/healthz`, STARTUP_TIMEOUT_MS);
    return child;
  };
  const [, nemo] = await Promise.all([proxiesReady, startGateway('nemo', nemoPort, {})]);
  // After nemo, which has applied the migrations: the two never race for them.
  const nemoNode = options.fallback ? await startGateway('nemo-node', nemoNodePort, { NEMO_HTTP_SERVER: 'node' }) : undefined;
  // The baseline has exactly this checkout's migrations (settings checked): it finds them all applied.
  const nemoBase = options.baselineCli !== undefined ? await startGateway('nemo-base', nemoBasePort, {}, options.baselineCli) : undefined;

  const runtimes = {
    bare: await readBareRuntime(origins.bare),
    nemo: await readNemoRuntime(origins.nemo),
    nemoNode: origins.nemoNode === undefined ? undefined : await readNemoRuntime(origins.nemoNode),
    nemoBase: origins.nemoBase === undefined ? undefined : await readNemoRuntime(origins.nemoBase),
  };
  const describe = (r: ServerRuntime): string => `Node ${r.node}, ${r.implementation} (${r.build})`;
  options.log(`bare: ${describe(runtimes.bare)}; nemo: ${describe(runtimes.nemo)}${runtimes.nemoNode ? `; nemo-node: ${describe(runtimes.nemoNode)}` : ''}${runtimes.nemoBase ? `; nemo-base: ${describe(runtimes.nemoBase)} from ${options.baselineCli}` : ''}`);

  options.log(`creating ${options.orgs} orgs with credits and keys, and one org without credits`);
  const tenants = await createTenants(origins.nemo, masterKey, options.orgs);
  return { mock, bare, nemo, nemoNode, nemoBase, origins, runtimes, database, tenants, cli, nemoEnv };
}
