// Token counting in a worker: exact where the encoding is known (its vocabulary loads in this
// thread on first use), the UTF-8 byte bound (never an undercount) where not.
import { countChatPromptTokens, countCompletionTokens } from '../../tokens/count.js';
import { upperBoundChatTokens } from '../../tokens/upper-bound.js';
import type { TokenJob } from '../messages.js';

export function countTokenJob(job: TokenJob): number {
  if (job.kind === 'text') return countCompletionTokens(job.text, job.encoding);
  if (job.encoding !== undefined) return countChatPromptTokens(job.messages, job.encoding, { tools: job.tools, toolChoice: job.toolChoice });
  return upperBoundChatTokens(job.messages, job.tools);
}
