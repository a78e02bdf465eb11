// Loads the configuration once: the file named by NEMO_CONFIG (YAML or JSON), env overrides,
// validation listing every problem, secrets resolved from env vars, then a deep freeze.
// This is the only module that reads process.env.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { configFileSchema, modelSchema, type ConfigFile, type DeploymentConfig, type MockBehaviour, type ModelConfig } from './schema.js';
import { DEFAULT_MOCK_MODELS } from './default-models.js';
import { encodingForModel, type Encoding } from './model-encodings.js';

export interface Deployment extends Omit<DeploymentConfig, 'id' | 'apiKeyEnv' | 'mock' | 'encoding'> {
  readonly id: string;
  /** The tokenizer for exact counts; undefined: the UTF-8 byte upper bound. */
  readonly encoding: Encoding | undefined;
  /** Public model name this deployment serves. */
  readonly publicModel: string;
  readonly baseUrl: string | undefined;
  /** Non-enumerable: never shows up in logs or JSON. */
  readonly apiKey: string | undefined;
  readonly mock: MockBehaviour | undefined;
}

export interface ModelRoute {
  readonly name: string;
  readonly ownedBy: string;
  readonly deployments: readonly Deployment[];
  /** The smallest max output across deployments: a request above it is refused up front. */
  readonly maxOutputTokens: number;
}

export interface DatabaseConfig extends Readonly<ConfigFile['database']> {
  /** DATABASE_URL: the owner connection (migrations). Unset: the embedded PostgreSQL. */
  readonly url: string | undefined;
  /** NEMO_DATA_DIR: where the embedded PostgreSQL and its secrets live. */
  readonly dataDir: string;
  /** NEMO_DB_APP_PASSWORD: the nemo_app role's password (non-enumerable). Required with DATABASE_URL. */
  readonly appPassword: string | undefined;
  /** NEMO_PG_OS_USER: the OS user the embedded PostgreSQL runs as when we are root. */
  readonly osUser: string;
}

export interface Config {
  readonly server: ConfigFile['server'];
  readonly upstream: ConfigFile['upstream'];
  readonly auth: ConfigFile['auth'];
  readonly ledger: ConfigFile['ledger'];
  readonly litellm: ConfigFile['litellm'];
  readonly workers: ConfigFile['workers'];
  readonly guardrails: ConfigFile['guardrails'];
  readonly logs: ConfigFile['logs'];
  readonly metrics: ConfigFile['metrics'];
  readonly database: DatabaseConfig;
  readonly masterKey: string | undefined;
  /** The bearer token GET /metrics requires; undefined: open. */
  readonly metricsToken: string | undefined;
  readonly models: ReadonlyMap<string, ModelRoute>;
  /** Where the model table came from, for the start-up log. */
  readonly source: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const DEFAULT_BASE_URLS: Partial<Record<DeploymentConfig['provider'], string>> = {
  anthropic: 'https://api.anthropic.com/v1',
};

type Env = Readonly<Record<string, string | undefined>>;

export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const path = env.NEMO_CONFIG;
  let raw: unknown = {};
  if (path) {
    try {
      const text = readFileSync(path, 'utf8');
      raw = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
      raw ??= {};
    } catch (err) {
      throw new ConfigError([`NEMO_CONFIG=${path}: ${(err as Error).message}`]);
    }
  }
  return buildConfig(raw, env, path ? `config file ${path}` : 'built-in mock models (no NEMO_CONFIG)', problems);
}

