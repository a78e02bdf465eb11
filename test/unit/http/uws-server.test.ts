// Loading uWebSockets.js: the binary name, the order candidates are tried in and why each was
// skipped, the wrapper around a loaded build, and selectHttpServer's choice between uWS and node:http.
// Expectations about the bundled 20.30 build hold on Node ABI 115 (Node 20) only: that is the one
// ABI it shares with this machine's Node; on other ABIs those tests are skipped.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { nodeHttpImplementation } from '../../../src/http/node-server.js';
import type { HttpApp } from '../../../src/http/server-api.js';
import { selectHttpServer } from '../../../src/http/server.js';
import { UWS_BUILDS, binaryName, loadUws, uwsImplementation } from '../../../src/http/uws-server.js';
import { openSocket, parseResponses } from '../../support/raw-http.js';

type UwsBuild = (typeof UWS_BUILDS)[number];

const require = createRequire(import.meta.url);
const projectRoot = fileURLToPath(new URL('../../../', import.meta.url));
const TRUFFLE_20_30 = '@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0';
const BTC_20_56 = '@btc-vision/uwebsockets.js@20.56.0';
// The 20.30 build ships ABI 93, 108 and 115 binaries for these platforms; this machine is Node 20 (115).
const abi115 = process.versions.modules === '115' && ['linux', 'darwin', 'win32'].includes(process.platform);
const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime;
const glibcBefore238 = glibc !== undefined && Number(glibc.split('.')[1]) < 38 && glibc.startsWith('2.');

