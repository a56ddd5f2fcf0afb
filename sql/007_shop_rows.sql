-- Shop rows of any shape, and cancels after partial refunds.

-- A cancelled order whose capture was partly refunded gets a refund of exactly what
-- remains captured (cancelOrRefund's meaning after partial refunds is not documented).
-- That refund stands for the cancel: at most one live one per order, like a cancel.
ALTER TABLE smartpay.modifications
    ADD COLUMN settles_cancel boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT modifications_settles_cancel_refund_only
        CHECK (NOT settles_cancel OR kind = 'refund');
CREATE UNIQUE INDEX modifications_one_live_settling_refund
    ON smartpay.modifications (order_id)
    WHERE settles_cancel AND state <> 'refused';

-- The daemon reads the orders relation's times as text when the columns are not of a
-- time type (a view over a shop's text columns): the time, or NULL when the text is not
-- a finite time between 1970 and 9999, instead of an error that would stop every scan.
CREATE FUNCTION smartpay.shop_time(p_text text) RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    v_time timestamptz;
BEGIN
    v_time := p_text::timestamptz;
    IF NOT isfinite(v_time) OR v_time < '1970-01-01 00:00+00' OR v_time >= '10000-01-01 00:00+00' THEN
        RETURN NULL;
    END IF;
    RETURN v_time;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END
$$;
-- The daemon's role calls it in every scan; it reads nothing and grants nothing.
GRANT EXECUTE ON FUNCTION smartpay.shop_time(text) TO PUBLIC;
