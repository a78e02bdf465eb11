// A fresh database per test file on the run's PostgreSQL, dropped afterwards; and what suites that
// work below the gateway need of it: migrations, openDatabase's settings, a nemo_app connection.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import type { DatabaseConfig } from '../../src/config/load.js';
import { APP_ROLE } from '../../src/db/database.js';
import { migrationsDirFromHere, runMigrations } from '../../src/db/migrate.js';

/** The nemo_app password every test database agrees on (the role is cluster-wide). */
export const TEST_APP_PASSWORD = 'nemo_app_test_password';

export interface TestDatabase {
  /** Owner (superuser) URL of the new database. */
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

export function adminUrl(): string {
  return inject('pgAdminUrl');
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `nemo_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client(adminUrl());
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const client = new pg.Client(adminUrl());
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** The env that points a gateway or CLI at a test database. */
export function databaseEnv(db: TestDatabase): Record<string, string> {
  return { DATABASE_URL: db.url, NEMO_DB_APP_PASSWORD: TEST_APP_PASSWORD };
}

/** Applies the migrations as the database's owner, with the nemo_app role every test database agrees on. */
export function migrateTestDatabase(db: TestDatabase): Promise<{ applied: string[]; skipped: string[] }> {
  return runMigrations({ ownerUrl: db.url, migrationsDir: migrationsDirFromHere(), appRole: { name: APP_ROLE, password: TEST_APP_PASSWORD } });
}

/** The database settings of a gateway on a test database: what openDatabase() takes. */
export function testDatabaseConfig(db: TestDatabase, poolMax = 4): DatabaseConfig {
  return { url: db.url, appPassword: TEST_APP_PASSWORD, dataDir: 'unused', osUser: 'postgres', poolMax, connectTimeoutMs: 5_000, statementTimeoutMs: 10_000 } as DatabaseConfig;
}

/** A connection to a test database as nemo_app, the role under row-level security. */
export function appRoleConnection(db: TestDatabase): pg.ClientConfig {
  const url = new URL(db.url);
  return { host: url.hostname, port: Number(url.port || 5432), database: db.name, user: APP_ROLE, password: TEST_APP_PASSWORD };
}
