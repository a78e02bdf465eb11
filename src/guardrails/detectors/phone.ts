// Phone numbers. The heuristic: a number must carry phone structure, never just be digits.
//  - international: "+" country code, then digit groups split by space/dot/dash (a "(0)" or
//    "(555)" group allowed), or compact "+4915112345678"; 7-15 digits in all (E.164);
//  - North American national: (555) 123-4567, 555-123-4567, 555.123.4567, 1-555-123-4567;
//  - trunk-prefixed national: 020 7946 0958, 030 12345678, 06 12 34 56 78 (9+ digits).
// A bare digit run (order ids, card numbers) never matches, and neither does a group sequence
// touching other digit groups on either side ("4111 1111 1111 1111" holds no 3-3-4 phone).
import { execAll, type Match } from './match.js';

export const PHONE_MAX_LENGTH = 40;

const INTERNATIONAL = '\\+[1-9]\\d{6,14}|\\+[1-9]\\d{0,2}(?:[ .-]?\\(\\d{1,4}\\))?(?:[ .-]\\d{1,12}){1,7}';
const NORTH_AMERICAN = '(?:1[ .-])?(?:\\([2-9]\\d{2}\\)[ .-]?|[2-9]\\d{2}[ .-])\\d{3}[ .-]\\d{4}';
const TRUNK_PREFIXED = '0[1-9](?:[ .]\\d{2}){4}|0\\d{1,4}[ -]\\d{3,8}(?:[ -]\\d{3,4})?';

const PHONE = new RegExp(
  `(?<![\\w+])(?<!\\d[ .-])(?:${INTERNATIONAL}|${NORTH_AMERICAN}|${TRUNK_PREFIXED})(?![ .-]?\\d)(?!\\w)`,
  'g',
);

function digitCount(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 48 && code <= 57) count++;
  }
  return count;
}

export function findPhones(text: string): Match[] {
  return execAll(PHONE, text, (m) => {
    const digits = digitCount(m[0]);
    const min = m[0].startsWith('+') ? 7 : m[0].startsWith('0') ? 9 : 10;
    return digits >= min && digits <= 15 ? { start: m.index, end: m.index + m[0].length } : null;
  });
}
