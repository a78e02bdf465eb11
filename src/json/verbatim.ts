// The received bytes of a large body's array elements (an agent's messages, its tools), kept so
// the upstream body can carry an element as it came instead of serializing it again (the main
// thread's largest cost on `agent` traffic). Bytes are kept only where any JSON parser reads from
// them exactly the value the gateway parsed, checked and routes on: no repeated key (parsers differ
// on which one wins) and no number other than an integer of at most 15 digits (exact in every
// double-based parser). Whitespace and escapes may differ from JSON.stringify's: they denote the
// same value. An element changed after parsing (a guardrail's redaction) must be forgotten.

/** Received JSON, by the parsed object it became. A WeakMap: the bytes live as long as the request's objects. */
const received = new WeakMap<object, Uint8Array>();

/** The bytes an unchanged element may be sent as, if they were kept. */
export function verbatimOf(value: object): Uint8Array | undefined {
  return received.get(value);
}

/** `value` changed after parsing: its received bytes no longer describe it. */
export function forgetVerbatim(value: object): void {
  received.delete(value);
}

/** What the byte scan saw of an element. */
export interface ScannedElement {
  /** The object keys the bytes hold at every depth: a repeated key parses to fewer. */
  readonly rawKeys: number;
  /** Every number in them is a short integer. */
  readonly plainNumbers: boolean;
  /** How deep its objects and arrays nest. */
  readonly depth: number;
}

/** Deeper elements are serialized again: counting their keys would recurse that deep (a message nests ~4). */
const MAX_KEPT_DEPTH = 32;

/**
 * Keeps `bytes[start, end)` as the JSON of `value`, parsed from exactly those bytes, when they
 * are safe to send as it (see the module comment). The bytes are copied: the body's buffer is
 * reused once its callback returns.
 */
export function keepVerbatim(value: object, bytes: Uint8Array, start: number, end: number, seen: ScannedElement): void {
  if (end - start > MAX_KEPT_BYTES || seen.depth > MAX_KEPT_DEPTH || !seen.plainNumbers || countKeys(value) !== seen.rawKeys) return;
  received.set(value, copyOut(bytes, start, end));
}

/** The keys of every object in a parsed value. */
function countKeys(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0;
  let keys = 0;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) keys += countKeys(value[i]);
    return keys;
  }
  for (const key in value) keys += 1 + countKeys((value as Record<string, unknown>)[key]);
  return keys;
}

// Copies go into shared slabs below malloc's mmap threshold (reused memory, no page faults); a
// slab is freed once no kept element in it is alive. A larger element would need fresh pages for
// its copy: it is serialized again instead (in slices, chunked-body.ts).
const SLAB_BYTES = 64 * 1024;
const MAX_KEPT_BYTES = 96 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
let slabUsed = 0;

function copyOut(bytes: Uint8Array, start: number, end: number): Uint8Array {
  const length = end - start;
  if (length > SLAB_BYTES / 4) {
    const own = Buffer.allocUnsafeSlow(length);
    own.set(bytes.subarray(start, end));
    return own;
  }
  if (slabUsed + length > SLAB_BYTES) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    slabUsed = 0;
  }
  const copy = slab.subarray(slabUsed, slabUsed + length);
  copy.set(bytes.subarray(start, end));
  slabUsed += length;
  return copy;
}
