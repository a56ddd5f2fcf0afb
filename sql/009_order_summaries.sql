-- One summary row per order, kept up to date in the writing transaction, so that the
-- shop's admin pages read smartpay.order_payments by index: the newest orders, by state,
-- the refundable ones, one order. Until now the view computed every order from the
-- ledger before it could sort or filter.
--
-- The summary holds what order_payments derives from smartpay.modifications and
-- smartpay.requests; open alerts and the money in major units are still computed for
-- the rows a query returns. Statement-level triggers with transition tables refresh the
-- orders a statement touched: one refresh per statement, whatever its number of rows.

-- One row per order id with a modification or a request; the columns of
-- smartpay.order_payments (see sql/003_shop_api.sql) in minor units.
CREATE TABLE smartpay.order_summaries (
    order_id             text PRIMARY KEY,
    transaction_id       text,
    currency             text,
    capture_state        text,
    captured_minor       bigint NOT NULL,
    refunded_minor       bigint NOT NULL,
    refund_pending_minor bigint NOT NULL,
    refundable_minor     bigint NOT NULL,
    cancel_state         text,
    cancelled            boolean NOT NULL,
    deadline             timestamptz,
    last_modification_id uuid,
    last_kind            text,
    last_state           text,
    last_at              timestamptz,
    pending_requests     bigint NOT NULL
);

-- The admin grid's query shapes (README, "The shop's side"); order_id breaks ties so a
-- page can continue after its last row.
--   newest N:    ORDER BY last_at DESC, order_id DESC LIMIT n
CREATE INDEX order_summaries_newest
    ON smartpay.order_summaries (last_at DESC, order_id DESC);
--   by state:    WHERE last_state = $1 ORDER BY last_at DESC, order_id DESC LIMIT n
CREATE INDEX order_summaries_by_state
    ON smartpay.order_summaries (last_state, last_at DESC, order_id DESC);
--   refundable:  WHERE refundable_minor > 0 ORDER BY last_at DESC, order_id DESC LIMIT n
CREATE INDEX order_summaries_refundable
    ON smartpay.order_summaries (last_at DESC, order_id DESC) WHERE refundable_minor > 0;

-- The summary rows of the given orders computed from the ledger and the requests, with
-- the rules order_payments had: the live capture (else the latest refused one), the
-- newest modification, the live cancel or cancelOrRefund, the refund totals. No row for
-- an order without a modification or a request.
CREATE FUNCTION smartpay.order_summary_compute(p_order_ids text[])
RETURNS SETOF smartpay.order_summaries
LANGUAGE sql STABLE AS $$
    WITH ids AS (
        SELECT DISTINCT i.order_id FROM unnest(p_order_ids) AS i(order_id)),
    m AS (
        SELECT m.order_id, m.modification_id, m.transaction_id, m.kind, m.amount_minor,
               m.currency, m.state, m.deadline, m.created_at, m.updated_at
        FROM smartpay.modifications m
        WHERE m.order_id = ANY (p_order_ids)),
    r AS (
        SELECT r.order_id,
               count(*) FILTER (WHERE r.modification_id IS NULL) AS pending_requests,
               coalesce(sum(r.amount_minor) FILTER (WHERE r.modification_id IS NULL
                                                      AND r.kind = 'refund'), 0)::bigint
                   AS requested_minor,
               bool_or(r.modification_id IS NULL AND r.kind = 'cancel_or_refund')
                   AS open_cancel_or_refund
        FROM smartpay.requests r
        WHERE r.order_id = ANY (p_order_ids)
        GROUP BY r.order_id),
    cap AS (
        SELECT DISTINCT ON (m.order_id) m.order_id, m.transaction_id, m.currency, m.state,
               m.deadline, CASE WHEN m.state = 'succeeded' THEN m.amount_minor END AS captured_minor
        FROM m WHERE m.kind = 'capture'
        ORDER BY m.order_id, m.state = 'refused', m.created_at DESC, m.modification_id DESC),
    last AS (
        SELECT DISTINCT ON (m.order_id) m.order_id, m.modification_id, m.transaction_id,
               m.currency, m.kind, m.state, m.deadline, m.updated_at
        FROM m
        ORDER BY m.order_id, m.created_at DESC, m.modification_id DESC),
    can AS (
        SELECT DISTINCT ON (m.order_id) m.order_id, m.state
        FROM m WHERE m.kind IN ('cancel', 'cancel_or_refund')
        ORDER BY m.order_id, m.state = 'refused', m.created_at DESC, m.modification_id DESC),
    rf AS (
        SELECT m.order_id,
               coalesce(sum(m.amount_minor) FILTER (WHERE m.state = 'succeeded'), 0)::bigint
                   AS refunded_minor,
               coalesce(sum(m.amount_minor) FILTER (WHERE m.state IN ('pending', 'needs_attention')),
                        0)::bigint AS in_progress_minor
        FROM m WHERE m.kind = 'refund'
        GROUP BY m.order_id)
    SELECT ids.order_id,
           coalesce(cap.transaction_id, last.transaction_id),
           coalesce(cap.currency, last.currency)::text,
           cap.state,
           coalesce(cap.captured_minor, 0),
           CASE WHEN can.state = 'succeeded' AND cap.captured_minor IS NOT NULL
                THEN cap.captured_minor ELSE coalesce(rf.refunded_minor, 0) END,
           coalesce(rf.in_progress_minor, 0) + coalesce(r.requested_minor, 0),
           CASE WHEN cap.captured_minor IS NULL OR can.state IS NOT NULL
                     OR coalesce(r.open_cancel_or_refund, false)
                THEN 0
                ELSE greatest(cap.captured_minor - coalesce(rf.refunded_minor, 0)
                              - coalesce(rf.in_progress_minor, 0)
                              - coalesce(r.requested_minor, 0), 0)
           END,
           can.state,
           coalesce(can.state = 'succeeded', false),
           coalesce(cap.deadline, last.deadline),
           last.modification_id,
           last.kind,
           last.state,
           last.updated_at,
           coalesce(r.pending_requests, 0)
    FROM ids
    LEFT JOIN last ON last.order_id = ids.order_id
    LEFT JOIN cap ON cap.order_id = ids.order_id
    LEFT JOIN can ON can.order_id = ids.order_id
    LEFT JOIN rf ON rf.order_id = ids.order_id
    LEFT JOIN r ON r.order_id = ids.order_id
    WHERE last.order_id IS NOT NULL OR r.order_id IS NOT NULL
