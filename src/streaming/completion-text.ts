// The text a stream generated (content and tool-call arguments), kept as UTF-8 bytes in one
// growable buffer so that a stream whose usage never arrives (a client disconnect, a provider
// without usage) can be charged for an exact token count. Pieces are copied, so no frame string
// stays alive because of them; the OpenAI translator keeps the JSON-escaped form (no parse per
// chunk) and unescapes once, at the end.

const INITIAL_BYTES = 1024;
/** Past this a stream's text is not kept; its charge falls back to the per-chunk estimate. */
const MAX_BYTES = 8 * 1024 * 1024;
const CONTENT_KEY = '"content":"';
const ARGUMENTS_KEY = '"arguments":"';

export class CompletionText {
  private buffer = Buffer.allocUnsafe(0);
  private length = 0;
  private overflowed = false;

  /** `escaped`: pieces are JSON string bodies (between the quotes, escapes kept). */
  constructor(private readonly escaped: boolean) {}

  append(piece: string): void {
    if (this.overflowed || piece.length === 0) return;
    const most = Buffer.byteLength(piece);
    if (this.length + most > MAX_BYTES) {
      this.overflowed = true;
      return;
    }
    if (this.length + most > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(INITIAL_BYTES, this.buffer.length * 2, this.length + most));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    this.length += this.buffer.write(piece, this.length);
  }

  /**
   * Appends the string values of every `"content"` and `"arguments"` key of one OpenAI chunk's
   * JSON, without parsing it. Inside JSON strings quotes are escaped, so an unescaped `"content":"`
   * can only be a key.
   */
  appendFromChunk(json: string): void {
    this.appendValuesOf(json, CONTENT_KEY);
    this.appendValuesOf(json, ARGUMENTS_KEY);
  }

  /** The text, or undefined when it grew past the limit (the caller estimates instead). */
  text(): string | undefined {
    if (this.overflowed) return undefined;
    const raw = this.buffer.toString('utf8', 0, this.length);
    if (!this.escaped) return raw;
    try {
      return JSON.parse(`"${raw}"`) as string;
    } catch {
      return undefined;
    }
  }

  private appendValuesOf(json: string, key: string): void {
    let at = json.indexOf(key);
    while (at !== -1) {
      const start = at + key.length;
      const end = closingQuote(json, start);
      if (end === -1) return;
      this.append(json.slice(start, end));
      at = json.indexOf(key, end + 1);
    }
  }
}

/** Index of the quote that ends the JSON string starting at `from`, or -1. */
function closingQuote(json: string, from: number): number {
  for (let i = from; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 0x5c) i++; // a backslash escapes the next character
    else if (c === 0x22) return i;
  }
  return -1;
}
