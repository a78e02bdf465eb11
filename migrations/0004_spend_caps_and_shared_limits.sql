-- Spend caps per key and per team per UTC day and month, and the per-minute rate limits shared by
-- every gateway instance: both decided and counted by the batched writer, in the transaction that
-- grants the org's hold, under the org's account lock. So a request passes only if the org, its
-- key and its key's team all have room, and a limit holds across any number of instances.

ALTER TABLE nemo.api_keys ADD COLUMN IF NOT EXISTS daily_spend_cap_micros bigint CHECK (daily_spend_cap_micros > 0);
ALTER TABLE nemo.api_keys ADD COLUMN IF NOT EXISTS monthly_spend_cap_micros bigint CHECK (monthly_spend_cap_micros > 0);
ALTER TABLE nemo.teams ADD COLUMN IF NOT EXISTS daily_spend_cap_micros bigint CHECK (daily_spend_cap_micros > 0);
ALTER TABLE nemo.teams ADD COLUMN IF NOT EXISTS monthly_spend_cap_micros bigint CHECK (monthly_spend_cap_micros > 0);

-- Which windows a reservation was counted in (bits: 1 key day, 2 key month, 4 team day, 8 team
-- month), so that its settle, release or expiry gives back exactly what it took.
ALTER TABLE nemo.reservations ADD COLUMN IF NOT EXISTS team_id uuid;
ALTER TABLE nemo.reservations ADD COLUMN IF NOT EXISTS counted_windows smallint NOT NULL DEFAULT 0;
-- The public model asked for: usage reports group the charges by it, straight from the ledger's data.
ALTER TABLE nemo.reservations ADD COLUMN IF NOT EXISTS model text CHECK (length(model) <= 256);

-- The current window of each limited scope (a key or a team) per period: a minute counts requests
-- and tokens (rpm/tpm), a day or a month counts spend (held plus charged) of the requests made in
-- it while the scope had a cap. One row per scope and period, reset in place when a new window
-- starts: derived data, never money.
CREATE TABLE IF NOT EXISTS nemo.limit_windows (
  org_id uuid NOT NULL REFERENCES nemo.orgs (org_id),
  scope_id uuid NOT NULL,
  period text NOT NULL CHECK (period IN ('minute', 'day', 'month')),
  window_start timestamptz NOT NULL,
  requests bigint NOT NULL DEFAULT 0 CHECK (requests >= 0),
  tokens bigint NOT NULL DEFAULT 0 CHECK (tokens >= 0),
  spent_micros bigint NOT NULL DEFAULT 0 CHECK (spent_micros >= 0),
  PRIMARY KEY (org_id, scope_id, period)
);
SELECT nemo.enable_tenant_rls('limit_windows');
GRANT SELECT ON nemo.limit_windows TO nemo_app;

-- Gives back what closed reservations had counted in their day and month windows (the hold minus
-- the charge), in the windows they were counted in; a window that has moved on is left alone.
-- Internal: called by ledger_apply_v2 and ledger_expire_v2 with the accounts already locked.
CREATE OR REPLACE FUNCTION nemo.limit_windows_give_back(
  p_org uuid[], p_key uuid[], p_team uuid[], p_counted smallint[], p_created timestamptz[], p_back bigint[])
  RETURNS void
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog SET TimeZone = 'UTC'
  SET enable_hashjoin = off SET enable_mergejoin = off
  AS $$
    -- Never below zero: a window that disagrees with its holds is for ledger check to report, not
    -- a reason to refuse the settlement (which would be retried forever).
    UPDATE nemo.limit_windows w SET spent_micros = GREATEST(w.spent_micros - s.back, 0)
    FROM (
      SELECT c.org, c.scope, c.period, c.start, sum(c.back) AS back
      FROM unnest(p_org, p_key, p_team, p_counted, p_created, p_back) AS x(org, key, team, counted, created, back)
      CROSS JOIN LATERAL (VALUES
        (1, x.key, 'day', date_trunc('day', x.created)), (2, x.key, 'month', date_trunc('month', x.created)),
        (4, x.team, 'day', date_trunc('day', x.created)), (8, x.team, 'month', date_trunc('month', x.created))
      ) AS v(bit, scope, period, start)
      CROSS JOIN LATERAL (SELECT x.org, v.scope, v.period, v.start, x.back) AS c(org, scope, period, start, back)
      WHERE x.counted & v.bit <> 0 AND x.back > 0
      GROUP BY c.org, c.scope, c.period, c.start
    ) s
    WHERE w.org_id = s.org AND w.scope_id = s.scope AND w.period = s.period AND w.window_start = s.start
  $$;

