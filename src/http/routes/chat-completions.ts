// POST /v1/chat/completions, and the routes that speak another dialect of the same exchange
// (/v1/messages, /v1/completions): checks what can be checked from the headers, then reads the
// body into a ChatExchange (chat/exchange.ts), which does the rest.
import { GatewayError } from '../../errors/gateway-error.js';
import type { RequestAuthenticator } from '../authenticate.js';
import { readBody } from '../body-reader.js';
import { isJsonContentType } from '../respond.js';
import { ChatExchange, type ChatDeps } from '../chat/exchange.js';
import type { ClientDialect } from '../dialects/dialect.js';
import { openAiChatDialect } from '../dialects/openai-chat.js';
import { requestIdFrom } from '../request-id.js';
import type { HttpRequest, HttpResponse } from '../server-api.js';


export interface ChatRouteDeps extends ChatDeps {
  readonly auth: RequestAuthenticator;
  isDraining(): boolean;
}

export function chatCompletionsRoute(deps: ChatRouteDeps, dialect: ClientDialect = openAiChatDialect) {
  const maxBodyBytes = deps.config.server.maxBodyBytes;
  return (res: HttpResponse, req: HttpRequest): void => {
    const startedAt = performance.now();
    // HttpRequest is only valid until the first return or await: read every header now.
    const requestId = requestIdFrom(req.getHeader('x-request-id'));
    const contentType = req.getHeader('content-type');
    const bodyHeaders = { contentLength: req.getHeader('content-length'), connection: req.getHeader('connection') };
    const authorization = req.getHeader('authorization');
    const xApiKey = req.getHeader('x-api-key');
    const exchange = new ChatExchange(deps, res, requestId, startedAt, dialect);
    res.onAborted(() => exchange.onClientAborted());
    if (deps.isDraining()) return exchange.fail(new GatewayError('NR_SHUTTING_DOWN'), true);
    exchange.setCaller(deps.auth.authenticate(authorization, xApiKey));
    if (exchange.isFinished) return;
    if (!isJsonContentType(contentType)) return exchange.fail(new GatewayError('NR_UNSUPPORTED_MEDIA_TYPE'), true);
    readBody(res, bodyHeaders, maxBodyBytes, (body) => exchange.onBody(body), (err, cutConnection) => exchange.fail(err, cutConnection));
  };
}
