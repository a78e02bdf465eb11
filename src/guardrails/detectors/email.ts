// Email addresses: the common dot-atom form (what people paste), ASCII domains with a letter TLD.
// Quoted local parts and IDN domains are left out: rare in prompts, and they widen false positives.
import { execAll, type Match } from './match.js';

/** RFC 5321 caps a forward path at 254 characters; also bounds the stream scanner's hold-back. */
export const EMAIL_MAX_LENGTH = 254;

const EMAIL =
  /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![A-Za-z0-9-])/g;

export function findEmails(text: string): Match[] {
  return execAll(EMAIL, text, (m) => (m[0].length > EMAIL_MAX_LENGTH ? null : { start: m.index, end: m.index + m[0].length }));
}