-- One batch of the gateway's operations, in one transaction (the batched writer's only statement).
-- Like ledger_apply, and besides: `admit` (a request that holds nothing: counted against rate
-- limits only), the rate limits and spend caps of each reserve's key and team (read here, so a
-- change applies at once everywhere), p_tokens (each request's token bound, for tpm), p_model (the
-- public model, kept on the reservation for usage reports), and a reason
-- for every refusal: 'funds', 'key_rpm', 'key_tpm', 'team_rpm', 'team_tpm', 'key_daily_cap',
-- 'key_monthly_cap', 'team_daily_cap', 'team_monthly_cap'. Returns a row per reserve and admit
-- (granted amount, 0 when refused or admitted without a hold) and per settle or release that
-- closed its reservation (charged, or returned).
CREATE OR REPLACE FUNCTION nemo.ledger_apply_v2(
  p_kind text[], p_org uuid[], p_reservation uuid[], p_request text[], p_key uuid[],
  p_amount bigint[], p_min_amount bigint[], p_tokens bigint[], p_model text[], p_ttl_ms integer)
  RETURNS TABLE (op integer, amount bigint, refusal text)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog SET TimeZone = 'UTC'
  -- Every join probes an index with at most one batch of rows: nested loops cost O(batch), where a
  -- hash or merge join (row estimates of unnest() are guesses) would read a whole table per batch.
  SET enable_hashjoin = off SET enable_mergejoin = off
  AS $$
  #variable_conflict use_column
  DECLARE
    r record;
    loaded record;
    current_org uuid;
    remaining bigint;
    granted bigint;
    room bigint;
    refused text;
    cap_refusal text;
    counted smallint;
    -- The moment the windows are read, taken once the accounts are locked (below).
    at timestamptz;
    starts timestamptz[];
    -- Checks per window i (1..6): key minute, key day, key month, team minute, team day, team month.
    scope uuid;
    period_no integer;
    limit_a bigint;
    limit_b bigint;
    slot integer[] := '{0,0,0,0,0,0}';
    j integer;
    -- This org's windows touched by the batch (few: loaded on first use).
    w_id text[] := '{}';
    w_scope uuid[] := '{}';
    w_period text[] := '{}';
    w_start timestamptz[] := '{}';
    w_requests bigint[] := '{}';
    w_tokens bigint[] := '{}';
    w_spent bigint[] := '{}';
    -- Every org's windows, written back at the end.
    o_org uuid[] := '{}';
    o_scope uuid[] := '{}';
    o_period text[] := '{}';
    o_start timestamptz[] := '{}';
    o_requests bigint[] := '{}';
    o_tokens bigint[] := '{}';
    o_spent bigint[] := '{}';
    -- Grants and refusals.
    g_op integer[] := '{}';
    g_org uuid[] := '{}';
    g_res uuid[] := '{}';
    g_req text[] := '{}';
    g_key uuid[] := '{}';
    g_team uuid[] := '{}';
    g_model text[] := '{}';
    g_amount bigint[] := '{}';
    g_counted smallint[] := '{}';
    n_op integer[] := '{}';
    n_reason text[] := '{}';
    c_op integer[];
    c_org uuid[];
    c_key uuid[];
    c_team uuid[];
    c_counted smallint[];
    c_created timestamptz[];
    c_held bigint[];
    c_charged bigint[];
    -- Per org: what the settles above give back to available, and take off held.
    b_org uuid[];
    b_back bigint[];
    b_held bigint[];
    -- Orgs whose reserves need the queue-order loop.
    slow_orgs uuid[];
    inserted_count integer;
  BEGIN
    PERFORM 1 FROM nemo.credit_accounts a
      WHERE a.org_id IN (SELECT DISTINCT o FROM unnest(p_org) AS o)
      ORDER BY a.org_id FOR UPDATE;
    -- Windows move under the org's lock, so they are read at a time taken after it: a batch that
    -- started before a minute (day, month) boundary but got the lock after a newer batch must not
    -- count in, or reset, a window older than the one that batch left.
    at := clock_timestamp();
    starts := ARRAY[date_trunc('minute', at), date_trunc('day', at), date_trunc('month', at)];

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
      -- Open, said without the words of the partial index reservations_open_by_expiry, so the plan
      -- probes the primary key per op instead of walking that index.
      WHERE res.org_id = ops.org AND res.reservation_id = ops.res AND res.state <> ALL ('{settled,released,expired}')
      RETURNING ops.op, ops.kind, res.org_id, res.reservation_id, res.request_id, res.key_id, res.team_id,
                res.counted_windows, res.created_at, res.amount AS held, res.charged
    ), entries AS (
      INSERT INTO nemo.ledger_entries (org_id, kind, available_delta, held_delta, charged, reservation_id, request_id, key_id)
      SELECT c.org_id, c.kind, c.held - c.charged, -c.held, c.charged, c.reservation_id, c.request_id, c.key_id FROM closed c
    )
    SELECT coalesce(array_agg(c.op), '{}'), coalesce(array_agg(c.org_id), '{}'), coalesce(array_agg(c.key_id), '{}'),
           coalesce(array_agg(c.team_id), '{}'), coalesce(array_agg(c.counted_windows), '{}'), coalesce(array_agg(c.created_at), '{}'),
           coalesce(array_agg(c.held), '{}'), coalesce(array_agg(c.charged), '{}')
      INTO c_op, c_org, c_key, c_team, c_counted, c_created, c_held, c_charged
      FROM closed c;

    SELECT coalesce(array_agg(s.org_id), '{}'), coalesce(array_agg(s.back), '{}'), coalesce(array_agg(s.held), '{}')
      INTO b_org, b_back, b_held
      FROM (SELECT x.org_id, sum(x.held - x.charged)::bigint AS back, sum(x.held)::bigint AS held
            FROM unnest(c_org, c_held, c_charged) AS x(org_id, held, charged) GROUP BY x.org_id) s;

    IF EXISTS (SELECT 1 FROM unnest(c_counted) AS x(counted) WHERE x.counted <> 0) THEN
      PERFORM nemo.limit_windows_give_back(c_org, c_key, c_team, c_counted, c_created,
        ARRAY(SELECT x.held - x.charged FROM unnest(c_held, c_charged) AS x(held, charged)));
    END IF;

    -- A settle reports what it charged, a release what it returned.
    RETURN QUERY SELECT x.op, CASE WHEN x.charged > 0 THEN x.charged ELSE x.held END, NULL::text
      FROM unnest(c_op, c_held, c_charged) AS x(op, held, charged);

    -- Reserves and admits. The common case is decided set-based: an org whose keys and teams carry
    -- no limit or cap, whose batch holds no repeated id, and whose balance (after the settles
    -- above) covers every reserve in full, is granted everything. The rest take the loop below.
    SELECT coalesce(array_agg(p.org), '{}') INTO slow_orgs
      FROM (SELECT o.org,
                   bool_or(num_nonnulls(k.rpm_limit, k.tpm_limit, k.daily_spend_cap_micros, k.monthly_spend_cap_micros,
                                        t.rpm_limit, t.tpm_limit, t.daily_spend_cap_micros, t.monthly_spend_cap_micros) > 0) AS limited,
                   bool_and(o.kind = 'admit' OR o.amount >= GREATEST(o.min_amount, 1)) AS whole,
                   count(*) = count(DISTINCT o.res) AS distinct_ids,
                   coalesce(sum(o.amount) FILTER (WHERE o.kind = 'reserve'), 0) AS want
            FROM unnest(p_kind, p_org, p_reservation, p_key, p_amount, p_min_amount) AS o(kind, org, res, key, amount, min_amount)
            LEFT JOIN nemo.api_keys k ON k.org_id = o.org AND k.key_id = o.key
            LEFT JOIN nemo.teams t ON t.org_id = k.org_id AND t.team_id = k.team_id
            WHERE o.kind IN ('reserve', 'admit')
            GROUP BY o.org) p
      LEFT JOIN nemo.credit_accounts a ON a.org_id = p.org
      LEFT JOIN unnest(b_org, b_back) AS b(org, back) ON b.org = p.org
      WHERE p.limited OR NOT coalesce(p.whole, false) OR NOT p.distinct_ids
         OR p.want > COALESCE(a.available, 0) + COALESCE(b.back, 0);

    SELECT coalesce(array_agg(o.ord::integer), '{}'), coalesce(array_agg(o.org), '{}'), coalesce(array_agg(o.res), '{}'),
           coalesce(array_agg(o.req), '{}'), coalesce(array_agg(o.key), '{}'), coalesce(array_agg(k.team_id), '{}'), coalesce(array_agg(o.model), '{}'),
           coalesce(array_agg(CASE WHEN o.kind = 'reserve' THEN o.amount ELSE 0 END), '{}'), coalesce(array_agg(0::smallint), '{}')
      INTO g_op, g_org, g_res, g_req, g_key, g_team, g_model, g_amount, g_counted
      FROM unnest(p_kind, p_org, p_reservation, p_request, p_key, p_amount, p_model) WITH ORDINALITY AS o(kind, org, res, req, key, amount, model, ord)
      LEFT JOIN nemo.api_keys k ON k.org_id = o.org AND k.key_id = o.key
      WHERE o.kind IN ('reserve', 'admit') AND o.org <> ALL (slow_orgs)
        -- A reservation id seen before (a retried batch) is not granted twice.
        AND NOT EXISTS (SELECT 1 FROM nemo.reservations x WHERE x.org_id = o.org AND x.reservation_id = o.res);

    -- The loop: reserves and admits of the other orgs, in queue order per org, against the balance
    -- after the settles above and the windows of their key and team. A reservation id given twice
    -- in a batch counts once.
    FOR r IN
      SELECT o.op, o.kind, o.org, o.res, o.req, o.key, o.amount, o.min_amount, o.tokens, o.model, COALESCE(a.available, 0) + COALESCE(b.back, 0) AS available,
             k.team_id AS team, k.rpm_limit AS key_rpm, k.tpm_limit AS key_tpm,
             k.daily_spend_cap_micros AS key_day, k.monthly_spend_cap_micros AS key_month,
             t.rpm_limit AS team_rpm, t.tpm_limit AS team_tpm,
             t.daily_spend_cap_micros AS team_day, t.monthly_spend_cap_micros AS team_month
      FROM (
        SELECT DISTINCT ON (u.org, u.res) u.ord::integer AS op, u.kind, u.org, u.res, u.req, u.key, u.amount, u.min_amount, u.tokens, u.model
        FROM unnest(p_kind, p_org, p_reservation, p_request, p_key, p_amount, p_min_amount, p_tokens, p_model)
               WITH ORDINALITY AS u(kind, org, res, req, key, amount, min_amount, tokens, model, ord)
        WHERE u.kind IN ('reserve', 'admit') AND u.org = ANY (slow_orgs)
        ORDER BY u.org, u.res, u.ord
      ) o
      LEFT JOIN nemo.credit_accounts a ON a.org_id = o.org
      LEFT JOIN unnest(b_org, b_back) AS b(org, back) ON b.org = o.org
      LEFT JOIN nemo.api_keys k ON k.org_id = o.org AND k.key_id = o.key
      LEFT JOIN nemo.teams t ON t.org_id = k.org_id AND t.team_id = k.team_id
      -- A reservation id seen before (a retried batch) is not granted twice.
      WHERE NOT EXISTS (SELECT 1 FROM nemo.reservations x WHERE x.org_id = o.org AND x.reservation_id = o.res)
      ORDER BY o.org, o.op
    LOOP
      IF r.org IS DISTINCT FROM current_org THEN
        o_org := o_org || array_fill(current_org, ARRAY[cardinality(w_id)]);
        o_scope := o_scope || w_scope; o_period := o_period || w_period; o_start := o_start || w_start;
        o_requests := o_requests || w_requests; o_tokens := o_tokens || w_tokens; o_spent := o_spent || w_spent;
        w_id := '{}'; w_scope := '{}'; w_period := '{}'; w_start := '{}'; w_requests := '{}'; w_tokens := '{}'; w_spent := '{}';
        current_org := r.org;
        remaining := COALESCE(r.available, 0);
      END IF;
      refused := NULL;
      cap_refusal := NULL;
      room := remaining;
      counted := 0;
      slot := '{0,0,0,0,0,0}';
      IF num_nonnulls(r.key_rpm, r.key_tpm, r.key_day, r.key_month, r.team_rpm, r.team_tpm, r.team_day, r.team_month) > 0 THEN
        FOR i IN 1..6 LOOP
          scope := CASE WHEN i <= 3 THEN r.key ELSE r.team END;
          period_no := (i - 1) % 3 + 1;
          limit_a := CASE i WHEN 1 THEN r.key_rpm WHEN 2 THEN r.key_day WHEN 3 THEN r.key_month
                            WHEN 4 THEN r.team_rpm WHEN 5 THEN r.team_day ELSE r.team_month END;
          limit_b := CASE i WHEN 1 THEN r.key_tpm WHEN 4 THEN r.team_tpm END;
          CONTINUE WHEN scope IS NULL OR (limit_a IS NULL AND limit_b IS NULL);
          -- Spend caps count holds only: an admit holds nothing.
          CONTINUE WHEN period_no > 1 AND r.kind = 'admit';
          j := array_position(w_id, scope::text || period_no);
          IF j IS NULL THEN
            w_id := w_id || (scope::text || period_no);
            w_scope := w_scope || scope;
            w_period := w_period || (ARRAY['minute', 'day', 'month'])[period_no];
            j := cardinality(w_id);
            SELECT w.window_start, w.requests, w.tokens, w.spent_micros INTO loaded
              FROM nemo.limit_windows w
              WHERE w.org_id = r.org AND w.scope_id = scope AND w.period = w_period[j];
            w_start := w_start || loaded.window_start;
            w_requests := w_requests || loaded.requests;
            w_tokens := w_tokens || loaded.tokens;
            w_spent := w_spent || loaded.spent_micros;
          END IF;
          -- A window only ever moves forward (the server clock going back keeps the newer one).
          IF w_start[j] IS NULL OR w_start[j] < starts[period_no] THEN
            w_start[j] := starts[period_no]; w_requests[j] := 0; w_tokens[j] := 0; w_spent[j] := 0;
          END IF;
          slot[i] := j;
          IF period_no = 1 THEN
            IF limit_a IS NOT NULL AND w_requests[j] + 1 > limit_a THEN
              refused := COALESCE(refused, CASE WHEN i <= 3 THEN 'key_rpm' ELSE 'team_rpm' END);
            ELSIF limit_b IS NOT NULL AND w_tokens[j] + GREATEST(COALESCE(r.tokens, 0), 0) > limit_b THEN
              refused := COALESCE(refused, CASE WHEN i <= 3 THEN 'key_tpm' ELSE 'team_tpm' END);
            END IF;
          ELSIF limit_a - w_spent[j] < room THEN
            room := GREATEST(limit_a - w_spent[j], 0);
            cap_refusal := CASE i WHEN 2 THEN 'key_daily_cap' WHEN 3 THEN 'key_monthly_cap' WHEN 5 THEN 'team_daily_cap' ELSE 'team_monthly_cap' END;
          END IF;
        END LOOP;
      END IF;

      granted := 0;
      IF refused IS NULL AND r.kind = 'reserve' THEN
        granted := LEAST(r.amount, room);
        IF granted < GREATEST(r.min_amount, 1) THEN
          refused := CASE WHEN remaining < GREATEST(r.min_amount, 1) OR cap_refusal IS NULL THEN 'funds' ELSE cap_refusal END;
        END IF;
      END IF;

      IF refused IS NOT NULL THEN
        n_op := n_op || r.op;
        n_reason := n_reason || refused;
        CONTINUE;
      END IF;
      remaining := remaining - granted;
      FOR i IN 1..6 LOOP
        j := slot[i];
        CONTINUE WHEN j = 0;
        IF (i - 1) % 3 = 0 THEN
          w_requests[j] := w_requests[j] + 1;
          w_tokens[j] := w_tokens[j] + GREATEST(COALESCE(r.tokens, 0), 0);
        ELSE
          w_spent[j] := w_spent[j] + granted;
          counted := counted | (CASE i WHEN 2 THEN 1 WHEN 3 THEN 2 WHEN 5 THEN 4 ELSE 8 END);
        END IF;
      END LOOP;
      g_op := g_op || r.op;
      g_org := g_org || r.org;
      g_res := g_res || r.res;
      g_req := g_req || r.req;
      g_key := g_key || r.key;
      g_team := g_team || r.team;
      g_model := g_model || r.model;
      g_amount := g_amount || granted;
      g_counted := g_counted || counted;
    END LOOP;
    o_org := o_org || array_fill(current_org, ARRAY[cardinality(w_id)]);
    o_scope := o_scope || w_scope; o_period := o_period || w_period; o_start := o_start || w_start;
    o_requests := o_requests || w_requests; o_tokens := o_tokens || w_tokens; o_spent := o_spent || w_spent;

    IF cardinality(o_org) > 0 THEN
      INSERT INTO nemo.limit_windows AS w (org_id, scope_id, period, window_start, requests, tokens, spent_micros)
      SELECT * FROM unnest(o_org, o_scope, o_period, o_start, o_requests, o_tokens, o_spent)
      ON CONFLICT (org_id, scope_id, period) DO UPDATE
        SET window_start = excluded.window_start, requests = excluded.requests, tokens = excluded.tokens, spent_micros = excluded.spent_micros;
    END IF;

    RETURN QUERY SELECT x.op, 0::bigint, x.reason FROM unnest(n_op, n_reason) AS x(op, reason);

    -- Every grant in one statement: reservations, their ledger rows, and one update per account
    -- (the settles' give-back and the new holds together).
    WITH grants AS (
      SELECT * FROM unnest(g_org, g_res, g_req, g_key, g_team, g_model, g_amount, g_counted) AS g(org, res, req, key, team, model, amount, counted)
      WHERE g.amount > 0
    ), inserted AS (
      -- created_at is the time the windows were read: a give-back finds the window it counted in.
      INSERT INTO nemo.reservations (org_id, reservation_id, request_id, key_id, team_id, model, counted_windows, state, amount, expires_at, created_at)
      SELECT g.org, g.res, g.req, g.key, g.team, g.model, g.counted, 'reserved', g.amount, now() + make_interval(secs => p_ttl_ms / 1000.0), at
      FROM grants g
      ON CONFLICT (org_id, reservation_id) DO NOTHING
      RETURNING org_id, reservation_id, request_id, key_id, amount
    ), entries AS (
      INSERT INTO nemo.ledger_entries (org_id, kind, available_delta, held_delta, reservation_id, request_id, key_id)
      SELECT i.org_id, 'reserve', -i.amount, i.amount, i.reservation_id, i.request_id, i.key_id FROM inserted i
    ), deltas AS (
      SELECT d.org, sum(d.back) AS back, sum(d.unheld) AS unheld, sum(d.hold) AS hold
      FROM (SELECT b.org, b.back, b.held AS unheld, 0::bigint AS hold FROM unnest(b_org, b_back, b_held) AS b(org, back, held)
            UNION ALL
            SELECT i.org_id, 0, 0, i.amount FROM inserted i) d
      GROUP BY d.org
    ), accounts AS (
      UPDATE nemo.credit_accounts a
      SET available = a.available + d.back - d.hold, held = a.held - d.unheld + d.hold, updated_at = now()
      FROM deltas d
      WHERE a.org_id = d.org
    )
    SELECT count(*)::integer INTO inserted_count FROM inserted;

    -- Every grant was inserted (the ids were checked above), unless another batch raced one in.
    IF inserted_count = (SELECT count(*) FROM unnest(g_amount) AS x(amount) WHERE x.amount > 0) THEN
      RETURN QUERY SELECT g.op, g.amount, NULL::text FROM unnest(g_op, g_amount) AS g(op, amount);
    ELSE
      RETURN QUERY SELECT g.op, g.amount, NULL::text FROM unnest(g_op, g_org, g_res, g_amount) AS g(op, org, res, amount)
        WHERE g.amount = 0 OR EXISTS (SELECT 1 FROM nemo.reservations x
                                      WHERE x.org_id = g.org AND x.reservation_id = g.res AND x.created_at = at AND x.state = 'reserved');
    END IF;
  END
  $$;

-- The sweeper, as ledger_expire, also giving back what expired holds counted against spend caps.
CREATE OR REPLACE FUNCTION nemo.ledger_expire_v2(p_limit integer)
  RETURNS integer
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  -- The due reservations are found through reservations_open_by_expiry; every join after that
  -- probes a primary key (a hash join would read the whole table).
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
      RETURNING r.org_id, r.reservation_id, r.request_id, r.key_id, r.team_id, r.counted_windows, r.created_at, r.amount
    ), entries AS (
      INSERT INTO nemo.ledger_entries (org_id, kind, available_delta, held_delta, reservation_id, request_id, key_id)
      SELECT e.org_id, 'expiry', e.amount, -e.amount, e.reservation_id, e.request_id, e.key_id FROM expired e
    ), accounts AS (
      UPDATE nemo.credit_accounts a SET available = a.available + s.total, held = a.held - s.total, updated_at = now()
      FROM (SELECT e.org_id, sum(e.amount) AS total FROM expired e GROUP BY e.org_id) s
      WHERE a.org_id = s.org_id
    )
    SELECT coalesce(array_agg(e.org_id), '{}'), coalesce(array_agg(e.key_id), '{}'), coalesce(array_agg(e.team_id), '{}'),
           coalesce(array_agg(e.counted_windows), '{}'), coalesce(array_agg(e.created_at), '{}'), coalesce(array_agg(e.amount), '{}')
      INTO e_org, e_key, e_team, e_counted, e_created, e_amount
      FROM expired e;
    IF EXISTS (SELECT 1 FROM unnest(e_counted) AS x(counted) WHERE x.counted <> 0) THEN
      PERFORM nemo.limit_windows_give_back(e_org, e_key, e_team, e_counted, e_created, e_amount);
    END IF;
    RETURN cardinality(e_org);
  END
  $$;

