// The docs stay navigable: every relative link in README.md and docs/*.md reaches a file of this
// repository, every #anchor a heading of its target (GitHub's slugs), every docs page is linked from
// the README, and each page's contents list links every `##` section it has.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DOCS = join(ROOT, 'docs');
const PAGES = [join(ROOT, 'README.md'), ...readdirSync(DOCS).filter((f) => f.endsWith('.md')).sort().map((f) => join(DOCS, f))];

interface Link {
  readonly line: number;
  readonly target: string;
}

/** The lines outside fenced code blocks, with their 1-based numbers and inline code spans blanked. */
function proseLines(text: string): Array<{ line: number; text: string }> {
  const out: Array<{ line: number; text: string }> = [];
  let fence: string | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const opener = /^\s*(`{3,}|~{3,})/.exec(raw)?.[1];
    if (fence !== undefined) {
      if (opener !== undefined && opener[0] === fence[0] && opener.length >= fence.length) fence = undefined;
      return;
    }
    if (opener !== undefined) {
      fence = opener;
      return;
    }
    out.push({ line: i + 1, text: raw.replace(/(`+)[^`]*?\1/g, (m) => ' '.repeat(m.length)) });
  });
  return out;
}

/** GitHub's anchor for a heading: lowercase, punctuation dropped (not `-` or `_`), spaces to `-`. */
function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link in a heading keeps its text
    .replace(/<[^>]+>/g, '');
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every heading's anchor in a markdown file, with GitHub's -1, -2 suffixes for repeats. */
function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fence: string | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const opener = /^\s*(`{3,}|~{3,})/.exec(raw)?.[1];
    if (fence !== undefined) {
      if (opener !== undefined && opener[0] === fence[0] && opener.length >= fence.length) fence = undefined;
      continue;
    }
    if (opener !== undefined) {
      fence = opener;
      continue;
    }
    const heading = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(raw)?.[1];
    if (heading === undefined) continue;
    const base = slug(heading);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** Inline links `[text](target)` and `[text](target "title")` in prose (not in code). */
function linksOf(text: string): Link[] {
  const links: Link[] = [];
  for (const { line, text: prose } of proseLines(text)) {
    for (const m of prose.matchAll(/\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      links.push({ line, target: m[1]! });
    }
  }
  return links;
}

/** `##` headings of a page, in order (outside code). */
function sectionsOf(text: string): string[] {
  const raw = text.split(/\r?\n/);
  return proseLines(text)
    .map((l) => /^##\s+(.*?)\s*$/.exec(raw[l.line - 1]!)?.[1])
    .filter((h): h is string => h !== undefined);
}

const name = (path: string) => relative(ROOT, path);

describe('slug', () => {
  it('follows GitHub: lowercase, punctuation dropped, spaces to dashes', () => {
    expect(slug('Rate limits and spend caps')).toBe('rate-limits-and-spend-caps');
    expect(slug('uWebSockets.js build')).toBe('uwebsocketsjs-build');
    expect(slug('Schema `nemo`, never `public`')).toBe('schema-nemo-never-public');
    expect(slug('Source: `src/`')).toBe('source-src');
    expect(slug('Build, test and run')).toBe('build-test-and-run');
    expect(slug('Performance: what was tried')).toBe('performance-what-was-tried');
  });
});

describe.each(PAGES.map((p) => [name(p), p]))('%s', (_label, page) => {
  const text = readFileSync(page, 'utf8');

  it('links only to files of this repository, and anchors to headings of their target', () => {
    const problems: string[] = [];
    for (const { line, target } of linksOf(text)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: ...
      const hash = target.indexOf('#');
      const pathPart = decodeURI(hash === -1 ? target : target.slice(0, hash));
      const anchor = hash === -1 ? undefined : decodeURIComponent(target.slice(hash + 1));
      const file = pathPart === '' ? page : resolve(dirname(page), pathPart);
      const where = `${name(page)}:${line} ${target}`;
      if (file !== ROOT && !file.startsWith(ROOT + sep)) {
        problems.push(`${where}: points outside the repository`);
        continue;
      }
      if (!existsSync(file)) {
        problems.push(`${where}: ${name(file)} does not exist`);
        continue;
      }
      if (anchor === undefined) continue;
      if (statSync(file).isDirectory() || !file.endsWith('.md')) {
        problems.push(`${where}: an anchor into something that is not a markdown file`);
      } else if (!anchorsOf(readFileSync(file, 'utf8')).has(anchor)) {
        problems.push(`${where}: no heading #${anchor} in ${name(file)}`);
      }
    }
    expect(problems).toEqual([]);
  });

  if (page !== PAGES[0]) {
    it('is linked from README.md', () => {
      const linked = linksOf(readFileSync(PAGES[0]!, 'utf8')).map((l) => resolve(ROOT, decodeURI(l.target.split('#')[0]!)));
      expect(linked, `README.md does not link ${name(page)}`).toContain(page);
    });

    it('has a title and a contents list that links every ## section', () => {
      expect(text, `${name(page)} must start with a # title`).toMatch(/^# \S/);
      const sections = sectionsOf(text).filter((s) => s !== 'Contents');
      expect(sections.length, `${name(page)} has no ## sections`).toBeGreaterThan(0);
      const start = text.search(/^## Contents\s*$/m);
      expect(start, `${name(page)} has no "## Contents"`).toBeGreaterThanOrEqual(0);
      const rest = text.slice(start).split(/\r?\n/).slice(1);
      const end = rest.findIndex((l) => /^## /.test(l));
      const contents = linksOf(rest.slice(0, end === -1 ? undefined : end).join('\n')).map((l) => l.target);
      const missing = sections.map((s) => `#${slug(s)}`).filter((a) => !contents.includes(a));
      expect(missing, `${name(page)}: sections missing from its contents`).toEqual([]);
    });
  }
});
