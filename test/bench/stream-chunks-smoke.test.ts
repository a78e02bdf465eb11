// `npm run bench:stream-chunks` itself, not the gateway's speed: one round against HEAD must bundle
// the baseline from git, send the client the same frames from both trees for a plain and a guarded
// key, and write the JSON bench/README.md documents. No timing is asserted. Runs on the dist/ that
// `npm test`'s pretest build produced.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const RUNNER = fileURLToPath(new URL('../../dist/bench/stream-chunks.js', import.meta.url));

describe('bench:stream-chunks', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nemo-stream-chunks-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('measures both keys against HEAD and finds the same frames', async () => {
    const jsonPath = join(dir, 'out.json');
    const run = spawnSync(process.execPath, [RUNNER, '--rounds', '1', '--json', jsonPath], { encoding: 'utf8', timeout: 60_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toContain('same frames for the client from both trees');
    const report = JSON.parse(await readFile(jsonPath, 'utf8'));
    expect(report).toMatchObject({ scenario: 'stream-chunks', sameFrames: true, mismatches: [], baseline: { ref: 'HEAD' }, settings: { rounds: 1, upstreamPieces: 64 } });
    expect(report.baseline.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(report.rows.map((row: { key: string }) => row.key)).toEqual(['plain', 'guarded']);
    for (const row of report.rows) {
      for (const field of ['baselineUsPerStream', 'currentUsPerStream', 'currentUsPerChunk', 'speedup']) expect(row[field], `${row.key}.${field}`).toBeGreaterThan(0);
    }
  }, 90_000);
});