const scratch = mkdtempSync(join(tmpdir(), 'nemo-uws-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A directory holding `binaryName()` with `content`, or nothing when `content` is undefined. */
function binaryDirWith(name: string, content?: string | { copyOf: string }): string {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  if (typeof content === 'string') writeFileSync(join(dir, binaryName()), content);
  else if (content !== undefined) copyFileSync(content.copyOf, join(dir, binaryName()));
  return dir;
}

const garbageBinary = join(binaryDirWith('garbage', 'this is no shared object\n'), binaryName());

describe('binaryName', () => {
  it('is uws_<platform>_<arch>_<abi>.node, for this process by default', () => {
    expect(binaryName('linux', 'x64', '115')).toBe('uws_linux_x64_115.node');
    expect(binaryName('darwin', 'arm64', '137')).toBe('uws_darwin_arm64_137.node');
    expect(binaryName()).toBe(`uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
  });
});

describe('loadUws', () => {
  it.runIf(abi115)('loads the 20.30 build, first in line, from its binaries directory', () => {
    const { loaded, skipped } = loadUws();
    expect(skipped).toEqual([]);
    expect(loaded?.build).toBe(TRUFFLE_20_30);
    expect(loaded?.binary).toBe(join(projectRoot, 'node_modules', 'uWebSockets.js', 'binaries', binaryName()));
    // The binary itself, not the package's JS fallback.
    expect(loaded?.module).toBe(require(loaded!.binary));
    expect(typeof loaded?.module.App).toBe('function');
  });

  it('records a custom binary that does not exist and goes on to the bundled builds', () => {
    const { loaded, skipped } = loadUws('/nonexistent.node');
    expect(skipped[0]).toBe(`custom binary /nonexistent.node: no ${binaryName()}`);
    if (abi115) {
      expect(skipped).toHaveLength(1);
      expect(loaded?.build).toBe(TRUFFLE_20_30);
    }
  });

  it('records a custom binary that fails to load with the first line of the error', () => {
    const { loaded, skipped } = loadUws(garbageBinary);
    expect(skipped[0]).toMatch(new RegExp(`^custom binary ${escape(garbageBinary)}: \\S`));
    expect(skipped[0]).not.toContain('\n');
    if (abi115) expect(loaded?.build).toBe(TRUFFLE_20_30);
  });

  it('skips a build whose alias is not installed', () => {
    const binaryDir = vi.fn(() => scratch);
    const result = loadUws(undefined, [{ build: 'nobody@0.0.0', alias: 'nemo-test-no-such-package', binaryDir }]);
    expect(result).toEqual({ loaded: undefined, skipped: ['nobody@0.0.0: not installed'] });
    expect(binaryDir).not.toHaveBeenCalled();
  });

  it('looks for the binary where binaryDir says, from the alias main file, and skips a build without one', () => {
    const empty = binaryDirWith('empty');
    const binaryDir = vi.fn(() => empty);
    const result = loadUws(undefined, [{ build: 'nobinary@1.0.0', alias: 'yaml', binaryDir }]);
    expect(binaryDir).toHaveBeenCalledWith(require.resolve('yaml'));
    expect(result).toEqual({ loaded: undefined, skipped: [`nobinary@1.0.0: no ${binaryName()}`] });
  });

  it('skips a build whose binary does not load, with the first line of the error', () => {
    const dir = dirname(garbageBinary);
    const { loaded, skipped } = loadUws(undefined, [{ build: 'garbage@1.0.0', alias: 'yaml', binaryDir: () => dir }]);
    expect(loaded).toBeUndefined();
    expect(skipped).toHaveLength(1);
    // The loader's message names the file (e.g. "...: file too short" / "invalid ELF header").
    expect(skipped[0]).toMatch(new RegExp(`^garbage@1\\.0\\.0: .*${escape(binaryName())}`));
    expect(skipped[0]).not.toContain('\n');
  });

  // utf-8-validate comes with the 20.30 build; its N-API prebuild loads but has no App.
  const napiAddon = (() => {
    try {
      const file = join(dirname(require.resolve('utf-8-validate/package.json')), 'prebuilds', `${process.platform}-${process.arch}`, 'node.napi.node');
      return existsSync(file) ? file : undefined;
    } catch {
      return undefined;
    }
  })();
  it.runIf(napiAddon !== undefined)('skips a native module that loads but is not uWebSockets.js', () => {
    const dir = binaryDirWith('napi', { copyOf: napiAddon! });
    const result = loadUws(undefined, [{ build: 'napi@1.0.0', alias: 'yaml', binaryDir: () => dir }]);
    expect(result).toEqual({ loaded: undefined, skipped: ['napi@1.0.0: not a uWebSockets.js binary (no App)'] });
  });

  it.runIf(abi115)('tries builds in order, records each failure, and stops at the first that loads', () => {
    const garbageDir = dirname(garbageBinary);
    const never = vi.fn(() => garbageDir);
    const builds: UwsBuild[] = [
      { build: 'missing@1.0.0', alias: 'nemo-test-no-such-package', binaryDir: () => garbageDir },
      { build: 'garbage@1.0.0', alias: 'yaml', binaryDir: () => garbageDir },
      UWS_BUILDS[0]!,
      { build: 'after@1.0.0', alias: 'yaml', binaryDir: never },
    ];
    const { loaded, skipped } = loadUws(undefined, builds);
    expect(loaded?.build).toBe(TRUFFLE_20_30);
    expect(skipped).toHaveLength(2);
    expect(skipped[0]).toBe('missing@1.0.0: not installed');
    expect(skipped[1]).toMatch(/^garbage@1\.0\.0: /);
    expect(never).not.toHaveBeenCalled();
  });

  // The case the module exists for: 20.56's Linux binaries need glibc 2.38 (this machine has 2.36).
  it.runIf(process.platform === 'linux' && glibcBefore238 && ['115', '127', '137', '141'].includes(process.versions.modules))(
    'skips the 20.56 build on a glibc older than 2.38 with the loader error',
    () => {
      const { loaded, skipped } = loadUws(undefined, [UWS_BUILDS[1]!]);
      expect(UWS_BUILDS[1]?.build).toBe(BTC_20_56);
      expect(loaded).toBeUndefined();
      expect(skipped).toHaveLength(1);
      expect(skipped[0]).toMatch(/^@btc-vision\/uwebsockets\.js@20\.56\.0: .*GLIBC_2\.38' not found/);
    },
  );
});

describe.runIf(abi115)('uwsImplementation', () => {
  const apps: HttpApp[] = [];
  const agent = new Agent({ headersTimeout: 2000, bodyTimeout: 2000 });
  afterEach(() => {
    // stopListening before closeAll: closeAll leaves UwsApp's listen socket set, and closing it
    // again later is a use-after-free that kills the process (segfault).
    for (const app of apps.splice(0)) {
      app.stopListening();
      app.closeAll();
    }
  });
  afterAll(() => agent.destroy());

  it('wraps the loaded build: routes with parameters, listen on port 0, a port in use refused', async () => {
    const { loaded } = loadUws();
    const implementation = uwsImplementation(loaded!);
    expect(implementation).toMatchObject({ name: 'uws', native: true, build: TRUFFLE_20_30 });
    const app = implementation.createApp();
    apps.push(app);
    app.get('/who/:name', (res, req) => {
      res.end(`uws ${req.getParameter(0)}`);
    });
    const port = await app.listen('127.0.0.1', 0);
    expect(port).toBeGreaterThan(0);
    const res = await request(`http://127.0.0.1:${port}/who/ada`, { dispatcher: agent });
    expect(await res.body.text()).toBe('uws ada');
    // Only uWS sends this header: the native server answered.
    expect(res.headers.uwebsockets).toBeDefined();

    const second = implementation.createApp();
    apps.push(second);
    await expect(second.listen('127.0.0.1', port)).rejects.toThrow(`cannot listen on 127.0.0.1:${port}`);
  });

  it('stopListening refuses new connections; closeAll closes the open ones', async () => {
    const app = uwsImplementation(loadUws().loaded!).createApp();
    apps.push(app);
    app.get('/', (res) => {
      res.end('ok');
    });
    const port = await app.listen('127.0.0.1', 0);
    const socket = await openSocket(port);
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    let data = '';
    const answered = new Promise<void>((resolve) =>
      socket.on('data', (chunk: Buffer) => {
        data += chunk.toString('latin1');
        if (parseResponses(data).length === 1) resolve();
      }),
    );
    socket.write('GET / HTTP/1.1\r\nhost: t\r\n\r\n');
    await answered;
    app.stopListening();
    await expect(openSocket(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(socket.destroyed).toBe(false);
    app.closeAll();
    // Closed: afterEach must not stopListening on it (the use-after-free above).
    apps.splice(apps.indexOf(app), 1);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('not closed within 1 s')), 1000)))]).finally(() => clearTimeout(timer));
  });
});

