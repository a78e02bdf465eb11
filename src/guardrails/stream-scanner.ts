// Scans streamed output as it arrives. Text is released only once no active rule could still
// match across the boundary: the scanner holds back a tail of `maxHold` characters (the longest
// match of the active rules plus a little lookahead, capped at HOLD_CAP_CHARS) and never cuts
// through a match. Each scan covers the held text plus up to `maxHold` released characters of
// left context, so a match straddling chunk boundaries is found whole, and the concatenated
// releases equal scanText's redacted output for matches no longer than the hold.
// Longer matches: JWTs and PEM blocks are held until complete (secretOpenTail), up to
// MAX_PENDING_CHARS; any other redaction is held whole until settled; an admin regex matching
// more than `maxHold` characters may be reported in pieces (it blocks or flags from the first).
import type { CompiledPolicy } from './policy.js';
import { applyRedactions, collectHits, resolveHits, toFinding } from './resolve.js';
import { ScanInput, type CompiledRule, type Hit } from './rules.js';
import type { Finding } from './types.js';

export interface StreamStep {
  /** Text safe to send on, redactions applied; '' while held back. */
  readonly release: string;
  /** Set once a block rule matched: send an error event, release nothing more. */
  readonly blocked?: Finding;
  /** Findings in the text this step released (offsets into the whole output), for guardrail events. */
  readonly findings: readonly Finding[];
}

export interface StreamScannerOptions {
  /** Rescan after this many new characters at least (default 32): fewer scans, a little more latency. */
  readonly scanStepChars?: number;
}

/** Latency bound: 256 characters covers every bounded built-in detector (emails are at most 254). */
export const HOLD_CAP_CHARS = 256;
/** How far past a match's end the built-in rules look ("not followed by a digit"): a match ending earlier is settled. */
const LOOKAHEAD_CHARS = 8;
/** A secret that is still growing (JWT, PEM block) is held at most this long; past it, text is released regardless. */
export const MAX_PENDING_CHARS = 16_384;

const NO_FINDINGS: readonly Finding[] = Object.freeze([]);
const NOTHING: StreamStep = Object.freeze({ release: '', findings: NO_FINDINGS });

const isHighSurrogate = (code: number): boolean => code >= 0xd800 && code <= 0xdbff;

export function holdFor(rules: readonly CompiledRule[]): number {
  let longest = 0;
  for (const rule of rules) longest = Math.max(longest, rule.maxLength);
  return rules.length === 0 ? 0 : Math.min(HOLD_CAP_CHARS, longest + LOOKAHEAD_CHARS);
}

export class StreamScanner {
  /** Characters held back at most while no match is in progress (0: nothing to scan, text passes through). */
  readonly maxHold: number;
  readonly #rules: readonly CompiledRule[];
  readonly #openTails: ReadonlyArray<(text: string) => number>;
  readonly #scanStep: number;
  /** The last released characters (original text): left context for the next scan. */
  #context = '';
  #pending = '';
  /** Offset of #pending[0] in the whole output. */
  #releasedChars = 0;
  #nextScanAt: number;
  #blocked: Finding | undefined;
  readonly #findings: Finding[] = [];

