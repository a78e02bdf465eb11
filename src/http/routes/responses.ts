// GET and DELETE /v1/responses/:id, GET /v1/responses/:id/input_items and POST
// /v1/responses/:id/cancel: a stored response of POST /v1/responses (the Responses dialect stores
// them), read or deleted in the caller's org only; another org's id answers 404 like an unknown
// one, since row-level security hides it.
import { asDatabaseError, type Database } from '../../db/database.js';
import { GatewayError, toGatewayError } from '../../errors/gateway-error.js';
import { StoredResponses } from '../../logs/stored-responses.js';
import type { KeyPrincipal } from '../../tenancy/principal.js';
import type { RequestAuthenticator } from '../authenticate.js';
import { inputItemsPage, parseItemsQuery } from '../dialects/responses-items.js';
import { sendError, sendJson } from '../respond.js';
import { requestIdFrom } from '../request-id.js';
import type { HttpRequest, HttpResponse } from '../server-api.js';

export interface ResponseRouteDeps {
  readonly auth: RequestAuthenticator;
  readonly db: Pick<Database, 'withTenant'>;
}

/** GET /v1/responses/:id: the response object as stored. */
export function retrieveResponseRoute(deps: ResponseRouteDeps) {
  const store = new StoredResponses(deps.db);
  return storedResponseHandler(deps, async (principal, id) => {
    const json = await store.responseJson(principal.orgId, id);
    if (json === undefined) throw notFound(id);
    return json;
  });
}

/** DELETE /v1/responses/:id: `{id, object: 'response', deleted: true}`. */
export function deleteResponseRoute(deps: ResponseRouteDeps) {
  const store = new StoredResponses(deps.db);
  return storedResponseHandler(deps, async (principal, id) => {
    if (!(await store.delete(principal.orgId, id))) throw notFound(id);
    return JSON.stringify({ id, object: 'response', deleted: true });
  });
}

/** GET /v1/responses/:id/input_items?limit=&order=&after=: the items it was generated from, one page in OpenAI's list shape. */
export function listInputItemsRoute(deps: ResponseRouteDeps) {
  const store = new StoredResponses(deps.db);
  return storedResponseHandler(deps, async (principal, id, query) => {
    const page = parseItemsQuery(query);
    const conversation = await store.conversation(principal.orgId, id);
    if (conversation === undefined) throw notFound(id);
    return JSON.stringify(inputItemsPage(id, conversation, page));
  });
}

/**
 * POST /v1/responses/:id/cancel. Only background responses can be cancelled (OpenAI's rule), and
 * this gateway runs none: every stored response is finished, so a known one answers 400 as OpenAI
 * answers for a synchronous response, an unknown one 404.
 */
export function cancelResponseRoute(deps: ResponseRouteDeps) {
  const store = new StoredResponses(deps.db);
  return storedResponseHandler(deps, async (principal, id) => {
    if ((await store.responseJson(principal.orgId, id)) === undefined) throw notFound(id);
    throw new GatewayError('NR_INVALID_REQUEST', 'Cannot cancel a synchronous response: only responses created with `background: true` can be cancelled, and this gateway does not support background mode.');
  });
}

function notFound(id: string): GatewayError {
  return new GatewayError('NR_NOT_FOUND', `No response found with id ${JSON.stringify(id.slice(0, 200))}.`, { param: 'response_id' });
}

/** Authenticates an org key, then answers 200 with what `act` returns, or its error. */
function storedResponseHandler(deps: ResponseRouteDeps, act: (principal: KeyPrincipal, id: string, query: string) => Promise<string>) {
  return (res: HttpResponse, req: HttpRequest): void => {
    // HttpRequest is only valid until the first await: read everything now.
    const requestId = requestIdFrom(req.getHeader('x-request-id'));
    const id = req.getParameter(0) ?? '';
    const query = req.getQuery() ?? '';
    const caller = deps.auth.authenticate(req.getHeader('authorization'), req.getHeader('x-api-key'));
    let aborted = false;
    res.onAborted(() => (aborted = true));
    const run = async (): Promise<string> => {
      const principal = await caller;
      if (principal instanceof GatewayError) throw principal;
      if (principal.kind !== 'key') throw new GatewayError('NR_FORBIDDEN', 'The platform master key is for the admin API; call /v1 with an org API key.');
      return act(principal, id, query);
    };
    run().then(
      (body) => !aborted && sendJson(res, 200, body, requestId),
      (err: unknown) => !aborted && sendError(res, toGatewayError(asDatabaseError(err)), requestId),
    );
  };
}
