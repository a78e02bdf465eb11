-- nemo:reads-litellm
-- LiteLLM interop: one database, two schema owners. LiteLLM's Prisma migrations own schema public
-- (organizations, teams, virtual keys, users, memberships); these functions only read it, from
-- function bodies (the lint allows exactly that in a file marked as above), and nemo_app has no
-- privilege on public at all. nemo orgs and teams take the same ids as LiteLLM's (text holding
-- UUIDs, checked before the cast) and carry the LiteLLM id they mirror; a LiteLLM key is mirrored
-- by a nemo key row with the same SHA-256 (LiteLLM stores it as hex in "token"), so ledger rows,
-- rate limits and logs name it like any key. The mirror rows are derived: LiteLLM stays the
-- source of truth for blocked, expires, models and team, read again at every key-cache miss.

ALTER TABLE nemo.orgs ADD COLUMN IF NOT EXISTS litellm_organization_id text;
ALTER TABLE nemo.teams ADD COLUMN IF NOT EXISTS litellm_team_id text;
ALTER TABLE nemo.api_keys ADD COLUMN IF NOT EXISTS litellm_token text;
CREATE UNIQUE INDEX IF NOT EXISTS orgs_litellm_organization_id ON nemo.orgs (litellm_organization_id) WHERE litellm_organization_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS teams_litellm_team_id ON nemo.teams (litellm_team_id) WHERE litellm_team_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_litellm_token ON nemo.api_keys (litellm_token) WHERE litellm_token IS NOT NULL;

