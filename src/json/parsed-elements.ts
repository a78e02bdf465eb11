// Parsed array elements of large bodies, by the bytes they were parsed from. An agent resends its
// whole conversation with every turn, so nearly every element of its body was parsed, checked and
// guarded before: a hit costs a fingerprint lookup and one byte comparison instead of decoding and
// parsing (and the garbage both leave behind), and hands back the same object, so what was derived
// from it (its guardrail verdict, its token count, its bytes for upstream) is found again by
// identity. Cached objects are shared by requests, so they are frozen: code that would change one
// (a redaction) works on a copy. Entries are per org (whether a text was sent before must not show
// in another tenant's latency) and per array (a message is never a tool). Derived data, in this
// process only: losing an entry costs a parse.

import { MAX_KEPT_BYTES } from './verbatim.js';

/** Bytes taken from each end of an element, and from its middle, for its fingerprint. */
const FINGERPRINT_EDGE_BYTES = 40;
const FINGERPRINT_MIDDLE_BYTES = 16;

/** When full, one miss in this many is kept (see remember). */
export const ADMIT_WHEN_FULL = 8;

interface Entry {
  /** The received bytes (a copy), compared in full on every hit: a fingerprint only finds the candidate. */
  readonly bytes: Buffer;
  readonly value: object;
  readonly cost: number;
}

export class ParsedElementCache {
  private readonly entries = new Map<string, Entry>();
  private heldBytes = 0;
  private missesWhenFull = 0;
  hits = 0;
  misses = 0;

  constructor(
    private maxBytes: number,
    /** Larger elements are parsed each time: copying them would need fresh pages (verbatim.ts). */
    readonly maxElementBytes: number,
  ) {}

  get bytes(): number {
    return this.heldBytes;
  }

  get size(): number {
    return this.entries.size;
  }

  /** A new budget (the config's); 0 empties the cache and keeps it empty. */
  resize(maxBytes: number): void {
    this.maxBytes = maxBytes;
    this.evictBeyond(maxBytes);
  }

  /**
   * The key of `b[start, end)` in `scope`'s entries; undefined when such an element is not cached.
   * Cheap: a few slices of the bytes, not a hash of all of them.
   */
  keyOf(scope: string, b: Buffer, start: number, end: number): string | undefined {
    const length = end - start;
    if (this.maxBytes === 0 || length > this.maxElementBytes) return undefined;
    const edge = Math.min(FINGERPRINT_EDGE_BYTES, length);
    const middle = start + (length >> 1);
    return `${scope}\u0000${length}\u0000${b.toString('latin1', start, start + edge)}${b.toString('latin1', end - edge, end)}${b.toString('latin1', middle, Math.min(end, middle + FINGERPRINT_MIDDLE_BYTES))}`;
  }

  /** The element parsed from exactly `b[start, end)`, if it is cached under `key`. */
  find(key: string, b: Buffer, start: number, end: number): object | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined || entry.bytes.length !== end - start || entry.bytes.compare(b, start, end) !== 0) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    // Most recently used last: Map keeps insertion order, so the first key is the one to evict.
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  /** Keeps `value`, parsed from `bytes` (the caller's copy, in a buffer of its own), frozen: from now on requests share it. */
  remember(key: string, bytes: Buffer, value: object): void {
    // The copy (its own buffer), the parsed strings (one or two bytes a character) and, for a
    // message a policy redacts, its redacted copy and that copy's JSON (guardrail-checks.ts), roughly.
    const cost = 4 * bytes.length + key.length * 2 + 384;
    if (cost > this.maxBytes) return;
    // Full, a cache evicting its least recently used entry for every miss keeps nothing that
    // conversations visited in turn come back for: when they hold more than the budget, each would
    // evict the next one's turns before it is resent. Admitting one miss in ADMIT_WHEN_FULL keeps
    // most entries until their next visit, so the hit rate falls with the budget instead of to 0.
    if (this.heldBytes + cost > this.maxBytes && ++this.missesWhenFull % ADMIT_WHEN_FULL !== 0) return;
    const old = this.entries.get(key);
    if (old !== undefined) {
      this.entries.delete(key);
      this.heldBytes -= old.cost;
    }
    this.entries.set(key, { bytes, value: deepFreeze(value), cost });
    this.heldBytes += cost;
    this.evictBeyond(this.maxBytes);
  }

  clear(): void {
    this.entries.clear();
    this.heldBytes = 0;
  }

  private evictBeyond(maxBytes: number): void {
    for (const [key, entry] of this.entries) {
      if (this.heldBytes <= maxBytes) break;
      this.entries.delete(key);
      this.heldBytes -= entry.cost;
    }
  }
}

/** Freezes `value` and every object and array in it; returns it. */
export function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  if (Array.isArray(value)) for (let i = 0; i < value.length; i++) deepFreeze(value[i]);
  else for (const key in value) deepFreeze((value as Record<string, unknown>)[key]);
  return Object.freeze(value);
}

/** A thawed deep copy of a JSON value: what to change when the value is shared (frozen). */
export function thawedCopy<T>(value: T): T {
  return structuredClone(value);
}

/** The process's cache of large request bodies' elements (OpenAI chat messages and tools); sized by main from the config. */
export const parsedElements = new ParsedElementCache(0, MAX_KEPT_BYTES);
