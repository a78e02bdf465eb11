// Event-loop lag of a window, for each kind of server: NemoRouter's prom-client gauges on /metrics,
// the bare proxy's /__stats, the load generator's own monitor. All three sample with
// monitorEventLoopDelay at a 10 ms interval and are reset when read, so "read at the start, read at
// the end" gives the window's lag. The histogram records whole intervals (an idle loop reads ~10.1
// ms), so the interval is subtracted: what is left is how late the loop was.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { IntervalHistogram } from 'node:perf_hooks';

export interface EventLoopLag {
  p99Ms: number;
  maxMs: number;
}

/** prom-client's default `eventLoopMonitoringPrecision`, which nemo uses. */
export const RESOLUTION_MS = 10;

const lateBy = (ms: number): number => Number(Math.max(0, ms - RESOLUTION_MS).toFixed(3));

async function getText(url: string): Promise<string> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const text = await response.text();
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  return text;
}

function gauge(metrics: string, name: string): number | undefined {
  const match = metrics.match(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm'));
  return match ? Number(match[1]) : undefined;
}

/** Reads nemo's gauges (which resets the histogram behind them); undefined when they are missing. */
export async function readNemoLag(origin: string): Promise<EventLoopLag | undefined> {
  const metrics = await getText(`${origin}/metrics`);
  const p99 = gauge(metrics, 'nemo_nodejs_eventloop_lag_p99_seconds');
  const max = gauge(metrics, 'nemo_nodejs_eventloop_lag_max_seconds');
  if (p99 === undefined || max === undefined) return undefined;
  return { p99Ms: lateBy(p99 * 1000), maxMs: lateBy(max * 1000) };
}

export async function readBareLag(origin: string): Promise<EventLoopLag | undefined> {
  const stats = JSON.parse(await getText(`${origin}/__stats`)) as { eventLoopDelay?: { p99Ms: number; maxMs: number; count: number } };
  const delay = stats.eventLoopDelay;
  if (delay === undefined || delay.count === 0) return undefined;
  return { p99Ms: lateBy(delay.p99Ms), maxMs: lateBy(delay.maxMs) };
}

/** The load generator's own lag: when it is high, its chunk timestamps are late too. */
export class OwnLag {
  private readonly histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });

  start(): void {
    this.histogram.reset();
    this.histogram.enable();
  }

  stop(): EventLoopLag | undefined {
    this.histogram.disable();
    if (this.histogram.count === 0) return undefined;
    return { p99Ms: lateBy(this.histogram.percentile(99) / 1e6), maxMs: lateBy(this.histogram.max / 1e6) };
  }
}