-- A LiteLLM id as a uuid, or NULL when it is not one (Prisma generates UUIDs; an id set by hand
-- through LiteLLM's API may be anything, and such an org or team is left out, never guessed at).
CREATE OR REPLACE FUNCTION nemo.litellm_uuid(p_id text) RETURNS uuid
  LANGUAGE sql IMMUTABLE
  AS $$ SELECT CASE WHEN p_id ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN p_id::uuid END $$;

-- A LiteLLM model list as a nemo allow-list: empty, or naming all-proxy-models, means every model (NULL).
CREATE OR REPLACE FUNCTION nemo.litellm_models(p_models text[]) RETURNS text[]
  LANGUAGE sql IMMUTABLE
  AS $$ SELECT CASE WHEN coalesce(cardinality(p_models), 0) = 0 OR 'all-proxy-models' = ANY (p_models) THEN NULL ELSE p_models END $$;

-- A LiteLLM rate limit (BIGINT, NULL for none) as nemo's integer limit.
CREATE OR REPLACE FUNCTION nemo.litellm_limit(p_limit bigint) RETURNS integer
  LANGUAGE sql IMMUTABLE
  AS $$ SELECT CASE WHEN p_limit IS NULL THEN NULL ELSE least(p_limit, 2147483647)::integer END $$;

-- Two allow-lists as one: NULL on either side is no restriction from that side.
CREATE OR REPLACE FUNCTION nemo.models_within(p_a text[], p_b text[]) RETURNS text[]
  LANGUAGE sql IMMUTABLE
  AS $$
    SELECT CASE WHEN p_a IS NULL THEN p_b WHEN p_b IS NULL THEN p_a
                ELSE ARRAY(SELECT m FROM unnest(p_a) AS m WHERE m = ANY (p_b)) END
  $$;

-- The nemo org mirroring a LiteLLM organization, created with its credit account and config when
-- missing; its name follows the alias when p_refresh. NULL when LiteLLM has no such org, or its id
-- is no uuid, or a nemo org with that id is not LiteLLM's.
CREATE OR REPLACE FUNCTION nemo.litellm_link_org(p_org text, p_refresh boolean) RETURNS uuid
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
  DECLARE
    org_uuid uuid := nemo.litellm_uuid(p_org);
    linked text;
    alias text;
  BEGIN
    IF org_uuid IS NULL THEN RETURN NULL; END IF;
    SELECT o.litellm_organization_id INTO linked FROM nemo.orgs o WHERE o.org_id = org_uuid;
    IF FOUND AND linked IS DISTINCT FROM p_org THEN RETURN NULL; END IF;
    IF FOUND AND NOT p_refresh THEN RETURN org_uuid; END IF;
    SELECT l.organization_alias INTO alias FROM public."LiteLLM_OrganizationTable" l WHERE l.organization_id = p_org;
    IF NOT FOUND THEN RETURN NULL; END IF;
    alias := left(coalesce(nullif(btrim(alias), ''), p_org), 200);
    INSERT INTO nemo.orgs (org_id, name, litellm_organization_id) VALUES (org_uuid, alias, p_org)
      ON CONFLICT (org_id) DO UPDATE SET name = EXCLUDED.name WHERE orgs.name IS DISTINCT FROM EXCLUDED.name;
    INSERT INTO nemo.org_config (org_id) VALUES (org_uuid) ON CONFLICT (org_id) DO NOTHING;
    INSERT INTO nemo.credit_accounts (org_id) VALUES (org_uuid) ON CONFLICT (org_id) DO NOTHING;
    RETURN org_uuid;
  END
  $$;

-- The nemo team mirroring a LiteLLM team of a mirrored org (same id); NULL for a team of no org,
-- of an org that cannot be mirrored, or already mirrored in another org (moved in LiteLLM: an
-- operator decides, since its nemo limits and ledger rows belong to the first org).
CREATE OR REPLACE FUNCTION nemo.litellm_link_team(p_team text, p_refresh boolean) RETURNS uuid
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
  DECLARE
    team_uuid uuid := nemo.litellm_uuid(p_team);
    team_org uuid;
    linked_org uuid;
    alias text;
    litellm_org text;
  BEGIN
    IF team_uuid IS NULL THEN RETURN NULL; END IF;
    SELECT t.org_id INTO linked_org FROM nemo.teams t WHERE t.litellm_team_id = p_team;
    IF FOUND AND NOT p_refresh THEN RETURN team_uuid; END IF;
    SELECT l.team_alias, l.organization_id INTO alias, litellm_org FROM public."LiteLLM_TeamTable" l WHERE l.team_id = p_team;
    IF NOT FOUND OR litellm_org IS NULL THEN RETURN NULL; END IF;
    team_org := nemo.litellm_link_org(litellm_org, p_refresh);
    IF team_org IS NULL OR (linked_org IS NOT NULL AND linked_org <> team_org) THEN RETURN NULL; END IF;
    alias := left(coalesce(nullif(btrim(alias), ''), p_team), 200);
    -- Team names are unique per org in nemo, not in LiteLLM: a clash takes the id as a suffix.
    IF EXISTS (SELECT 1 FROM nemo.teams t WHERE t.org_id = team_org AND t.name = alias AND t.team_id <> team_uuid) THEN
      alias := left(alias, 160) || ' (' || p_team || ')';
    END IF;
    INSERT INTO nemo.teams (org_id, team_id, name, litellm_team_id) VALUES (team_org, team_uuid, alias, p_team)
      ON CONFLICT (org_id, team_id) DO UPDATE SET name = EXCLUDED.name, litellm_team_id = EXCLUDED.litellm_team_id
      WHERE (teams.name, teams.litellm_team_id) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.litellm_team_id);
    RETURN team_uuid;
  END
  $$;

-- `nemo litellm sync`: every LiteLLM organization and team mirrored, names refreshed. Idempotent;
-- writes nothing in public. Returns what it mirrored and what it had to leave out.
CREATE OR REPLACE FUNCTION nemo.litellm_sync_v1()
  RETURNS TABLE (orgs integer, teams integer, skipped_orgs text[], skipped_teams text[])
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
  DECLARE
    id text;
  BEGIN
    orgs := 0; teams := 0; skipped_orgs := '{}'; skipped_teams := '{}';
    FOR id IN SELECT l.organization_id FROM public."LiteLLM_OrganizationTable" l ORDER BY 1 LOOP
      IF nemo.litellm_link_org(id, true) IS NULL THEN skipped_orgs := skipped_orgs || id; ELSE orgs := orgs + 1; END IF;
    END LOOP;
    FOR id IN SELECT l.team_id FROM public."LiteLLM_TeamTable" l ORDER BY 1 LOOP
      IF nemo.litellm_link_team(id, true) IS NULL THEN skipped_teams := skipped_teams || id; ELSE teams := teams + 1; END IF;
    END LOOP;
    RETURN NEXT;
  END
  $$;

