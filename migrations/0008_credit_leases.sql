-- Credit leases (an escrow, as in RFC 4006's credit control): a gateway instance holds, per org it
-- serves, one durable hold of many requests' worth (a reservation of kind 'lease'), carves each
-- request's bound from it in process, and writes each request's charge against it as the request's
-- own ledger row. What it does not use goes back when the lease ends, is recalled, or expires.
--
-- The books stay exact: a lease is granted like any hold (available down, held up, a ledger row); a
-- charge moves money out of the lease (held down by what it charged, a ledger row per request, the
-- lease's `charged` up, never past its amount); a return gives back what the lease no longer needs.
-- For every account: held = sum over open reservations of (amount - charged), which is the amount
-- itself for a request's hold (its charge is written when it closes).

ALTER TABLE nemo.reservations ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'request' CHECK (kind IN ('request', 'lease'));
-- When a lease gave back its unused part (what it still holds is in use by running requests).
ALTER TABLE nemo.reservations ADD COLUMN IF NOT EXISTS trimmed_at timestamptz;
CREATE INDEX IF NOT EXISTS reservations_open_leases ON nemo.reservations (org_id) WHERE kind = 'lease' AND state = 'reserved';
-- A charge against a lease names the public model it served and the key's team, for usage reports.
ALTER TABLE nemo.ledger_entries ADD COLUMN IF NOT EXISTS model text CHECK (length(model) <= 256);
ALTER TABLE nemo.ledger_entries ADD COLUMN IF NOT EXISTS team_id uuid;

-- One batch of the gateway's operations, in one transaction (the batched writer's only statement):
-- ledger_apply_v2's operations, and besides:
--   'charge'        a request served from a lease: p_lease is the lease, p_reservation the charge's own
--                   id (a retried batch does not charge twice), p_amount the charge. Capped at what
--                   the lease still holds; 0 when the lease is no longer open (the charge is lost,
--                   never taken from elsewhere).
--   'lease_return'  keep p_amount of the lease's unused part (0: close it) and give back the rest.
--   'lease'         a new lease of up to p_amount (at least p_min_amount) for holder p_request,
--                   capped at the org's available balance / (2 x (other holders + 1)), so that a few
--                   instances never take all of a balance between them. Refused ('funds') below the
--                   minimum: the instance then takes per-request holds.
-- Charges and returns apply first, then ledger_apply_v2's settles, releases, reserves and admits,
-- then new leases (a request's own hold comes before a cache of holds). A reserve refused for funds
-- while a lease of its org that was never trimmed holds money is refused as 'funds_leased', and the
-- holders are told on channel nemo_lease_recall (the payload is the org id) to give their unused
-- part back. p_lease_ttl_ms: how long a new lease lives unrenewed.
CREATE OR REPLACE FUNCTION nemo.ledger_apply_v3(
  p_kind text[], p_org uuid[], p_reservation uuid[], p_lease uuid[], p_request text[], p_key uuid[],
  p_amount bigint[], p_min_amount bigint[], p_tokens bigint[], p_model text[], p_ttl_ms integer, p_lease_ttl_ms integer)
  RETURNS TABLE (op integer, amount bigint, refusal text)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog SET TimeZone = 'UTC'
  SET enable_hashjoin = off SET enable_mergejoin = off
  AS $$
  #variable_conflict use_column
  DECLARE
    r record;
    avail bigint;
    holders integer;
    granted bigint;
    v_op integer[];
    v_amount bigint[];
    v_refusal text[];
    recalled uuid[];
    kinds text[] := p_kind;
  BEGIN
    -- A settle or release names a request's hold; one naming a lease (never sent by the gateway)
    -- closes nothing, rather than close the lease as if it were a request's.
    IF EXISTS (SELECT 1 FROM unnest(p_kind) AS k WHERE k IN ('settle', 'release')) THEN
      kinds := ARRAY(
        SELECT CASE WHEN o.kind IN ('settle', 'release') AND EXISTS (
                      SELECT 1 FROM nemo.reservations x WHERE x.org_id = o.org AND x.reservation_id = o.res AND x.kind = 'lease')
                    THEN 'ignored' ELSE o.kind END
        FROM unnest(p_kind, p_org, p_reservation) WITH ORDINALITY AS o(kind, org, res, ord)
        ORDER BY o.ord);
    END IF;
    -- The common batch has no lease operation: exactly ledger_apply_v2.
    IF NOT EXISTS (SELECT 1 FROM unnest(p_kind) AS k WHERE k IN ('charge', 'lease_return', 'lease')) THEN
      SELECT coalesce(array_agg(v.op), '{}'), coalesce(array_agg(v.amount), '{}'), coalesce(array_agg(v.refusal), '{}')
        INTO v_op, v_amount, v_refusal
        FROM nemo.ledger_apply_v2(kinds, p_org, p_reservation, p_request, p_key, p_amount, p_min_amount, p_tokens, p_model, p_ttl_ms) AS v;
    ELSE
      PERFORM 1 FROM nemo.credit_accounts a
        WHERE a.org_id IN (SELECT DISTINCT o FROM unnest(p_org) AS o)
        ORDER BY a.org_id FOR UPDATE;

      -- Charges, in queue order per lease, each capped at what the lease still holds after the
      -- ones before it. A charge id seen before (a retried batch) is not charged again: its row
      -- conflicts on the idempotency index and only inserted rows move money. (Probing that index
      -- per charge instead let a generic plan walk the org's whole ledger for every charge.)
      RETURN QUERY
      WITH ops AS (
        SELECT DISTINCT ON (o.org, o.res) o.ord::integer AS op, o.org, o.res, o.lease, o.req, o.key, GREATEST(o.amount, 0) AS amount, o.model
        FROM unnest(p_kind, p_org, p_reservation, p_lease, p_request, p_key, p_amount, p_model)
               WITH ORDINALITY AS o(kind, org, res, lease, req, key, amount, model, ord)
        WHERE o.kind = 'charge'
        ORDER BY o.org, o.res, o.ord
      ), bounded AS (
        SELECT ops.op, ops.org, ops.res, ops.lease, ops.req, ops.key, ops.model, k.team_id,
               LEAST(ops.amount, GREATEST(l.amount - l.charged - ((sum(ops.amount) OVER w)::bigint - ops.amount), 0)) AS applied
        FROM ops
        JOIN nemo.reservations l ON l.org_id = ops.org AND l.reservation_id = ops.lease AND l.kind = 'lease' AND l.state = 'reserved'
        LEFT JOIN nemo.api_keys k ON k.org_id = ops.org AND k.key_id = ops.key
        WINDOW w AS (PARTITION BY ops.org, ops.lease ORDER BY ops.op)
      ), entries AS (
        INSERT INTO nemo.ledger_entries (org_id, kind, available_delta, held_delta, charged, reservation_id, request_id, key_id, idempotency_key, model, team_id)
        SELECT b.org, 'settle', 0, -b.applied, b.applied, b.lease, b.req, b.key, b.res::text, b.model, b.team_id FROM bounded b
        ON CONFLICT (org_id, kind, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING org_id, reservation_id, charged, idempotency_key
      ), leases AS (
        UPDATE nemo.reservations l SET charged = l.charged + s.total
        FROM (SELECT e.org_id, e.reservation_id, sum(e.charged) AS total FROM entries e GROUP BY e.org_id, e.reservation_id) s
        WHERE l.org_id = s.org_id AND l.reservation_id = s.reservation_id
      ), accounts AS (
        UPDATE nemo.credit_accounts a SET held = a.held - s.total, updated_at = now()
        FROM (SELECT e.org_id, sum(e.charged) AS total FROM entries e GROUP BY e.org_id) s
        WHERE a.org_id = s.org_id
      )
      -- A charge whose id was seen before reports what it is charged at, as written the first time
      -- (a join back to the inserted rows would be quadratic in the batch).
      SELECT b.op, b.applied, NULL::text FROM bounded b;

      -- Returns: the last one per lease in the batch decides what the lease keeps.
      RETURN QUERY
      WITH ops AS (
        SELECT DISTINCT ON (o.org, o.res) o.ord::integer AS op, o.org, o.res, GREATEST(o.amount, 0) AS keep
        FROM unnest(p_kind, p_org, p_reservation, p_amount) WITH ORDINALITY AS o(kind, org, res, amount, ord)
        WHERE o.kind = 'lease_return'
        ORDER BY o.org, o.res, o.ord DESC
      ), due AS (
        SELECT ops.op, l.org_id, l.reservation_id, l.request_id, ops.keep = 0 AS closing, l.charged,
               CASE WHEN ops.keep = 0 THEN l.amount - l.charged ELSE GREATEST(l.amount - l.charged - ops.keep, 0) END AS back
        FROM ops JOIN nemo.reservations l ON l.org_id = ops.org AND l.reservation_id = ops.res AND l.kind = 'lease' AND l.state = 'reserved'
        FOR UPDATE OF l
      ), changed AS (
        UPDATE nemo.reservations l
        SET amount = CASE WHEN d.closing THEN l.amount ELSE l.amount - d.back END,
            state = CASE WHEN NOT d.closing THEN l.state WHEN l.charged > 0 THEN 'settled' ELSE 'released' END,
            closed_at = CASE WHEN d.closing THEN now() END,
            trimmed_at = CASE WHEN d.closing THEN l.trimmed_at ELSE now() END
        FROM due d
        WHERE l.org_id = d.org_id AND l.reservation_id = d.reservation_id
        RETURNING l.org_id
      ), entries AS (
        INSERT INTO nemo.ledger_entries (org_id, kind, available_delta, held_delta, reservation_id, request_id)
        SELECT d.org_id, 'release', d.back, -d.back, d.reservation_id, d.request_id FROM due d WHERE d.back > 0
      ), accounts AS (
        UPDATE nemo.credit_accounts a SET available = a.available + s.total, held = a.held - s.total, updated_at = now()
        FROM (SELECT d.org_id, sum(d.back) AS total FROM due d GROUP BY d.org_id) s
        WHERE a.org_id = s.org_id AND s.total > 0
      )
      SELECT d.op, d.back, NULL::text FROM due d;

      IF EXISTS (SELECT 1 FROM unnest(p_kind) AS k WHERE k IN ('reserve', 'admit', 'settle', 'release')) THEN
        SELECT coalesce(array_agg(v.op), '{}'), coalesce(array_agg(v.amount), '{}'), coalesce(array_agg(v.refusal), '{}')
          INTO v_op, v_amount, v_refusal
          FROM nemo.ledger_apply_v2(kinds, p_org, p_reservation, p_request, p_key, p_amount, p_min_amount, p_tokens, p_model, p_ttl_ms) AS v;
      ELSE
        v_op := '{}'; v_amount := '{}'; v_refusal := '{}';
      END IF;

      -- New leases, each against the balance as the operations above left it.
      FOR r IN
        SELECT o.ord::integer AS op, o.org, o.res, o.req, o.amount, o.min_amount
        FROM unnest(p_kind, p_org, p_reservation, p_request, p_amount, p_min_amount)
               WITH ORDINALITY AS o(kind, org, res, req, amount, min_amount, ord)
        WHERE o.kind = 'lease'
          AND NOT EXISTS (SELECT 1 FROM nemo.reservations x WHERE x.org_id = o.org AND x.reservation_id = o.res)
        ORDER BY o.org, o.ord
      LOOP
        SELECT a.available INTO avail FROM nemo.credit_accounts a WHERE a.org_id = r.org;
        SELECT count(DISTINCT x.request_id)::integer INTO holders FROM nemo.reservations x
          WHERE x.org_id = r.org AND x.kind = 'lease' AND x.state = 'reserved' AND x.request_id IS DISTINCT FROM r.req;
        granted := LEAST(r.amount, COALESCE(avail, 0) / (2 * (holders + 1)));
        IF granted < GREATEST(r.min_amount, 1) THEN
          op := r.op; amount := 0; refusal := 'funds';
          RETURN NEXT;
          CONTINUE;
        END IF;
        INSERT INTO nemo.reservations (org_id, reservation_id, request_id, kind, state, amount, expires_at)
        VALUES (r.org, r.res, r.req, 'lease', 'reserved', granted, now() + make_interval(secs => p_lease_ttl_ms / 1000.0))
        ON CONFLICT (org_id, reservation_id) DO NOTHING;
        CONTINUE WHEN NOT FOUND;
        INSERT INTO nemo.ledger_entries (org_id, kind, available_delta, held_delta, reservation_id, request_id)
        VALUES (r.org, 'reserve', -granted, granted, r.res, r.req);
        UPDATE nemo.credit_accounts a SET available = a.available - granted, held = a.held + granted, updated_at = now()
        WHERE a.org_id = r.org;
        op := r.op; amount := granted; refusal := NULL;
        RETURN NEXT;
      END LOOP;
    END IF;

    -- A reserve refused for funds that sit unused in leases: the holders are asked for them back.
    SELECT coalesce(array_agg(DISTINCT p_org[v.op]), '{}') INTO recalled
      FROM unnest(v_op, v_refusal) AS v(op, refusal)
      WHERE v.refusal = 'funds' AND p_kind[v.op] = 'reserve'
        AND EXISTS (SELECT 1 FROM nemo.reservations l
                    WHERE l.org_id = p_org[v.op] AND l.kind = 'lease' AND l.state = 'reserved' AND l.amount > l.charged AND l.trimmed_at IS NULL);
    PERFORM pg_notify('nemo_lease_recall', o::text) FROM unnest(recalled) AS o;
    RETURN QUERY SELECT v.op, v.amount,
        CASE WHEN v.refusal = 'funds' AND p_kind[v.op] = 'reserve' AND p_org[v.op] = ANY (recalled) THEN 'funds_leased' ELSE v.refusal END
      FROM unnest(v_op, v_amount, v_refusal) AS v(op, amount, refusal);
  END
  $$;

-- The sweeper, as before, for leases too: an expired lease gives back what it did not charge.
-- (A request's open hold has charged 0, so for it nothing changes.)
CREATE OR REPLACE FUNCTION nemo.ledger_expire_v2(p_limit integer)
  RETURNS integer
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  SET enable_hashjoin = off SET enable_mergejoin = off
  AS $$
  DECLARE
    due_org uuid[];
    due_res uuid[];
    e_org uuid[];
    e_key uuid[];
    e_team uuid[];
    e_counted smallint[];
    e_created timestamptz[];
    e_amount bigint[];
  BEGIN
    SELECT coalesce(array_agg(r.org_id), '{}'), coalesce(array_agg(r.reservation_id), '{}') INTO due_org, due_res
      FROM (SELECT r.org_id, r.reservation_id FROM nemo.reservations r
            WHERE r.state = 'reserved' AND r.expires_at < now() ORDER BY r.expires_at LIMIT p_limit) r;
    IF cardinality(due_org) = 0 THEN
      RETURN 0;
    END IF;
    PERFORM 1 FROM nemo.credit_accounts a
      WHERE a.org_id IN (SELECT DISTINCT o FROM unnest(due_org) AS o)
      ORDER BY a.org_id FOR UPDATE;
    WITH expired AS (
      UPDATE nemo.reservations r SET state = 'expired', closed_at = now()
      FROM unnest(due_org, due_res) AS d(org, res)
      WHERE r.org_id = d.org AND r.reservation_id = d.res AND r.state = 'reserved' AND r.expires_at < now()
      RETURNING r.org_id, r.reservation_id, r.request_id, r.key_id, r.team_id, r.counted_windows, r.created_at, r.amount - r.charged AS back
    ), entries AS (
      INSERT INTO nemo.ledger_entries (org_id, kind, available_delta, held_delta, reservation_id, request_id, key_id)
      SELECT e.org_id, 'expiry', e.back, -e.back, e.reservation_id, e.request_id, e.key_id FROM expired e
    ), accounts AS (
      UPDATE nemo.credit_accounts a SET available = a.available + s.total, held = a.held - s.total, updated_at = now()
      FROM (SELECT e.org_id, sum(e.back) AS total FROM expired e GROUP BY e.org_id) s
      WHERE a.org_id = s.org_id
    )
    SELECT coalesce(array_agg(e.org_id), '{}'), coalesce(array_agg(e.key_id), '{}'), coalesce(array_agg(e.team_id), '{}'),
           coalesce(array_agg(e.counted_windows), '{}'), coalesce(array_agg(e.created_at), '{}'), coalesce(array_agg(e.back), '{}')
      INTO e_org, e_key, e_team, e_counted, e_created, e_amount
      FROM expired e;
    IF EXISTS (SELECT 1 FROM unnest(e_counted) AS x(counted) WHERE x.counted <> 0) THEN
      PERFORM nemo.limit_windows_give_back(e_org, e_key, e_team, e_counted, e_created, e_amount);
    END IF;
    RETURN cardinality(e_org);
  END
  $$;

-- The invariant, checked, with leases: what an open reservation holds is its amount less what was
-- charged against it. No rows: the books balance.
CREATE OR REPLACE FUNCTION nemo.ledger_check()
  RETURNS TABLE (org_id uuid, available bigint, held bigint, ledger_available bigint, ledger_held bigint, open_reservations bigint)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
    SELECT a.org_id, a.available, a.held, COALESCE(l.available, 0), COALESCE(l.held, 0), COALESCE(r.held, 0)
    FROM nemo.credit_accounts a
    LEFT JOIN (SELECT e.org_id, sum(e.available_delta)::bigint AS available, sum(e.held_delta)::bigint AS held FROM nemo.ledger_entries e GROUP BY e.org_id) l
      ON l.org_id = a.org_id
    LEFT JOIN (SELECT x.org_id, sum(x.amount - x.charged)::bigint AS held FROM nemo.reservations x WHERE x.state = 'reserved' GROUP BY x.org_id) r
      ON r.org_id = a.org_id
    WHERE a.available <> COALESCE(l.available, 0) OR a.held <> COALESCE(l.held, 0) OR a.held <> COALESCE(r.held, 0)
       OR a.available < 0 OR a.held < 0
  $$;

-- find_api_key_v4 plus whether the key or its team has a spend cap: such keys take per-request
-- holds (their caps are decided in the transaction that grants the hold), never a lease.
CREATE OR REPLACE FUNCTION nemo.find_api_key_v5(p_key_hash bytea)
  RETURNS TABLE (org_id uuid, key_id uuid, team_id uuid, role text, allowed_models text[],
                 org_allowed_models text[], expires_at timestamptz, revoked_at timestamptz, key_hash bytea,
                 key_rpm_limit integer, key_tpm_limit integer, team_rpm_limit integer, team_tpm_limit integer,
                 org_guardrail_policy jsonb, team_guardrail_policy jsonb, key_guardrail_policy jsonb,
                 logging_level text, log_retention_days integer, spend_capped boolean)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
    SELECT k.org_id, k.key_id, k.team_id, k.role, k.allowed_models, c.allowed_models,
           k.expires_at, k.revoked_at, k.key_hash, k.rpm_limit, k.tpm_limit, t.rpm_limit, t.tpm_limit,
           c.default_guardrail_policy, t.guardrail_policy, k.guardrail_policy,
           coalesce(c.logging_level, 'metadata'), c.log_retention_days,
           num_nonnulls(k.daily_spend_cap_micros, k.monthly_spend_cap_micros, t.daily_spend_cap_micros, t.monthly_spend_cap_micros) > 0
    FROM nemo.api_keys k
    LEFT JOIN nemo.org_config c ON c.org_id = k.org_id
    LEFT JOIN nemo.teams t ON t.org_id = k.org_id AND t.team_id = k.team_id
    WHERE k.key_hash = p_key_hash
  $$;

REVOKE ALL ON FUNCTION nemo.ledger_apply_v3(text[], uuid[], uuid[], uuid[], text[], uuid[], bigint[], bigint[], bigint[], text[], integer, integer),
  nemo.find_api_key_v5(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nemo.ledger_apply_v3(text[], uuid[], uuid[], uuid[], text[], uuid[], bigint[], bigint[], bigint[], text[], integer, integer),
  nemo.find_api_key_v5(bytea) TO nemo_app;