/** Validates an already-parsed config object; exported for tests. */
export function buildConfig(raw: unknown, env: Env, source: string, problems: string[] = []): Config {
  const withEnv = applyEnvOverrides(raw, env, problems);
  const parsed = configFileSchema.safeParse(withEnv);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(`${issue.path.join('.') || '(root)'}: ${issue.message}`);
    // List the model-table problems too, for every model that is well-formed on its own.
    resolveModels(wellFormedModels(withEnv), env, problems);
    throw new ConfigError(problems);
  }
  const file = parsed.data;
  const models = resolveModels(file.models ?? DEFAULT_MOCK_MODELS, env, problems);
  const database = databaseConfig(file, env, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  const masterKey = env[file.auth.masterKeyEnv] || undefined;
  // Key-shaped secrets are looked up as org keys, so such a master key could never authenticate.
  if (masterKey !== undefined && masterKey.startsWith('sk-nemo-')) throw new ConfigError([`${file.auth.masterKeyEnv}: must not start with sk-nemo- (that prefix is for org API keys)`]);
  if (masterKey !== undefined && masterKey.length < 16) throw new ConfigError([`${file.auth.masterKeyEnv}: must be at least 16 characters`]);
  const metricsToken = env[file.metrics.tokenEnv] || undefined;
  if (metricsToken !== undefined && metricsToken.length < 16) throw new ConfigError([`${file.metrics.tokenEnv}: must be at least 16 characters`]);
  // Org ids, request counts and spend of the top orgs are not for whoever can reach /metrics.
  if (file.metrics.orgTopN > 0 && metricsToken === undefined) throw new ConfigError([`metrics.orgTopN: needs ${file.metrics.tokenEnv} set, so /metrics is not public`]);
  const config = { server: file.server, upstream: file.upstream, auth: file.auth, ledger: file.ledger, litellm: file.litellm, workers: file.workers, guardrails: file.guardrails, logs: file.logs, metrics: file.metrics, database, models, source } as Config;
  // Secrets are not enumerable: they never show in a logged or serialized config.
  Object.defineProperty(config, 'masterKey', { value: masterKey, enumerable: false });
  Object.defineProperty(config, 'metricsToken', { value: metricsToken, enumerable: false });
  return deepFreeze(config);
}

function databaseConfig(file: ConfigFile, env: Env, problems: string[]): DatabaseConfig {
  const url = env.DATABASE_URL || undefined;
  if (url !== undefined && !/^postgres(ql)?:\/\//.test(url)) problems.push('DATABASE_URL: must be a postgres:// or postgresql:// URL');
  const appPassword = env.NEMO_DB_APP_PASSWORD || undefined;
  if (url !== undefined && appPassword === undefined) problems.push('NEMO_DB_APP_PASSWORD: required with DATABASE_URL (the password of the nemo_app role the gateway connects as)');
  const database = { ...file.database, url, dataDir: env.NEMO_DATA_DIR || '.nemo', osUser: env.NEMO_PG_OS_USER || 'postgres' } as DatabaseConfig;
  Object.defineProperty(database, 'appPassword', { value: appPassword, enumerable: false });
  Object.defineProperty(database, 'url', { value: url, enumerable: false });
  return database;
}

function applyEnvOverrides(raw: unknown, env: Env, problems: string[]): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  const obj = raw as Record<string, unknown>;
  const server = { ...((obj.server as Record<string, unknown> | undefined) ?? {}) };
  const intFromEnv = (name: string, key: string) => {
    const value = env[name];
    if (value === undefined || value === '') return;
    const n = Number(value);
    if (!Number.isInteger(n)) problems.push(`${name}: must be an integer, got ${JSON.stringify(value)}`);
    else server[key] = n;
  };
  intFromEnv('PORT', 'port');
  intFromEnv('NEMO_MAX_BODY_BYTES', 'maxBodyBytes');
  intFromEnv('NEMO_SHUTDOWN_GRACE_MS', 'shutdownGraceMs');
  intFromEnv('NEMO_DRAIN_DELAY_MS', 'drainDelayMs');
  if (env.HOST) server.host = env.HOST;
  if (env.NEMO_HTTP_SERVER) server.implementation = env.NEMO_HTTP_SERVER;
  if (env.NEMO_UWS_BINARY) server.uwsBinary = env.NEMO_UWS_BINARY;
  if (env.NEMO_REUSE_PORT) server.reusePort = env.NEMO_REUSE_PORT === '1' || env.NEMO_REUSE_PORT === 'true';
  const ledger = { ...((obj.ledger as Record<string, unknown> | undefined) ?? {}) };
  if (env.NEMO_LEDGER_MODE) ledger.mode = env.NEMO_LEDGER_MODE;
  const litellm = { ...((obj.litellm as Record<string, unknown> | undefined) ?? {}) };
  if (env.NEMO_LITELLM) {
    if (env.NEMO_LITELLM === '1' || env.NEMO_LITELLM === 'true') litellm.enabled = true;
    else if (env.NEMO_LITELLM === '0' || env.NEMO_LITELLM === 'false') litellm.enabled = false;
    else problems.push(`NEMO_LITELLM: must be 1 or 0, got ${JSON.stringify(env.NEMO_LITELLM)}`);
  }
  return { ...obj, server, ledger, litellm };
}

