// Guardrail findings by rule, action and stage, and the hits the event log could not keep.
import { Counter } from 'prom-client';
import { registry, HotCounter } from './core.js';

export const guardrailHitsTotal = new Counter({
  name: 'nemo_guardrail_hits_total',
  help: 'Guardrail findings, by rule kind (pii:email, deny_word, deny_pattern, injection, max_input_tokens, ...), action and stage.',
  labelNames: ['rule', 'action', 'stage'] as const,
  registers: [registry],
});

export const guardrailEventsDroppedTotal = new Counter({
  name: 'nemo_guardrail_events_dropped_total',
  help: 'Guardrail event rows (a request\'s hits of one rule) not recorded in nemo.guardrail_events because the queue was full (the database was away).',
  registers: [registry],
});

export const inputTokenLimitChecksTotal = new HotCounter(
  'nemo_input_token_limit_checks_total',
  'Prompts checked against a max_input_tokens guardrail, by what decided: byte_bound (the UTF-8 bytes already fit, nothing counted) or exact_count.',
  ['decided_by'],
);
