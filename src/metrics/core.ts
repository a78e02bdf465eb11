// The one registry every gateway metric registers in, with prom-client's process and Node defaults
// (prefixed nemo_), and the label-child cache the hot-path helpers share. The metrics themselves are
// in the area files beside this one; other modules import them through registry.ts.
import { Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'nemo_' });

/**
 * The metric's child for these label values, resolved once and kept in `cache`: prom-client hashes
 * label objects per call, so hot-path helpers resolve each label combination once.
 */
export function labelChild<T>(cache: Map<string, T>, metric: { labels(...values: string[]): T }, labels: string[]): T {
  const key = labels.join('\u0000');
  let child = cache.get(key);
  if (child === undefined) {
    child = metric.labels(...labels);
    cache.set(key, child);
  }
  return child;
}
