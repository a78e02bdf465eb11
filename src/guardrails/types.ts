// The guardrail model: what a policy says, what a scan finds. Policies are stored per org with
// overrides per team and per key (nemo.guardrail_policies); the gateway merges them, compiles the
// result once (cached) and scans prompts and outputs with it, in the worker pool for large texts.
import { z } from 'zod';

/** block: refuse (400 before upstream; a final SSE error mid-stream). redact: replace the match with a typed placeholder. flag: record only. */
export type GuardrailAction = 'block' | 'redact' | 'flag';

export const PII_DETECTORS = ['email', 'phone', 'credit_card', 'iban', 'us_ssn', 'ip_address', 'secret'] as const;
export type PiiDetector = (typeof PII_DETECTORS)[number];

const action = z.enum(['block', 'redact', 'flag']);
const noNul = (value: string) => !value.includes('\u0000');

/**
 * One level's policy (org, team or key). Every field is optional: a level only overrides what it
 * sets. `null` switches a detector off at that level (so a key can relax its org's rule).
 */
export const guardrailPolicySchema = z.strictObject({
  /** Literal words/phrases, matched case-insensitively on word boundaries. */
  deny_words: z.array(z.string().min(1).max(200).refine(noNul)).max(1000).optional(),
  /** User regular expressions, run by a linear-time engine (refused at save time if they cannot be). */
  deny_patterns: z.array(z.string().min(1).max(500).refine(noNul)).max(100).optional(),
  /** What a deny word or pattern does: block or flag. Default block. */
  deny_action: z.enum(['block', 'flag']).optional(),
  pii: z.partialRecord(z.enum(PII_DETECTORS), action.nullable()).optional(),
  /** Prompt-injection heuristics (input only): block or flag; null: off. */
  injection: z.enum(['block', 'flag']).nullable().optional(),
  /** Largest prompt in tokens (exact count of the model's encoding); null: no limit. */
  max_input_tokens: z.number().int().min(1).max(10_000_000).nullable().optional(),
  /** Whether the output is scanned too (deny rules and PII; redact applies to outputs as well). Default true. */
  scan_output: z.boolean().optional(),
});
export type GuardrailPolicy = z.infer<typeof guardrailPolicySchema>;

/** The guardrails in force for a key: its org's, team's and own policies merged. */
export interface KeyGuardrails {
  /** Identifies the merged policy's content: worker threads compile each once. */
  readonly policyKey: string;
  readonly policy: GuardrailPolicy;
  readonly scansInput: boolean;
  readonly scansOutput: boolean;
  readonly maxInputTokens: number | null;
  /** The stored policy does not validate: requests with this key are refused until an admin fixes it. */
  readonly invalid?: true;
}

/** A rule id names what matched without the matched text: `deny_word:3`, `deny_pattern:0`, `pii:email`, `injection:ignore_previous`, `max_input_tokens`. */
export type RuleId = string;

export interface Finding {
  readonly rule: RuleId;
  readonly action: GuardrailAction;
  /** UTF-16 offsets into the scanned text, end exclusive. */
  readonly start: number;
  readonly end: number;
}

export interface ScanResult {
  /** The first blocking finding, if any: the request or stream is refused. */
  readonly blocked: Finding | undefined;
  /** The text with every redact finding replaced by its placeholder (`[REDACTED:EMAIL]` ...); undefined when nothing was redacted. */
  readonly redacted: string | undefined;
  /** Every finding (block, redact and flag), for guardrail events; never the matched text. */
  readonly findings: readonly Finding[];
}
