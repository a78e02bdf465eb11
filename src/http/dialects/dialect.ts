// A client dialect: the wire format one route speaks to its clients, around the chat exchange,
// which speaks OpenAI chat completions inside (to the upstream adapters, guardrails, the ledger and
// the logs). A dialect turns the client's body into an OpenAI chat request, and the OpenAI answer,
// stream frames or error back into the client's format. OpenAI's own dialect is the identity: its
// frames pass through untouched, with nothing parsed on the hot path.
import type { GatewayError } from '../../errors/gateway-error.js';
import type { ChatRequest } from '../../providers/types.js';
import type { KeyPrincipal } from '../../tenancy/principal.js';

export type Frame = string | Uint8Array;

/** The route as metrics and logs name it: a bounded label. */
export type DialectRoute = 'chat_completions' | 'messages' | 'completions' | 'responses';

/** What a dialect's encoders know of the request. */
export interface DialectContext {
  readonly requestId: string;
  readonly principal: KeyPrincipal;
  /** The request as admitted (the object parseRequest or prepare returned, as guardrails left it). */
  readonly request: ChatRequest;
  /** The public model name the client asked for. */
  readonly model: string;
  /** Unix seconds. */
  readonly created: number;
  /** The client asked for a usage chunk at the end of its stream (where its format has one). */
  readonly clientWantsUsage: boolean;
}

/** Re-encodes one stream: OpenAI chat.completion.chunk frames in, the client's events out. */
export interface StreamEncoder {
  /** The client's frames for these OpenAI frames (each one complete `data: ...\n\n` event), appended to `out`; [DONE] yields nothing. */
  frames(frames: readonly Frame[], out: Frame[]): void;
  /** The frames that close the stream, once it completed (after the session's seal). */
  end(out: Frame[]): void;
}

export interface ClientDialect {
  readonly route: DialectRoute;
  /** True for OpenAI chat completions: nothing is re-encoded. */
  readonly identity: boolean;
  /**
   * The client's body (its bytes, valid only during the call, or its text) as a validated OpenAI
   * chat request; throws a GatewayError naming the offending field. A translated request must be
   * read upstream with usage reported (stream_options.include_usage) when the dialect needs it at
   * the end of a stream.
   */
  /** `orgId`: the sender's org, for a parse that reuses its earlier bodies' elements (openai-chat.ts). */
  parseRequest(body: string | Uint8Array, orgId?: string): ChatRequest;
  /** An error as the client's format words it, before the first byte. */
  errorBody(err: GatewayError): string;
  /** An error after a stream started: a final event. */
  streamErrorFrame(err: GatewayError): string;
  /**
   * What parseRequest could not do alone: e.g. a stored conversation the request continues, read
   * from Postgres (throws a GatewayError to refuse). Runs before admission.
   */
  prepare?(request: ChatRequest, principal: KeyPrincipal): Promise<ChatRequest>;
  /** The per-request side, once admitted. */
  open(ctx: DialectContext): DialectSession;
}

/** One admitted request's encoders. */
export interface DialectSession {
  /** A non-stream answer: an OpenAI chat.completion body in, the client's body out (throws NR_UPSTREAM_BAD_RESPONSE on garbage). */
  completion(body: string | Uint8Array): string | Uint8Array;
  /** The stream's encoder (one per request). */
  streamEncoder(): StreamEncoder;
  /**
   * Runs after the answer is complete and before its last bytes go out (the complete body, or the
   * stream's closing frames): e.g. the answer is stored, so a client that follows up at once finds
   * it. A rejection answers with its error instead.
   */
  seal?(): Promise<void>;
}

/** The text of a frame, for dialects that parse OpenAI's chunks. */
export function frameText(frame: Frame): string {
  return typeof frame === 'string' ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString('utf8');
}

/** The JSON payloads of an OpenAI SSE frame's data lines ('[DONE]' as is). */
export function frameData(frame: Frame): string[] {
  const text = frameText(frame);
  const out: string[] = [];
  for (const line of text.split('\n')) if (line.startsWith('data:')) out.push(line.slice(line.charCodeAt(5) === 0x20 ? 6 : 5));
  return out;
}
