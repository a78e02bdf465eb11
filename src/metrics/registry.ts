// Every metric the gateway exports, imported from here; importing this module registers them all.
// Each area's metrics live beside it: http.ts (requests, streams, upstream attempts), ledger.ts,
// workers.ts, guardrails.ts, database.ts (pools, key cache, request log, exports), org-top-n.ts,
// litellm.ts (LiteLLM interop),
// and core.ts (the registry and its label-child cache). Labels come from bounded sets only:
// configured model names, provider kinds, route names, status classes; never key or org ids.
export { registry } from './core.js';
export * from './http.js';
export * from './ledger.js';
export * from './workers.js';
export * from './guardrails.js';
export * from './database.js';
export * from './org-top-n.js';
export * from './litellm.js';
