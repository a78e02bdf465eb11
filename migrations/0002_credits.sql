-- Credits: prepaid balances in integer micro-units, an append-only ledger, and per-request
-- reservations. Every change of a balance writes its ledger row in the same transaction, so for
-- every account: available = sum(available_delta), held = sum(held_delta) = open reservations.

CREATE TABLE IF NOT EXISTS nemo.credit_accounts (
  org_id uuid PRIMARY KEY REFERENCES nemo.orgs (org_id),
  available bigint NOT NULL DEFAULT 0 CHECK (available >= 0),
  held bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS nemo.ledger_entries (
  org_id uuid NOT NULL REFERENCES nemo.orgs (org_id),
  entry_id bigint GENERATED ALWAYS AS IDENTITY,
  kind text NOT NULL CHECK (kind IN ('topup', 'reserve', 'settle', 'release', 'refund', 'adjustment', 'expiry')),
  available_delta bigint NOT NULL,
  held_delta bigint NOT NULL,
  -- What left the system for good (settle): the actual charge.
  charged bigint NOT NULL DEFAULT 0 CHECK (charged >= 0),
  reservation_id uuid,
  request_id text,
  key_id uuid,
  idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
  note text CHECK (length(note) <= 1000),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, entry_id)
);
-- A money operation repeated with the same idempotency key applies once.
CREATE UNIQUE INDEX IF NOT EXISTS ledger_entries_idempotency ON nemo.ledger_entries (org_id, kind, idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE IF NOT EXISTS nemo.reservations (
  org_id uuid NOT NULL REFERENCES nemo.orgs (org_id),
  reservation_id uuid NOT NULL,
  request_id text,
  key_id uuid,
  state text NOT NULL CHECK (state IN ('reserved', 'settled', 'released', 'expired')),
  amount bigint NOT NULL CHECK (amount > 0),
  charged bigint NOT NULL DEFAULT 0 CHECK (charged >= 0 AND charged <= amount),
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  closed_at timestamptz,
  PRIMARY KEY (org_id, reservation_id)
);
CREATE INDEX IF NOT EXISTS reservations_open_by_expiry ON nemo.reservations (expires_at) WHERE state = 'reserved';

SELECT nemo.enable_tenant_rls(t) FROM unnest(ARRAY['credit_accounts', 'ledger_entries', 'reservations']) AS t;

-- The app role reads its org's money under RLS; balances and the ledger change only through the
-- functions below, which write both in one transaction. It never updates or deletes ledger rows
-- (nor appends one on its own, which could only put an account out of balance).
GRANT SELECT ON nemo.credit_accounts, nemo.reservations, nemo.ledger_entries TO nemo_app;

-- The second wall: not even the owner rewrites history.
CREATE OR REPLACE FUNCTION nemo.ledger_is_append_only() RETURNS trigger
  LANGUAGE plpgsql
  AS $$
  BEGIN
    RAISE EXCEPTION 'nemo.ledger_entries is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
  END
  $$;
CREATE OR REPLACE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON nemo.ledger_entries
  FOR EACH ROW EXECUTE FUNCTION nemo.ledger_is_append_only();
CREATE OR REPLACE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON nemo.ledger_entries
  FOR EACH STATEMENT EXECUTE FUNCTION nemo.ledger_is_append_only();

-- Every org has an account from its creation on.
CREATE OR REPLACE FUNCTION nemo.create_org(p_org_id uuid, p_name text)
  RETURNS SETOF nemo.orgs
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
    WITH org AS (
      INSERT INTO nemo.orgs (org_id, name) VALUES (p_org_id, p_name) RETURNING *
    ), config AS (
      INSERT INTO nemo.org_config (org_id) SELECT org_id FROM org
    ), account AS (
      INSERT INTO nemo.credit_accounts (org_id) SELECT org_id FROM org
    )
    SELECT * FROM org
  $$;
INSERT INTO nemo.credit_accounts (org_id) SELECT org_id FROM nemo.orgs ON CONFLICT (org_id) DO NOTHING;

-- One batch of the gateway's reserve/settle/release operations, in one transaction: the batched
-- writer's only statement. Accounts are locked first, in org order (no deadlock between
-- instances), then settles and releases return money, then reserves are granted in queue order
-- per org until the balance runs out. A reserve asks for up to p_amount and accepts no less than
-- p_min_amount. Returns, per operation (by its 1-based position), the amount granted or settled
-- (0: refused, or a settle/release of a reservation that is no longer open).
CREATE OR REPLACE FUNCTION nemo.ledger_apply(
  p_kind text[], p_org uuid[], p_reservation uuid[], p_request text[], p_key uuid[],
  p_amount bigint[], p_min_amount bigint[], p_ttl_ms integer)
  RETURNS TABLE (op integer, amount bigint)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  -- Row estimates of unnest() and CTEs are guesses; nested loops over a thousand ops would be quadratic.
  SET enable_nestloop = off
  AS $$
  #variable_conflict use_column
  DECLARE
    r record;
    current_org uuid;
    remaining bigint;
    granted bigint;
    g_op integer[] := '{}';
    g_org uuid[] := '{}';
    g_res uuid[] := '{}';
    g_req text[] := '{}';
    g_key uuid[] := '{}';
    g_amount bigint[] := '{}';
    c_op integer[];
    c_org uuid[];
    c_held bigint[];
    c_charged bigint[];
  BEGIN
    PERFORM 1 FROM nemo.credit_accounts a
      WHERE a.org_id IN (SELECT DISTINCT o FROM unnest(p_org) AS o)
      ORDER BY a.org_id FOR UPDATE;

    -- Settles and releases: close open reservations; a settle charges at most what was held.
    WITH ops AS (
      SELECT o.kind, o.org, o.res, o.amount, o.ord::integer AS op
      FROM unnest(p_kind, p_org, p_reservation, p_amount) WITH ORDINALITY AS o(kind, org, res, amount, ord)
      WHERE o.kind IN ('settle', 'release')
    ), closed AS (
      UPDATE nemo.reservations res
      SET state = CASE WHEN ops.kind = 'settle' THEN 'settled' ELSE 'released' END,
          charged = CASE WHEN ops.kind = 'settle' THEN LEAST(GREATEST(ops.amount, 0), res.amount) ELSE 0 END,
          closed_at = now()
      FROM ops
      WHERE res.org_id = ops.org AND res.reservation_id = ops.res AND res.state = 'reserved'
      RETURNING ops.op, ops.kind, res.org_id, res.reservation_id, res.request_id, res.key_id, res.amount AS held, res.charged
    ), entries AS (
      INSERT INTO nemo.ledger_entries (org_id, kind, available_delta, held_delta, charged, reservation_id, request_id, key_id)
      SELECT c.org_id, c.kind, c.held - c.charged, -c.held, c.charged, c.reservation_id, c.request_id, c.key_id FROM closed c
    )
    SELECT coalesce(array_agg(c.op), '{}'), coalesce(array_agg(c.org_id), '{}'), coalesce(array_agg(c.held), '{}'), coalesce(array_agg(c.charged), '{}')
      INTO c_op, c_org, c_held, c_charged
      FROM closed c;

    UPDATE nemo.credit_accounts a
    SET available = a.available + s.back, held = a.held - s.held, updated_at = now()
    FROM (SELECT x.org_id, sum(x.held - x.charged) AS back, sum(x.held) AS held
          FROM unnest(c_org, c_held, c_charged) AS x(org_id, held, charged) GROUP BY x.org_id) s
    WHERE a.org_id = s.org_id;

    -- A settle reports what it charged, a release what it returned.
    RETURN QUERY SELECT x.op, CASE WHEN x.charged > 0 THEN x.charged ELSE x.held END
      FROM unnest(c_op, c_held, c_charged) AS x(op, held, charged);

    -- Reserves, in queue order per org, against the balance after the settles above.
    FOR r IN
      SELECT o.ord::integer AS op, o.org, o.res, o.req, o.key, o.amount, o.min_amount, a.available
      FROM unnest(p_kind, p_org, p_reservation, p_request, p_key, p_amount, p_min_amount)
             WITH ORDINALITY AS o(kind, org, res, req, key, amount, min_amount, ord)
      LEFT JOIN nemo.credit_accounts a ON a.org_id = o.org
      WHERE o.kind = 'reserve'
        -- A reservation id seen before (a retried batch) is not granted twice.
        AND NOT EXISTS (SELECT 1 FROM nemo.reservations x WHERE x.org_id = o.org AND x.reservation_id = o.res)
      ORDER BY o.org, o.ord
    LOOP
      IF r.org IS DISTINCT FROM current_org THEN
        current_org := r.org;
        remaining := COALESCE(r.available, 0);
      END IF;
      -- Nor twice within one batch.
      CONTINUE WHEN r.res = ANY (g_res) AND EXISTS (SELECT 1 FROM unnest(g_org, g_res) AS g(org, res) WHERE g.org = r.org AND g.res = r.res);
      granted := LEAST(r.amount, remaining);
      IF granted >= GREATEST(r.min_amount, 1) THEN
        remaining := remaining - granted;
        g_op := g_op || r.op;
        g_org := g_org || r.org;
        g_res := g_res || r.res;
        g_req := g_req || r.req;
        g_key := g_key || r.key;
        g_amount := g_amount || granted;
      END IF;
    END LOOP;

    RETURN QUERY
    WITH grants AS (
      SELECT * FROM unnest(g_op, g_org, g_res, g_req, g_key, g_amount) AS g(op, org, res, req, key, amount)
    ), inserted AS (
      -- A reservation id seen before (a retried batch) is not granted twice.
      INSERT INTO nemo.reservations (org_id, reservation_id, request_id, key_id, state, amount, expires_at)
      SELECT g.org, g.res, g.req, g.key, 'reserved', g.amount, now() + make_interval(secs => p_ttl_ms / 1000.0)
      FROM grants g
      ON CONFLICT (org_id, reservation_id) DO NOTHING
      RETURNING org_id, reservation_id, request_id, key_id, amount
    ), entries AS (
      INSERT INTO nemo.ledger_entries (org_id, kind, available_delta, held_delta, reservation_id, request_id, key_id)
      SELECT i.org_id, 'reserve', -i.amount, i.amount, i.reservation_id, i.request_id, i.key_id FROM inserted i
    ), accounts AS (
      UPDATE nemo.credit_accounts a
      SET available = a.available - s.total, held = a.held + s.total, updated_at = now()
      FROM (SELECT i.org_id, sum(i.amount) AS total FROM inserted i GROUP BY i.org_id) s
      WHERE a.org_id = s.org_id
    )
    SELECT g.op, g.amount FROM grants g JOIN inserted i ON i.org_id = g.org AND i.reservation_id = g.res;
  END
  $$;

