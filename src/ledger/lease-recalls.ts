// Recalls of credit leases: the database tells every instance on channel nemo_lease_recall (the
// payload is an org id) when a request was refused for funds that sit unused in that org's leases.
// A missed recall costs a 402 that could have been served, never money: leases end within their
// lifetime anyway. So the listener only reconnects; it does not prove delivery.
import pg from 'pg';
import { log } from '../log.js';

const CHANNEL = 'nemo_lease_recall';
const RECONNECT_MS = 1_000;

export class LeaseRecallListener {
  private client: pg.Client | undefined;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly connection: pg.ClientConfig,
    private readonly onRecall: (orgId: string) => void,
  ) {}

  async start(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ ...this.connection, application_name: 'nemorouter-lease-recalls' });
    client.on('notification', (message) => {
      if (message.channel === CHANNEL && message.payload) this.onRecall(message.payload);
    });
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, undefined));
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      this.client = client;
    } catch (err) {
      this.lost(client, err as Error);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private lost(client: pg.Client, err: Error | undefined): void {
    if (this.client === client) this.client = undefined;
    client.removeAllListeners('end');
    client.on('error', () => undefined);
    void client.end().catch(() => undefined);
    if (this.closed || this.reconnectTimer !== undefined) return;
    log.warn('ledger: lease recalls not heard until reconnected', { error: err?.message ?? 'connection ended' });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.start();
    }, RECONNECT_MS);
    this.reconnectTimer.unref();
  }
}
