// The worker thread's entry point (piscina): one exported function per task name, pure, batched.
// Each job answers on its own: one that throws fails only itself, not the requests batched with it.
import type { CountTokensTask, JobOutcome, ScanTask } from './messages.js';
import { countTokenJob } from './tasks/count-tokens.js';
import { scanJob } from './tasks/scan-text.js';

function each<J, R>(jobs: readonly J[], run: (job: J) => R): Array<JobOutcome<R>> {
  return jobs.map((job) => {
    try {
      return { ok: true, value: run(job) };
    } catch (err) {
      return { ok: false, error: err instanceof Error ? err.message : String(err) };
    }
  });
}

export function countTokens(task: CountTokensTask) {
  return each(task.jobs, countTokenJob);
}

export function scan(task: ScanTask) {
  return each(task.jobs, scanJob);
}
