// The admin API (/admin/v1/...): JSON in and out, authorized by AdminService. The platform master
// key manages organizations; an org's admin key manages its own org's teams, members, keys, config.
import { isUtf8 } from 'node:buffer';
import { asDatabaseError } from '../../db/database.js';
import { GatewayError, toGatewayError } from '../../errors/gateway-error.js';
import type { AdminService } from '../../tenancy/admin-service.js';
import type { Principal } from '../../tenancy/principal.js';
import type { RequestAuthenticator } from '../authenticate.js';
import { readBody } from '../body-reader.js';
import { isJsonContentType, sendError, sendJson } from '../respond.js';
import { requestIdFrom } from '../request-id.js';
import type { HttpRequest, HttpResponse, RouteTable } from '../server-api.js';

const MAX_ADMIN_BODY_BYTES = 64 * 1024;

interface AdminCall {
  readonly caller: Principal;
  /** Path parameters in route order. */
  readonly params: readonly string[];
  /** Query-string parameters (the last value of each). */
  readonly query: Record<string, string>;
  readonly body: unknown;
}

type Method = 'get' | 'post' | 'patch';
type Handler = (call: AdminCall) => Promise<unknown>;

export interface AdminRouteDeps {
  readonly admin: AdminService;
  readonly auth: RequestAuthenticator;
}

/** Registers every admin route on the app; returns the paths, for the 405 fallbacks. */
export function registerAdminRoutes(app: RouteTable, deps: AdminRouteDeps): Map<string, Method[]> {
  const { admin } = deps;
  const routes: Array<[Method, string, number, Handler]> = [
    ['post', '/admin/v1/orgs', 201, ({ caller, body }) => admin.createOrg(caller, body)],
    ['get', '/admin/v1/orgs', 200, async ({ caller }) => list(await admin.listOrgs(caller))],
    ['get', '/admin/v1/orgs/:org', 200, ({ caller, params }) => admin.getOrg(caller, params[0]!)],
    ['post', '/admin/v1/orgs/:org/teams', 201, ({ caller, params, body }) => admin.createTeam(caller, params[0]!, body)],
    ['get', '/admin/v1/orgs/:org/teams', 200, async ({ caller, params }) => list(await admin.listTeams(caller, params[0]!))],
    ['patch', '/admin/v1/orgs/:org/teams/:team', 200, ({ caller, params, body }) => admin.updateTeam(caller, params[0]!, params[1]!, body)],
    ['post', '/admin/v1/orgs/:org/members', 201, ({ caller, params, body }) => admin.createMember(caller, params[0]!, body)],
    ['get', '/admin/v1/orgs/:org/members', 200, async ({ caller, params }) => list(await admin.listMembers(caller, params[0]!))],
    ['post', '/admin/v1/orgs/:org/keys', 201, ({ caller, params, body }) => admin.createKey(caller, params[0]!, body)],
    ['get', '/admin/v1/orgs/:org/keys', 200, async ({ caller, params }) => list(await admin.listKeys(caller, params[0]!))],
    ['patch', '/admin/v1/orgs/:org/keys/:key', 200, ({ caller, params, body }) => admin.updateKey(caller, params[0]!, params[1]!, body)],
    ['post', '/admin/v1/orgs/:org/keys/:key/revoke', 200, ({ caller, params }) => admin.revokeKey(caller, params[0]!, params[1]!)],
    ['get', '/admin/v1/orgs/:org/config', 200, ({ caller, params }) => admin.getConfig(caller, params[0]!)],
    ['patch', '/admin/v1/orgs/:org/config', 200, ({ caller, params, body }) => admin.updateConfig(caller, params[0]!, body)],
    ['post', '/admin/v1/orgs/:org/credits', 200, ({ caller, params, body }) => admin.addCredits(caller, params[0]!, body)],
    ['get', '/admin/v1/orgs/:org/credits', 200, ({ caller, params }) => admin.getCredits(caller, params[0]!)],
    ['get', '/admin/v1/orgs/:org/guardrail-events', 200, async ({ caller, params, query }) => list(await admin.listGuardrailEvents(caller, params[0]!, query))],
    ['get', '/admin/v1/orgs/:org/usage', 200, ({ caller, params, query }) => admin.usage(caller, params[0]!, query)],
    ['get', '/admin/v1/orgs/:org/spend', 200, async ({ caller, params }) => list(await admin.listSpend(caller, params[0]!))],
    ['get', '/admin/v1/orgs/:org/ledger', 200, async ({ caller, params, query }) => list(await admin.listLedger(caller, params[0]!, query))],
    ['get', '/admin/v1/orgs/:org/logs', 200, async ({ caller, params, query }) => list(await admin.listLogs(caller, params[0]!, query))],
  ];
  const methodsByPath = new Map<string, Method[]>();
  for (const [method, path, status, handler] of routes) {
    app[method](path, adminHandler(deps, method, path, status, handler));
    methodsByPath.set(path, [...(methodsByPath.get(path) ?? []), method]);
  }
  return methodsByPath;
}

