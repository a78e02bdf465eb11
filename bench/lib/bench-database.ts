// The bench's own PostgreSQL database: a fresh one per run, on an embedded cluster the bench starts
// in its temp dir (default) or on a server given with --database-url (the test suite's second pass
// uses the machine's). NemoRouter and `nemo ledger check` reach it through DATABASE_URL; the bench
// keeps an owner connection to count the ledger's rows.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';
import { childrenNamed } from './process-stats.js';

export interface BenchDatabase {
  kind: 'embedded' | 'external';
  /** Owner URL of the run's database. */
  url: string;
  /** Password of the cluster-wide nemo_app role the gateway connects as. */
  appPassword: string;
  /** One owner connection for the ledger counts (row-level security does not apply to it). */
  client: pg.Client;
  /** The embedded cluster's postmaster (its CPU is reported), when the bench started one. */
  postmasterPid: number | undefined;
  /** Drops the run's database (external) or stops the cluster (embedded). */
  close(): Promise<void>;
  /** Last resort on a hard exit: an immediate shutdown of the embedded cluster. */
  killSync(): void;
}

function withDatabase(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

async function createDatabase(adminUrl: string, name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
}

async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: 'nemo-bench' });
  await client.connect();
  return client;
}

/**
 * `externalUrl`: a superuser URL of a running server. Its nemo_app role is shared with whatever
 * else uses that server, so the password comes from NEMO_DB_APP_PASSWORD (migrations set it).
 */
export async function openBenchDatabase(tmpDir: string, externalUrl: string | undefined): Promise<BenchDatabase> {
  const name = `nemo_bench_${randomBytes(6).toString('hex')}`;
  if (externalUrl !== undefined) {
    const appPassword = process.env.NEMO_DB_APP_PASSWORD;
    if (!appPassword) throw new Error('--database-url needs NEMO_DB_APP_PASSWORD: the password of the server\'s nemo_app role (migrations set it)');
    await createDatabase(externalUrl, name);
    const url = withDatabase(externalUrl, name);
    const client = await connect(url);
    return {
      kind: 'external',
      url,
      appPassword,
      client,
      postmasterPid: undefined,
      async close() {
        await client.end().catch(() => undefined);
        await dropDatabase(externalUrl, name);
      },
      killSync() {},
    };
  }
  const cluster = await startEmbeddedPostgres({ dataDir: join(tmpDir, 'postgres') });
  try {
    await createDatabase(cluster.ownerUrl, name);
    const url = withDatabase(cluster.ownerUrl, name);
    const client = await connect(url);
    const [postmasterPid] = childrenNamed(process.pid, 'postgres');
    // After a clean stop the pid may belong to someone else: the last resort must not signal it.
    let stopped = false;
    return {
      kind: 'embedded',
      url,
      appPassword: cluster.appPassword,
      client,
      postmasterPid,
      async close() {
        await client.end().catch(() => undefined);
        await cluster.stop();
        stopped = true;
      },
      killSync() {
        if (postmasterPid === undefined || stopped) return;
        try {
          process.kill(postmasterPid, 'SIGQUIT');
        } catch {
          // already gone
        }
      },
    };
  } catch (error) {
    await cluster.stop();
    throw error;
  }
}
