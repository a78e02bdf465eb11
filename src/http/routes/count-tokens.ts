// POST /v1/messages/count_tokens: Anthropic's token count of a Messages body, answered here without
// any upstream call or credit: the body translated as /v1/messages translates it, counted with the
// model's tokenizer where the gateway has it, else o200k_base as an estimate (Anthropic publishes
// no tokenizer), plus the image allowance per image.
import type { Config } from '../../config/load.js';
import { asDatabaseError } from '../../db/database.js';
import { GatewayError, toGatewayError } from '../../errors/gateway-error.js';
import type { KeyPrincipal } from '../../tenancy/principal.js';
import type { WorkerPool } from '../../workers/pool.js';
import type { RequestAuthenticator } from '../authenticate.js';
import { readBody } from '../body-reader.js';
import { countImageParts, decodeBody, routeChatRequest, routeEncoding } from '../chat/admission.js';
import { anthropicErrorJson } from '../dialects/anthropic-messages.js';
import { anthropicCountRequest } from '../dialects/anthropic-request.js';
import { isJsonContentType, sendError, sendJson } from '../respond.js';
import { requestIdFrom } from '../request-id.js';
import type { HttpRequest, HttpResponse } from '../server-api.js';

export interface CountTokensDeps {
  readonly config: Config;
  readonly auth: RequestAuthenticator;
  readonly workers: WorkerPool;
}

export function countTokensRoute(deps: CountTokensDeps) {
  const { config, auth, workers } = deps;
  return (res: HttpResponse, req: HttpRequest): void => {
    const requestId = requestIdFrom(req.getHeader('x-request-id'));
    let aborted = false;
    res.onAborted(() => (aborted = true));
    const fail = (err: GatewayError, cut = false): void => {
      if (!aborted) sendError(res, err, requestId, cut, undefined, anthropicErrorJson(err));
    };
    const caller = Promise.resolve(auth.authenticate(req.getHeader('authorization'), req.getHeader('x-api-key')));
    // Handled below once the body is read; a lookup that fails before then must not go unhandled.
    caller.catch(() => undefined);
    if (!isJsonContentType(req.getHeader('content-type'))) return fail(new GatewayError('NR_UNSUPPORTED_MEDIA_TYPE'), true);
    const bodyHeaders = { contentLength: req.getHeader('content-length'), connection: req.getHeader('connection') };
    readBody(res, bodyHeaders, config.server.maxBodyBytes, (body) => {
      let text: string;
      try {
        text = decodeBody(body);
      } catch (err) {
        return fail(toGatewayError(err));
      }
      caller
        .then(async (principal) => {
          if (principal instanceof GatewayError) return fail(principal);
          if (principal.kind !== 'key') return fail(new GatewayError('NR_FORBIDDEN', 'The platform master key is for the admin API; call /v1 with an org API key.'));
          const count = await countOf(text, principal);
          if (!aborted) sendJson(res, 200, JSON.stringify({ input_tokens: count }), requestId);
        })
        .catch((err: unknown) => fail(toGatewayError(asDatabaseError(err))));
    }, fail);
  };

  async function countOf(text: string, principal: KeyPrincipal): Promise<number> {
    const request = anthropicCountRequest(text);
    const { route } = routeChatRequest(request, 0, principal, config.models);
    const tokens = await workers.countTokens({ kind: 'chat', messages: request.messages, tools: request.tools, toolChoice: request.tool_choice, encoding: routeEncoding(route) ?? 'o200k_base' });
    return tokens + countImageParts(request) * config.ledger.imageTokenAllowance;
  }
}
