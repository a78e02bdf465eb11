// A key's guardrails on an embeddings input, before anything is held or sent upstream. The texts
// are scanned (and redacted in place) by chat's checkPrompt, each text as one user message; the
// max_input_tokens limit is checked here instead, on the texts alone: chat's count adds the chat
// format's per-message tokens, which an embeddings input does not have. Token-id inputs cannot be
// scanned (the gateway does not decode them), so a key whose guardrails scan the input must send text.
import { invalidRequest } from '../../errors/gateway-error.js';
import type { Encoding } from '../../config/model-encodings.js';
import type { Finding } from '../../guardrails/types.js';
import type { ChatMessage, EmbeddingsRequest } from '../../providers/types.js';
import type { KeyGuardrails } from '../../tenancy/principal.js';
import type { WorkerPool } from '../../workers/pool.js';
import { MAX_INPUT_TOKENS_RULE, checkPrompt, type PromptVerdict } from '../chat/guardrail-checks.js';
import { inputsOf } from './validate.js';

const NOT_REDACTED: PromptVerdict = Object.freeze({ blocked: undefined, findings: [], redacted: false, bodyBytesDelta: 0 });

export async function checkInput(pool: WorkerPool, guard: KeyGuardrails, request: EmbeddingsRequest, encoding: Encoding | undefined): Promise<PromptVerdict> {
  const inputs = inputsOf(request);
  let verdict = NOT_REDACTED;
  if (guard.scansInput) {
    if (inputs.some((input) => typeof input !== 'string')) {
      throw invalidRequest("This API key's guardrails check the input: send it as text, not as token ids.", 'input');
    }
    const texts = inputs as string[];
    const messages: ChatMessage[] = texts.map((text) => ({ role: 'user', content: text }));
    verdict = await checkPrompt(pool, { ...guard, maxInputTokens: null }, { model: request.model, messages }, 0, undefined);
    if (verdict.redacted) {
      const redacted = messages.map((m) => m.content as string);
      request.input = typeof request.input === 'string' ? redacted[0]! : redacted;
    }
    if (verdict.blocked !== undefined) return verdict;
  }
  const limit = guard.maxInputTokens;
  if (limit === null) return verdict;
  // UTF-8 bytes bound a text's tokens (no BPE token is shorter than a byte); token ids count as they are.
  let bound = 0;
  for (const input of inputsOf(request)) bound += typeof input === 'string' ? Buffer.byteLength(input) : input.length;
  if (bound <= limit || (await countInputTokens(pool, inputsOf(request), encoding)) <= limit) return verdict;
  const finding: Finding = { rule: MAX_INPUT_TOKENS_RULE, action: 'block', start: 0, end: 0 };
  return { blocked: finding, findings: [...verdict.findings, finding], redacted: verdict.redacted, bodyBytesDelta: verdict.bodyBytesDelta };
}

/** Exact with the deployments' tokenizer, else the UTF-8 byte bound. */
async function countInputTokens(pool: WorkerPool, inputs: ReturnType<typeof inputsOf>, encoding: Encoding | undefined): Promise<number> {
  const counts = await Promise.all(inputs.map((input) => (typeof input === 'string' ? pool.countTokens({ kind: 'text', text: input, encoding }) : input.length)));
  return counts.reduce((sum, n) => sum + n, 0);
}
