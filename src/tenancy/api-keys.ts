// API key material: `sk-nemo-` + 32 random bytes in base62. Only the SHA-256 of a key is stored,
// plus a short display prefix; the secret is shown once, at creation.
import { hash, randomBytes } from 'node:crypto';

export const KEY_PREFIX = 'sk-nemo-';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const SECRET_BYTES = 32;
/** 32 bytes are 43 base62 digits at most; shorter encodings are left-padded to this length. */
const SECRET_DIGITS = 43;
const DISPLAY_CHARS = KEY_PREFIX.length + 6;
const KEY_SHAPE = /^sk-nemo-[0-9A-Za-z]{43}$/;

export interface NewApiKey {
  /** The secret: returned to the creator once, never stored. */
  readonly secret: string;
  readonly hash: Buffer;
  readonly displayPrefix: string;
}

export function generateApiKey(): NewApiKey {
  const secret = KEY_PREFIX + base62(randomBytes(SECRET_BYTES));
  return { secret, hash: hashApiKey(secret), displayPrefix: secret.slice(0, DISPLAY_CHARS) };
}

export function hashApiKey(secret: string): Buffer {
  return hash('sha256', secret, 'buffer');
}

/** The same SHA-256 as base64 text, the key cache's key: one-shot hashing, no Hash object per request. */
export function apiKeyDigest(secret: string): string {
  return hash('sha256', secret, 'base64');
}

/** A cheap shape check before any hashing or lookup: most garbage never reaches the cache. */
export function looksLikeApiKey(value: string): boolean {
  return value.length === KEY_PREFIX.length + SECRET_DIGITS && KEY_SHAPE.test(value);
}

function base62(bytes: Buffer): string {
  let n = BigInt(`0x${bytes.toString('hex')}`);
  let out = '';
  while (n > 0n) {
    out = BASE62[Number(n % 62n)]! + out;
    n /= 62n;
  }
  return out.padStart(SECRET_DIGITS, '0');
}
