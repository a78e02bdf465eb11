// A key's guardrails on a chat request, through the worker pool (large texts go to a worker):
// the prompt before anything is held or sent upstream (scanned, redacted in place, max_input_tokens
// checked: blocking costs the caller nothing, no hold exists yet), and a complete answer before the
// client sees it. A stream's output is guarded as it flows (guardrails/stream-output.ts).
import { GatewayError } from '../../errors/gateway-error.js';
import { deepFreeze, thawedCopy } from '../../json/parsed-elements.js';
import { forgetVerbatim, keepSerialized } from '../../json/verbatim.js';
import { generatedTexts } from '../../guardrails/completion-texts.js';
import { redactionGrowthBytes } from '../../guardrails/redact-findings.js';
import type { Finding, ScanResult } from '../../guardrails/types.js';
import type { ChatMessage, ChatRequest, ChatTool } from '../../providers/types.js';
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

/**
 * A message or tool of the request: the unit whose verdict is remembered. `at` says where it sits,
 * so a shared (frozen) one that a redaction changes can be replaced there by its redacted copy.
 */
interface Owner {
  readonly value: object;
  readonly list: 'messages' | 'tools';
  readonly at: number;
}

/** A piece of prompt text: which owner holds it, and where in it (the path a redaction writes to). */
interface Piece {
  readonly text: string;
  readonly owner: number;
  readonly path: PiecePath;
}

type PiecePath = { readonly kind: 'content' } | { readonly kind: 'part' | 'call'; readonly index: number } | { readonly kind: 'description' };

const CONTENT: PiecePath = { kind: 'content' };
const DESCRIPTION: PiecePath = { kind: 'description' };

/**
 * What a shared (frozen) message or tool came to under a policy: its findings and, when they
 * redact, its redacted copy (frozen too, its JSON kept for upstream). A conversation resent with one
 * more turn is then neither scanned, nor redacted, nor serialized again for its earlier turns.
 * Keyed by the object: a cached parse (json/parsed-elements.ts) is the same object each time.
 */
interface OwnerVerdict {
  readonly policyKey: string;
  /** What the object was checked as: a message's content and a tool's description are different texts. */
  readonly list: Owner['list'];
  readonly findings: readonly Finding[];
  /** Some text of it was replaced (the request's own object in place, or a shared one by `replacement`). */
  readonly redacted: boolean;
  readonly replacement: object | undefined;
  readonly bodyBytesDelta: number;
}

