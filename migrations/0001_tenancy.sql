-- Tenancy: organizations, their config, teams, members and API keys.
-- Every tenant table leads its primary key with org_id (ready to shard by org) and is isolated by
-- forced row-level security against the transaction's tenant, nemo.current_org_id().

-- The tenant of the current transaction, set with set_config('nemo.org_id', $1, true).
-- Unset (NULL or '') means no tenant, and so no rows.
CREATE OR REPLACE FUNCTION nemo.current_org_id() RETURNS uuid
  LANGUAGE sql STABLE
  AS $$ SELECT NULLIF(current_setting('nemo.org_id', true), '')::uuid $$;

CREATE TABLE IF NOT EXISTS nemo.orgs (
  org_id uuid PRIMARY KEY,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS nemo.org_config (
  org_id uuid PRIMARY KEY REFERENCES nemo.orgs (org_id),
  -- NULL: every configured model.
  allowed_models text[],
  default_guardrail_policy jsonb NOT NULL DEFAULT '{}'::jsonb,
  logging_level text NOT NULL DEFAULT 'metadata' CHECK (logging_level IN ('none', 'metadata', 'full')),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS nemo.teams (
  org_id uuid NOT NULL REFERENCES nemo.orgs (org_id),
  team_id uuid NOT NULL,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, team_id),
  UNIQUE (org_id, name)
);

CREATE TABLE IF NOT EXISTS nemo.members (
  org_id uuid NOT NULL REFERENCES nemo.orgs (org_id),
  user_id uuid NOT NULL,
  role text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
  team_id uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, user_id),
  FOREIGN KEY (org_id, team_id) REFERENCES nemo.teams (org_id, team_id)
);

CREATE TABLE IF NOT EXISTS nemo.api_keys (
  org_id uuid NOT NULL REFERENCES nemo.orgs (org_id),
  key_id uuid NOT NULL,
  team_id uuid,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  -- admin keys manage their org through the admin API; member keys only call /v1.
  role text NOT NULL CHECK (role IN ('admin', 'member')),
  -- SHA-256 of the secret; the secret itself is never stored. Unique across orgs: the hot path
  -- finds a key by its hash alone.
  key_hash bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
  key_prefix text NOT NULL,
  -- NULL: every model the org allows.
  allowed_models text[],
  expires_at timestamptz,
  revoked_at timestamptz,
  -- 'platform' (the master key), or the key_id of the admin key that created it.
  created_by text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 64),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, key_id),
  FOREIGN KEY (org_id, team_id) REFERENCES nemo.teams (org_id, team_id)
);

-- A tenant table's row-level security: enabled, forced (so even the table owner is filtered),
-- and one policy against the transaction's tenant. Idempotent; every later tenant table calls it.
CREATE OR REPLACE FUNCTION nemo.enable_tenant_rls(p_table text) RETURNS void
  LANGUAGE plpgsql
  AS $$
  BEGIN
    EXECUTE format('ALTER TABLE nemo.%I ENABLE ROW LEVEL SECURITY', p_table);
    EXECUTE format('ALTER TABLE nemo.%I FORCE ROW LEVEL SECURITY', p_table);
    IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = 'nemo' AND tablename = p_table AND policyname = 'tenant_isolation') THEN
      EXECUTE format(
        'CREATE POLICY tenant_isolation ON nemo.%I USING (org_id = nemo.current_org_id()) WITH CHECK (org_id = nemo.current_org_id())',
        p_table);
    END IF;
  END
  $$;
REVOKE ALL ON FUNCTION nemo.enable_tenant_rls(text) FROM PUBLIC;

SELECT nemo.enable_tenant_rls(t) FROM unnest(ARRAY['orgs', 'org_config', 'teams', 'members', 'api_keys']) AS t;

GRANT SELECT, UPDATE ON nemo.orgs TO nemo_app;
GRANT SELECT, INSERT, UPDATE ON nemo.org_config TO nemo_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON nemo.teams, nemo.members TO nemo_app;
GRANT SELECT, INSERT, UPDATE ON nemo.api_keys TO nemo_app;
GRANT EXECUTE ON FUNCTION nemo.current_org_id() TO nemo_app;

-- Crossing orgs on purpose, through narrow SECURITY DEFINER functions (no bypass role):

-- The hot path: a key by its hash, with what authorizing it needs.
CREATE OR REPLACE FUNCTION nemo.find_api_key(p_key_hash bytea)
  RETURNS TABLE (org_id uuid, key_id uuid, team_id uuid, role text, allowed_models text[],
                 org_allowed_models text[], expires_at timestamptz, revoked_at timestamptz, key_hash bytea)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
    SELECT k.org_id, k.key_id, k.team_id, k.role, k.allowed_models, c.allowed_models,
           k.expires_at, k.revoked_at, k.key_hash
    FROM nemo.api_keys k
    LEFT JOIN nemo.org_config c ON c.org_id = k.org_id
    WHERE k.key_hash = p_key_hash
  $$;

-- The platform master key creates organizations; the caller is authorized by the gateway.
CREATE OR REPLACE FUNCTION nemo.create_org(p_org_id uuid, p_name text)
  RETURNS SETOF nemo.orgs
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
    WITH org AS (
      INSERT INTO nemo.orgs (org_id, name) VALUES (p_org_id, p_name) RETURNING *
    ), config AS (
      INSERT INTO nemo.org_config (org_id) SELECT org_id FROM org
    )
    SELECT * FROM org
  $$;

-- The platform master key lists every organization.
CREATE OR REPLACE FUNCTION nemo.list_orgs()
  RETURNS SETOF nemo.orgs
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$ SELECT * FROM nemo.orgs ORDER BY created_at, org_id $$;

REVOKE ALL ON FUNCTION nemo.find_api_key(bytea), nemo.create_org(uuid, text), nemo.list_orgs() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nemo.find_api_key(bytea), nemo.create_org(uuid, text), nemo.list_orgs() TO nemo_app;

-- Caches of keys and org config in every gateway instance are told about changes at once.
CREATE OR REPLACE FUNCTION nemo.notify_tenancy_change() RETURNS trigger
  LANGUAGE plpgsql
  AS $$
  DECLARE
    changed jsonb := CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END;
  BEGIN
    PERFORM pg_notify('nemo_tenancy', json_build_object(
      'table', TG_TABLE_NAME, 'org_id', changed ->> 'org_id', 'key_id', changed ->> 'key_id')::text);
    RETURN NULL;
  END
  $$;

CREATE OR REPLACE TRIGGER api_keys_changed AFTER UPDATE OR DELETE ON nemo.api_keys
  FOR EACH ROW EXECUTE FUNCTION nemo.notify_tenancy_change();
CREATE OR REPLACE TRIGGER org_config_changed AFTER UPDATE OR DELETE ON nemo.org_config
  FOR EACH ROW EXECUTE FUNCTION nemo.notify_tenancy_change();
