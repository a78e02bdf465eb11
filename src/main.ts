// Composition root: load config, wire the parts, listen, drain on SIGTERM.
import { loadConfig, type Config } from './config/load.js';
import { openDatabase, type Database } from './db/database.js';
import { RequestAuthenticator } from './http/authenticate.js';
import type { ReadinessCheck } from './http/routes/health.js';
import { selectHttpServer, startHttpServer, type HttpServer } from './http/server.js';
import { LiteLLMSchemaWatch } from './litellm/doctor.js';
import { applyHeapGrowth } from './heap-growth.js';
import { log } from './log.js';
import { enableLiteLLMMetrics, enableOrgTopN, httpServerInfo, litellmSchemaProblems, reportPool, uwsNativeGauge } from './metrics/registry.js';
import { DeploymentRouter } from './providers/router.js';
import { UpstreamPools } from './providers/upstream-pools.js';
import { Ledger } from './ledger/ledger.js';
import { AdminService } from './tenancy/admin-service.js';
import { ensureDemoKey } from './tenancy/demo.js';
import { KeyAuthenticator } from './tenancy/key-authenticator.js';
import { RateLimiter } from './tenancy/rate-limiter.js';
import { GuardrailEventLog } from './guardrails/event-log.js';
import { exportStats } from './http/routes/exports.js';
import { RequestLogPartitions } from './logs/partitions.js';
import { RequestLogWriter } from './logs/request-log.js';
import { StoredResponseRetention } from './logs/stored-response-retention.js';
import { exportState, requestLogBatchRows, requestLogFlushSeconds, requestLogState, workerCacheState } from './metrics/registry.js';
import { parsedElements } from './json/parsed-elements.js';
import { WorkerPool } from './workers/pool.js';

export interface Gateway {
  readonly port: number;
  readonly config: Config;
  /** The HTTP server: its implementation (uWebSockets.js build or Node http) and shutdown. */
  readonly httpServer: HttpServer;
  readonly db: Database;
  readonly admin: AdminService;
  readonly keys: KeyAuthenticator;
  readonly ledger: Ledger;
  /** Graceful: drains (server.drainDelayMs), lets in-flight requests finish up to graceMs, then closes pools. */
  close(graceMs?: number, drainDelayMs?: number): Promise<void>;
}

export interface GatewayOptions {
  /** An already open database (tests share one per file); otherwise opened from config.database. */
  readonly db?: Database;
}

