-- The parts of a request's usage in its request-log row, where the upstream reported them: prompt
-- tokens read from a prompt cache, prompt tokens written to one, and reasoning tokens among the
-- completion tokens. They are what cache-aware and reasoning-aware prices charged (docs/money.md);
-- the charge itself stays the ledger's settle row of the same request id.

ALTER TABLE nemo.request_log_entries ADD COLUMN IF NOT EXISTS cached_tokens integer;
ALTER TABLE nemo.request_log_entries ADD COLUMN IF NOT EXISTS cache_write_tokens integer;
ALTER TABLE nemo.request_log_entries ADD COLUMN IF NOT EXISTS reasoning_tokens integer;

-- record_request_log_entries with the usage parts.
CREATE OR REPLACE FUNCTION nemo.record_request_log_entries_v2(p_rows json, p_default_retention_days integer)
  RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
    WITH batch AS (
      SELECT * FROM json_to_recordset(p_rows)
        AS b(log_id uuid, created_at timestamptz, org_id uuid, team_id uuid, key_id uuid, request_id text, model text,
             deployment text, status integer, status_class text, error_code text, stream boolean, prompt_tokens integer,
             completion_tokens integer, cached_tokens integer, cache_write_tokens integer, reasoning_tokens integer,
             cost_micros bigint, latency_ms real, ttft_ms real, guardrail_action text,
             guardrail_rules text[], request_body text, response_body text, retention_days integer)
    ), inserted AS (
      INSERT INTO nemo.request_log_entries (org_id, created_at, log_id, expires_on, request_id, team_id, key_id, model, deployment,
                                            status, status_class, error_code, stream, prompt_tokens, completion_tokens,
                                            cached_tokens, cache_write_tokens, reasoning_tokens,
                                            cost_micros, latency_ms, ttft_ms, guardrail_action, guardrail_rules,
                                            request_body, response_body)
      SELECT b.org_id, b.created_at, b.log_id,
             (b.created_at AT TIME ZONE 'UTC')::date + least(greatest(coalesce(b.retention_days, p_default_retention_days), 1), 731),
             b.request_id, b.team_id, b.key_id, b.model, b.deployment,
             b.status, b.status_class, b.error_code, coalesce(b.stream, false), b.prompt_tokens, b.completion_tokens,
             b.cached_tokens, b.cache_write_tokens, b.reasoning_tokens,
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

REVOKE ALL ON FUNCTION nemo.record_request_log_entries_v2(json, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nemo.record_request_log_entries_v2(json, integer) TO nemo_app;
