// What every detector returns, and the regex loop they share. Detectors are pure: a string in,
// UTF-16 spans out (end exclusive, in order, non-overlapping); they never see a policy.

export interface Match {
  readonly start: number;
  readonly end: number;
}

/**
 * Runs a global regex over `text` from the start; `accept` validates a candidate (checksums,
 * digit counts) and may shrink it. Empty matches are skipped so user patterns like `a*` cannot
 * produce zero-width findings or loop.
 */
export function execAll(re: RegExp, text: string, accept?: (m: RegExpExecArray) => Match | null): Match[] {
  const out: Match[] = [];
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (m[0].length === 0) {
      re.lastIndex = m.index + 1;
      continue;
    }
    const match = accept === undefined ? { start: m.index, end: m.index + m[0].length } : accept(m);
    if (match !== null) out.push(match);
  }
  return out;
}

/** Earliest start wins, then the longest: one detector built from several patterns reports each span once. */
export function dropOverlaps<T extends Match>(matches: T[]): T[] {
  matches.sort((a, b) => a.start - b.start || b.end - a.end);
  const out: T[] = [];
  let lastEnd = -1;
  for (const m of matches) {
    if (m.start < lastEnd) continue;
    out.push(m);
    lastEnd = m.end;
  }
  return out;
}
