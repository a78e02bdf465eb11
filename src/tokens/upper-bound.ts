// The token bound for providers without a public tokenizer. Kept apart from count.ts so that code
// needing only the bound does not load the BPE vocabularies (tens of MB, ~200 ms).

/**
 * The UTF-8 byte length of `text`: no tokenizer whose every token covers at least one input byte
 * (byte-level BPE, and SentencePiece with byte fallback) can produce more tokens for it. It bounds
 * the text only: what a provider puts around it (BOS, role markers, SentencePiece's dummy-prefix
 * `▁`, typically one token per segment) is the caller's to add, as a per-message allowance.
 */
export function upperBoundTokens(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}
