// Guardrail scans, the same code inline (small texts) and in a worker (large). Compiled policies
// are cached per policyKey: a key's merged policy compiles once per thread, not once per request.
import { compilePolicy, scanText, type CompiledPolicy } from '../../guardrails/policy.js';
import type { GuardrailPolicy, ScanResult } from '../../guardrails/types.js';
import type { ScanJob } from '../messages.js';

const MAX_COMPILED = 1_000;
const compiled = new Map<string, CompiledPolicy>();

export function compiledPolicy(policyKey: string, policy: GuardrailPolicy): CompiledPolicy {
  let entry = compiled.get(policyKey);
  if (entry === undefined) {
    entry = compilePolicy(policy);
    // Oldest out first: Map keeps insertion order.
    if (compiled.size >= MAX_COMPILED) compiled.delete(compiled.keys().next().value!);
    compiled.set(policyKey, entry);
  }
  return entry;
}

export function scanJob(job: ScanJob): ScanResult {
  return scanText(compiledPolicy(job.policyKey, job.policy), job.text, job.stage);
}
