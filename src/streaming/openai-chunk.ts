// Reads one OpenAI chat.completion.chunk without building it: a validating JSON scan that finds the
// single choice's index and its delta's `content` string, so a stream's common chunk can be checked
// and rewritten in place. Anything it is not sure of (more than one choice, other text fields, a
// finish_reason, duplicate or escaped keys, deep nesting) is COMPLEX: the caller parses it in full.
// It never calls SIMPLE or NO_CHOICES a text JSON.parse would refuse. A chunk equal to the last
// one but for its content string (most of a stream) costs two compares and that string's scan.

/** The caller must JSON.parse the chunk (it may also be invalid). */
export const COMPLEX = 0;
/** Valid, and `choices` is absent, not an array, or empty: no generated text. */
export const NO_CHOICES = 1;
/** Valid, one choice: `index` a plain integer or absent, `delta` an object whose only text field is `content` (string, null or absent), `finish_reason` null or absent. */
export const SIMPLE = 2;
export type ChunkKind = typeof COMPLEX | typeof NO_CHOICES | typeof SIMPLE;

const MAX_DEPTH = 32;
/** Which object a member is in. */
const TOP = 0;
const CHOICE = 1;
const DELTA = 2;
const OTHER = 3;
const SEEN_CHOICES = 1;
const SEEN_INDEX = 2;
const SEEN_DELTA = 4;
const SEEN_FINISH = 8;
const SEEN_CONTENT = 16;
const SEEN_REFUSAL = 32;
const SEEN_REASONING = 64;
const SEEN_TOOL_CALLS = 128;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** One per stream: scan() fills the fields, so nothing is allocated per chunk. */
export class OpenAiChunkScan {
  /** After SIMPLE: the choice's index (0 when absent). */
  index = 0;
  /** After SIMPLE: the content string's opening quote and the index after its closing quote; -1 when it has none (null or absent). */
  contentStart = -1;
  contentEnd = -1;
  /** The content string has escapes: JSON.parse its quoted slice; otherwise the text between the quotes is the value. */
  contentEscaped = false;
  /** After SIMPLE: the chunk is the last template's, but for its content string. */
  templateMatched = false;

  private s = '';
  private i = 0;
  private end = 0;
  /** The last string scanned had a backslash. */
  private escaped = false;
  /** Valid so far, but not a shape the fast path takes. */
  private complex = false;
  /** The last SIMPLE chunk with content, before and after its content string (quotes included), and its index. */
  private head = '';
  private tail = '';
  private templateIndex = 0;
  /** The template with an empty content string, framed: built at most once per template. */
  private emptyFrame: string | undefined;
  /** SEEN_* flags of the keys read so far (there is at most one choice and one delta). */
  private seen = 0;
  private choiceCount = 0;

  /** Classifies `text[from, to)`, one chunk's JSON. */
  scan(text: string, from = 0, to = text.length): ChunkKind {
    this.s = text;
    this.i = from;
    this.end = to;
    this.complex = false;
    this.seen = 0;
    this.choiceCount = 0;
    this.index = 0;
    this.contentStart = -1;
    this.contentEnd = -1;
    this.contentEscaped = false;
    this.templateMatched = false;
    if (this.sameTemplate(text, from, to)) return SIMPLE;
    this.i = from;
    this.ws();
    if (this.peek() !== 0x7b) return COMPLEX; // not an object: the full parse decides
    if (!this.members(TOP, 0) || this.complex) return COMPLEX;
    this.ws();
    if (this.i !== this.end) return COMPLEX;
    if (this.choiceCount === 0) return NO_CHOICES;
    if (this.contentStart !== -1) {
      this.head = text.slice(from, this.contentStart + 1);
      this.tail = text.slice(this.contentEnd - 1, to);
      this.emptyFrame = undefined;
      this.templateIndex = this.index;
    }
    return SIMPLE;
  }

  /**
   * The last SIMPLE chunk with its content string swapped for another: the same text before and
   * after that string, and a valid string between. A stream's chunks mostly differ only there.
   */
  private sameTemplate(text: string, from: number, to: number): boolean {
    const head = this.head;
    const tail = this.tail;
    const quote = from + head.length - 1;
    const closing = to - tail.length;
    // substring and ===: a native compare; startsWith at an offset goes character by character.
    if (head === '' || closing < quote + 1 || text.substring(from, quote + 1) !== head || text.substring(closing, to) !== tail) return false;
    this.i = quote;
    if (!this.string() || this.i !== closing + 1) return false;
    this.index = this.templateIndex;
    this.contentStart = quote;
    this.contentEnd = closing + 1;
    this.contentEscaped = this.escaped;
    this.templateMatched = true;
    return true;
  }

