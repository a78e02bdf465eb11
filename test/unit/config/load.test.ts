import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, it, expect } from 'vitest';
import { DEFAULT_MOCK_MODELS } from '../../../src/config/default-models.js';
import { buildConfig, ConfigError, loadConfig, type Config } from '../../../src/config/load.js';

/** Runs `fn` expecting a ConfigError and returns its problems. */
function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

function route(config: Config, name: string) {
  const r = config.models.get(name);
  if (!r) throw new Error(`no route ${name}`);
  return r;
}

const openai = (extra: Record<string, unknown> = {}) => ({ provider: 'openai-compatible', model: 'gpt-4o-mini', baseUrl: 'https://api.openai.com/v1', ...extra });

describe('buildConfig defaults', () => {
  const config = buildConfig({}, {}, 'test');

  it('serves the built-in mock models when no models are configured', () => {
    expect([...config.models.keys()]).toEqual(DEFAULT_MOCK_MODELS.map((m) => m.name));
    for (const r of config.models.values()) {
      expect(r.deployments.length).toBeGreaterThan(0);
      for (const d of r.deployments) {
        expect(d.provider).toBe('mock');
        expect(d.baseUrl).toBeUndefined();
        expect(d.mock).toBeDefined();
      }
    }
    expect(route(config, 'mock-fast').deployments[0]!.mock).toEqual(DEFAULT_MOCK_MODELS[0]!.deployments[0]!.mock);
  });

  it('listens on 0.0.0.0:8080 with a 4 MiB body limit', () => {
    expect(config.server.port).toBe(8080);
    expect(config.server.host).toBe('0.0.0.0');
    expect(config.server.maxBodyBytes).toBe(4 * 1024 * 1024);
    expect(config.masterKey).toBeUndefined();
    expect(config.source).toBe('test');
  });

  it('fills upstream defaults', () => {
    expect(config.upstream).toMatchObject({ maxAttempts: 3, cooldownMs: 30_000, connectTimeoutMs: 5_000 });
  });
});

describe('buildConfig env overrides', () => {
  it('takes PORT, HOST and NEMO_MAX_BODY_BYTES over the file', () => {
    const config = buildConfig({ server: { port: 1234, host: '10.0.0.1', maxBodyBytes: 10 } }, { PORT: '9090', HOST: '127.0.0.1', NEMO_MAX_BODY_BYTES: '2048' }, 'test');
    expect(config.server).toMatchObject({ port: 9090, host: '127.0.0.1', maxBodyBytes: 2048 });
  });

  it('ignores empty env values', () => {
    const config = buildConfig({ server: { port: 1234 } }, { PORT: '', HOST: '' }, 'test');
    expect(config.server.port).toBe(1234);
    expect(config.server.host).toBe('0.0.0.0');
  });

  it('reads the master key from the env var the file names', () => {
    expect(buildConfig({ auth: { masterKeyEnv: 'MY_MASTER' } }, { MY_MASTER: 'mk-1-0123456789abcdef' }, 'test').masterKey).toBe('mk-1-0123456789abcdef');
    expect(buildConfig({}, { NEMO_MASTER_KEY: 'mk-2-0123456789abcdef' }, 'test').masterKey).toBe('mk-2-0123456789abcdef');
  });

  it('refuses a master key that is short or shaped like an org API key', () => {
    expect(problemsOf(() => buildConfig({}, { NEMO_MASTER_KEY: 'short' }, 'test')).join()).toContain('at least 16');
    expect(problemsOf(() => buildConfig({}, { NEMO_MASTER_KEY: `sk-nemo-${'a'.repeat(43)}` }, 'test')).join()).toContain('sk-nemo-');
  });

  it('takes NEMO_LITELLM=1 or 0 over litellm.enabled, and refuses anything else', () => {
    expect(buildConfig({}, {}, 'test').litellm).toEqual({ enabled: false, keyCacheTtlMs: 30_000, driftCheckIntervalMs: 60_000 });
    expect(buildConfig({}, { NEMO_LITELLM: '1' }, 'test').litellm.enabled).toBe(true);
    expect(buildConfig({ litellm: { enabled: true } }, { NEMO_LITELLM: '0' }, 'test').litellm.enabled).toBe(false);
    expect(problemsOf(() => buildConfig({}, { NEMO_LITELLM: 'yes' }, 'test')).join()).toContain('NEMO_LITELLM: must be 1 or 0');
  });

  it('rejects PORT=abc and an out-of-range NEMO_MAX_BODY_BYTES', () => {
    const problems = problemsOf(() => buildConfig({}, { PORT: 'abc', NEMO_MAX_BODY_BYTES: '0' }, 'test'));
    expect(problems.some((p) => p.includes('PORT') && p.includes('abc'))).toBe(true);
    expect(problems.some((p) => p.includes('maxBodyBytes'))).toBe(true);
  });
});

