// The targets a scenario loads, and how each one is reached: which origin, which process serves it
// (its CPU, memory and event-loop lag are the target's), which keys and models its requests carry,
// and what that process runs (its Node version and HTTP server, as it reports them).
import type { Child } from './child.js';
import type { Environment } from './environment.js';
import type { ServerRuntime } from './server-runtime.js';

/** Default run: the ceiling, the featureless baseline, the gateway with everything on. */
export const DEFAULT_TARGETS = ['direct', 'bare', 'nemo'] as const;
/** `--ablation` adds the gateway with features taken away, between bare and nemo in the table. */
export const ABLATION_TARGETS = ['direct', 'bare', 'nemo-free', 'nemo-plain', 'nemo'] as const;
/** `--fallback` adds the gateway on Node's http module, after nemo. */
export const FALLBACK_TARGET = 'nemo-node';
/** `--baseline` adds another checkout's build of the gateway, right after nemo: an A/B in one run. */
export const BASELINE_TARGET = 'nemo-base';
export type TargetName = (typeof ABLATION_TARGETS)[number] | typeof FALLBACK_TARGET | typeof BASELINE_TARGET;

export type ServerKind = 'mock' | 'bare' | 'nemo';

export interface Target {
  name: TargetName;
  description: string;
  kind: ServerKind;
  origin: string;
  server: Child;
  /** What the serving process runs; undefined for the mock, which does not say. */
  runtime: ServerRuntime | undefined;
  /** Requests ask for the model's free twin (nothing held, so no ledger work). */
  freeModels: boolean;
  /** Each 2xx holds and settles credits: the ledger is reconciled after its windows. */
  priced: boolean;
  /** On nemo, the keys carry the guardrail policy (direct and bare send the same keys, unread). */
  guarded: boolean;
  /** One per org; a request takes the next. direct and bare send the guarded keys too, so bytes match. */
  keys: string[];
}

export function targetsOf(env: Environment, options: { ablation: boolean; fallback: boolean; baseline: boolean }): Target[] {
  const { tenants, origins, runtimes } = env;
  const all: Record<Exclude<TargetName, 'nemo-node' | 'nemo-base'>, Target> = {
    direct: { name: 'direct', description: 'the mock upstream itself: the ceiling', kind: 'mock', origin: origins.mock, server: env.mock, runtime: undefined, freeModels: false, priced: false, guarded: false, keys: tenants.guardedKeys },
    bare: { name: 'bare', description: 'bench/bare-proxy.ts: uWebSockets.js + undici, no features', kind: 'bare', origin: origins.bare, server: env.bare, runtime: runtimes.bare, freeModels: false, priced: false, guarded: false, keys: tenants.guardedKeys },
    'nemo-free': { name: 'nemo-free', description: 'nemo, plain keys, free models: no guardrails, no ledger', kind: 'nemo', origin: origins.nemo, server: env.nemo, runtime: runtimes.nemo, freeModels: true, priced: false, guarded: false, keys: tenants.plainKeys },
    'nemo-plain': { name: 'nemo-plain', description: 'nemo, plain keys, priced models: the ledger, no guardrails', kind: 'nemo', origin: origins.nemo, server: env.nemo, runtime: runtimes.nemo, freeModels: false, priced: true, guarded: false, keys: tenants.plainKeys },
    nemo: { name: 'nemo', description: 'nemo, guarded keys, priced models: everything on', kind: 'nemo', origin: origins.nemo, server: env.nemo, runtime: runtimes.nemo, freeModels: false, priced: true, guarded: true, keys: tenants.guardedKeys },
  };
  const targets = (options.ablation ? ABLATION_TARGETS : DEFAULT_TARGETS).map((name) => all[name]);
  if (options.baseline) {
    if (env.nemoBase === undefined || origins.nemoBase === undefined) throw new Error('--baseline: the nemo-base gateway was not started');
    targets.push({ ...all.nemo, name: BASELINE_TARGET, description: 'as nemo, built from the --baseline checkout', origin: origins.nemoBase, server: env.nemoBase, runtime: runtimes.nemoBase });
  }
  if (options.fallback) {
    if (env.nemoNode === undefined || origins.nemoNode === undefined) throw new Error('--fallback: the nemo-node gateway was not started');
    targets.push({ ...all.nemo, name: FALLBACK_TARGET, description: 'as nemo, on a second gateway process with NEMO_HTTP_SERVER=node', origin: origins.nemoNode, server: env.nemoNode, runtime: runtimes.nemoNode });
  }
  return targets;
}
