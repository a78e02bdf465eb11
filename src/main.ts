// Composition root: load config, wire the parts, listen, drain on SIGTERM.
import { loadConfig, type Config } from './config/load.js';
import { startHttpServer, type HttpServer } from './http/server.js';
import { uwsImplementation, uwsNative } from './http/uws.js';
import { log } from './log.js';
import { httpServerInfo, uwsNativeGauge } from './metrics/registry.js';
import { DeploymentRouter } from './providers/router.js';
import { UpstreamPools } from './providers/upstream-pools.js';

export interface Gateway {
  readonly port: number;
  readonly config: Config;
  /** Graceful: drains in-flight requests up to the configured grace period, then closes pools. */
  close(graceMs?: number): Promise<void>;
}

export async function startGateway(config: Config): Promise<Gateway> {
  httpServerInfo.set({ implementation: uwsImplementation }, 1);
  uwsNativeGauge.set(uwsNative ? 1 : 0);
  if (uwsNative) log.info('uWebSockets.js: native binary in use');
  else log.warn('uWebSockets.js: native binary unavailable for this platform/Node, using the slow JS fallback', { platform: process.platform, arch: process.arch, abi: process.versions.modules });

  const pools = new UpstreamPools(config.upstream);
  const router = new DeploymentRouter(config.upstream.cooldownMs);
  let server: HttpServer;
  try {
    server = await startHttpServer({ config, router, pools });
  } catch (err) {
    await pools.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    port: server.port,
    config,
    close(graceMs = config.server.shutdownGraceMs) {
      closing ??= server.shutdown(graceMs).then(() => pools.close());
      return closing;
    },
  };
}

/** `nemo start`: runs until SIGTERM/SIGINT, then drains. */
export async function runGateway(): Promise<void> {
  const config = loadConfig();
  if (config.masterKey === undefined) log.warn('no master key set (NEMO_MASTER_KEY): the API is open to anyone who can reach it');
  const gateway = await startGateway(config);
  const { host } = config.server;
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const models = [...config.models.keys()];
  log.info('listening', { host, port: gateway.port, models, source: config.source });
  process.stdout.write(
    `NemoRouter listening on http://${shownHost}:${gateway.port} (models from ${config.source})\n` +
      `Try it:\n  curl http://${shownHost}:${gateway.port}/v1/chat/completions -H 'content-type: application/json'` +
      `${config.masterKey ? " -H 'authorization: Bearer $NEMO_MASTER_KEY'" : ''}` +
      ` -d '{"model":"${models[0]}","messages":[{"role":"user","content":"Hello"}],"stream":true}'\n`,
  );
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn('second signal, exiting now', { signal });
      process.exit(1);
    }
    log.info('shutting down', { signal, graceMs: config.server.shutdownGraceMs });
    void gateway.close().then(
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
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
