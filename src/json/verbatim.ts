// The received bytes of a large body's array elements (an agent's messages, its tools), kept so
// the upstream body can carry an element as it came instead of serializing it again (the main
// thread's largest cost on `agent` traffic). Bytes are kept only where any JSON parser reads from
// them exactly the value the gateway parsed, checked and routes on: no repeated key (parsers differ
// on which one wins) and no number other than an integer of at most 15 digits (exact in every
// double-based parser). Whitespace and escapes may differ from JSON.stringify's: they denote the
// same value. They are used only while the element is exactly as parsed: its keys and values are
// recorded with the bytes and compared on use, so an element changed since (a redaction, or any
// code that edits a request in place) is serialized again.

/** Kept bytes, and the element's shape as parsed: markers, keys and values in order. */
interface Kept {
  readonly bytes: Uint8Array;
  readonly shape: unknown[];
}

/** Received JSON, by the parsed object it became. A WeakMap: the bytes live as long as the request's objects. */
const received = new WeakMap<object, Kept>();

const OBJECT = Symbol('object');
const ARRAY = Symbol('array');
const END = Symbol('end');

/** The bytes `value` may be sent as: those it was parsed from, if kept and it has not changed since. */
export function verbatimOf(value: object): Uint8Array | undefined {
  const kept = received.get(value);
  if (kept === undefined) return undefined;
  if (matchShape(value, kept.shape, 0) !== kept.shape.length) {
    received.delete(value);
    return undefined;
  }
  return kept.bytes;
}

/** `value` is about to change: its received bytes will no longer describe it (saves the check on use). */
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

/** Deeper elements are serialized again: recording their shape would recurse that deep (a message nests ~4). */
const MAX_KEPT_DEPTH = 32;

/** Whether the bytes the scan saw may stand for the value parsed from them (see the module comment), before the keys are counted. */
export function mayKeepVerbatim(seen: ScannedElement, length: number): boolean {
  return length <= MAX_KEPT_BYTES && seen.depth <= MAX_KEPT_DEPTH && seen.plainNumbers;
}

/**
 * Keeps `copy` (a copy of the bytes `value` was parsed from: the body's buffer is reused once its
 * callback returns, see copyReceived) as the JSON of `value`, when mayKeepVerbatim said so and no
 * key repeats.
 */
export function keepVerbatim(value: object, copy: Uint8Array, seen: ScannedElement): void {
  const shape: unknown[] = [];
  // The keys the parse kept against those in the bytes: a repeated key parses to fewer.
  if (recordShape(value, shape) !== seen.rawKeys) return;
  received.set(value, { bytes: copy, shape });
}

/**
 * Keeps `value`'s JSON.stringify as its bytes: for a value that will be sent many times unchanged
 * (a redacted message of a conversation that is resent). JSON.stringify's own output is what
 * serializing it again would send.
 */
export function keepSerialized(value: object): void {
  const shape: unknown[] = [];
  recordShape(value, shape);
  received.set(value, { bytes: Buffer.from(JSON.stringify(value)), shape });
}

/** Appends `value`'s shape (markers, keys and values in order); returns the keys of its objects. */
function recordShape(value: unknown, shape: unknown[]): number {
  if (value === null || typeof value !== 'object') {
    shape.push(value);
    return 0;
  }
  let keys = 0;
  if (Array.isArray(value)) {
    shape.push(ARRAY, value.length);
    for (let i = 0; i < value.length; i++) keys += recordShape(value[i], shape);
    return keys;
  }
  shape.push(OBJECT);
  for (const key in value) {
    shape.push(key);
    keys += 1 + recordShape((value as Record<string, unknown>)[key], shape);
  }
  shape.push(END);
  return keys;
}

/** The index after `value`'s shape if it matches the shape recorded from `i` on, else -1 (values compared by identity first). */
function matchShape(value: unknown, shape: readonly unknown[], i: number): number {
  if (value === null || typeof value !== 'object') return shape[i] === value ? i + 1 : -1;
  if (Array.isArray(value)) {
    if (shape[i] !== ARRAY || shape[i + 1] !== value.length) return -1;
    let at = i + 2;
    for (let k = 0; k < value.length && at >= 0; k++) at = matchShape(value[k], shape, at);
    return at;
  }
  if (shape[i] !== OBJECT) return -1;
  let at = i + 1;
  for (const key in value) {
    if (shape[at] !== key) return -1;
    at = matchShape((value as Record<string, unknown>)[key], shape, at + 1);
    if (at < 0) return -1;
  }
  return shape[at] === END ? at + 1 : -1;
}

// Copies go into shared slabs below malloc's mmap threshold (reused memory, no page faults); a
// slab is freed once no kept element in it is alive. A larger element would need fresh pages for
// its copy: it is serialized again instead (in slices, chunked-body.ts).
const SLAB_BYTES = 64 * 1024;
export const MAX_KEPT_BYTES = 96 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
let slabUsed = 0;

/** A copy of `bytes[start, end)` that outlives the body's buffer (at most MAX_KEPT_BYTES long). */
export function copyReceived(bytes: Uint8Array, start: number, end: number): Buffer {
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
