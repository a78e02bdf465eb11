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
// rule on an 80 KB prompt), one that opens with the phrase's letters is not (about 0.2 ms).
/** The rules as run; `boundary`: a match must not follow a letter or digit. Exported for the equivalence test. */
export const INJECTION_RULES: ReadonlyArray<{ readonly id: string; readonly re: RegExp; readonly boundary: boolean }> = RULES.map(({ id, phrases }) => {
  const body = phrases.join('|').replaceAll('_', GAP).replaceAll("'", "['\u2019]");
  return { id, re: new RegExp(`(?:${body})(?![\\p{L}\\p{N}])`, 'gu'), boundary: true };
}).concat({ id: 'chat_template', re: CHAT_TEMPLATE, boundary: false });
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

export function findInjections(text: string, folded: FoldedText = foldText(text)): InjectionMatch[] {
  const t = foldLookAlikes(folded.text);
  const out: InjectionMatch[] = [];
  for (const { id, re, boundary } of INJECTION_RULES) {
    re.lastIndex = 0;
    for (let m = re.exec(t); m !== null; m = re.exec(t)) {
      // The lookbehind would have failed here: go on from the next position, as the regex would.
      if (boundary && wordBefore(t, m.index)) {
        re.lastIndex = m.index + 1;
        continue;
      }
      out.push({ id, start: folded.sourceStart[m.index] as number, end: folded.sourceEnd[m.index + m[0].length - 1] as number });
    }
  }
  return dropOverlaps(out);
}
