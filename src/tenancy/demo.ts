// The quick start's demo tenant: on an empty embedded database, one org and one admin key, created
// once. The secret is kept in the data dir (0600) so later starts can print it again: a local
// development convenience only; it is never done for a DATABASE_URL server.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AdminService } from './admin-service.js';
import type { Principal } from './principal.js';

const PLATFORM: Principal = { kind: 'platform' };

export async function ensureDemoKey(admin: AdminService, dataDir: string, creditsMicros: number): Promise<{ key: string; created: boolean } | undefined> {
  const path = join(dataDir, 'demo-key');
  if (existsSync(path)) return { key: readFileSync(path, 'utf8').trim(), created: false };
  if ((await admin.listOrgs(PLATFORM)).length > 0) return undefined;
  const org = await admin.createOrg(PLATFORM, { name: 'demo' });
  if (creditsMicros > 0) await admin.addCredits(PLATFORM, org.id, { kind: 'topup', amount_micros: creditsMicros, idempotency_key: 'demo-initial-credits', note: 'demo credits' });
  const { key } = (await admin.createKey(PLATFORM, org.id, { name: 'demo key', role: 'admin' })) as { key: string };
  writeFileSync(path, `${key}\n`, { mode: 0o600 });
  return { key, created: true };
}
