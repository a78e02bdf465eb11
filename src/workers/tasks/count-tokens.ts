// Token counting, the same code inline on the main thread (small inputs) and in a worker (large).
import { countChatPromptTokens, countCompletionTokens, upperBoundTokens } from '../../tokens/count.js';
import type { TokenJob } from '../messages.js';

/** Exact counts where the encoding is known; the UTF-8 byte bound (never an undercount) where not. */
export function countTokenJob(job: TokenJob): number {
  if (job.kind === 'text') return countCompletionTokens(job.text, job.encoding);
  if (job.encoding !== undefined) return countChatPromptTokens(job.messages, job.encoding, { tools: job.tools, toolChoice: job.toolChoice });
  let bound = 0;
  for (const message of job.messages) bound += upperBoundTokens(JSON.stringify(message));
  if (job.tools !== undefined) bound += upperBoundTokens(JSON.stringify(job.tools));
  return bound;
}
