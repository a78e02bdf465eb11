// Deny words: literal words and phrases, matched on folded text (case, NFKC look-alikes and
// zero-width characters do not hide a word; see fold-text.ts) on Unicode word boundaries, with
// offsets mapped back to the original. A trie walked from each position: no giant alternation
// regex, and at one start the longest listed phrase wins ("new york city" over "new york").
import { foldPhrase, foldText, type FoldedText } from '../fold-text.js';
import type { Match } from './match.js';

export interface DenyWordMatch extends Match {
  /** Index of the word in the policy's list (the first one, if two fold to the same phrase). */
  readonly index: number;
}

export interface DenyWordMatcher {
  /** Longest original span a listed phrase can take, allowing for invisible and decomposed characters. */
  readonly maxLength: number;
  find(text: string, folded?: FoldedText): DenyWordMatch[];
}

interface TrieNode {
  readonly next: Map<number, TrieNode>;
  index: number;
}

const WORD_CHAR = /[\p{L}\p{N}\p{M}_]/u;
// Scripts written without spaces have no word boundaries to require: a listed word matches inside a run.
const SPACELESS = /[\p{sc=Han}\p{sc=Hiragana}\p{sc=Katakana}\p{sc=Thai}\p{sc=Lao}\p{sc=Khmer}\p{sc=Myanmar}]/u;

function isWordCodePoint(cp: number): boolean {
  if (cp < 0x80) return (cp >= 97 && cp <= 122) || (cp >= 65 && cp <= 90) || (cp >= 48 && cp <= 57) || cp === 95;
  const char = String.fromCodePoint(cp);
  return WORD_CHAR.test(char) && !SPACELESS.test(char);
}

/** True when a phrase may start or end at `p`: not between two word characters. */
function isBoundary(text: string, p: number): boolean {
  if (p === 0 || p === text.length) return true;
  let before = p - 1;
  const low = text.charCodeAt(before);
  if (low >= 0xdc00 && low <= 0xdfff && before > 0) before--;
  return !(isWordCodePoint(text.codePointAt(before) as number) && isWordCodePoint(text.codePointAt(p) as number));
}

function buildTrie(words: readonly string[]): { root: TrieNode; longest: number } {
  const root: TrieNode = { next: new Map(), index: -1 };
  let longest = 0;
  words.forEach((word, index) => {
    const phrase = foldPhrase(word);
    if (phrase.length === 0) return; // only invisible characters: can never match anything
    longest = Math.max(longest, phrase.length);
    let node = root;
    for (let i = 0; i < phrase.length; i++) {
      const code = phrase.charCodeAt(i);
      let child = node.next.get(code);
      if (child === undefined) node.next.set(code, (child = { next: new Map(), index: -1 }));
      node = child;
    }
    if (node.index < 0) node.index = index;
  });
  return { root, longest };
}

/** The end of the longest phrase starting at `p` that ends on a boundary, and its index; end -1 if none. */
function longestAt(root: TrieNode, text: string, p: number): { end: number; index: number } {
  let node = root.next.get(text.charCodeAt(p));
  let end = -1;
  let index = -1;
  for (let q = p + 1; node !== undefined; q++) {
    if (node.index >= 0 && isBoundary(text, q)) {
      end = q;
      index = node.index;
    }
    node = q < text.length ? node.next.get(text.charCodeAt(q)) : undefined;
  }
  return { end, index };
}

export function compileDenyWords(words: readonly string[]): DenyWordMatcher {
  const { root, longest } = buildTrie(words);
  // The first-unit test runs at every position: an array lookup for ASCII instead of a Map's.
  const asciiFirst = new Uint8Array(128);
  for (const code of root.next.keys()) if (code < 128) asciiFirst[code] = 1;
  const mayStart = (code: number): boolean => (code < 128 ? asciiFirst[code] === 1 : root.next.has(code));
  return {
    maxLength: 2 * longest + 8,
    find(text, folded = foldText(text)) {
      const out: DenyWordMatch[] = [];
      const t = folded.text;
      for (let p = 0; p < t.length; ) {
        const hit = mayStart(t.charCodeAt(p)) && isBoundary(t, p) ? longestAt(root, t, p) : undefined;
        if (hit === undefined || hit.end < 0) {
          p++;
          continue;
        }
        out.push({ start: folded.sourceStart[p] as number, end: folded.sourceEnd[hit.end - 1] as number, index: hit.index });
        p = hit.end;
      }
      return out;
    },
  };
}