-- The spend windows, checked: every day or month window whose count differs from the requests
-- counted in it (open holds at their amount, settled ones at their charge). No rows: they agree.
CREATE OR REPLACE FUNCTION nemo.limit_windows_check()
  RETURNS TABLE (org_id uuid, scope_id uuid, period text, window_start timestamptz, spent_micros bigint, counted_micros bigint)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = nemo, pg_catalog SET TimeZone = 'UTC'
  AS $$
    WITH counted AS (
      SELECT r.org_id, v.scope, v.period, v.start,
             sum(CASE r.state WHEN 'reserved' THEN r.amount WHEN 'settled' THEN r.charged ELSE 0 END)::bigint AS micros
      FROM nemo.reservations r
      CROSS JOIN LATERAL (VALUES
        (1, r.key_id, 'day', date_trunc('day', r.created_at)), (2, r.key_id, 'month', date_trunc('month', r.created_at)),
        (4, r.team_id, 'day', date_trunc('day', r.created_at)), (8, r.team_id, 'month', date_trunc('month', r.created_at))
      ) AS v(bit, scope, period, start)
      WHERE r.counted_windows & v.bit <> 0
      GROUP BY r.org_id, v.scope, v.period, v.start
    )
    SELECT w.org_id, w.scope_id, w.period, w.window_start, w.spent_micros, COALESCE(c.micros, 0)
    FROM nemo.limit_windows w
    LEFT JOIN counted c ON c.org_id = w.org_id AND c.scope = w.scope_id AND c.period = w.period AND c.start = w.window_start
    WHERE w.period IN ('day', 'month') AND w.spent_micros <> COALESCE(c.micros, 0)
  $$;

