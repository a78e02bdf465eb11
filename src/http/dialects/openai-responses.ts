// OpenAI's Responses API (POST /v1/responses) as a client dialect: the request is translated to
// OpenAI chat (responses-request.ts); the answer comes back as a `response` object, or as the typed
// stream events (responses-stream.ts); errors in OpenAI's error JSON (a final `event: error` in a
// stream). With `store` (the default) the response and the conversation that led to it are saved in
// the org's nemo.stored_responses before the answer's last bytes go out, so a follow-up with
// previous_response_id finds it at once; prepare() reads that conversation back before admission.
import type { Config } from '../../config/load.js';
import type { Database } from '../../db/database.js';
import { GatewayError } from '../../errors/gateway-error.js';
import { StoredResponses } from '../../logs/stored-responses.js';
import type { ChatMessage, ChatRequest } from '../../providers/types.js';
import type { KeyPrincipal } from '../../tenancy/principal.js';
import { errorJson, sseErrorFrame } from '../error-response.js';
import type { ClientDialect, DialectContext, DialectSession } from './dialect.js';
import { parseUpstreamJson } from './openai-chat.js';
import { assistantMessage, endingOf, newId, reasoningItem, reportsReasoning, responseObject, usageOf, type OutputItem, type ResponseBase } from './responses-output.js';
import { continuation, responsesRequestInfo, responsesToChatRequest, type ResponsesRequestInfo } from './responses-request.js';
import { ResponsesStreamEncoder } from './responses-stream.js';

export interface ResponsesDeps {
  readonly db: Pick<Database, 'withTenant'>;
  /** Stored responses are kept the org's log retention, else logs.retentionDays. */
  readonly config: { readonly logs: Pick<Config['logs'], 'retentionDays'> };
}

export function responsesDialect(deps: ResponsesDeps): ClientDialect {
  const store = new StoredResponses(deps.db);
  const defaultRetentionDays = deps.config.logs.retentionDays;
  return {
    route: 'responses',
    identity: false,
    parseRequest: responsesToChatRequest,
    errorBody: errorJson,
    streamErrorFrame: sseErrorFrame,
    prepare: (request, principal) => withPreviousResponse(store, request, principal),
    open: (ctx) => new ResponsesSession(ctx, store, defaultRetentionDays),
  };
}

/** A request naming previous_response_id continues that response's conversation (of the caller's org only). */
async function withPreviousResponse(store: StoredResponses, request: ChatRequest, principal: KeyPrincipal): Promise<ChatRequest> {
  const previousId = responsesRequestInfo(request).echo.previous_response_id;
  if (previousId === null) return request;
  const conversation = await store.conversation(principal.orgId, previousId);
  if (conversation === undefined) throw new GatewayError('NR_NOT_FOUND', 'previous response not found', { param: 'previous_response_id' });
  // Written by this dialect from a validated request and its answer.
  return continuation(request, conversation as ChatMessage[]);
}

interface ChatChoice {
  message?: { content?: unknown; reasoning_content?: unknown; tool_calls?: Array<{ id?: string; function?: { name?: string; arguments?: string } }> };
  finish_reason?: unknown;
}

class ResponsesSession implements DialectSession {
  /** Present when the response is stored: it is saved before the answer's last bytes go out. */
  readonly seal: (() => Promise<void>) | undefined;
  private readonly info: ResponsesRequestInfo;
  private readonly base: ResponseBase;
  /** A complete (non-stream) answer, as sent. */
  private answer: { readonly json: string; readonly output: readonly OutputItem[] } | undefined;
  private encoder: ResponsesStreamEncoder | undefined;

  constructor(
    private readonly ctx: DialectContext,
    private readonly store: StoredResponses,
    private readonly defaultRetentionDays: number,
  ) {
    this.info = responsesRequestInfo(ctx.request);
    this.base = { id: newId('resp'), createdAt: ctx.created, model: ctx.model, echo: this.info.echo };
    this.seal = this.info.echo.store ? () => this.save() : undefined;
  }

  completion(body: string | Uint8Array): string {
    const chat = parseUpstreamJson(body);
    const choice = (Array.isArray(chat.choices) ? chat.choices[0] : undefined) as ChatChoice | undefined;
    const message = choice?.message ?? {};
    const ending = endingOf(choice?.finish_reason);
    const text = typeof message.content === 'string' ? message.content : '';
    const calls = Array.isArray(message.tool_calls) ? message.tool_calls : [];
    const usage = usageOf(chat.usage);
    const reasoning = typeof message.reasoning_content === 'string' ? message.reasoning_content : '';
    const output: OutputItem[] = [];
    // The reasoning comes first, as at OpenAI.
    if (reasoning !== '' || reportsReasoning(usage)) output.push(reasoningItem(newId('rs'), reasoning, ending.status));
    // A turn of tool calls alone has no message item, as at OpenAI.
    if (text !== '' || calls.length === 0) {
      output.push({ id: newId('msg'), type: 'message', status: ending.status, role: 'assistant', content: [{ type: 'output_text', text, annotations: [] }] });
    }
    calls.forEach((call, i) => {
      output.push({ id: newId('fc'), type: 'function_call', status: ending.status, call_id: call.id ?? `call_${this.base.id.slice(5, 29)}_${i}`, name: call.function?.name ?? '', arguments: call.function?.arguments ?? '' });
    });
    const json = JSON.stringify(responseObject(this.base, output, ending, usage));
    this.answer = { json, output };
    return json;
  }

  streamEncoder(): ResponsesStreamEncoder {
    this.encoder = new ResponsesStreamEncoder(this.base);
    return this.encoder;
  }

  /** The response and its conversation (what went upstream but the instructions, then the answer), in the org's table. */
  private async save(): Promise<void> {
    let answer = this.answer;
    if (answer === undefined && this.encoder !== undefined) {
      const response = this.encoder.response();
      answer = { json: JSON.stringify(response), output: response.output as OutputItem[] };
    }
    if (answer === undefined) throw new GatewayError('NR_INTERNAL', undefined, { cause: new Error('responses: seal before an answer') });
    const { principal, request } = this.ctx;
    const instructions = this.info.instructionsMessage;
    const conversation = [...request.messages.filter((m) => m !== instructions), assistantMessage(answer.output)];
    await this.store.save({
      orgId: principal.orgId,
      responseId: this.base.id,
      keyId: principal.keyId,
      model: this.ctx.model,
      responseJson: answer.json,
      conversation,
      retentionDays: principal.logRetentionDays ?? this.defaultRetentionDays,
    });
  }
}