describe('buildConfig problems', () => {
  it('lists every problem at once: schema, env and model problems together', () => {
    const raw = {
      bogus: true,
      upstream: { maxAttempts: 'three' },
      models: [
        { name: 'dup', deployments: [{ provider: 'openai-compatible', model: 'gpt-4o-mini' }] },
        { name: 'dup', deployments: [openai({ apiKeyEnv: 'UNSET_KEY' })] },
      ],
    };
    const problems = problemsOf(() => buildConfig(raw, { PORT: 'abc' }, 'test'));
    const has = (re: RegExp) => expect(problems.some((p) => re.test(p)), `${re} in:\n${problems.join('\n')}`).toBe(true);
    has(/bogus/);
    has(/upstream\.maxAttempts/);
    has(/^PORT: .*abc/);
    has(/models\.0\.deployments\.0\.baseUrl/);
    has(/UNSET_KEY/);
    has(/duplicate model name "dup"/);
  });

  it('lists every schema problem and the env problem together', () => {
    const problems = problemsOf(() => buildConfig({ bogus: true, upstream: { maxAttempts: 'three' }, server: { nope: 1 } }, { PORT: 'abc' }, 'test'));
    expect(problems.some((p) => p.includes('bogus'))).toBe(true);
    expect(problems.some((p) => p.startsWith('upstream.maxAttempts'))).toBe(true);
    expect(problems.some((p) => p.includes('nope'))).toBe(true);
    expect(problems.some((p) => p.startsWith('PORT'))).toBe(true);
  });

  it('lists every model problem together with the env problem', () => {
    const raw = {
      models: [
        { name: 'dup', deployments: [{ provider: 'openai-compatible', model: 'x' }] },
        { name: 'dup', deployments: [openai({ apiKeyEnv: 'UNSET_KEY', id: 'same' }), openai({ id: 'same' })] },
        { name: 'other', deployments: [openai({ mock: { ttftMs: 1 } })] },
      ],
    };
    const problems = problemsOf(() => buildConfig(raw, { PORT: 'abc' }, 'test'));
    expect(problems).toHaveLength(6);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^PORT: /),
        'models.0.deployments.0.baseUrl: required for provider openai-compatible',
        'models.1.name: duplicate model name "dup"',
        'models.1.deployments.0.apiKeyEnv: environment variable UNSET_KEY is not set',
        'models.1.deployments.1.id: duplicate deployment id "same"',
        'models.2.deployments.0.mock: only for provider mock',
      ]),
    );
  });

  it('puts every problem in the error message', () => {
    try {
      buildConfig({ bogus: 1 }, { PORT: 'abc' }, 'test');
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toContain('bogus');
      expect((err as Error).message).toContain('PORT');
    }
  });

  it('rejects a non-object config', () => {
    expect(problemsOf(() => buildConfig([1, 2], {}, 'test')).length).toBeGreaterThan(0);
    expect(problemsOf(() => buildConfig('port: 1', {}, 'test')).length).toBeGreaterThan(0);
  });
});