-- The v1 entry points, still granted (instances of the previous release call them during a
-- rolling deploy), now go through v2: a hold closed or expired by an old instance gives back what it
-- counted against spend caps, and an old sweeper cannot leave a cap consumed. Same results as
-- before for what v1 knew: granted amounts and closed reservations; refusals return no row.
CREATE OR REPLACE FUNCTION nemo.ledger_apply(
  p_kind text[], p_org uuid[], p_reservation uuid[], p_request text[], p_key uuid[],
  p_amount bigint[], p_min_amount bigint[], p_ttl_ms integer)
  RETURNS TABLE (op integer, amount bigint)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$
    SELECT x.op, x.amount
    FROM nemo.ledger_apply_v2(p_kind, p_org, p_reservation, p_request, p_key, p_amount, p_min_amount,
                              array_fill(0::bigint, ARRAY[cardinality(p_kind)]), array_fill(NULL::text, ARRAY[cardinality(p_kind)]), p_ttl_ms) AS x
    WHERE x.refusal IS NULL AND x.amount > 0
  $$;

CREATE OR REPLACE FUNCTION nemo.ledger_expire(p_limit integer)
  RETURNS integer
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = nemo, pg_catalog
  AS $$ SELECT nemo.ledger_expire_v2(p_limit) $$;

REVOKE ALL ON FUNCTION nemo.limit_windows_give_back(uuid[], uuid[], uuid[], smallint[], timestamptz[], bigint[]),
  nemo.ledger_apply_v2(text[], uuid[], uuid[], text[], uuid[], bigint[], bigint[], bigint[], text[], integer),
  nemo.ledger_expire_v2(integer), nemo.limit_windows_check() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nemo.ledger_apply_v2(text[], uuid[], uuid[], text[], uuid[], bigint[], bigint[], bigint[], text[], integer),
  nemo.ledger_expire_v2(integer), nemo.limit_windows_check() TO nemo_app;
