-- The admin grid's indexes on smartpay.order_summaries in ascending order, read backward.
--
-- Every page of the grid is ordered by last_at DESC, order_id DESC (sql/009), and its
-- indexes were built in that order. But last_at is the newest modification's
-- updated_at, which every intent and every outcome sets to the current time: each new
-- entry is the index's smallest key, inserted at its left edge. A B-tree splits a full
-- page at its right edge so that the left half stays full (only the rightmost page of
-- each level is split that way); a full leftmost page is split in the middle, so the
-- half that is not written again keeps half a page free for ever. Measured after a
-- 20,000-capture burst (bench/README.md, "The order summary's grid indexes in ascending
-- order"): order_summaries_newest 2,152 kB, order_summaries_refundable 1,112 kB, against
-- 1,368 kB and 640 kB for the same entries in ascending indexes.
--
-- The same indexes in ascending order take each new entry at their right edge, and a
-- backward scan of them gives the pages' descending order, NULLs first as before (an
-- ascending index keeps NULLs last). The query shapes, their answers and their order
-- are unchanged; the plans read the same indexes backward (tests/check_order_summaries).

--   newest N:    ORDER BY last_at DESC, order_id DESC LIMIT n
DROP INDEX smartpay.order_summaries_newest;
CREATE INDEX order_summaries_newest
    ON smartpay.order_summaries (last_at, order_id);
--   by state:    WHERE last_state = $1 ORDER BY last_at DESC, order_id DESC LIMIT n
--                (neither succeeded nor pending orders: sql/018)
DROP INDEX smartpay.order_summaries_by_state;
CREATE INDEX order_summaries_by_state
    ON smartpay.order_summaries (last_state, last_at, order_id)
    WHERE last_state NOT IN ('succeeded', 'pending');
--   refundable:  WHERE refundable_minor > 0 ORDER BY last_at DESC, order_id DESC LIMIT n
DROP INDEX smartpay.order_summaries_refundable;
CREATE INDEX order_summaries_refundable
    ON smartpay.order_summaries (last_at, order_id) WHERE refundable_minor > 0;
