// One undici Pool per upstream origin, with keep-alive and the configured timeouts.
import { Pool } from 'undici';
import type { Config } from '../config/load.js';

export class UpstreamPools {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly options: Config['upstream']) {}

  get(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: this.options.connectionsPerOrigin,
        connectTimeout: this.options.connectTimeoutMs,
        headersTimeout: this.options.headersTimeoutMs,
        bodyTimeout: this.options.bodyTimeoutMs,
        keepAliveTimeout: this.options.keepAliveTimeoutMs,
        pipelining: 1,
      });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(pools.map((p) => p.destroy()));
  }
}
