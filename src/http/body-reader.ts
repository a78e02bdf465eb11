// Reads a request body with a size limit. The declared Content-Length is checked before a byte is
// read; the common single-chunk body is handed over as a view (valid only during the callback),
// larger ones are copied into one buffer that grows with what arrived (a declared length is a
// ceiling, never an allocation: a client that declares 4 MiB and sends one byte costs one chunk).
// A body over the limit is refused without being held: BodyErrorCallback says how the connection ends.
import { GatewayError } from '../errors/gateway-error.js';
import type { HttpResponse } from './server-api.js';

/** The first buffer of a body that arrives in pieces; it doubles from there, up to the declared length. */
const FIRST_BUFFER_BYTES = 16 * 1024;
/**
 * Buffers of bodies that arrived in pieces are reused (a body is only valid during its callback, so
 * its buffer is free again when the callback returns): a fresh one past malloc's mmap threshold
 * (128 KiB) is new pages every time, ~70 page faults for an agent's 280 KB prompt, about 1 ms here.
 * Kept up to SPARE_MAX_BYTES in all, none larger than SPARE_MAX_BUFFER_BYTES.
 */
const SPARE_MAX_BYTES = 8 * 1024 * 1024;
const SPARE_MAX_BUFFER_BYTES = 2 * 1024 * 1024;
const SPARE_MIN_BUFFER_BYTES = 64 * 1024;
const spares: Buffer[] = [];
let spareBytes = 0;

/** The smallest spare buffer of at least `minBytes`, else a new one of `bytes`. */
function takeBuffer(minBytes: number, bytes: number): Buffer {
  let best = -1;
  for (let i = 0; i < spares.length; i++) if (spares[i]!.length >= minBytes && (best < 0 || spares[i]!.length < spares[best]!.length)) best = i;
  if (best < 0) return Buffer.allocUnsafe(bytes);
  const spare = spares[best]!;
  spares[best] = spares[spares.length - 1]!;
  spares.pop();
  spareBytes -= spare.length;
  return spare;
}

function giveBack(buffer: Buffer): void {
  const size = buffer.length;
  if (size < SPARE_MIN_BUFFER_BYTES || size > SPARE_MAX_BUFFER_BYTES || spareBytes + size > SPARE_MAX_BYTES) return;
  spares.push(buffer);
  spareBytes += size;
}

/** What the spare buffers hold (for tests and memory reports). */
export function spareBodyBufferBytes(): number {
  return spareBytes;
}
/**
 * A declared body at most this far over the limit is read to its end and thrown away around the
 * 413 (fetch and the openai SDK write the whole body before they read an answer); a larger one is cut.
 */
export const MAX_DISCARDED_BYTES = 64 * 1024 * 1024;
const CONNECTION_CLOSE = /(?:^|\W)close(?:$|\W)/i;

/** The request headers the reader needs, as the route read them ('' when absent). */
export interface BodyHeaders {
  readonly contentLength: string;
  readonly connection: string;
}

export type BodyCallback = (body: Buffer) => void;
/**
 * `cutConnection` true: answer with closeConnection; the connection goes once the answer is out (an
 * invalid length, a body of unknown or too large a length, or one already read to its end).
 * False: answer without it, at once; the error carries `connection: close`, and the server reads and
 * discards the rest of the declared body before the connection goes (uWS does so by itself for a
 * response ended early; node-server.ts does the same).
 */
export type BodyErrorCallback = (err: GatewayError, cutConnection: boolean) => void;

/** Must be called synchronously in the route handler, after res.onAborted was attached. */
export function readBody(res: HttpResponse, headers: BodyHeaders, maxBytes: number, onBody: BodyCallback, onError: BodyErrorCallback): void {
  let declared = -1;
  if (headers.contentLength !== '') {
    declared = Number(headers.contentLength);
    if (!Number.isSafeInteger(declared) || declared < 0) {
      onError(new GatewayError('NR_INVALID_REQUEST', 'Invalid Content-Length header.'), true);
      return;
    }
    if (declared > maxBytes) {
      const tooLarge = (options?: { headers: Record<string, string> }) => new GatewayError('NR_BODY_TOO_LARGE', `The request body exceeds ${maxBytes} bytes.`, options);
      if (declared - maxBytes > MAX_DISCARDED_BYTES) return onError(tooLarge(), true);
      // uWS closes a connection whose request said `connection: close` as soon as its answer is out,
      // under a client still writing: that answer waits for the end of the body.
      if (!CONNECTION_CLOSE.test(headers.connection)) return onError(tooLarge({ headers: { connection: 'close' } }), false);
      res.onData((_chunk, isLast) => {
        if (isLast) onError(tooLarge(), true);
      });
      return;
    }
  }
  let buffer: Buffer | undefined;
  let length = 0;
  let failed = false;
  res.onData((chunk, isLast) => {
    if (failed) return;
    const size = chunk.byteLength;
    // Only a body without a declared length runs over (the parser stops a declared one at its
    // length): nothing bounds what is still to come, so the connection is cut.
    if (length + size > maxBytes || (declared >= 0 && length + size > declared)) {
      failed = true;
      if (buffer !== undefined) giveBack(buffer);
      onError(new GatewayError('NR_BODY_TOO_LARGE', `The request body exceeds ${declared >= 0 ? declared : maxBytes} bytes.`), true);
      return;
    }
    if (buffer === undefined && isLast) {
      onBody(Buffer.from(chunk));
      return;
    }
    const ceiling = declared >= 0 ? declared : maxBytes;
    // A spare buffer that holds the declared body is taken at once (no allocation, so a false
    // declaration costs nothing); a new one grows with what arrives.
    if (buffer === undefined) buffer = takeBuffer(declared >= 0 ? declared : maxBytes, Math.min(ceiling, Math.max(size * 4, FIRST_BUFFER_BYTES)));
    else if (length + size > buffer.length) {
      const needed = length + size;
      const grown = takeBuffer(needed, Math.min(ceiling, Math.max(buffer.length * 2, needed)));
      buffer.copy(grown, 0, 0, length);
      giveBack(buffer);
      buffer = grown;
    }
    buffer.set(new Uint8Array(chunk), length);
    length += size;
    if (isLast) {
      try {
        onBody(buffer.subarray(0, length));
      } finally {
        giveBack(buffer);
        buffer = undefined;
      }
    }
  });
}