  /**
   * After a template match: the chunk as `prefix` + its JSON with `""` for content + `suffix`, the
   * same string each time (a caller passes the same prefix and suffix every time). A stream guard holding text back sends most chunks this way, and
   * building each anew would cost three strings and a flattening in the write.
   */
  emptyContentFrame(prefix: string, suffix: string): string {
    return (this.emptyFrame ??= `${prefix}${this.head}${this.tail}${suffix}`);
  }

  /** One member's value (the scan sits at it), by the object it is in. */
  private member(level: number, depth: number, keyStart: number, keyEnd: number): boolean {
    switch (level) {
      case TOP:
        if (!this.isKey(keyStart, keyEnd, 'choices')) return this.value(depth + 1);
        if (!this.once(SEEN_CHOICES)) return false;
        return this.peek() === 0x5b ? this.choices() : this.value(depth + 1);
      case CHOICE:
        if (this.isKey(keyStart, keyEnd, 'index')) return this.once(SEEN_INDEX) && this.choiceIndex();
        if (this.isKey(keyStart, keyEnd, 'delta')) return this.once(SEEN_DELTA) && (this.peek() === 0x7b ? this.members(DELTA, depth + 1) : this.fail());
        if (this.isKey(keyStart, keyEnd, 'finish_reason')) return this.once(SEEN_FINISH) && (this.literal('null') || this.fail());
        return this.value(depth + 1);
      case DELTA:
        if (this.isKey(keyStart, keyEnd, 'content')) return this.once(SEEN_CONTENT) && this.content();
        if (this.isKey(keyStart, keyEnd, 'refusal')) return this.once(SEEN_REFUSAL) && (this.literal('null') || this.fail());
        if (this.isKey(keyStart, keyEnd, 'reasoning_content')) return this.once(SEEN_REASONING) && (this.literal('null') || this.fail());
        if (this.isKey(keyStart, keyEnd, 'tool_calls')) return this.once(SEEN_TOOL_CALLS) && (this.literal('null') || this.fail());
        return this.value(depth + 1);
      default:
        return this.value(depth + 1);
    }
  }

  /** The choices array: empty, or one object. */
  private choices(): boolean {
    this.i++; // [
    this.ws();
    if (this.peek() === 0x5d) {
      this.i++;
      return true;
    }
    this.choiceCount = 1;
    if (this.peek() !== 0x7b) return this.fail();
    if (!this.members(CHOICE, 2)) return false;
    if ((this.seen & SEEN_DELTA) === 0) return this.fail();
    this.ws();
    if (this.peek() !== 0x5d) return this.fail(); // a second choice, or garbage: the full parse decides
    this.i++;
    return true;
  }

  private choiceIndex(): boolean {
    const start = this.i;
    if (!this.number()) return false;
    if (this.i - start > 15) return this.fail();
    let index = 0;
    for (let k = start; k < this.i; k++) {
      const c = this.s.charCodeAt(k);
      if (!isDigit(c)) return this.fail();
      index = index * 10 + (c - 0x30);
    }
    this.index = index;
    return true;
  }

  private content(): boolean {
    if (this.peek() !== QUOTE) return this.literal('null') || this.fail();
    const start = this.i;
    if (!this.string()) return false;
    this.contentStart = start;
    this.contentEnd = this.i;
    this.contentEscaped = this.escaped;
    return true;
  }

  /** A key the fast path reads, seen for the first time; a duplicate (JSON.parse keeps the last) is COMPLEX. */
  private once(flag: number): boolean {
    if ((this.seen & flag) !== 0) return this.fail();
    this.seen |= flag;
    return true;
  }

