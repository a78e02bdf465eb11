// The rule table a compiled policy runs: one entry per active detector, deny list or heuristic set,
// with its action, where it applies and how long a match can be (the stream scanner's hold-back).
// Rule order is the tie-break when two findings share a span, so it is fixed here.
import { compileDenyWords } from './detectors/deny-words.js';
import { denyPattern, findDenyPatterns } from './detectors/deny-patterns.js';
import { findCreditCards, CREDIT_CARD_MAX_LENGTH } from './detectors/credit-card.js';
import { emailOpenStart, findEmails, EMAIL_MAX_LENGTH } from './detectors/email.js';
import { findIbans, IBAN_MAX_LENGTH } from './detectors/iban.js';
import { findIpAddresses, IP_ADDRESS_MAX_LENGTH } from './detectors/ip-address.js';
import type { Match } from './detectors/match.js';
import { findPhones, PHONE_MAX_LENGTH } from './detectors/phone.js';
import { findInjections, INJECTION_MAX_LENGTH } from './detectors/prompt-injection.js';
import { findSecrets, secretOpenStart, secretOpenTail, SECRET_MAX_LENGTH } from './detectors/secret.js';
import { findUsSsns, US_SSN_MAX_LENGTH } from './detectors/us-ssn.js';
import { foldCount, foldTextTransient, type FoldedText } from './fold-text.js';
import { PII_DETECTORS, type GuardrailAction, type GuardrailPolicy, type PiiDetector, type RuleId } from './types.js';
import { compileUserPattern } from './user-pattern.js';

/** A finding before it is reported: `rank` orders rules on a tie, `placeholder` is set for redactions. */
export interface Hit {
  readonly rule: RuleId;
  readonly action: GuardrailAction;
  readonly start: number;
  readonly end: number;
  readonly rank: number;
  readonly placeholder: string | undefined;
}

/**
 * The text being scanned, folded once however many rules need the folded form. The fold's maps
 * are the thread's scratch arrays: should another text have been folded since, this one is
 * folded again rather than read through stale maps.
 */
