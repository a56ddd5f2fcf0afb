-- Fewer, narrower indexes on the ledger's write path; the same rules.
--
-- Every intent adds an entry to each index of smartpay.modifications whose predicate it
-- matches, and every outcome (a non-HOT update: the state is in index predicates) adds
-- one more to each again. Before this migration an intent of a capture went into six
-- (the primary key, by_order, by_transaction, one_live_capture,
-- one_pending_per_transaction, due) and its outcome into four; the insert's ON CONFLICT
-- also probed each unique index before inserting. Now four and three.

-- The rules of one live capture, one live cancel (or cancelOrRefund) and one live refund
-- standing for a cancel per order (sql/001, sql/007) and the order's index become one
-- unique index: the order, and the kind of live modification the row is, NULL when it
-- is none of them (a refused row, an ordinary refund). NULLs are distinct in a unique
-- index, so only two live rows of one kind on one order conflict, as in the partial
-- indexes; every lookup by order reads it by its first column.
CREATE UNIQUE INDEX modifications_order_live
    ON smartpay.modifications (order_id, (CASE WHEN state = 'refused' THEN NULL
                                               WHEN kind = 'capture' THEN 'capture'
                                               WHEN kind IN ('cancel', 'cancel_or_refund')
                                                   THEN 'cancel'
                                               WHEN settles_cancel THEN 'settling_refund'
                                          END));
DROP INDEX smartpay.modifications_one_live_capture;
DROP INDEX smartpay.modifications_one_live_cancel;
DROP INDEX smartpay.modifications_one_live_settling_refund;
DROP INDEX smartpay.modifications_by_order;

-- One pending modification per SmartPay transaction (sql/001) and the transaction's
-- index (sql/010), the same way: true for a pending row, NULL for any other.
CREATE UNIQUE INDEX modifications_transaction_pending
    ON smartpay.modifications (transaction_id, (CASE WHEN state = 'pending' THEN true END));
DROP INDEX smartpay.modifications_one_pending_per_transaction;
DROP INDEX smartpay.modifications_by_transaction;

-- The claim of due modifications reads only what is due. modifications_due (sql/001)
-- ordered the pending rows by next_attempt_at alone, so the claim of due rows
-- (lib/store.c, store_claim_due) walked every pending row whose attempt time had
-- passed, leased ones included, and tested each lease in the heap: during a burst nearly
-- every pending row is leased by the instance sending it. This index is keyed by the
-- time a pending row becomes available to a claim: its next attempt, and while it is
-- leased not before its lease expires. The claim's range test on it reads only the rows
-- it may take (it still tests the lease itself). The predicate is the old index's, so
-- the statements that read every pending row (the gauges) use it as they used that one.
CREATE INDEX modifications_available
    ON smartpay.modifications ((CASE WHEN lease_owner IS NULL THEN next_attempt_at
                                     ELSE greatest(next_attempt_at, lease_expires_at) END))
    WHERE state = 'pending';
DROP INDEX smartpay.modifications_due;
