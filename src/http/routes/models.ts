// GET /v1/models: the public model names the calling key may use, in OpenAI's list shape.
import type { Config } from '../../config/load.js';
import { asDatabaseError } from '../../db/database.js';
import { GatewayError, toGatewayError } from '../../errors/gateway-error.js';
import type { RequestAuthenticator } from '../authenticate.js';
import { sendError, sendJson } from '../respond.js';
import { requestIdFrom } from '../request-id.js';
import type { HttpRequest, HttpResponse } from '../server-api.js';

export function modelsRoute(config: Config, auth: RequestAuthenticator) {
  const created = Math.floor(Date.now() / 1000);
  const models = [...config.models.values()].map((m) => ({ id: m.name, object: 'model', created, owned_by: m.ownedBy }));
  const allModelsBody = JSON.stringify({ object: 'list', data: models });
  return (res: HttpResponse, req: HttpRequest): void => {
    const requestId = requestIdFrom(req.getHeader('x-request-id'));
    let aborted = false;
    res.onAborted(() => (aborted = true));
    void Promise.resolve(auth.authenticate(req.getHeader('authorization'), req.getHeader('x-api-key'))).then(
      (principal) => {
        if (aborted) return;
        if (principal instanceof GatewayError) return sendError(res, principal, requestId);
        const allowed = principal.kind === 'key' ? principal.allowedModels : undefined;
        const body = allowed === undefined ? allModelsBody : JSON.stringify({ object: 'list', data: models.filter((m) => allowed.has(m.id)) });
        sendJson(res, 200, body, requestId);
      },
      (err: unknown) => !aborted && sendError(res, toGatewayError(asDatabaseError(err)), requestId),
    );
  };
}