export async function startGateway(config: Config, options: GatewayOptions = {}): Promise<Gateway> {
  const { implementation, skipped } = selectHttpServer(config.server);
  httpServerInfo.set({ implementation: implementation.name, build: implementation.build }, 1);
  uwsNativeGauge.set(implementation.native ? 1 : 0);
  const runtime = { platform: process.platform, arch: process.arch, node: process.versions.node, abi: process.versions.modules };
  if (config.server.uwsBinary !== undefined && !implementation.build.startsWith('custom binary')) {
    log.warn('server.uwsBinary did not load; serving with another build', { uwsBinary: config.server.uwsBinary, build: implementation.build, skipped });
  }
  if (implementation.native) log.info('http server: uWebSockets.js', { build: implementation.build, ...runtime, ...(skipped.length > 0 ? { skipped } : {}) });
  else if (config.server.implementation === 'node') log.info('http server: Node http module (server.implementation is "node")', { build: implementation.build });
  else log.warn('http server: no native uWebSockets.js build loads here; serving with Node\'s http module, which is slower', { ...runtime, skipped });

  const db = options.db ?? (await openDatabase(config.database));
  const ownsDb = options.db === undefined;
  reportPool('app', db.pool);
  const keys = new KeyAuthenticator(db, {
    ttlMs: config.auth.keyCacheTtlMs,
    negativeTtlMs: config.auth.negativeKeyCacheTtlMs,
    negativeMaxEntries: config.auth.negativeKeyCacheSize,
    ...(config.litellm.enabled ? { litellm: { ttlMs: config.litellm.keyCacheTtlMs } } : {}),
  });
  const admin = new AdminService(db, new Set(config.models.keys()));
  const ledger = new Ledger(db, config.ledger);
  const pools = new UpstreamPools(config.upstream);
  const router = new DeploymentRouter(config.upstream.cooldownMs);
  const workers = new WorkerPool(config.workers);
  parsedElements.resize(config.server.bodyElementCacheMaxBytes);
  workerCacheState.caches = { ...workerCacheState.caches, body_elements: parsedElements };
  const guardrailEvents = new GuardrailEventLog(db, config.guardrails);
  const { logs } = config;
  enableOrgTopN(config.metrics.orgTopN);
  const requestLog = new RequestLogWriter(db, {
    defaultRetentionDays: logs.retentionDays,
    flushIntervalMs: logs.flushIntervalMs,
    maxBatchRows: logs.maxBatchRows,
    maxQueuedRows: logs.maxQueuedRows,
    maxBodyChars: logs.maxBodyChars,
    onFlush: (rows, seconds) => {
      requestLogBatchRows.observe(rows);
      requestLogFlushSeconds.observe(seconds);
    },
  });
  Object.assign(requestLogState, { queued: () => requestLog.queued, written: () => requestLog.written, dropped: () => requestLog.dropped });
  exportState.active = () => exportStats.active;
  const partitions = new RequestLogPartitions(db, { daysAhead: logs.partitionDaysAhead, retentionDays: logs.retentionDays, intervalMs: logs.maintenanceIntervalMs });
  const storedResponses = new StoredResponseRetention(db, { intervalMs: logs.maintenanceIntervalMs });
  log.info('worker pool', { threads: config.workers.threads, inlineMaxChars: config.workers.inlineMaxChars });
  const readinessChecks: ReadinessCheck[] = [{ name: 'postgres', check: async () => void (await db.query('SELECT 1')) }];
  if (config.litellm.enabled) readinessChecks.push(liteLLMReadiness(db, config.litellm.driftCheckIntervalMs));
  let server: HttpServer;
  try {
    await keys.startListening();
    ledger.startSweeper();
    await partitions.start(); // never throws: a failed run is logged and retried
    storedResponses.start(); // likewise
    server = await startHttpServer({ implementation, config, router, pools, auth: new RequestAuthenticator(keys, config.masterKey, config.litellm.enabled), admin, ledger, limiter: new RateLimiter(), workers, guardrailEvents, db, requestLog, exports: { batchRows: logs.exportBatchRows, maxConcurrent: logs.maxConcurrentExports, stalledClientTimeoutMs: config.server.stalledClientTimeoutMs }, readinessChecks });
  } catch (err) {
    await Promise.allSettled([pools.close(), keys.close(), ledger.close(0), workers.close(), guardrailEvents.close(), requestLog.close(0), partitions.close(), storedResponses.close()]);
    if (ownsDb) await db.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    port: server.port,
    httpServer: server,
    config,
    db,
    admin,
    keys,
    ledger,
    close(graceMs = config.server.shutdownGraceMs, drainDelayMs = config.server.drainDelayMs) {
      closing ??= server.shutdown(graceMs, drainDelayMs).then(async () => {
        // Settlements of the requests just finished commit before the database goes away.
        await Promise.allSettled([ledger.close(), guardrailEvents.close(), requestLog.close(), partitions.close(), storedResponses.close()]);
        await Promise.allSettled([pools.close(), keys.close(), workers.close()]);
        parsedElements.clear();
        if (ownsDb) await db.close();
      });
      return closing;
    },
  };
}

/**
 * LiteLLM's schema as NemoRouter reads it: /readyz fails while a column it reads is missing or
 * retyped (LiteLLM migrates on its own schedule), and each change of state is logged once.
 */
