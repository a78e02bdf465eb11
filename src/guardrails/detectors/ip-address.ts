// IP addresses: dotted-quad IPv4 with each octet 0-255 (no leading zeros), and IPv6 in full,
// compressed (::) and IPv4-suffixed forms, validated by a small parser rather than one giant regex.
// A dotted quad inside a longer dotted run (1.2.3.4.5, a version string) is not a match.
import { dropOverlaps, execAll, type Match } from './match.js';

/** The longest IPv6 text form (with an IPv4 tail) is 45 characters. */
export const IP_ADDRESS_MAX_LENGTH = 45;

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = new RegExp(`(?<![\\w.])${OCTET}(?:\\.${OCTET}){3}(?!\\w)(?!\\.\\d)`, 'g');
const IPV4_EXACT = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);
/** A run of hex digits, colons and dots; the parser decides whether it is an address. */
const IPV6_CANDIDATE = /(?<![\w:.])[0-9A-Fa-f:.]{2,46}(?![\w:])/g;
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

export function isIpv6(text: string): boolean {
  if (text.includes(':::')) return false;
  const halves = text.split('::');
  if (halves.length > 2) return false;
  const groups = halves.flatMap((half) => (half === '' ? [] : half.split(':')));
  let count = 0;
  for (let i = 0; i < groups.length; i++) {
    const group = groups[i] as string;
    if (HEX_GROUP.test(group)) count += 1;
    else if (i === groups.length - 1 && IPV4_EXACT.test(group)) count += 2;
    else return false;
  }
  return halves.length === 2 ? count <= 7 : count === 8;
}

function acceptIpv6(m: RegExpExecArray): Match | null {
  // A sentence may end right after the address: "ping ::1." Trailing dots are not part of it.
  const text = m[0].replace(/\.+$/, '');
  // At least two colons and a decimal digit: keeps out "::" separators and words like "a::b".
  if (text.indexOf(':') === text.lastIndexOf(':') || !/\d/.test(text) || !isIpv6(text)) return null;
  return { start: m.index, end: m.index + text.length };
}

export function findIpAddresses(text: string): Match[] {
  const v6 = execAll(IPV6_CANDIDATE, text, acceptIpv6);
  const v4 = execAll(IPV4, text);
  // ::ffff:10.0.0.1 is one address, not an IPv6 and an IPv4 one.
  return v6.length === 0 ? v4 : dropOverlaps([...v6, ...v4]);
}
