// The admin API's objects as the console reads them (docs/api.md#admin-routes). Amounts are
// micro-credits; times are ISO strings.

export type Policy = Record<string, unknown>;

export interface Limits {
  rpm_limit: number | null;
  tpm_limit: number | null;
  daily_spend_cap_micros: number | null;
  monthly_spend_cap_micros: number | null;
}

export interface Org {
  id: string;
  name: string;
  created_at: string;
}

export interface Team extends Limits {
  id: string;
  org_id: string;
  name: string;
  guardrail_policy: Policy | null;
  created_at: string;
}

export interface Key extends Limits {
  id: string;
  org_id: string;
  team_id: string | null;
  name: string;
  role: 'admin' | 'member';
  prefix: string;
  allowed_models: string[] | null;
  guardrail_policy: Policy | null;
  expires_at: string | null;
  revoked_at: string | null;
  created_at: string;
}

export interface OrgConfig {
  org_id: string;
  allowed_models: string[] | null;
  default_guardrail_policy: Policy | null;
  logging_level: 'none' | 'metadata' | 'full';
  log_retention_days: number | null;
}

export interface Credits {
  available_micros: number;
  held_micros: number;
}

export interface UsageRow {
  day?: string;
  key_id?: string | null;
  team_id?: string | null;
  model?: string | null;
  requests: number;
  charged_micros: number;
  held_micros: number;
}

export interface Usage {
  from: string;
  to: string;
  group_by: string[];
  data: UsageRow[];
}

export interface LedgerEntry {
  id: number;
  kind: string;
  available_delta: number;
  held_delta: number;
  charged: number;
  request_id: string | null;
  key_id: string | null;
  idempotency_key: string | null;
  note: string | null;
  created_at: string;
}

export interface GuardrailEvent {
  id: number;
  request_id: string;
  key_id: string | null;
  rule: string;
  action: string;
  stage: string;
  /** How many times the request hit this rule. */
  hits: number;
  created_at: string;
}

export interface LogRow {
  created_at: string;
  log_id: string;
  request_id: string;
  team_id: string | null;
  key_id: string | null;
  model: string | null;
  deployment: string | null;
  status: number;
  status_class: string;
  error_code: string | null;
  stream: boolean;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  cost_micros: number | null;
  latency_ms: number | null;
  ttft_ms: number | null;
  guardrail_action: string;
  guardrail_rules: string[];
  has_bodies: boolean;
}

export interface Model {
  id: string;
  owned_by: string;
}
