// GET /ui and GET /ui/*: the admin console's static files, built by `npm run build` into dist/ui
// and read into memory once, when the route is made; no request path ever reaches the file
// system. Content-hashed assets are cached for a year, index.html never, and every client route of
// the console (/ui/keys, /ui/logs ...) answers index.html. The console holds no privilege of its
// own: in the browser it calls /admin/v1 with the key it was given.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { GatewayError } from '../../errors/gateway-error.js';
import { log } from '../../log.js';
import { requestIdFrom } from '../request-id.js';
import { sendError } from '../respond.js';
import type { HttpRequest, HttpResponse, RouteHandler } from '../server-api.js';

export interface UiRouteOptions {
  /** The built console (default: dist/ui of this checkout). */
  readonly assetDir?: string;
}

interface Asset {
  readonly body: Buffer;
  /** Only where it is smaller. */
  readonly gzip: Buffer | undefined;
  readonly contentType: string;
  readonly cacheControl: string;
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.map', '.json', '.svg', '.txt']);

/** The page may load its own files and call this origin, nothing else; no framing, no inline code. */
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const HTML_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};
/** Names carrying a content hash (esbuild's `[name]-[hash]`): they never change, so they are cached for good. */
const HASHED = /^assets\//;
/** A console route: lower-case path segments, no dot, so never a file name and never `..`. */
const CLIENT_ROUTE = /^\/ui(?:\/[a-z0-9-]+)*\/?$/;

/** Where `npm run build` puts the console: dist/ui beside package.json, from src/ or dist/src/ alike. */
export function defaultUiAssetDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return join(dir, 'dist', 'ui');
}

/** The handler for GET /ui and GET /ui/*; register both patterns. */
export function uiRoute(options: UiRouteOptions = {}): RouteHandler {
  const assetDir = resolve(options.assetDir ?? defaultUiAssetDir());
  const assets = loadAssets(assetDir);
  const index = assets.get('/ui/index.html');
  if (index === undefined) log.warn('the admin console is not built: /ui answers 404 until `npm run build` writes it', { assetDir });
  const notBuilt = 'The admin console is not built on this gateway: run `npm run build`.';

  return (res: HttpResponse, req: HttpRequest): void => {
    const requestId = requestIdFrom(req.getHeader('x-request-id'));
    const path = req.getUrl();
    const asset = assets.get(path) ?? (CLIENT_ROUTE.test(path) ? index : undefined);
    if (asset === undefined) {
      const message = index === undefined ? notBuilt : `Unknown request URL: GET ${path.slice(0, 256)}`;
      sendError(res, new GatewayError('NR_ROUTE_NOT_FOUND', message), requestId);
      return;
    }
    const gzip = asset.gzip !== undefined && /\bgzip\b/.test(req.getHeader('accept-encoding'));
    res.cork(() => {
      res
        .writeStatus('200 OK')
        .writeHeader('content-type', asset.contentType)
        .writeHeader('cache-control', asset.cacheControl)
        .writeHeader('x-content-type-options', 'nosniff')
        .writeHeader('x-request-id', requestId);
      if (asset.contentType.startsWith('text/html')) for (const name in HTML_HEADERS) res.writeHeader(name, HTML_HEADERS[name]!);
      if (asset.gzip !== undefined) res.writeHeader('vary', 'accept-encoding');
      if (gzip) res.writeHeader('content-encoding', 'gzip');
      res.end(gzip ? asset.gzip! : asset.body);
    });
  };
}

/** Every file of the folder with a known type, by the URL that serves it (/ui/<relative path>). */
function loadAssets(assetDir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  if (!existsSync(assetDir)) return assets;
  for (const file of filesUnder(assetDir)) {
    const type = CONTENT_TYPES[extname(file)];
    if (type === undefined) continue;
    const name = relative(assetDir, file).split(sep).join('/');
    const body = readFileSync(file);
    const gzipped = COMPRESSIBLE.has(extname(file)) ? gzipSync(body, { level: 9 }) : undefined;
    assets.set(`/ui/${name}`, {
      body,
      gzip: gzipped !== undefined && gzipped.length < body.length ? gzipped : undefined,
      contentType: type,
      cacheControl: name === 'index.html' ? 'no-store' : HASHED.test(name) ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
  }
  return assets;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}
