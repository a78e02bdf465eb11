// GET /healthz: the process answers. GET /readyz: every dependency check passes and the gateway
// is not draining; load balancers take an instance out on 503.
import { sendJson } from '../respond.js';
import { requestIdFrom } from '../request-id.js';
import type { HttpRequest, HttpResponse } from '../server-api.js';

export interface ReadinessCheck {
  readonly name: string;
  check(): Promise<void>;
}

export function healthRoute() {
  const body = JSON.stringify({ status: 'ok' });
  return (res: HttpResponse, req: HttpRequest): void => sendJson(res, 200, body, requestIdFrom(req.getHeader('x-request-id')));
}

export function readyRoute(checks: readonly ReadinessCheck[], isDraining: () => boolean) {
  return (res: HttpResponse, req: HttpRequest): void => {
    const requestId = requestIdFrom(req.getHeader('x-request-id'));
    let aborted = false;
    res.onAborted(() => (aborted = true));
    void Promise.all(
      checks.map((c) =>
        c.check().then(
          () => ({ name: c.name, ok: true as const }),
          (err: unknown) => ({ name: c.name, ok: false as const, error: (err as Error).message }),
        ),
      ),
    ).then((results) => {
      if (aborted) return;
      const draining = isDraining();
      const ready = !draining && results.every((r) => r.ok);
      sendJson(res, ready ? 200 : 503, JSON.stringify({ status: ready ? 'ready' : draining ? 'draining' : 'not_ready', checks: results }), requestId);
    });
  };
}
