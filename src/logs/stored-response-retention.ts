// Retention of stored responses (nemo.stored_responses), at start and every intervalMs: each org's
// expired rows are deleted in that org's own transaction, under row-level security like every other
// access to them (the orgs are listed through nemo.list_orgs()). Deletes go in batches, so a large
// backlog never holds one long transaction. Expired rows are never served meanwhile: the reads
// filter on expires_at too.
import type { Database } from '../db/database.js';
import { log } from '../log.js';

export interface StoredResponseRetentionOptions {
  readonly intervalMs: number;
  /** Rows deleted per statement. */
  readonly batchRows?: number;
}

const ORGS_SQL = 'SELECT org_id FROM nemo.list_orgs()';
const DELETE_EXPIRED_SQL = `DELETE FROM nemo.stored_responses WHERE (org_id, response_id) IN (
  SELECT org_id, response_id FROM nemo.stored_responses WHERE expires_at <= now() LIMIT $1)`;
const DEFAULT_BATCH_ROWS = 1_000;

export class StoredResponseRetention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private closed = false;
  private readonly batchRows: number;

  constructor(
    private readonly db: Pick<Database, 'query' | 'withTenant'>,
    private readonly options: StoredResponseRetentionOptions,
  ) {
    if (!Number.isInteger(options.intervalMs) || options.intervalMs <= 0) throw new Error('StoredResponseRetention: intervalMs must be a positive integer');
    this.batchRows = options.batchRows ?? DEFAULT_BATCH_ROWS;
    if (!Number.isInteger(this.batchRows) || this.batchRows < 1) throw new Error('StoredResponseRetention: batchRows must be a positive integer');
  }

  /** Runs once now (not awaited), then every intervalMs; a failed run is logged and the next one retries. */
  start(): void {
    const run = () => void this.runOnce().catch((err: unknown) => log.error('stored responses: retention sweep failed', { error: (err as Error).message }));
    this.timer = setInterval(run, this.options.intervalMs);
    this.timer.unref();
    run();
  }

  /** Deletes every org's expired rows; resolves with how many. One run at a time per instance. */
  runOnce(): Promise<number> {
    this.running ??= this.sweep().finally(() => (this.running = undefined));
    return this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  private async sweep(): Promise<number> {
    const { rows } = await this.db.query<{ org_id: string }>(ORGS_SQL);
    let deleted = 0;
    for (const { org_id: orgId } of rows) {
      // Closing stops between statements: the rest waits for the next start.
      for (let n = this.batchRows; n === this.batchRows && !this.closed; ) {
        n = await this.db.withTenant(orgId, async (client) => (await client.query(DELETE_EXPIRED_SQL, [this.batchRows])).rowCount ?? 0);
        deleted += n;
      }
    }
    if (deleted > 0) log.info('stored responses: expired rows deleted', { rows: deleted });
    return deleted;
  }
}