function wellFormedModels(raw: unknown): ModelConfig[] {
  const models = (raw as { models?: unknown } | null)?.models;
  if (!Array.isArray(models)) return [];
  return models.flatMap((m) => {
    const parsed = modelSchema.safeParse(m);
    return parsed.success ? [parsed.data] : [];
  });
}

/** The mock speaks OpenAI's dialect with o200k-sized words; Anthropic publishes no tokenizer. */
function defaultEncoding(dep: DeploymentConfig): Encoding | undefined {
  if (dep.provider === 'mock') return 'o200k_base';
  if (dep.provider === 'anthropic') return undefined;
  return encodingForModel(dep.model);
}

function resolveModels(modelConfigs: readonly ModelConfig[], env: Env, problems: string[]): ReadonlyMap<string, ModelRoute> {
  const routes = new Map<string, ModelRoute>();
  const deploymentIds = new Set<string>();
  for (const [m, model] of modelConfigs.entries()) {
    if (routes.has(model.name)) problems.push(`models.${m}.name: duplicate model name ${JSON.stringify(model.name)}`);
    const deployments: Deployment[] = [];
    for (const [d, dep] of model.deployments.entries()) {
      const at = `models.${m}.deployments.${d}`;
      const id = dep.id ?? `${model.name}#${d}`;
      if (deploymentIds.has(id)) problems.push(`${at}.id: duplicate deployment id ${JSON.stringify(id)}`);
      deploymentIds.add(id);
      const baseUrl = (dep.baseUrl ?? DEFAULT_BASE_URLS[dep.provider])?.replace(/\/+$/, '');
      if (dep.provider !== 'mock' && !baseUrl) problems.push(`${at}.baseUrl: required for provider ${dep.provider}`);
      if (dep.provider !== 'mock' && dep.mock) problems.push(`${at}.mock: only for provider mock`);
      let apiKey: string | undefined;
      if (dep.apiKeyEnv) {
        apiKey = env[dep.apiKeyEnv];
        if (!apiKey) problems.push(`${at}.apiKeyEnv: environment variable ${dep.apiKeyEnv} is not set`);
      }
      const { apiKeyEnv: _omit, mock, encoding, ...rest } = dep;
      const deployment = {
        ...rest,
        id,
        encoding: encoding === 'none' ? undefined : (encoding ?? defaultEncoding(dep)),
        publicModel: model.name,
        baseUrl,
        mock: dep.provider === 'mock' ? { ...MOCK_DEFAULTS, ...mock } : undefined,
      } as Deployment;
      Object.defineProperty(deployment, 'apiKey', { value: apiKey, enumerable: false });
      deployments.push(deployment);
    }
    const maxOutputTokens = Math.min(...deployments.map((d) => d.maxOutputTokens));
    routes.set(model.name, { name: model.name, ownedBy: model.ownedBy, deployments, maxOutputTokens });
  }
  return new FrozenMap(routes);
}

/** Object.freeze does not stop Map#set; the model table must not change after boot. */
class FrozenMap<K, V> extends Map<K, V> {
  private sealed = false;
  constructor(entries: Iterable<readonly [K, V]>) {
    super(entries);
    this.sealed = true;
  }
  override set(key: K, value: V): this {
    if (this.sealed) throw new TypeError('the configuration is frozen');
    return super.set(key, value);
  }
  override delete(): boolean {
    throw new TypeError('the configuration is frozen');
  }
  override clear(): void {
    throw new TypeError('the configuration is frozen');
  }
}

const MOCK_DEFAULTS: MockBehaviour = { ttftMs: 0, tokensPerSecond: 0, completionTokens: 16, reportUsage: true, fault: 'none' };

function deepFreeze<T>(value: T): T {
  if (value instanceof Map) {
    for (const v of value.values()) deepFreeze(v);
  } else if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return Object.freeze(value);
}
