// GET /metrics: the Prometheus exposition of the gateway's registry.
import { registry } from '../../metrics/registry.js';
import type { HttpResponse } from '../uws.js';

export function metricsRoute() {
  return (res: HttpResponse): void => {
    let aborted = false;
    res.onAborted(() => (aborted = true));
    void registry.metrics().then((text) => {
      if (aborted) return;
      res.cork(() => {
        res.writeStatus('200 OK').writeHeader('content-type', registry.contentType).end(text);
      });
    });
  };
}
