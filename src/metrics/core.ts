// The one registry every gateway metric registers in, with prom-client's process and Node defaults
// (prefixed nemo_), and the hot-path counter and histogram. The metrics themselves are
// in the area files beside this one; other modules import them through registry.ts.
import { Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'nemo_' });

type Labels = Record<string, string | number>;
interface Sample {
  labels: Labels;
  sharedLabels?: Labels;
  value: number;
  metricName?: string;
}
interface MetricValues {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  values: Sample[];
}

/**
 * What the hot metrics below share: a child per label combination, made once with its labels
 * object, so an increment or an observation is a few additions (prom-client hashes the label
 * object on every call, even through `labels()`); and registration in a prom-client registry.
 */
abstract class HotMetric<C> {
  readonly aggregator = 'sum';
  private readonly byKey = new Map<string, C>();
  /** The one child of a metric without labels. */
  protected readonly unlabelled: C | undefined;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    target: Registry,
    private readonly make: (labels: Labels) => C,
  ) {
    this.unlabelled = labelNames.length === 0 ? this.labels() : undefined;
    target.registerMetric(this as never);
  }

  /** The child for these label values: resolve fixed ones once, at module load. */
  labels(...values: string[]): C {
    if (values.length !== this.labelNames.length) throw new Error(`expected ${this.labelNames.length} label values, got ${values.length}`);
    const key = values.length === 1 ? values[0]! : values.join('\u0000');
    let child = this.byKey.get(key);
    if (child === undefined) {
      const labels: Labels = {};
      for (let i = 0; i < values.length; i++) labels[this.labelNames[i]!] = values[i]!;
      child = this.make(labels);
      this.byKey.set(key, child);
    }
    return child;
  }

  protected children(): IterableIterator<C> {
    return this.byKey.values();
  }
}

function checkedValue(value: number): number {
  if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
  return value;
}

export class HotCounterChild {
  value = 0;

  /** `shown`: in the exposition; a labelled child is from its first increment, as in prom-client. */
  constructor(
    readonly labels: Labels,
    public shown: boolean,
  ) {}

  /** As prom-client's: a finite amount, and a counter never goes down. */
  inc(by = 1): void {
    if (checkedValue(by) < 0) throw new Error('It is not possible to decrease a counter');
    this.value += by;
    this.shown = true;
  }
}

/**
 * A counter for the request path, exposed as prom-client's Counter is (same text, same JSON, same
 * registry; only the order of its series may differ, which Prometheus ignores). Without labels it
 * shows 0 from the start; a labelled series shows from its first increment, and a reset hides it
 * again until the next. Resolve fixed label values once, at module load.
 */
export class HotCounter extends HotMetric<HotCounterChild> {
  readonly type = 'counter';

  constructor(name: string, help: string, labelNames: readonly string[] = [], target: Registry = registry) {
    super(name, help, labelNames, target, (labels) => new HotCounterChild(labels, labelNames.length === 0));
  }

  inc(by = 1): void {
    this.unlabelled!.inc(by);
  }

  reset(): void {
    for (const child of this.children()) {
      child.value = 0;
      child.shown = child === this.unlabelled;
    }
  }

  get(): MetricValues {
    const values: Sample[] = [];
    for (const child of this.children()) if (child.shown) values.push({ labels: child.labels, value: child.value });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

export class HotHistogramChild {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Labels,
    private readonly upperBounds: readonly number[],
    public shown: boolean,
  ) {
    this.counts = new Float64Array(upperBounds.length);
  }

  observe(value: number): void {
    checkedValue(value);
    const bounds = this.upperBounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.counts[i]!++;
        break;
      }
    }
    this.sum += value;
    this.count++;
    this.shown = true;
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
    this.shown = false;
  }
}

/**
 * A histogram for the request path and per-chunk observations: observe is a bucket search and
 * three additions. Exposed as prom-client's Histogram is (text and JSON); without labels its
 * buckets show from the start, a labelled series from its first observation, and after a reset
 * none until the next, as in prom-client.
 */
export class HotHistogram extends HotMetric<HotHistogramChild> {
  readonly type = 'histogram';

  constructor(
    name: string,
    help: string,
    private readonly upperBounds: readonly number[],
    target: Registry = registry,
    labelNames: readonly string[] = [],
  ) {
    super(name, help, labelNames, target, (labels) => new HotHistogramChild(labels, upperBounds, labelNames.length === 0));
  }

  observe(value: number): void {
    this.unlabelled!.observe(value);
  }

  reset(): void {
    for (const child of this.children()) child.reset();
  }

  /** For the text exposition: a series' labels shared by its buckets, sum and count. */
  getForPromString(): MetricValues {
    const bucket = `${this.name}_bucket`;
    const values: Sample[] = [];
    for (const child of this.children()) {
      if (!child.shown) continue;
      let cumulative = 0;
      for (let i = 0; i < this.upperBounds.length; i++) {
        cumulative += child.counts[i]!;
        values.push({ labels: { le: this.upperBounds[i]! }, sharedLabels: child.labels, value: cumulative, metricName: bucket });
      }
      values.push({ labels: { le: '+Inf' }, sharedLabels: child.labels, value: child.count, metricName: bucket });
      values.push({ labels: {}, sharedLabels: child.labels, value: child.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: child.labels, value: child.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** As prom-client's get(): each value's labels with its series' labels merged in (JSON, aggregation). */
  get(): MetricValues {
    const data = this.getForPromString();
    data.values = data.values.map(({ labels, sharedLabels, value, metricName }) => ({ labels: { ...labels, ...sharedLabels }, value, metricName }));
    return data;
  }
}