-- The sweeper: releases holds whose reservation expired (a crashed gateway), with an `expiry`
-- ledger row. Safe on many instances: accounts are locked in org order like the batch, and a
-- reservation closed meanwhile is left alone. Returns how many were released.
CREATE OR REPLACE FUNCTION nemo.ledger_expire(p_limit integer)
  RETURNS integer
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
  DECLARE
    due_org uuid[];
    due_res uuid[];
    released integer;
  BEGIN
    -- The candidates first, unlocked; then their accounts in org order, as a batch locks them;
    -- then the reservations, re-checked, since a batch may have closed some meanwhile.
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
      RETURNING r.org_id, r.reservation_id, r.request_id, r.key_id, r.amount
    ), entries AS (
      INSERT INTO nemo.ledger_entries (org_id, kind, available_delta, held_delta, reservation_id, request_id, key_id)
      SELECT e.org_id, 'expiry', e.amount, -e.amount, e.reservation_id, e.request_id, e.key_id FROM expired e
    ), accounts AS (
      UPDATE nemo.credit_accounts a SET available = a.available + s.total, held = a.held - s.total, updated_at = now()
      FROM (SELECT e.org_id, sum(e.amount) AS total FROM expired e GROUP BY e.org_id) s
      WHERE a.org_id = s.org_id
    )
    SELECT count(*)::integer INTO released FROM expired;
    RETURN released;
  END
  $$;

