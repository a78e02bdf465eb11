// PostgreSQL array literals ('{a,"b c",NULL}') for parameters cast to an array type in the SQL
// ($1::uuid[], $2::bigint[]). pg converts a JS array itself by quoting every element and escaping it
// with two regular expressions; at the ledger batch's 16 columns that was the request path's largest
// allocator (a tenth of its bytes at chat load). Here an element of only safe characters (UUIDs,
// integers, operation kinds) goes in as it is, and only the others are quoted.

/** One element per entry; null is SQL NULL. Numbers are written as JavaScript prints them. */
export function arrayLiteral(values: ArrayLike<string | number | null | undefined>): string {
  // Joined once: appending element by element builds a chain of partial strings to flatten later.
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (value == null) parts[i] = 'NULL';
    else if (typeof value === 'number') parts[i] = String(value);
    else parts[i] = isBare(value) ? value : quoted(value);
  }
  return `{${parts.join(',')}}`;
}

/**
 * Letters, digits and `-_.:` only, and not the word NULL: what the array parser reads back as the
 * same text unquoted (it trims whitespace and splits on `,{}"\\`, and reads NULL as null).
 */
function isBare(value: string): boolean {
  if (value.length === 0 || (value.length === 4 && value.toLowerCase() === 'null')) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const safe = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x3a || c === 0x5f;
    if (!safe) return false;
  }
  return true;
}

function quoted(value: string): string {
  return `"${value.replace(/[\\"]/g, '\\$&')}"`;
}
