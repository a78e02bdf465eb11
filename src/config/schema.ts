// The configuration schema: the config file (NEMO_CONFIG, YAML or JSON) plus the env overrides.
// Validated once at boot by load.ts; everything downstream receives the frozen result.
import { availableParallelism } from 'node:os';
import { z } from 'zod';

/**
 * `npm run bench:workers` on the reference 2-core machine (median of 5 runs, after the scans got
 * cheaper): below ~1,000-1,800 characters a scan costs less inline than the pool's round trip and
 * main-thread share; above, the pool wins.
 */
const INLINE_MAX_CHARS_DEFAULT = 1_100;

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();

/**
 * Faults the mock can inject: http-429 (with Retry-After), http-500, timeout (never answers),
 * cut-mid-stream (connection dropped halfway), stall-mid-stream (stops sending, keeps the
 * connection open), malformed-sse (a garbage event halfway), no-done (ends cleanly without [DONE]),
 * absurd-usage (a complete answer whose usage claims 10^12 completion tokens).
 */
export const MOCK_FAULTS = ['none', 'http-429', 'http-500', 'timeout', 'cut-mid-stream', 'stall-mid-stream', 'malformed-sse', 'no-done', 'absurd-usage'] as const;
export type MockFault = (typeof MOCK_FAULTS)[number];
export const MOCK_REASONING_TEXT = ['when-asked', 'always', 'never'] as const;
export type MockReasoningText = (typeof MOCK_REASONING_TEXT)[number];

export const mockBehaviourSchema = z.strictObject({
  /** Time to first token. */
  ttftMs: nonNegativeInt.default(0),
  /** Streaming speed; 0 sends every token at once. */
  tokensPerSecond: z.number().nonnegative().default(0),
  /** Completion length in tokens when the request's max_tokens allows it. */
  completionTokens: positiveInt.default(16),
  reportUsage: z.boolean().default(true),
  /** Set: usage carries prompt_tokens_details.cached_tokens, this many (at most prompt_tokens). */
  cachedPromptTokens: nonNegativeInt.optional(),
  /** Set: this many reasoning tokens precede the answer, within max_tokens, counted in completion_tokens and reported in completion_tokens_details. */
  reasoningTokens: nonNegativeInt.optional(),
  /**
   * Whether those reasoning tokens come as text (`reasoning_content`, before the answer):
   * `when-asked` (unset: a request with `reasoning_effort` or `thinking`), `always`, or `never`
   * (counted only). Without `reasoningTokens`, the text is 16 tokens, within a `thinking.budget_tokens`.
   */
  reasoningText: z.enum(MOCK_REASONING_TEXT).optional(),
  /** Injected fault, applied to every request this deployment serves. */
  fault: z.enum(MOCK_FAULTS).default('none'),
});
export type MockBehaviour = z.infer<typeof mockBehaviourSchema>;

export const deploymentSchema = z.strictObject({
  /** Stable id for logs and metrics; defaults to `<model>#<index>`. */
  id: z.string().min(1).optional(),
  provider: z.enum(['openai-compatible', 'anthropic', 'mock']),
  /** Model name sent upstream. */
  model: z.string().min(1),
  baseUrl: z.url().optional(),
  /** Name of the environment variable that holds the upstream key. */
  apiKeyEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).optional(),
  inputPricePerMTok: z.number().nonnegative().default(0),
  outputPricePerMTok: z.number().nonnegative().default(0),
  /** Prompt tokens read from the provider's prompt cache; default: the input price (no discount). */
  cachedInputPricePerMTok: z.number().nonnegative().optional(),
  /** Prompt tokens written to the provider's prompt cache (Anthropic's cache_creation_input_tokens); default: the input price. */
  cacheWritePricePerMTok: z.number().nonnegative().optional(),
  /** Reasoning tokens (part of the completion tokens); default: the output price. */
  reasoningPricePerMTok: z.number().nonnegative().optional(),
  /** For a model priced per input image: micro-units per image part, on top of the token prices. */
  imagePriceMicros: nonNegativeInt.optional(),
  maxOutputTokens: positiveInt.default(4096),
  weight: z.number().positive().default(1),
  /**
   * Tokenizer for exact counts (guardrail token limits, streams without usage); default from the
   * upstream model name (gpt-4o, o1, gpt-5...: o200k_base; gpt-4, gpt-3.5: cl100k_base). `none`, or
   * a model without a public tokenizer: the UTF-8 byte count, an upper bound.
   */
  encoding: z.enum(['o200k_base', 'cl100k_base', 'none']).optional(),
  /** Extra headers sent upstream (e.g. OpenRouter's HTTP-Referer). */
  headers: z.record(z.string(), z.string()).default({}),
  mock: mockBehaviourSchema.optional(),
});