export class ScanInput {
  #folded: FoldedText | undefined;
  #foldedAt = -1;
  #hasDigit: boolean | undefined;
  constructor(readonly text: string) {}
  get folded(): FoldedText {
    if (this.#folded === undefined || this.#foldedAt !== foldCount()) {
      this.#folded = foldTextTransient(this.text);
      this.#foldedAt = foldCount();
    }
    return this.#folded;
  }
  /** Most short prompts have no ASCII digit: then no number-shaped detector needs to run. */
  get hasDigit(): boolean {
    return (this.#hasDigit ??= ASCII_DIGIT.test(this.text));
  }
}

const ASCII_DIGIT = /[0-9]/;
const NO_HITS: readonly Hit[] = Object.freeze([]);

export interface CompiledRule {
  readonly action: GuardrailAction;
  /** Prompt-injection heuristics judge what a user sends, not what a model answers. */
  readonly inputOnly: boolean;
  /** Longest match in original characters; Infinity when unknowable (admin regexes). */
  readonly maxLength: number;
  /** Where a match that may still grow starts at the end of a text, or -1 (secrets only). */
  readonly openTail: ((text: string) => number) | undefined;
  /**
   * Where a match that later text could still make, grow or undo may start at the end of a text,
   * for rules whose matches (and the characters that decide them) are runs of one character class:
   * the start of the trailing run. Undefined: only maxLength bounds it.
   */
  readonly openStart: ((text: string) => number) | undefined;
  find(input: ScanInput, rank: number): readonly Hit[];
}

interface PiiSpec {
  readonly find: (text: string) => Match[];
  readonly maxLength: number;
  readonly openTail?: (text: string) => number;
  readonly openStart?: (text: string) => number;
  /** False when the detector cannot match: its pattern needs what the text does not have. */
  readonly mayMatch?: (input: ScanInput) => boolean;
}

// Every phone, card, SSN and IBAN has ASCII digits; an IP address has digits or IPv6's colons.
const needsDigit = (input: ScanInput): boolean => input.hasDigit;
const needsDigitOrColon = (input: ScanInput): boolean => input.hasDigit || input.text.includes(':');

const PII: Readonly<Record<PiiDetector, PiiSpec>> = {
  email: { find: findEmails, maxLength: EMAIL_MAX_LENGTH, openStart: emailOpenStart },
  phone: { find: findPhones, maxLength: PHONE_MAX_LENGTH, mayMatch: needsDigit },
  credit_card: { find: findCreditCards, maxLength: CREDIT_CARD_MAX_LENGTH, mayMatch: needsDigit },
  iban: { find: findIbans, maxLength: IBAN_MAX_LENGTH, mayMatch: needsDigit },
  us_ssn: { find: findUsSsns, maxLength: US_SSN_MAX_LENGTH, mayMatch: needsDigit },
  ip_address: { find: findIpAddresses, maxLength: IP_ADDRESS_MAX_LENGTH, mayMatch: needsDigitOrColon },
  secret: { find: findSecrets, maxLength: SECRET_MAX_LENGTH, openTail: secretOpenTail, openStart: secretOpenStart },
};

/** `[REDACTED:CREDIT_CARD]`: typed, so a reader (or the model) knows what was there. */
export function placeholderFor(detector: PiiDetector): string {
  return `[REDACTED:${detector.toUpperCase()}]`;
}

function hit(rule: RuleId, action: GuardrailAction, m: Match, rank: number, placeholder?: string): Hit {
  return { rule, action, start: m.start, end: m.end, rank, placeholder };
}

function piiRule(detector: PiiDetector, action: GuardrailAction): CompiledRule {
  const spec = PII[detector];
  const rule = `pii:${detector}`;
  const placeholder = action === 'redact' ? placeholderFor(detector) : undefined;
  return {
    action,
    inputOnly: false,
    maxLength: spec.maxLength,
    openTail: spec.openTail,
    openStart: spec.openStart,
    find: (input, rank) => {
      if (spec.mayMatch !== undefined && !spec.mayMatch(input)) return NO_HITS;
      const matches = spec.find(input.text);
      return matches.length === 0 ? NO_HITS : matches.map((m) => hit(rule, action, m, rank, placeholder));
    },
  };
}

function denyWordRule(words: readonly string[], action: GuardrailAction): CompiledRule {
  const matcher = compileDenyWords(words);
  return {
    action,
    inputOnly: false,
    maxLength: matcher.maxLength,
    openTail: undefined,
    openStart: undefined,
    find: (input, rank) => matcher.find(input.text, input.folded).map((m) => hit(`deny_word:${m.index}`, action, m, rank)),
  };
}

function denyPatternRule(sources: readonly string[], action: GuardrailAction): CompiledRule {
  const patterns = sources.map((source, i) => denyPattern(compileUserPattern(source, `deny_patterns[${i}]`)));
  return {
    action,
    inputOnly: false,
    maxLength: Infinity,
    openTail: undefined,
    openStart: undefined,
    find: (input, rank) => findDenyPatterns(patterns, input.text).map((m) => hit(`deny_pattern:${m.index}`, action, m, rank)),
  };
}

function injectionRule(action: GuardrailAction): CompiledRule {
  return {
    action,
    inputOnly: true,
    maxLength: INJECTION_MAX_LENGTH,
    openTail: undefined,
    openStart: undefined,
    find: (input, rank) => findInjections(input.text, input.folded).map((m) => hit(`injection:${m.id}`, action, m, rank)),
  };
}

/** Every active rule of a merged policy, in tie-break order. Throws GuardrailPatternError for a bad deny pattern. */
export function buildRules(policy: GuardrailPolicy): CompiledRule[] {
  const rules: CompiledRule[] = [];
  const denyAction = policy.deny_action ?? 'block';
  if (policy.deny_words !== undefined && policy.deny_words.length > 0) rules.push(denyWordRule(policy.deny_words, denyAction));
  if (policy.deny_patterns !== undefined && policy.deny_patterns.length > 0) rules.push(denyPatternRule(policy.deny_patterns, denyAction));
  if (policy.injection) rules.push(injectionRule(policy.injection));
  for (const detector of PII_DETECTORS) {
    const action = policy.pii?.[detector];
    if (action) rules.push(piiRule(detector, action));
  }
  return rules;
}
