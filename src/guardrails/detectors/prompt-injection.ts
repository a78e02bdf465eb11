// Prompt-injection heuristics: a curated list of known jailbreak and instruction-override
// phrasings, matched on folded text (fold-text.ts, plus Cyrillic/Greek look-alike letters folded
// to Latin) so case, spacing, punctuation between words and look-alikes do not hide them. A
// heuristic, not a classifier: it catches the copy-pasted attacks, not a paraphrase it never saw.
// Left out on purpose: bare "developer mode" and "enable developer mode" (how-to questions about
// phones and browsers), "from now on" (ordinary style instructions).
import { foldText, type FoldedText } from '../fold-text.js';
import { dropOverlaps, type Match } from './match.js';

export interface InjectionMatch extends Match {
  /** Rule id suffix: `ignore_previous` for the finding rule `injection:ignore_previous`. */
  readonly id: string;
}

/** Folded phrases are at most ~150 characters; the rest allows for invisible characters in the original. */
export const INJECTION_MAX_LENGTH = 200;

/** In a phrase, `_` stands for what may separate two words: spaces or punctuation, up to 6 characters. */
const GAP = '[^\\p{L}\\p{N}]{1,6}';
const IGNORE = '(?:ignore|disregard|forget|override|bypass|skip)';
const FILLER = '(?:all|any|every|each|of|the|your|my|these|those|that|and|or|other)';
const RULES: ReadonlyArray<{ readonly id: string; readonly phrases: readonly string[] }> = [
  {
    id: 'ignore_previous',
    phrases: [
      `${IGNORE}_(?:${FILLER}_){0,3}(?:previous|prior|preceding|above|earlier|foregoing|former|original|initial)_(?:${FILLER}_){0,2}` +
        '(?:instructions?|prompts?|rules|directions?|guidelines|commands?|messages?|context|constraints|text)',
      '(?:ignore|disregard|forget)_everything_(?:above|before|(?:you_were|you\'ve_been|you_have_been)_told)',
    ],
  },
  {
    id: 'ignore_system_prompt',
    phrases: [`${IGNORE}_(?:${FILLER}_){0,2}(?:system|developer|safety)_(?:prompts?|messages?|instructions?|rules|guidelines|polic(?:y|ies))`],
  },
  {
    id: 'reveal_system_prompt',
    phrases: [
      '(?:reveal|show|print|display|output|repeat|recite|tell_me|give_me|leak|dump|share|expose)_' +
        '(?:(?:me|us|your|the|all|of|full|entire|complete|exact|hidden|secret|original|initial|verbatim)_){0,4}' +
        '(?:system_(?:prompt|message|instructions?)|(?:initial|hidden|original|secret)_(?:prompt|instructions?)|instructions_(?:above|you_were_given)|prompt_above)',
      'what_(?:is|are|were)_your_(?:(?:exact|original|initial|full|hidden)_)?(?:system_prompt|instructions|initial_prompt)',
    ],
  },
  {
    id: 'dan',
    phrases: ['(?:you_are|you\'re|you_will_be|act_as|pretend_to_be|become)_(?:now_)?(?:a_|an_)?dan', 'do_anything_now', 'dan_mode'],
  },
  {
    id: 'developer_mode',
    phrases: [
      'developer_mode_(?:enabled|activated|output)',
      '(?:you_are|you\'re)_(?:now_)?in_developer_mode',
      '(?:act|respond|answer|reply)_(?:as|in|with)_developer_mode',
      '(?:chatgpt|ai|assistant|model)_with_developer_mode',
    ],
  },
  {
    id: 'no_restrictions',
    phrases: [
      '(?:pretend|imagine|act_as_if|act_like|assume|behave_as_if)_(?:that_)?you_(?:have|had|are_under)_no_' +
        '(?:restrictions|limitations|limits|rules|filters|guidelines|boundaries|constraints|censorship)',
      'you_(?:are|have_been)_(?:now_)?(?:freed|unrestricted|unfiltered|uncensored|jailbroken|unshackled)',
      '(?:without|no)_(?:any_)?(?:ethical|moral|content|safety)_(?:restrictions|guidelines|filters|limitations|constraints)',
    ],
  },
];
// Chat-template control tokens have no business in user text: they forge a system turn.
const CHAT_TEMPLATE = /<\|im_start\|>|<\|im_end\|>|<\|system\|>|<\|endoftext\|>|\[\/?inst\]|<<\/?sys>>/g;

