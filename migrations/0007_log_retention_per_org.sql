-- Request-log retention per org, still enforced by dropping whole partitions only (the one
-- destructive operation). Rows now go to nemo.request_log_entries, partitioned by the UTC day they
-- expire on (the day they were created plus their org's retention), so one partition drop removes
-- exactly the rows whose every org's retention has passed, whatever mix of retentions wrote them.
-- nemo.request_logs (0006, partitioned by the day of creation) keeps the rows written before, and
-- those of instances still on 0006 during a rolling deploy; its partitions keep expiring by the
-- gateway's default retention, and exports read both tables.
-- The key lookup now carries the org's logging level and retention: orgs logging 'none' send no
-- row at all, and bodies are captured only for orgs logging 'full'.

-- NULL: the gateway's default (logs.retentionDays).
ALTER TABLE nemo.org_config ADD COLUMN IF NOT EXISTS log_retention_days integer CHECK (log_retention_days BETWEEN 1 AND 731);

CREATE TABLE IF NOT EXISTS nemo.request_log_entries (
  org_id uuid NOT NULL,
  created_at timestamptz NOT NULL,
  -- Chosen by the writer, so a batch retried after a lost commit inserts nothing twice.
  log_id uuid NOT NULL,
  -- The last UTC day the row must be kept; its partition is dropped once that day has ended.
  expires_on date NOT NULL,
  request_id text NOT NULL CHECK (length(request_id) <= 200),
  team_id uuid,
  key_id uuid,
  model text CHECK (length(model) <= 256),
  deployment text CHECK (length(deployment) <= 256),
  status integer NOT NULL CHECK (status BETWEEN 100 AND 599),
  status_class text NOT NULL CHECK (status_class IN ('1xx', '2xx', '3xx', '4xx', '5xx', 'client_closed')),
  error_code text CHECK (length(error_code) <= 100),
  stream boolean NOT NULL DEFAULT false,
  prompt_tokens integer CHECK (prompt_tokens >= 0),
  completion_tokens integer CHECK (completion_tokens >= 0),
  cost_micros bigint CHECK (cost_micros >= 0),
  latency_ms real CHECK (latency_ms >= 0),
  ttft_ms real CHECK (ttft_ms >= 0),
  guardrail_action text NOT NULL DEFAULT 'none' CHECK (guardrail_action IN ('none', 'flag', 'redact', 'block')),
  guardrail_rules text[] NOT NULL DEFAULT '{}',
  -- Only for orgs whose org_config.logging_level is 'full' (record_request_log_entries enforces it).
  request_body text,
  response_body text,
  -- Leads with org_id like every tenant table, then the export's time order; holds the partition
  -- key as Postgres requires of a partitioned table's unique index.
  PRIMARY KEY (org_id, created_at, log_id, expires_on)
) PARTITION BY RANGE (expires_on);

SELECT nemo.enable_tenant_rls('request_log_entries');
GRANT SELECT ON nemo.request_log_entries TO nemo_app;

-- Creates the partitions for the given expiry days that do not exist yet (row-level security
-- enabled and forced like the parent); returns the names it created. Same advisory lock as 0006's
-- maintenance functions, so instances and hand-run calls take turns.
CREATE OR REPLACE FUNCTION nemo.ensure_request_log_entry_partitions(p_days date[])
  RETURNS SETOF text
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog SET lock_timeout = '5s'
  AS $$
  DECLARE
    day date;
    part text;
  BEGIN
    IF p_days IS NULL OR cardinality(p_days) > 4000 OR array_position(p_days, NULL) IS NOT NULL THEN
      RAISE EXCEPTION 'ensure_request_log_entry_partitions: 0..4000 days, none NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(5639999111345817427);
    FOR day IN SELECT DISTINCT d FROM unnest(p_days) AS d ORDER BY 1 LOOP
      part := 'request_log_entries_e' || to_char(day, 'YYYYMMDD');
      CONTINUE WHEN to_regclass(format('nemo.%I', part)) IS NOT NULL;
      EXECUTE format('CREATE TABLE IF NOT EXISTS nemo.%I PARTITION OF nemo.request_log_entries FOR VALUES FROM (%L) TO (%L)',
                     part, to_char(day, 'YYYY-MM-DD'), to_char(day + 1, 'YYYY-MM-DD'));
      PERFORM nemo.enable_tenant_rls(part);
      RETURN NEXT part;
    END LOOP;
  END
  $$;

-- The partitions rows written from yesterday to p_days_ahead days ahead will need: one per expiry
-- day, for every retention in force (each org's own, and p_default_retention_days for the others).
CREATE OR REPLACE FUNCTION nemo.ensure_request_log_entry_partitions_ahead(p_days_ahead integer, p_default_retention_days integer)
  RETURNS SETOF text
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
    SELECT nemo.ensure_request_log_entry_partitions(coalesce(array_agg(DISTINCT today + r.days + offs), '{}'))
      FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS today) t,
           (SELECT DISTINCT log_retention_days AS days FROM nemo.org_config WHERE log_retention_days IS NOT NULL
             UNION SELECT p_default_retention_days) r,
           generate_series(-1, least(greatest(p_days_ahead, 0), 366)) AS offs
     WHERE r.days BETWEEN 1 AND 731
  $$;

-- Drops the partitions whose expiry day ended before today (UTC): every row in them has been kept
-- at least its org's retention. Returns the names it dropped and logs each. As in 0006, the DROP is
-- dynamic SQL confined to partitions of nemo.request_log_entries named request_log_entries_eYYYYMMDD.
CREATE OR REPLACE FUNCTION nemo.drop_expired_request_log_entry_partitions()
  RETURNS SETOF text
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog SET lock_timeout = '5s'
  AS $$
  DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    part text;
  BEGIN
    PERFORM pg_advisory_xact_lock(5639999111345817427);
    FOR part IN
      SELECT c.relname::text
        FROM pg_catalog.pg_inherits i
        JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = 'nemo.request_log_entries'::regclass
         AND c.relname ~ '^request_log_entries_e[0-9]{8}$'
         AND to_date(substr(c.relname, 22), 'YYYYMMDD') < today
       ORDER BY c.relname
    LOOP
      EXECUTE format('DROP TABLE nemo.%I', part);
      RAISE LOG 'nemo: dropped expired request log partition nemo.%', part;
      RETURN NEXT part;
    END LOOP;
  END
  $$;

-- Records requests of many orgs in one statement, off the request path. Each row carries the
-- retention its org had when the gateway saw it (NULL: p_default_retention_days), so a retried
-- batch lands in the same partitions and inserts nothing twice. Orgs logging 'none' get no row,
-- and bodies are kept only for 'full', as the org is configured now.
CREATE OR REPLACE FUNCTION nemo.record_request_log_entries(p_rows json, p_default_retention_days integer)
  RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
    WITH batch AS (
      SELECT * FROM json_to_recordset(p_rows)
        AS b(log_id uuid, created_at timestamptz, org_id uuid, team_id uuid, key_id uuid, request_id text, model text,
             deployment text, status integer, status_class text, error_code text, stream boolean, prompt_tokens integer,
             completion_tokens integer, cost_micros bigint, latency_ms real, ttft_ms real, guardrail_action text,
             guardrail_rules text[], request_body text, response_body text, retention_days integer)
    ), inserted AS (
      INSERT INTO nemo.request_log_entries (org_id, created_at, log_id, expires_on, request_id, team_id, key_id, model, deployment,
                                            status, status_class, error_code, stream, prompt_tokens, completion_tokens,
                                            cost_micros, latency_ms, ttft_ms, guardrail_action, guardrail_rules,
                                            request_body, response_body)
      SELECT b.org_id, b.created_at, b.log_id,
             (b.created_at AT TIME ZONE 'UTC')::date + least(greatest(coalesce(b.retention_days, p_default_retention_days), 1), 731),
             b.request_id, b.team_id, b.key_id, b.model, b.deployment,
             b.status, b.status_class, b.error_code, coalesce(b.stream, false), b.prompt_tokens, b.completion_tokens,
             b.cost_micros, b.latency_ms, b.ttft_ms, coalesce(b.guardrail_action, 'none'), coalesce(b.guardrail_rules, '{}'),
             CASE WHEN c.logging_level = 'full' THEN b.request_body END,
             CASE WHEN c.logging_level = 'full' THEN b.response_body END
        FROM batch b
        LEFT JOIN nemo.org_config c ON c.org_id = b.org_id
       WHERE coalesce(c.logging_level, 'metadata') <> 'none'
      ON CONFLICT DO NOTHING
      RETURNING 1
    )
    SELECT count(*)::integer FROM inserted
  $$;

-- find_api_key_v3 plus the org's logging level and retention, so the gateway skips the log row of
-- an org logging 'none' and captures bodies only for 'full'.
CREATE OR REPLACE FUNCTION nemo.find_api_key_v4(p_key_hash bytea)
  RETURNS TABLE (org_id uuid, key_id uuid, team_id uuid, role text, allowed_models text[],
                 org_allowed_models text[], expires_at timestamptz, revoked_at timestamptz, key_hash bytea,
                 key_rpm_limit integer, key_tpm_limit integer, team_rpm_limit integer, team_tpm_limit integer,
                 org_guardrail_policy jsonb, team_guardrail_policy jsonb, key_guardrail_policy jsonb,
                 logging_level text, log_retention_days integer)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
    SELECT k.org_id, k.key_id, k.team_id, k.role, k.allowed_models, c.allowed_models,
           k.expires_at, k.revoked_at, k.key_hash, k.rpm_limit, k.tpm_limit, t.rpm_limit, t.tpm_limit,
           c.default_guardrail_policy, t.guardrail_policy, k.guardrail_policy,
           coalesce(c.logging_level, 'metadata'), c.log_retention_days
    FROM nemo.api_keys k
    LEFT JOIN nemo.org_config c ON c.org_id = k.org_id
    LEFT JOIN nemo.teams t ON t.org_id = k.org_id AND t.team_id = k.team_id
    WHERE k.key_hash = p_key_hash
  $$;

REVOKE ALL ON FUNCTION nemo.ensure_request_log_entry_partitions(date[]), nemo.ensure_request_log_entry_partitions_ahead(integer, integer),
  nemo.drop_expired_request_log_entry_partitions(), nemo.record_request_log_entries(json, integer), nemo.find_api_key_v4(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nemo.ensure_request_log_entry_partitions(date[]), nemo.ensure_request_log_entry_partitions_ahead(integer, integer),
  nemo.drop_expired_request_log_entry_partitions(), nemo.record_request_log_entries(json, integer), nemo.find_api_key_v4(bytea) TO nemo_app;
