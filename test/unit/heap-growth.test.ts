import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { buildConfig, ConfigError } from '../../src/config/load.js';
import { heapGrowingFlag } from '../../src/heap-growth.js';

describe('heapGrowingFlag', () => {
  it('names the V8 flag for a percent, and none for 0 (V8 decides)', () => {
    expect(heapGrowingFlag(30)).toBe('--heap-growing-percent=30');
    expect(heapGrowingFlag(0)).toBeUndefined();
  });

  it('refuses what V8 would misread', () => {
    expect(() => heapGrowingFlag(-1)).toThrow(RangeError);
    expect(() => heapGrowingFlag(1.5)).toThrow(RangeError);
  });

  // v8.setFlagsFromString ignores a flag it does not know; node's command line refuses one, so
  // this fails if the runtime ever drops or renames the flag the gateway sets.
  it('is a flag this Node knows', () => {
    const run = spawnSync(process.execPath, [heapGrowingFlag(30)!, '-e', 'process.exit(0)'], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const unknown = spawnSync(process.execPath, ['--heap-growing-percentage=30', '-e', 'process.exit(0)'], { encoding: 'utf8' });
    expect(unknown.status).not.toBe(0);
  });
});

describe('server.heapGrowingPercent', () => {
  it('defaults to 60 and takes 0 to 1000', () => {
    expect(buildConfig({}, {}, 'test').server.heapGrowingPercent).toBe(60);
    expect(buildConfig({ server: { heapGrowingPercent: 0 } }, {}, 'test').server.heapGrowingPercent).toBe(0);
    for (const bad of [-5, 2.5, 1001, '30']) {
      expect(() => buildConfig({ server: { heapGrowingPercent: bad } }, {}, 'test')).toThrow(ConfigError);
    }
  });
});
