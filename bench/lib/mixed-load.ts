// A short mixed load for the dashboard check: every scenario is a loop of one request shape against
// the gateway, run side by side until a deadline, counting answers by status. Not a benchmark: it
// only has to make every metric the dashboards read move (successes, streams, refusals, faults).
import { setTimeout as sleep } from 'node:timers/promises';

export interface LoadScenario {
  name: string;
  headers: Record<string, string>;
  body: unknown;
  /** The status this scenario exists to produce; the check fails when it never came. */
  expectStatus: (status: number) => boolean;
  expectText: string;
  loops: number;
  /** Pause between two requests of one loop. */
  pauseMs: number;
}

export interface ScenarioResult {
  name: string;
  expectText: string;
  byStatus: Record<string, number>;
  sawExpected: boolean;
}

/** Network failures are counted as status 0. */
async function once(url: string, scenario: LoadScenario, body: string, signal: AbortSignal): Promise<number> {
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { ...scenario.headers, 'content-type': 'application/json' },
      body,
      signal: AbortSignal.any([signal, AbortSignal.timeout(15_000)]),
    });
    // Read to the end: a stream only counts (and settles) once it is over.
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

export async function runMixedLoad(url: string, scenarios: LoadScenario[], durationMs: number, signal: AbortSignal): Promise<ScenarioResult[]> {
  const deadline = Date.now() + durationMs;
  return Promise.all(
    scenarios.map(async (scenario) => {
      const body = JSON.stringify(scenario.body);
      const byStatus: Record<string, number> = {};
      const loop = async (): Promise<void> => {
        while (Date.now() < deadline && !signal.aborted) {
          const status = await once(url, scenario, body, signal);
          byStatus[status] = (byStatus[status] ?? 0) + 1;
          if (scenario.pauseMs > 0) await sleep(scenario.pauseMs, undefined, { signal }).catch(() => undefined);
        }
      };
      await Promise.all(Array.from({ length: scenario.loops }, loop));
      const sawExpected = Object.keys(byStatus).some((status) => scenario.expectStatus(Number(status)));
      return { name: scenario.name, expectText: scenario.expectText, byStatus, sawExpected };
    }),
  );
}
