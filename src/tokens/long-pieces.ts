// Exact counts for text with a long pre-tokenizer piece, in O(n log n). gpt-tokenizer (like
// tiktoken before 0.13) merges a piece by rescanning it after every merge, O(n²) in its bytes, and
// the split patterns leave runs of letters, punctuation and whitespace unbounded: 100k spaces take
// ~6 s, a megabyte of one letter about ten minutes, and one request would pin a worker. Such text is counted here with
// the same split pattern and ranks as gpt-tokenizer and a heap-ordered merge that applies the same
// merges in the same order (lowest rank first, leftmost on a tie), so the count is the same.
import type { Encoding } from '../config/model-encodings.js';
import { vocabulary } from './vocabularies.js';

/** Text with a piece longer than this (UTF-16 units) is counted here rather than by gpt-tokenizer. */
export const LONG_PIECE_CHARS = 256;

// Character classes as the split patterns see them; a digit (\p{N}) belongs to none (pieces of
// digits are at most 3 long). A combining mark is in a letter piece or a punctuation piece; CR and
// LF end a punctuation piece (` ?[^\s\p{L}\p{N}]+[\r\n/]*`) or make a whitespace piece.
const LETTER = 1;
const PUNCT = 2;
const SPACE = 4;
const KNOWN = 8; // marks a cached class (a digit's class is 0)

const ASCII_CLASS = new Uint8Array(128);
for (let unit = 0; unit < 128; unit++) ASCII_CLASS[unit] = classify(String.fromCharCode(unit));
let codePointClass: Uint8Array | undefined; // 1.1 MB, by code point, filled on first sight of each

function classify(char: string): number {
  if (/\p{N}/u.test(char)) return KNOWN;
  if (/\p{L}/u.test(char)) return KNOWN | LETTER;
  if (/\p{M}/u.test(char)) return KNOWN | LETTER | PUNCT;
  if (char === '\r' || char === '\n') return KNOWN | SPACE | PUNCT;
  if (/\s/u.test(char)) return KNOWN | SPACE;
  return KNOWN | PUNCT;
}

/**
 * Whether a piece of either encoding's split pattern in `text` may be longer than `maxChars`. Every
 * piece is one leading character (up to 2 units), a run of characters that share a class, and at
 * most a 3-unit contraction (`'ll`); so no run longer than maxChars - 5 means no such piece. It may
 * answer true for text without one (the long path is exact too), never false for text with one.
 */
export function mayHaveLongPiece(text: string, maxChars: number = LONG_PIECE_CHARS): boolean {
  if (text.length <= maxChars) return false;
  const limit = maxChars - 5;
  let letters = 0;
  let punct = 0;
  let spaces = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    let cls: number;
    let width = 1;
    if (unit < 128) cls = ASCII_CLASS[unit]!;
    else {
      // A surrogate pair is one code point; a lone surrogate is classified on its own.
      let codePoint = unit;
      if ((unit & 0xfc00) === 0xd800 && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        codePoint = text.codePointAt(i)!;
        width = 2;
        i++;
      }
      codePointClass ??= new Uint8Array(0x110000);
      cls = codePointClass[codePoint]! || (codePointClass[codePoint] = classify(String.fromCodePoint(codePoint)));
    }
    // Branch-free: a run grows while the class allows it and drops to 0 (mask 0) where it does not.
    letters = (letters + width) & -(cls & LETTER);
    punct = (punct + width) & -((cls & PUNCT) >> 1);
    spaces = (spaces + width) & -((cls & SPACE) >> 2);
    if (letters > limit || punct > limit || spaces > limit) return true;
  }
  return false;
}

interface RankTable {
  /** Token bytes as a latin1 string (one char per byte) to rank. */
  readonly ranks: ReadonlyMap<string, number>;
  readonly maxTokenBytes: number;
}

const tables: Partial<Record<Encoding, RankTable>> = {};

