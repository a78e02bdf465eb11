-- ledger_apply_v4 as in 0012, but a charge finds its lease by the lease's key. The join said "open"
-- in the words of the partial index reservations_open_leases, so the function's generic plan read
-- that whole index for every charge: a batch cost more the more leases were open in the database.
-- Same signature, operations, answers and money: an instance of the release before calls it as is.

CREATE OR REPLACE FUNCTION nemo.ledger_apply_v4(
  p_kind text[], p_org uuid[], p_reservation uuid[], p_lease uuid[], p_request text[], p_key uuid[],
  p_amount bigint[], p_min_amount bigint[], p_tokens bigint[], p_model text[],
  p_prompt_tokens bigint[], p_completion_tokens bigint[], p_cached_tokens bigint[], p_cache_write_tokens bigint[],
  p_reasoning_tokens bigint[], p_images bigint[], p_ttl_ms integer, p_lease_ttl_ms integer)
  RETURNS TABLE (op integer, amount bigint, refusal text)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog SET TimeZone = 'UTC'
  -- As in v2 and v3: every join probes an index with at most one batch of rows. And no table is read
  -- whole, also where the plan was made on a new database's empty tables: for everything the call
  -- runs (this body, ledger_apply_v3 and v2, limit_windows_give_back, the foreign-key checks).
  SET enable_hashjoin = off SET enable_mergejoin = off SET enable_seqscan = off
  AS $$
  #variable_conflict use_column
  DECLARE
    kinds text[] := p_kind;
    c_op integer[];
    c_org uuid[];
    c_key uuid[];
    c_team uuid[];
    c_counted smallint[];
    c_created timestamptz[];
    c_held bigint[];
    c_charged bigint[];
  BEGIN
    IF EXISTS (SELECT 1 FROM unnest(p_kind) AS k WHERE k IN ('settle', 'release', 'charge')) THEN
      PERFORM 1 FROM nemo.credit_accounts a
        WHERE a.org_id IN (SELECT DISTINCT o FROM unnest(p_org) AS o)
        ORDER BY a.org_id FOR UPDATE;

      -- Charges against leases, as in v3: in queue order per lease, each capped at what the lease
      -- still holds after the ones before it; a charge id seen before (a retried batch) conflicts
      -- on the idempotency index and moves no money.
      IF EXISTS (SELECT 1 FROM unnest(p_kind) AS k WHERE k = 'charge') THEN
        RETURN QUERY
        WITH ops AS (
          SELECT DISTINCT ON (o.org, o.res) o.ord::integer AS op, o.org, o.res, o.lease, o.req, o.key, GREATEST(o.amount, 0) AS amount, o.model,
                 o.prompt, o.completion, o.cached, o.cache_write, o.reasoning, o.images
          FROM unnest(p_kind, p_org, p_reservation, p_lease, p_request, p_key, p_amount, p_model,
                      p_prompt_tokens, p_completion_tokens, p_cached_tokens, p_cache_write_tokens, p_reasoning_tokens, p_images)
                 WITH ORDINALITY AS o(kind, org, res, lease, req, key, amount, model, prompt, completion, cached, cache_write, reasoning, images, ord)
          WHERE o.kind = 'charge'
          ORDER BY o.org, o.res, o.ord
        ), bounded AS (
          SELECT ops.op, ops.org, ops.res, ops.lease, ops.req, ops.key, ops.model, k.team_id,
                 ops.prompt, ops.completion, ops.cached, ops.cache_write, ops.reasoning, ops.images,
                 LEAST(ops.amount, GREATEST(l.amount - l.charged - ((sum(ops.amount) OVER w)::bigint - ops.amount), 0)) AS applied
          FROM ops
          -- Open, said without the words of the partial index reservations_open_leases: the
          -- generic plan read all of it for each charge, not the lease's row by its key.
          JOIN nemo.reservations l ON l.org_id = ops.org AND l.reservation_id = ops.lease AND l.kind = 'lease'
                                   AND l.state <> ALL ('{settled,released,expired}')
          LEFT JOIN nemo.api_keys k ON k.org_id = ops.org AND k.key_id = ops.key
          WINDOW w AS (PARTITION BY ops.org, ops.lease ORDER BY ops.op)
        ), entries AS (
          INSERT INTO nemo.ledger_entries (org_id, kind, available_delta, held_delta, charged, reservation_id, request_id, key_id, idempotency_key, model, team_id,
                                           prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, images)
          SELECT b.org, 'settle', 0, -b.applied, b.applied, b.lease, b.req, b.key, b.res::text, b.model, b.team_id,
                 b.prompt, b.completion, b.cached, b.cache_write, b.reasoning, b.images
          FROM bounded b
          ON CONFLICT (org_id, kind, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
          RETURNING org_id, reservation_id, charged
        ), leases AS (
          UPDATE nemo.reservations l SET charged = l.charged + s.total
          FROM (SELECT e.org_id, e.reservation_id, sum(e.charged) AS total FROM entries e GROUP BY e.org_id, e.reservation_id) s
          WHERE l.org_id = s.org_id AND l.reservation_id = s.reservation_id
        ), accounts AS (
          UPDATE nemo.credit_accounts a SET held = a.held - s.total, updated_at = now()
          FROM (SELECT e.org_id, sum(e.charged) AS total FROM entries e GROUP BY e.org_id) s
          WHERE a.org_id = s.org_id
        )
        SELECT b.op, b.applied, NULL::text FROM bounded b;
      END IF;

      -- Settles and releases of requests' own holds, as in v2 (a settle charges at most what was
      -- held); one naming a lease closes nothing, as in v3.
      IF EXISTS (SELECT 1 FROM unnest(p_kind) AS k WHERE k IN ('settle', 'release')) THEN
        WITH ops AS (
          SELECT o.kind, o.org, o.res, o.amount, o.ord::integer AS op,
                 o.prompt, o.completion, o.cached, o.cache_write, o.reasoning, o.images
          FROM unnest(p_kind, p_org, p_reservation, p_amount,
                      p_prompt_tokens, p_completion_tokens, p_cached_tokens, p_cache_write_tokens, p_reasoning_tokens, p_images)
                 WITH ORDINALITY AS o(kind, org, res, amount, prompt, completion, cached, cache_write, reasoning, images, ord)
          WHERE o.kind IN ('settle', 'release')
        ), closed AS (
          UPDATE nemo.reservations res
          SET state = CASE WHEN ops.kind = 'settle' THEN 'settled' ELSE 'released' END,
              charged = CASE WHEN ops.kind = 'settle' THEN LEAST(GREATEST(ops.amount, 0), res.amount) ELSE 0 END,
              closed_at = now()
          FROM ops
          -- Open, said without the words of the partial index reservations_open_by_expiry (as in v2).
          WHERE res.org_id = ops.org AND res.reservation_id = ops.res AND res.kind = 'request'
            AND res.state <> ALL ('{settled,released,expired}')
          RETURNING ops.op, ops.kind, res.org_id, res.reservation_id, res.request_id, res.key_id, res.team_id,
                    res.counted_windows, res.created_at, res.amount AS held, res.charged,
                    ops.prompt, ops.completion, ops.cached, ops.cache_write, ops.reasoning, ops.images
        ), entries AS (
          INSERT INTO nemo.ledger_entries (org_id, kind, available_delta, held_delta, charged, reservation_id, request_id, key_id,
                                           prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, images)
          SELECT c.org_id, c.kind, c.held - c.charged, -c.held, c.charged, c.reservation_id, c.request_id, c.key_id,
                 CASE WHEN c.kind = 'settle' THEN c.prompt END, CASE WHEN c.kind = 'settle' THEN c.completion END,
                 CASE WHEN c.kind = 'settle' THEN c.cached END, CASE WHEN c.kind = 'settle' THEN c.cache_write END,
                 CASE WHEN c.kind = 'settle' THEN c.reasoning END, CASE WHEN c.kind = 'settle' THEN c.images END
          FROM closed c
        ), accounts AS (
          UPDATE nemo.credit_accounts a
          SET available = a.available + s.back, held = a.held - s.held, updated_at = now()
          FROM (SELECT c.org_id, sum(c.held - c.charged) AS back, sum(c.held) AS held FROM closed c GROUP BY c.org_id) s
          WHERE a.org_id = s.org_id
        )
        SELECT coalesce(array_agg(c.op), '{}'), coalesce(array_agg(c.org_id), '{}'), coalesce(array_agg(c.key_id), '{}'),
               coalesce(array_agg(c.team_id), '{}'), coalesce(array_agg(c.counted_windows), '{}'), coalesce(array_agg(c.created_at), '{}'),
               coalesce(array_agg(c.held), '{}'), coalesce(array_agg(c.charged), '{}')
          INTO c_op, c_org, c_key, c_team, c_counted, c_created, c_held, c_charged
          FROM closed c;

        IF EXISTS (SELECT 1 FROM unnest(c_counted) AS x(counted) WHERE x.counted <> 0) THEN
          PERFORM nemo.limit_windows_give_back(c_org, c_key, c_team, c_counted, c_created,
            ARRAY(SELECT x.held - x.charged FROM unnest(c_held, c_charged) AS x(held, charged)));
        END IF;

        -- A settle reports what it charged, a release what it returned.
        RETURN QUERY SELECT x.op, CASE WHEN x.charged > 0 THEN x.charged ELSE x.held END, NULL::text
          FROM unnest(c_op, c_held, c_charged) AS x(op, held, charged);
      END IF;

      kinds := ARRAY(SELECT CASE WHEN k IN ('settle', 'release', 'charge') THEN 'ignored' ELSE k END
                     FROM unnest(p_kind) WITH ORDINALITY AS u(k, ord) ORDER BY u.ord);
    END IF;

    IF EXISTS (SELECT 1 FROM unnest(kinds) AS k WHERE k IN ('reserve', 'admit', 'lease', 'lease_return')) THEN
      RETURN QUERY SELECT v.op, v.amount, v.refusal
        FROM nemo.ledger_apply_v3(kinds, p_org, p_reservation, p_lease, p_request, p_key, p_amount, p_min_amount, p_tokens, p_model,
                                  p_ttl_ms, p_lease_ttl_ms) AS v;
    END IF;
  END
  $$;
