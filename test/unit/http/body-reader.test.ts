import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../src/errors/gateway-error.js';
import { MAX_DISCARDED_BYTES, readBody, spareBodyBufferBytes } from '../../../src/http/body-reader.js';
import type { HttpResponse } from '../../../src/http/server-api.js';

const LIMIT = 1024;

/** Only onData is used by the reader; `send` plays the server delivering body chunks. */
class FakeResponse {
  handler: ((chunk: ArrayBuffer, isLast: boolean) => void) | undefined;

  onData(handler: (chunk: ArrayBuffer, isLast: boolean) => void): this {
    this.handler = handler;
    return this;
  }

  send(bytes: number, isLast = false): void {
    this.handler!(new Uint8Array(bytes).fill(0x20).buffer, isLast);
  }
}

function read(contentLength: string, connection = '') {
  const res = new FakeResponse();
  const bodies: Buffer[] = [];
  const errors: Array<{ err: GatewayError; cutConnection: boolean }> = [];
  readBody(res as unknown as HttpResponse, { contentLength, connection }, LIMIT, (body) => bodies.push(Buffer.from(body)), (err, cutConnection) => errors.push({ err, cutConnection }));
  return { res, bodies, errors };
}

describe('readBody', () => {
  it('hands over a body within the limit, in one piece or several', () => {
    const one = read('10');
    one.res.send(10, true);
    expect(one.bodies.map((b) => b.length)).toEqual([10]);
    const several = read('');
    several.res.send(600);
    several.res.send(424);
    several.res.send(0, true);
    expect(several.bodies.map((b) => b.length)).toEqual([LIMIT]);
    expect([...one.errors, ...several.errors]).toEqual([]);
  });

  it('refuses an invalid Content-Length and cuts the connection', () => {
    const { res, errors } = read('-1');
    expect(errors).toEqual([{ err: expect.objectContaining({ code: 'NR_INVALID_REQUEST' }), cutConnection: true }]);
    expect(res.handler).toBeUndefined();
  });

  it('refuses a declared length over the limit before reading, and has the rest discarded when within the bound', () => {
    for (const declared of [LIMIT + 1, LIMIT + MAX_DISCARDED_BYTES]) {
      const { res, errors } = read(String(declared));
      expect(errors).toHaveLength(1);
      expect(errors[0]!.err.code).toBe('NR_BODY_TOO_LARGE');
      expect(errors[0]!.err.headers).toEqual({ connection: 'close' });
      expect(errors[0]!.cutConnection).toBe(false);
      // Nothing of it is read (or held) by the reader: the server discards it.
      expect(res.handler).toBeUndefined();
    }
  });

  it('answers a request that said connection: close only once its declared body was read and discarded', () => {
    const { res, bodies, errors } = read(String(3 * LIMIT), 'Close');
    res.send(LIMIT);
    res.send(LIMIT);
    expect(errors).toEqual([]);
    res.send(LIMIT, true);
    expect(bodies).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.err.code).toBe('NR_BODY_TOO_LARGE');
    expect(errors[0]!.cutConnection).toBe(true);
  });

  it('cuts the connection for a declared length past the discard bound', () => {
    const { res, errors } = read(String(LIMIT + MAX_DISCARDED_BYTES + 1));
    expect(errors).toHaveLength(1);
    expect(errors[0]!.err.code).toBe('NR_BODY_TOO_LARGE');
    expect(errors[0]!.err.headers).toBeUndefined();
    expect(errors[0]!.cutConnection).toBe(true);
    expect(res.handler).toBeUndefined();
  });

  it('cuts the connection once for a body without a declared length that runs over the limit, and ignores the rest', () => {
    const { res, bodies, errors } = read('');
    res.send(LIMIT);
    res.send(1);
    res.send(LIMIT);
    res.send(0, true);
    expect(bodies).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.err.code).toBe('NR_BODY_TOO_LARGE');
    expect(errors[0]!.cutConnection).toBe(true);
  });

  it('reuses the buffers of large bodies, and interleaved bodies never see each other\'s bytes', () => {
    const limit = 4 * 1024 * 1024;
    const chunk = (fill: number, bytes: number) => new Uint8Array(bytes).fill(fill).buffer;
    let spare = -1;
    for (let round = 0; round < 3; round++) {
      // Two bodies arriving at once, in pieces, with different bytes; the second is shorter.
      const got: Array<Buffer> = [];
      const handlers: Array<(chunk: ArrayBuffer, isLast: boolean) => void> = [];
      for (const size of [300_000, 200_000]) {
        const res = { onData: (h: (chunk: ArrayBuffer, isLast: boolean) => void) => handlers.push(h) };
        readBody(res as unknown as HttpResponse, { contentLength: String(size), connection: '' }, limit, (body) => got.push(Buffer.from(body)), () => expect.fail('no error'));
      }
      handlers[0]!(chunk(0x61, 100_000), false);
      handlers[1]!(chunk(0x62, 100_000), false);
      handlers[0]!(chunk(0x61, 200_000), true);
      handlers[1]!(chunk(0x62, 100_000), true);
      expect(got.map((b) => [b.length, b.every((x) => x === b[0]), String.fromCharCode(b[0]!)])).toEqual([[300_000, true, 'a'], [200_000, true, 'b']]);
      // Both buffers are kept for the next bodies, and only those: the spare bytes do not grow.
      if (round === 0) spare = spareBodyBufferBytes();
      expect(spareBodyBufferBytes()).toBe(spare);
      expect(spare).toBeGreaterThanOrEqual(500_000);
    }
  });
});
