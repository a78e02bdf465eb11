// Raw HTTP/1.1 over node:net for tests that must send what no HTTP client would: smuggling forms,
// trickled headers and bodies, oversized header blocks. Everything is bounded by a deadline.
import { connect, type Socket } from 'node:net';

export interface RawOutcome {
  /** Every byte the server sent, as latin1 (byte-exact). */
  readonly data: string;
  /** The server closed (or reset) the connection before the deadline. */
  readonly closedByServer: boolean;
  /** Milliseconds from connect to close (or to the deadline). */
  readonly elapsedMs: number;
  readonly responses: RawResponse[];
}

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

export interface RawOptions {
  /** Give up (and destroy the socket) after this long. */
  readonly deadlineMs?: number;
  /** Pieces written one after another, `gapMs` apart; the first right after connect. */
  readonly gapMs?: number;
  /** Stop waiting as soon as this many complete responses arrived. */
  readonly stopAfterResponses?: number;
}

/** Sends `pieces` on a fresh connection and collects what comes back until the server closes or the deadline. */
export function rawExchange(port: number, pieces: string | Buffer | Array<string | Buffer>, options: RawOptions = {}): Promise<RawOutcome> {
  const { deadlineMs = 3000, gapMs = 0, stopAfterResponses } = options;
  const list = Array.isArray(pieces) ? pieces : [pieces];
  return new Promise((resolve) => {
    const startedAt = Date.now();
    const socket = connect(port, '127.0.0.1');
    let data = '';
    let done = false;
    let writer: NodeJS.Timeout | undefined;
    const finish = (closedByServer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      clearTimeout(writer);
      socket.destroy();
      resolve({ data, closedByServer, elapsedMs: Date.now() - startedAt, responses: parseResponses(data) });
    };
    const deadline = setTimeout(() => finish(false), deadlineMs);
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      if (stopAfterResponses !== undefined && parseResponses(data).length >= stopAfterResponses) finish(false);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true));
    let next = 0;
    const writeNext = () => {
      if (done || socket.destroyed || next >= list.length) return;
      socket.write(list[next++]!);
      if (next < list.length) writer = setTimeout(writeNext, gapMs);
    };
    socket.once('connect', writeNext);
  });
}

/** Splits a byte stream of HTTP/1.1 responses (Content-Length or chunked bodies); stops at the first incomplete one. */
export function parseResponses(data: string): RawResponse[] {
  const out: RawResponse[] = [];
  let at = 0;
  while (at < data.length) {
    const headEnd = data.indexOf('\r\n\r\n', at);
    if (headEnd === -1) break;
    const [statusLine, ...lines] = data.slice(at, headEnd).split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1]);
    if (!Number.isInteger(status)) break;
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    let bodyStart = headEnd + 4;
    let body = '';
    if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
      let complete = false;
      while (true) {
        const sizeEnd = data.indexOf('\r\n', bodyStart);
        if (sizeEnd === -1) break;
        const size = parseInt(data.slice(bodyStart, sizeEnd), 16);
        if (!Number.isInteger(size) || data.length < sizeEnd + 2 + size + 2) break;
        body += data.slice(sizeEnd + 2, sizeEnd + 2 + size);
        bodyStart = sizeEnd + 2 + size + 2;
        if (size === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) break;
    } else {
      const length = Number(headers['content-length'] ?? 0);
      if (data.length < bodyStart + length) break;
      body = data.slice(bodyStart, bodyStart + length);
      bodyStart += length;
    }
    out.push({ status, headers, body });
    at = bodyStart;
  }
  return out;
}

/** A connection that stays open: for holding many idle sockets or a paused reader. */
export function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Whether something accepts connections on 127.0.0.1:port. */
export function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
