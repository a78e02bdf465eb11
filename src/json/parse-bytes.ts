// JSON from a request body's bytes, without one large string. V8 puts a string over 128 KiB in its
// large-object space, on pages mapped afresh each time: decoding a 280 KB agent prompt costs ~70
// page faults, about 1 ms here, fifty times the decoding itself. So a large body's top-level
// members, and the elements of its top-level arrays (messages, tools, input), are found by a scan
// of the bytes and decoded and parsed one by one, each a small string. Whatever the scan does not
// expect falls back to JSON.parse of the whole text: the value and the error are always JSON.parse's.
// On request, the bytes of array elements that are objects are kept for the upstream body where safe
// (verbatim.ts), and their parse is cached by those bytes for the next body that carries them
// (parsed-elements.ts).
import { parsedElements } from './parsed-elements.js';
import { copyReceived, keepVerbatim, mayKeepVerbatim } from './verbatim.js';

/** Smaller bodies are decoded whole: a two-byte string of this many characters stays under 128 KiB. */
export const PIECEWISE_MIN_BYTES = 64 * 1024;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const MINUS = 0x2d;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/**
 * JSON.parse of the bytes as UTF-8 (the caller checked they are); throws JSON.parse's SyntaxError.
 * `receivedBy`: the body goes upstream as received, for this org: array elements that are objects
 * keep the bytes they were parsed from where safe, and may be the (frozen, shared) objects an
 * earlier body of the same org parsed from the same bytes.
 */
export function parseJsonBytes(bytes: Uint8Array, receivedBy?: string): unknown {
  const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length >= PIECEWISE_MIN_BYTES) {
    const value = parsePiecewise(buffer, receivedBy);
    if (value !== undefined) return value;
  }
  return JSON.parse(buffer.toString('utf8'));
}

/** A top-level object parsed member by member; undefined when the bytes are not what the scan expects. */
function parsePiecewise(b: Buffer, receivedBy: string | undefined): Record<string, unknown> | undefined {
  let i = skipSpace(b, 0);
  if (b[i] !== OPEN_BRACE) return undefined;
  const out: Record<string, unknown> = {};
  i = skipSpace(b, i + 1);
  if (b[i] === CLOSE_BRACE) return skipSpace(b, i + 1) === b.length ? out : undefined;
  for (;;) {
    if (b[i] !== QUOTE) return undefined;
    const keyEnd = stringEnd(b, i);
    if (keyEnd < 0) return undefined;
    const key = parsePiece(b, i, keyEnd);
    if (typeof key !== 'string') return undefined;
    i = skipSpace(b, keyEnd);
    if (b[i] !== COLON) return undefined;
    i = skipSpace(b, i + 1);
    let value: unknown;
    if (b[i] === OPEN_BRACKET) {
      const elements: unknown[] = [];
      // Cached elements are per org and per array: a message is never handed out as a tool (what
      // was checked and counted of it depends on which it is).
      const scope = receivedBy === undefined ? undefined : `${receivedBy}\u0000${key}`;
      i = skipSpace(b, i + 1);
      if (b[i] === CLOSE_BRACKET) i++;
      else {
        for (;;) {
          rawKeys = 0;
          plainNumbers = true;
          deepest = 0;
          const end = valueEnd(b, i);
          if (end < 0) return undefined;
          const element = scope !== undefined && b[i] === OPEN_BRACE ? receivedObject(b, i, end, scope) : parsePiece(b, i, end);
          if (element === FAILED) return undefined;
          elements.push(element);
          i = skipSpace(b, end);
          if (b[i] === COMMA) i = skipSpace(b, i + 1);
          else if (b[i] === CLOSE_BRACKET) {
            i++;
            break;
          } else return undefined;
        }
      }
      value = elements;
    } else {
      const end = valueEnd(b, i);
      if (end < 0) return undefined;
      value = parsePiece(b, i, end);
      if (value === FAILED) return undefined;
      i = end;
    }
    // As JSON.parse: a repeated key keeps its first place and its last value, and `__proto__` is an own property.
    if (key === '__proto__') Object.defineProperty(out, key, { value, writable: true, enumerable: true, configurable: true });
    else out[key] = value;
    i = skipSpace(b, i);
    if (b[i] === COMMA) i = skipSpace(b, i + 1);
    else if (b[i] === CLOSE_BRACE) return skipSpace(b, i + 1) === b.length ? out : undefined;
    else return undefined;
  }
}

const FAILED = Symbol('not JSON');

