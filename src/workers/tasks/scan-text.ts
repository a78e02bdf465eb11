// Guardrail scans, the same code inline (small texts) and in a worker (large).
import { compiledPolicy } from '../../guardrails/compiled-policy.js';
import { scanText } from '../../guardrails/policy.js';
import type { ScanResult } from '../../guardrails/types.js';
import type { ScanJob } from '../messages.js';

export function scanJob(job: ScanJob): ScanResult {
  return scanText(compiledPolicy(job.policyKey, job.policy), job.text, job.stage);
}
