import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { apiKeyDigest, generateApiKey, hashApiKey, KEY_PREFIX, looksLikeApiKey } from '../../../src/tenancy/api-keys.js';

const BODY = 'A'.repeat(43);

describe('generateApiKey', () => {
  it('is sk-nemo- followed by 43 base62 characters', () => {
    const { secret } = generateApiKey();
    expect(secret).toMatch(/^sk-nemo-[0-9A-Za-z]{43}$/);
    expect(secret.startsWith(KEY_PREFIX)).toBe(true);
  });

  it('gives 1,000 distinct keys that all look like keys', () => {
    const secrets = Array.from({ length: 1_000 }, () => generateApiKey().secret);
    expect(new Set(secrets).size).toBe(1_000);
    for (const secret of secrets) {
      expect(secret).toHaveLength(51);
      expect(looksLikeApiKey(secret)).toBe(true);
    }
  });

  it('has a 14-character display prefix taken from the secret', () => {
    for (let i = 0; i < 100; i++) {
      const key = generateApiKey();
      expect(key.displayPrefix).toHaveLength(14);
      expect(key.secret.startsWith(key.displayPrefix)).toBe(true);
      expect(key.displayPrefix.startsWith(KEY_PREFIX)).toBe(true);
    }
  });

  it('carries the SHA-256 of its secret', () => {
    const key = generateApiKey();
    expect(key.hash.equals(createHash('sha256').update(key.secret).digest())).toBe(true);
  });
});

describe('hashApiKey and apiKeyDigest', () => {
  it('hashApiKey is the SHA-256 of the secret', () => {
    const { secret } = generateApiKey();
    const expected = createHash('sha256').update(secret).digest();
    const actual = hashApiKey(secret);
    expect(actual).toHaveLength(32);
    expect(actual.equals(expected)).toBe(true);
  });

  it('apiKeyDigest is the same bytes in base64', () => {
    for (let i = 0; i < 50; i++) {
      const { secret } = generateApiKey();
      const digest = apiKeyDigest(secret);
      expect(digest).toBe(createHash('sha256').update(secret).digest('base64'));
      expect(Buffer.from(digest, 'base64').equals(hashApiKey(secret))).toBe(true);
    }
  });

  it('hashes the UTF-8 bytes of non-ASCII input the same way in both', () => {
    const odd = 'sk-nemo-é漢🔑';
    expect(apiKeyDigest(odd)).toBe(hashApiKey(odd).toString('base64'));
  });
});

describe('looksLikeApiKey', () => {
  it('accepts the exact shape', () => {
    expect(looksLikeApiKey(`sk-nemo-${BODY}`)).toBe(true);
    expect(looksLikeApiKey(`sk-nemo-${'0'.repeat(43)}`)).toBe(true);
    expect(looksLikeApiKey(`sk-nemo-${'z'.repeat(43)}`)).toBe(true);
  });

  const REFUSED: Array<[name: string, value: string]> = [
    ['empty', ''],
    ['prefix only', 'sk-nemo-'],
    ['wrong prefix', `sk-nema-${BODY}`],
    ['upper-case prefix', `SK-NEMO-${BODY}`],
    ['OpenAI-style prefix', `sk-proj-${BODY}`],
    ['prefix missing', `xx${BODY}${'AAAAAA'}`],
    ['too short', `sk-nemo-${'A'.repeat(42)}`],
    ['too long', `sk-nemo-${'A'.repeat(44)}`],
    ['dash in body', `sk-nemo-${'A'.repeat(42)}-`],
    ['underscore in body', `sk-nemo-_${'A'.repeat(42)}`],
    ['base64 + in body', `sk-nemo-${'A'.repeat(21)}+${'A'.repeat(21)}`],
    ['base64 / in body', `sk-nemo-${'A'.repeat(21)}/${'A'.repeat(21)}`],
    ['non-ASCII letter in body', `sk-nemo-${'A'.repeat(42)}é`],
    ['space in body', `sk-nemo-${'A'.repeat(21)} ${'A'.repeat(21)}`],
    ['leading space', ` sk-nemo-${'A'.repeat(42)}`],
    ['trailing space', `sk-nemo-${'A'.repeat(42)} `],
    ['trailing newline', `sk-nemo-${'A'.repeat(42)}\n`],
    ['trailing newline after a full key', `sk-nemo-${BODY}\n`],
    ['tab in body', `sk-nemo-${'A'.repeat(42)}\t`],
  ];
  it.each(REFUSED)('refuses %s', (_name, value) => {
    expect(looksLikeApiKey(value)).toBe(false);
  });
});
