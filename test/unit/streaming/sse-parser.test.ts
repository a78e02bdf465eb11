import { describe, it, expect } from 'vitest';
import { SseEventTooLargeError, SseParser, type SseEvent } from '../../../src/streaming/sse-parser.js';
import { seededRandom as seeded } from '../../support/seeded-random.js';

type Event = Omit<SseEvent, 'frame'>;

/**
 * Feeds `chunks` (each copied, so no chunk is a view of another) and returns the events seen,
 * without `frame`: whether an event carries its frame depends on where the chunks were cut, and
 * when it does, the frame must be exactly `data: ${data}\n\n` (checked here for every event).
 */
function parse(chunks: Array<string | Uint8Array>, maxEventBytes?: number): Event[] {
  const events: Event[] = [];
  const parser = new SseParser(({ frame, ...event }) => {
    if (frame !== undefined) expect(frame).toBe(`data: ${event.data}\n\n`);
    events.push(event);
  }, maxEventBytes);
  for (const chunk of chunks) parser.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Uint8Array.from(chunk));
  parser.end();
  return events;
}

/** The frames of the events `chunks` parse to (undefined where an event has none). */
function frames(chunks: Array<string | Uint8Array>): Array<string | undefined> {
  const out: Array<string | undefined> = [];
  const parser = new SseParser((event) => out.push(event.frame));
  for (const chunk of chunks) parser.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Uint8Array.from(chunk));
  return out;
}

/** Cuts `bytes` at the sorted offsets `cuts`. */
function split(bytes: Buffer, cuts: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(Uint8Array.from(bytes.subarray(from, cut)));
    from = cut;
  }
  return out;
}

const message = (data: string): Event => ({ event: undefined, data });

describe('SseParser line endings', () => {
  it('splits events on LF', () => {
    expect(parse(['data: a\n\ndata: b\n\n'])).toEqual([message('a'), message('b')]);
  });

  it('splits events on CRLF', () => {
    expect(parse(['data: a\r\n\r\ndata: b\r\n\r\n'])).toEqual([message('a'), message('b')]);
  });

  it('splits events on a lone CR', () => {
    expect(parse(['data: a\r\rdata: b\r\r'])).toEqual([message('a'), message('b')]);
  });

  it('treats a CR ending one chunk and the LF starting the next as one line end', () => {
    expect(parse(['data: a\r', '\ndata: b\r', '\n\r', '\n'])).toEqual([message('a\nb')]);
    expect(parse(['data: a\r', '\n\r', '\ndata: b\r\n\r\n'])).toEqual([message('a'), message('b')]);
  });

  it('treats a CR ending one chunk followed by a CR as two line ends', () => {
    expect(parse(['data: a\r', '\rdata: b\n\n'])).toEqual([message('a'), message('b')]);
  });

  it('keeps a pending CR across an empty chunk', () => {
    expect(parse(['data: a\r', '', '\n\n'])).toEqual([message('a')]);
  });

  it('finds no line end in the kept buffer past its data, where a native search can see old bytes', () => {
    // The remainder is moved to the front of the kept buffer; the bytes after it still hold old line ends.
    expect(parse(['data: 1', '23\n\r\ndata: 4', '5', '6\n\n'])).toEqual([message('123'), message('456')]);
    expect(parse(['data: 1', '23\r\r\ndata: 4', '5\r', '\n\n'])).toEqual([message('123'), message('45')]);
  });

  it('mixes LF, CRLF and CR in one stream', () => {
    expect(parse(['data: 1\ndata: 2\r\ndata: 3\r\rdata: x\r\n\n'])).toEqual([message('1\n2\n3'), message('x')]);
  });
});

