// A thin typed wrapper over autocannon (which ships no types). Latency percentiles are computed
// here from autocannon's per-response timings: its own histogram keeps whole milliseconds only,
// which flattens a loopback p50 of 0.2 ms to 0 and hides exactly the overhead we want to see.
import { createRequire } from 'node:module';
import type { EventEmitter } from 'node:events';

interface AutocannonResult {
  errors: number;
  timeouts: number;
  non2xx: number;
  duration: number;
  requests: { average: number; total: number };
}

interface AutocannonInstance extends EventEmitter {
  stop(): void;
}

interface Autocannon {
  (options: Record<string, unknown>, done: (error: Error | null, result: AutocannonResult) => void): AutocannonInstance;
  track(instance: AutocannonInstance, options: Record<string, unknown>): void;
}

const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

export interface LoadOptions {
  url: string;
  body: string;
  /** Extra request headers (the gateway's API key); sent to every target so requests stay identical. */
  headers?: Record<string, string>;
  connections: number;
  durationS: number;
  /** Draw autocannon's progress bar (only sensible on a terminal). */
  progressBar: boolean;
  signal?: AbortSignal;
}

export interface LoadResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  non2xx: number;
  requests: number;
}

/** Growable store of 2xx response times in ms; sorted once at the end. */
class Samples {
  private values = new Float64Array(1 << 16);
  private size = 0;

  add(value: number): void {
    if (this.size === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.size++] = value;
  }

  percentiles(): { p50: number; p99: number; max: number } {
    if (this.size === 0) return { p50: 0, p99: 0, max: 0 };
    const sorted = this.values.subarray(0, this.size).sort();
    const at = (q: number): number => sorted[Math.min(this.size - 1, Math.ceil(q * this.size) - 1)]!;
    return { p50: at(0.5), p99: at(0.99), max: sorted[this.size - 1]! };
  }
}

const round = (value: number, digits: number): number => Number(value.toFixed(digits));

export function runLoad(options: LoadOptions): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const samples = new Samples();
    const instance = autocannon(
      {
        url: options.url,
        method: 'POST',
        headers: { 'content-type': 'application/json', ...options.headers },
        body: options.body,
        connections: options.connections,
        pipelining: 1,
        duration: options.durationS,
        timeout: 30,
      },
      (error, result) => {
        options.signal?.removeEventListener('abort', stop);
        if (error) {
          reject(error);
          return;
        }
        const { p50, p99, max } = samples.percentiles();
        resolve({
          rps: round(result.requests.total / result.duration, 1),
          p50Ms: round(p50, 3),
          p99Ms: round(p99, 3),
          maxMs: round(max, 3),
          errors: result.errors,
          non2xx: result.non2xx,
          requests: result.requests.total,
        });
      },
    );
    instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTimeMs: number) => {
      if (statusCode >= 200 && statusCode < 300) samples.add(responseTimeMs);
    });
    const stop = (): void => instance.stop();
    options.signal?.addEventListener('abort', stop, { once: true });
    if (options.progressBar) {
      autocannon.track(instance, { renderProgressBar: true, renderResultsTable: false, renderLatencyTable: false });
    }
  });
}
