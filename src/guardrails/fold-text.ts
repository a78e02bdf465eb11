// Folds text for phrase matching (deny words, injection heuristics) and keeps a map back to the
// original, so findings point at what the user sent. Folding: NFKC (fullwidth, ligatures, math
// letters), lowercase, invisible format characters (zero-width, bidi, soft hyphen) dropped,
// stray combining marks dropped (Zalgo, variation selectors), whitespace runs collapsed to ' '.
import { Buffer } from 'node:buffer';

export interface FoldedText {
  readonly text: string;
  /** For each UTF-16 unit of `text`: start and end (exclusive) of its source in the original. */
  readonly sourceStart: Int32Array;
  readonly sourceEnd: Int32Array;
}

const MARK = /\p{M}/u;
const FORMAT = /^\p{Cf}/u;
const WHITESPACE = /^\s+$/u;
// Marks that decorate rather than spell: combining diacritics (after NFKC composed what it could),
// CGJ, variation selectors. Indic vowel signs and other spelling marks are kept.
const DECORATION = /[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe00-\ufe0f\ufe20-\ufe2f\u{e0100}-\u{e01ef}]/gu;

/**
 * Folded units and their source spans in typed arrays, grown by doubling: no boxed numbers per
 * character. The arrays are scratch space shared by every fold on this thread (a fold runs to the
 * end without yielding), so a short prompt allocates only its results.
 */
const SCRATCH_UNITS = 4096;
/** Past this (~1.3 MB of scratch) a thread does not keep what one huge prompt grew the arrays to. */
const MAX_KEPT_UNITS = 1 << 17;
let scratchUnits = new Uint16Array(SCRATCH_UNITS);
let scratchStarts = new Int32Array(SCRATCH_UNITS);
let scratchEnds = new Int32Array(SCRATCH_UNITS);

class Builder {
  units = scratchUnits;
  starts = scratchStarts;
  ends = scratchEnds;
  length = 0;
  lastIsSpace = true;

  push(unit: number, start: number, end: number): void {
    if (this.length === this.units.length) this.grow();
    this.units[this.length] = unit;
    this.starts[this.length] = start;
    this.ends[this.length] = end;
    this.length++;
    this.lastIsSpace = unit === 32;
  }

  space(start: number, end: number): void {
    if (!this.lastIsSpace) this.push(32, start, end);
    else if (this.length > 0) this.ends[this.length - 1] = end;
  }

  /** Doubles the scratch arrays: a long text, or NFKC expanding a character (the ligature ﬃ is three). */
  grow(): void {
    const capacity = this.units.length * 2;
    const units = new Uint16Array(capacity);
    const starts = new Int32Array(capacity);
    const ends = new Int32Array(capacity);
    units.set(this.units);
    starts.set(this.starts);
    ends.set(this.ends);
    this.units = scratchUnits = units;
    this.starts = scratchStarts = starts;
    this.ends = scratchEnds = ends;
  }

  /** Decoded as UTF-16LE by Buffer, which keeps lone surrogates (TextDecoder would not): ~10x String.fromCharCode.apply. */
  toText(): string {
    return Buffer.from(this.units.buffer, 0, this.length * 2).toString('utf16le');
  }
}

/** The end of the segment starting at `i`: one code point and the combining marks after it. */
function segmentEnd(original: string, i: number): number {
  let j = i + ((original.codePointAt(i) as number) > 0xffff ? 2 : 1);
  while (j < original.length && original.charCodeAt(j) >= 0x300) {
    const cp = original.codePointAt(j) as number;
    if (!MARK.test(String.fromCodePoint(cp))) break;
    j += cp > 0xffff ? 2 : 1;
  }
  return j;
}

function foldSegment(out: Builder, segment: string, start: number, end: number): void {
  if (FORMAT.test(segment)) return;
  const folded = segment.normalize('NFKC').toLowerCase().replace(DECORATION, '');
  if (folded.length === 0) return;
  if (WHITESPACE.test(folded)) return out.space(start, end);
  for (let k = 0; k < folded.length; k++) out.push(folded.charCodeAt(k), start, end);
}

/** Counts folds on this thread: a transient fold's maps are valid while this has not moved on. */
let foldsDone = 0;

/** The number of folds this thread has run; a transient fold taken at another count is stale. */
export function foldCount(): number {
  return foldsDone;
}

/**
 * foldText, with maps that are views of this thread's scratch arrays, not copies: valid only until
 * the next fold on this thread (see foldCount). A scan folds a text once and reads the maps right
 * away; copying them cost more than the fold (each small typed array is an off-heap allocation,
 * ~2 µs here, where folding a short answer takes ~1 µs).
 */
export function foldTextTransient(original: string): FoldedText {
  foldsDone++;
  const out = new Builder();
  for (let i = 0; i < original.length; ) {
    const code = original.charCodeAt(i);
    const next = i + 1 < original.length ? original.charCodeAt(i + 1) : 0;
    // ASCII not followed by a combining mark: the common case, folded without normalize().
    if (code < 0x80 && next < 0x300) {
      if (code === 32 || (code >= 9 && code <= 13)) out.space(i, i + 1);
      else out.push(code >= 65 && code <= 90 ? code + 32 : code, i, i + 1);
      i++;
      continue;
    }
    const j = segmentEnd(original, i);
    foldSegment(out, original.slice(i, j), i, j);
    i = j;
  }
  const folded = { text: out.toText(), sourceStart: out.starts.subarray(0, out.length), sourceEnd: out.ends.subarray(0, out.length) };
  if (scratchUnits.length > MAX_KEPT_UNITS) {
    // The views keep the grown arrays alive for as long as they are read; the thread does not.
    scratchUnits = new Uint16Array(SCRATCH_UNITS);
    scratchStarts = new Int32Array(SCRATCH_UNITS);
    scratchEnds = new Int32Array(SCRATCH_UNITS);
  }
  return folded;
}

/** The folded text and maps of their own, for a caller that keeps them. */
export function foldText(original: string): FoldedText {
  const transient = foldTextTransient(original);
  return { text: transient.text, sourceStart: transient.sourceStart.slice(), sourceEnd: transient.sourceEnd.slice() };
}

/** Folds a rule phrase (a deny word) the same way, trimmed: the phrase side needs no offsets. */
export function foldPhrase(phrase: string): string {
  return foldText(phrase).text.trim();
}
