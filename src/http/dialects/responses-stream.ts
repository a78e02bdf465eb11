// OpenAI chat chunks in, the Responses API's typed stream events out, each with its sequence_number:
// response.created and response.in_progress first; per output item output_item.added, then for a
// message content_part.added, output_text.delta... output_text.done, content_part.done, for
// reasoning text (reasoning_content deltas) the same with reasoning_text, and for a function call
// function_call_arguments.delta... .done; output_item.done when the next item starts or the answer
// ends; then response.completed (or response.incomplete) with the whole response, which end() sends
// after the session's seal. Reasoning the usage alone reports (a count of tokens, no text) is known
// only at the end: its reasoning item comes last. The whole response is fixed once (response()), so
// the stored copy and the one sent are the same.
import { frameData, type Frame, type StreamEncoder } from './dialect.js';
import { parseUpstreamJson } from './openai-chat.js';
import { endingOf, newId, reasoningItem, reportsReasoning, responseObject, usageOf, type Ending, type ItemStatus, type OutputItem, type ReasoningItem, type ResponseBase } from './responses-output.js';

type OpenItem =
  | { readonly kind: 'message'; readonly id: string; readonly index: number; readonly texts: string[] }
  | { readonly kind: 'reasoning'; readonly id: string; readonly index: number; readonly texts: string[] }
  | { readonly kind: 'call'; readonly id: string; readonly index: number; readonly toolIndex: number; readonly callId: string; readonly name: string; readonly args: string[] };

interface ChatToolCallDelta {
  index?: number;
  id?: string;
  function?: { name?: string; arguments?: string };
}

const COMPLETED: Ending = { status: 'completed', incompleteDetails: null };

export class ResponsesStreamEncoder implements StreamEncoder {
  private sequence = 0;
  private started = false;
  private ended = false;
  private readonly output: OutputItem[] = [];
  private open: OpenItem | undefined;
  private finishReason: unknown = null;
  private usage: unknown;
  /** Fixed by the first response() call: the answer as stored and as sent. */
  private final: { readonly response: Record<string, unknown>; readonly ending: Ending; readonly lastItem: OutputItem | undefined; readonly trailingReasoning: ReasoningItem | undefined } | undefined;
  private sawReasoning = false;

  constructor(private readonly base: ResponseBase) {}

  frames(frames: readonly Frame[], out: Frame[]): void {
    for (const frame of frames) for (const data of frameData(frame)) this.onData(data, out);
  }

  end(out: Frame[]): void {
    if (this.ended) return;
    this.start(out);
    const { response, ending, trailingReasoning } = this.fixed();
    this.closeItem(out);
    if (trailingReasoning !== undefined) {
      const index = this.output.length;
      this.output.push(trailingReasoning);
      out.push(this.event('response.output_item.added', { output_index: index, item: { ...trailingReasoning, status: 'in_progress' } }));
      out.push(this.event('response.output_item.done', { output_index: index, item: trailingReasoning }));
    }
    this.ended = true;
    out.push(this.event(ending.status === 'completed' ? 'response.completed' : 'response.incomplete', { response }));
  }

  /** The complete response object, once the upstream stream ended. */
  response(): Record<string, unknown> {
    return this.fixed().response;
  }

  private fixed(): NonNullable<ResponsesStreamEncoder['final']> {
    if (this.final === undefined) {
      const ending = endingOf(this.finishReason);
      const lastItem = this.open === undefined ? undefined : finishedItem(this.open, ending.status);
      const output = lastItem === undefined ? this.output.slice() : [...this.output, lastItem];
      const usage = usageOf(this.usage);
      const trailingReasoning = !this.sawReasoning && reportsReasoning(usage) ? reasoningItem(newId('rs'), '', ending.status) : undefined;
      if (trailingReasoning !== undefined) output.push(trailingReasoning);
      this.final = { response: responseObject(this.base, output, ending, usage), ending, lastItem, trailingReasoning };
    }
    return this.final;
  }

  private onData(data: string, out: Frame[]): void {
    // The closing events wait for end(): the exchange may seal the answer first.
    if (this.ended || data === '[DONE]') return;
    const chunk = parseUpstreamJson(data);
    this.start(out);
    if (chunk.usage != null) this.usage = chunk.usage;
    const choice = (Array.isArray(chunk.choices) ? chunk.choices[0] : undefined) as { delta?: Record<string, unknown>; finish_reason?: unknown } | undefined;
    if (choice === undefined) return;
    const delta = choice.delta ?? {};
    if (typeof delta.reasoning_content === 'string' && delta.reasoning_content !== '') {
      const reasoning = this.openReasoning(out);
      reasoning.texts.push(delta.reasoning_content);
      out.push(this.event('response.reasoning_text.delta', { item_id: reasoning.id, output_index: reasoning.index, content_index: 0, delta: delta.reasoning_content }));
    }
    if (typeof delta.content === 'string' && delta.content !== '') {
      const message = this.openMessage(out);
      message.texts.push(delta.content);
      out.push(this.event('response.output_text.delta', { item_id: message.id, output_index: message.index, content_index: 0, delta: delta.content, logprobs: [] }));
    }
    if (Array.isArray(delta.tool_calls)) for (const call of delta.tool_calls as ChatToolCallDelta[]) this.onToolCall(call, out);
    if (choice.finish_reason != null) this.finishReason = choice.finish_reason;
  }

