// GET /metrics: the Prometheus exposition of the gateway's registry.
import { registry } from '../../metrics/registry.js';
import { requestIdFrom } from '../request-id.js';
import type { HttpRequest, HttpResponse } from '../uws.js';

export function metricsRoute() {
  return (res: HttpResponse, req: HttpRequest): void => {
    const requestId = requestIdFrom(req.getHeader('x-request-id'));
    let aborted = false;
    res.onAborted(() => (aborted = true));
    void registry.metrics().then((text) => {
      if (aborted) return;
      res.cork(() => {
        res.writeStatus('200 OK').writeHeader('content-type', registry.contentType).writeHeader('x-request-id', requestId).end(text);
      });
    });
  };
}
