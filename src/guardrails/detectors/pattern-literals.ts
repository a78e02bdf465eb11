// The literals every match of a deny pattern must contain, worked out once when a policy compiles:
// a run of plain characters, or a required group's alternatives ("(?:falcon|osprey)-"). V8's
// linear-time engine has no literal search of its own (a pass costs ~45 ns a character per pattern,
// combined into one alternation or not), so a text holding none of a pattern's literals skips that
// pattern's pass. Conservative: anything not understood yields no literals (the pattern always runs).

/** Escapes that stand for one character class or assertion: a break in a literal run, two source units long. */
const CLASS_ESCAPES = new Set('dDwWsSbBnrtfv');
/** Escaped syntax characters: the character itself. */
const SYNTAX = new Set('^$\\.*+?()[]{}|/-');
const QUANTIFIER = /^\{(\d+)(?:,\d*)?\}/;

/** The index just past the class starting at `[` in `source[i]`, or -1. */
function skipClass(source: string, i: number): number {
  let j = i + 1;
  if (source[j] === '^') j++;
  // `[]` is the empty class in JavaScript: a `]` right after `[` (or `[^`) closes it.
  for (; j < source.length; j++) {
    if (source[j] === '\\') j++;
    else if (source[j] === ']') return j + 1;
  }
  return -1;
}

/** The index just past the group starting at `(` in `source[i]`, or -1. */
function skipGroup(source: string, i: number): number {
  let depth = 0;
  for (let j = i; j < source.length; j++) {
    const c = source[j];
    if (c === '\\') j++;
    else if (c === '[') {
      const end = skipClass(source, j);
      if (end < 0) return -1;
      j = end - 1;
    } else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return j + 1;
  }
  return -1;
}

/** Top-level alternatives of `source`, or undefined when its structure is not understood. */
function branches(source: string): string[] | undefined {
  const out: string[] = [];
  let from = 0;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (c === '[' || c === '(') {
      const end = c === '[' ? skipClass(source, i) : skipGroup(source, i);
      if (end < 0) return undefined;
      i = end - 1;
    } else if (c === '|') {
      out.push(source.slice(from, i));
      from = i + 1;
    }
  }
  out.push(source.slice(from));
  return out;
}

/** `(`, `(?:` or `(?<name>`: a group whose content is plain pattern (not a lookaround or modifier group); its length, else 0. */
function plainGroupOpen(source: string, i: number): number {
  if (source[i + 1] !== '?') return 1;
  if (source[i + 2] === ':') return 3;
  return source[i + 2] === '<' && source[i + 3] !== '=' && source[i + 3] !== '!' ? source.indexOf('>', i) + 1 - i : 0;
}

/** How good a factor is for skipping texts: its shortest literal, then fewer literals. */
function better(a: readonly string[], b: readonly string[]): boolean {
  const shortest = (f: readonly string[]) => Math.min(...f.map((l) => l.length));
  return shortest(a) > shortest(b) || (shortest(a) === shortest(b) && a.length < b.length);
}

/**
 * The best factor of one alternative: a run of literal characters, or a required group's own
 * literals (one of them is there); [] if none, undefined if the alternative is not understood.
 */
function bestFactor(branch: string): string[] | undefined {
  let best: string[] = [];
  let run = '';
  // Whether the last character of `run` is the atom just read (a quantifier after it takes it back).
  let lastIsAtom = false;
  const consider = (factor: string[]) => {
    if (factor.length > 0 && (best.length === 0 || better(factor, best))) best = factor;
  };
  const flush = () => {
    if (run.length > 0) consider([run]);
    run = '';
    lastIsAtom = false;
  };
  for (let i = 0; i < branch.length; ) {
    const c = branch[i] as string;
    if (c === '*' || c === '?' || (c === '{' && QUANTIFIER.test(branch.slice(i)))) {
      // Zero or more of the atom (or a count that may be fewer than one would think): drop it.
      if (lastIsAtom) run = run.slice(0, -1);
      flush();
      i += c === '{' ? (QUANTIFIER.exec(branch.slice(i)) as RegExpExecArray)[0].length : 1;
    } else if (c === '+') {
      // At least one: the atom is there once, but what follows is no longer adjacent to the run.
      lastIsAtom = false;
      flush();
      i++;
    } else if (c === '\\') {
      const next = branch[i + 1];
      if (next === undefined) return undefined;
      if (SYNTAX.has(next)) {
        run += next;
        lastIsAtom = true;
      } else if (CLASS_ESCAPES.has(next)) flush();
      else return undefined; // \x41, \u0041, \cJ, \0, octal: a character not spelled as itself
      i += 2;
    } else if (c === '[') {
      flush();
      i = skipClass(branch, i);
      if (i < 0) return undefined;
    } else if (c === '(') {
      flush();
      const end = skipGroup(branch, i);
      if (end < 0) return undefined;
      const open = plainGroupOpen(branch, i);
      // A group that may match zero times (?, *, {0,...}) is not required.
      const count = QUANTIFIER.exec(branch.slice(end));
      const optional = branch[end] === '?' || branch[end] === '*' || (count !== null && Number(count[1]) === 0);
      if (open > 0 && !optional) consider(requiredLiterals(branch.slice(i + open, end - 1)) ?? []);
      i = end;
    } else if (c === '.' || c === '^' || c === '$' || c === '{' || c === '}' || c === ']' || c === ')') {
      flush();
      i++;
    } else {
      run += c;
      lastIsAtom = true;
      i++;
    }
  }
  flush();
  return best;
}

/**
 * Literals at least one of which every match of `source` (a compiled user pattern) contains, from
 * each top-level alternative; undefined when some alternative has none or the pattern is not understood.
 */
export function requiredLiterals(source: string): string[] | undefined {
  const alternatives = branches(source);
  if (alternatives === undefined) return undefined;
  const literals: string[] = [];
  for (const alternative of alternatives) {
    const factor = bestFactor(alternative);
    if (factor === undefined || factor.length === 0) return undefined;
    for (const literal of factor) if (!literals.includes(literal)) literals.push(literal);
  }
  return literals;
}