  private start(out: Frame[]): void {
    if (this.started) return;
    this.started = true;
    const response = responseObject(this.base, [], undefined, null);
    out.push(this.event('response.created', { response }));
    out.push(this.event('response.in_progress', { response }));
  }

  private openMessage(out: Frame[]): Extract<OpenItem, { kind: 'message' }> {
    if (this.open?.kind === 'message') return this.open;
    this.closeItem(out);
    const message = { kind: 'message' as const, id: newId('msg'), index: this.output.length, texts: [] };
    this.open = message;
    out.push(this.event('response.output_item.added', { output_index: message.index, item: { id: message.id, type: 'message', status: 'in_progress', role: 'assistant', content: [] } }));
    out.push(this.event('response.content_part.added', { item_id: message.id, output_index: message.index, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } }));
    return message;
  }

  private openReasoning(out: Frame[]): Extract<OpenItem, { kind: 'reasoning' }> {
    if (this.open?.kind === 'reasoning') return this.open;
    this.closeItem(out);
    this.sawReasoning = true;
    const reasoning = { kind: 'reasoning' as const, id: newId('rs'), index: this.output.length, texts: [] };
    this.open = reasoning;
    out.push(this.event('response.output_item.added', { output_index: reasoning.index, item: { id: reasoning.id, type: 'reasoning', status: 'in_progress', summary: [], content: [] } }));
    out.push(this.event('response.content_part.added', { item_id: reasoning.id, output_index: reasoning.index, content_index: 0, part: { type: 'reasoning_text', text: '' } }));
    return reasoning;
  }

  private onToolCall(call: ChatToolCallDelta, out: Frame[]): void {
    const toolIndex = call.index ?? 0;
    let open = this.open;
    if (open?.kind !== 'call' || open.toolIndex !== toolIndex) {
      this.closeItem(out);
      open = { kind: 'call', id: newId('fc'), index: this.output.length, toolIndex, callId: call.id ?? `call_${this.base.id.slice(5, 29)}_${toolIndex}`, name: call.function?.name ?? '', args: [] };
      this.open = open;
      out.push(this.event('response.output_item.added', { output_index: open.index, item: { id: open.id, type: 'function_call', status: 'in_progress', call_id: open.callId, name: open.name, arguments: '' } }));
    }
    const args = call.function?.arguments;
    if (typeof args === 'string' && args !== '') {
      open.args.push(args);
      out.push(this.event('response.function_call_arguments.delta', { item_id: open.id, output_index: open.index, delta: args }));
    }
  }

  /** The open item's closing events; it joins the output. The last one is the fixed response's. */
  private closeItem(out: Frame[]): void {
    const open = this.open;
    if (open === undefined) return;
    this.open = undefined;
    const item = this.final?.lastItem ?? finishedItem(open, COMPLETED.status);
    this.output.push(item);
    if (item.type === 'message') {
      const part = item.content[0]!;
      out.push(this.event('response.output_text.done', { item_id: item.id, output_index: open.index, content_index: 0, text: part.text, logprobs: [] }));
      out.push(this.event('response.content_part.done', { item_id: item.id, output_index: open.index, content_index: 0, part }));
    } else if (item.type === 'reasoning') {
      const part = item.content?.[0] ?? { type: 'reasoning_text', text: '' };
      out.push(this.event('response.reasoning_text.done', { item_id: item.id, output_index: open.index, content_index: 0, text: part.text }));
      out.push(this.event('response.content_part.done', { item_id: item.id, output_index: open.index, content_index: 0, part }));
    } else {
      out.push(this.event('response.function_call_arguments.done', { item_id: item.id, output_index: open.index, name: item.name, arguments: item.arguments }));
    }
    out.push(this.event('response.output_item.done', { output_index: open.index, item }));
  }

  private event(type: string, payload: Record<string, unknown>): string {
    return `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: this.sequence++, ...payload })}\n\n`;
  }
}

function finishedItem(open: OpenItem, status: ItemStatus): OutputItem {
  if (open.kind === 'reasoning') return reasoningItem(open.id, open.texts.join(''), status);
  if (open.kind === 'message') return { id: open.id, type: 'message', status, role: 'assistant', content: [{ type: 'output_text', text: open.texts.join(''), annotations: [] }] };
  return { id: open.id, type: 'function_call', status, call_id: open.callId, name: open.name, arguments: open.args.join('') };
}
