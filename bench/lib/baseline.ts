// The baseline of the interleaved micro-benchmarks (bench:guardrails, bench:stream-chunks): src/ as
// committed at a git ref, bundled with esbuild from an entry that re-exports what the bench compares,
// and imported into the same process as the working tree's build, so both run in the same rounds.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * `entry` (TypeScript re-exports from `./src/...`) bundled against src/ at `ref`, in
 * dist/bench-baseline/<name>-<commit>/. git archive reads the commit: no worktree and no index
 * touched (others may be working in this checkout).
 */
export async function bundleAtRef<T>(ref: string, name: string, entry: string): Promise<{ module: T; commit: string }> {
  const commit = execFileSync('git', ['rev-parse', '--verify', `${ref}^{commit}`], { cwd: REPO, encoding: 'utf8' }).trim();
  const dir = join(REPO, 'dist', 'bench-baseline', `${name}-${commit}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const archive = execFileSync('git', ['archive', '--format=tar', commit, 'src'], { cwd: REPO, maxBuffer: 256 * 2 ** 20 });
  execFileSync('tar', ['-x', '-C', dir], { input: archive });
  writeFileSync(join(dir, 'entry.ts'), entry);
  const outfile = join(dir, 'bundle.mjs');
  await build({ entryPoints: [join(dir, 'entry.ts')], bundle: true, format: 'esm', platform: 'node', outfile, nodePaths: [join(REPO, 'node_modules')], logLevel: 'error' });
  return { module: (await import(pathToFileURL(outfile).href)) as T, commit };
}

/** The table on stdout, and the report as JSON when asked for. */
export async function emitReport(table: string, report: object, jsonPath: string | undefined): Promise<void> {
  process.stdout.write(`\n${table}\n`);
  if (jsonPath === undefined) return;
  await writeFile(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  progress(`wrote ${jsonPath}`);
}

export const pad = (value: unknown, width: number): string => String(value).padStart(width);
export const round = (n: number, digits = 1): number => Number(n.toFixed(digits));
export const progress = (line: string): void => void process.stderr.write(`${line}\n`);
