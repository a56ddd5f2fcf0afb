-- Refund and cancelOrRefund requests from the shop, settings the shop-facing SQL needs,
-- and webhook delivery state for alerts.

-- Set by `smartpayctl migrate` from the configuration: the shop-facing functions read the
-- orders relation named here. Currency exponents come from the daemon's ISO 4217 table.
CREATE TABLE smartpay.settings (
    only_row        boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    orders_relation text NOT NULL DEFAULT 'public.orders'
);
INSERT INTO smartpay.settings DEFAULT VALUES;

CREATE TABLE smartpay.currencies (
    code     char(3) PRIMARY KEY,
    exponent smallint NOT NULL CHECK (exponent BETWEEN 0 AND 4)
);

-- One row per request; the daemon turns it into a modification (one at a time per
-- SmartPay transaction) and links it here.
CREATE TABLE smartpay.requests (
    request_id      bigserial PRIMARY KEY,
    order_id        text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('refund', 'cancel_or_refund')),
    amount_minor    bigint CHECK (amount_minor > 0),
    currency        char(3),
    reason          text,
    requested_by    text NOT NULL DEFAULT current_user,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    modification_id uuid REFERENCES smartpay.modifications (modification_id),
    CHECK (kind <> 'refund' OR (amount_minor IS NOT NULL AND currency IS NOT NULL))
);
CREATE INDEX requests_open ON smartpay.requests (request_id) WHERE modification_id IS NULL;
CREATE INDEX requests_by_order ON smartpay.requests (order_id);

ALTER TABLE smartpay.modifications ADD COLUMN request_id bigint REFERENCES smartpay.requests (request_id);
CREATE UNIQUE INDEX modifications_one_per_request ON smartpay.modifications (request_id)
    WHERE request_id IS NOT NULL;

-- Webhook delivery of alerts: 'pending' until a configured webhook accepted it, then
-- 'delivered' ('none' is kept for alerts that are never to be sent).
ALTER TABLE smartpay.alerts
    ADD COLUMN webhook_state text NOT NULL DEFAULT 'pending'
        CHECK (webhook_state IN ('none', 'pending', 'delivered')),
    ADD COLUMN webhook_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN webhook_next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN webhook_last_error text,
    ADD COLUMN webhook_delivered_at timestamptz;
CREATE INDEX alerts_webhook_due ON smartpay.alerts (webhook_next_attempt_at)
    WHERE webhook_state = 'pending';

-- Wake the daemon when the shop asks for a refund or cancelOrRefund.
CREATE FUNCTION smartpay.requests_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('smartpay_requests', NEW.order_id);
    RETURN NULL;
END
$$;
CREATE TRIGGER requests_notify AFTER INSERT ON smartpay.requests
    FOR EACH ROW EXECUTE FUNCTION smartpay.requests_notify();