describe('selectHttpServer', () => {
  it('node: Node http module, without trying a native build', () => {
    expect(selectHttpServer({ implementation: 'node', uwsBinary: garbageBinary })).toEqual({ implementation: nodeHttpImplementation, skipped: [] });
  });

  it.runIf(abi115)('auto: the bundled 20.30 build', () => {
    const { implementation, skipped } = selectHttpServer({ implementation: 'auto', uwsBinary: undefined });
    expect(implementation).toMatchObject({ name: 'uws', native: true, build: TRUFFLE_20_30 });
    expect(skipped).toEqual([]);
  });

  it.runIf(abi115)('uws with a custom binary that fails: the bundled build, with the custom one recorded', () => {
    const { implementation, skipped } = selectHttpServer({ implementation: 'uws', uwsBinary: garbageBinary });
    expect(implementation).toMatchObject({ name: 'uws', native: true, build: TRUFFLE_20_30 });
    expect(skipped).toHaveLength(1);
    expect(skipped[0]).toMatch(new RegExp(`^custom binary ${escape(garbageBinary)}: `));
  });

  describe('when no native build loads', () => {
    const reasons = ['a@1: not installed', 'b@2: no uws_x.node'];
    afterEach(() => {
      vi.doUnmock('../../../src/http/uws-server.js');
      vi.resetModules();
    });

    async function isolatedSelect(): Promise<typeof selectHttpServer> {
      vi.resetModules();
      vi.doMock('../../../src/http/uws-server.js', async (importOriginal) => ({
        ...(await importOriginal<typeof import('../../../src/http/uws-server.js')>()),
        loadUws: () => ({ loaded: undefined, skipped: reasons }),
      }));
      return (await import('../../../src/http/server.js')).selectHttpServer;
    }

    it('auto falls back to the Node http module and passes on why each build was skipped', async () => {
      const select = await isolatedSelect();
      const { implementation, skipped } = select({ implementation: 'auto', uwsBinary: undefined });
      expect(implementation).toMatchObject({ name: 'node', native: false });
      expect(skipped).toEqual(reasons);
    });

    it('uws throws, naming the platform, the Node version and every reason', async () => {
      const select = await isolatedSelect();
      expect(() => select({ implementation: 'uws', uwsBinary: undefined })).toThrow(
        `server.implementation is "uws" but no uWebSockets.js build loads on ${process.platform}-${process.arch}, Node ${process.versions.node}: ${reasons.join('; ')}`,
      );
    });
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
