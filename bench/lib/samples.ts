// Exact percentiles of millisecond timings: every value is kept in one growable Float64Array and
// sorted once at the end. Adding a sample allocates nothing (bar the rare doubling), which matters
// when a stream client records ~50,000 chunk gaps a second on a core it shares with the gateway.

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  count: number;
}

export class Samples {
  private values = new Float64Array(1 << 12);
  private size = 0;

  get count(): number {
    return this.size;
  }

  add(value: number): void {
    if (this.size === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.size++] = value;
  }

  /** Appends another store's values (rounds and groups are merged before percentiles are taken). */
  addAll(other: Samples): void {
    for (let i = 0; i < other.size; i++) this.add(other.values[i]!);
  }

  /** Nearest-rank percentiles; all zero when there is no sample. Sorts in place, so call it once. */
  percentiles(): Percentiles {
    if (this.size === 0) return { p50: 0, p90: 0, p99: 0, max: 0, count: 0 };
    const sorted = this.values.subarray(0, this.size).sort();
    const at = (q: number): number => sorted[Math.min(this.size - 1, Math.max(0, Math.ceil(q * this.size) - 1))]!;
    return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[this.size - 1]!, count: this.size };
  }
}
