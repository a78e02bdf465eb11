// Scans streamed output as it arrives. Text is released only once no active rule could still
// match across the boundary: the scanner holds back, rule by rule, from where a match that later
// text could still make, grow or undo may start. For an email or a credential that is the run of
// their characters at the end (no space inside: in prose, the last word); for the other rules, as
// many characters as their longest match plus a little lookahead (capped at HOLD_CAP_CHARS). It
// never cuts through a match. Each scan covers the held text plus a little released left context
// (the rules look at most a few characters back), or, with admin regexes, up to `maxHold`
// released characters, so a match straddling chunk boundaries is found whole, and the
// concatenated releases equal scanText's redacted output for matches no longer than the hold.
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
  /** Rescan after this many new characters at least (default 64): fewer scans, a little more latency. */
  readonly scanStepChars?: number;
}

/** Latency bound: 256 characters covers every bounded built-in detector (emails are at most 254). */
export const HOLD_CAP_CHARS = 256;
/** How far past a match's end the built-in rules look ("not followed by a digit"): a match ending earlier is settled. */
const LOOKAHEAD_CHARS = 8;
/** Released text a scan sees before the held text, at least: the built-in rules look at most 3 characters back. */
const LOOKBEHIND_CHARS = 16;
/** A secret that is still growing (JWT, PEM block) is held at most this long; past it, text is released regardless. */
export const MAX_PENDING_CHARS = 16_384;

const NO_FINDINGS: readonly Finding[] = Object.freeze([]);
const NOTHING: StreamStep = Object.freeze({ release: '', findings: NO_FINDINGS });

const isHighSurrogate = (code: number): boolean => code >= 0xd800 && code <= 0xdbff;

export function holdFor(rules: readonly CompiledRule[]): number {
  let longest = 0;
  for (const rule of rules) longest = Math.max(longest, ruleHold(rule));
  return longest;
}

/** The most a rule's open match can reach back from the end of the text. */
function ruleHold(rule: CompiledRule): number {
  return Math.min(HOLD_CAP_CHARS, rule.maxLength + LOOKAHEAD_CHARS);
}

/** What the scanner holds back for one rule: its length bound, and where its open run starts. */
interface RuleHold {
  readonly hold: number;
  readonly openStart: ((text: string) => number) | undefined;
}

export class StreamScanner {
  /** Characters held back at most while no match is in progress (0: nothing to scan, text passes through). */
  readonly maxHold: number;
  readonly #rules: readonly CompiledRule[];
  readonly #openTails: ReadonlyArray<(text: string) => number>;
  readonly #holds: readonly RuleHold[];
  /** Released characters each scan sees again, at least (see #contextStart). */
  readonly #contextChars: number;
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
    this.#scanStep = Math.max(1, options.scanStepChars ?? 64);
    this.maxHold = holdFor(this.#rules);
    this.#holds = this.#rules.map((rule) => ({ hold: ruleHold(rule), openStart: rule.openStart }));
    // What the rules without an open run always hold; the first scan comes once the text passes it.
    let fixedHold = 0;
    for (const { hold, openStart } of this.#holds) if (openStart === undefined) fixedHold = Math.max(fixedHold, hold);
    // An admin regex's reach is unknown: it keeps the whole hold as context.
    this.#contextChars = this.#rules.some((rule) => rule.maxLength === Infinity) ? this.maxHold : Math.min(this.maxHold, Math.max(LOOKBEHIND_CHARS, fixedHold));
    this.#nextScanAt = fixedHold + this.#scanStep;
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
    this.#context = window.slice(this.#contextStart(window, cut), cut);
    this.#pending = window.slice(cut);
    // While a long secret is held, rescan less often (each scan covers all of it).
    this.#nextScanAt = this.#pending.length + Math.max(this.#scanStep, (this.#pending.length - this.maxHold) >> 2);
    return release.length === 0 && findings.length === 0 ? NOTHING : { release, findings };
  }

  /**
   * Where to stop releasing. Start where the hold begins (#holdStart), back to the start of a
   * secret still growing, then back until no match is cut in two (except a block/flag match longer
   * than the hold: it is reported from its first piece; a redaction is never split, or part of it
   * would leak). Never forward past the hold's start to release a finished match whole: the text
   * after it may begin a match that is still open (a hit the resolution drops, such as an email
   * overlapping a redacted key, can end inside the next key), and that one would be cut in two.
   * Past MAX_PENDING_CHARS only, the cut goes forward through whatever straddles it.
   */
  #cutPoint(window: string, ctx: number, hits: readonly Hit[]): number {
    const forced = window.length - ctx > MAX_PENDING_CHARS;
    let cut = Math.max(ctx, this.#holdStart(window));
    if (forced) {
      for (const h of hits) if (h.start < cut && h.end > cut) cut = h.end;
    } else {
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

  /**
   * Where the next scan's window begins. A detector sees nothing before it, so a window beginning
   * inside a run of an email's or a token's characters would show it a match there that the whole
   * text does not have, and that match, though dropped as context, would hide a real one after it
   * (a global search goes on from a match's end). Hence: far enough back that a match of a bounded
   * rule beginning there ends inside the context, then back to the start of any such run, at most
   * `maxHold` before the cut.
   */
  #contextStart(window: string, cut: number): number {
    const floor = Math.max(0, cut - this.maxHold);
    let start = Math.max(floor, cut - this.#contextChars);
    for (let moved = true; moved && start > floor; ) {
      moved = false;
      const before = window.slice(0, start);
      for (const { openStart } of this.#holds) {
        if (openStart === undefined) continue;
        const at = Math.max(floor, openStart(before));
        if (at < start) {
          start = at;
          moved = true;
        }
      }
    }
    return start;
  }

  /** The earliest place a match that later text could still make, grow or undo may start. */
  #holdStart(window: string): number {
    let start = window.length;
    for (const { hold, openStart } of this.#holds) {
      const bound = window.length - hold;
      const at = openStart === undefined ? bound : Math.max(bound, openStart(window));
      if (at < start) start = at;
    }
    return start;
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