// Built on the first long piece only (~150 ms and ~12 MB for o200k_base, half for cl100k_base).
function rankTable(encoding: Encoding): RankTable {
  let table = tables[encoding];
  if (table === undefined) {
    const tokens = vocabulary(encoding).ranks;
    const ranks = new Map<string, number>();
    let maxTokenBytes = 0;
    for (let rank = 0; rank < tokens.length; rank++) {
      const token = tokens[rank];
      if (token === undefined) continue; // an unused rank
      const key = (typeof token === 'string' ? Buffer.from(token, 'utf8') : Buffer.from(token)).toString('latin1');
      ranks.set(key, rank);
      if (key.length > maxTokenBytes) maxTokenBytes = key.length;
    }
    table = { ranks, maxTokenBytes };
    tables[encoding] = table;
  }
  return table;
}

/** The exact token count of `text`, every piece merged in O(n log n). Same result as gpt-tokenizer. */
export function countTextTokensLongPieces(text: string, encoding: Encoding): number {
  const table = rankTable(encoding);
  const pattern = vocabulary(encoding).splitPattern;
  let total = 0;
  for (const match of text.matchAll(pattern)) {
    const bytes = Buffer.from(match[0], 'utf8').toString('latin1');
    total += table.ranks.has(bytes) ? 1 : countMergedParts(bytes, table);
  }
  return total;
}

const INF = Number.POSITIVE_INFINITY;
const POSITION_SPAN = 2 ** 32; // heap key = rank * 2^32 + position: exact in a double (ranks < 2^18)

/**
 * Byte-pair merges of one piece (bytes as a latin1 string) until no adjacent pair is a token; the
 * number of parts left. Parts are a linked list over byte offsets; every pair's rank is in a min-heap
 * keyed by (rank, offset) with stale entries skipped when popped, so each step takes the pair the
 * rescanning merge would take. A pair's rank lives at its left part's offset (NaN once merged away).
 */
function countMergedParts(bytes: string, table: RankTable): number {
  const n = bytes.length;
  if (n < 2) return n;
  const next = new Int32Array(n + 1);
  const prev = new Int32Array(n + 1);
  const rank = new Float64Array(n + 1);
  const heap = new MinHeap(n);
  const rankOf = (start: number, end: number): number => (end - start > table.maxTokenBytes ? INF : (table.ranks.get(bytes.slice(start, end)) ?? INF));
  for (let i = 0; i <= n; i++) {
    next[i] = i + 1;
    prev[i] = i - 1;
    rank[i] = i + 2 <= n ? rankOf(i, i + 2) : INF;
    if (rank[i] !== INF) heap.push(rank[i]! * POSITION_SPAN + i);
  }
  let parts = n;
  while (heap.size > 0) {
    const key = heap.pop();
    const r = Math.floor(key / POSITION_SPAN);
    const i = key - r * POSITION_SPAN;
    if (rank[i] !== r) continue; // merged away, or its rank changed since
    const removed = next[i]!;
    const after = next[removed]!;
    next[i] = after;
    prev[after] = i;
    rank[removed] = Number.NaN;
    parts--;
    rank[i] = after < n ? rankOf(i, next[after]!) : INF;
    if (rank[i] !== INF) heap.push(rank[i]! * POSITION_SPAN + i);
    if (i > 0) {
      const before = prev[i]!;
      rank[before] = rankOf(before, after);
      if (rank[before] !== INF) heap.push(rank[before]! * POSITION_SPAN + before);
    }
  }
  return parts;
}

/** A binary min-heap of doubles in a growable Float64Array. */
class MinHeap {
  private items: Float64Array;
  size = 0;

  constructor(capacity: number) {
    this.items = new Float64Array(Math.max(16, capacity));
  }

  push(value: number): void {
    if (this.size === this.items.length) {
      const grown = new Float64Array(this.items.length * 2);
      grown.set(this.items);
      this.items = grown;
    }
    const items = this.items;
    let at = this.size++;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (items[parent]! <= value) break;
      items[at] = items[parent]!;
      at = parent;
    }
    items[at] = value;
  }

  pop(): number {
    const items = this.items;
    const top = items[0]!;
    const last = items[--this.size]!;
    let at = 0;
    const half = this.size >> 1;
    while (at < half) {
      let child = 2 * at + 1;
      if (child + 1 < this.size && items[child + 1]! < items[child]!) child++;
      if (items[child]! >= last) break;
      items[at] = items[child]!;
      at = child;
    }
    items[at] = last;
    return top;
  }
}