$$;

-- The summary is written in the writer's transaction by the functions below, SECURITY
-- DEFINER because the daemon's role and the shop's roles write the ledger and the
-- requests but have no privilege on the summary. Every row set is found through an
-- index (= ANY) and joined by hashing: nested loops are off because the planner,
-- without statistics on a statement's order ids, would rescan one side per row of the
-- other. Each function returns the ids it left to the next one, sorted.
--
-- Correctness under concurrent writers rests on one rule: every refresh writes a new
-- version of each row it keeps, and rewrites a row only if it is still the version its
-- own snapshot computed from. A row another transaction refreshed since then fails that
-- test and is locked and recomputed by a later statement, whose snapshot under READ
-- COMMITTED sees what that transaction committed; so the last writer of an order always
-- leaves the summary as the ledger is. Under REPEATABLE READ and SERIALIZABLE such a row
-- fails with a serialization error instead.

-- Inserts the rows of the given orders that have none yet, as computed; returns the
-- others (an order another transaction is inserting waits for it and is returned).
CREATE FUNCTION smartpay.order_summaries_insert_new(p_order_ids text[]) RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET enable_nestloop = off AS $$
DECLARE
    v_new      text[];
    v_inserted text[];
    v_rest     text[];
BEGIN
    SELECT array_agg(n.order_id) INTO v_new
    FROM (SELECT unnest(p_order_ids)
          EXCEPT
          SELECT x.order_id FROM smartpay.order_summaries x
          WHERE x.order_id = ANY (p_order_ids)) AS n(order_id);
    IF v_new IS NOT NULL THEN
        WITH ins AS (
            INSERT INTO smartpay.order_summaries AS s
            SELECT c.* FROM smartpay.order_summary_compute(v_new) c
            ORDER BY c.order_id
            ON CONFLICT (order_id) DO NOTHING
            RETURNING s.order_id)
        SELECT array_agg(ins.order_id) INTO v_inserted FROM ins;
    END IF;
    SELECT array_agg(e.order_id ORDER BY e.order_id) INTO v_rest
    FROM (SELECT unnest(p_order_ids) EXCEPT SELECT unnest(v_inserted)) AS e(order_id);
    RETURN v_rest;
END
$$;

-- Rewrites the rows of the given orders, computed with this statement's snapshot, where
-- the row is still the version that snapshot sees; returns the orders not rewritten.
-- The rows are locked first, in order_id order, so that two writers of several orders
-- cannot deadlock here; the lock returns the newest version, which must be the one seen.
CREATE FUNCTION smartpay.order_summaries_rewrite(p_order_ids text[]) RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET enable_nestloop = off AS $$
DECLARE
    v_rest text[];
