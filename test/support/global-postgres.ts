// Vitest global setup: one PostgreSQL for the whole run. TEST_DATABASE_URL selects a server (CI
// runs the suite once more against the machine's own); otherwise an embedded PostgreSQL is
// started in a temp dir and removed at the end. Test files each create their own database on it.
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A superuser URL of the test server (database `postgres` or the one given). */
    pgAdminUrl: string;
    pgKind: 'embedded' | 'external';
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.TEST_DATABASE_URL;
  if (external) {
    project.provide('pgAdminUrl', external);
    project.provide('pgKind', 'external');
    return async () => undefined;
  }
  const dataDir = join(tmpdir(), `nemo-test-${process.pid}-${Date.now()}`);
  const pg = await startEmbeddedPostgres({ dataDir });
  project.provide('pgAdminUrl', pg.ownerUrl);
  project.provide('pgKind', 'embedded');
  return async () => {
    await pg.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
}