const list = (data: unknown[]) => ({ object: 'list', data });

function adminHandler(deps: AdminRouteDeps, method: Method, path: string, status: number, handler: Handler) {
  const paramCount = (path.match(/:/g) ?? []).length;
  const takesBody = method !== 'get' && !path.endsWith('/revoke');
  return (res: HttpResponse, req: HttpRequest): void => {
    const requestId = requestIdFrom(req.getHeader('x-request-id'));
    const params = Array.from({ length: paramCount }, (_, i) => req.getParameter(i) ?? '');
    const query = Object.fromEntries(new URLSearchParams(req.getQuery() ?? ''));
    const contentType = req.getHeader('content-type');
    const bodyHeaders = { contentLength: req.getHeader('content-length'), connection: req.getHeader('connection') };
    let aborted = false;
    // An error answered while the body is still arriving closes the connection (the rest of the
    // body would otherwise be read as the next request), unless the body reader has the server
    // read and discard that rest (an oversized body: BodyErrorCallback).
    let bodyPending = takesBody;
    res.onAborted(() => (aborted = true));
    const respond = (outcome: Promise<unknown>) => {
      outcome.then(
        (result) => !aborted && sendJson(res, status, JSON.stringify(result), requestId),
        (err: unknown) => !aborted && sendError(res, toGatewayError(asDatabaseError(err)), requestId, bodyPending),
      );
    };
    const caller = Promise.resolve(deps.auth.authenticate(req.getHeader('authorization'), req.getHeader('x-api-key'))).then((principal) => {
      if (principal instanceof GatewayError) throw principal;
      return principal;
    });
    if (!takesBody) {
      respond(caller.then((principal) => handler({ caller: principal, params, query, body: undefined })));
      return;
    }
    if (!isJsonContentType(contentType)) {
      // Authentication still answers first: an anonymous caller learns nothing else.
      respond(caller.then(() => Promise.reject(new GatewayError('NR_UNSUPPORTED_MEDIA_TYPE'))));
      return;
    }
    const body = new Promise<unknown>((resolve, reject) => {
      readBody(res, bodyHeaders, MAX_ADMIN_BODY_BYTES, (bytes) => {
        bodyPending = false;
        if (!isUtf8(bytes)) return reject(new GatewayError('NR_INVALID_UTF8'));
        try {
          resolve(JSON.parse(bytes.toString('utf8')));
        } catch {
          reject(new GatewayError('NR_INVALID_JSON'));
        }
      }, (err, cutConnection) => {
        bodyPending = cutConnection;
        reject(err);
      });
    });
    // Handled here too: when authentication fails first, nobody awaits the body.
    body.catch(() => undefined);
    respond(caller.then(async (principal) => handler({ caller: principal, params, query, body: await body })));
  };
}