function liteLLMReadiness(db: Database, intervalMs: number): ReadinessCheck {
  enableLiteLLMMetrics();
  let lastProblems = '';
  const watch = new LiteLLMSchemaWatch(db, intervalMs, (report) => {
    litellmSchemaProblems.set(report.problems.length);
    const problems = report.problems.join('; ');
    if (problems === lastProblems) return;
    if (report.ok) log.info('litellm: schema public has every column NemoRouter reads');
    else log.error('litellm: schema drift; LiteLLM keys may fail until fixed (nemo litellm doctor)', { problems: report.problems });
    lastProblems = problems;
  });
  return { name: 'litellm_schema', check: () => watch.check() };
}

/** `nemo start`: runs until SIGTERM/SIGINT, then drains. */
export async function runGateway(): Promise<void> {
  const config = loadConfig();
  applyHeapGrowth(config.server.heapGrowingPercent);
  log.info('heap growth', { heapGrowingPercent: config.server.heapGrowingPercent === 0 ? 'v8' : config.server.heapGrowingPercent });
  // Signals are taken from the start: one that arrives while the gateway starts (the embedded
  // PostgreSQL, migrations) stops it once it is up, so no child process outlives it.
  let signals = 0;
  let stop: ((signal: NodeJS.Signals) => void) | undefined;
  let pendingSignal: NodeJS.Signals | undefined;
  let signalAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn('second signal, exiting now', { signal });
      process.exit(1);
    }
    signalAt = performance.now();
    if (stop === undefined) pendingSignal = signal;
    else stop(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  if (config.masterKey === undefined) log.warn('no master key set (NEMO_MASTER_KEY): the admin API accepts org admin keys only; organizations cannot be created over HTTP');
  const gateway = await startGateway(config);
  stop = (signal) => {
    // The grace counts from the signal; a gateway stopped before it served has no one to tell.
    const graceMs = Math.max(0, config.server.shutdownGraceMs - (performance.now() - signalAt));
    const drainDelayMs = pendingSignal === undefined ? config.server.drainDelayMs : 0;
    log.info('shutting down', { signal, graceMs, drainDelayMs });
    void gateway.close(graceMs, drainDelayMs).then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error('shutdown failed', { error: String(err) });
        process.exit(1);
      },
    );
  };
  if (pendingSignal !== undefined) return stop(pendingSignal);

  const demo = gateway.db.kind === 'embedded' && config.auth.demoOrg ? await ensureDemoKey(gateway.admin, config.database.dataDir, config.ledger.demoCreditsMicros) : undefined;
  const { host } = config.server;
  const everyInterface = host === '0.0.0.0' || host === '::';
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${gateway.port}`;
  // A wildcard address is not one to call: the examples use loopback.
  const callUrl = everyInterface ? `http://127.0.0.1:${gateway.port}` : url;
  const models = [...config.models.keys()];
  log.info('listening', { host, port: gateway.port, models, source: config.source });
  if (!isLoopback(host) && config.metricsToken === undefined) {
    log.warn('/metrics is open to every client that can reach this address: set NEMO_METRICS_TOKEN, or listen on loopback (HOST=127.0.0.1)', { host, port: gateway.port });
  }
  const keyHeader = demo ? `-H 'authorization: Bearer ${demo.key}'` : `-H "authorization: Bearer $NEMO_API_KEY"`;
  process.stdout.write(
    `NemoRouter listening on ${url}${everyInterface ? ' (every interface)' : ''} (models from ${config.source})\n` +
      (demo?.created ? `Created a demo organization with an admin API key (kept in ${config.database.dataDir}/demo-key):\n  ${demo.key}\n` : '') +
      `Try it:\n  curl ${callUrl}/v1/chat/completions -H 'content-type: application/json' ${keyHeader}` +
      ` -d '{"model":"${models[0]}","messages":[{"role":"user","content":"Hello"}],"stream":true}'\n` +
      `Admin console: ${callUrl}/ui (sign in with an org admin key${demo ? ', such as the demo key' : ''})\n`,
  );
}

/** Only this host can reach it: 127.0.0.0/8, ::1, localhost. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
