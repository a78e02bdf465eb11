// The dependency order of src/, checked on every run: a module imports only from its own folder or
// from a lower rank, so nothing calls back up (http/ calls everything; config/ calls nothing). Pure
// file reads and a small tokenizer, no TypeScript compiler: it runs in milliseconds.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * Top to bottom. A folder (or top-level file) imports from its own folder or from a lower rank;
 * entries of one rank never import each other. Type-only imports count too. A new folder under
 * src/ fails the test until it is given a rank here.
 */
export const LAYERS: ReadonlyArray<readonly [rank: number, members: readonly string[]]> = [
  [10, ['main.ts', 'cli.ts', 'admin-cli.ts']], // entry points: one unit (the cli starts the gateway and runs the admin commands)
  [9, ['http']],
  [8, ['tenancy']],
  [7, ['ledger', 'logs', 'litellm']],
  [6, ['workers']],
  [5, ['guardrails']],
  [4, ['tokens']],
  [3, ['providers']],
  [2, ['streaming', 'metrics', 'db']],
  [1, ['config', 'errors', 'json', 'log.ts', 'free-port.ts', 'heap-growth.ts']],
  [0, ['ui']], // the admin console: browser code and its build script, isolated (ISOLATED below)
];

/**
 * Members outside the order: they import nothing of the rest of src/ and nothing imports them.
 * ui/ is bundled for the browser (a server module pulled in would ship to it); the gateway serves
 * its built files (http/routes/ui.ts reads dist/ui) and imports none of its code.
 */
const ISOLATED: ReadonlySet<string> = new Set(['ui']);

/** Members that form one unit and may import each other. */
const UNITS: ReadonlyArray<readonly string[]> = [['main.ts', 'cli.ts', 'admin-cli.ts']];

/** Bare imports only one folder may make: the native HTTP server stays behind http/. */
const PACKAGE_OWNERS: Readonly<Record<string, string>> = { 'uWebSockets.js': 'http' };

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

const RANK = new Map(LAYERS.flatMap(([rank, members]) => members.map((m) => [m, rank] as const)));
const UNIT = new Map(UNITS.flatMap((members) => members.map((m) => [m, members[0]!] as const)));

interface Specifier {
  readonly text: string;
  readonly line: number;
}

type Token = { kind: 'word' | 'punct'; text: string; line: number } | { kind: 'string'; text: string; line: number };

/**
 * Identifiers, punctuation and string literals (template literals without `${}` count as strings);
 * comments and regex literals are skipped, so text inside them never reads as an import.
 */
