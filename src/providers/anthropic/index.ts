// The Anthropic Messages API adapter. Requests go through the gateway's undici pools, so there is
// no dispatcherFor; mapAnthropicError gives the gateway's error path a readable upstream message.
import type { ProviderAdapter, StreamTranslator, TranslateContext } from '../types.js';
import { isRecord } from './api.js';
import { buildRequest, parseResponse } from './chat.js';
import { AnthropicStreamTranslator } from './stream.js';

/** The message may reach a client: an upstream that sends a novel is cut. */
const MAX_MESSAGE_CHARS = 2000;

export const anthropicAdapter: ProviderAdapter = {
  kind: 'anthropic',
  buildRequest,
  parseResponse,
  createStreamTranslator(ctx: TranslateContext): StreamTranslator {
    return new AnthropicStreamTranslator(ctx);
  },
};

/** `{type:'error', error:{type, message}}` -> "overloaded_error: Overloaded"; anything else -> the status. */
export function mapAnthropicError(status: number, body: string): string {
  try {
    const parsed: unknown = JSON.parse(body);
    const error = isRecord(parsed) && isRecord(parsed.error) ? parsed.error : undefined;
    if (error && typeof error.message === 'string' && error.message !== '') {
      const message = typeof error.type === 'string' && error.type !== '' ? `${error.type}: ${error.message}` : error.message;
      return message.slice(0, MAX_MESSAGE_CHARS);
    }
  } catch {
    // not JSON (a proxy's HTML page, a truncated body): fall back to the status
  }
  return `Anthropic responded with HTTP ${status}`;
}
