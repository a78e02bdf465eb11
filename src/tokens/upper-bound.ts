// The token bound for providers without a public tokenizer. Kept apart from count.ts so that code
// needing only the bound never loads a BPE vocabulary (tens of MB, ~200 ms).
import type { ChatMessage, ChatTool } from '../providers/types.js';

/**
 * The UTF-8 byte length of `text`: no tokenizer whose every token covers at least one input byte
 * (byte-level BPE, and SentencePiece with byte fallback) can produce more tokens for it. It bounds
 * the text only: what a provider puts around it (BOS, role markers, SentencePiece's dummy-prefix
 * `▁`, typically one token per segment) is the caller's to add, as a per-message allowance.
 */
export function upperBoundTokens(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** A chat prompt's bound without a tokenizer: each message's JSON (its framing is the allowance) and the tools'. */
export function upperBoundChatTokens(messages: readonly ChatMessage[], tools: readonly ChatTool[] | undefined): number {
  let bound = 0;
  for (const message of messages) bound += upperBoundTokens(JSON.stringify(message));
  if (tools !== undefined) bound += upperBoundTokens(JSON.stringify(tools));
  return bound;
}
