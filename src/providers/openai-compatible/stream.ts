// Stream transform for OpenAI-compatible upstreams: frames pass through as they came; only the
// usage chunk is looked into (kept for settlement, stripped when the client did not ask for it)
// and an upstream error event ends the stream as a typed error.
import { GatewayError } from '../../errors/gateway-error.js';
import { CompletionText } from '../../streaming/completion-text.js';
import type { SseEvent } from '../../streaming/sse-parser.js';
import type { FrameSink, StreamTranslator, TranslateContext, Usage } from '../types.js';
import { readUsage } from '../usage.js';

const DONE_FRAME = Buffer.from('data: [DONE]\n\n');
const USAGE_KEY = /"usage"\s*:\s*\{/;
/** A delta carrying generated text, reasoning text or tool-call arguments (not the role or finish chunks). */
const CONTENT_DELTA = /"(?:content|reasoning_content|arguments)"\s*:\s*"[^"]/;
// Inside JSON string values quotes are escaped, so an unescaped `"error":` can only be a key.
const ERROR_KEY = /"error"\s*:/;

export class OpenAiStreamTranslator implements StreamTranslator {
  finished = false;
  usage: Usage | undefined = undefined;
  completionChars = 0;
  contentChunks = 0;
  readonly completionText = new CompletionText(true);

  constructor(private readonly ctx: TranslateContext) {}

  onEvent(event: SseEvent, sink: FrameSink): void {
    const data = event.data;
    if (data === '[DONE]') {
      this.finished = true;
      sink.push(DONE_FRAME);
      return;
    }
    // `includes` first: a search for a pattern that starts with a quote, JSON's most common
    // character, costs V8 several times more, and almost no chunk has the key.
    if (event.event === 'error' || (data.includes('rror"') && ERROR_KEY.test(data) && isErrorPayload(data))) throw upstreamStreamError(data);
    // A cheap shape check instead of parsing every chunk: a chunk is one JSON object.
    if (data.charCodeAt(0) !== 0x7b || data.charCodeAt(data.length - 1) !== 0x7d) {
      throw new GatewayError('NR_UPSTREAM_BAD_RESPONSE', 'The upstream provider sent an unreadable stream chunk.');
    }
    // Counted from the raw frame: an upper bound of the generated text until exact counting.
    this.completionChars += data.length;
    // The text's keys are found once, for the text and the count; the pattern is only asked about
    // chunks without such a key in the plain form (`"content": "x"`, with spaces).
    if (this.completionText.appendFromChunk(data) > 0 || CONTENT_DELTA.test(data)) this.contentChunks++;
    if (USAGE_KEY.test(data)) {
      const chunk = parseChunk(data);
      const usage = readUsage(chunk.usage);
      if (usage) this.usage = usage;
      const usageOnly = Array.isArray(chunk.choices) && chunk.choices.length === 0;
      if (usageOnly && !this.ctx.clientWantsUsage) return;
    }
    sink.push(event.frame ?? `data: ${data}\n\n`);
  }
}

function parseChunk(data: string): { usage?: unknown; choices?: unknown } {
  try {
    const parsed: unknown = JSON.parse(data);
    if (typeof parsed === 'object' && parsed !== null) return parsed as { usage?: unknown; choices?: unknown };
  } catch {
    // fall through
  }
  throw new GatewayError('NR_UPSTREAM_BAD_RESPONSE', 'The upstream provider sent an unreadable stream chunk.');
}

function isErrorPayload(data: string): boolean {
  try {
    const parsed = JSON.parse(data) as { error?: unknown; choices?: unknown } | null;
    return typeof parsed === 'object' && parsed !== null && parsed.error != null && parsed.choices === undefined;
  } catch {
    return false;
  }
}

function upstreamStreamError(data: string): GatewayError {
  let message = 'The upstream provider reported an error mid-stream.';
  try {
    const parsed = JSON.parse(data) as { error?: { message?: unknown } };
    if (typeof parsed.error?.message === 'string') message = `Upstream error: ${parsed.error.message}`;
  } catch {
    // keep the generic message
  }
  return new GatewayError('NR_UPSTREAM_ERROR', message, { cause: data });
}
