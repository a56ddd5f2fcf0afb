-- The write-ahead ledger of modifications, the alerts, and the orders trigger function.
-- Applied by `smartpayctl migrate` inside one transaction; schema smartpay exists already.

-- One row per modification. The row, with its modification_id and the exact request
-- body, is committed before the first byte goes to SmartPay; every retry resends
-- request_body unchanged.
CREATE TABLE smartpay.modifications (
    modification_id             uuid PRIMARY KEY,
    order_id                    text NOT NULL,
    transaction_id              text,
    kind                        text NOT NULL
        CHECK (kind IN ('capture', 'cancel', 'cancel_or_refund', 'refund')),
    amount_minor                bigint CHECK (amount_minor >= 0),
    currency                    char(3),
    request_body                text,
    state                       text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'succeeded', 'refused', 'needs_attention')),
    reason                      text,
    attempts                    integer NOT NULL DEFAULT 0,
    next_attempt_at             timestamptz NOT NULL DEFAULT now(),
    deadline                    timestamptz,
    lease_owner                 text,
    lease_generation            bigint NOT NULL DEFAULT 0,
    lease_expires_at            timestamptz,
    http_status                 integer,
    response_body               text,
    payment_status              text,
    reconciliation_reference_id text,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    completed_at                timestamptz,
    -- only a locally refused row (bad order data) may lack a request body
    CHECK (request_body IS NOT NULL OR state = 'refused'),
    CHECK (state <> 'pending' OR transaction_id IS NOT NULL)
);

-- At most one live capture and one live cancel per order: two daemons can never both
-- create one. A refused modification does not count, so an operator can try again.
CREATE UNIQUE INDEX modifications_one_live_capture
    ON smartpay.modifications (order_id)
    WHERE kind = 'capture' AND state <> 'refused';
CREATE UNIQUE INDEX modifications_one_live_cancel
    ON smartpay.modifications (order_id)
    WHERE kind IN ('cancel', 'cancel_or_refund') AND state <> 'refused';
-- At most one modification per SmartPay transaction in flight at a time.
CREATE UNIQUE INDEX modifications_one_pending_per_transaction
    ON smartpay.modifications (transaction_id)
    WHERE state = 'pending';
CREATE INDEX modifications_due
    ON smartpay.modifications (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX modifications_by_order ON smartpay.modifications (order_id);

-- One row per alert, de-duplicated by (kind, dedup_key); e.g. dedup_key is
-- 'ORDER:24h' for an expiry threshold.
CREATE TABLE smartpay.alerts (
    alert_id        bigserial PRIMARY KEY,
    kind            text NOT NULL,
    severity        text NOT NULL CHECK (severity IN ('warning', 'critical')),
    order_id        text,
    modification_id uuid REFERENCES smartpay.modifications (modification_id),
    dedup_key       text NOT NULL,
    message         text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    acknowledged_by text,
    UNIQUE (kind, dedup_key)
);
CREATE INDEX alerts_open ON smartpay.alerts (created_at) WHERE acknowledged_at IS NULL;

CREATE FUNCTION smartpay.alerts_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('smartpay_alerts', json_build_object(
        'alert_id', NEW.alert_id, 'kind', NEW.kind, 'severity', NEW.severity,
        'order_id', NEW.order_id, 'modification_id', NEW.modification_id)::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER alerts_notify AFTER INSERT ON smartpay.alerts
    FOR EACH ROW EXECUTE FUNCTION smartpay.alerts_notify();

-- Trigger function for the shop's orders table: wakes the daemon when an order
-- appears or its status changes. `smartpayctl migrate` attaches it to the configured
-- orders relation when that is a table; a shop using a view attaches it to its own table.
CREATE FUNCTION smartpay.orders_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        PERFORM pg_notify('smartpay_orders', NEW.id::text);
    END IF;
    RETURN NULL;
END
$$;
