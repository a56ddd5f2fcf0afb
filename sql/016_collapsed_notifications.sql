-- One wake-up per transaction instead of one notification per row.
--
-- Since 011 the daemon reads which orders changed from smartpay.order_changes (written
-- by the same trigger function, in the shop's transaction) and takes a notification on
-- smartpay_orders only as a wake-up; the order id in the payload made every row's
-- notification distinct, so a 10,000-row UPDATE queued 10,000 notifications. With an
-- empty payload PostgreSQL folds the identical notifications of one transaction into
-- one. A trigger of the shop's own that notifies with the order id (not this function)
-- is still read as before: the daemon takes a payload's id only when no trigger feeds
-- the queue.
CREATE OR REPLACE FUNCTION smartpay.orders_notify() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, smartpay, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        -- ids longer than the ledger can record are never looked at
        IF NEW.id IS NOT NULL AND octet_length(NEW.id::text) <= 1000 THEN
            INSERT INTO smartpay.order_changes (order_id) VALUES (NEW.id::text);
        END IF;
        PERFORM pg_notify('smartpay_orders', '');
    END IF;
    RETURN NULL;
END
$$;

-- The daemon reads the open requests from smartpay.requests and takes a notification on
-- smartpay_requests as a wake-up only: one per transaction, however many rows it inserts.
CREATE OR REPLACE FUNCTION smartpay.requests_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('smartpay_requests', '');
    RETURN NULL;
END
$$;
