// LiteLLM interop (litellm.enabled): drift between the columns NemoRouter reads in LiteLLM's
// schema and the catalog, as last checked (docs/litellm.md).
import { Gauge } from 'prom-client';
import { registry } from './core.js';

const NAME = 'nemo_litellm_schema_problems';

export const litellmSchemaProblems = new Gauge({
  name: NAME,
  help: 'Problems found in LiteLLM\'s schema at the last check (missing or retyped columns NemoRouter reads, privileges); 0 is healthy. Exported with litellm.enabled only.',
  registers: [],
});

/** Registered only when LiteLLM interop is on, so a gateway without it exports no LiteLLM series. */
export function enableLiteLLMMetrics(): void {
  if (registry.getSingleMetric(NAME) === undefined) registry.registerMetric(litellmSchemaProblems);
}
