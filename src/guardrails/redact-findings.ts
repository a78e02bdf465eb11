// A scanned text's redacted form rebuilt from its findings alone: a cached verdict keeps only the
// findings (offsets and rules), never a copy of the text, and the caller that has the text again
// rebuilds what the scan would have returned. Redactions are PII rules only (`pii:<detector>`);
// the findings a scan reports never overlap where they redact (resolve.ts keeps the first).
import { placeholderFor } from './rules.js';
import type { Finding, PiiDetector } from './types.js';

const PII_PREFIX = 'pii:';

/** `text` with each redact finding replaced by its placeholder; undefined when none redacts (as ScanResult.redacted). */
export function redactFindings(text: string, findings: readonly Finding[]): string | undefined {
  let out: string | undefined;
  let at = 0;
  for (const finding of findings) {
    if (finding.action !== 'redact') continue;
    out = (out ?? '') + text.slice(at, finding.start) + placeholderFor(finding.rule.slice(PII_PREFIX.length) as PiiDetector);
    at = finding.end;
  }
  return out === undefined ? undefined : out + text.slice(at);
}


/**
 * An upper bound of what these findings' redactions add to their text's UTF-8 bytes, from the
 * findings alone (no pass over the text): each placeholder's bytes less its span's UTF-16 units,
 * since a removed unit took at least one byte. Exact for spans of ASCII, as PII mostly is.
 */
export function redactionGrowthBytes(findings: readonly Finding[]): number {
  let growth = 0;
  for (const finding of findings) {
    if (finding.action !== 'redact') continue;
    growth += placeholderFor(finding.rule.slice(PII_PREFIX.length) as PiiDetector).length - (finding.end - finding.start);
  }
  return growth;
}
