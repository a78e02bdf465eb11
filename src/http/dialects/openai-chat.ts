// OpenAI chat completions, the gateway's own dialect: the identity. Bodies and frames pass through.
import { GatewayError } from '../../errors/gateway-error.js';
import { parseChatRequest } from '../chat/admission.js';
import { errorJson, sseErrorFrame } from '../error-response.js';
import type { ClientDialect, DialectSession, StreamEncoder } from './dialect.js';

const PASS_THROUGH: StreamEncoder = {
  frames(frames, out) {
    for (let i = 0; i < frames.length; i++) out.push(frames[i]!);
  },
  end() {},
};
const IDENTITY: DialectSession = { completion: (body) => body, streamEncoder: () => PASS_THROUGH };

export const openAiChatDialect: ClientDialect = {
  route: 'chat_completions',
  identity: true,
  parseRequest: parseChatRequest,
  errorBody: errorJson,
  streamErrorFrame: sseErrorFrame,
  open: () => IDENTITY,
};

/** A JSON object from an OpenAI body the gateway already checked (or an upstream's): garbage is the upstream's fault. */
export function parseUpstreamJson(body: string | Uint8Array): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(typeof body === 'string' ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new GatewayError('NR_UPSTREAM_BAD_RESPONSE');
}
