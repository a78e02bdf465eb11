// A cached verdict keeps only its findings: the redacted text rebuilt from them must be exactly
// what the scan returned, for any mix of overlapping, adjacent and flagged PII.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compilePolicy, scanText } from '../../../src/guardrails/policy.js';
import type { GuardrailPolicy } from '../../../src/guardrails/types.js';
import { redactFindings, redactionGrowthBytes } from '../../../src/guardrails/redact-findings.js';

const FRAGMENTS = [
  'alice@example.com', ' bob.smith+tag@mail.example.org', 'call +1 415 555 0100 now', '(212) 555-0199', 'IBAN DE89 3704 0044 0532 0130 00',
  '123-45-6789', 'card 4111 1111 1111 1111', '10.0.0.1', '2001:db8::1', 'sk-proj-abcdefghijklmnopqrstuvwxyz012345', 'AKIAIOSFODNN7EXAMPLE',
  ' plain words ', '\n', 'x', '日本語', '😀', '@', '.', '-', ' ', '0', '555', 'project falcon',
];

describe('redactFindings', () => {
  it.each<[string, GuardrailPolicy]>([
    ['every detector redacting', { pii: { email: 'redact', phone: 'redact', credit_card: 'redact', iban: 'redact', us_ssn: 'redact', ip_address: 'redact', secret: 'redact' } }],
    ['redactions mixed with flags and blocks', { deny_words: ['project falcon'], deny_action: 'flag', pii: { email: 'redact', phone: 'flag', credit_card: 'block', iban: 'redact', us_ssn: 'redact', ip_address: 'flag', secret: 'redact' } }],
  ])('rebuilds the scan\'s redacted text from its findings: %s', (_name, policy) => {
    const compiled = compilePolicy(policy);
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...FRAGMENTS), { maxLength: 30 }), fc.constantFrom('input' as const, 'output' as const), (parts, stage) => {
        const text = parts.join('');
        const result = scanText(compiled, text, stage);
        expect(redactFindings(text, result.findings)).toBe(result.redacted);
      }),
      { seed: 4_242, numRuns: 500 },
    );
  });
});

describe('redactionGrowthBytes', () => {
  it('bounds from above what the redactions add to the JSON of a body, and is exact for ASCII PII', () => {
    const compiled = compilePolicy({ pii: { email: 'redact', phone: 'redact', credit_card: 'redact', iban: 'redact', us_ssn: 'redact', ip_address: 'redact', secret: 'redact' } });
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...FRAGMENTS, 'a@b.co', '"quoted"', '\\', '😀x', '\ud83d'), { maxLength: 30 }), (parts) => {
        const text = parts.join('');
        const result = scanText(compiled, text, 'input');
        const before = Buffer.byteLength(JSON.stringify({ content: text }));
        const after = Buffer.byteLength(JSON.stringify({ content: result.redacted ?? text }));
        expect(before + redactionGrowthBytes(result.findings)).toBeGreaterThanOrEqual(after);
        if (/^[\x20-\x7e]*$/.test(text) && !/["\\]/.test(text)) expect(before + redactionGrowthBytes(result.findings)).toBe(after);
      }),
      { seed: 77, numRuns: 500 },
    );
  });
});
