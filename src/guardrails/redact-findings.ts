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

