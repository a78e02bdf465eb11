// Every admin route as the gateway registers it (admin API and exports), read from the route
// tables themselves, so a route added later is fuzzed and put through the security matrices too.
import { registerAdminRoutes, type AdminRouteDeps } from '../../src/http/routes/admin.js';
import { registerExportRoutes, type ExportRouteDeps } from '../../src/http/routes/exports.js';
import type { RouteTable } from '../../src/http/server-api.js';
import type { AdminMethod } from './admin-client.js';

export interface AdminRoute {
  readonly method: AdminMethod;
  /** uWS pattern, e.g. /admin/v1/orgs/:org/keys/:key/revoke */
  readonly pattern: string;
  /** Path parameter names in order, without the colon. */
  readonly params: readonly string[];
  /** Whether the route reads a JSON body (POST and PATCH, but revoke). */
  readonly takesBody: boolean;
}

export function adminRoutes(): AdminRoute[] {
  const seen: AdminRoute[] = [];
  const record = (method: AdminMethod) => (pattern: string) => {
    seen.push({ method, pattern, params: (pattern.match(/:[a-z_]+/g) ?? []).map((p) => p.slice(1)), takesBody: method !== 'GET' && !pattern.endsWith('/revoke') });
    return app;
  };
  // Registration only builds handlers; no dependency is touched until a request arrives.
  const app = { get: record('GET'), post: record('POST'), patch: record('PATCH') } as unknown as RouteTable;
  const deps = {} as AdminRouteDeps & ExportRouteDeps;
  registerAdminRoutes(app, deps);
  registerExportRoutes(app, deps);
  return seen;
}

/** Fills a pattern's parameters (already URL-encoded by the caller when they must be). */
export function fillPath(route: AdminRoute, values: Readonly<Record<string, string>>): string {
  return route.pattern.replace(/:([a-z_]+)/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`no value for :${name} in ${route.pattern}`);
    return value;
  });
}
