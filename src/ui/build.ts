// The last step of `npm run build`: bundles the admin console (src/ui/app, browser code that tsc
// type-checks with its own tsconfig first) with esbuild into dist/ui: assets/ with content-hashed
// names, and index.html pointing at them, which src/http/routes/ui.ts serves. The folder is built
// beside dist/ui and swapped in whole, so no half-built console is ever there to read; an
// unchanged source (same files, same esbuild and preact) is not bundled again.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Not served (the route knows no such type): what dist/ui was built from. */
const STAMP = '.source-digest';

/** The checkout: the nearest folder above this file holding package.json (from src/ or dist/src/). */
function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('no package.json above src/ui/build');
    dir = parent;
  }
  return dir;
}

/** The sources, this script and the bundler's and UI library's versions, as one digest. */
function sourceDigest(root: string, appDir: string): string {
  const hash = createHash('sha256');
  const files = (dir: string): string[] => readdirSync(dir).sort().flatMap((name) => (statSync(join(dir, name)).isDirectory() ? files(join(dir, name)) : [join(dir, name)]));
  for (const file of [...files(appDir), fileURLToPath(import.meta.url)]) hash.update(relative(root, file)).update('\0').update(readFileSync(file)).update('\0');
  const require = createRequire(join(root, 'package.json'));
  for (const name of ['esbuild', 'preact']) hash.update(`${name}@${(require(`${name}/package.json`) as { version: string }).version}\0`);
  return hash.digest('hex');
}

export async function buildConsole(root = projectRoot(), options: { force?: boolean } = {}): Promise<{ outDir: string; built: boolean }> {
  const appDir = join(root, 'src', 'ui', 'app');
  const outDir = join(root, 'dist', 'ui');
  const digest = sourceDigest(root, appDir);
  const stamp = join(outDir, STAMP);
  if (!options.force && existsSync(join(outDir, 'index.html')) && existsSync(stamp) && readFileSync(stamp, 'utf8') === digest) return { outDir, built: false };
  const staging = join(root, 'dist', `ui.building-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  const { build } = await import('esbuild');
  const result = await build({
    // Paths in the metafile are relative to this.
    absWorkingDir: root,
    entryPoints: { main: join(appDir, 'main.tsx') },
    tsconfig: join(appDir, 'tsconfig.json'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: true,
    sourcemap: 'linked',
    entryNames: 'assets/[name]-[hash]',
    assetNames: 'assets/[name]-[hash]',
    chunkNames: 'assets/[name]-[hash]',
    outdir: staging,
    metafile: true,
    logLevel: 'warning',
  });
  const url = (file: string) => `/ui/${relative(staging, join(root, file)).split(sep).join('/')}`;
  const outputs = Object.entries(result.metafile.outputs);
  const entry = outputs.find(([file, output]) => file.endsWith('.js') && output.entryPoint !== undefined);
  if (entry === undefined || entry[1].cssBundle === undefined) throw new Error('esbuild wrote no main script or stylesheet');
  const html = readFileSync(join(appDir, 'index.html'), 'utf8').replace('%SCRIPT%', url(entry[0])).replace('%STYLESHEET%', url(entry[1].cssBundle));
  writeFileSync(join(staging, 'index.html'), html);
  writeFileSync(join(staging, STAMP), digest);
  rmSync(outDir, { recursive: true, force: true });
  renameSync(staging, outDir);
  return { outDir, built: true };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  buildConsole(undefined, { force: process.argv.includes('--force') }).catch((err: unknown) => {
    process.stderr.write(`console build failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
