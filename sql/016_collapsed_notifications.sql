-- One wake-up per transaction for the shop's requests instead of one notification per
-- row. The daemon reads the open requests from smartpay.requests and takes a
-- notification on smartpay_requests as a wake-up only; with an empty payload
-- PostgreSQL folds the identical notifications of one transaction into one.
-- (smartpay_orders keeps the order id: the housekeeping connection reads it to refresh
-- the expiring gauges and the next sweep for that order, lib/alerts.c.)
CREATE OR REPLACE FUNCTION smartpay.requests_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('smartpay_requests', '');
    RETURN NULL;
END
$$;
