-- The order summaries' upkeep on the daemon's write path made cheaper
-- (sql/012_order_summaries_delta.sql wrote them from the statement's rows).
--
-- Per capture the summary row is written twice, at the intent insert and at the outcome
-- update, from the statement-level triggers' transition tables. Measured per row
-- (bench/README.md, "The order summary on the write path"), the rows' own writes (heap,
-- primary key, grid indexes) are most of the cost; the trigger's bookkeeping around them
-- was a window count over the statement's rows (a sort of the ledger's wide rows,
-- request and answer bodies included) to find the orders with one row in the
-- statement, and a UNION/EXCEPT of both transition tables to find what was left for
-- the refresh. Both are now done only when they are needed:
--
-- * The fast paths (an order's first modification inserted, its only modification
--   updated) write the summary from new_rows without counting rows per order first,
--   and compare the number of summary rows written with the number of ledger rows in
--   the statement. When they are equal every ledger row wrote its order's summary row
--   and no order had two rows in the statement (an order's second row conflicts with
--   its first in the insert; in the update the summary row is written once for both,
--   so the count falls short), so nothing is left for the refresh: the common case
--   reads neither old_rows nor the summary again.
-- * Otherwise the orders left are found as before: those not written, and those with
--   more than one row in the statement (written from one of them), and, for an update,
--   every order in old_rows that is not among those written (a row moved away from
--   it). An update's written orders come from the statement's RETURNING; an insert's
--   are the summary rows that name one of the inserted modifications as the newest,
--   which only this statement can have written (the modification is new and not
--   committed); an order with several rows here has a row its summary row does not
--   name, so it is left too.
-- * A statement that changed no ledger row returns at once (the follow-up mark, an
--   UPDATE inside every intent insert of the daemon, usually changes none).
--
-- A moved row cannot be counted as written: an order's summary row names a
-- modification as its only one only while the ledger has it in that order, and the
-- moving statement holds that modification's row lock until it commits. So the
-- concurrency argument of sql/012 holds unchanged: every writer writes a new version of
-- each summary row it keeps, computed from what the ledger is with its own change, and
-- the last writer of an order leaves the summary as the ledger is.
--
-- The admin grid's "by state" index no longer holds pending orders either: an order's
-- first modification is pending, so every intent insert added an entry there, which the
-- outcome then left dead. Pending orders are among the newest ones (`last_at` is the
-- newest modification's `updated_at`, which every lease and attempt moves, and a
-- modification stays pending only while the daemon retries it); the "by state" shape
-- for `pending`, like the one for `succeeded`, walks order_summaries_newest with a
-- filter. The other grid indexes stay as they were: the outcome still moves `last_at`
-- and, for a succeeded capture, `refundable_minor`, so it cannot be a HOT update
-- whatever this index holds.

CREATE OR REPLACE FUNCTION smartpay.order_summaries_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_nestloop = off
SET enable_mergejoin = off SET enable_hashjoin = on SET jit = off AS $$
DECLARE
    v_rows    bigint;
    v_written bigint;
    v_done    text[];
    v_ids     text[];
