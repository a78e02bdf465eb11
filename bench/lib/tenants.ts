// The bench's tenants, created through the gateway's admin API with the run's master key: N orgs
// with ample credits, each with a guarded key (the nemo target), a guarded key for the agent
// scenario's long conversations and a plain key (the ablation targets), and one org without
// credits whose requests must answer 402.
import { BENCH_AGENT_GUARDRAILS, BENCH_GUARDRAILS } from './nemo-config.js';

export interface Tenants {
  orgIds: string[];
  /** One per org, with BENCH_GUARDRAILS. */
  guardedKeys: string[];
  /** One per org, with BENCH_AGENT_GUARDRAILS (a token limit above the agent's histories). */
  agentKeys: string[];
  /** One per org, no guardrails. */
  plainKeys: string[];
  /** A guarded key of an org that holds no credits. */
  brokeKey: string;
}

/** Far more than any run spends (a 20k-token prompt holds ~0.1M micros, a 100k-token agent turn ~0.4M). */
const CREDITS_MICROS = 1_000_000_000_000;
const PARALLEL = 4;

type Call = (method: string, path: string, body?: unknown) => Promise<Record<string, unknown>>;

function adminClient(origin: string, masterKey: string): Call {
  return async (method, path, body) => {
    const response = await fetch(`${origin}${path}`, {
      method,
      headers: { authorization: `Bearer ${masterKey}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`admin API ${method} ${path}: ${response.status} ${text}`);
    return JSON.parse(text) as Record<string, unknown>;
  };
}

interface Org {
  id: string;
  guarded: string;
  agent: string;
  plain: string;
}

async function createOrg(call: Call, index: number, credits: boolean): Promise<Org> {
  const name = credits ? `bench org ${index}` : 'bench org without credits';
  const id = (await call('POST', '/admin/v1/orgs', { name })).id as string;
  if (credits) await call('POST', `/admin/v1/orgs/${id}/credits`, { amount_micros: CREDITS_MICROS, idempotency_key: `bench-topup-${index}`, kind: 'topup' });
  const key = async (body: Record<string, unknown>) => (await call('POST', `/admin/v1/orgs/${id}/keys`, { role: 'member', ...body })).key as string;
  const guarded = await key({ name: 'bench guarded', guardrail_policy: BENCH_GUARDRAILS });
  const agent = credits ? await key({ name: 'bench agent', guardrail_policy: BENCH_AGENT_GUARDRAILS }) : '';
  const plain = credits ? await key({ name: 'bench plain' }) : '';
  return { id, guarded, agent, plain };
}

export async function createTenants(origin: string, masterKey: string, orgs: number): Promise<Tenants> {
  const call = adminClient(origin, masterKey);
  const created: Org[] = [];
  // A few at a time: quick, without a burst of admin transactions on a cold gateway.
  for (let start = 0; start < orgs; start += PARALLEL) {
    const batch = Array.from({ length: Math.min(PARALLEL, orgs - start) }, (_, i) => createOrg(call, start + i, true));
    created.push(...(await Promise.all(batch)));
  }
  const broke = await createOrg(call, orgs, false);
  return {
    orgIds: created.map((org) => org.id),
    guardedKeys: created.map((org) => org.guarded),
    agentKeys: created.map((org) => org.agent),
    plainKeys: created.map((org) => org.plain),
    brokeKey: broke.guarded,
  };
}
