// The worker thread's entry point (piscina): one exported function per task name, pure, batched.
import type { CountTokensTask, ScanTask } from './messages.js';
import { countTokenJobs } from './tasks/count-tokens.js';
import { scanJobs } from './tasks/scan-text.js';

export function countTokens(task: CountTokensTask): number[] {
  return countTokenJobs(task.jobs);
}

export function scan(task: ScanTask) {
  return scanJobs(task.jobs);
}
