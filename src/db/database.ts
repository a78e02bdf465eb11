// The one database of record: picks the server (DATABASE_URL or the embedded PostgreSQL), migrates
// it as the owner, and opens the gateway's own pool as nemo_app, a role that is subject to
// row-level security. Every tenant transaction goes through withTenant().
import pg from 'pg';
import type { DatabaseConfig } from '../config/load.js';
import { GatewayError } from '../errors/gateway-error.js';
import { log } from '../log.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded.js';
import { migrationsDirFromHere, runMigrations } from './migrate.js';
import { CONNECTION_EXCEPTION_CLASS, SERVER_SHUTDOWN_PREFIX } from './sqlstate.js';

export const APP_ROLE = 'nemo_app';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface Database {
  /** The nemo_app pool: every query here is under row-level security. */
  readonly pool: pg.Pool;
  /** Connection settings of the nemo_app role on the server itself, for LISTEN clients. */
  readonly appConnection: pg.ClientConfig;
  /** The same role's settings for pools: through `database.pooler` when one is configured, else appConnection. */
  readonly poolConnection: pg.ClientConfig;
  readonly kind: 'embedded' | 'external';
  /** The owner's connection string (migrations, `nemo litellm hotfix`); the gateway never queries with it. */
  readonly ownerUrl: string;
  /** Runs fn in one transaction with the tenant set; rolls back when fn throws. */
  withTenant<T>(orgId: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T>;
  /** One statement outside any tenant: only for the SECURITY DEFINER functions. */
  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  close(): Promise<void>;
}

export async function openDatabase(config: DatabaseConfig, options: { migrate?: boolean } = {}): Promise<Database> {
  let embedded: EmbeddedPostgres | undefined;
  let ownerUrl = config.url;
  let appPassword = config.appPassword;
  if (ownerUrl === undefined) {
    embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, osUser: config.osUser });
    ownerUrl = embedded.ownerUrl;
    appPassword ??= embedded.appPassword;
    log.info('database: embedded PostgreSQL', { dataDir: embedded.dataDir, startedHere: embedded.started });
  } else {
    log.info('database: DATABASE_URL', { server: redact(ownerUrl) });
  }
  try {
    if (options.migrate !== false) {
      const { applied } = await runMigrations({ ownerUrl, migrationsDir: migrationsDirFromHere(), appRole: { name: APP_ROLE, password: appPassword! }, log: (msg, fields) => log.info(msg, fields as Record<string, unknown>) });
      if (applied.length > 0) log.info('database: migrations applied', { applied });
    }
    if (config.pooler !== undefined) await setRoleStatementTimeout(ownerUrl, config.statementTimeoutMs);
    return openAppPool(ownerUrl, appPassword!, config, embedded);
  } catch (err) {
    await embedded?.stop();
    throw err;
  }
}

