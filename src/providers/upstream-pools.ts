// One undici Pool per upstream origin, with keep-alive and the configured timeouts.
import { Pool } from 'undici';
import type { Config, Deployment } from '../config/load.js';
import { adapterFor } from './registry.js';
import type { UpstreamDispatcher } from './types.js';

export class UpstreamPools {
  private readonly pools = new Map<string, Pool>();
  private readonly byDeployment = new WeakMap<Deployment, UpstreamDispatcher>();

  constructor(private readonly options: Config['upstream']) {}

  /** Where a deployment's requests go: its adapter's own dispatcher (the mock) or the origin's pool. */
  dispatcherFor(deployment: Deployment): UpstreamDispatcher {
    let dispatcher = this.byDeployment.get(deployment);
    if (dispatcher === undefined) {
      dispatcher = adapterFor(deployment).dispatcherFor?.(deployment) ?? this.get(new URL(deployment.baseUrl!).origin);
      this.byDeployment.set(deployment, dispatcher);
    }
    return dispatcher;
  }

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