const ownerVerdicts = new WeakMap<object, OwnerVerdict>();

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
    const owners = ownersOf(request);
    const known: Array<OwnerVerdict | undefined> = owners.map((owner) => knownVerdict(owner, guard.policyKey));
    const pieces = piecesOf(owners, known);
    const scans = pieces.map((piece) => pool.scan({ policyKey: guard.policyKey, policy: guard.policy, text: piece.text, stage: 'input' }, keys));
    const results = await allOf(scans);
    let p = 0;
    for (let o = 0; o < owners.length; o++) {
      const owner = owners[o]!;
      let verdict = known[o];
      if (verdict === undefined) {
        const first = p;
        while (p < pieces.length && pieces[p]!.owner === o) p++;
        const outcome = ownerOutcome(owner, pieces, results, first, p, guard.policyKey, keys);
        if ('blocked' in outcome) {
          findings.push(...outcome.findings);
          return { blocked: outcome.blocked, findings, redacted, bodyBytesDelta };
        }
        verdict = outcome;
      }
      findings.push(...verdict.findings);
      bodyBytesDelta += verdict.bodyBytesDelta;
      if (verdict.replacement !== undefined) (request[owner.list] as object[])[owner.at] = verdict.replacement;
      if (verdict.redacted) redacted = true;
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

/** A shared owner's verdict under this policy, as the same kind of owner, when one was reached before. */
function knownVerdict(owner: Owner, policyKey: string): OwnerVerdict | undefined {
  if (!Object.isFrozen(owner.value)) return undefined;
  const verdict = ownerVerdicts.get(owner.value);
  return verdict?.policyKey === policyKey && verdict.list === owner.list ? verdict : undefined;
}

/**
 * One owner's scan results (pieces[first, end)): blocked, or its verdict with its redactions
 * written. An owner of this request alone is redacted in place; a shared (frozen) one is copied,
 * redacted, frozen, and remembered with its verdict for the next request that carries it.
 */
function ownerOutcome(owner: Owner, pieces: readonly Piece[], results: readonly ScanResult[], first: number, end: number, policyKey: string, keys: ContentKeys): OwnerVerdict | { blocked: Finding; findings: Finding[] } {
  const shared = Object.isFrozen(owner.value);
  const findings: Finding[] = [];
  let bodyBytesDelta = 0;
  let target: object | undefined;
  for (let i = first; i < end; i++) {
    const result = results[i]!;
    findings.push(...result.findings);
    if (result.blocked !== undefined) return { blocked: result.blocked, findings };
    if (result.redacted === undefined) continue;
    bodyBytesDelta += redactionGrowthBytes(result.findings);
    keys.redacted(pieces[i]!.text, result.redacted, policyKey);
    if (target === undefined) {
      target = shared ? thawedCopy(owner.value) : owner.value;
      // Its received bytes no longer describe it: serialized again (or, shared, kept as serialized below).
      forgetVerbatim(target);
    }
    writePiece(target, pieces[i]!.path, result.redacted);
  }
  const replacement = shared && target !== undefined ? target : undefined;
  const verdict: OwnerVerdict = { policyKey, list: owner.list, findings, redacted: target !== undefined, replacement, bodyBytesDelta };
  if (shared) {
    if (replacement !== undefined) {
      deepFreeze(replacement);
      keepSerialized(replacement);
    }
    ownerVerdicts.set(owner.value, verdict);
  }
  return verdict;
}

/** The request's messages and tools, in the order their texts are scanned. */
function ownersOf(request: ChatRequest): Owner[] {
  const owners: Owner[] = [];
  const messages = request.messages;
  for (let i = 0; i < messages.length; i++) owners.push({ value: messages[i]!, list: 'messages', at: i });
  const tools = request.tools ?? [];
  for (let i = 0; i < tools.length; i++) owners.push({ value: tools[i]!, list: 'tools', at: i });
  return owners;
}

/**
 * The scanned text of the owners with no known verdict: message contents (strings and text parts),
 * the arguments of tool calls in the conversation, and tool descriptions: everything free-form
 * that reaches the model. In owner order.
 */
function piecesOf(owners: readonly Owner[], known: ReadonlyArray<OwnerVerdict | undefined>): Piece[] {
  const pieces: Piece[] = [];
  const add = (owner: number, text: unknown, path: PiecePath) => {
    if (typeof text === 'string' && text.length > 0) pieces.push({ text, owner, path });
  };
  for (let o = 0; o < owners.length; o++) {
    if (known[o] !== undefined) continue;
    const owner = owners[o]!;
    if (owner.list === 'tools') {
      add(o, (owner.value as ChatTool).function.description, DESCRIPTION);
      continue;
    }
    const message = owner.value as ChatMessage;
    const content = message.content;
    if (typeof content === 'string') add(o, content, CONTENT);
    else if (Array.isArray(content)) {
      for (let j = 0; j < content.length; j++) {
        const part = content[j]!;
        if (part.type === 'text') add(o, part.text, { kind: 'part', index: j });
      }
    }
    const calls = message.tool_calls ?? [];
    for (let k = 0; k < calls.length; k++) add(o, calls[k]!.function.arguments, { kind: 'call', index: k });
  }
  return pieces;
}

/** Writes a piece's redacted text into `owner` (the request's own object, or a thawed copy of a shared one). */
function writePiece(owner: object, path: PiecePath, text: string): void {
  switch (path.kind) {
    case 'content':
      (owner as ChatMessage).content = text;
      return;
    case 'part':
      ((owner as ChatMessage).content as Array<{ text: string }>)[path.index]!.text = text;
      return;
    case 'call':
      (owner as ChatMessage).tool_calls![path.index]!.function.arguments = text;
      return;
    case 'description':
      (owner as ChatTool).function.description = text;
  }
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
