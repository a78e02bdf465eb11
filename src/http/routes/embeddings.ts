// POST /v1/embeddings: checks what can be checked from the headers, then reads the body into an
// EmbeddingsExchange (embeddings/exchange.ts), which does the rest.
import { GatewayError } from '../../errors/gateway-error.js';
import type { RequestAuthenticator } from '../authenticate.js';
import { readBody } from '../body-reader.js';
import { EmbeddingsExchange, type EmbeddingsDeps } from '../embeddings/exchange.js';
import { isJsonContentType } from '../respond.js';
import { requestIdFrom } from '../request-id.js';
import type { HttpRequest, HttpResponse } from '../server-api.js';

export interface EmbeddingsRouteDeps extends EmbeddingsDeps {
  readonly auth: RequestAuthenticator;
  isDraining(): boolean;
}

export function embeddingsRoute(deps: EmbeddingsRouteDeps) {
  const maxBodyBytes = deps.config.server.maxBodyBytes;
  return (res: HttpResponse, req: HttpRequest): void => {
    const startedAt = performance.now();
    // HttpRequest is only valid until the first return or await: read every header now.
    const requestId = requestIdFrom(req.getHeader('x-request-id'));
    const contentType = req.getHeader('content-type');
    const bodyHeaders = { contentLength: req.getHeader('content-length'), connection: req.getHeader('connection') };
    const authorization = req.getHeader('authorization');
    const xApiKey = req.getHeader('x-api-key');
    const exchange = new EmbeddingsExchange(deps, res, requestId, startedAt);
    res.onAborted(() => exchange.onClientAborted());
    if (deps.isDraining()) return exchange.fail(new GatewayError('NR_SHUTTING_DOWN'), true);
    exchange.setCaller(deps.auth.authenticate(authorization, xApiKey));
    if (exchange.isFinished) return;
    if (!isJsonContentType(contentType)) return exchange.fail(new GatewayError('NR_UNSUPPORTED_MEDIA_TYPE'), true);
    readBody(res, bodyHeaders, maxBodyBytes, (body) => exchange.onBody(body), (err, cutConnection) => exchange.fail(err, cutConnection));
  };
}
