// The targets a scenario loads, and how each one is reached: which origin, which process serves it
// (its CPU, memory and event-loop lag are the target's), which keys and models its requests carry.
import type { Child } from './child.js';
import type { Environment } from './environment.js';

/** Default run: the ceiling, the featureless baseline, the gateway with everything on. */
export const DEFAULT_TARGETS = ['direct', 'bare', 'nemo'] as const;
/** `--ablation` adds the gateway with features taken away, between bare and nemo in the table. */
export const ABLATION_TARGETS = ['direct', 'bare', 'nemo-free', 'nemo-plain', 'nemo'] as const;
export type TargetName = (typeof ABLATION_TARGETS)[number];

export type ServerKind = 'mock' | 'bare' | 'nemo';

export interface Target {
  name: TargetName;
  description: string;
  kind: ServerKind;
  origin: string;
  server: Child;
  /** Requests ask for the model's free twin (nothing held, so no ledger work). */
  freeModels: boolean;
  /** Each 2xx holds and settles credits: the ledger is reconciled after its windows. */
  priced: boolean;
  /** One per org; a request takes the next. direct and bare send the guarded keys too, so bytes match. */
  keys: string[];
}

export function targetsOf(env: Environment, ablation: boolean): Target[] {
  const { tenants, origins } = env;
  const all: Record<TargetName, Target> = {
    direct: { name: 'direct', description: 'the mock upstream itself: the ceiling', kind: 'mock', origin: origins.mock, server: env.mock, freeModels: false, priced: false, keys: tenants.guardedKeys },
    bare: { name: 'bare', description: 'bench/bare-proxy.ts: uWebSockets.js + undici, no features', kind: 'bare', origin: origins.bare, server: env.bare, freeModels: false, priced: false, keys: tenants.guardedKeys },
    'nemo-free': { name: 'nemo-free', description: 'nemo, plain keys, free models: no guardrails, no ledger', kind: 'nemo', origin: origins.nemo, server: env.nemo, freeModels: true, priced: false, keys: tenants.plainKeys },
    'nemo-plain': { name: 'nemo-plain', description: 'nemo, plain keys, priced models: the ledger, no guardrails', kind: 'nemo', origin: origins.nemo, server: env.nemo, freeModels: false, priced: true, keys: tenants.plainKeys },
    nemo: { name: 'nemo', description: 'nemo, guarded keys, priced models: everything on', kind: 'nemo', origin: origins.nemo, server: env.nemo, freeModels: false, priced: true, keys: tenants.guardedKeys },
  };
  return (ablation ? ABLATION_TARGETS : DEFAULT_TARGETS).map((name) => all[name]);
}