export function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let i = 0;
  // One entry per open `{`: true when it opened a template literal's `${`.
  const braces: boolean[] = [];
  const n = source.length;

  const readTemplate = (): void => {
    // At the character after ` or after the } closing a `${`.
    const startLine = line;
    let text = '';
    while (i < n) {
      const c = source[i]!;
      if (c === '\\') {
        text += source[i + 1] ?? '';
        i += 2;
        continue;
      }
      if (c === '\n') line++;
      if (c === '`') {
        i++;
        tokens.push({ kind: 'string', text, line: startLine });
        return;
      }
      if (c === '$' && source[i + 1] === '{') {
        i += 2;
        braces.push(true);
        tokens.push({ kind: 'punct', text: '${', line });
        return;
      }
      text += c;
      i++;
    }
  };

  const regexMayStart = (): boolean => {
    const prev = tokens[tokens.length - 1];
    if (prev === undefined) return true;
    if (prev.kind === 'string') return false;
    if (prev.kind === 'word') return /^(return|typeof|instanceof|in|of|new|delete|void|throw|case|do|else|yield|await)$/.test(prev.text);
    return !(prev.text === ')' || prev.text === ']' || prev.text === '}');
  };

  while (i < n) {
    const c = source[i]!;
    if (c === '\n') {
      line++;
      i++;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (c === '/' && source[i + 1] === '/') {
      while (i < n && source[i] !== '\n') i++;
    } else if (c === '/' && source[i + 1] === '*') {
      const end = source.indexOf('*/', i + 2);
      const stop = end === -1 ? n : end + 2;
      for (let j = i; j < stop; j++) if (source[j] === '\n') line++;
      i = stop;
    } else if (c === "'" || c === '"') {
      let text = '';
      i++;
      while (i < n && source[i] !== c && source[i] !== '\n') {
        if (source[i] === '\\') i++;
        text += source[i] ?? '';
        i++;
      }
      i++;
      tokens.push({ kind: 'string', text, line });
    } else if (c === '`') {
      i++;
      readTemplate();
    } else if (c === '/' && regexMayStart()) {
      let inClass = false;
      i++;
      while (i < n && source[i] !== '\n') {
        const r = source[i]!;
        if (r === '\\') i++;
        else if (r === '[') inClass = true;
        else if (r === ']') inClass = false;
        else if (r === '/' && !inClass) break;
        i++;
      }
      i++;
      while (i < n && /[a-z]/.test(source[i]!)) i++;
      tokens.push({ kind: 'punct', text: '/regex/', line });
    } else if (/[A-Za-z_$]/.test(c)) {
      const start = i;
      while (i < n && /[\w$]/.test(source[i]!)) i++;
      tokens.push({ kind: 'word', text: source.slice(start, i), line });
    } else if (/[0-9]/.test(c)) {
      while (i < n && /[\w.]/.test(source[i]!)) i++;
      tokens.push({ kind: 'word', text: '0', line });
    } else if (c === '{') {
      braces.push(false);
      tokens.push({ kind: 'punct', text: c, line });
      i++;
    } else if (c === '}') {
      i++;
      if (braces.pop() === true) readTemplate();
      else tokens.push({ kind: 'punct', text: c, line });
    } else {
      tokens.push({ kind: 'punct', text: c, line });
      i++;
    }
  }
  return tokens;
}

/** Module specifiers of static imports, `export ... from`, side-effect imports and literal `import('...')`. */
export function importSpecifiers(source: string): Specifier[] {
  const tokens = tokenize(source);
  const found: Specifier[] = [];
  const isWord = (k: number, text: string) => tokens[k]?.kind === 'word' && tokens[k]!.text === text;
  const isPunct = (k: number, text: string) => tokens[k]?.kind === 'punct' && tokens[k]!.text === text;
  const push = (k: number) => {
    const t = tokens[k];
    if (t?.kind === 'string') found.push({ text: t.text, line: t.line });
  };
  for (let k = 0; k < tokens.length; k++) {
    if (isPunct(k - 1, '.')) continue; // obj.import, import.meta
    if (isWord(k, 'import')) {
      if (isPunct(k + 1, '.')) continue;
      if (isPunct(k + 1, '(')) {
        if (tokens[k + 2]?.kind === 'string' && (isPunct(k + 3, ')') || isPunct(k + 3, ','))) push(k + 2);
        continue;
      }
      // `import x from 'm'`, `import type { a } from 'm'`, `import 'm'`: the first string is the module.
      // Anything else after the word (`import:` as an object key, `{ import }`) is not an import.
      const next = tokens[k + 1];
      if (next === undefined || (next.kind === 'punct' && next.text !== '{' && next.text !== '*')) continue;
      let j = k + 1;
      while (j < tokens.length && tokens[j]!.kind !== 'string' && !isPunct(j, ';')) j++;
      push(j);
    } else if (isWord(k, 'export')) {
      let j = k + 1;
      if (isWord(j, 'type')) j++;
      if (isPunct(j, '*')) {
        while (j < tokens.length && !isWord(j, 'from') && !isPunct(j, ';')) j++;
      } else if (isPunct(j, '{')) {
        while (j < tokens.length && !isPunct(j, '}')) j++;
        j++;
      } else {
        continue;
      }
      if (isWord(j, 'from')) push(j + 1);
    }
  }
  return found;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return tsFiles(path);
    return /\.tsx?$/.test(entry.name) ? [path] : [];
  });
}

/** The folder or top-level file of src/ a path belongs to ('http', 'log.ts'), or undefined outside src/. */
function topLevelOf(path: string): string | undefined {
  const rel = relative(SRC, path);
  if (rel === '' || rel.startsWith('..')) return undefined;
  const first = rel.split(sep)[0]!;
  return first === rel ? first.replace(/\.js$/, '.ts') : first;
}

