// Policy levels in, one compiled policy out, and the one-shot scan of a whole text (prompts,
// non-streamed outputs). Pure: the gateway loads the levels, caches the compiled result, and runs
// large scans in the worker pool (a worker compiles from the merged policy; compiled rules hold
// functions and regexes, which do not cross threads).
import { applyRedactions, collectHits, resolveHits, toFinding } from './resolve.js';
import { buildRules, ScanInput, type CompiledRule } from './rules.js';
import { PII_DETECTORS, type GuardrailAction, type GuardrailPolicy, type PiiDetector, type ScanResult } from './types.js';

type Level = GuardrailPolicy | null | undefined;
type PiiMap = Partial<Record<PiiDetector, GuardrailAction | null>>;

export interface CompiledPolicy {
  /**
   * Nothing to do at all: no scan rule for inputs or outputs and no token limit. The hot path
   * may skip guardrails entirely; it must not when only max_input_tokens is set.
   */
  readonly isEmpty: boolean;
  /** Some rule applies to prompts. */
  readonly scansInput: boolean;
  /** Some rule applies to outputs (scan_output is not false and a deny or PII rule is active). */
  readonly scansOutput: boolean;
  /** Checked by the caller, which owns token counting. */
  readonly maxInputTokens: number | null;
  readonly inputRules: readonly CompiledRule[];
  readonly outputRules: readonly CompiledRule[];
}

/** Detectors in PII_DETECTORS order, so equal merges serialize equally (callers hash the JSON as a cache key). */
function mergePii(under: PiiMap | undefined, over: PiiMap): PiiMap {
  const merged: PiiMap = {};
  for (const detector of PII_DETECTORS) {
    const action = over[detector] !== undefined ? over[detector] : under?.[detector];
    if (action !== undefined) merged[detector] = action;
  }
  return merged;
}

const FIELDS = ['deny_words', 'deny_patterns', 'deny_action', 'pii', 'injection', 'max_input_tokens', 'scan_output'] as const;

/**
 * Org, then team, then key: each level overrides the fields it sets (lists replace, they do not
 * append); `pii` merges per detector, and a detector set to null is off from that level down
 * unless a lower level sets it again.
 */
export function mergePolicies(org: Level, team: Level, key: Level): GuardrailPolicy {
  const levels = [org, team, key].filter((level): level is GuardrailPolicy => level !== null && level !== undefined);
  const merged: Record<string, unknown> = {};
  for (const field of FIELDS) {
    for (const level of levels) {
      const value = level[field];
      if (value === undefined) continue;
      if (field === 'pii') merged.pii = mergePii(merged.pii as PiiMap | undefined, value as PiiMap);
      else merged[field] = Array.isArray(value) ? [...value] : value;
    }
  }
  return merged as GuardrailPolicy;
}

/** Compiles once per merged policy (cache the result). Throws GuardrailPatternError for a bad deny pattern. */
export function compilePolicy(policy: GuardrailPolicy): CompiledPolicy {
  const inputRules = buildRules(policy);
  const outputRules = policy.scan_output === false ? [] : inputRules.filter((rule) => !rule.inputOnly);
  const maxInputTokens = policy.max_input_tokens ?? null;
  return Object.freeze({
    isEmpty: inputRules.length === 0 && maxInputTokens === null,
    scansInput: inputRules.length > 0,
    scansOutput: outputRules.length > 0,
    maxInputTokens,
    inputRules: Object.freeze(inputRules),
    outputRules: Object.freeze(outputRules),
  });
}

const CLEAN: ScanResult = Object.freeze({ blocked: undefined, redacted: undefined, findings: Object.freeze([]) });

/** Scans a whole text. Injection heuristics run on inputs only; outputs only when scan_output is not false. */
export function scanText(compiled: CompiledPolicy, text: string, where: 'input' | 'output'): ScanResult {
  const rules = where === 'input' ? compiled.inputRules : compiled.outputRules;
  if (rules.length === 0 || text.length === 0) return CLEAN;
  const { hits, redactions, blocked } = resolveHits(collectHits(rules, new ScanInput(text)));
  return {
    blocked: blocked === undefined ? undefined : toFinding(blocked),
    redacted: redactions.length === 0 ? undefined : applyRedactions(text, 0, text.length, redactions),
    findings: hits.map((h) => toFinding(h)),
  };
}
