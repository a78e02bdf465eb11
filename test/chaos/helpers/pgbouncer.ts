// A pgbouncer of the test's own, in transaction pooling mode, in front of the test database: Debian's
// package, installed with apt-get when missing (as root); run as a non-root OS user on a free
// loopback port from a temp dir, and stopped by its pid. ensurePgbouncer() says why not when it cannot.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { portAccepts } from '../../support/raw-http.js';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from '../../../src/free-port.js';

const BINARY = '/usr/sbin/pgbouncer';

/** The binary's path, or why there is none (then the suites that need it skip, saying so). */
export function ensurePgbouncer(): { path: string } | { skip: string } {
  if (existsSync(BINARY)) return { path: BINARY };
  if (userInfo().uid !== 0) return { skip: 'pgbouncer is not installed and installing it needs root (apt-get install pgbouncer)' };
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'pgbouncer'], { env, encoding: 'utf8', timeout: 300_000 });
  let result = install();
  if (result.status !== 0) {
    spawnSync('apt-get', ['update'], { env, encoding: 'utf8', timeout: 300_000 });
    result = install();
  }
  if (result.status !== 0 || !existsSync(BINARY)) return { skip: `pgbouncer could not be installed: ${(result.stderr || result.stdout || String(result.error)).trim().split('\n').slice(-2).join(' ')}` };
  return { path: BINARY };
}

export interface Pgbouncer {
  readonly port: number;
  /** Its name for the test database (the same name). */
  readonly database: string;
  /** A URL for `user` through the pooler. */
  urlFor(user: string, password: string): string;
  /** A query on pgbouncer's admin console (SHOW CLIENTS, SHOW POOLS ...). */
  admin<R extends pg.QueryResultRow>(command: string): Promise<R[]>;
  /** What it logged (the last 64 KB). */
  log(): string;
  close(): Promise<void>;
}

export interface PgbouncerOptions {
  readonly binary: string;
  /** The test database's owner URL: the server, the database, and the owner's credentials. */
  readonly ownerUrl: string;
  /** Other roles the pooler logs in as, with their passwords. */
  readonly users: Record<string, string>;
}

export async function startPgbouncer(options: PgbouncerOptions): Promise<Pgbouncer> {
  const server = new URL(options.ownerUrl);
  const database = decodeURIComponent(server.pathname.slice(1)) || 'postgres';
  const owner = decodeURIComponent(server.username) || 'postgres';
  const dir = mkdtempSync(join(tmpdir(), 'nemo-pgbouncer-'));
  chmodSync(dir, 0o755);
  const port = await freePort();
  const users = { [owner]: decodeURIComponent(server.password), ...options.users };
  writeFileSync(join(dir, 'userlist.txt'), Object.entries(users).map(([u, p]) => `"${u}" "${p.replace(/"/g, '""')}"\n`).join(''));
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `${database} = host=${server.hostname} port=${server.port || 5432} dbname=${database}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      // Loopback and test-only: clients are trusted; the server still checks the passwords above.
      'auth_type = trust',
      `auth_file = ${join(dir, 'userlist.txt')}`,
      `admin_users = ${owner}`,
      'pool_mode = transaction',
      'max_client_conn = 2000',
      'default_pool_size = 20',
      // What an operator adds so that clients which send it connect at all (see the report).
      'ignore_startup_parameters = statement_timeout,extra_float_digits',
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      `pidfile = ${join(dir, 'pgbouncer.pid')}`,
      '',
    ].join('\n'),
  );
  const ids = nonRootIds();
  if (ids.uid !== undefined) spawnSync('chown', ['-R', `${ids.uid}:${ids.gid}`, dir]);
  const child: ChildProcess = spawn(options.binary, [join(dir, 'pgbouncer.ini')], { ...ids, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-8_000)));
  const exited = once(child, 'exit');
  const readLog = () => {
    try {
      return readFileSync(join(dir, 'pgbouncer.log'), 'utf8').slice(-65_536);
    } catch {
      return stderr;
    }
  };
  const deadline = Date.now() + 10_000;
  while (!(await portAccepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`pgbouncer did not start: ${stderr}\n${readLog()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    database,
    urlFor: (user, password) => `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`,
    async admin<R extends pg.QueryResultRow>(command: string) {
      const client = new pg.Client({ host: '127.0.0.1', port, user: owner, database: 'pgbouncer' });
      await client.connect();
      try {
        return (await client.query<R>(command)).rows;
      } finally {
        await client.end();
      }
    },
    log: readLog,
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM'); // immediate shutdown
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** pgbouncer refuses to run as root: as root it runs as the Postgres OS user (or nobody). */
function nonRootIds(): { uid?: number; gid?: number } {
  if (userInfo().uid !== 0) return {};
  for (const user of [process.env.NEMO_PG_OS_USER || 'postgres', 'nobody']) {
    const uid = spawnSync('id', ['-u', user], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', user], { encoding: 'utf8' });
    if (uid.status === 0 && gid.status === 0) return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  }
  throw new Error('pgbouncer will not run as root and there is no postgres or nobody user to run it as');
}