interface Arrow {
  readonly file: string;
  readonly line: number;
  readonly from: string;
  readonly to: string;
  readonly why: string;
}

function arrowsAgainstOrder(): { arrows: Arrow[]; files: number } {
  const files = tsFiles(SRC);
  const arrows: Arrow[] = [];
  for (const file of files) {
    const from = topLevelOf(file)!;
    const where = relative(resolve(SRC, '..'), file);
    const fromRank = RANK.get(from);
    for (const spec of importSpecifiers(readFileSync(file, 'utf8'))) {
      if (!spec.text.startsWith('.')) {
        const owner = PACKAGE_OWNERS[spec.text.split('/')[0]!];
        if (owner !== undefined && from !== owner) arrows.push({ file: where, line: spec.line, from, to: spec.text, why: `only ${owner}/ imports ${spec.text}` });
        continue;
      }
      const to = topLevelOf(resolve(dirname(file), spec.text));
      if (to === undefined) {
        arrows.push({ file: where, line: spec.line, from, to: spec.text, why: 'leaves src/' });
        continue;
      }
      if (to === from || (UNIT.get(to) ?? to) === (UNIT.get(from) ?? from)) continue;
      if (ISOLATED.has(from) || ISOLATED.has(to)) {
        arrows.push({ file: where, line: spec.line, from, to, why: `${ISOLATED.has(from) ? from : to}/ is isolated` });
        continue;
      }
      const toRank = RANK.get(to);
      if (fromRank === undefined || toRank === undefined) {
        arrows.push({ file: where, line: spec.line, from, to, why: `undeclared layer ${fromRank === undefined ? from : to}` });
      } else if (toRank >= fromRank) {
        arrows.push({ file: where, line: spec.line, from: `${from} (${fromRank})`, to: `${to} (${toRank})`, why: toRank === fromRank ? 'same rank' : 'upward' });
      }
    }
  }
  return { arrows, files: files.length };
}

describe('architecture: dependencies point down the declared order', () => {
  it('declares every folder and top-level file of src/', () => {
    const entries = readdirSync(SRC, { withFileTypes: true })
      .filter((e) => e.isDirectory() || e.name.endsWith('.ts'))
      .map((e) => e.name);
    expect(entries.filter((name) => !RANK.has(name)), 'give these a rank in LAYERS').toEqual([]);
  });

  it('has no import against the order (static, type-only, export-from, dynamic)', () => {
    const { arrows, files } = arrowsAgainstOrder();
    expect(files).toBeGreaterThan(50);
    expect(arrows.map((a) => `${a.file}:${a.line}  ${a.from} → ${a.to}  (${a.why})`)).toEqual([]);
  });
});

describe('importSpecifiers', () => {
  it('finds every import form, across lines, and nothing in comments or strings', () => {
    const source = [
      "import a from './a.js';",
      "import type { B } from '../b.js';",
      'import {',
      '  c,',
      '  type D,',
      "} from './c.js';",
      "import './side-effect.js';",
      "export { e } from './e.js';",
      "export type { F } from './f.js';",
      "export * from './g.js';",
      "export * as h from './h.js';",
      "const i = await import('./i.js');",
      "// import x from './comment.js';",
      "/* export * from './block.js'; */",
      "const s = \"import y from './string.js'\";",
      "const t = `import z from './template.js' ${await import('./in-template.js')}`;",
      "const re = /import w from '.\\/regex.js'/;",
      'export { local };',
      "const m = import.meta.url; export const from = 'not-a-module';",
      "const o = { import: 'not-a-module', from: 'x' };",
    ].join('\n');
    expect(importSpecifiers(source)).toEqual([
      { text: './a.js', line: 1 },
      { text: '../b.js', line: 2 },
      { text: './c.js', line: 6 },
      { text: './side-effect.js', line: 7 },
      { text: './e.js', line: 8 },
      { text: './f.js', line: 9 },
      { text: './g.js', line: 10 },
      { text: './h.js', line: 11 },
      { text: './i.js', line: 12 },
      { text: './in-template.js', line: 16 },
    ]);
  });
});
