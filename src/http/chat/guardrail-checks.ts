// A key's guardrails on a chat request, through the worker pool (large texts go to a worker):
// the prompt before anything is held or sent upstream (scanned, redacted in place, max_input_tokens
// checked: blocking costs the caller nothing, no hold exists yet), and a complete answer before the
// client sees it. A stream's output is guarded as it flows (guardrails/stream-output.ts).
import { GatewayError } from '../../errors/gateway-error.js';
import { forgetVerbatim } from '../../json/verbatim.js';
import { generatedTexts } from '../../guardrails/completion-texts.js';
import { redactionGrowthBytes } from '../../guardrails/redact-findings.js';
import type { Finding, ScanResult } from '../../guardrails/types.js';
import type { ChatRequest } from '../../providers/types.js';
import type { KeyGuardrails } from '../../tenancy/principal.js';
import type { Encoding } from '../../config/model-encodings.js';
import { inputTokenLimitChecksTotal } from '../../metrics/registry.js';
import type { WorkerPool } from '../../workers/pool.js';
import { ContentKeys } from '../../workers/result-cache.js';

export interface PromptVerdict {
  readonly blocked: Finding | undefined;
  /** Every finding, for guardrail events (offsets are per message piece; events carry none). */
  readonly findings: readonly Finding[];
  /** Some text was replaced: the request's bound changes by bodyBytesDelta. */
  readonly redacted: boolean;
  /**
   * A bound from above of the redactions' change in the body's JSON bytes: kept text is unchanged,
   * a placeholder needs no escaping, and removed text took at least one byte per UTF-16 unit.
   */
  readonly bodyBytesDelta: number;
}

export const MAX_INPUT_TOKENS_RULE = 'max_input_tokens';

const DECIDED_BY_BOUND = inputTokenLimitChecksTotal.labels('byte_bound');
const DECIDED_BY_COUNT = inputTokenLimitChecksTotal.labels('exact_count');

/** Short texts are scanned inline and cached ones answered at once: no Promise.all for a request that needs none. */
function allOf<T>(values: Array<T | Promise<T>>): T[] | Promise<T[]> {
  for (const value of values) if (value instanceof Promise) return Promise.all(values);
  return values as T[];
}

/** A piece of prompt text and how to write its redacted form back. */
interface Piece {
  readonly text: string;
  /** The message or tool holding it: once redacted, no longer what was received (it is serialized again, not sent as its bytes). */
  readonly owner: object;
  readonly write: (text: string) => void;
}

export async function checkPrompt(
  pool: WorkerPool,
  guard: KeyGuardrails,
  request: ChatRequest,
  /** The prompt's cheap bound (UTF-8 bytes): when it fits max_input_tokens, nothing is counted. */
  boundTokens: number,
  /** The serving model's tokenizer; undefined: the bound is the count. */
  encoding: Encoding | undefined,
): Promise<PromptVerdict> {
  const findings: Finding[] = [];
  let redacted = false;
  let bodyBytesDelta = 0;
  // A text the scans hash is not hashed again by the count (a resent conversation is mostly such texts).
  const keys = new ContentKeys();
  if (guard.scansInput) {
    const pieces = piecesOf(request);
    const scans = pieces.map((piece) => pool.scan({ policyKey: guard.policyKey, policy: guard.policy, text: piece.text, stage: 'input' }, keys));
    const results = await allOf(scans);
    for (let i = 0; i < pieces.length; i++) {
      const result: ScanResult = results[i]!;
      findings.push(...result.findings);
      if (result.blocked !== undefined) return { blocked: result.blocked, findings, redacted, bodyBytesDelta };
      if (result.redacted !== undefined) {
        bodyBytesDelta += redactionGrowthBytes(result.findings);
        keys.redacted(pieces[i]!.text, result.redacted, guard.policyKey);
        forgetVerbatim(pieces[i]!.owner);
        pieces[i]!.write(result.redacted);
        redacted = true;
      }
    }
  }
  const limit = guard.maxInputTokens;
  if (limit !== null && boundTokens <= limit) DECIDED_BY_BOUND.inc();
  if (limit !== null && boundTokens > limit) {
    DECIDED_BY_COUNT.inc();
    const tokens = encoding === undefined ? boundTokens : await pool.countTokens({ kind: 'chat', messages: request.messages, tools: request.tools, toolChoice: request.tool_choice, encoding }, keys);
    if (tokens > limit) {
      const finding: Finding = { rule: MAX_INPUT_TOKENS_RULE, action: 'block', start: 0, end: 0 };
      findings.push(finding);
      return { blocked: finding, findings, redacted, bodyBytesDelta };
    }
  }
  return { blocked: undefined, findings, redacted, bodyBytesDelta };
}

/**
 * The scanned text of a request: message contents (strings and text parts), the arguments of tool
 * calls in the conversation, and tool descriptions: everything free-form that reaches the model.
 */
function piecesOf(request: ChatRequest): Piece[] {
  const pieces: Piece[] = [];
  const add = (owner: object, text: unknown, write: (text: string) => void) => {
    if (typeof text === 'string' && text.length > 0) pieces.push({ text, owner, write });
  };
  for (const message of request.messages) {
    const content = message.content;
    if (typeof content === 'string') add(message, content, (text) => (message.content = text));
    else if (Array.isArray(content)) {
      for (const part of content) if (part.type === 'text') add(message, part.text, (text) => (part.text = text));
    }
    for (const call of message.tool_calls ?? []) add(message, call.function.arguments, (text) => (call.function.arguments = text));
  }
  for (const tool of request.tools ?? []) add(tool, tool.function.description, (text) => (tool.function.description = text));
  return pieces;
}

export interface AnswerVerdict {
  readonly blocked: Finding | undefined;
  readonly findings: readonly Finding[];
  /** The answer to send: the body as received, or re-serialized with redactions. */
  readonly body: string | Uint8Array;
}

/** A complete answer as JSON, for its guardrails; NR_UPSTREAM_BAD_RESPONSE when it is not JSON. */
export function parseAnswer(body: string | Uint8Array): unknown {
  try {
    return JSON.parse(typeof body === 'string' ? body : Buffer.from(body).toString('utf8'));
  } catch {
    throw new GatewayError('NR_UPSTREAM_BAD_RESPONSE');
  }
}

/** Every choice's generated text of a complete answer (`completion`, parsed from `body`), scanned. */
export async function checkAnswer(pool: WorkerPool, guard: KeyGuardrails, completion: unknown, body: string | Uint8Array): Promise<AnswerVerdict> {
  const texts = generatedTexts(completion);
  const results = await allOf(texts.map((t) => pool.scan({ policyKey: guard.policyKey, policy: guard.policy, text: t.text, stage: 'output' })));
  const findings = results.flatMap((r) => r.findings);
  const blocked = results.find((r) => r.blocked !== undefined)?.blocked;
  if (blocked !== undefined) return { blocked, findings, body };
  let redacted = false;
  results.forEach((r, i) => {
    if (r.redacted !== undefined) {
      texts[i]!.write(r.redacted);
      redacted = true;
    }
  });
  return { blocked: undefined, findings, body: redacted ? JSON.stringify(completion) : body };
}
