// Byte-level Server-Sent Events parser (WHATWG rules) for upstream streams.
// One growable buffer with offsets: chunks are scanned in place and only an incomplete
// trailing line is copied. Lines end at ASCII CR/LF, so a UTF-8 character split across
// chunks is always decoded whole. An event larger than maxEventBytes is an error.

export interface SseEvent {
  /** The `event:` field, or undefined for the default "message" type. */
  event: string | undefined;
  data: string;
  /**
   * The event exactly as `data: ${data}\n\n` when it came that way (one data line, LF endings,
   * nothing else): decoded once with its framing, so a translator passing it on builds no string
   * (`data` is a slice of it).
   */
  frame?: string | undefined;
}

export class SseEventTooLargeError extends Error {
  constructor(readonly maxEventBytes: number) {
    super(`upstream SSE event exceeds ${maxEventBytes} bytes`);
    this.name = 'SseEventTooLargeError';
  }
}

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;

export class SseParser {
  private pending: Buffer = Buffer.allocUnsafe(0);
  private pendingLength = 0;
  private eventType: string | undefined = undefined;
  private data: string | undefined = undefined;
  private frame: string | undefined = undefined;
  private eventBytes = 0;
  /** A CR ended the previous chunk: a LF starting the next one belongs to it. */
  private skipLeadingLf = false;
  /** The next line is the stream's first: a UTF-8 BOM before it is not part of it. */
  private firstLine = true;

  constructor(
    private readonly onEvent: (event: SseEvent) => void,
    private readonly maxEventBytes = 1024 * 1024,
  ) {}

  push(chunk: Uint8Array): void {
    let input: Buffer;
    let offset = 0;
    // The kept remainder holds no line end: scanning resumes after it, so an event arriving in
    // many small chunks costs linear time, not quadratic.
    let scanFrom = 0;
    if (this.pendingLength > 0) {
      scanFrom = this.pendingLength;
      input = this.append(chunk);
    } else {
      input = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
    const length = this.pendingLength > 0 ? this.pendingLength : input.length;
    if (this.skipLeadingLf && length > 0) {
      if (input[0] === LF) offset = 1;
      this.skipLeadingLf = false;
    }
    // The next CR at or after the scan (`length`: none), searched once per chunk rather than per line.
    let nextCr = -1;
    while (offset < length) {
      const from = Math.max(offset, scanFrom);
      let lineEnd: number;
      const first = input[from];
      if (first === LF || first === CR) {
        lineEnd = from; // the blank line that ends an event
      } else {
        if (nextCr < from) nextCr = indexIn(input, CR, from, length);
        const lf = indexIn(input, LF, from, length);
        lineEnd = lf < nextCr ? lf : nextCr;
      }
      if (lineEnd >= length) break;
      this.line(input, offset, lineEnd, length);
      if (input[lineEnd] === CR) {
        if (lineEnd + 1 < length) offset = input[lineEnd + 1] === LF ? lineEnd + 2 : lineEnd + 1;
        else {
          offset = lineEnd + 1;
          this.skipLeadingLf = true;
        }
      } else {
        offset = lineEnd + 1;
      }
    }
    this.keepRemainder(input, offset, length);
  }

  /** Upstream ended: an unterminated last event is dropped, as the SSE spec says. */
  end(): void {
    this.pendingLength = 0;
    this.resetEvent();
  }

  private append(chunk: Uint8Array): Buffer {
    const needed = this.pendingLength + chunk.byteLength;
    if (needed > this.pending.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, this.pending.length * 2, 4096));
      this.pending.copy(grown, 0, 0, this.pendingLength);
      this.pending = grown;
    }
    this.pending.set(chunk, this.pendingLength);
    this.pendingLength = needed;
    return this.pending;
  }

  private keepRemainder(input: Buffer, offset: number, length: number): void {
    const rest = length - offset;
    if (rest > this.maxEventBytes) throw new SseEventTooLargeError(this.maxEventBytes);
    if (input === this.pending) {
      if (rest > 0 && offset > 0) this.pending.copyWithin(0, offset, length);
      this.pendingLength = rest;
      return;
    }
    this.pendingLength = 0;
    if (rest > 0) this.append(input.subarray(offset, length));
  }

  /** One line, `buf[start, end)`; the buffer holds bytes up to `limit`. */
  private line(buf: Buffer, start: number, end: number, limit: number): void {
    if (this.firstLine) {
      this.firstLine = false;
      if (end - start >= 3 && buf[start] === 0xef && buf[start + 1] === 0xbb && buf[start + 2] === 0xbf) start += 3;
    }
    if (start === end) {
      this.dispatch();
      return;
    }
    this.eventBytes += end - start + 1;
    if (this.eventBytes > this.maxEventBytes) throw new SseEventTooLargeError(this.maxEventBytes);
    if (buf[start] === COLON) return; // comment, e.g. OpenRouter's ": OPENROUTER PROCESSING"
    let colon = start;
    while (colon < end && buf[colon] !== COLON) colon++;
    let fieldEnd = end;
    let valueStart = end;
    if (colon < end) {
      fieldEnd = colon;
      valueStart = colon + 1;
      if (valueStart < end && buf[valueStart] === SPACE) valueStart++;
    }
    const fieldLength = fieldEnd - start;
    if (fieldLength === 4 && asciiEquals(buf, start, 'data')) {
      // The event's first line, `data: ` and LF, and the blank line right behind: the whole frame
      // is here, decoded with its framing (all ASCII around the value: the same text).
      if (this.eventBytes === end - start + 1 && valueStart === start + 6 && buf[end] === LF && end + 1 < limit && buf[end + 1] === LF) {
        const frame = buf.toString('utf8', start, end + 2);
        this.frame = frame;
        this.data = frame.slice(6, frame.length - 2);
        return;
      }
      const value = buf.toString('utf8', valueStart, end);
      this.frame = undefined;
      this.data = this.data === undefined ? value : `${this.data}\n${value}`;
    } else if (fieldLength === 5 && asciiEquals(buf, start, 'event')) {
      this.frame = undefined;
      this.eventType = buf.toString('utf8', valueStart, end);
    }
    // `id` and `retry` carry nothing a chat stream needs.
  }

  private dispatch(): void {
    if (this.data !== undefined) {
      const event: SseEvent = { event: this.eventType, data: this.data, frame: this.frame };
      this.resetEvent();
      this.onEvent(event);
      return;
    }
    this.resetEvent();
  }

  private resetEvent(): void {
    this.eventType = undefined;
    this.data = undefined;
    this.frame = undefined;
    this.eventBytes = 0;
  }
}

/** The first `byte` in buf[from, to), or `to`: a native search (memchr), not a loop over the line. */
function indexIn(buf: Buffer, byte: number, from: number, to: number): number {
  const at = buf.indexOf(byte, from);
  return at === -1 || at >= to ? to : at;
}

function asciiEquals(buf: Buffer, at: number, word: string): boolean {
  for (let i = 0; i < word.length; i++) if (buf[at + i] !== word.charCodeAt(i)) return false;
  return true;
}
