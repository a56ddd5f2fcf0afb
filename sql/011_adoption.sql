-- Adopting a shop that has history, the queue of changed orders, and the authorization
-- deadline defined once.

-- The baseline: one row once the shop is adopted, by `smartpayctl adopt`, or by
-- `smartpayctl migrate` or the daemon's first start when the orders relation is empty
-- (or the ledger already has rows: a shop that ran smartpayd before). Until then the
-- daemon does not act on a relation that holds orders.
CREATE TABLE smartpay.adoption (
    only_row       boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    adopted_at     timestamptz NOT NULL DEFAULT now(),
    -- orders authorized before it that were final or expired at adoption are history
    cut            timestamptz NOT NULL,
    history_orders bigint NOT NULL DEFAULT 0,
    adopted_by     text NOT NULL DEFAULT session_user
);

-- Orders that were history at adoption: the daemon never acts on them and never alerts
-- on them. `smartpayctl adopt --order ID` deletes an order's row to bring it in.
CREATE TABLE smartpay.history (
    order_id    text PRIMARY KEY,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- Orders inserted or changed in status since the daemon last looked at them, written
-- by the orders trigger in the shop's own transaction: a notification lost while no
-- daemon listens is still here. The daemon deletes the rows it has looked at in the
-- statement that records the intents; `smartpayctl rescan` queues orders too.
CREATE TABLE smartpay.order_changes (
    change_id  bigserial PRIMARY KEY,
    order_id   text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);

-- The trigger function writes the queue with its owner's rights, whoever changes the
-- order: the shop's role needs no privilege on schema smartpay.
CREATE OR REPLACE FUNCTION smartpay.orders_notify() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, smartpay, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        -- ids longer than the ledger can record are never looked at
        IF NEW.id IS NOT NULL AND octet_length(NEW.id::text) <= 1000 THEN
            INSERT INTO smartpay.order_changes (order_id) VALUES (NEW.id::text);
        END IF;
        PERFORM pg_notify('smartpay_orders', NEW.id::text);
    END IF;
    RETURN NULL;
END
$$;

-- The authorization deadline of an order: authorization_expires_at when the shop set
-- it, else authorized_at + the validity; NULL when the time it needs is null, infinite
-- or outside 1970..9999. One definition for the daemon, smartpayctl and the shop API.
-- Plain SQL expressions, so that the planner inlines them into the statement that
-- calls them (no function call per row, the columns stay visible to it).
CREATE FUNCTION smartpay.order_deadline(p_authorized_at timestamptz,
                                        p_expires_at timestamptz,
                                        p_validity interval) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_expires_at IS NULL THEN
               CASE WHEN p_authorized_at >= '1970-01-01 00:00+00'
                     AND p_authorized_at < '10000-01-01 00:00+00'
                    THEN p_authorized_at END + p_validity
           ELSE
               CASE WHEN p_expires_at >= '1970-01-01 00:00+00'
                     AND p_expires_at < '10000-01-01 00:00+00'
                    THEN p_expires_at END
           END
$$;
-- The same for times held as text (a view over a shop's text columns): a text that is
-- not such a time gives no deadline instead of an error.
CREATE FUNCTION smartpay.order_deadline(p_authorized_at text,
                                        p_expires_at text,
                                        p_validity interval) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_expires_at IS NULL THEN smartpay.shop_time(p_authorized_at) + p_validity
           ELSE smartpay.shop_time(p_expires_at) END
$$;
GRANT EXECUTE ON FUNCTION smartpay.order_deadline(timestamptz, timestamptz, interval),
                          smartpay.order_deadline(text, text, interval) TO PUBLIC;

-- The shop API's view of one order computes its deadline with the same rule.
CREATE OR REPLACE FUNCTION smartpay.shop_order(
    p_order_id text,
    OUT in_relation boolean,
    OUT status text,
    OUT transaction_id text,
    OUT amount numeric,
    OUT currency text,
    OUT capture_amount numeric,
    OUT authorized_at timestamptz,
    OUT deadline timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_setting  text;
    v_validity interval;
    v_relation regclass;
    v_id_type  text;
BEGIN
    SELECT s.orders_relation, s.authorization_validity INTO v_setting, v_validity
    FROM smartpay.settings s;
    v_relation := to_regclass(v_setting);
    IF v_relation IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SP009',
            MESSAGE = format('orders relation %s named in smartpay.settings does not exist',
                             coalesce(v_setting, '(none)')),
            HINT = 'Set [database] orders_relation and run smartpayctl migrate.';
    END IF;
    SELECT format_type(a.atttypid, a.atttypmod) INTO v_id_type
    FROM pg_attribute a
    WHERE a.attrelid = v_relation AND a.attname = 'id' AND NOT a.attisdropped;
    IF v_id_type IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SP009',
            MESSAGE = format('orders relation %s has no column id', v_relation);
    END IF;

    in_relation := false;
    -- an id that is not a value of the id column's type names no order
    BEGIN
        EXECUTE format('SELECT $1::%s', v_id_type) USING p_order_id;
    EXCEPTION WHEN data_exception THEN
        RETURN;
    END;
    -- compared in the id column's type, so that the relation's index on id is used
    EXECUTE format('SELECT true, o.status::text, o.smartpay_transaction_id::text, '
                   'o.amount::numeric, o.currency::text, o.capture_amount::numeric, '
                   'o.authorized_at, smartpay.order_deadline(o.authorized_at, '
                   'o.authorization_expires_at, $2) '
                   'FROM %s o WHERE o.id = $1::%s LIMIT 1', v_relation, v_id_type)
        INTO in_relation, status, transaction_id, amount, currency, capture_amount,
             authorized_at, deadline
        USING p_order_id, v_validity;
    in_relation := coalesce(in_relation, false);
END
$$;
