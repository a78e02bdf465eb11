// From raw hits to what a scan reports. Overlaps are settled the same way everywhere (scanText and
// each stream window): order by earliest start, then longest, then rule order. Redactions keep the
// first of any overlapping group; block and flag findings are records and are all kept, and any
// block blocks, even one inside a redacted span.
import type { CompiledRule, Hit, ScanInput } from './rules.js';
import type { Finding } from './types.js';

export interface Resolution {
  /** Every kept hit, in order. */
  readonly hits: readonly Hit[];
  /** The kept redactions, in order, never overlapping. */
  readonly redactions: readonly Hit[];
  /** The first block hit in order, if any. */
  readonly blocked: Hit | undefined;
}

export function compareHits(a: Hit, b: Hit): number {
  return a.start - b.start || b.end - a.end || a.rank - b.rank || (a.rule < b.rule ? -1 : a.rule > b.rule ? 1 : 0);
}

/** Runs every rule over the input; hits starting before `from` (already released context) are dropped. */
export function collectHits(rules: readonly CompiledRule[], input: ScanInput, from = 0): Hit[] {
  const hits: Hit[] = [];
  rules.forEach((rule, rank) => {
    for (const h of rule.find(input, rank)) if (h.start >= from) hits.push(h);
  });
  return hits.sort(compareHits);
}

/** `hits` must be sorted by compareHits. */
export function resolveHits(hits: readonly Hit[]): Resolution {
  const kept: Hit[] = [];
  const redactions: Hit[] = [];
  let blocked: Hit | undefined;
  let redactedUntil = -1;
  for (const h of hits) {
    if (h.action === 'redact') {
      if (h.start < redactedUntil) continue;
      redactions.push(h);
      redactedUntil = h.end;
    } else if (h.action === 'block' && blocked === undefined) {
      blocked = h;
    }
    kept.push(h);
  }
  return { hits: kept, redactions, blocked };
}

/** `text[from, to)` with each redaction inside that range replaced by its placeholder. */
export function applyRedactions(text: string, from: number, to: number, redactions: readonly Hit[]): string {
  let out = '';
  let at = from;
  for (const r of redactions) {
    if (r.start < from || r.end > to) continue;
    out += text.slice(at, r.start) + (r.placeholder as string);
    at = r.end;
  }
  return out + text.slice(at, to);
}

/** The reported shape: no rank, no placeholder, offsets moved by `offset`; never the matched text. */
export function toFinding(h: Hit, offset = 0): Finding {
  return { rule: h.rule, action: h.action, start: h.start + offset, end: h.end + offset };
}
