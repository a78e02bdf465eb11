// Payment card numbers: 13-19 digits, contiguous or in the printed groupings (4-4-4-4[-3],
// Amex 4-6-5), and Luhn-valid. A longer contiguous digit run (order ids) never matches, nor digits
// inside a word: a hex id (`req_7ab9157378335417`) holds Luhn-valid runs one time in ten.
import { execAll, type Match } from './match.js';

export const CREDIT_CARD_MAX_LENGTH = 23;

const CARD = /(?<![0-9A-Za-z_])(?:\d{13,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?|\d{4}([ -])\d{6}\2\d{4,5})(?![0-9A-Za-z_])/g;

export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

function validCard(candidate: string): boolean {
  const digits = candidate.replace(/[ -]/g, '');
  return digits.length >= 13 && digits.length <= 19 && luhnValid(digits);
}

export function findCreditCards(text: string): Match[] {
  return execAll(CARD, text, (m) => {
    const start = m.index;
    if (validCard(m[0])) return { start, end: start + m[0].length };
    // "4111 1111 1111 1111 123": the trailing group may be a CVV rather than part of the number.
    const sep = m[1];
    if (sep === undefined) return null;
    const parts = m[0].split(sep);
    if (parts.length !== 5) return null;
    const shorter = parts.slice(0, 4).join(sep);
    return validCard(shorter) ? { start, end: start + shorter.length } : null;
  });
}
