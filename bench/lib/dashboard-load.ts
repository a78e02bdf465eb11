// What the dashboard check adds for panels the base mix leaves empty: a model whose first pick can
// fail and fall back to a second deployment of another provider kind (fallbacks, failed-attempt
// latency, a second provider in $provider), and the opt-in per-org series. Config and load side by side.
import type { LoadScenario } from './mixed-load.js';

/** Model the fallback scenarios ask for. */
export const FALLBACK_MODEL = 'check-fallback';

/**
 * No cool-down: the failing deployment stays in the draw, so fallbacks go on for the whole load
 * instead of once per 30 s. The check's other models have one deployment each and never cool down.
 */
export const DASHBOARD_UPSTREAM_CONFIG = { cooldownMs: 0 };

/** The per-org top-N is opt-in (off by default); the credits dashboard's top-orgs panels need it on. */
export const DASHBOARD_METRICS_CONFIG = { orgTopN: 5 };

/**
 * `upstream` is the check's openai-compatible deployment on the mock upstream. Its faulting copy
 * answers 500 (retryable): the request falls back to the in-process mock provider, which answers.
 */
export function dashboardModels(upstream: Record<string, unknown>): Array<Record<string, unknown>> {
  const prices = { inputPricePerMTok: 1, outputPricePerMTok: 2 };
  return [
    {
      name: FALLBACK_MODEL,
      deployments: [
        { ...upstream, ...prices, id: 'check-fallback-faulty', headers: { 'x-mock-fault': 'http-500' } },
        { provider: 'mock', model: 'mock', ...prices, id: 'check-fallback-mock', mock: { ttftMs: 5, tokensPerSecond: 200, completionTokens: 24 } },
      ],
    },
  ];
}

/** Non-stream and stream requests on the fallback model: every one ends 200, some after a fallback. */
export function dashboardScenarios(demoKey: string): LoadScenario[] {
  const headers = { authorization: `Bearer ${demoKey}` };
  const chat = (extra: Record<string, unknown>) => ({ model: FALLBACK_MODEL, messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 24, ...extra });
  const ok = (s: number) => s === 200;
  return [
    { name: 'fallback to a second deployment', headers, body: chat({}), expectStatus: ok, expectText: '200', loops: 1, pauseMs: 0 },
    { name: 'fallback, stream', headers, body: chat({ stream: true, stream_options: { include_usage: true } }), expectStatus: ok, expectText: '200', loops: 1, pauseMs: 0 },
  ];
}
