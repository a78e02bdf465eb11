// The input items of a stored response (GET /v1/responses/:id/input_items): the stored conversation
// (chat messages, as they went upstream) back in the Responses API's item shapes, and one page of
// them in OpenAI's list shape. The conversation stores no item ids, so each item's id is derived
// from the response id and its position: stable across calls, which is what the `after` cursor needs.
import { createHash } from 'node:crypto';
import { invalidRequest } from '../../errors/gateway-error.js';
import type { ChatMessage, ContentPart } from '../../providers/types.js';

export interface ItemsPage {
  readonly object: 'list';
  readonly data: readonly Record<string, unknown>[];
  readonly first_id: string | null;
  readonly last_id: string | null;
  readonly has_more: boolean;
}

export interface ItemsQuery {
  /** 1..100, 20 by default (OpenAI's). */
  readonly limit: number;
  /** OpenAI's default is desc: the newest item first. */
  readonly order: 'asc' | 'desc';
  /** The id of the last item of the previous page, in this order. */
  readonly after: string | null;
}

const DEFAULT_LIMIT = 20;
const MAX_LIMIT = 100;
const MAX_CURSOR_CHARS = 200;

/** The list query (`limit`, `order`, `after`; `include` and others are accepted and ignored); a 400 names the bad one. */
export function parseItemsQuery(query: string): ItemsQuery {
  const params = new URLSearchParams(query);
  const limitText = params.get('limit');
  let limit = DEFAULT_LIMIT;
  if (limitText !== null) {
    limit = /^[0-9]{1,4}$/.test(limitText) ? Number(limitText) : Number.NaN;
    if (!(limit >= 1 && limit <= MAX_LIMIT)) throw invalidRequest(`\`limit\` must be an integer from 1 to ${MAX_LIMIT}.`, 'limit');
  }
  const order = params.get('order') ?? 'desc';
  if (order !== 'asc' && order !== 'desc') throw invalidRequest('`order` must be asc or desc.', 'order');
  const after = params.get('after');
  if (after !== null && (after === '' || after.length > MAX_CURSOR_CHARS)) throw invalidRequest('`after` must be an item id of this response.', 'after');
  return { limit, order, after };
}

/**
 * One page of the items a response was generated from: the stored conversation without its last
 * message (the response's own answer). With previous_response_id that includes the earlier turns,
 * as at OpenAI; instructions are not items.
 */
export function inputItemsPage(responseId: string, conversation: readonly unknown[], query: ItemsQuery): ItemsPage {
  const items = inputItems(responseId, conversation.slice(0, -1) as ChatMessage[]);
  if (query.order === 'desc') items.reverse();
  let start = 0;
  if (query.after !== null) {
    const at = items.findIndex((item) => item.id === query.after);
    if (at === -1) throw invalidRequest('`after` must be an item id of this response.', 'after');
    start = at + 1;
  }
  const data = items.slice(start, start + query.limit);
  return { object: 'list', data, first_id: (data[0]?.id as string | undefined) ?? null, last_id: (data.at(-1)?.id as string | undefined) ?? null, has_more: start + data.length < items.length };
}

/** Chat messages as Responses items, in order: an assistant's tool calls follow its message as function_call items. */
export function inputItems(responseId: string, messages: readonly ChatMessage[]): Array<Record<string, unknown>> {
  const items: Array<Record<string, unknown>> = [];
  const id = (prefix: string) => `${prefix}_${createHash('sha256').update(`${responseId}:${items.length}`).digest('hex').slice(0, 48)}`;
  for (const message of messages) {
    if (message.role === 'tool') {
      items.push({ id: id('fco'), type: 'function_call_output', status: 'completed', call_id: message.tool_call_id ?? '', output: textOf(message.content) });
      continue;
    }
    if (message.role === 'assistant') {
      const text = textOf(message.content);
      if (text !== '' || (message.tool_calls ?? []).length === 0) {
        items.push({ id: id('msg'), type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text, annotations: [] }] });
      }
      for (const call of message.tool_calls ?? []) {
        items.push({ id: id('fc'), type: 'function_call', status: 'completed', call_id: call.id, name: call.function.name, arguments: call.function.arguments });
      }
      continue;
    }
    items.push({ id: id('msg'), type: 'message', status: 'completed', role: message.role, content: inputContent(message.content) });
  }
  return items;
}

function inputContent(content: string | ContentPart[] | null): unknown[] {
  if (typeof content === 'string') return [{ type: 'input_text', text: content }];
  return (content ?? []).map((part) =>
    part.type === 'text' ? { type: 'input_text', text: part.text } : { type: 'input_image', image_url: part.image_url.url, detail: part.image_url.detail ?? 'auto' },
  );
}

function textOf(content: string | ContentPart[] | null): string {
  if (typeof content === 'string') return content;
  let text = '';
  for (const part of content ?? []) if (part.type === 'text') text += part.text;
  return text;
}
