// A load as a mix of request shapes: each shape runs in its own closed loops until a deadline and
// its answers are counted by status. The dashboard check uses it to make every metric move
// (successes, streams, refusals, faults); every benchmark scenario is such a mix too, run on the
// same engine (closed-loop.ts), from one shape (`chat`) to the production-like `mixed`.
import { runClosedLoop } from './closed-loop.js';
import type { GroupResult, LoadGroup, NextRequest, RequestShape } from './closed-loop.js';

export interface LoadScenario {
  name: string;
  /** One set of headers, or several taken in turn (e.g. the keys of many orgs). */
  headers: Record<string, string> | ReadonlyArray<Record<string, string>>;
  /** The JSON body; `stream: true` in it makes the loops record stream timings. */
  body: unknown;
  /** Several bodies taken in turn instead of `body` (e.g. different big prompts). */
  bodies?: readonly unknown[];
  /**
   * Each loop's own requests instead of the shared bodies (the agent's conversations): made once per
   * loop, before the window starts, with the header sets already flattened. `body` then only says
   * whether the answers stream.
   */
  perLoop?: (loop: number, loops: number, headerSets: readonly string[][]) => NextRequest;
  /** The status this scenario exists to produce; the check fails when it never came. */
  expectStatus: (status: number) => boolean;
  expectText: string;
  loops: number;
  /** Pause between two requests of one loop. */
  pauseMs: number;
  /** The model is priced: every 2xx must be settled once in the ledger (benchmarks check it). */
  priced?: boolean;
}

export interface ScenarioResult {
  name: string;
  expectText: string;
  /** Network failures and cut responses are counted as status 0. */
  byStatus: Record<string, number>;
  sawExpected: boolean;
}

const isStream = (body: unknown): boolean => typeof body === 'object' && body !== null && (body as { stream?: unknown }).stream === true;

/** Headers and bodies are serialized once here; requests reuse the same bytes. */
export function loadGroups(scenarios: readonly LoadScenario[]): LoadGroup[] {
  return scenarios.map((scenario) => {
    const headerSets = Array.isArray(scenario.headers) ? (scenario.headers as ReadonlyArray<Record<string, string>>) : [scenario.headers as Record<string, string>];
    const bodies = (scenario.bodies ?? [scenario.body]).map((body) => Buffer.from(JSON.stringify(body)));
    const flat = headerSets.map((headers) => Object.entries({ ...headers, 'content-type': 'application/json' }).flat());
    const count = Math.max(flat.length, bodies.length);
    const shapes: RequestShape[] = Array.from({ length: count }, (_, i) => ({ headers: flat[i % flat.length]!, body: bodies[i % bodies.length]! }));
    return {
      name: scenario.name,
      loops: scenario.loops,
      shapes,
      ...(scenario.perLoop ? { sequences: Array.from({ length: scenario.loops }, (_, i) => scenario.perLoop!(i, scenario.loops, flat)) } : {}),
      stream: isStream(scenario.bodies?.[0] ?? scenario.body),
      priced: scenario.priced === true,
      pauseMs: scenario.pauseMs,
    };
  });
}

/** Per scenario: answers by status (errors as 0) and whether the expected status came. */
export function verdicts(scenarios: readonly LoadScenario[], results: readonly GroupResult[]): ScenarioResult[] {
  return scenarios.map((scenario, i) => {
    const result = results[i]!;
    const byStatus: Record<string, number> = { ...result.byStatus };
    const failed = result.errors + result.unfinished;
    if (failed > 0) byStatus[0] = (byStatus[0] ?? 0) + failed;
    const sawExpected = Object.keys(byStatus).some((status) => scenario.expectStatus(Number(status)));
    return { name: scenario.name, expectText: scenario.expectText, byStatus, sawExpected };
  });
}

/** Runs every scenario side by side against `url` until `durationMs` is over and every request has ended. */
export async function runMixedLoad(url: string, scenarios: LoadScenario[], durationMs: number, signal: AbortSignal): Promise<ScenarioResult[]> {
  const { origin, pathname } = new URL(url);
  const run = runClosedLoop({ origin, path: pathname, groups: loadGroups(scenarios), durationMs, startSpreadMs: 0, drainTimeoutMs: 15_000, stallMs: 1000, signal });
  return verdicts(scenarios, await run.done);
}