-- The hot path's key lookup, LiteLLM-aware: find_api_key_v5's columns plus where the key comes
-- from and why LiteLLM refuses it. A native key answers as in v5. With p_litellm, a key known to
-- LiteLLM (by the hex of the same SHA-256) is mirrored on first use and answered with LiteLLM's
-- current state: refusal 'blocked' (the key or its team), 'no_org' (no organization nemo can
-- mirror); models are the key's within its team's; expiry the earlier of both sides; rate limits
-- nemo's where set, else LiteLLM's; role admin when the key's user is an org_admin of the key's
-- org in LiteLLM's membership table (the authorization join). A key deleted in LiteLLM, or any
-- LiteLLM key with p_litellm false, is unknown.
CREATE OR REPLACE FUNCTION nemo.find_api_key_v6(p_key_hash bytea, p_litellm boolean)
  RETURNS TABLE (org_id uuid, key_id uuid, team_id uuid, role text, allowed_models text[],
                 org_allowed_models text[], expires_at timestamptz, revoked_at timestamptz, key_hash bytea,
                 key_rpm_limit integer, key_tpm_limit integer, team_rpm_limit integer, team_tpm_limit integer,
                 org_guardrail_policy jsonb, team_guardrail_policy jsonb, key_guardrail_policy jsonb,
                 logging_level text, log_retention_days integer, spend_capped boolean,
                 source text, litellm_refusal text)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
  #variable_conflict use_column
  DECLARE
    mirror nemo.api_keys%ROWTYPE;
    hex text := encode(p_key_hash, 'hex');
    vt record;
    -- The key's LiteLLM team, as scalars: a record would be unassigned for a key of no team.
    team_org text;
    team_blocked boolean;
    team_models text[];
    team_rpm bigint;
    team_tpm bigint;
    key_org text;
    org_uuid uuid;
    team_uuid uuid;
    is_admin boolean;
    refusal text;
  BEGIN
    SELECT * INTO mirror FROM nemo.api_keys k WHERE k.key_hash = p_key_hash;
    IF FOUND AND mirror.litellm_token IS NULL THEN
      RETURN QUERY SELECT v.*, 'nemo'::text, NULL::text FROM nemo.find_api_key_v5(p_key_hash) v;
      RETURN;
    END IF;
    IF NOT p_litellm THEN RETURN; END IF;

    SELECT t.organization_id, t.team_id, t.user_id, t.blocked, t.expires, t.models, t.key_alias, t.key_name, t.rpm_limit, t.tpm_limit
      INTO vt FROM public."LiteLLM_VerificationToken" t WHERE t.token = hex;
    IF NOT FOUND THEN RETURN; END IF;
    IF vt.team_id IS NOT NULL THEN
      SELECT t.organization_id, t.blocked, t.models, t.rpm_limit, t.tpm_limit INTO team_org, team_blocked, team_models, team_rpm, team_tpm
        FROM public."LiteLLM_TeamTable" t WHERE t.team_id = vt.team_id;
    END IF;
    key_org := coalesce(vt.organization_id, team_org);
    org_uuid := CASE WHEN key_org IS NULL THEN NULL ELSE nemo.litellm_link_org(key_org, false) END;
    IF org_uuid IS NULL THEN
      RETURN QUERY SELECT NULL::uuid, NULL::uuid, NULL::uuid, 'member'::text, NULL::text[], NULL::text[], NULL::timestamptz, NULL::timestamptz,
        p_key_hash, NULL::integer, NULL::integer, NULL::integer, NULL::integer, NULL::jsonb, NULL::jsonb, NULL::jsonb, 'metadata'::text,
        NULL::integer, false, 'litellm'::text, 'no_org'::text;
      RETURN;
    END IF;
    -- A team of another org than the key's is not the key's team here.
    IF vt.team_id IS NOT NULL AND team_org IS NOT DISTINCT FROM key_org THEN
      team_uuid := nemo.litellm_link_team(vt.team_id, false);
    END IF;
    refusal := CASE WHEN coalesce(vt.blocked, false) OR coalesce(team_blocked, false) THEN 'blocked' END;
    is_admin := vt.user_id IS NOT NULL AND EXISTS (
      SELECT 1 FROM public."LiteLLM_OrganizationMembership" m
        JOIN nemo.orgs o ON o.litellm_organization_id = m.organization_id
       WHERE m.user_id = vt.user_id AND o.org_id = org_uuid AND m.user_role = 'org_admin');

    -- The mirror row follows LiteLLM's org, team and name; written only when something changed
    -- (its update trigger tells every instance's key cache).
    IF mirror.key_id IS NULL THEN
      INSERT INTO nemo.api_keys (org_id, key_id, team_id, name, role, key_hash, key_prefix, created_by, litellm_token)
      VALUES (org_uuid, gen_random_uuid(), team_uuid, left(coalesce(nullif(btrim(vt.key_alias), ''), 'LiteLLM key'), 200),
              CASE WHEN is_admin THEN 'admin' ELSE 'member' END, p_key_hash, left(coalesce(vt.key_name, 'sk-'), 16), 'litellm', hex)
      ON CONFLICT (key_hash) DO NOTHING;
    ELSIF (mirror.org_id, mirror.team_id, mirror.role) IS DISTINCT FROM (org_uuid, team_uuid, CASE WHEN is_admin THEN 'admin' ELSE 'member' END) THEN
      UPDATE nemo.api_keys k SET org_id = org_uuid, team_id = team_uuid, role = CASE WHEN is_admin THEN 'admin' ELSE 'member' END
       WHERE k.key_hash = p_key_hash;
    END IF;

    RETURN QUERY
      SELECT v.org_id, v.key_id, v.team_id, v.role,
             nemo.models_within(v.allowed_models, nemo.models_within(nemo.litellm_models(vt.models), nemo.litellm_models(team_models))),
             v.org_allowed_models,
             CASE WHEN vt.expires IS NULL THEN v.expires_at ELSE least(v.expires_at, vt.expires AT TIME ZONE 'UTC') END,
             v.revoked_at, v.key_hash,
             coalesce(v.key_rpm_limit, nemo.litellm_limit(vt.rpm_limit)),
             coalesce(v.key_tpm_limit, nemo.litellm_limit(vt.tpm_limit)),
             coalesce(v.team_rpm_limit, nemo.litellm_limit(team_rpm)),
             coalesce(v.team_tpm_limit, nemo.litellm_limit(team_tpm)),
             v.org_guardrail_policy, v.team_guardrail_policy, v.key_guardrail_policy,
             v.logging_level, v.log_retention_days, v.spend_capped,
             'litellm'::text, refusal
        FROM nemo.find_api_key_v5(p_key_hash) v;
  END
  $$;

-- Spend per LiteLLM organization, team and key (its token, the key's id in LiteLLM), per UTC day
-- and model, from the ledger's charges: a dashboard joins it with LiteLLM's tables on those ids.
-- security_invoker: read as nemo_app, row-level security limits it to the transaction's org.
CREATE OR REPLACE VIEW nemo.litellm_spend WITH (security_invoker = true) AS
  SELECT e.org_id,
         o.litellm_organization_id,
         t.litellm_team_id,
         k.litellm_token AS litellm_key_token,
         e.key_id,
         (e.created_at AT TIME ZONE 'UTC')::date AS day,
         e.model,
         count(*) FILTER (WHERE e.request_id IS NOT NULL) AS requests,
         sum(e.charged)::bigint AS charged_micros
    FROM nemo.ledger_entries e
    JOIN nemo.orgs o ON o.org_id = e.org_id
    LEFT JOIN nemo.api_keys k ON k.org_id = e.org_id AND k.key_id = e.key_id
    LEFT JOIN nemo.teams t ON t.org_id = e.org_id AND t.team_id = coalesce(e.team_id, k.team_id)
   WHERE e.kind = 'settle'
   GROUP BY e.org_id, o.litellm_organization_id, t.litellm_team_id, k.litellm_token, e.key_id, (e.created_at AT TIME ZONE 'UTC')::date, e.model;

GRANT SELECT ON nemo.litellm_spend TO nemo_app;
REVOKE ALL ON FUNCTION nemo.litellm_link_org(text, boolean), nemo.litellm_link_team(text, boolean),
  nemo.litellm_sync_v1(), nemo.find_api_key_v6(bytea, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nemo.litellm_sync_v1(), nemo.find_api_key_v6(bytea, boolean) TO nemo_app;