function openAppPool(ownerUrl: string, appPassword: string, config: DatabaseConfig, embedded: EmbeddedPostgres | undefined): Database {
  const url = new URL(ownerUrl);
  const appConnection: pg.ClientConfig = {
    host: url.hostname,
    port: Number(url.port || 5432),
    database: decodeURIComponent(url.pathname.slice(1)) || 'postgres',
    user: APP_ROLE,
    password: appPassword,
    connectionTimeoutMillis: config.connectTimeoutMs,
    statement_timeout: config.statementTimeoutMs,
    application_name: 'nemorouter',
  };
  const poolConnection = pooledConnection(appConnection, config);
  if (config.pooler !== undefined) log.info('database: pools through a transaction pooler; LISTEN and migrations direct', { pooler: `${poolConnection.host}:${poolConnection.port}/${poolConnection.database}` });
  const pool = new pg.Pool({ ...poolConnection, max: config.poolMax, idleTimeoutMillis: 30_000 });
  // An idle client losing its server must not crash the process; the next checkout reconnects.
  pool.on('error', (err) => log.warn('database: idle connection error', { error: err.message }));

  return {
    pool,
    appConnection,
    poolConnection,
    kind: embedded ? 'embedded' : 'external',
    ownerUrl,
    async withTenant(orgId, fn) {
      // Validated here because it is spliced into the one-round-trip BEGIN below.
      if (!UUID.test(orgId)) throw new GatewayError('NR_INTERNAL', undefined, { cause: new Error('withTenant: org id is not a uuid') });
      const client = await checkout(pool);
      try {
        await client.query(`BEGIN; SELECT set_config('nemo.org_id', '${orgId}', true)`);
        const result = await fn(client);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    async query(text, values) {
      try {
        return await pool.query(text, values);
      } catch (err) {
        throw asDatabaseError(err);
      }
    },
    async close() {
      await pool.end();
      await embedded?.stop();
    },
  };
}

/**
 * Through a transaction pooler: its host, port and database. A pooler (pgbouncer) refuses the
 * statement_timeout startup parameter, so there the timeout is the role's setting in this database
 * (setRoleStatementTimeout), which every server connection the pooler opens picks up.
 */
function pooledConnection(appConnection: pg.ClientConfig, config: DatabaseConfig): pg.ClientConfig {
  const pooler = config.pooler;
  if (pooler === undefined) return appConnection;
  const { statement_timeout: _dropped, ...rest } = appConnection;
  return { ...rest, host: pooler.host, port: pooler.port, database: pooler.database ?? appConnection.database };
}

/** ASCII "NEMOROLE": instances starting together set the role's timeout one at a time. */
const ROLE_SETTINGS_LOCK_KEY = 0x4e454d4f524f4c45n;

async function setRoleStatementTimeout(ownerUrl: string, timeoutMs: number): Promise<void> {
  const owner = new pg.Client({ connectionString: ownerUrl, application_name: 'nemo-migrate' });
  await owner.connect();
  try {
    await owner.query('BEGIN');
    await owner.query(`SELECT pg_advisory_xact_lock(${ROLE_SETTINGS_LOCK_KEY})`);
    const wanted = `statement_timeout=${Math.floor(timeoutMs)}`;
    const { rows } = await owner.query<{ db: string; current: boolean }>(
      `SELECT current_database() AS db, EXISTS (
         SELECT 1 FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole JOIN pg_database d ON d.oid = s.setdatabase
         WHERE r.rolname = $1 AND d.datname = current_database() AND $2 = ANY (s.setconfig)) AS current`,
      [APP_ROLE, wanted],
    );
    // Integers only reach this statement (the config schema): the value needs no quoting.
    if (!rows[0]!.current) await owner.query(`ALTER ROLE ${APP_ROLE} IN DATABASE ${pg.escapeIdentifier(rows[0]!.db)} SET ${wanted.replace('=', ' = ')}`);
    await owner.query('COMMIT');
  } catch (err) {
    await owner.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await owner.end().catch(() => undefined);
  }
}

async function checkout(pool: pg.Pool): Promise<pg.PoolClient> {
  try {
    return await pool.connect();
  } catch (err) {
    throw new GatewayError('NR_DATABASE_UNAVAILABLE', undefined, { cause: err });
  }
}

/** Connection-level failures become 503s; SQL errors stay as they are for the caller to map. */
export function asDatabaseError(err: unknown): unknown {
  if (err instanceof GatewayError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  // ECONNREFUSED etc. come from the socket, not the server.
  if (typeof code === 'string' && (code.startsWith(CONNECTION_EXCEPTION_CLASS) || code.startsWith(SERVER_SHUTDOWN_PREFIX) || code.startsWith('E'))) {
    return new GatewayError('NR_DATABASE_UNAVAILABLE', undefined, { cause: err });
  }
  if (err instanceof Error && /timeout|terminated|Connection/i.test(err.message)) return new GatewayError('NR_DATABASE_UNAVAILABLE', undefined, { cause: err });
  return err;
}

function redact(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}
