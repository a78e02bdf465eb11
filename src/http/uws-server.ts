// The one place uWebSockets.js is loaded. uWebSockets.js is not on npm; two npm builds are
// dependencies (package.json), and the binary matching this platform and Node ABI is loaded
// directly, so a build without one is skipped instead of falling back to its own JS server (which
// throws "Not implemented" on what the gateway calls). Tried in a fixed order; the first that loads wins.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as Uws from 'uWebSockets.js';
import type { HttpApp, HttpServerImplementation, RouteHandler } from './server-api.js';

type UwsModule = typeof Uws;

interface UwsBuild {
  /** npm name@version, as package.json pins it under an alias. */
  readonly build: string;
  /** The alias in package.json. */
  readonly alias: string;
  /** Where the binaries sit, from the package's main file. */
  readonly binaryDir: (main: string) => string;
}

/**
 * In order of preference. Both are built from the same uWS v20 line; 20.30 ships Node 16 to 20
 * (ABI 93, 108, 115) needing glibc 2.27, 20.56 ships Node 20 to 25 (ABI 115, 127, 137, 141) on
 * Linux, macOS and Windows, but its Linux binaries need glibc 2.38 (Debian 13, Ubuntu 24.04).
 */
export const UWS_BUILDS: readonly UwsBuild[] = [
  { build: '@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0', alias: 'uWebSockets.js', binaryDir: (main) => join(dirname(main), '..', 'binaries') },
  { build: '@btc-vision/uwebsockets.js@20.56.0', alias: 'uws-v20-56', binaryDir: (main) => dirname(main) },
];

export interface UwsLoad {
  readonly loaded: { readonly module: UwsModule; readonly build: string; readonly binary: string } | undefined;
  /** Why each candidate was skipped, for the start-up log. */
  readonly skipped: readonly string[];
}

const require = createRequire(import.meta.url);

/** The binary file name for this process: uws_<platform>_<arch>_<Node ABI>.node. */
export function binaryName(platform = process.platform, arch = process.arch, abi = process.versions.modules): string {
  return `uws_${platform}_${arch}_${abi}.node`;
}

/** `customBinary` (config server.uwsBinary) first, then the bundled builds. */
export function loadUws(customBinary?: string, builds: readonly UwsBuild[] = UWS_BUILDS): UwsLoad {
  const skipped: string[] = [];
  const tryBinary = (build: string, binary: string): UwsLoad['loaded'] => {
    if (!existsSync(binary)) {
      skipped.push(`${build}: no ${binaryName()}`);
      return undefined;
    }
    try {
      const module = require(binary) as UwsModule;
      if (typeof module.App !== 'function') throw new Error('not a uWebSockets.js binary (no App)');
      return { module, build, binary };
    } catch (err) {
      // Typically: `GLIBC_2.38' not found.
      skipped.push(`${build}: ${(err as Error).message.split('\n')[0]}`);
      return undefined;
    }
  };
  if (customBinary !== undefined) {
    const loaded = tryBinary(`custom binary ${customBinary}`, customBinary);
    if (loaded) return { loaded, skipped };
  }
  for (const candidate of builds) {
    let main: string;
    try {
      main = require.resolve(candidate.alias);
    } catch {
      skipped.push(`${candidate.build}: not installed`);
      continue;
    }
    const loaded = tryBinary(candidate.build, join(candidate.binaryDir(main), binaryName()));
    if (loaded) return { loaded, skipped };
  }
  return { loaded: undefined, skipped };
}

/** A loaded build behind the interface routes use; its request and response objects satisfy it as they are. */
export function uwsImplementation(loaded: NonNullable<UwsLoad['loaded']>): HttpServerImplementation {
  const uws = loaded.module;
  return {
    name: 'uws',
    build: loaded.build,
    native: true,
    createApp: () => new UwsApp(uws),
  };
}

/** uWS's ListenOptions (a const enum in its types, so not importable as a value). */
const LIBUS_LISTEN_DEFAULT = 0;
const LIBUS_LISTEN_EXCLUSIVE_PORT = 1;

class UwsApp implements HttpApp {
  private readonly app: Uws.TemplatedApp;
  private listenSocket: Uws.us_listen_socket | undefined;

  constructor(private readonly uws: UwsModule) {
    this.app = uws.App();
  }

  get(pattern: string, handler: RouteHandler) {
    return this.app.get(pattern, handler);
  }

  post(pattern: string, handler: RouteHandler) {
    return this.app.post(pattern, handler);
  }

  patch(pattern: string, handler: RouteHandler) {
    return this.app.patch(pattern, handler);
  }

  put(pattern: string, handler: RouteHandler) {
    return this.app.put(pattern, handler);
  }

  del(pattern: string, handler: RouteHandler) {
    return this.app.del(pattern, handler);
  }

  any(pattern: string, handler: RouteHandler) {
    return this.app.any(pattern, handler);
  }

  listen(host: string, port: number, options: { readonly reusePort?: boolean } = {}): Promise<number> {
    // uWS shares a port (SO_REUSEPORT) unless told otherwise: two gateways on one port would split
    // its requests without a word. Exclusive unless sharing is asked for.
    const listenOptions = options.reusePort === true ? LIBUS_LISTEN_DEFAULT : LIBUS_LISTEN_EXCLUSIVE_PORT;
    return new Promise((resolve, reject) => {
      // (host, port, options, cb): in every native build, missing from the 20.30 build's types.
      const listen = this.app.listen as unknown as (host: string, port: number, options: number, cb: (socket: Uws.us_listen_socket | false) => void) => void;
      listen.call(this.app, host, port, listenOptions, (socket) => {
        if (!socket) return reject(new Error(`cannot listen on ${host}:${port}: the port is in use or the address is not this host's`));
        this.listenSocket = socket;
        resolve(this.uws.us_socket_local_port(socket));
      });
    });
  }

  stopListening(): void {
    if (this.listenSocket !== undefined) this.uws.us_listen_socket_close(this.listenSocket);
    this.listenSocket = undefined;
  }

  closeAll(): void {
    // In every native build; missing from the 20.30 build's type declarations.
    (this.app as Uws.TemplatedApp & { close(): void }).close();
    // close() closed the listen socket too: closing it again would crash the process.
    this.listenSocket = undefined;
  }
}
