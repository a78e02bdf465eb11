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

/**
 * A histogram without labels for per-chunk observations: observe is a bucket search and three
 * additions (prom-client's hashes labels and allocates per call). Exposed in prom-client's format,
 * registered like any metric.
 */
export class HotHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames: readonly string[] = [];
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly upperBounds: readonly number[],
    target: Registry = registry,
  ) {
    this.counts = new Float64Array(upperBounds.length);
    target.registerMetric(this as never);
  }

  observe(value: number): void {
    const bounds = this.upperBounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.counts[i]!++;
        break;
      }
    }
    this.sum += value;
    this.count++;
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }

  get(): { name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> } {
    const bucket = `${this.name}_bucket`;
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    let cumulative = 0;
    for (let i = 0; i < this.upperBounds.length; i++) {
      cumulative += this.counts[i]!;
      values.push({ labels: { le: this.upperBounds[i]! }, value: cumulative, metricName: bucket });
    }
    values.push({ labels: { le: '+Inf' }, value: this.count, metricName: bucket });
    values.push({ labels: {}, value: this.sum, metricName: `${this.name}_sum` });
    values.push({ labels: {}, value: this.count, metricName: `${this.name}_count` });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