/**
 * An object element of a body that goes upstream as received: the cached parse of the same bytes
 * in the same `scope` (org and array), or a fresh parse that keeps its bytes (where safe) and is
 * cached. Call right after valueEnd.
 */
function receivedObject(b: Buffer, start: number, end: number, scope: string): unknown {
  const key = parsedElements.keyOf(scope, b, start, end);
  const cached = key === undefined ? undefined : parsedElements.find(key, b, start, end);
  if (cached !== undefined) return cached;
  const seen = { rawKeys, plainNumbers, depth: deepest };
  const element = parsePiece(b, start, end);
  // Bytes that start with `{` and parse are an object.
  if (element === FAILED) return element;
  const verbatim = mayKeepVerbatim(seen, end - start);
  if (!verbatim && key === undefined) return element;
  // A cached element gets a copy of its own: in a shared slab it would keep the whole slab alive.
  const copy = key === undefined ? copyReceived(b, start, end) : ownCopy(b, start, end);
  if (verbatim) keepVerbatim(element as object, copy, seen);
  if (key !== undefined) parsedElements.remember(key, copy, element as object);
  return element;
}

function ownCopy(b: Buffer, start: number, end: number): Buffer {
  const copy = Buffer.allocUnsafeSlow(end - start);
  b.copy(copy, 0, start, end);
  return copy;
}

/** One value's bytes parsed; FAILED when they are not one JSON value (the whole text then decides). */
function parsePiece(b: Buffer, start: number, end: number): unknown {
  try {
    return JSON.parse(b.toString('utf8', start, end));
  } catch {
    return FAILED;
  }
}

function skipSpace(b: Buffer, i: number): number {
  for (;;) {
    const c = b[i];
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
    else return i;
  }
}

/** The index after the string starting at `start` (a quote), or -1; the quotes are found by memchr. */
function stringEnd(b: Buffer, start: number): number {
  let from = start + 1;
  for (;;) {
    const quote = b.indexOf(QUOTE, from);
    if (quote < 0) return -1;
    let k = quote - 1;
    while (b[k] === BACKSLASH) k--;
    // An even run of backslashes escapes itself, not the quote.
    if ((quote - 1 - k) % 2 === 0) return quote + 1;
    from = quote + 1;
  }
}

/** What valueEnd saw of a composite value, for keepVerbatim: strings followed by a colon, whether every number was a short integer, how deep it nests. */
let rawKeys = 0;
let plainNumbers = true;
let deepest = 0;

/**
 * The index after the value starting at `start`, or -1. Brackets are matched outside strings but
 * not checked for kind or content: JSON.parse of the piece does that.
 */
function valueEnd(b: Buffer, start: number): number {
  const first = b[start];
  if (first === QUOTE) return stringEnd(b, start);
  if (first === OPEN_BRACE || first === OPEN_BRACKET) {
    let depth = 0;
    for (let j = start; j < b.length; j++) {
      const c = b[j];
      if (c === QUOTE) {
        const end = stringEnd(b, j);
        if (end < 0) return -1;
        if (b[skipSpace(b, end)] === COLON) rawKeys++;
        j = end - 1;
      } else if ((c! >= DIGIT_0 && c! <= DIGIT_9) || c === MINUS) {
        const end = numberEnd(b, j);
        if (plainNumbers) plainNumbers = isShortInteger(b, j, end);
        j = end - 1;
      } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        if (++depth > deepest) deepest = depth;
      }
      else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        if (--depth === 0) return j + 1;
      }
    }
    return -1;
  }
  // A number, true, false or null: up to the next delimiter.
  const j = numberEnd(b, start);
  return j > start ? j : -1;
}

/** The index of the delimiter after a number (or literal) starting at `start`. */
function numberEnd(b: Buffer, start: number): number {
  let j = start;
  while (j < b.length) {
    const c = b[j];
    if (c === COMMA || c === CLOSE_BRACE || c === CLOSE_BRACKET || c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) break;
    j++;
  }
  return j;
}

/** `-?(0|[1-9][0-9]{0,14})`: an integer every double-based parser reads exactly, written as JSON.stringify writes it. */
function isShortInteger(b: Buffer, start: number, end: number): boolean {
  const digits = b[start] === MINUS ? start + 1 : start;
  const count = end - digits;
  // `-0` is left out too: JSON.stringify writes it as 0.
  if (count < 1 || count > 15 || (b[digits] === DIGIT_0 && (count > 1 || digits > start))) return false;
  for (let k = digits; k < end; k++) if (b[k]! < DIGIT_0 || b[k]! > DIGIT_9) return false;
  return true;
}
