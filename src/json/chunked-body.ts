// A request body for upstream as JSON. Most are short and go as one string. A large one (an agent's
// whole conversation) is never one string: JSON.stringify's result would land in V8's large-object
// space on freshly mapped pages, and its UTF-8 copy in freshly mapped memory too (together ~2 ms of
// page faults for a 280 KB body here). Objects and arrays with much text are written member by
// member, small values with one JSON.stringify each, a long string in slices, all into chunks of
// CHUNK_BYTES, sent with their length. An element received as safe bytes and unchanged since goes
// as those bytes (verbatim.ts).
import { verbatimOf } from './verbatim.js';

/** Below this many characters (a rough count of the strings) a value is one JSON.stringify. */
export const CHUNKED_MIN_CHARS = 32 * 1024;
const CHUNK_BYTES = 64 * 1024;
/** A longer string is escaped in slices of this many UTF-16 units (at most 48 KiB of UTF-8 each). */
const STRING_SLICE_CHARS = 16 * 1024;
/** How deep the size estimate looks: request, messages, message, content parts, part. */
const ESTIMATE_DEPTH = 5;

export interface JsonBody {
  readonly body: string | readonly Buffer[];
  /** The UTF-8 length of chunks (undici needs it to send them with a content-length); undefined for a string. */
  readonly bytes: number | undefined;
}

type Replacer = (key: string, value: unknown) => unknown;

/**
 * `value` (plain JSON data, as parsed) as JSON: byte for byte what JSON.stringify gives, except
 * that an element kept as received goes as its received bytes (the same value); `omitKey`: members
 * of that name are left out at every depth (and no element goes as received).
 */
export function jsonBody(value: Record<string, unknown>, omitKey?: string): JsonBody {
  const replacer = omitKey === undefined ? undefined : (key: string, member: unknown) => (key === omitKey ? undefined : member);
  if (roughChars(value, ESTIMATE_DEPTH) < CHUNKED_MIN_CHARS) return { body: JSON.stringify(value, replacer), bytes: undefined };
  const out = new ChunkWriter();
  writeComposite(out, value, omitKey, replacer);
  return out.finish();
}

/** Writes `value`'s JSON; false (nothing written) when it has none (undefined, a function). */
function writeValue(out: ChunkWriter, value: unknown, omitKey: string | undefined, replacer: Replacer | undefined): boolean {
  if (typeof value === 'string' && value.length > STRING_SLICE_CHARS) {
    writeLongString(out, value);
    return true;
  }
  if (value !== null && typeof value === 'object' && omitKey === undefined) {
    const bytes = verbatimOf(value);
    if (bytes !== undefined) {
      out.writeBytes(bytes);
      return true;
    }
  }
  if (value === null || typeof value !== 'object' || roughChars(value, ESTIMATE_DEPTH) < CHUNKED_MIN_CHARS) {
    const text: string | undefined = JSON.stringify(value, replacer);
    if (text === undefined) return false;
    out.write(text);
    return true;
  }
  writeComposite(out, value, omitKey, replacer);
  return true;
}

/** An object or array with much text, member by member. */
function writeComposite(out: ChunkWriter, value: object, omitKey: string | undefined, replacer: Replacer | undefined): void {
  if (Array.isArray(value)) {
    out.write('[');
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out.write(',');
      // JSON.stringify writes null for an element without a JSON form.
      if (!writeValue(out, value[i], omitKey, replacer)) out.write('null');
    }
    out.write(']');
    return;
  }
  let separator = '{';
  for (const key of Object.keys(value)) {
    const member = (value as Record<string, unknown>)[key];
    // A member without a JSON form is left out, as JSON.stringify does.
    if (key === omitKey || member === undefined || typeof member === 'function' || typeof member === 'symbol') continue;
    out.write(separator);
    out.write(JSON.stringify(key));
    out.write(':');
    writeValue(out, member, omitKey, replacer);
    separator = ',';
  }
  out.write(separator === '{' ? '{}' : '}');
}

/** A string's JSON in slices: JSON escapes each code point alone, so only a surrogate pair must not be cut. */
function writeLongString(out: ChunkWriter, text: string): void {
  out.write('"');
  for (let start = 0; start < text.length; ) {
    let end = Math.min(start + STRING_SLICE_CHARS, text.length);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
    const escaped = JSON.stringify(text.slice(start, end));
    out.write(escaped.slice(1, -1));
    start = end;
  }
  out.write('"');
}

/** The characters of the strings in `value`, down to `depth` levels: an estimate of its JSON's size. */
function roughChars(value: unknown, depth: number): number {
  if (typeof value === 'string') return value.length;
  if (depth === 0 || value === null || typeof value !== 'object') return 0;
  let chars = 0;
  if (Array.isArray(value)) {
    for (const element of value) chars += roughChars(element, depth - 1);
  } else {
    for (const key in value) chars += roughChars((value as Record<string, unknown>)[key], depth - 1);
  }
  return chars;
}

/** UTF-8 text appended into fixed-size buffers (allocated below malloc's mmap threshold, so reused memory). */
class ChunkWriter {
  private readonly chunks: Buffer[] = [];
  private current = Buffer.allocUnsafeSlow(CHUNK_BYTES);
  private used = 0;
  private total = 0;

  write(text: string): void {
    const room = this.current.length - this.used;
    // At most 3 bytes a UTF-16 unit: no need to measure text that surely fits.
    const bytes = text.length * 3 <= room ? -1 : Buffer.byteLength(text);
    if (bytes > room) {
      this.flush();
      if (bytes > CHUNK_BYTES) {
        this.chunks.push(Buffer.from(text));
        this.total += bytes;
        return;
      }
    }
    const written = this.current.write(text, this.used);
    this.used += written;
    this.total += written;
  }

  writeBytes(bytes: Uint8Array): void {
    let from = 0;
    while (from < bytes.length) {
      if (this.used === this.current.length) this.flush();
      const n = Math.min(bytes.length - from, this.current.length - this.used);
      this.current.set(from === 0 && n === bytes.length ? bytes : bytes.subarray(from, from + n), this.used);
      this.used += n;
      from += n;
    }
    this.total += bytes.length;
  }

  finish(): JsonBody {
    this.flush();
    return { body: this.chunks, bytes: this.total };
  }

  private flush(): void {
    if (this.used === 0) return;
    this.chunks.push(this.current.subarray(0, this.used));
    this.current = Buffer.allocUnsafeSlow(CHUNK_BYTES);
    this.used = 0;
  }
}

/** A body built by jsonBody as one string again (for a reader that wants the text: the in-process mock, tests). */
export function jsonBodyText(body: string | readonly Uint8Array[]): string {
  return typeof body === 'string' ? body : Buffer.concat(body).toString('utf8');
}