// A phrase starts where no letter or digit precedes it. That check is made in code (wordBefore), not
// as a leading lookbehind: a regex that opens with one is tried at every position (about 1 ms per
// rule on an 80 KB prompt), one that opens with the phrase's letters is not. One pass of all the
// phrases (ANY_PHRASE) finds where some rule matches; each rule's own sticky regex is tried there only.
const BODIES = RULES.map(({ phrases }) => phrases.join('|').replaceAll('_', GAP).replaceAll("'", "['\u2019]"));
const END = '(?![\\p{L}\\p{N}])';
/** Each rule's phrases, sticky; the rule ids are RULES'. Exported for the equivalence test. */
export const PHRASE_RULES: ReadonlyArray<{ readonly id: string; readonly re: RegExp }> = RULES.map(({ id }, r) => ({ id, re: new RegExp(`(?:${BODIES[r]})${END}`, 'uy') }));
const ANY_PHRASE = new RegExp(`(?:${BODIES.map((body) => `(?:${body})`).join('|')})${END}`, 'gu');
const LETTER_OR_DIGIT_BEFORE = /(?<=[\p{L}\p{N}])/uy;

/** What `(?<![\p{L}\p{N}])` at `i` rejects: a letter or digit (code point) just before. */
function wordBefore(text: string, i: number): boolean {
  if (i === 0) return false;
  const code = text.charCodeAt(i - 1);
  if (code < 0x80) return (code >= 97 && code <= 122) || (code >= 65 && code <= 90) || (code >= 48 && code <= 57);
  LETTER_OR_DIGIT_BEFORE.lastIndex = i;
  return LETTER_OR_DIGIT_BEFORE.test(text);
}

/** Cyrillic and Greek letters that render like Latin ones (lowercase, after folding). */
const LOOK_ALIKES: ReadonlyMap<number, number> = new Map(
  [...'аaвbеeёeіiїiјjкkмmнhоoрpсcтtуyхxѕsԁdɡgıiɩiαaβbεeιiκkνvοoρpτtυuχx'.matchAll(/../gu)].map(
    ([pair]) => [pair.charCodeAt(0), pair.charCodeAt(1)] as const,
  ),
);

function foldLookAlikes(text: string): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const latin = text.charCodeAt(i) >= 0x80 ? LOOK_ALIKES.get(text.charCodeAt(i)) : undefined;
    if (latin === undefined) continue;
    out += text.slice(from, i) + String.fromCharCode(latin);
    from = i + 1;
  }
  return from === 0 ? text : out + text.slice(from);
}

function located(id: string, folded: FoldedText, at: number, length: number): InjectionMatch {
  return { id, start: folded.sourceStart[at] as number, end: folded.sourceEnd[at + length - 1] as number };
}

export function findInjections(text: string, folded: FoldedText = foldText(text)): InjectionMatch[] {
  const t = foldLookAlikes(folded.text);
  // Per rule, in rule order (dropOverlaps keeps the first of equal spans), and where that rule's own
  // global search would go on from: a rule is tried at a position only if its last match ended there
  // or before. Allocated at the first candidate: most texts have none.
  let found: InjectionMatch[][] | undefined;
  let from: Int32Array | undefined;
  ANY_PHRASE.lastIndex = 0;
  for (let m = ANY_PHRASE.exec(t); m !== null; m = ANY_PHRASE.exec(t)) {
    const at = m.index;
    // Every position where some rule matches is visited: the next search starts one past this one.
    ANY_PHRASE.lastIndex = at + 1;
    if (wordBefore(t, at)) continue;
    found ??= PHRASE_RULES.map(() => []);
    from ??= new Int32Array(PHRASE_RULES.length);
    for (let r = 0; r < PHRASE_RULES.length; r++) {
      if ((from[r] as number) > at) continue;
      const { id, re } = PHRASE_RULES[r]!;
      re.lastIndex = at;
      const hit = re.exec(t);
      if (hit === null) continue;
      found[r]!.push(located(id, folded, at, hit[0].length));
      from[r] = at + hit[0].length;
    }
  }
  const out = found === undefined ? [] : found.flat();
  CHAT_TEMPLATE.lastIndex = 0;
  for (let m = CHAT_TEMPLATE.exec(t); m !== null; m = CHAT_TEMPLATE.exec(t)) out.push(located('chat_template', folded, m.index, m[0].length));
  return dropOverlaps(out);
}
