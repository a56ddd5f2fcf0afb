-- The statement trigger queues a statement's changed orders in chunks of up to 256 order
-- ids, one row each, instead of one row per order: a shop's UPDATE shipping 20,000
-- orders wrote 20,000 rows (a heap tuple, a primary-key entry and a nextval each) into
-- smartpay.order_changes, and the daemon deleted them again one by one; now it writes 79
-- rows, and the daemon deletes a chunk once all its orders are looked at, or rewrites it
-- without the ones that are (bench/README.md, "The shop's change queue in chunks").
--
-- smartpay.order_changes stays as it is, one order a row: the rows queued before the
-- upgrade, `smartpayctl rescan`, a finished modification's follow-up, and the row
-- trigger an operator creates on the table behind a view all use it. The chunks take
-- their ids from its sequence, so that one id orders both tables. The daemon names a
-- queued order by change_id * 1024 + its position in the chunk from 0 (a row of
-- smartpay.order_changes is position 0): smartpay.queued_orders shows them so.
--
-- A daemon of an older version reads only smartpay.order_changes: restart the daemons
-- after `smartpayctl migrate` (the chunks wait for a daemon of this version; none is
-- lost).
CREATE TABLE smartpay.order_change_chunks (
    change_id  bigint PRIMARY KEY DEFAULT nextval('smartpay.order_changes_change_id_seq'),
    -- a position looked at is set to NULL (the others keep their numbers)
    order_ids  text[] NOT NULL CHECK (cardinality(order_ids) BETWEEN 1 AND 1024),
    changed_at timestamptz NOT NULL DEFAULT now()
);

-- Every queued order, one row each, with the id the daemon names it by.
CREATE VIEW smartpay.queued_orders AS
    SELECT c.change_id * 1024 AS change_id, c.order_id, c.changed_at
    FROM smartpay.order_changes c
    UNION ALL
    SELECT k.change_id * 1024 + e.pos - 1, e.order_id, k.changed_at
    FROM smartpay.order_change_chunks k
    CROSS JOIN LATERAL unnest(k.order_ids) WITH ORDINALITY AS e(order_id, pos)
    WHERE e.order_id IS NOT NULL;

-- The statement level as in sql/020, the changed orders queued in chunks; the row level
-- and the notifications unchanged.
CREATE OR REPLACE FUNCTION smartpay.orders_notify() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, smartpay, pg_temp AS $$
DECLARE
    v_ids text[];
    v_id  text;
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
            -- ids longer than the ledger can record are never looked at
            IF NEW.id IS NOT NULL AND octet_length(NEW.id::text) <= 1000 THEN
                INSERT INTO smartpay.order_changes (order_id) VALUES (NEW.id::text);
            END IF;
            PERFORM pg_notify('smartpay_orders', NEW.id::text);
        END IF;
        RETURN NULL;
    END IF;
    -- the inserted orders, or the updated ones whose status changed (an order whose id
    -- changed counts as changed); ids longer than the ledger can record are never
    -- looked at
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(n.id::text) INTO v_ids FROM smartpay_new_orders n
        WHERE octet_length(n.id::text) <= 1000;
    ELSE
        SELECT array_agg(n.id::text) INTO v_ids FROM smartpay_new_orders n
        WHERE octet_length(n.id::text) <= 1000
          AND NOT EXISTS (SELECT 1 FROM smartpay_old_orders o
                          WHERE o.id = n.id AND o.status IS NOT DISTINCT FROM n.status);
    END IF;
    IF v_ids IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO smartpay.order_change_chunks (order_ids)
    SELECT v_ids[i:i + 255] FROM generate_series(1, cardinality(v_ids), 256) AS i;
    IF cardinality(v_ids) > 64 THEN
        PERFORM pg_notify('smartpay_orders', '');
    ELSE
        FOREACH v_id IN ARRAY v_ids LOOP
            PERFORM pg_notify('smartpay_orders', v_id);
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;
