// The request path: the HTTP server in use, requests by route and status class, streams open and
// their timing, upstream attempts and fallbacks, and the 429s of local rate limits.
import { Counter, Gauge } from 'prom-client';
import { registry, HotCounter, HotHistogram } from './core.js';

export const httpServerInfo = new Gauge({
  name: 'nemo_http_server_info',
  help: 'The HTTP server in use: implementation="uws" (a native uWebSockets.js build, named by build) or "node" (Node\'s http module, slower).',
  labelNames: ['implementation', 'build'] as const,
  registers: [registry],
});

export const uwsNativeGauge = new Gauge({
  name: 'nemo_uws_native',
  help: '1 when a native uWebSockets.js build serves HTTP, 0 when Node\'s http module does (slower).',
  registers: [registry],
});

export const requestsTotal = new HotCounter(
  'nemo_requests_total',
  'HTTP requests answered, by route, model and status class.',
  ['route', 'model', 'status_class'],
);

export const requestDurationSeconds = new HotHistogram(
  'nemo_request_duration_seconds',
  'Time from request arrival to the last byte of the response, by route.',
  [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
  registry,
  ['route'],
);

export const gatewayOverheadSeconds = new HotHistogram(
  'nemo_gateway_overhead_seconds',
  'Time the gateway spent outside the upstream call before the response headers were sent.',
  [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
);

export const upstreamAttemptsTotal = new HotCounter(
  'nemo_upstream_attempts_total',
  'Upstream attempts by provider kind and outcome (ok, rate_limited, error, timeout, unavailable, bad_response, client_error).',
  ['provider', 'outcome'],
);

export const upstreamFallbacksTotal = new Counter({
  name: 'nemo_upstream_fallbacks_total',
  help: 'Requests moved to another deployment after a failed attempt, by the failed provider kind and the cause (its attempt outcome).',
  labelNames: ['provider', 'cause'] as const,
  registers: [registry],
});

export const upstreamDurationSeconds = new HotHistogram(
  'nemo_upstream_duration_seconds',
  'Upstream attempts from request to the end of the answer or stream, by provider kind and result (ok, error).',
  [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
  registry,
  ['provider', 'result'],
);

export const rateLimitedTotal = new Counter({
  name: 'nemo_rate_limited_total',
  help: 'Requests refused with 429 by a key or team rate limit (RPM/TPM).',
  registers: [registry],
});

/** Plain numbers on the hot path; the gauges read them at scrape time. */
export const liveCounts = { activeStreams: 0, inflightRequests: 0 };

new Gauge({
  name: 'nemo_active_streams',
  help: 'Streaming responses currently open to clients.',
  registers: [registry],
  collect() {
    this.set(liveCounts.activeStreams);
  },
});

new Gauge({
  name: 'nemo_inflight_requests',
  help: 'Chat requests in flight (streaming or not).',
  registers: [registry],
  collect() {
    this.set(liveCounts.inflightRequests);
  },
});

export const timeToFirstTokenSeconds = new HotHistogram(
  'nemo_time_to_first_token_seconds',
  'Streams: from the request arriving to the first bytes of the answer reaching the client.',
  [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registry,
  ['model'],
);

// Observed for every chunk of every stream: the cheap histogram.
export const streamChunkGapSeconds = new HotHistogram(
  'nemo_stream_chunk_gap_seconds',
  'Streams: time between two consecutive writes of generated output to a client.',
  [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
);


export function countRequest(route: string, model: string, statusClassLabel: string): void {
  requestsTotal.labels(route, model, statusClassLabel).inc();
}

/** One finished upstream attempt: counted by outcome, timed by result. */
export function countAttempt(provider: string, outcome: string, seconds: number): void {
  upstreamAttemptsTotal.labels(provider, outcome).inc();
  upstreamDurationSeconds.labels(provider, outcome === 'ok' ? 'ok' : 'error').observe(seconds);
}

export function observeDuration(route: string, seconds: number): void {
  requestDurationSeconds.labels(route).observe(seconds);
}

export function statusClass(status: number): string {
  return status < 200 ? '1xx' : status < 300 ? '2xx' : status < 400 ? '3xx' : status < 500 ? '4xx' : '5xx';
}
