// IBANs: country code, two check digits, an alphanumeric BBAN; compact or in groups of four.
// A match must pass the ISO 13616 mod-97 check and, for countries in the registry table below,
// have that country's length. Uppercase only: IBANs are printed so, and lowercase prose in
// four-letter words ("ab12 this that with") would otherwise reach the checksum 1 time in 97.
import { execAll, type Match } from './match.js';

/** 34 characters plus one space per group of four. */
export const IBAN_MAX_LENGTH = 42;

const IBAN = /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])/g;

/** IBAN lengths by country (SWIFT IBAN registry); a country not listed only needs 15-34 characters. */
const LENGTHS: ReadonlyMap<string, number> = new Map(
  ('AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DK18 DO28 EE20 EG29 ' +
    'ES24 FI18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 HU28 IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 ' +
    'LB28 LC32 LI21 LT20 LU20 LV21 MC27 MD24 ME22 MK19 MR27 MT31 MU30 NL18 NO15 PK24 PL28 PS29 PT25 QA29 ' +
    'RO24 RS22 SA24 SC31 SE24 SI19 SK24 SM27 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20')
    .split(' ')
    .map((entry) => [entry.slice(0, 2), Number(entry.slice(2))] as const),
);

/** ISO 7064 mod 97-10 over the rearranged IBAN, letters as 10..35, folded digit by digit. */
export function ibanChecksumValid(iban: string): boolean {
  const rearranged = iban.slice(4) + iban.slice(0, 4);
  let remainder = 0;
  for (let i = 0; i < rearranged.length; i++) {
    const code = rearranged.charCodeAt(i);
    const value = code >= 65 ? code - 55 : code - 48;
    remainder = (value > 9 ? remainder * 100 + value : remainder * 10 + value) % 97;
  }
  return remainder === 1;
}

function validIban(candidate: string): boolean {
  const iban = candidate.replace(/ /g, '');
  const expected = LENGTHS.get(iban.slice(0, 2));
  const lengthOk = expected === undefined ? iban.length >= 15 && iban.length <= 34 : iban.length === expected;
  return lengthOk && ibanChecksumValid(iban);
}

export function findIbans(text: string): Match[] {
  return execAll(IBAN, text, (m) => (validIban(m[0]) ? { start: m.index, end: m.index + m[0].length } : null));
}