BEGIN
    WITH seen AS (
        SELECT s.order_id, s.ctid AS tid FROM smartpay.order_summaries s
        WHERE s.order_id = ANY (p_order_ids)),
    locked AS MATERIALIZED (
        SELECT s.order_id, s.ctid AS tid FROM smartpay.order_summaries s
        WHERE s.order_id = ANY (p_order_ids)
        ORDER BY s.order_id
        FOR UPDATE),
    c AS (
        SELECT f.*, seen.tid
        FROM smartpay.order_summary_compute(p_order_ids) f
        JOIN seen ON seen.order_id = f.order_id
        JOIN locked ON locked.order_id = f.order_id AND locked.tid = seen.tid),
    upd AS (
        UPDATE smartpay.order_summaries s
        SET transaction_id = c.transaction_id, currency = c.currency,
            capture_state = c.capture_state, captured_minor = c.captured_minor,
            refunded_minor = c.refunded_minor, refund_pending_minor = c.refund_pending_minor,
            refundable_minor = c.refundable_minor, cancel_state = c.cancel_state,
            cancelled = c.cancelled, deadline = c.deadline,
            last_modification_id = c.last_modification_id, last_kind = c.last_kind,
            last_state = c.last_state, last_at = c.last_at,
            pending_requests = c.pending_requests
        FROM c
        WHERE s.order_id = ANY (p_order_ids) AND s.order_id = c.order_id AND s.ctid = c.tid
        RETURNING s.order_id)
    SELECT array_agg(x.order_id ORDER BY x.order_id) INTO v_rest
    FROM (SELECT unnest(p_order_ids) EXCEPT SELECT upd.order_id FROM upd) AS x(order_id);
    RETURN v_rest;
END
$$;

