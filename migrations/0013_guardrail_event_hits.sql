-- A request records one guardrail event per rule, action and stage it hit, with how many hits,
-- instead of one row per hit: an agent resends its whole conversation with every request, and a
-- history holding 300 email addresses wrote 300 rows a request (30,000 rows a second at 100 RPS),
-- the same rows again each turn. Rows written before this count one hit each.

ALTER TABLE nemo.guardrail_events ADD COLUMN IF NOT EXISTS hits integer NOT NULL DEFAULT 1;

-- record_guardrail_events with each row's hits.
CREATE OR REPLACE FUNCTION nemo.record_guardrail_events_v2(
  p_org uuid[], p_request text[], p_key uuid[], p_rule text[], p_action text[], p_stage text[], p_at timestamptz[], p_hits integer[])
  RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
    WITH inserted AS (
      INSERT INTO nemo.guardrail_events (org_id, request_id, key_id, rule, action, stage, created_at, hits)
      SELECT o, r, k, ru, a, s, t, greatest(h, 1) FROM unnest(p_org, p_request, p_key, p_rule, p_action, p_stage, p_at, p_hits) AS u(o, r, k, ru, a, s, t, h)
      RETURNING 1
    )
    SELECT count(*)::integer FROM inserted
  $$;

REVOKE ALL ON FUNCTION nemo.record_guardrail_events_v2(uuid[], text[], uuid[], text[], text[], text[], timestamptz[], integer[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nemo.record_guardrail_events_v2(uuid[], text[], uuid[], text[], text[], text[], timestamptz[], integer[]) TO nemo_app;