  constructor(compiled: CompiledPolicy, options: StreamScannerOptions = {}) {
    this.#rules = compiled.outputRules;
    this.#openTails = this.#rules.flatMap((rule) => (rule.openTail === undefined ? [] : [rule.openTail]));
    this.#scanStep = Math.max(1, options.scanStepChars ?? 32);
    this.maxHold = holdFor(this.#rules);
    this.#nextScanAt = this.maxHold + this.#scanStep;
  }

  /** Every finding so far, in output order. */
  get findings(): readonly Finding[] {
    return this.#findings;
  }

  push(delta: string): StreamStep {
    if (this.#blocked !== undefined) return { release: '', blocked: this.#blocked, findings: NO_FINDINGS };
    if (this.maxHold === 0) return delta.length === 0 ? NOTHING : { release: delta, findings: NO_FINDINGS };
    this.#pending += delta;
    return this.#pending.length < this.#nextScanAt ? NOTHING : this.#scan(false);
  }

  /** The stream is over: everything held is scanned and released (or the stream is blocked). */
  end(): StreamStep {
    if (this.#blocked !== undefined) return { release: '', blocked: this.#blocked, findings: NO_FINDINGS };
    return this.#pending.length === 0 ? NOTHING : this.#scan(true);
  }

  #scan(final: boolean): StreamStep {
    const ctx = this.#context.length;
    const window = this.#context + this.#pending;
    const hits = collectHits(this.#rules, new ScanInput(window), ctx);
    const cut = final ? window.length : this.#cutPoint(window, ctx, hits);
    const { hits: kept, redactions, blocked } = resolveHits(hits);
    const offset = this.#releasedChars - ctx;
    if (blocked !== undefined && blocked.start < cut) return this.#block(window, ctx, kept, redactions, blocked, offset);
    const release = applyRedactions(window, ctx, cut, redactions);
    const findings = this.#record(kept, cut, offset);
    this.#releasedChars += cut - ctx;
    this.#context = window.slice(Math.max(0, cut - this.maxHold), cut);
    this.#pending = window.slice(cut);
    // While a long secret is held, rescan less often (each scan covers all of it).
    this.#nextScanAt = this.#pending.length + Math.max(this.#scanStep, (this.#pending.length - this.maxHold) >> 2);
    return release.length === 0 && findings.length === 0 ? NOTHING : { release, findings };
  }

  /**
   * Where to stop releasing. Start `maxHold` before the end; move forward past a settled match
   * that straddles that point, back to the start of a secret still growing, then back until no
   * match is cut in two (except a block/flag match longer than the hold: it is reported from its
   * first piece; a redaction is never split, or part of it would leak).
   */
  #cutPoint(window: string, ctx: number, hits: readonly Hit[]): number {
    const forced = window.length - ctx > MAX_PENDING_CHARS;
    const settled = window.length - LOOKAHEAD_CHARS;
    let cut = Math.max(ctx, window.length - this.maxHold);
    for (const h of hits) if (h.start < cut && h.end > cut && (forced || h.end <= settled)) cut = h.end;
    if (!forced) {
      for (const openTail of this.#openTails) {
        const tail = openTail(window);
        if (tail >= ctx && tail < cut) cut = tail;
      }
    }
    for (let moved = true; moved; ) {
      moved = false;
      for (const h of hits) {
        if (h.start < cut && h.end > cut && (h.action === 'redact' || h.end - h.start < this.maxHold)) {
          cut = h.start;
          moved = true;
        }
      }
    }
    // Never end a release between the two halves of a surrogate pair: it would not encode.
    if (cut > ctx && isHighSurrogate(window.charCodeAt(cut - 1))) cut--;
    return Math.max(cut, ctx);
  }

  /** Releases what precedes the block (not cutting a redaction in two), then nothing more. */
  #block(window: string, ctx: number, kept: readonly Hit[], redactions: readonly Hit[], blocked: Hit, offset: number): StreamStep {
    let until = blocked.start;
    for (const r of redactions) if (r.start < until && r.end > until) until = r.start;
    const release = applyRedactions(window, ctx, until, redactions);
    this.#blocked = toFinding(blocked, offset);
    const findings = [...this.#record(kept, until, offset), this.#blocked];
    this.#findings.push(this.#blocked);
    this.#context = '';
    this.#pending = '';
    return { release, blocked: this.#blocked, findings };
  }

  #record(kept: readonly Hit[], until: number, offset: number): readonly Finding[] {
    let out: Finding[] | undefined;
    for (const h of kept) {
      if (h.start >= until) break;
      const finding = toFinding(h, offset);
      (out ??= []).push(finding);
      this.#findings.push(finding);
    }
    return out ?? NO_FINDINGS;
  }
}
