// Credentials by their published shapes: OpenAI, Anthropic, AWS access key ids, GitHub, Slack,
// Google API keys, Stripe keys, JWTs and PEM private key blocks. No generic entropy test: it
// fires on hashes and ids, which is noise for an admin reading guardrail events.
import { dropOverlaps, execAll, type Match } from './match.js';

/** The longest token shape with a bounded length; JWTs and PEM blocks are unbounded (see secretOpenTail). */
export const SECRET_MAX_LENGTH = 240;

const TOKEN_SHAPES = [
  'sk-ant-[A-Za-z0-9_-]{20,228}',
  'sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,228}',
  '(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])',
  'gh[pousr]_[A-Za-z0-9]{36,228}',
  'github_pat_[A-Za-z0-9_]{22,228}',
  'xox[abposr]-[A-Za-z0-9-]{10,228}',
  'AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])',
  '(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,228}',
  'eyJ[A-Za-z0-9_-]{2,}\\.eyJ[A-Za-z0-9_-]{2,}\\.[A-Za-z0-9_-]*',
];
const TOKEN = new RegExp(`(?<![A-Za-z0-9_-])(?:${TOKEN_SHAPES.join('|')})`, 'g');

const PEM_LABEL = '[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----';
// Base64, whitespace and "Proc-Type: 4,ENCRYPTED" header lines; never a run of five dashes, so the
// search for the END line stops at the next BEGIN/END marker instead of running on.
const PEM_BODY_CHAR = '(?:[A-Za-z0-9+/=\\s:,.\\\\]|-(?!----))';
// A complete block up to its END line; else (a truncated paste) the header and the base64 lines
// that follow it, each at least 16 characters so the sentence after the key is not swallowed.
const PEM = new RegExp(
  `-----BEGIN ${PEM_LABEL}(?:${PEM_BODY_CHAR}{0,16384}?-----END ${PEM_LABEL}|(?:(?:\\s|\\\\[nr]){1,4}[A-Za-z0-9+/=]{16,})*)`,
  'g',
);
const PEM_HEADER = new RegExp(`^-----BEGIN ${PEM_LABEL}`);
const PEM_END = new RegExp(`-----END ${PEM_LABEL}`);
const SK_BODY_DIGIT = /\d/;

function acceptToken(m: RegExpExecArray): Match | null {
  // "sk-this-is-not-a-real-key": real OpenAI/Anthropic key bodies are random and hold digits.
  if (m[0].startsWith('sk-') && !SK_BODY_DIGIT.test(m[0].slice(3))) return null;
  return { start: m.index, end: m.index + m[0].length };
}

export function findSecrets(text: string): Match[] {
  const tokens = execAll(TOKEN, text, acceptToken);
  if (!text.includes('-----BEGIN ')) return tokens;
  return dropOverlaps([...tokens, ...execAll(PEM, text)]);
}

const isTokenChar = (code: number): boolean =>
  (code >= 48 && code <= 57) || (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || code === 45 || code === 46 || code === 95;

/**
 * Where a secret that may still be growing starts at the end of `text`, or -1. Streamed output
 * uses it to hold back a JWT or PEM block (often longer than the usual hold-back window) until
 * it is complete: a PEM header with no complete END line yet, or a token run that contains "eyJ".
 */
export function secretOpenTail(text: string): number {
  let tail = -1;
  const begin = text.lastIndexOf('-----BEGIN ');
  if (begin >= 0 && PEM_HEADER.test(text.slice(begin, begin + 80)) && !PEM_END.test(text.slice(begin))) tail = begin;
  let runStart = text.length;
  while (runStart > 0 && isTokenChar(text.charCodeAt(runStart - 1))) runStart--;
  const jwt = text.indexOf('eyJ', runStart);
  if (jwt >= 0 && (tail < 0 || jwt < tail)) tail = jwt;
  return tail;
}

/** The longest PEM header line: `-----BEGIN `, a 40-character label, `PRIVATE KEY BLOCK-----`. */
const PEM_HEADER_MAX_LENGTH = 11 + 40 + 22;

/**
 * Where a credential that later text could still make, grow or undo may start at the end of
 * `text`: a token is a run of token characters (so only the trailing run can still change), and a
 * PEM block starts with a `-----BEGIN` line, held while that line is incomplete (a complete one is
 * secretOpenTail's). For the stream scanner's hold-back: text before it is settled.
 */
export function secretOpenStart(text: string): number {
  let start = text.length;
  const floor = Math.max(0, text.length - SECRET_MAX_LENGTH - 1);
  while (start > floor && isTokenChar(text.charCodeAt(start - 1))) start--;
  // Only a header that began within its own length of the end can still be incomplete; searched
  // forward from there (a held PEM block makes the text long, and V8 searches backward slowly).
  for (let begin = text.indexOf('-----BEGIN', Math.max(0, text.length - PEM_HEADER_MAX_LENGTH)); begin !== -1 && begin < start; begin = text.indexOf('-----BEGIN', begin + 1)) {
    if (!PEM_HEADER.test(text.slice(begin, begin + PEM_HEADER_MAX_LENGTH + 1))) return begin;
  }
  return start;
}