BEGIN
    IF TG_OP = 'INSERT' AND TG_TABLE_NAME = 'modifications' THEN
        SELECT count(*) INTO v_rows FROM new_rows;
        IF v_rows = 0 THEN
            RETURN NULL;
        END IF;
        INSERT INTO smartpay.order_summaries AS s
        SELECT n.order_id, n.transaction_id, n.currency::text,
               CASE WHEN n.kind = 'capture' THEN n.state END,
               CASE WHEN n.kind = 'capture' AND n.state = 'succeeded'
                    THEN coalesce(n.amount_minor, 0) ELSE 0 END,
               CASE WHEN n.kind = 'refund' AND n.state = 'succeeded'
                    THEN coalesce(n.amount_minor, 0) ELSE 0 END,
               CASE WHEN n.kind = 'refund' AND n.state IN ('pending', 'needs_attention')
                    THEN coalesce(n.amount_minor, 0) ELSE 0 END,
               CASE WHEN n.kind = 'capture' AND n.state = 'succeeded'
                    THEN greatest(coalesce(n.amount_minor, 0), 0) ELSE 0 END,
               CASE WHEN n.kind IN ('cancel', 'cancel_or_refund') THEN n.state END,
               n.kind IN ('cancel', 'cancel_or_refund') AND n.state = 'succeeded',
               n.deadline, n.modification_id, n.kind, n.state, n.updated_at, 0, 1
        FROM new_rows n
        ORDER BY n.order_id
        ON CONFLICT (order_id) DO NOTHING;
        GET DIAGNOSTICS v_written = ROW_COUNT;
        IF v_written = v_rows THEN
            RETURN NULL;
        END IF;
        -- left: the orders with a row that their summary row does not name (only this
        -- insert can name a modification it inserted): those that had a summary row (or
        -- got one from another writer meanwhile), and those with several rows here
        -- (the summary row names the one it was written from)
        SELECT ARRAY(
            SELECT n.order_id
            FROM new_rows n
            LEFT JOIN smartpay.order_summaries s
                   ON s.order_id = ANY (ARRAY(SELECT x.order_id FROM new_rows x))
                  AND s.order_id = n.order_id AND s.last_modification_id = n.modification_id
            GROUP BY n.order_id
            HAVING bool_or(s.order_id IS NULL)
            ORDER BY 1)
        INTO v_ids;
    ELSIF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'modifications' THEN
        SELECT count(*) INTO v_rows FROM new_rows;
        IF v_rows = 0 THEN
            RETURN NULL;
        END IF;
        WITH upd AS (
            UPDATE smartpay.order_summaries s
            SET transaction_id = n.transaction_id, currency = n.currency::text,
                capture_state = CASE WHEN n.kind = 'capture' THEN n.state END,
                captured_minor = CASE WHEN n.kind = 'capture' AND n.state = 'succeeded'
                                      THEN coalesce(n.amount_minor, 0) ELSE 0 END,
                refunded_minor = CASE WHEN n.kind = 'refund' AND n.state = 'succeeded'
                                      THEN coalesce(n.amount_minor, 0) ELSE 0 END,
                refund_pending_minor =
                    CASE WHEN n.kind = 'refund' AND n.state IN ('pending', 'needs_attention')
                         THEN coalesce(n.amount_minor, 0) ELSE 0 END,
                refundable_minor = CASE WHEN n.kind = 'capture' AND n.state = 'succeeded'
                                        THEN greatest(coalesce(n.amount_minor, 0), 0)
                                        ELSE 0 END,
                cancel_state = CASE WHEN n.kind IN ('cancel', 'cancel_or_refund')
                                    THEN n.state END,
                cancelled = n.kind IN ('cancel', 'cancel_or_refund') AND n.state = 'succeeded',
                deadline = n.deadline, last_kind = n.kind, last_state = n.state,
                last_at = n.updated_at
            FROM new_rows n
            WHERE s.order_id = ANY (ARRAY(SELECT o.order_id FROM new_rows o ORDER BY o.order_id))
              AND s.order_id = n.order_id AND s.modifications = 1
              AND s.last_modification_id = n.modification_id AND s.pending_requests = 0
            RETURNING s.order_id)
        SELECT array_agg(upd.order_id) INTO v_done FROM upd;
        IF cardinality(v_done) = v_rows THEN
            RETURN NULL;
        END IF;
        -- left: the orders not written, those with more than one row here (written from
        -- one of them), and those a row moved away from
        SELECT ARRAY(
            SELECT a.order_id FROM (
                SELECT o.order_id FROM old_rows o
                UNION
                SELECT n.order_id FROM new_rows n) a
            EXCEPT
            SELECT n.order_id FROM new_rows n
            WHERE n.order_id = ANY (v_done)
            GROUP BY n.order_id HAVING count(*) = 1
            ORDER BY 1)
        INTO v_ids;
    ELSIF TG_OP = 'INSERT' THEN
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

--   by state:    WHERE last_state = $1 ORDER BY last_at DESC, order_id DESC LIMIT n
DROP INDEX smartpay.order_summaries_by_state;
CREATE INDEX order_summaries_by_state
    ON smartpay.order_summaries (last_state, last_at DESC, order_id DESC)
    WHERE last_state NOT IN ('succeeded', 'pending');
