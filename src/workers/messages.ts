// The typed messages between the gateway and its worker threads: one task name per exported
// function of worker.ts, each taking a batch of items so one round trip carries many.
import type { GuardrailPolicy, ScanResult } from '../guardrails/types.js';
import type { ChatMessage, ChatTool } from '../providers/types.js';
import type { Encoding } from '../config/model-encodings.js';

export type TokenJob =
  | { readonly kind: 'text'; readonly text: string; readonly encoding: Encoding | undefined }
  | {
      readonly kind: 'chat';
      readonly messages: readonly ChatMessage[];
      /** Tool definitions count as prompt tokens too. */
      readonly tools?: readonly ChatTool[] | undefined;
      readonly toolChoice?: unknown;
      readonly encoding: Encoding | undefined;
    };

export interface CountTokensTask {
  readonly jobs: readonly TokenJob[];
}

export interface ScanJob {
  /** Identifies the policy (merged for one key, at one version): workers compile each once. */
  readonly policyKey: string;
  readonly policy: GuardrailPolicy;
  readonly text: string;
  readonly stage: 'input' | 'output';
}

export interface ScanTask {
  readonly jobs: readonly ScanJob[];
}

export type { ScanResult };

/** One job's answer from a worker. */
export type JobOutcome<R> = { readonly ok: true; readonly value: R } | { readonly ok: false; readonly error: string };
