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
      onError(new GatewayError('NR_BODY_TOO_LARGE', `The request body exceeds ${declared >= 0 ? declared : maxBytes} bytes.`), true);
      return;
    }
    if (buffer === undefined && isLast) {
      onBody(Buffer.from(chunk));
      return;
    }
    const ceiling = declared >= 0 ? declared : maxBytes;
    if (buffer === undefined) buffer = Buffer.allocUnsafe(Math.min(ceiling, Math.max(size * 4, FIRST_BUFFER_BYTES)));
    else if (length + size > buffer.length) {
      const grown = Buffer.allocUnsafe(Math.min(ceiling, Math.max(buffer.length * 2, length + size)));
      buffer.copy(grown, 0, 0, length);
      buffer = grown;
    }
    buffer.set(new Uint8Array(chunk), length);
    length += size;
    if (isLast) onBody(buffer.subarray(0, length));
  });
}
