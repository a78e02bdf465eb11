// US Social Security numbers written AAA-GG-SSSS. Numbers the SSA never issues are not matches:
// area 000, 666 or 9xx, group 00, serial 0000. Undashed nine-digit runs are too ambiguous to flag.
import { execAll, type Match } from './match.js';

export const US_SSN_MAX_LENGTH = 11;

const SSN = /(?<![\w-])(?!000|666|9)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\w)(?!-\d)/g;

export function findUsSsns(text: string): Match[] {
  return execAll(SSN, text);
}