describe('SseParser fields', () => {
  it('joins several data lines with \\n', () => {
    expect(parse(['data: one\ndata: two\ndata: three\n\n'])).toEqual([message('one\ntwo\nthree')]);
  });

  it('reads the event field', () => {
    expect(parse(['event: error\ndata: {"x":1}\n\ndata: plain\n\n'])).toEqual([
      { event: 'error', data: '{"x":1}' },
      { event: undefined, data: 'plain' },
    ]);
  });

  it('ignores comments, including an event made only of comments', () => {
    expect(parse([': keep-alive\n\n: OPENROUTER PROCESSING\ndata: a\n: between\n\n'])).toEqual([message('a')]);
  });

  it('reads data without a space after the colon, and strips only one space', () => {
    expect(parse(['data:a\n\ndata:  two spaces\n\n'])).toEqual([message('a'), message(' two spaces')]);
  });

  it('keeps colons inside the value', () => {
    expect(parse(['data: {"a":"b:c"}\n\n'])).toEqual([message('{"a":"b:c"}')]);
  });

  it('treats a field with no colon as the field name with an empty value', () => {
    expect(parse(['data\n\n'])).toEqual([message('')]);
    expect(parse(['data\ndata: x\n\n'])).toEqual([message('\nx')]);
  });

  it('ignores unknown fields, id and retry, and does not dispatch an event without data', () => {
    expect(parse(['id: 7\nretry: 100\nfoo: bar\nnocolon\n\nevent: ping\n\ndata: x\n\n'])).toEqual([message('x')]);
  });

  it('does not carry an event type over to the next event', () => {
    expect(parse(['event: ping\n\ndata: x\n\n'])).toEqual([message('x')]);
  });

  it('delivers many events from one chunk, in order', () => {
    const text = Array.from({ length: 500 }, (_, i) => `data: ${i}\n\n`).join('');
    expect(parse([text]).map((e) => e.data)).toEqual(Array.from({ length: 500 }, (_, i) => String(i)));
  });

  it('drops an unterminated last event at end()', () => {
    expect(parse(['data: a\n\ndata: b\n'])).toEqual([message('a')]);
    expect(parse(['data: a\n\ndata: partial'])).toEqual([message('a')]);
  });

  it('does not keep a view of the caller chunk (regression: pending bytes reused by the caller)', () => {
    const events: SseEvent[] = [];
    const parser = new SseParser((event) => events.push(event));
    const chunk = Buffer.from('data: hello');
    parser.push(chunk);
    chunk.fill(0x78); // the caller reuses its buffer
    parser.push(Buffer.from(' world\n\n'));
    expect(events).toEqual([{ ...message('hello world'), frame: 'data: hello world\n\n' }]);
  });

  it('reads a Uint8Array view with a non-zero byteOffset', () => {
    const backing = Buffer.from('XXXXdata: view\n\nYYYY');
    const events: SseEvent[] = [];
    const parser = new SseParser((event) => events.push(event));
    parser.push(new Uint8Array(backing.buffer, backing.byteOffset + 4, backing.length - 8));
    expect(events).toEqual([{ ...message('view'), frame: 'data: view\n\n' }]);
  });
});

describe('SseParser UTF-8 at every byte boundary', () => {
  const fixture = Buffer.from(
    [
      'event: message\r\ndata: {"content":"héllo"}\r\n\r\n',
      ': keep-alive\n\n',
      'data: 日本\ndata: 語 🎉\n\n',
      'data: 🎉🎉é\r\r',
      'data: [DONE]\n\n',
    ].join(''),
    'utf8',
  );
  const expected: Event[] = [
    { event: 'message', data: '{"content":"héllo"}' },
    message('日本\n語 🎉'),
    message('🎉🎉é'),
    message('[DONE]'),
  ];

  it('parses the whole fixture', () => {
    expect(parse([fixture])).toEqual(expected);
  });

  it('gives identical events for every two-chunk split', () => {
    for (let k = 0; k <= fixture.length; k++) expect(parse(split(fixture, [k])), `split at byte ${k}`).toEqual(expected);
  });

  it('gives identical events fed one byte at a time', () => {
    const cuts = Array.from({ length: fixture.length - 1 }, (_, i) => i + 1);
    expect(parse(split(fixture, cuts))).toEqual(expected);
  });

  it('gives identical events for random multi-splits', () => {
    const next = seeded(0x55e);
    for (let i = 0; i < 300; i++) {
      const cuts = Array.from({ length: 1 + Math.floor(next() * 10) }, () => Math.floor(next() * fixture.length)).sort((a, b) => a - b);
      expect(parse(split(fixture, cuts)), `cuts ${cuts.join(',')}`).toEqual(expected);
    }
  });
});

