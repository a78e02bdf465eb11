-- Guardrails: the org's policy (org_config.default_guardrail_policy, since 0001) with overrides per
-- team and per key, read with the key on the hot path and cached with it (the tables' change
-- triggers already notify the caches); and the record of every guardrail hit, never the matched text.

ALTER TABLE nemo.teams ADD COLUMN IF NOT EXISTS guardrail_policy jsonb CHECK (jsonb_typeof(guardrail_policy) = 'object');
ALTER TABLE nemo.api_keys ADD COLUMN IF NOT EXISTS guardrail_policy jsonb CHECK (jsonb_typeof(guardrail_policy) = 'object');

-- find_api_key_v2 with the three guardrail policy levels.
CREATE OR REPLACE FUNCTION nemo.find_api_key_v3(p_key_hash bytea)
  RETURNS TABLE (org_id uuid, key_id uuid, team_id uuid, role text, allowed_models text[],
                 org_allowed_models text[], expires_at timestamptz, revoked_at timestamptz, key_hash bytea,
                 key_rpm_limit integer, key_tpm_limit integer, team_rpm_limit integer, team_tpm_limit integer,
                 org_guardrail_policy jsonb, team_guardrail_policy jsonb, key_guardrail_policy jsonb)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
    SELECT k.org_id, k.key_id, k.team_id, k.role, k.allowed_models, c.allowed_models,
           k.expires_at, k.revoked_at, k.key_hash, k.rpm_limit, k.tpm_limit, t.rpm_limit, t.tpm_limit,
           c.default_guardrail_policy, t.guardrail_policy, k.guardrail_policy
    FROM nemo.api_keys k
    LEFT JOIN nemo.org_config c ON c.org_id = k.org_id
    LEFT JOIN nemo.teams t ON t.org_id = k.org_id AND t.team_id = k.team_id
    WHERE k.key_hash = p_key_hash
  $$;

CREATE TABLE IF NOT EXISTS nemo.guardrail_events (
  org_id uuid NOT NULL REFERENCES nemo.orgs (org_id),
  event_id bigint GENERATED ALWAYS AS IDENTITY,
  request_id text NOT NULL CHECK (length(request_id) <= 200),
  key_id uuid,
  -- e.g. pii:email, deny_word:3, injection:ignore_previous, max_input_tokens.
  rule text NOT NULL CHECK (length(rule) <= 100),
  action text NOT NULL CHECK (action IN ('block', 'redact', 'flag')),
  stage text NOT NULL CHECK (stage IN ('input', 'output')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, event_id)
);
SELECT nemo.enable_tenant_rls('guardrail_events');
GRANT SELECT ON nemo.guardrail_events TO nemo_app;

-- The gateway records hits of many orgs in one statement, off the request path.
CREATE OR REPLACE FUNCTION nemo.record_guardrail_events(
  p_org uuid[], p_request text[], p_key uuid[], p_rule text[], p_action text[], p_stage text[], p_at timestamptz[])
  RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
    WITH inserted AS (
      INSERT INTO nemo.guardrail_events (org_id, request_id, key_id, rule, action, stage, created_at)
      SELECT * FROM unnest(p_org, p_request, p_key, p_rule, p_action, p_stage, p_at)
      RETURNING 1
    )
    SELECT count(*)::integer FROM inserted
  $$;

REVOKE ALL ON FUNCTION nemo.find_api_key_v3(bytea), nemo.record_guardrail_events(uuid[], text[], uuid[], text[], text[], text[], timestamptz[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nemo.find_api_key_v3(bytea), nemo.record_guardrail_events(uuid[], text[], uuid[], text[], text[], text[], timestamptz[]) TO nemo_app;