export const modelSchema = z.strictObject({
  /** Public model name clients send. */
  name: z.string().min(1).max(256),
  ownedBy: z.string().default('nemorouter'),
  deployments: z.array(deploymentSchema).min(1),
});

export const configFileSchema = z.strictObject({
  server: z
    .strictObject({
      host: z.string().default('0.0.0.0'),
      port: z.number().int().min(0).max(65535).default(8080),
      maxBodyBytes: positiveInt.default(4 * 1024 * 1024),
      /**
       * Bytes (an estimate) of large chat bodies' parsed messages and tools kept, per org, by their
       * received bytes: a conversation resent with one more turn is parsed, scanned, counted and
       * serialized only for what is new. An agent session of 100k tokens holds ~1.6 MB of it;
       * sessions beyond the budget are served, with fewer hits. 0: off.
       */
      bodyElementCacheMaxBytes: nonNegativeInt.default(128 * 1024 * 1024),
      /** How long in-flight requests may run after SIGTERM before they are cut. */
      shutdownGraceMs: nonNegativeInt.default(30_000),
      /**
       * After SIGTERM, how long the listener stays open answering /readyz and new requests with 503
       * (and `Connection: close`), so load balancers see the drain before connections are refused.
       */
      drainDelayMs: nonNegativeInt.default(5_000),
      /** A client that keeps a stream unread this long while the gateway holds data for it is cut off. */
      stalledClientTimeoutMs: positiveInt.default(60_000),
      /**
       * How far the V8 old generation may grow past the live heap found by the last full
       * collection, in percent (src/heap-growth.ts), in every one of V8's modes: lower keeps the
       * RSS closer to what is live, for a few more (concurrent) collections. 0: V8's own factor
       * (10 % to 300 %, by its GC and allocation speeds; lower when idle or near the heap limit),
       * and a `--heap-growing-percent` given to node is kept.
       */
      heapGrowingPercent: nonNegativeInt.max(1000).default(60),
      /**
       * The HTTP server: `auto` takes the first native uWebSockets.js build that loads on this
       * platform and Node, else Node's own http module; `uws` refuses to start without a native
       * build; `node` always uses Node's http module.
       */
      implementation: z.enum(['auto', 'uws', 'node']).default('auto'),
      /**
       * Share the port with other processes that ask for it too (SO_REUSEPORT), to run several
       * gateways on one host; off, a port in use fails the start.
       */
      reusePort: z.boolean().default(false),
      /** A uWebSockets.js binary (`.node`) of your own, tried before the bundled builds. */
      uwsBinary: z.string().min(1).optional(),
    })
    .prefault({}),
  upstream: z
    .strictObject({
      connectTimeoutMs: positiveInt.default(5_000),
      headersTimeoutMs: positiveInt.default(60_000),
      /** Longest silence between two body chunks. */
      bodyTimeoutMs: positiveInt.default(120_000),
      connectionsPerOrigin: positiveInt.default(1024),
      keepAliveTimeoutMs: positiveInt.default(30_000),
      /** Attempts across deployments before the first byte reaches the client. */
      maxAttempts: positiveInt.max(10).default(3),
      /** How long a failed deployment is skipped. */
      cooldownMs: nonNegativeInt.default(30_000),
      maxResponseBytes: positiveInt.default(32 * 1024 * 1024),
    })
    .prefault({}),
  auth: z
    .strictObject({
      /** Name of the env var that holds the platform master key (admin API: manages orgs). */
      masterKeyEnv: z.string().default('NEMO_MASTER_KEY'),
      /** How long a verified API key is trusted without re-reading Postgres (changes are pushed sooner). */
      keyCacheTtlMs: positiveInt.default(30_000),
      /** How long an unknown key is remembered as unknown, so a flood of bad keys costs no queries. */
      negativeKeyCacheTtlMs: nonNegativeInt.default(5_000),
      negativeKeyCacheSize: positiveInt.default(10_000),
      /** On an empty embedded database, create a demo org and key at start and print the key. */
      demoOrg: z.boolean().default(true),
    })
    .prefault({}),
  litellm: z
    .strictObject({
      /**
       * The database's schema public is LiteLLM's (docs/litellm.md): LiteLLM virtual keys
       * authenticate here, read through nemo's definer functions; nothing in public is written.
       */
      enabled: z.boolean().default(false),
      /** How long a LiteLLM key's answer is trusted: LiteLLM sends no notification when it blocks or deletes one. */
      keyCacheTtlMs: positiveInt.max(300_000).default(30_000),
      /** How often the columns NemoRouter reads in public are compared with the catalog (/readyz reports drift). */
      driftCheckIntervalMs: positiveInt.min(1_000).default(60_000),
    })
    .prefault({}),
  ledger: z
    .strictObject({
      /**
       * lease: requests reserve their bound in process from a durable per-org credit lease and each
       * writes its charge as its own ledger row; hold: a durable hold per request (docs/money.md).
       */
      mode: z.enum(['lease', 'hold']).default('lease'),
      lease: z
        .strictObject({
          /** A lease serves new requests this long, then gives back what it did not use and is replaced. */
          lifetimeMs: positiveInt.min(100).default(30_000),
          /** A lease its instance stopped renewing (a crash) is returned by the sweeper after this. */
          ttlMs: positiveInt.min(1_000).default(60_000),
          /** The most one lease holds, in micro-credits. */
          maxMicros: positiveInt.default(100_000_000),
          /** A lease holds at least this many bounds of the request that asked for it. */
          minRequests: positiveInt.max(10_000).default(16),
          /** A new lease is asked for ahead of need when the free part falls below this fraction. */
          lowWater: z.number().min(0).max(1).default(0.25),
          /**
           * A charge waits at most this long for others to commit with (one transaction for many);
           * what a crash can leave unwritten is about this long's worth of charges.
           */
          chargeLingerMs: nonNegativeInt.max(1_000).default(20),
          /** A request refused for funds that sit unused in leases waits at most this long for them to come back. */
          recallWaitMs: nonNegativeInt.max(10_000).default(1_000),
        })
        .prefault({}),
      /** How long a hold lives; a crashed instance's holds are released by the sweeper after it. */
      reservationTtlMs: positiveInt.default(15 * 60_000),
      sweepIntervalMs: positiveInt.default(10_000),
      /** Most operations in one batch transaction. */
      maxBatch: positiveInt.max(10_000).default(512),
      /** A settle or release waits at most this long for a reserve to commit with (0: flushes at once). */
      settleLingerMs: nonNegativeInt.max(1_000).default(5),
      /** Connections of the ledger writer's own pool. */
      poolMax: positiveInt.max(16).default(3),
      /** With no max_tokens from the client, the least output the balance must afford (else 402). */
      minOutputTokens: positiveInt.default(16),
      /** Prompt-token allowance per image part in the hold (images cost more tokens than their URL's bytes). */
      imageTokenAllowance: nonNegativeInt.default(2_000),
      /** Credits given to the demo org at its creation, in micro-units. */
      demoCreditsMicros: nonNegativeInt.default(10_000_000),
    })
    .prefault({}),
  workers: z
    .strictObject({
      /** Worker threads for token counting and guardrail scans; default: cores - 1, at least 1, at most 4. */
      threads: positiveInt.max(64).default(Math.max(1, Math.min(4, availableParallelism() - 1))),
      /** Guardrail scans (and byte bounds) of at most this many characters run inline: below it a pool round trip costs more (npm run bench:workers). Exact token counts always run in a worker. */
      inlineMaxChars: nonNegativeInt.default(INLINE_MAX_CHARS_DEFAULT),
      /** Most characters sent to a worker in one batched task: small jobs never wait behind a huge batch. */
      maxBatchChars: positiveInt.default(65_536),
      /** A pool task running longer is aborted: its prompt checks fail with 503, its charges fall back to the estimate. */
      taskTimeoutMs: positiveInt.default(10_000),
      /**
       * Bytes (an estimate) the caches of token counts and guardrail verdicts may hold, keyed by a
       * SHA-256 of each text: a resent conversation is counted and scanned only for its new turns. 0: off.
       */
      resultCacheMaxBytes: nonNegativeInt.default(16 * 1024 * 1024),
    })
    .prefault({}),
  guardrails: z
    .strictObject({
      /** Guardrail hits are recorded in batches, at most this long after they happen. */
      eventFlushMs: positiveInt.default(1_000),
      /** Event rows (a request's hits of one rule) waiting beyond this are dropped (and counted) while the database is away. */
      maxQueuedEvents: positiveInt.default(10_000),
    })
    .prefault({}),
  logs: z
    .strictObject({
      /** One row per request in nemo.request_log_entries; false writes none (exports then find none). */
      enabled: z.boolean().default(true),
      /** Request log rows are written in batches at most this long after the request ends. */
      flushIntervalMs: positiveInt.default(1_000),
      /** Rows per insert statement; reaching it writes at once. */
      maxBatchRows: positiveInt.max(10_000).default(1_000),
      /** Rows waiting beyond this (the database away) are dropped and counted. */
      maxQueuedRows: positiveInt.default(100_000),
      /** Prompt and response bodies (orgs logging `full` only) are cut to this many characters. */
      maxBodyChars: positiveInt.default(65_536),
      /** Retention (days) of orgs without their own log_retention_days; expired partitions are dropped. */
      retentionDays: positiveInt.max(731).default(30),
      /** Daily partitions are created this many days ahead. */
      partitionDaysAhead: positiveInt.max(300).default(7),
      /** How often partitions are created ahead and expired ones dropped. */
      maintenanceIntervalMs: positiveInt.default(3_600_000),
      /** Rows per cursor read (one write to the client each) in exports. */
      exportBatchRows: positiveInt.max(10_000).default(1_000),
      /** Exports running at once per instance; each holds a nemo_app pool connection. */
      maxConcurrentExports: positiveInt.max(16).default(2),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      /** Name of the env var holding a bearer token GET /metrics then requires; unset or empty: open. */
      tokenEnv: z.string().default('NEMO_METRICS_TOKEN'),
      /**
       * Opt-in per-org series: the orgs with the most requests since start, at most this many
       * (label `org`, the org id). 0, the default: no org ids in metrics at all.
       */
      orgTopN: z.number().int().min(0).max(100).default(0),
    })
    .prefault({}),
  database: z
    .strictObject({
      /** Connections of the gateway's (nemo_app) pool. */
      poolMax: positiveInt.default(10),
      connectTimeoutMs: positiveInt.default(5_000),
      statementTimeoutMs: positiveInt.default(10_000),
      /**
       * A transaction-mode pooler (pgbouncer) in front of DATABASE_URL's server: the nemo_app pools
       * connect through it; migrations and the LISTEN connection, which a transaction pooler cannot
       * carry, stay on the server itself.
       */
      pooler: z
        .strictObject({
          host: z.string().min(1),
          port: z.number().int().min(1).max(65535),
          /** The pooler's name for the database; default: DATABASE_URL's database. */
          database: z.string().min(1).optional(),
        })
        .optional(),
    })
    .prefault({}),
  models: z.array(modelSchema).min(1).optional(),
});

export type ConfigFile = z.infer<typeof configFileSchema>;
export type DeploymentConfig = z.infer<typeof deploymentSchema>;
export type ModelConfig = z.infer<typeof modelSchema>;
