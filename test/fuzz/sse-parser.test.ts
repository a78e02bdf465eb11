// Property-based fuzzing of the byte-level SSE parser (src/streaming/sse-parser.ts): any stream
// cut at any byte boundaries parses exactly as the WHATWG event-stream algorithm reads the whole
// text; garbage never throws anything but the size error, and parses the same however it is cut;
// events over maxEventBytes are refused whatever the chunking, with the parser's buffer bounded.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SseEventTooLargeError, SseParser, type SseEvent } from '../../src/streaming/sse-parser.js';
import { fuzzParams, fuzzTimeoutMs } from '../support/fuzz.js';

/** The WHATWG "interpret an event stream" algorithm over the whole stream at once, as a reference. */
function referenceParse(bytes: Uint8Array): SseEvent[] {
  // UTF-8 decode strips one leading BOM, as the spec's decoding does.
  const text = new TextDecoder('utf-8').decode(bytes);
  const lines = text.split(/\r\n|\r|\n/);
  lines.pop(); // after the last line end: an incomplete line, dropped at the end of the stream
  const events: SseEvent[] = [];
  let data = '';
  let type = '';
  for (const line of lines) {
    if (line === '') {
      if (data !== '') events.push({ event: type === '' ? undefined : type, data: data.slice(0, -1) });
      data = '';
      type = '';
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data += `${value}\n`;
    else if (field === 'event') type = value;
  }
  return events;
}

interface Outcome {
  events: SseEvent[];
  error: string | undefined;
}

/** Runs the parser over `bytes` cut at `cuts`; checks after every push that its buffer stays bounded. */
function parseInChunks(bytes: Uint8Array, cuts: readonly number[], maxEventBytes?: number): Outcome {
  const events: SseEvent[] = [];
  const parser = new SseParser((event) => events.push({ event: event.event === '' ? undefined : event.event, data: event.data }), maxEventBytes);
  const bound = maxEventBytes ?? 1024 * 1024;
  const points = [...new Set(cuts.map((c) => Math.min(c, bytes.length)))].sort((a, b) => a - b);
  let from = 0;
  try {
    for (const to of [...points, bytes.length]) {
      // A copy: the parser must not rely on a chunk staying valid after push returns.
      parser.push(Uint8Array.from(bytes.subarray(from, to)));
      from = to;
      const pending = (parser as unknown as { pendingLength: number }).pendingLength;
      if (pending > bound) throw new Error(`pending ${pending} bytes exceeds maxEventBytes ${bound}`);
    }
    parser.end();
    return { events, error: undefined };
  } catch (err) {
    if (err instanceof SseEventTooLargeError) return { events, error: err.name };
    throw err;
  }
}

// Field values never hold a line end; everything else goes, astral characters and NUL included.
const value = fc.string({ unit: 'binary', maxLength: 40 }).map((s) => Buffer.from(s.replace(/[\r\n]/g, ' ')).toString());
const line = fc.oneof(
  value.map((v) => `data: ${v}`),
  value.map((v) => `data:${v}`),
  fc.constant('data'),
  fc.constant('data:'),
  value.map((v) => `event: ${v}`),
  fc.constant('event:'),
  value.map((v) => `id: ${v}`),
  fc.constant('retry: 1000'),
  value.map((v) => `: ${v}`),
  value.map((v) => `${v}: field`),
  value,
  fc.constant(''),
  fc.constant(''),
);
const lineEnd = fc.constantFrom('\n', '\r', '\r\n');
const stream = fc
  .record({ bom: fc.boolean(), lines: fc.array(fc.tuple(line, lineEnd), { maxLength: 40 }), tail: fc.option(line, { nil: undefined }) })
  .map(({ bom, lines, tail }) => Buffer.from(`${bom ? '\uFEFF' : ''}${lines.map(([l, e]) => l + e).join('')}${tail ?? ''}`));
const cuts = (maxLength: number) => fc.array(fc.nat({ max: maxLength }), { maxLength: 30 });

describe('SseParser under fuzzing', () => {
  it('parses any well-formed stream, cut anywhere, exactly as the WHATWG algorithm reads it whole', () => {
    fc.assert(
      fc.property(stream, cuts(4000), (bytes, at) => {
        expect(parseInChunks(bytes, at)).toEqual({ events: referenceParse(bytes), error: undefined });
      }),
      fuzzParams(10),
    );
  }, fuzzTimeoutMs(10, 5));

  it('parses one-byte chunks exactly as one chunk', () => {
    fc.assert(
      fc.property(stream, (bytes) => {
        const everyByte = Array.from({ length: bytes.length }, (_, i) => i);
        expect(parseInChunks(bytes, everyByte)).toEqual(parseInChunks(bytes, []));
      }),
      fuzzParams(5),
    );
  }, fuzzTimeoutMs(5, 5));

  it('takes garbage (random bytes, and streams with bytes flipped) without throwing anything but the size error, the same however it is cut', () => {
    const flipped = fc
      .tuple(stream, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 10 }))
      .map(([bytes, flips]) => {
        const out = Buffer.from(bytes);
        for (const [at, byte] of flips) if (out.length > 0) out[at % out.length] = byte;
        return out;
      });
    const garbage = fc.oneof(fc.uint8Array({ maxLength: 2000 }), flipped);
    fc.assert(
      fc.property(garbage, cuts(2000), fc.integer({ min: 8, max: 300 }), (bytes, at, maxEventBytes) => {
        expect(parseInChunks(bytes, at, maxEventBytes)).toEqual(parseInChunks(bytes, [], maxEventBytes));
      }),
      fuzzParams(10),
    );
  }, fuzzTimeoutMs(10, 5));

  it('refuses an event over maxEventBytes however it is cut, delivers one within it, and never holds more than the bound', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 16, max: 4096 }),
        fc.integer({ min: -8, max: 8 }),
        fc.constantFrom('\n', '\r\n'),
        cuts(5000),
        (maxEventBytes, delta, end, at) => {
          // The event's size is its lines with their terminators: `data: ` + payload + end, then the blank line.
          const payload = 'x'.repeat(Math.max(0, maxEventBytes - 'data: '.length - 1 + delta));
          const bytes = Buffer.from(`data: before${end}${end}data: ${payload}${end}${end}data: after${end}${end}`);
          const outcome = parseInChunks(bytes, at, maxEventBytes);
          if (delta > 0) expect(outcome).toEqual({ events: [{ event: undefined, data: 'before' }], error: 'SseEventTooLargeError' });
          else expect(outcome.events.map((e) => e.data)).toEqual(['before', payload, 'after']);
        },
      ),
      fuzzParams(5),
    );
  }, fuzzTimeoutMs(5, 5));

  // Regression: the parser rescanned its whole kept remainder on every push, so one event of the
  // gateway's maximum size (4 MiB) arriving in 1 KiB reads cost ~20 s of main-thread CPU
  // (quadratic); resuming the scan where it stopped makes it ~30 ms. The timeout is the bound.
  it('parses a 4 MiB event arriving in 1 KiB chunks in linear time', () => {
    const size = 4 * 1024 * 1024;
    const bytes = Buffer.alloc(size + 2, 0x61);
    bytes.write('data: ');
    bytes.write('\n\n', size);
    const events: SseEvent[] = [];
    const parser = new SseParser((event) => events.push(event), size + 1);
    for (let i = 0; i < bytes.length; i += 1024) parser.push(bytes.subarray(i, i + 1024));
    expect(events.map((e) => e.data.length)).toEqual([size - 'data: '.length]);
  }, 5_000);
});
