// GET /metrics: the Prometheus exposition of the gateway's registry, behind a bearer token when
// one is configured (metrics.tokenEnv), compared in constant time.
import { createHash, timingSafeEqual } from 'node:crypto';
import { GatewayError } from '../../errors/gateway-error.js';
import { beginScrape, registry } from '../../metrics/registry.js';
import { requestIdFrom } from '../request-id.js';
import { sendError } from '../respond.js';
import type { HttpRequest, HttpResponse } from '../server-api.js';

const digest = (text: string) => createHash('sha256').update(text).digest();

export function metricsRoute(token?: string) {
  const expected = token === undefined ? undefined : digest(`Bearer ${token}`);
  return (res: HttpResponse, req: HttpRequest): void => {
    const requestId = requestIdFrom(req.getHeader('x-request-id'));
    if (expected !== undefined && !timingSafeEqual(digest(req.getHeader('authorization')), expected)) {
      sendError(res, new GatewayError('NR_UNAUTHORIZED', 'GET /metrics needs the metrics token: Authorization: Bearer <token>.'), requestId);
      return;
    }
    let aborted = false;
    res.onAborted(() => (aborted = true));
    beginScrape();
    void registry.metrics().then((text) => {
      if (aborted) return;
      res.cork(() => {
        res.writeStatus('200 OK').writeHeader('content-type', registry.contentType).writeHeader('x-request-id', requestId).end(text);
      });
    });
  };
}
