// Shared by the fuzz suites: how many runs (NEMO_FUZZ_RUNS, small by default so CI stays fast;
// raise it for a long run), a replayable seed (NEMO_FUZZ_SEED), a trap for unhandled rejections
// and uncaught exceptions, and the check that an error body is OpenAI-shaped with a catalog code.
import fc from 'fast-check';
import { ERROR_CATALOG, type ErrorCode } from '../../src/errors/catalog.js';

/** Base number of runs per property; each property scales it to its cost. */
export const FUZZ_RUNS = Math.max(1, Number(process.env.NEMO_FUZZ_RUNS ?? 100) || 100);

/** fast-check parameters: NEMO_FUZZ_SEED replays a failure that a run printed. */
export function fuzzParams<T>(scale = 1): fc.Parameters<T> {
  const seed = process.env.NEMO_FUZZ_SEED;
  return { numRuns: Math.max(1, Math.round(FUZZ_RUNS * scale)), ...(seed ? { seed: Number(seed) } : {}) };
}

/** The time a property may take: generous per run, so NEMO_FUZZ_RUNS=10000 also fits. */
export function fuzzTimeoutMs(scale = 1, perRunMs = 40): number {
  return 15_000 + Math.round(FUZZ_RUNS * scale) * perRunMs;
}

/** Collects unhandled rejections and uncaught exceptions while a suite runs; `problems` must stay empty. */
export function trapUnhandled(): { problems: string[]; uninstall(): void } {
  const problems: string[] = [];
  const onRejection = (reason: unknown) => problems.push(`unhandledRejection: ${reason instanceof Error ? reason.stack : String(reason)}`);
  const onException = (err: Error) => problems.push(`uncaughtException: ${err.stack}`);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return {
    problems,
    uninstall() {
      process.off('unhandledRejection', onRejection);
      process.off('uncaughtException', onException);
    },
  };
}

/**
 * What is wrong with an error answer, or undefined when it is a proper one: JSON
 * `{"error": {message, type, param, code, nemo_code}}` whose nemo_code is in the catalog with this
 * status, and whose code and type are the catalog's.
 */
export function errorBodyProblem(status: number, body: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return `status ${status}: body is not JSON: ${body.slice(0, 200)}`;
  }
  const error = (parsed as { error?: Record<string, unknown> } | null)?.error;
  if (typeof error !== 'object' || error === null) return `status ${status}: no error object: ${body.slice(0, 200)}`;
  const code = error.nemo_code as ErrorCode;
  const entry = ERROR_CATALOG[code];
  if (entry === undefined) return `status ${status}: unknown nemo_code ${String(code)}`;
  if (entry.status !== status) return `status ${status} does not match ${code} (${entry.status})`;
  if (error.code !== entry.openaiCode) return `${code}: code ${String(error.code)} is not ${entry.openaiCode}`;
  if (error.type !== entry.type) return `${code}: type ${String(error.type)} is not ${entry.type}`;
  if (typeof error.message !== 'string' || error.message.length === 0) return `${code}: no message`;
  if (!(error.param === null || typeof error.param === 'string')) return `${code}: param must be a string or null`;
  return undefined;
}
