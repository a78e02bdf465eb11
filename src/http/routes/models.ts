// GET /v1/models: the public model names from config, serialized once at boot.
import type { Config } from '../../config/load.js';
import { sendJson } from '../respond.js';
import { requestIdFrom } from '../request-id.js';
import type { HttpRequest, HttpResponse } from '../uws.js';

export function modelsRoute(config: Config) {
  const created = Math.floor(Date.now() / 1000);
  const body = JSON.stringify({
    object: 'list',
    data: [...config.models.values()].map((m) => ({ id: m.name, object: 'model', created, owned_by: m.ownedBy })),
  });
  return (res: HttpResponse, req: HttpRequest): void => {
    sendJson(res, 200, body, requestIdFrom(req.getHeader('x-request-id')));
  };
}
