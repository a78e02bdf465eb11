// Shared test data for the guardrail tests: policies, realistic-looking (fake) credentials, and a
// case runner that checks scanText's exact redacted output, block and finding rules.
import { expect } from 'vitest';
import { compilePolicy, scanText } from '../../../src/guardrails/policy.js';
import { PII_DETECTORS, type Finding, type GuardrailAction, type GuardrailPolicy, type PiiDetector } from '../../../src/guardrails/types.js';

export function piiPolicy(action: GuardrailAction, ...detectors: PiiDetector[]): GuardrailPolicy {
  const list = detectors.length === 0 ? PII_DETECTORS : detectors;
  return { pii: Object.fromEntries(list.map((d) => [d, action])) };
}

const ALNUM = 'A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4Y5z6';
/** `n` characters of a fixed alphanumeric cycle: long enough for any token shape, never random. */
export const alnum = (n: number): string => ALNUM.repeat(Math.ceil(n / ALNUM.length)).slice(0, n);

export const SECRETS = {
  openai: `sk-proj-${alnum(48)}`,
  openaiLegacy: `sk-${alnum(48)}`,
  anthropic: `sk-ant-api03-${alnum(93)}AA`,
  aws: 'AKIAIOSFODNN7EXAMPLE',
  github: `ghp_${alnum(36)}`,
  githubPat: `github_pat_11ABCDEFG0_${alnum(59)}`,
  slack: 'xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx',
  google: `AIza${alnum(35)}`,
  stripe: `sk_live_${alnum(24)}`,
  jwt: 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c',
};

/** A PEM block with `lines` 64-character base64 lines: longer than the stream hold-back once lines > 4. */
export function pemBlock(lines: number, label = 'RSA PRIVATE KEY'): string {
  const chars = `${ALNUM}+/`.repeat(3);
  const body = Array.from({ length: lines }, (_, i) => chars.slice(i % 50, (i % 50) + 64));
  return `-----BEGIN ${label}-----\n${body.join('\n')}\nAB==\n-----END ${label}-----`;
}

export interface ScanCase {
  readonly name: string;
  readonly policy: GuardrailPolicy;
  readonly text: string;
  readonly where?: 'input' | 'output';
  /** Exact redacted text; undefined: nothing redacted. */
  readonly redacted?: string;
  /** The blocking rule, if any. */
  readonly blocked?: string;
  /** Every reported finding's rule, in order. */
  readonly rules: readonly string[];
}

export function runCase(c: ScanCase): void {
  const result = scanText(compilePolicy(c.policy), c.text, c.where ?? 'input');
  expect(result.redacted).toBe(c.redacted);
  expect(result.blocked?.rule).toBe(c.blocked);
  expect(result.findings.map((f) => f.rule)).toEqual(c.rules);
  for (const f of result.findings) {
    expect(Object.keys(f).sort()).toEqual(['action', 'end', 'rule', 'start']);
    expect(f.start).toBeGreaterThanOrEqual(0);
    expect(f.end).toBeGreaterThan(f.start);
    expect(f.end).toBeLessThanOrEqual(c.text.length);
  }
}

/** The placeholder a `pii:<detector>` redact finding stands for. */
export const placeholderOf = (f: Finding): string => `[REDACTED:${f.rule.slice('pii:'.length).toUpperCase()}]`;