describe('buildConfig models', () => {
  const secret = 'sk-very-secret-123';
  const config = buildConfig(
    {
      models: [
        {
          name: 'gpt',
          deployments: [
            openai({ apiKeyEnv: 'OPENAI_KEY', maxOutputTokens: 8192, headers: { 'x-team': 'a' } }),
            openai({ id: 'backup', baseUrl: 'https://backup.test/v1/', maxOutputTokens: 2048 }),
            openai({ weight: 2 }),
          ],
        },
        { name: 'claude', ownedBy: 'anthropic', deployments: [{ provider: 'anthropic', model: 'claude-sonnet-4' }] },
        { name: 'local', deployments: [{ provider: 'mock', model: 'm', mock: { fault: 'http-429' } }] },
      ],
    },
    { OPENAI_KEY: secret },
    'test',
  );

  it('defaults deployment ids to <model>#<index>', () => {
    expect(route(config, 'gpt').deployments.map((d) => d.id)).toEqual(['gpt#0', 'backup', 'gpt#2']);
    expect(route(config, 'claude').deployments[0]!.id).toBe('claude#0');
    expect(route(config, 'gpt').deployments.every((d) => d.publicModel === 'gpt')).toBe(true);
  });

  it('bounds a route by the smallest maxOutputTokens of its deployments', () => {
    expect(route(config, 'gpt').maxOutputTokens).toBe(2048);
    expect(route(config, 'claude').maxOutputTokens).toBe(4096);
  });

  it('gives anthropic its default baseUrl and strips trailing slashes', () => {
    expect(route(config, 'claude').deployments[0]!.baseUrl).toBe('https://api.anthropic.com/v1');
    expect(route(config, 'gpt').deployments[1]!.baseUrl).toBe('https://backup.test/v1');
  });

  it('fills mock defaults for mock deployments and none for others', () => {
    expect(route(config, 'local').deployments[0]!.mock).toEqual({ ttftMs: 0, tokensPerSecond: 0, completionTokens: 16, reportUsage: true, fault: 'http-429' });
    expect(route(config, 'gpt').deployments[0]!.mock).toBeUndefined();
  });

  it('resolves the api key from env but keeps it out of enumeration, JSON and inspect', () => {
    const d = route(config, 'gpt').deployments[0]!;
    expect(d.apiKey).toBe(secret);
    expect(route(config, 'gpt').deployments[1]!.apiKey).toBeUndefined();
    expect(Object.keys(d)).not.toContain('apiKey');
    expect(Object.keys(d)).not.toContain('apiKeyEnv');
    expect({ ...d }).not.toHaveProperty('apiKey');
    const json = JSON.stringify({ ...config, models: [...config.models.values()] });
    expect(json).toContain('gpt#0');
    expect(json).not.toContain(secret);
    expect(inspect(config, { depth: null })).not.toContain(secret);
  });

  it('freezes the result deeply', () => {
    const r = route(config, 'gpt');
    const d = r.deployments[0]!;
    for (const value of [config, config.server, config.upstream, config.models, r, r.deployments, d, d.headers, route(config, 'local').deployments[0]!.mock]) {
      expect(Object.isFrozen(value)).toBe(true);
    }
    expect(() => {
      (config.server as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (d.headers as Record<string, string>)['x-evil'] = '1';
    }).toThrow(TypeError);
    expect(() => {
      (r.deployments as unknown as unknown[]).push(d);
    }).toThrow(TypeError);
    expect(() => {
      (d as { apiKey: string }).apiKey = 'other';
    }).toThrow(TypeError);
    expect(d.apiKey).toBe(secret);
  });

  it('freezes the model table itself (regression: Object.freeze does not stop Map#set/delete)', () => {
    // A config of its own: if the Map is mutable this test must not change the shared one.
    const own = buildConfig({}, {}, 'test');
    const models = own.models as Map<string, unknown>;
    expect(() => models.set('injected', route(own, 'mock-fast'))).toThrow();
    expect(() => models.delete('mock-fast')).toThrow();
    expect(() => models.clear()).toThrow();
    expect([...own.models.keys()]).toEqual(DEFAULT_MOCK_MODELS.map((m) => m.name));
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nemo-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('uses the built-in mock models without NEMO_CONFIG', () => {
    const config = loadConfig({});
    expect([...config.models.keys()]).toEqual(DEFAULT_MOCK_MODELS.map((m) => m.name));
    expect(config.source).toBe('built-in mock models (no NEMO_CONFIG)');
  });

  it('reads a YAML file', () => {
    const path = join(dir, 'nemo.yaml');
    writeFileSync(
      path,
      ['server:', '  port: 7000', 'models:', '  - name: gpt', '    deployments:', '      - provider: openai-compatible', '        model: gpt-4o', '        baseUrl: https://api.openai.com/v1', ''].join('\n'),
    );
    const config = loadConfig({ NEMO_CONFIG: path, HOST: '127.0.0.1' });
    expect(config.server.port).toBe(7000);
    expect(config.server.host).toBe('127.0.0.1');
    expect([...config.models.keys()]).toEqual(['gpt']);
    expect(route(config, 'gpt').deployments[0]!.model).toBe('gpt-4o');
    expect(config.source).toBe(`config file ${path}`);
  });

  it('reads a JSON file', () => {
    const path = join(dir, 'nemo.json');
    writeFileSync(path, JSON.stringify({ models: [{ name: 'claude', deployments: [{ provider: 'anthropic', model: 'claude-haiku', apiKeyEnv: 'ANTHROPIC_API_KEY' }] }] }));
    const config = loadConfig({ NEMO_CONFIG: path, ANTHROPIC_API_KEY: 'ak', PORT: '0' });
    expect(config.server.port).toBe(0);
    expect(route(config, 'claude').deployments[0]!.apiKey).toBe('ak');
    expect(route(config, 'claude').deployments[0]!.baseUrl).toBe('https://api.anthropic.com/v1');
  });

  it('treats an empty YAML file as an empty config', () => {
    const path = join(dir, 'empty.yaml');
    writeFileSync(path, '');
    expect([...loadConfig({ NEMO_CONFIG: path }).models.keys()]).toEqual(DEFAULT_MOCK_MODELS.map((m) => m.name));
  });

  it('reports validation problems of a file as ConfigError', () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, 'server:\n  port: "high"\n');
    expect(problemsOf(() => loadConfig({ NEMO_CONFIG: path })).some((p) => p.startsWith('server.port'))).toBe(true);
  });

  it('turns an unreadable NEMO_CONFIG path into ConfigError naming the path', () => {
    const path = join(dir, 'does-not-exist.yaml');
    const problems = problemsOf(() => loadConfig({ NEMO_CONFIG: path }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(path);
  });

  it('turns unparsable JSON and YAML into ConfigError', () => {
    const json = join(dir, 'broken.json');
    writeFileSync(json, '{"models": [');
    expect(problemsOf(() => loadConfig({ NEMO_CONFIG: json }))[0]).toContain(json);
    const yaml = join(dir, 'broken.yml');
    writeFileSync(yaml, 'server: [unclosed\n  port: :\n');
    expect(problemsOf(() => loadConfig({ NEMO_CONFIG: yaml }))[0]).toContain(yaml);
  });
});
