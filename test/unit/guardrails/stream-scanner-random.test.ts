// Random documents assembled from PII, secrets, deny words, look-alikes and noise that sits next
// to them (digits, dashes, colons, emoji), streamed in random chunks: the scanner must agree with
// scanText on every one. Seeded, so a failure replays. NEMO_STREAM_SCAN_SEEDS=N runs N documents
// per policy instead of 150 (a soak, on demand).
import { describe, expect, it } from 'vitest';
import { compilePolicy, scanText } from '../../../src/guardrails/policy.js';
import { StreamScanner } from '../../../src/guardrails/stream-scanner.js';
import { seededRandom } from '../../support/seeded-random.js';
import { pemBlock, piiPolicy, SECRETS } from './fixtures.js';

const PIECES = [
  'jane@example.com', '(555) 123-4567', '555-123-4567', '+44 20 7946 0958', '4111 1111 1111 1111', '4111111111111111',
  'DE89 3704 0044 0532 0130 00', '123-45-6789', '10.0.0.1', '2001:db8::1', '::1', SECRETS.jwt, SECRETS.aws, SECRETS.github,
  SECRETS.openai, pemBlock(8), 'forbidden', 'for\u200bbidden', 'bad word', 'ＢＡＤ ＷＯＲＤ', 'ORD-1234',
  ' ', ' ', ' ', '\n', '.', ',', '-', ':', '@', '1', '42', '0', '000', '2024', 'the', 'lazy', 'dog', 'a', '😀', 'é', 'e\u0301', '\u200b',
];

const POLICIES = [
  compilePolicy({ ...piiPolicy('redact'), deny_words: ['forbidden', 'bad word'], deny_action: 'flag', deny_patterns: ['ORD-[0-9]+'] }),
  compilePolicy(piiPolicy('redact', 'us_ssn', 'ip_address', 'phone')),
  compilePolicy({ ...piiPolicy('redact'), deny_words: ['forbidden'] }),
];

function randomDocument(random: () => number): string {
  let text = '';
  for (let n = 20 + Math.floor(random() * 200); n > 0; n--) text += PIECES[Math.floor(random() * PIECES.length)];
  return text;
}

const SEEDS = Number(process.env.NEMO_STREAM_SCAN_SEEDS ?? 150);

describe('StreamScanner on random documents', () => {
  it.each([0, 1, 2])(`policy %i agrees with scanText on ${SEEDS} seeded documents`, (policyIndex) => {
    const compiled = POLICIES[policyIndex] as (typeof POLICIES)[number];
    for (let seed = 1; seed <= SEEDS; seed++) {
      const random = seededRandom(seed * 31 + policyIndex);
      const text = randomDocument(random);
      const whole = scanText(compiled, text, 'output');
      const scanner = new StreamScanner(compiled);
      let released = '';
      let blocked = undefined;
      const maxChunk = 1 + Math.floor(random() * 30);
      for (let at = 0; at < text.length; ) {
        const size = 1 + Math.floor(random() * maxChunk);
        const step = scanner.push(text.slice(at, at + size));
        released += step.release;
        blocked ??= step.blocked;
        at += size;
      }
      const last = scanner.end();
      released += last.release;
      blocked ??= last.blocked;
      expect(blocked, `seed ${seed}`).toEqual(whole.blocked);
      if (whole.blocked !== undefined) continue;
      expect(released, `seed ${seed}`).toBe(whole.redacted ?? text);
      expect(scanner.findings, `seed ${seed}`).toEqual(whole.findings);
    }
  });
});
