// The text a stream generated (content, reasoning text and tool-call arguments), kept as UTF-8 bytes in one
// growable buffer so that a stream whose usage never arrives (a client disconnect, a provider
// without usage) can be charged for an exact token count. Pieces are copied, so no frame string
// stays alive because of them; the OpenAI translator keeps the JSON-escaped form (no parse per
// chunk) and unescapes once, at the end.

const INITIAL_BYTES = 1024;
/** Past this a stream's text is not kept; its charge falls back to the per-chunk estimate. */
const MAX_BYTES = 8 * 1024 * 1024;
// Each key is searched from its fourth character on: a pattern starting with a quote, JSON's most
// common character, is several times slower to find. The first three are checked where it matched.
const CONTENT_HEAD = '"co';
const CONTENT_TAIL = 'ntent":"';
// `reasoning_content` (DeepSeek, vLLM, OpenRouter, the mock): generated tokens too, charged like content.
const REASONING_HEAD = '"reasoning_co';
const ARGUMENTS_HEAD = '"ar';
const ARGUMENTS_TAIL = 'guments":"';

export class CompletionText {
  private buffer = Buffer.allocUnsafe(0);
  private length = 0;
  private overflowed = false;

  /** `escaped`: pieces are JSON string bodies (between the quotes, escapes kept). */
  constructor(private readonly escaped: boolean) {}

  append(piece: string): void {
    if (this.overflowed || piece.length === 0) return;
    // A UTF-16 unit is at most 3 UTF-8 bytes: the exact length is counted only near the limit.
    let most = piece.length * 3;
    if (this.length + most > MAX_BYTES) {
      most = Buffer.byteLength(piece);
      if (this.length + most > MAX_BYTES) {
        this.overflowed = true;
        return;
      }
    }
    if (this.length + most > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(INITIAL_BYTES, this.buffer.length * 2, this.length + most));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    this.length += this.buffer.write(piece, this.length);
  }

  /**
   * Appends the string values of every `"content"`, `"reasoning_content"` and `"arguments"` key of
   * one OpenAI chunk's JSON, without parsing it. Inside JSON strings quotes are escaped, so an
   * unescaped `"content":"` can only be a key. Returns how many non-empty values it found.
   */
  appendFromChunk(json: string): number {
    return this.appendValuesOf(json, CONTENT_HEAD, CONTENT_TAIL, REASONING_HEAD) + this.appendValuesOf(json, ARGUMENTS_HEAD, ARGUMENTS_TAIL);
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

  /** The values of the key `head + tail` (and of `otherHead + tail`, which shares the tail); returns how many were not empty. */
  private appendValuesOf(json: string, head: string, tail: string, otherHead?: string): number {
    let found = 0;
    // Past the end of the last value (its closing quote cannot open the next key).
    let from = 0;
    let at = json.indexOf(tail);
    while (at !== -1) {
      if (isKeyAt(json, head, at, from) || (otherHead !== undefined && isKeyAt(json, otherHead, at, from))) {
        const start = at + tail.length;
        const end = closingQuote(json, start);
        if (end === -1) return found;
        if (end > start) {
          found++;
          this.append(json.slice(start, end));
        }
        from = end + 1;
        at = json.indexOf(tail, from);
      } else {
        at = json.indexOf(tail, at + 1);
      }
    }
    return found;
  }
}

/** Whether `head` ends at `at`, after the last value read (`from`). */
function isKeyAt(json: string, head: string, at: number, from: number): boolean {
  return at - head.length >= from && json.startsWith(head, at - head.length);
}

/** Index of the quote that ends the JSON string starting at `from`, or -1. */
function closingQuote(json: string, from: number): number {
  const quote = json.indexOf('"', from);
  // Most pieces have no escape: the first quote ends them.
  if (quote === -1) return -1;
  const backslash = json.indexOf('\\', from);
  if (backslash === -1 || backslash > quote) return quote;
  for (let i = from; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 0x5c) i++; // a backslash escapes the next character
    else if (c === 0x22) return i;
  }
  return -1;
}
