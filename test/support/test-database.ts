// A fresh database per test file on the run's PostgreSQL, dropped afterwards.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

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
