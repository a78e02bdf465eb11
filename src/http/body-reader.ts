// Reads a request body with a size limit. The declared Content-Length is checked before a byte is
// read; the common single-chunk body is handed over as a view (valid only during the callback),
// larger ones are copied into one buffer that grows with what arrived (a declared length is a
// ceiling, never an allocation: a client that declares 4 MiB and sends one byte costs one chunk).
import { GatewayError } from '../errors/gateway-error.js';
import type { HttpResponse } from './server-api.js';

/** The first buffer of a body that arrives in pieces; it doubles from there, up to the declared length. */
const FIRST_BUFFER_BYTES = 16 * 1024;

export type BodyCallback = (body: Buffer) => void;
export type BodyErrorCallback = (err: GatewayError) => void;

/** Must be called synchronously in the route handler, after res.onAborted was attached. */
export function readBody(res: HttpResponse, contentLengthHeader: string, maxBytes: number, onBody: BodyCallback, onError: BodyErrorCallback): void {
  let declared = -1;
  if (contentLengthHeader !== '') {
    declared = Number(contentLengthHeader);
    if (!Number.isSafeInteger(declared) || declared < 0) {
      onError(new GatewayError('NR_INVALID_REQUEST', 'Invalid Content-Length header.'));
      return;
    }
    if (declared > maxBytes) {
      onError(new GatewayError('NR_BODY_TOO_LARGE', `The request body exceeds ${maxBytes} bytes.`));
      return;
    }
  }
  let buffer: Buffer | undefined;
  let length = 0;
  let failed = false;
  res.onData((chunk, isLast) => {
    if (failed) return;
    const size = chunk.byteLength;
    if (length + size > maxBytes || (declared >= 0 && length + size > declared)) {
      failed = true;
      onError(new GatewayError('NR_BODY_TOO_LARGE', `The request body exceeds ${declared >= 0 ? declared : maxBytes} bytes.`));
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
