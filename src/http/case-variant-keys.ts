// Refuses an object with two keys that differ only in case. A body goes upstream with the fields
// the gateway did not read, and upstream parsers differ on such keys: Go's encoding/json matches
// field names ignoring case, the last one winning, so `{"content":"<checked>","Content":"<never
// checked>"}`, or a `MAX_TOKENS` after the `max_tokens` the hold pays for, could reach the model
// unchecked or unpaid for.
import { invalidRequest } from '../errors/gateway-error.js';

/** `at`: the object's param for the error (null: the body itself). */
export function refuseCaseVariantKeys(obj: Record<string, unknown>, at: string | null): void {
  let plain = true;
  for (const key in obj) {
    if (!isLowerAscii(key)) {
      plain = false;
      break;
    }
  }
  // Keys without an uppercase or non-ASCII letter fold to themselves: no two can collide.
  if (plain) return;
  const seen = new Map<string, string>();
  for (const key in obj) {
    // Upper then lower: also folds ſ (U+017F) to s and the Kelvin sign to k, as Go does.
    const folded = key.toUpperCase().toLowerCase();
    const other = seen.get(folded);
    if (other !== undefined) {
      throw invalidRequest(`${at ?? 'The request body'} has the keys ${JSON.stringify(other)} and ${JSON.stringify(key)}: keys may not differ only in case.`, at);
    }
    seen.set(folded, key);
  }
}

function isLowerAscii(key: string): boolean {
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if ((c >= 0x41 && c <= 0x5a) || c > 0x7e) return false;
  }
  return true;
}
