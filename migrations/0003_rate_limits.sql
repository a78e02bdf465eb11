-- Rate limits: requests and tokens per minute, per API key and per team (NULL: unlimited).

ALTER TABLE nemo.api_keys ADD COLUMN IF NOT EXISTS rpm_limit integer CHECK (rpm_limit > 0);
ALTER TABLE nemo.api_keys ADD COLUMN IF NOT EXISTS tpm_limit integer CHECK (tpm_limit > 0);
ALTER TABLE nemo.teams ADD COLUMN IF NOT EXISTS rpm_limit integer CHECK (rpm_limit > 0);
ALTER TABLE nemo.teams ADD COLUMN IF NOT EXISTS tpm_limit integer CHECK (tpm_limit > 0);

-- find_api_key with the limits of the key and of its team (a new name: a function's result type
-- cannot change in place, and migrations never drop).
CREATE OR REPLACE FUNCTION nemo.find_api_key_v2(p_key_hash bytea)
  RETURNS TABLE (org_id uuid, key_id uuid, team_id uuid, role text, allowed_models text[],
                 org_allowed_models text[], expires_at timestamptz, revoked_at timestamptz, key_hash bytea,
                 key_rpm_limit integer, key_tpm_limit integer, team_rpm_limit integer, team_tpm_limit integer)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
    SELECT k.org_id, k.key_id, k.team_id, k.role, k.allowed_models, c.allowed_models,
           k.expires_at, k.revoked_at, k.key_hash, k.rpm_limit, k.tpm_limit, t.rpm_limit, t.tpm_limit
    FROM nemo.api_keys k
    LEFT JOIN nemo.org_config c ON c.org_id = k.org_id
    LEFT JOIN nemo.teams t ON t.org_id = k.org_id AND t.team_id = k.team_id
    WHERE k.key_hash = p_key_hash
  $$;

REVOKE ALL ON FUNCTION nemo.find_api_key_v2(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nemo.find_api_key_v2(bytea) TO nemo_app;

-- A team's limits changed: its keys' cached entries must go too.
CREATE OR REPLACE TRIGGER teams_changed AFTER UPDATE OR DELETE ON nemo.teams
  FOR EACH ROW EXECUTE FUNCTION nemo.notify_tenancy_change();
