// Compiled policies cached per policyKey: a key's merged policy compiles once per thread (the
// gateway's and each worker's), not once per request. Derived data: losing it costs a recompile.
import { compilePolicy, type CompiledPolicy } from './policy.js';
import type { GuardrailPolicy } from './types.js';

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