-- Holds of requests still running are renewed by their gateway (a crashed one stops renewing, so
-- its holds expire). Rows being closed right now are skipped, not waited for: no lock cycles with
-- a batch. Returns how many were renewed.
CREATE OR REPLACE FUNCTION nemo.ledger_renew(p_org uuid[], p_reservation uuid[], p_ttl_ms integer)
  RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
    WITH live AS (
      SELECT r.org_id, r.reservation_id FROM nemo.reservations r
      JOIN unnest(p_org, p_reservation) AS x(org, res) ON r.org_id = x.org AND r.reservation_id = x.res
      WHERE r.state = 'reserved'
      FOR UPDATE OF r SKIP LOCKED
    ), renewed AS (
      UPDATE nemo.reservations r SET expires_at = now() + make_interval(secs => p_ttl_ms / 1000.0)
      FROM live WHERE r.org_id = live.org_id AND r.reservation_id = live.reservation_id
      RETURNING 1
    )
    SELECT count(*)::integer FROM renewed
  $$;

-- Top-ups, refunds and adjustments (the platform's money admin), idempotent by key. Returns the
-- entry and whether this call created it (false: the same idempotency key was applied before).
CREATE OR REPLACE FUNCTION nemo.ledger_credit(p_org uuid, p_kind text, p_amount bigint, p_idempotency_key text, p_note text)
  RETURNS TABLE (entry_id bigint, created boolean, available bigint, held bigint)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
  #variable_conflict use_column
  DECLARE
    new_entry bigint;
  BEGIN
    IF p_kind NOT IN ('topup', 'refund', 'adjustment') THEN
      RAISE EXCEPTION 'ledger_credit: kind % is not a credit', p_kind USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_kind <> 'adjustment' AND p_amount <= 0 THEN
      RAISE EXCEPTION 'ledger_credit: % amount must be positive', p_kind USING ERRCODE = 'check_violation';
    END IF;
    PERFORM 1 FROM nemo.credit_accounts a WHERE a.org_id = p_org FOR UPDATE;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'ledger_credit: no such org' USING ERRCODE = 'foreign_key_violation';
    END IF;
    INSERT INTO nemo.ledger_entries (org_id, kind, available_delta, held_delta, idempotency_key, note)
    VALUES (p_org, p_kind, p_amount, 0, p_idempotency_key, p_note)
    ON CONFLICT (org_id, kind, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING ledger_entries.entry_id INTO new_entry;
    IF new_entry IS NOT NULL THEN
      -- The CHECK (available >= 0) refuses an adjustment below zero, and the whole call with it.
      UPDATE nemo.credit_accounts a SET available = a.available + p_amount, updated_at = now() WHERE a.org_id = p_org;
      RETURN QUERY SELECT new_entry, true, a.available, a.held FROM nemo.credit_accounts a WHERE a.org_id = p_org;
    ELSE
      RETURN QUERY SELECT e.entry_id, false, a.available, a.held
        FROM nemo.ledger_entries e JOIN nemo.credit_accounts a ON a.org_id = e.org_id
        WHERE e.org_id = p_org AND e.kind = p_kind AND e.idempotency_key = p_idempotency_key;
    END IF;
  END
  $$;

-- The invariant, checked: every account whose balances differ from its ledger or its open
-- reservations, or that is negative. No rows: the books balance.
CREATE OR REPLACE FUNCTION nemo.ledger_check()
  RETURNS TABLE (org_id uuid, available bigint, held bigint, ledger_available bigint, ledger_held bigint, open_reservations bigint)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
    SELECT a.org_id, a.available, a.held, COALESCE(l.available, 0), COALESCE(l.held, 0), COALESCE(r.held, 0)
    FROM nemo.credit_accounts a
    LEFT JOIN (SELECT e.org_id, sum(e.available_delta)::bigint AS available, sum(e.held_delta)::bigint AS held FROM nemo.ledger_entries e GROUP BY e.org_id) l
      ON l.org_id = a.org_id
    LEFT JOIN (SELECT x.org_id, sum(x.amount)::bigint AS held FROM nemo.reservations x WHERE x.state = 'reserved' GROUP BY x.org_id) r
      ON r.org_id = a.org_id
    WHERE a.available <> COALESCE(l.available, 0) OR a.held <> COALESCE(l.held, 0) OR a.held <> COALESCE(r.held, 0)
       OR a.available < 0 OR a.held < 0
  $$;

REVOKE ALL ON FUNCTION nemo.ledger_apply(text[], uuid[], uuid[], text[], uuid[], bigint[], bigint[], integer),
  nemo.ledger_expire(integer), nemo.ledger_renew(uuid[], uuid[], integer), nemo.ledger_credit(uuid, text, bigint, text, text), nemo.ledger_check() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nemo.ledger_apply(text[], uuid[], uuid[], text[], uuid[], bigint[], bigint[], integer),
  nemo.ledger_expire(integer), nemo.ledger_renew(uuid[], uuid[], integer), nemo.ledger_credit(uuid, text, bigint, text, text), nemo.ledger_check() TO nemo_app;
