// Email addresses: the common dot-atom form (what people paste), ASCII domains with a letter TLD.
// Quoted local parts and IDN domains are left out: rare in prompts, and they widen false positives.
// The regex is tried only where a match can start (the local-part run before each '@'), not at
// every position: same matches as a global search, without its pass over every word.
import type { Match } from './match.js';

/** RFC 5321 caps a forward path at 254 characters; also bounds the stream scanner's hold-back. */
export const EMAIL_MAX_LENGTH = 254;

const LOCAL_MAX = 64;
/** Sticky: tried at one candidate start. */
const EMAIL =
  /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![A-Za-z0-9-])/y;

/** [A-Za-z0-9._%+-] */
function isLocal(code: number): boolean {
  return (code >= 97 && code <= 122) || (code >= 65 && code <= 90) || (code >= 48 && code <= 57) || code === 46 || code === 95 || code === 37 || code === 43 || code === 45;
}

export function findEmails(text: string): Match[] {
  const out: Match[] = [];
  // Where a global search would go on from: the end of the last match, accepted or not.
  let from = 0;
  for (let at = text.indexOf('@'); at >= 0; at = text.indexOf('@', at + 1)) {
    // A match's local part is the whole run of local characters before its '@' (the lookbehind),
    // so it can only start where that run starts; the regex refuses a run over 64 characters.
    let start = at;
    while (start > 0 && at - start < LOCAL_MAX && isLocal(text.charCodeAt(start - 1))) start--;
    if (start === at || start < from) continue;
    EMAIL.lastIndex = start;
    const m = EMAIL.exec(text);
    if (m === null) continue;
    from = start + m[0].length;
    if (m[0].length <= EMAIL_MAX_LENGTH) out.push({ start, end: from });
  }
  return out;
}

/**
 * Where an address that later text could still make, grow or undo may start at the end of
 * `text`: every address, and the characters either side that decide one, is a run of local, `@`
 * and domain characters, so only the trailing run of those can still change. For the stream
 * scanner's hold-back: text before it is settled.
 */
export function emailOpenStart(text: string): number {
  let start = text.length;
  const floor = Math.max(0, text.length - EMAIL_MAX_LENGTH - 1);
  while (start > floor && (isLocal(text.charCodeAt(start - 1)) || text.charCodeAt(start - 1) === 64)) start--;
  return start;
}