describe('SseParser max event size', () => {
  const max = 1000;

  it('throws SseEventTooLargeError for one large event within one chunk', () => {
    const big = `data: ${'x'.repeat(2000)}\n\n`;
    expect(() => parse([big], max)).toThrow(SseEventTooLargeError);
    try {
      parse([big], max);
    } catch (err) {
      expect((err as SseEventTooLargeError).maxEventBytes).toBe(max);
    }
  });

  it('throws for an unterminated line larger than the max within one chunk', () => {
    const parser = new SseParser(() => {}, max);
    expect(() => parser.push(Buffer.from(`data: ${'x'.repeat(2000)}`))).toThrow(SseEventTooLargeError);
  });

  it('throws for one long line accumulated across chunks, before the line ends', () => {
    const parser = new SseParser(() => {}, max);
    parser.push(Buffer.from('data: '));
    let thrown: unknown;
    let fed = 6;
    for (let i = 0; i < 100 && thrown === undefined; i++) {
      try {
        parser.push(Buffer.from('y'.repeat(100)));
        fed += 100;
      } catch (err) {
        thrown = err;
      }
    }
    expect(thrown).toBeInstanceOf(SseEventTooLargeError);
    expect(fed).toBeLessThanOrEqual(max + 100);
  });

  it('throws for one event of many small lines accumulated across chunks', () => {
    const parser = new SseParser(() => {}, max);
    expect(() => {
      for (let i = 0; i < 200; i++) parser.push(Buffer.from('data: 0123456789\n'));
    }).toThrow(SseEventTooLargeError);
  });

  it('accepts many small events totalling far more than the max', () => {
    const events: SseEvent[] = [];
    const parser = new SseParser((e) => events.push(e), max);
    const frame = Buffer.from(`data: ${'z'.repeat(500)}\n\n`);
    for (let i = 0; i < 1000; i++) parser.push(frame);
    parser.end();
    expect(events).toHaveLength(1000);
    expect(events.every((e) => e.data.length === 500)).toBe(true);
  });

  it('accepts an event of exactly the max size', () => {
    // `data: ` + payload + LF counts as the line's bytes.
    const payload = 'q'.repeat(max - 7);
    expect(parse([`data: ${payload}\n\n`], max)).toEqual([message(payload)]);
    expect(() => parse([`data: ${payload}q\n\n`], max)).toThrow(SseEventTooLargeError);
  });
});

describe('SseParser over a long stream', () => {
  it('keeps its pending buffer bounded over 10,000 small events split at odd boundaries', () => {
    const stream = Buffer.from(
      Array.from({ length: 10_000 }, (_, i) => `data: {"i":${i},"t":"é日🎉 ${'p'.repeat(i % 50)}"}\n\n`).join(''),
      'utf8',
    );
    expect(stream.length).toBeGreaterThan(500_000);
    const received: number[] = [];
    const parser = new SseParser((e) => received.push((JSON.parse(e.data) as { i: number }).i), 4096);
    const internals = parser as unknown as { pending: Buffer; pendingLength: number };
    const sizes = [1, 7, 13, 61, 127, 509, 3];
    let largestPending = 0;
    let from = 0;
    for (let s = 0; from < stream.length; s++) {
      const to = Math.min(stream.length, from + sizes[s % sizes.length]!);
      parser.push(Uint8Array.from(stream.subarray(from, to)));
      from = to;
      largestPending = Math.max(largestPending, internals.pending.length);
      expect(internals.pendingLength).toBeLessThan(4096);
    }
    parser.end();
    expect(received).toHaveLength(10_000);
    expect(received.every((v, i) => v === i)).toBe(true);
    expect(largestPending).toBeLessThanOrEqual(64 * 1024);
  });
});

describe('SseParser frames', () => {
  it('hands over an event that came as `data: <one line>\\n\\n` in one piece as that frame, and no other', () => {
    expect(frames(['data: {"a":1}\n\ndata: é\n\n'])).toEqual(['data: {"a":1}\n\n', 'data: é\n\n']);
    // Cut before the blank line, CRLF, no space after the colon, two data lines, other fields, a comment first.
    expect(frames(['data: a\n', '\n'])).toEqual([undefined]);
    expect(frames(['data: a\r\n\r\n', 'data:a\n\n', 'data: a\ndata: b\n\n', 'event: x\ndata: a\n\n', 'data: a\nid: 1\n\n', ': hi\ndata: a\n\n'])).toEqual([
      undefined, undefined, undefined, undefined, undefined, undefined,
    ]);
  });
});
