// Settlement of a chat request's hold, exactly once, when the request ends: charge what was
// produced, or release everything when nothing reached the client. Usage reported by upstream
// counts (the database caps the charge at the hold); without it (a disconnect, a cut stream, a
// provider without usage) the charge is an exact count of what a stream generated, else an estimate.
// Every charge is pricedCostMicros of the usage it passes with it, which its ledger row records.
import type { Deployment } from '../../config/load.js';
import type { Hold, Ledger } from '../../ledger/ledger.js';
import { plainUsage, pricedCostMicros, pricedUsage, pricesOf, type PricedUsage } from '../../ledger/pricing.js';
import { log } from '../../log.js';
import { tokensTotal } from '../../metrics/registry.js';
import type { ChatRequest, Usage } from '../../providers/types.js';
import type { Encoding } from '../../config/model-encodings.js';
import type { WorkerPool } from '../../workers/pool.js';

export interface SettlementDeps {
  readonly ledger: Ledger;
  readonly workers: WorkerPool;
}

/** The attempt whose output reached the client (upstream-attempt.ts). */
export interface ServedOutput {
  readonly deployment: Deployment;
  /** Output tokens estimated without usage: content chunks of a stream, bytes of an answer. */
  readonly outputEstimate: number;
  /** A stream's generated text, for an exact count; undefined for an answer or past the size limit. */
  completionText(): string | undefined;
}

export interface Settlement {
  readonly hold: Hold;
  /** undefined: nothing reached the client, the hold is released. */
  readonly served: ServedOutput | undefined;
  readonly usage: Usage | undefined;
  readonly request: ChatRequest;
  readonly maxTokens: number;
  readonly promptBoundTokens: number;
  readonly imageTokens: number;
  /** Image parts: a deployment priced per image charges each on top of the tokens. */
  readonly images: number;
  readonly model: string;
  readonly requestId: string;
}

/** Settles or releases the hold; returns the micro-credits charged, or null while an exact count runs. */
export function settleHold(deps: SettlementDeps, s: Settlement): number | null {
  const { hold, served } = s;
  if (served === undefined) {
    releaseHold(deps.ledger, hold);
    return 0;
  }
  const prices = pricesOf(served.deployment);
  const chargeOf = (usage: PricedUsage) => Math.min(pricedCostMicros(prices, usage), hold.amountMicros);
  if (s.usage !== undefined) {
    countTokens(s.model, s.usage.prompt_tokens, s.usage.completion_tokens);
    const usage = pricedUsage(s.usage, s.images);
    const charged = chargeOf(usage);
    void deps.ledger.settle(hold, charged, usage).catch(logSettlementError);
    return charged;
  }
  const estimated = plainUsage(s.promptBoundTokens, Math.min(s.maxTokens, served.outputEstimate), s.images);
  const text = served.completionText();
  if (text === undefined) {
    const charged = chargeOf(estimated);
    void deps.ledger.settle(hold, charged, estimated).catch(logSettlementError);
    return charged;
  }
  // A stream without usage: count what it generated, exactly with the deployment's tokenizer,
  // else by its UTF-8 bytes (never fewer); with no parts reported, every token at its plain price.
  const usage = countUsage(deps.workers, s, served.deployment.encoding, text).then(
    ([prompt, completion]) => {
      const output = Math.min(s.maxTokens, completion);
      countTokens(s.model, prompt, output);
      return plainUsage(prompt, output, s.images);
    },
    (err: unknown) => {
      log.warn('ledger: exact count failed; charging the estimate', { requestId: s.requestId, error: (err as Error).message });
      return estimated;
    },
  );
  deps.ledger.settleWhenCounted(hold, usage.then(chargeOf), usage);
  return null;
}

/** Returns the whole hold: the request produced nothing. */
export function releaseHold(ledger: Ledger, hold: Hold): void {
  void ledger.release(hold).catch(logSettlementError);
}

/** The settle/release promise only rejects on a programming error: the writer retries database failures. */
function logSettlementError(err: unknown): void {
  log.error('ledger: settlement failed', { error: (err as Error).message });
}

function countTokens(model: string, prompt: number, completion: number): void {
  tokensTotal.labels(model, 'input').inc(prompt);
  tokensTotal.labels(model, 'output').inc(completion);
}

async function countUsage(workers: WorkerPool, s: Settlement, encoding: Encoding | undefined, completionText: string): Promise<[number, number]> {
  const { request } = s;
  // Images count at the allowance the hold used: the tokenizer sees only text.
  const prompt = encoding === undefined
    ? s.promptBoundTokens
    : Promise.resolve(workers.countTokens({ kind: 'chat', messages: request.messages, tools: request.tools, toolChoice: request.tool_choice, encoding })).then((n) => n + s.imageTokens);
  const completion = workers.countTokens({ kind: 'text', text: completionText, encoding });
  return Promise.all([prompt, completion]);
}
