-- The pending rows of the ledger in a small table of their own, so that an outcome is a
-- HOT update of its ledger row. PostgreSQL updates a row in place (no new index entries)
-- only when no column that any index names, in its key or in its predicate, changes and
-- the new version fits on the page. Before this migration five indexes of
-- smartpay.modifications named `state`: every outcome added an entry to each index of
-- the row (and the row was written anew elsewhere). Now:
--
-- - what is pending (in flight or waiting for its next attempt) is the row's entry in
--   smartpay.modification_queue: one per pending modification, kept by the statement
--   triggers below for every writer of the ledger (the daemon, smartpayctl, the shop
--   functions, an operator's SQL), deleted when the row leaves `pending`. The rule of
--   one modification in flight per SmartPay transaction is the queue's unique index,
--   under the name the ledger's partial index had; the claim's due scan reads the
--   queue's index on next_attempt_at instead of a partial index that also held every
--   row in flight;
-- - the live-modification rules (one live capture, one live cancel, one live settling
--   refund per order) read `live`, a stored column computed from the state that only
--   changes when a modification is refused;
-- - new ledger pages are filled to 40% so that the outcome's new version (the gateway's
--   answer makes the row longer) finds room on the same page.
--
-- A pending row's next_attempt_at and deadline stay in the ledger too (the queue copies
-- them); lease_owner, lease_generation and lease_expires_at stay in the ledger only.

CREATE TABLE smartpay.modification_queue (
    modification_id uuid PRIMARY KEY,
    transaction_id  text NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    deadline        timestamptz
);
INSERT INTO smartpay.modification_queue (modification_id, transaction_id, next_attempt_at,
                                         deadline)
SELECT modification_id, transaction_id, next_attempt_at, deadline
FROM smartpay.modifications WHERE state = 'pending';

DROP INDEX smartpay.modifications_one_pending_per_transaction;
DROP INDEX smartpay.modifications_due;
-- At most one modification per SmartPay transaction in flight at a time.
CREATE UNIQUE INDEX modifications_one_pending_per_transaction
    ON smartpay.modification_queue (transaction_id);
CREATE INDEX modification_queue_due ON smartpay.modification_queue (next_attempt_at);

ALTER TABLE smartpay.modifications
    ADD COLUMN live boolean GENERATED ALWAYS AS (state <> 'refused') STORED;
DROP INDEX smartpay.modifications_one_live_capture;
DROP INDEX smartpay.modifications_one_live_cancel;
DROP INDEX smartpay.modifications_one_live_settling_refund;
CREATE UNIQUE INDEX modifications_one_live_capture
    ON smartpay.modifications (order_id)
    WHERE kind = 'capture' AND live;
CREATE UNIQUE INDEX modifications_one_live_cancel
    ON smartpay.modifications (order_id)
    WHERE kind IN ('cancel', 'cancel_or_refund') AND live;
CREATE UNIQUE INDEX modifications_one_live_settling_refund
    ON smartpay.modifications (order_id)
    WHERE settles_cancel AND live;

ALTER TABLE smartpay.modifications SET (fillfactor = 20);

-- Keeps smartpay.modification_queue in step with the ledger's pending rows, once per
-- statement from its transition tables. SECURITY DEFINER: a writer of the ledger needs
-- no privilege on the queue. The ids go as arrays so that the queue is read through its
-- primary key whatever the sizes.
CREATE FUNCTION smartpay.modification_queue_sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM smartpay.modification_queue;
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        DELETE FROM smartpay.modification_queue q
        WHERE q.modification_id = ANY (ARRAY(SELECT o.modification_id FROM old_rows o));
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM smartpay.modification_queue q
        WHERE q.modification_id = ANY (ARRAY(
            SELECT n.modification_id FROM new_rows n WHERE n.state <> 'pending'));
        -- a row that stays pending keeps its entry, with its next attempt and deadline
        UPDATE smartpay.modification_queue q
        SET transaction_id = n.transaction_id, next_attempt_at = n.next_attempt_at,
            deadline = n.deadline
        FROM new_rows n
        WHERE q.modification_id = n.modification_id AND n.state = 'pending'
          AND (q.transaction_id, q.next_attempt_at, q.deadline)
              IS DISTINCT FROM (n.transaction_id, n.next_attempt_at, n.deadline);
        INSERT INTO smartpay.modification_queue (modification_id, transaction_id,
                                                 next_attempt_at, deadline)
        SELECT n.modification_id, n.transaction_id, n.next_attempt_at, n.deadline
        FROM new_rows n WHERE n.state = 'pending' AND NOT EXISTS (
            SELECT 1 FROM smartpay.modification_queue q
            WHERE q.modification_id = n.modification_id);
        RETURN NULL;
    END IF;
    INSERT INTO smartpay.modification_queue (modification_id, transaction_id,
                                             next_attempt_at, deadline)
    SELECT n.modification_id, n.transaction_id, n.next_attempt_at, n.deadline
    FROM new_rows n WHERE n.state = 'pending';
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION smartpay.modification_queue_sync() FROM PUBLIC;

-- Transition tables allow one event per trigger.
CREATE TRIGGER modification_queue_insert AFTER INSERT ON smartpay.modifications
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smartpay.modification_queue_sync();
CREATE TRIGGER modification_queue_update AFTER UPDATE ON smartpay.modifications
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smartpay.modification_queue_sync();
CREATE TRIGGER modification_queue_delete AFTER DELETE ON smartpay.modifications
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smartpay.modification_queue_sync();
CREATE TRIGGER modification_queue_truncate AFTER TRUNCATE ON smartpay.modifications
    FOR EACH STATEMENT EXECUTE FUNCTION smartpay.modification_queue_sync();