-- Locks the rows of the given orders (in order_id order, so that two writers cannot
-- deadlock here), then recomputes them with a snapshot taken after the lock, deleting
-- the rows of orders left without a modification or a request.
CREATE FUNCTION smartpay.order_summaries_recompute_locked(p_order_ids text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET enable_nestloop = off AS $$
BEGIN
    PERFORM 1 FROM smartpay.order_summaries s
    WHERE s.order_id = ANY (p_order_ids)
    ORDER BY s.order_id
    FOR UPDATE;
    WITH c AS (
        SELECT * FROM smartpay.order_summary_compute(p_order_ids)),
    upd AS (
        UPDATE smartpay.order_summaries s
        SET transaction_id = c.transaction_id, currency = c.currency,
            capture_state = c.capture_state, captured_minor = c.captured_minor,
            refunded_minor = c.refunded_minor, refund_pending_minor = c.refund_pending_minor,
            refundable_minor = c.refundable_minor, cancel_state = c.cancel_state,
            cancelled = c.cancelled, deadline = c.deadline,
            last_modification_id = c.last_modification_id, last_kind = c.last_kind,
            last_state = c.last_state, last_at = c.last_at,
            pending_requests = c.pending_requests
        FROM c
        WHERE s.order_id = ANY (p_order_ids) AND s.order_id = c.order_id)
    DELETE FROM smartpay.order_summaries s
    WHERE s.order_id = ANY (p_order_ids)
      AND NOT EXISTS (SELECT 1 FROM c WHERE c.order_id = s.order_id);
END
$$;

-- Brings the summary rows of the given orders up to date, inside the caller's
-- transaction: new orders inserted, the others rewritten, what a concurrent writer
-- touched meanwhile locked and recomputed. `p_mostly_new` (a statement inserting
-- modifications) tries the insert first; either order gives the same rows.
CREATE FUNCTION smartpay.order_summaries_refresh(p_order_ids text[], p_mostly_new boolean)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_rest text[] := p_order_ids;
BEGIN
    IF p_mostly_new THEN
        v_rest := smartpay.order_summaries_insert_new(v_rest);
        IF v_rest IS NOT NULL THEN
            v_rest := smartpay.order_summaries_rewrite(v_rest);
        END IF;
    ELSE
        v_rest := smartpay.order_summaries_rewrite(v_rest);
        IF v_rest IS NOT NULL THEN
            v_rest := smartpay.order_summaries_insert_new(v_rest);
        END IF;
    END IF;
    IF v_rest IS NOT NULL THEN
        PERFORM smartpay.order_summaries_recompute_locked(v_rest);
    END IF;
END
$$;

-- Recomputes the whole summary from the ledger and the requests: the migration's
-- backfill, and after a TRUNCATE. Concurrent writers wait for it and then refresh their
-- orders over the rebuilt rows.
CREATE FUNCTION smartpay.order_summaries_rebuild() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_ids  text[];
    v_rows bigint;
BEGIN
    LOCK TABLE smartpay.order_summaries IN EXCLUSIVE MODE;
    DELETE FROM smartpay.order_summaries;
    v_ids := ARRAY(SELECT m.order_id FROM smartpay.modifications m
                   UNION
                   SELECT r.order_id FROM smartpay.requests r);
    INSERT INTO smartpay.order_summaries
    SELECT * FROM smartpay.order_summary_compute(v_ids);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;

-- Statement-level trigger function on smartpay.modifications and smartpay.requests:
-- refreshes the orders in the statement's transition tables (new_rows, old_rows).
-- SECURITY DEFINER like the functions it calls, which nobody else may run.
CREATE FUNCTION smartpay.order_summaries_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_ids text[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        v_ids := ARRAY(SELECT DISTINCT n.order_id FROM new_rows n);
    ELSIF TG_OP = 'UPDATE' THEN
        v_ids := ARRAY(SELECT n.order_id FROM new_rows n
                       UNION
                       SELECT o.order_id FROM old_rows o);
    ELSIF TG_OP = 'DELETE' THEN
        v_ids := ARRAY(SELECT DISTINCT o.order_id FROM old_rows o);
    ELSE
        PERFORM smartpay.order_summaries_rebuild();
        RETURN NULL;
    END IF;
    IF cardinality(v_ids) > 0 THEN
        PERFORM smartpay.order_summaries_refresh(
            v_ids, TG_OP = 'INSERT' AND TG_TABLE_NAME = 'modifications');
    END IF;
    RETURN NULL;
END
$$;

REVOKE EXECUTE ON FUNCTION smartpay.order_summaries_insert_new(text[]),
    smartpay.order_summaries_rewrite(text[]),
    smartpay.order_summaries_recompute_locked(text[]),
    smartpay.order_summaries_refresh(text[], boolean),
    smartpay.order_summaries_rebuild() FROM PUBLIC;

-- Transition tables allow one event per trigger: three per table, and one for TRUNCATE.
CREATE TRIGGER order_summaries_insert AFTER INSERT ON smartpay.modifications
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smartpay.order_summaries_changed();
CREATE TRIGGER order_summaries_update AFTER UPDATE ON smartpay.modifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smartpay.order_summaries_changed();
CREATE TRIGGER order_summaries_delete AFTER DELETE ON smartpay.modifications
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smartpay.order_summaries_changed();
CREATE TRIGGER order_summaries_truncate AFTER TRUNCATE ON smartpay.modifications
    FOR EACH STATEMENT EXECUTE FUNCTION smartpay.order_summaries_changed();
CREATE TRIGGER order_summaries_insert AFTER INSERT ON smartpay.requests
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smartpay.order_summaries_changed();
CREATE TRIGGER order_summaries_update AFTER UPDATE ON smartpay.requests
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smartpay.order_summaries_changed();
CREATE TRIGGER order_summaries_delete AFTER DELETE ON smartpay.requests
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smartpay.order_summaries_changed();
CREATE TRIGGER order_summaries_truncate AFTER TRUNCATE ON smartpay.requests
    FOR EACH STATEMENT EXECUTE FUNCTION smartpay.order_summaries_changed();

-- Backfill from the ledger already there.
SELECT smartpay.order_summaries_rebuild();

-- The same columns and meaning as before (sql/003_shop_api.sql), read from the summary:
-- a filter or an ORDER BY on its columns uses the summary's indexes, and the money in
-- major units and the open alerts are computed only for the rows returned.
CREATE OR REPLACE VIEW smartpay.order_payments AS
SELECT s.order_id,
       s.transaction_id,
       s.currency,
       s.capture_state,
       s.captured_minor,
       smartpay.minor_to_numeric(s.captured_minor, s.currency) AS captured,
       s.refunded_minor,
       smartpay.minor_to_numeric(s.refunded_minor, s.currency) AS refunded,
       s.refund_pending_minor,
       smartpay.minor_to_numeric(s.refund_pending_minor, s.currency) AS refund_pending,
       s.refundable_minor,
       smartpay.minor_to_numeric(s.refundable_minor, s.currency) AS refundable,
       s.cancel_state,
       s.cancelled,
       s.deadline,
       s.last_modification_id,
       s.last_kind,
       s.last_state,
       s.last_at,
       (SELECT count(*) FROM smartpay.alerts a
        WHERE a.order_id = s.order_id AND a.acknowledged_at IS NULL) AS open_alerts,
       s.pending_requests
FROM smartpay.order_summaries s;
