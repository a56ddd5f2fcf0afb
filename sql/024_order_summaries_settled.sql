-- The order summary written when a modification settles, not when it is inserted or
-- leased (sql/009, 012, 018): the daemon's intent insert and its lease and retry
-- updates write no summary row; smartpay.order_payments adds the order's pending
-- modification from the ledger.
--
-- An order's "pending head" is its newest modification (created_at, then
-- modification_id, as order_payments' last_* always were) while that modification is
-- pending. The rule the summary keeps is now: an order's summary row reflects every
-- modification of the order (and its requests) except its pending head, which it may or
-- may not reflect. So:
--
-- * A pending row inserted as its order's newest, into an order with no other pending
--   row, writes nothing: every other row of the order is older and not pending, so none
--   was a head and the summary reflects them all already. The same for a pending row
--   updated (lease, attempt, back-off, a requeue) under those conditions. An order's
--   first capture intent is such a row.
-- * Every other write of the ledger or the requests writes the summary as before: from
--   the statement's rows where the order has one modification (now also when the first
--   summary row of an order is written at its modification's outcome), else by the
--   lock-then-recompute refresh of sql/009 and 012, which reflects every row, the
--   pending head too (allowed by the rule).
--
-- smartpay.order_payments reads an order without a pending head from its summary row,
-- and an order with one from the ledger (order_summary_compute of that order, which is
-- what the summary row would be), in the branches of a UNION ALL that each come in
-- last_at order from an index: the summary's grid indexes, and for the pending heads the
-- partial indexes below (last_at is the head's updated_at). So the view's rows,
-- columns and meaning are what they were, and the grid's pages still read an index.
--
-- Concurrency. The fast paths and the refresh serialize the summary's writers of one
-- order on its summary row, as before. A writer that skips the summary writes no such
-- row, and a skip is right only if no other transaction is adding a row to the order
-- that would be newer than the skipped one or not pending: otherwise a pending row whose
-- transaction began earlier (its created_at is older) but commits after another
-- transaction's settled row of the same order would be neither the head nor in the
-- summary. So the statements that may skip (an INSERT, an UPDATE leaving a row pending)
-- and those that may add such a row (an INSERT, an UPDATE of a row that was not pending
-- or that moves a row to another order) first take a transaction-level advisory
-- lock per order; the later one's statements then see what the earlier one committed
-- (READ COMMITTED takes a snapshot per statement): a skipped row is seen by the later
-- recomputation, and a skip that comes second sees the newer row and writes the summary
-- instead. A modification's outcome (pending to settled, in place) takes no lock: while
-- it runs its row is pending to everyone else, so no other statement can skip beside
-- it. Statements of more than 1,024 orders (bulk loads) take one lock for all orders,
-- which the others take shared, so that the lock table (bounded by
-- max_locks_per_transaction) is not filled.

-- The pending modifications in updated_at order: order_payments' pending heads, by the
-- grid's sort key. Refunds apart, so that a page of refundable orders reads only the
-- pending refunds (a pending capture or cancel makes its order not refundable).
CREATE INDEX modifications_pending_recent
    ON smartpay.modifications (updated_at, order_id)
    WHERE state = 'pending' AND kind <> 'refund';
CREATE INDEX modifications_pending_refunds
    ON smartpay.modifications (updated_at, order_id)
    WHERE state = 'pending' AND kind = 'refund';

-- The summary rows of pending orders are written only by a recomputation, not on the
-- daemon's write path any more, so the "by state" index holds them again (sql/012):
-- the page of pending orders finds there the few summary rows that reflect a pending
-- head (order_payments reads those orders from the ledger).
DROP INDEX smartpay.order_summaries_by_state;
CREATE INDEX order_summaries_by_state
    ON smartpay.order_summaries (last_state, last_at, order_id)
    WHERE last_state <> 'succeeded';

-- Takes the advisory locks of the given orders for this transaction: one per order (in
-- key order, so that two writers cannot deadlock here; key 1 is "SmSu", beside
-- smartpay.lock_order's "SmRf"), or, for more than 1,024 orders, the lock that stands
-- for all of them.
CREATE FUNCTION smartpay.order_summaries_lock(p_order_ids text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off AS $$
BEGIN
    IF cardinality(p_order_ids) > 1024 THEN
        PERFORM pg_advisory_xact_lock(7310224135318237024);
    ELSE
        PERFORM pg_advisory_xact_lock_shared(7310224135318237024);
        PERFORM pg_advisory_xact_lock(1399673717, k.key)
        FROM (SELECT DISTINCT hashtext(i.order_id) AS key
              FROM unnest(p_order_ids) AS i(order_id) ORDER BY 1) k;
    END IF;
END
$$;

-- One order's summary computed from the ledger and the requests, pending head included:
-- order_payments' row for an order with a pending head; no row for NULL. SECURITY
-- DEFINER because a function in a view runs with the rights of whoever reads the view,
-- and the shop's roles have none on the ledger. Its cost tells the planner to call it
-- for the rows a page returns, not before their order is known.
CREATE FUNCTION smartpay.order_summary_of(p_order_id text)
RETURNS SETOF smartpay.order_summaries
LANGUAGE sql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
ROWS 1 COST 10000 AS $$
    SELECT * FROM smartpay.order_summary_compute(ARRAY[p_order_id])
$$;

-- Statement-level trigger function on smartpay.modifications and smartpay.requests (as
-- sql/018, with the pending heads skipped). On smartpay.modifications, a statement that
-- may skip a row or add a settled one first locks its orders (order_summaries_lock: an
-- INSERT; an UPDATE leaving a row pending, of a row that was not pending, or moving a
-- row; not an outcome in place), then:
-- * pending rows that are their order's newest modification, in an order with no other
--   pending row, and (an update) still in the same order, are skipped;
-- * a row that is not pending in an order with no summary row inserts the summary row
--   from the statement's row (an intent refused at once, the outcome of an order's only
--   modification) if the order has no other modification (an update in place: none but
--   a pending head, which the summary need not reflect);
-- * a row that is not pending and is its order's only modification, named by a summary
--   row that counts one modification and no open request, rewrites it (an update);
-- * every other order in the transition tables is refreshed from the ledger.
-- A write to smartpay.requests and a DELETE refresh all their orders; a TRUNCATE
-- rebuilds the summary. The probes of the ledger are scalar subqueries, so that they
-- stay index probes of modifications_order_live per row (nested loops are off here).
CREATE OR REPLACE FUNCTION smartpay.order_summaries_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_nestloop = off
SET enable_mergejoin = off SET enable_hashjoin = on SET jit = off
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_rows    bigint;
    v_final   bigint;
    v_skipped uuid[] := '{}';
    v_new     text[] := '{}';
    v_done    text[] := '{}';
    v_ids     text[];
    v_moved   boolean := false;
    v_settled boolean := false;
    v_probe   boolean;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM smartpay.order_summaries_rebuild();
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'modifications' AND TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT count(*), count(*) FILTER (WHERE n.state <> 'pending')
        INTO v_rows, v_final FROM new_rows n;
        IF v_rows = 0 THEN
            RETURN NULL;
        END IF;
        IF TG_OP = 'UPDATE' THEN
            -- rows that were not pending, and rows moved to another order or id (a row
            -- that was pending can change its created_at: every other transaction sees
            -- it pending in its order meanwhile, so none skips beside it)
            SELECT coalesce(bool_or(o.state <> 'pending'), false),
                   coalesce(bool_or(n.modification_id IS NULL OR n.order_id <> o.order_id),
                            false)
            INTO v_settled, v_moved
            FROM old_rows o
            LEFT JOIN new_rows n ON n.modification_id = o.modification_id;
        END IF;
        IF TG_OP = 'INSERT' THEN
            PERFORM smartpay.order_summaries_lock(ARRAY(SELECT n.order_id FROM new_rows n));
        ELSIF v_final < v_rows OR v_settled OR v_moved THEN
            PERFORM smartpay.order_summaries_lock(ARRAY(SELECT n.order_id FROM new_rows n
                                                        UNION ALL
                                                        SELECT o.order_id FROM old_rows o));
        END IF;
        IF v_final < v_rows THEN
            -- the pending heads that need no summary write
            SELECT coalesce(array_agg(n.modification_id), '{}') INTO v_skipped
            FROM new_rows n
            WHERE n.state = 'pending'
              AND (SELECT m.modification_id FROM smartpay.modifications m
                   WHERE m.order_id = n.order_id AND m.modification_id <> n.modification_id
                     AND (m.state = 'pending'
                          OR (m.created_at, m.modification_id)
                             > (n.created_at, n.modification_id))
                   LIMIT 1) IS NULL;
            IF TG_OP = 'UPDATE' AND cardinality(v_skipped) > 0 THEN
                -- a row moved to another order leaves its old order to the refresh
                SELECT coalesce(array_agg(n.modification_id), '{}') INTO v_skipped
                FROM new_rows n
                JOIN unnest(v_skipped) AS k(id) ON k.id = n.modification_id
                JOIN old_rows o ON o.modification_id = n.modification_id
                               AND o.order_id = n.order_id;
            END IF;
            IF cardinality(v_skipped) = v_rows THEN
                RETURN NULL;
            END IF;
        END IF;
        IF v_final > 0 THEN
            -- an order's only modification, settled, and no summary row yet. An order
            -- without a summary row reflects none of its rows, so it has no row but the
            -- one updated here and perhaps its pending head (a newer row, which the
            -- summary need not reflect): the ledger is probed only for a row inserted
            -- (which may be newer than a pending head) or moved
            v_probe := TG_OP = 'INSERT' OR v_moved;
            WITH ins AS (
                INSERT INTO smartpay.order_summaries AS s
                SELECT n.order_id, n.transaction_id, n.currency::text,
                       CASE WHEN n.kind = 'capture' THEN n.state END,
                       CASE WHEN n.kind = 'capture' AND n.state = 'succeeded'
                            THEN coalesce(n.amount_minor, 0) ELSE 0 END,
                       CASE WHEN n.kind = 'refund' AND n.state = 'succeeded'
                            THEN coalesce(n.amount_minor, 0) ELSE 0 END,
                       CASE WHEN n.kind = 'refund' AND n.state = 'needs_attention'
                            THEN coalesce(n.amount_minor, 0) ELSE 0 END,
                       CASE WHEN n.kind = 'capture' AND n.state = 'succeeded'
                            THEN greatest(coalesce(n.amount_minor, 0), 0) ELSE 0 END,
                       CASE WHEN n.kind IN ('cancel', 'cancel_or_refund') THEN n.state END,
                       n.kind IN ('cancel', 'cancel_or_refund') AND n.state = 'succeeded',
                       n.deadline, n.modification_id, n.kind, n.state, n.updated_at, 0, 1
                FROM new_rows n
                WHERE n.state <> 'pending'
                  AND (NOT v_probe
                       OR (SELECT m.modification_id FROM smartpay.modifications m
                           WHERE m.order_id = n.order_id
                             AND m.modification_id <> n.modification_id
                           LIMIT 1) IS NULL)
                ORDER BY n.order_id
                ON CONFLICT (order_id) DO NOTHING
                RETURNING s.order_id)
            SELECT coalesce(array_agg(ins.order_id), '{}') INTO v_new FROM ins;
            IF cardinality(v_new) + cardinality(v_skipped) = v_rows AND NOT v_moved THEN
                RETURN NULL;
            END IF;
        END IF;
        IF TG_OP = 'UPDATE' AND v_final > cardinality(v_new) THEN
            -- an order's only modification, settled, named by its summary row
            WITH upd AS (
                UPDATE smartpay.order_summaries s
                SET transaction_id = n.transaction_id, currency = n.currency::text,
                    capture_state = CASE WHEN n.kind = 'capture' THEN n.state END,
                    captured_minor = CASE WHEN n.kind = 'capture' AND n.state = 'succeeded'
                                          THEN coalesce(n.amount_minor, 0) ELSE 0 END,
                    refunded_minor = CASE WHEN n.kind = 'refund' AND n.state = 'succeeded'
                                          THEN coalesce(n.amount_minor, 0) ELSE 0 END,
                    refund_pending_minor =
                        CASE WHEN n.kind = 'refund' AND n.state = 'needs_attention'
                             THEN coalesce(n.amount_minor, 0) ELSE 0 END,
                    refundable_minor = CASE WHEN n.kind = 'capture' AND n.state = 'succeeded'
                                            THEN greatest(coalesce(n.amount_minor, 0), 0)
                                            ELSE 0 END,
                    cancel_state = CASE WHEN n.kind IN ('cancel', 'cancel_or_refund')
                                        THEN n.state END,
                    cancelled = n.kind IN ('cancel', 'cancel_or_refund')
                                AND n.state = 'succeeded',
                    deadline = n.deadline, last_kind = n.kind, last_state = n.state,
                    last_at = n.updated_at
                FROM new_rows n
                WHERE s.order_id = ANY (ARRAY(SELECT o.order_id FROM new_rows o
                                              WHERE o.state <> 'pending'
                                              EXCEPT
                                              SELECT unnest(v_new)
                                              ORDER BY 1))
                  AND s.order_id = n.order_id AND n.state <> 'pending'
                  AND s.modifications = 1
                  AND s.last_modification_id = n.modification_id AND s.pending_requests = 0
                RETURNING s.order_id)
            SELECT coalesce(array_agg(upd.order_id), '{}') INTO v_done FROM upd;
        END IF;
        -- left: the orders not written nor skipped, those with more than one row here
        -- (written from one of them), and those a row moved away from
        IF TG_OP = 'INSERT' THEN
            SELECT ARRAY(
                SELECT n.order_id FROM new_rows n
                LEFT JOIN unnest(v_skipped) AS k(id) ON k.id = n.modification_id
                WHERE k.id IS NULL
                EXCEPT
                SELECT unnest(v_new)
                ORDER BY 1)
            INTO v_ids;
        ELSE
            SELECT ARRAY(
                SELECT a.order_id FROM (
                    SELECT o.order_id FROM old_rows o
                    LEFT JOIN unnest(v_skipped) AS k(id) ON k.id = o.modification_id
                    WHERE k.id IS NULL
                    UNION
                    SELECT n.order_id FROM new_rows n
                    LEFT JOIN unnest(v_skipped) AS k(id) ON k.id = n.modification_id
                    WHERE k.id IS NULL) a
                EXCEPT
                SELECT unnest(v_new)
                EXCEPT
                SELECT n.order_id FROM new_rows n
                WHERE n.order_id = ANY (v_done)
                GROUP BY n.order_id HAVING count(*) = 1
                ORDER BY 1)
            INTO v_ids;
        END IF;
    ELSIF TG_OP = 'INSERT' THEN
        v_ids := ARRAY(SELECT DISTINCT n.order_id FROM new_rows n);
    ELSIF TG_OP = 'UPDATE' THEN
        v_ids := ARRAY(SELECT n.order_id FROM new_rows n
                       UNION
                       SELECT o.order_id FROM old_rows o);
    ELSE
        v_ids := ARRAY(SELECT DISTINCT o.order_id FROM old_rows o);
    END IF;
    IF cardinality(v_ids) > 0 THEN
        PERFORM smartpay.order_summaries_refresh(
            v_ids, TG_OP = 'INSERT' AND TG_TABLE_NAME = 'modifications');
    END IF;
    RETURN NULL;
END
$$;

REVOKE EXECUTE ON FUNCTION smartpay.order_summaries_lock(text[]) FROM PUBLIC;

-- The same columns and meaning as before (sql/003, sql/009). The orders without a
-- pending head come from their summary row; those with one from the ledger: the head's
-- own columns (last_*, the grid's sort key) from its row, the rest computed for the rows
-- returned (order_summary_of, joined after the pages are merged). The union's branches
-- have no WHERE of their own (a UNION ALL branch with one is planned apart, without the
-- page's order and LIMIT): which rows a branch shows is its column `shown`, which the
-- outer WHERE turns into each branch's filter, where a partial index can match it. So
-- each branch comes in (last_at, order_id) order from an index (the summary's grid
-- indexes; modifications_pending_recent, modifications_pending_refunds), an ORDER BY
-- last_at DESC, order_id DESC LIMIT n merges them, and a filter a branch cannot meet
-- (a state other than pending, refundable_minor > 0 on a pending capture or cancel,
-- which makes its order not refundable) removes the branch from the plan: a head's
-- last_state is the constant 'pending' (what `shown` requires of it) and a pending
-- capture's or cancel's refundable_minor the constant 0; a pending refund's is computed
-- in its branch. The summary's branch probes each row for a pending head (the order's
-- newest modification, read by modifications_order_live); the other columns of a head's
-- order are order_summary_of's, called only for the rows that come from the ledger (its
-- argument is NULL for the others, and it is STRICT).
CREATE OR REPLACE VIEW smartpay.order_payments AS
SELECT u.order_id,
       CASE WHEN u.summary THEN u.transaction_id ELSE c.transaction_id END AS transaction_id,
       CASE WHEN u.summary THEN u.currency ELSE c.currency END AS currency,
       CASE WHEN u.summary THEN u.capture_state ELSE c.capture_state END AS capture_state,
       CASE WHEN u.summary THEN u.captured_minor ELSE c.captured_minor END AS captured_minor,
       CASE WHEN u.summary THEN smartpay.minor_to_numeric(u.captured_minor, u.currency)
            ELSE smartpay.minor_to_numeric(c.captured_minor, c.currency) END AS captured,
       CASE WHEN u.summary THEN u.refunded_minor ELSE c.refunded_minor END AS refunded_minor,
       CASE WHEN u.summary THEN smartpay.minor_to_numeric(u.refunded_minor, u.currency)
            ELSE smartpay.minor_to_numeric(c.refunded_minor, c.currency) END AS refunded,
       CASE WHEN u.summary THEN u.refund_pending_minor ELSE c.refund_pending_minor END
           AS refund_pending_minor,
       CASE WHEN u.summary THEN smartpay.minor_to_numeric(u.refund_pending_minor, u.currency)
            ELSE smartpay.minor_to_numeric(c.refund_pending_minor, c.currency) END
           AS refund_pending,
       u.refundable_minor,
       u.refundable,
       CASE WHEN u.summary THEN u.cancel_state ELSE c.cancel_state END AS cancel_state,
       CASE WHEN u.summary THEN u.cancelled ELSE c.cancelled END AS cancelled,
       CASE WHEN u.summary THEN u.deadline ELSE c.deadline END AS deadline,
       u.last_modification_id,
       u.last_kind,
       u.last_state,
       u.last_at,
       (SELECT count(*) FROM smartpay.alerts a
        WHERE a.order_id = u.order_id AND a.acknowledged_at IS NULL) AS open_alerts,
       CASE WHEN u.summary THEN u.pending_requests ELSE c.pending_requests END
           AS pending_requests
FROM (
    SELECT s.order_id, true AS summary, s.transaction_id, s.currency, s.capture_state,
           s.captured_minor, s.refunded_minor, s.refund_pending_minor, s.refundable_minor,
           smartpay.minor_to_numeric(s.refundable_minor, s.currency) AS refundable,
           s.cancel_state, s.cancelled, s.deadline, s.last_modification_id, s.last_kind,
           s.last_state, s.last_at, s.pending_requests,
           (SELECT m.state FROM smartpay.modifications m
            WHERE m.order_id = s.order_id
            ORDER BY m.created_at DESC, m.modification_id DESC
            LIMIT 1) IS DISTINCT FROM 'pending' AS shown
    FROM smartpay.order_summaries s
    UNION ALL
    SELECT p.order_id, false, NULL::text, NULL::text, NULL::text, NULL::bigint, NULL::bigint,
           NULL::bigint, 0::bigint, smartpay.minor_to_numeric(0, p.currency::text),
           NULL::text, NULL::boolean, NULL::timestamptz, p.modification_id, p.kind,
           'pending'::text, p.updated_at, NULL::bigint,
           p.state = 'pending' AND p.kind <> 'refund'
           AND NOT EXISTS (SELECT 1 FROM smartpay.modifications q
                           WHERE q.order_id = p.order_id
                             AND (q.created_at, q.modification_id)
                                 > (p.created_at, p.modification_id))
    FROM smartpay.modifications p
    UNION ALL
    SELECT p.order_id, false, NULL::text, NULL::text, NULL::text, NULL::bigint, NULL::bigint,
           NULL::bigint,
           (SELECT c.refundable_minor FROM smartpay.order_summary_of(p.order_id) c),
           (SELECT smartpay.minor_to_numeric(c.refundable_minor, c.currency)
            FROM smartpay.order_summary_of(p.order_id) c),
           NULL::text, NULL::boolean, NULL::timestamptz, p.modification_id, p.kind,
           'pending'::text, p.updated_at, NULL::bigint,
           p.state = 'pending' AND p.kind = 'refund'
           AND NOT EXISTS (SELECT 1 FROM smartpay.modifications q
                           WHERE q.order_id = p.order_id
                             AND (q.created_at, q.modification_id)
                                 > (p.created_at, p.modification_id))
    FROM smartpay.modifications p) u
LEFT JOIN LATERAL smartpay.order_summary_of(CASE WHEN NOT u.summary THEN u.order_id END) c
       ON true
WHERE u.shown;
