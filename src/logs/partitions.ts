// Partition maintenance of the request logs, at start and every intervalMs. nemo.request_log_entries
// is partitioned by expiry day: the partitions rows written from yesterday to daysAhead days ahead
// will need exist (one per expiry day, for every retention in force), and those whose day has ended
// are dropped. The older nemo.request_logs (by day of creation) only loses days past the default
// retention. Drops are the one destructive operation; each is logged here and by Postgres. The
// database's clock decides the day, and every function takes one advisory lock, so any number of
// instances may run this.
import type { Database } from '../db/database.js';
import { log } from '../log.js';

export interface PartitionMaintenanceOptions {
  /** Days after today (UTC) whose partitions must already exist. */
  readonly daysAhead: number;
  /** Retention of orgs without their own (days): rows are kept at least this long. */
  readonly retentionDays: number;
  readonly intervalMs: number;
}

export interface MaintenanceResult {
  readonly created: string[];
  readonly dropped: string[];
}

// From yesterday: rows stamped just before midnight may be written just after it.
const ENSURE_SQL = 'SELECT p AS name FROM nemo.ensure_request_log_entry_partitions_ahead($1::integer, $2::integer) AS p';
const DROP_SQL = 'SELECT p AS name FROM nemo.drop_expired_request_log_entry_partitions() AS p';
const DROP_LEGACY_SQL = 'SELECT p AS name FROM nemo.drop_expired_request_log_partitions($1::integer) AS p';

export class RequestLogPartitions {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<MaintenanceResult> | undefined;

  constructor(
    private readonly db: Pick<Database, 'query'>,
    private readonly options: PartitionMaintenanceOptions,
  ) {
    if (!Number.isInteger(options.daysAhead) || options.daysAhead < 1 || options.daysAhead > 300) throw new Error('RequestLogPartitions: daysAhead must be 1..300');
    if (!Number.isInteger(options.retentionDays) || options.retentionDays < 1) throw new Error('RequestLogPartitions: retentionDays must be at least 1');
    if (!Number.isInteger(options.intervalMs) || options.intervalMs <= 0) throw new Error('RequestLogPartitions: intervalMs must be a positive integer');
  }

  /**
   * Runs once now, then every intervalMs. A failed run is logged, never thrown: the next run
   * retries, and the writer creates a missing day's partition itself.
   */
  async start(): Promise<MaintenanceResult | undefined> {
    const run = () => this.runOnce().catch((err: unknown) => void log.error('request logs: partition maintenance failed', { error: (err as Error).message }));
    this.timer = setInterval(run, this.options.intervalMs);
    this.timer.unref();
    return run();
  }

  /** Creates what is missing ahead, then drops what expired; one run at a time per instance. */
  runOnce(): Promise<MaintenanceResult> {
    this.running ??= this.maintain().finally(() => (this.running = undefined));
    return this.running;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  private async maintain(): Promise<MaintenanceResult> {
    const { daysAhead, retentionDays } = this.options;
    const created = (await this.db.query<{ name: string }>(ENSURE_SQL, [daysAhead, retentionDays])).rows.map((r) => r.name);
    if (created.length > 0) log.info('request logs: partitions created', { partitions: created });
    const dropped = (await this.db.query<{ name: string }>(DROP_SQL)).rows.map((r) => r.name);
    for (const name of dropped) log.warn('request logs: expired partition dropped', { partition: `nemo.${name}` });
    const droppedLegacy = (await this.db.query<{ name: string }>(DROP_LEGACY_SQL, [retentionDays])).rows.map((r) => r.name);
    for (const name of droppedLegacy) log.warn('request logs: expired partition dropped', { partition: `nemo.${name}`, retentionDays });
    return { created, dropped: [...droppedLegacy, ...dropped] };
  }
}