  /**
   * An object's members, at `{`. A key with an escape could spell a key the fast path looks for:
   * such a chunk is COMPLEX.
   */
  private members(level: number, depth: number): boolean {
    if (depth > MAX_DEPTH) return this.fail();
    this.i++; // {
    this.ws();
    if (this.peek() === 0x7d) {
      this.i++;
      return true;
    }
    for (;;) {
      if (this.peek() !== QUOTE) return false;
      const keyStart = this.i + 1;
      if (!this.string()) return false;
      if (this.escaped) return this.fail();
      const keyEnd = this.i - 1;
      this.ws();
      if (this.peek() !== 0x3a) return false;
      this.i++;
      this.ws();
      if (!this.member(level, depth, keyStart, keyEnd)) return false;
      this.ws();
      const c = this.peek();
      this.i++;
      if (c === 0x7d) return true;
      if (c !== 0x2c) return false;
      this.ws();
    }
  }

  /** Any JSON value, validated and skipped. */
  private value(depth: number): boolean {
    if (depth > MAX_DEPTH) return this.fail();
    const c = this.peek();
    if (c === QUOTE) return this.string();
    if (c === 0x7b) return this.members(OTHER, depth);
    if (c === 0x5b) return this.array(depth + 1);
    if (c === 0x74) return this.literal('true');
    if (c === 0x66) return this.literal('false');
    if (c === 0x6e) return this.literal('null');
    return this.number();
  }

  private array(depth: number): boolean {
    if (depth > MAX_DEPTH) return this.fail();
    this.i++; // [
    this.ws();
    if (this.peek() === 0x5d) {
      this.i++;
      return true;
    }
    for (;;) {
      if (!this.value(depth)) return false;
      this.ws();
      const c = this.peek();
      this.i++;
      if (c === 0x5d) return true;
      if (c !== 0x2c) return false;
      this.ws();
    }
  }

  /** A string at its opening quote; sets `escaped`. Control characters are refused, as JSON.parse does. */
  private string(): boolean {
    const s = this.s;
    const end = this.end;
    let i = this.i + 1;
    this.escaped = false;
    while (i < end) {
      const c = s.charCodeAt(i);
      if (c === QUOTE) {
        this.i = i + 1;
        return true;
      }
      if (c < 0x20) return false;
      if (c === BACKSLASH) {
        this.escaped = true;
        const e = i + 1 < end ? s.charCodeAt(i + 1) : 0;
        if (e === 0x75) {
          if (i + 5 >= end) return false;
          for (let k = i + 2; k < i + 6; k++) if (!isHex(s.charCodeAt(k))) return false;
          i += 6;
          continue;
        }
        // " \ / b f n r t
        if (e !== QUOTE && e !== BACKSLASH && e !== 0x2f && e !== 0x62 && e !== 0x66 && e !== 0x6e && e !== 0x72 && e !== 0x74) return false;
        i += 2;
        continue;
      }
      i++;
    }
    return false;
  }

  /** -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
  private number(): boolean {
    const s = this.s;
    const end = this.end;
    let i = this.i;
    if (i < end && s.charCodeAt(i) === 0x2d) i++;
    if (i >= end) return false;
    if (s.charCodeAt(i) === 0x30) i++;
    else if (isDigit(s.charCodeAt(i))) while (i < end && isDigit(s.charCodeAt(i))) i++;
    else return false;
    if (i < end && s.charCodeAt(i) === 0x2e) {
      i++;
      if (i >= end || !isDigit(s.charCodeAt(i))) return false;
      while (i < end && isDigit(s.charCodeAt(i))) i++;
    }
    if (i < end && (s.charCodeAt(i) | 0x20) === 0x65) {
      i++;
      if (i < end && (s.charCodeAt(i) === 0x2b || s.charCodeAt(i) === 0x2d)) i++;
      if (i >= end || !isDigit(s.charCodeAt(i))) return false;
      while (i < end && isDigit(s.charCodeAt(i))) i++;
    }
    this.i = i;
    return true;
  }

  private literal(word: string): boolean {
    if (this.i + word.length > this.end || !this.s.startsWith(word, this.i)) return false;
    this.i += word.length;
    return true;
  }

  private isKey(start: number, end: number, key: string): boolean {
    return end - start === key.length && this.s.startsWith(key, start);
  }

  private ws(): void {
    const s = this.s;
    let i = this.i;
    while (i < this.end) {
      const c = s.charCodeAt(i);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      i++;
    }
    this.i = i;
  }

  private peek(): number {
    return this.i < this.end ? this.s.charCodeAt(this.i) : -1;
  }

  /** Valid or not, the fast path does not take it: stop here. */
  private fail(): false {
    this.complex = true;
    return false;
  }
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isHex(c: number): boolean {
  return isDigit(c) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}
