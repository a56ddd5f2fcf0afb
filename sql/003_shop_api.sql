-- The shop-facing SQL API: refund and cancelOrRefund requests, and each order's payment
-- state for the shop's admin pages. Every function is SECURITY INVOKER: the caller needs
-- the privileges on the smartpay tables (and SELECT on the orders relation) itself.
--
-- Errors are raised with SQLSTATEs of class SP, the message naming the order and the
-- amounts:
--   SP001  unknown order: no ledger row, no request, not in the orders relation
--   SP002  the order has no succeeded capture (nothing to refund yet)
--   SP003  the order is cancelled, or its cancelOrRefund is under way or requested
--   SP004  amount missing, not greater than zero, or too large
--   SP005  amount has more fraction digits than the order's currency
--   SP006  the refund would take the refunded total above the captured amount
--   SP007  a cancel or cancelOrRefund already succeeded, is in flight or is requested
--   SP008  nothing left to cancel or refund (already fully refunded)
--   SP009  set-up problem: orders relation or currency unknown, unsupported isolation
--   SP010  the order has no SmartPay transaction (never authorized)
-- and 22001 for a reason longer than 127 characters.

-- Written by `smartpayctl migrate` from [capture] authorization_validity, like
-- orders_relation: order_payment() computes deadlines with it.
ALTER TABLE smartpay.settings
    ADD COLUMN authorization_validity interval NOT NULL DEFAULT interval '120 hours';

-- The view counts open alerts per order.
CREATE INDEX alerts_open_by_order ON smartpay.alerts (order_id) WHERE acknowledged_at IS NULL;

-- An amount in minor units as numeric in major units with exactly the currency's
-- exponent of fraction digits (4000 EUR -> 40.00, 500 JPY -> 500, 1234 KWD -> 1.234);
-- NULL for a NULL amount or a currency missing from smartpay.currencies.
CREATE FUNCTION smartpay.minor_to_numeric(p_minor bigint, p_currency text) RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT round(p_minor::numeric / (10::numeric ^ c.exponent), c.exponent)
    FROM smartpay.currencies c
    WHERE c.code = p_currency
$$;

-- Serialises the requests of one order: both request functions take this transaction
-- lock first, so two concurrent refunds cannot both pass the limit. Key 1 is "SmRf".
CREATE FUNCTION smartpay.lock_order(p_order_id text) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(1399673446, hashtext(p_order_id))
$$;

-- The order's row in the orders relation named in smartpay.settings (dynamic SQL: the
-- relation is configuration), with its deadline. in_relation is false when there is no
-- such row, including when the id does not fit the type of the relation's id column.
CREATE FUNCTION smartpay.shop_order(
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
                   'o.authorized_at, coalesce(o.authorization_expires_at, o.authorized_at + $2) '
                   'FROM %s o WHERE o.id = $1::%s LIMIT 1', v_relation, v_id_type)
        INTO in_relation, status, transaction_id, amount, currency, capture_amount,
             authorized_at, deadline
        USING p_order_id, v_validity;
    in_relation := coalesce(in_relation, false);
END
$$;

-- True when the order has a ledger row or a request, or is in the orders relation.
CREATE FUNCTION smartpay.order_known(p_order_id text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM smartpay.modifications m WHERE m.order_id = p_order_id)
       OR EXISTS (SELECT 1 FROM smartpay.requests r WHERE r.order_id = p_order_id) THEN
        RETURN true;
    END IF;
    RETURN (SELECT s.in_relation FROM smartpay.shop_order(p_order_id) s);
END
$$;

-- Checks common to both request functions, then takes the order's lock.
CREATE FUNCTION smartpay.begin_request(p_order_id text, p_reason text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_order_id IS NULL OR p_order_id = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'SP001', MESSAGE = 'order id missing';
    END IF;
    IF length(p_reason) > 127 THEN
        RAISE EXCEPTION USING ERRCODE = '22001',
            MESSAGE = format('reason for order %s is %s characters long; at most 127 are allowed',
                             p_order_id, length(p_reason));
    END IF;
    -- a REPEATABLE READ snapshot is taken before the lock is granted, so it would not see
    -- a concurrent request committed meanwhile (SERIALIZABLE detects that conflict itself)
    IF current_setting('transaction_isolation') = 'repeatable read' THEN
        RAISE EXCEPTION USING ERRCODE = 'SP009',
            MESSAGE = format('cannot request a modification of order %s in a REPEATABLE READ transaction',
                             p_order_id),
            HINT = 'Call it in a READ COMMITTED (the default) or SERIALIZABLE transaction.';
    END IF;
    PERFORM smartpay.lock_order(p_order_id);
END
$$;

-- Refuses the request when the order is cancelled or its cancelOrRefund is under way or
-- requested; `what` names the request in the message.
CREATE FUNCTION smartpay.refuse_if_cancelled(p_order_id text, p_what text, p_sqlstate text)
RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_kind  text;
    v_state text;
    v_id    uuid;
    v_req   bigint;
BEGIN
    SELECT m.kind, m.state, m.modification_id INTO v_kind, v_state, v_id
    FROM smartpay.modifications m
    WHERE m.order_id = p_order_id AND m.kind IN ('cancel', 'cancel_or_refund')
      AND m.state <> 'refused'
    ORDER BY m.created_at DESC
    LIMIT 1;
    IF FOUND AND v_state = 'needs_attention' THEN
        RAISE EXCEPTION USING ERRCODE = p_sqlstate,
            MESSAGE = format('%s refused: order %s has a %s %s that needs attention',
                             p_what, p_order_id, v_kind, v_id),
            HINT = 'Find out whether it happened (smartpayctl show) before anything else.';
    ELSIF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = p_sqlstate,
            MESSAGE = format('%s refused: order %s %s', p_what, p_order_id,
                CASE v_state
                    WHEN 'succeeded' THEN format('is cancelled (%s %s succeeded)', v_kind, v_id)
                    ELSE format('is being cancelled (%s %s is pending)', v_kind, v_id)
                END);
    END IF;
    SELECT r.request_id INTO v_req
    FROM smartpay.requests r
    WHERE r.order_id = p_order_id AND r.kind = 'cancel_or_refund' AND r.modification_id IS NULL
    ORDER BY r.request_id
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = p_sqlstate,
            MESSAGE = format('%s refused: order %s has an open cancel_or_refund request %s',
                             p_what, p_order_id, v_req);
    END IF;
END
$$;

-- Amounts of the order's refunds in minor units: succeeded, in progress (pending or
-- needs_attention modifications) and requested (open requests).
CREATE FUNCTION smartpay.refund_totals(
    p_order_id text,
    OUT refunded_minor bigint,
    OUT in_progress_minor bigint,
    OUT requested_minor bigint)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(m.amount_minor) FILTER (WHERE m.state = 'succeeded'), 0)::bigint,
           coalesce(sum(m.amount_minor) FILTER (WHERE m.state IN ('pending', 'needs_attention')),
                    0)::bigint,
           (SELECT coalesce(sum(r.amount_minor), 0)::bigint
            FROM smartpay.requests r
            WHERE r.order_id = p_order_id AND r.kind = 'refund' AND r.modification_id IS NULL)
    FROM smartpay.modifications m
    WHERE m.order_id = p_order_id AND m.kind = 'refund'
$$;

-- Asks for a refund of `p_amount` (major units of the captured currency) of a captured
-- order; returns the request id. The daemon sends it as its own refund modification,
-- one at a time per transaction. Validated under the order's lock: the order is known
-- and captured, not cancelled, the amount > 0 with at most the currency's fraction
-- digits, and every refund succeeded, in progress or requested plus this one stays
-- within the captured amount.
CREATE FUNCTION smartpay.request_refund(p_order_id text, p_amount numeric, p_reason text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    v_captured bigint;
    v_currency text;
    v_state    text;
    v_exponent smallint;
    v_minor    bigint;
    v_totals   record;
    v_used     bigint;
    v_request  bigint;
BEGIN
    PERFORM smartpay.begin_request(p_order_id, p_reason);
    IF p_amount IS NULL OR p_amount <= 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'SP004',
            MESSAGE = format('refund refused: amount %s for order %s must be greater than zero',
                             coalesce(p_amount::text, 'NULL'), p_order_id);
    END IF;

    SELECT m.amount_minor, m.currency::text INTO v_captured, v_currency
    FROM smartpay.modifications m
    WHERE m.order_id = p_order_id AND m.kind = 'capture' AND m.state = 'succeeded';
    IF NOT FOUND THEN
        IF NOT smartpay.order_known(p_order_id) THEN
            RAISE EXCEPTION USING ERRCODE = 'SP001',
                MESSAGE = format('refund refused: unknown order %s', p_order_id);
        END IF;
        SELECT m.state INTO v_state
        FROM smartpay.modifications m
        WHERE m.order_id = p_order_id AND m.kind = 'capture'
        ORDER BY m.state = 'refused', m.created_at DESC
        LIMIT 1;
        RAISE EXCEPTION USING ERRCODE = 'SP002',
            MESSAGE = format('refund refused: order %s has not been captured (%s)', p_order_id,
                             CASE WHEN v_state IS NULL THEN 'no capture'
                                  ELSE 'its capture is ' || v_state END),
            HINT = 'Only a succeeded capture can be refunded; cancel an uncaptured order with smartpay.request_cancel_or_refund.';
    END IF;
    PERFORM smartpay.refuse_if_cancelled(p_order_id, 'refund', 'SP003');

    SELECT c.exponent INTO v_exponent FROM smartpay.currencies c WHERE c.code = v_currency;
    IF v_exponent IS NULL OR v_captured IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SP009',
            MESSAGE = format('refund refused: the capture of order %s has no known amount and currency (%s %s)',
                             p_order_id, coalesce(v_captured::text, 'NULL'),
                             coalesce(v_currency, 'NULL')),
            HINT = 'smartpay.currencies is filled by smartpayctl migrate.';
    END IF;
    IF p_amount <> round(p_amount, v_exponent) THEN
        RAISE EXCEPTION USING ERRCODE = 'SP005',
            MESSAGE = format('refund refused: amount %s for order %s has more fraction digits than %s allows (%s)',
                             p_amount, p_order_id, v_currency, v_exponent);
    END IF;
    IF p_amount * (10::numeric ^ v_exponent) >= 1e18 THEN
        RAISE EXCEPTION USING ERRCODE = 'SP004',
            MESSAGE = format('refund refused: amount %s %s for order %s is too large',
                             p_amount, v_currency, p_order_id);
    END IF;
    v_minor := (p_amount * (10::numeric ^ v_exponent))::bigint;

    SELECT * INTO v_totals FROM smartpay.refund_totals(p_order_id);
    v_used := v_totals.refunded_minor + v_totals.in_progress_minor + v_totals.requested_minor;
    IF v_used + v_minor > v_captured THEN
        RAISE EXCEPTION USING ERRCODE = 'SP006',
            MESSAGE = format('refund refused: %s %s for order %s exceeds the refundable amount %s %s',
                             smartpay.minor_to_numeric(v_minor, v_currency), v_currency, p_order_id,
                             smartpay.minor_to_numeric(greatest(v_captured - v_used, 0), v_currency),
                             v_currency),
            DETAIL = format('Captured %s %s; refunded %s, in progress %s, requested %s.',
                            smartpay.minor_to_numeric(v_captured, v_currency), v_currency,
                            smartpay.minor_to_numeric(v_totals.refunded_minor, v_currency),
                            smartpay.minor_to_numeric(v_totals.in_progress_minor, v_currency),
                            smartpay.minor_to_numeric(v_totals.requested_minor, v_currency));
    END IF;

    INSERT INTO smartpay.requests (order_id, kind, amount_minor, currency, reason)
    VALUES (p_order_id, 'refund', v_minor, v_currency, p_reason)
    RETURNING request_id INTO v_request;
    RETURN v_request;
END
$$;

-- Asks for a cancelOrRefund of the order (SmartPay cancels it before capture, refunds it
-- in full after); returns the request id. Refused when a cancel or cancelOrRefund
-- already succeeded, is in flight or is requested, when the order has no SmartPay
-- transaction, and when everything captured is already refunded.
CREATE FUNCTION smartpay.request_cancel_or_refund(p_order_id text, p_reason text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    v_captured    bigint;
    v_currency    text;
    v_transaction text;
    v_totals      record;
    v_request     bigint;
BEGIN
    PERFORM smartpay.begin_request(p_order_id, p_reason);
    IF NOT smartpay.order_known(p_order_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'SP001',
            MESSAGE = format('cancel_or_refund refused: unknown order %s', p_order_id);
    END IF;
    PERFORM smartpay.refuse_if_cancelled(p_order_id, 'cancel_or_refund', 'SP007');

    SELECT m.transaction_id INTO v_transaction
    FROM smartpay.modifications m
    WHERE m.order_id = p_order_id AND m.transaction_id IS NOT NULL
    ORDER BY m.kind = 'capture' AND m.state = 'succeeded' DESC, m.created_at DESC
    LIMIT 1;
    IF v_transaction IS NULL THEN
        SELECT s.transaction_id INTO v_transaction FROM smartpay.shop_order(p_order_id) s;
    END IF;
    IF v_transaction IS NULL OR v_transaction = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'SP010',
            MESSAGE = format('cancel_or_refund refused: order %s has no SmartPay transaction',
                             p_order_id);
    END IF;

    SELECT m.amount_minor, m.currency::text INTO v_captured, v_currency
    FROM smartpay.modifications m
    WHERE m.order_id = p_order_id AND m.kind = 'capture' AND m.state = 'succeeded';
    IF FOUND THEN
        SELECT * INTO v_totals FROM smartpay.refund_totals(p_order_id);
        IF v_totals.refunded_minor + v_totals.in_progress_minor + v_totals.requested_minor
           >= v_captured THEN
            RAISE EXCEPTION USING ERRCODE = 'SP008',
                MESSAGE = format('cancel_or_refund refused: order %s is already fully refunded (%s %s)',
                                 p_order_id, smartpay.minor_to_numeric(v_captured, v_currency),
                                 v_currency);
        END IF;
    END IF;

    INSERT INTO smartpay.requests (order_id, kind, reason)
    VALUES (p_order_id, 'cancel_or_refund', p_reason)
    RETURNING request_id INTO v_request;
    RETURN v_request;
END
$$;

-- Each order's payment state, from the ledger and the requests (the orders relation is
-- configuration, so a view cannot name it: see order_payment). One row per order id
-- with a modification or a request. Money in minor units and as numeric in major units.
--   capture_state        the live capture's state (else the latest refused one's), or NULL
--   captured_minor       the succeeded capture's amount, else 0
--   refunded_minor       succeeded refunds; everything captured once a cancelOrRefund
--                        succeeded after the capture
--   refund_pending_minor refunds pending or needing attention, plus open refund requests
--   refundable_minor     what smartpay.request_refund would still accept
--   cancel_state         the live cancel/cancelOrRefund's state (else the latest refused)
--   cancelled            a cancel or cancelOrRefund succeeded
--   deadline             the authorization deadline the daemon recorded
--   last_*               the newest modification
CREATE VIEW smartpay.order_payments AS
SELECT o.order_id,
       coalesce(cap.transaction_id, last.transaction_id) AS transaction_id,
       coalesce(cap.currency, last.currency)::text AS currency,
       cap.state AS capture_state,
       coalesce(cap.captured_minor, 0) AS captured_minor,
       smartpay.minor_to_numeric(coalesce(cap.captured_minor, 0),
                                 coalesce(cap.currency, last.currency)) AS captured,
       t.refunded_minor,
       smartpay.minor_to_numeric(t.refunded_minor, coalesce(cap.currency, last.currency)) AS refunded,
       t.refund_pending_minor,
       smartpay.minor_to_numeric(t.refund_pending_minor, coalesce(cap.currency, last.currency))
           AS refund_pending,
       t.refundable_minor,
       smartpay.minor_to_numeric(t.refundable_minor, coalesce(cap.currency, last.currency))
           AS refundable,
       can.state AS cancel_state,
       coalesce(can.state = 'succeeded', false) AS cancelled,
       coalesce(cap.deadline, last.deadline) AS deadline,
       last.modification_id AS last_modification_id,
       last.kind AS last_kind,
       last.state AS last_state,
       last.updated_at AS last_at,
       al.open_alerts,
       rq.pending_requests
FROM (SELECT m.order_id FROM smartpay.modifications m
      UNION
      SELECT r.order_id FROM smartpay.requests r) o
LEFT JOIN LATERAL (
    SELECT m.transaction_id, m.currency, m.state, m.deadline,
           CASE WHEN m.state = 'succeeded' THEN m.amount_minor END AS captured_minor
    FROM smartpay.modifications m
    WHERE m.order_id = o.order_id AND m.kind = 'capture'
    ORDER BY m.state = 'refused', m.created_at DESC
    LIMIT 1) cap ON true
LEFT JOIN LATERAL (
    SELECT m.modification_id, m.transaction_id, m.currency, m.kind, m.state, m.deadline,
           m.updated_at
    FROM smartpay.modifications m
    WHERE m.order_id = o.order_id
    ORDER BY m.created_at DESC, m.modification_id DESC
    LIMIT 1) last ON true
LEFT JOIN LATERAL (
    SELECT m.state
    FROM smartpay.modifications m
    WHERE m.order_id = o.order_id AND m.kind IN ('cancel', 'cancel_or_refund')
    ORDER BY m.state = 'refused', m.created_at DESC
    LIMIT 1) can ON true
CROSS JOIN LATERAL smartpay.refund_totals(o.order_id) rt
CROSS JOIN LATERAL (
    SELECT CASE WHEN can.state = 'succeeded' AND cap.captured_minor IS NOT NULL
                THEN cap.captured_minor ELSE rt.refunded_minor END AS refunded_minor,
           rt.in_progress_minor + rt.requested_minor AS refund_pending_minor,
           CASE WHEN cap.captured_minor IS NULL OR can.state IS NOT NULL
                     OR EXISTS (SELECT 1 FROM smartpay.requests r
                                WHERE r.order_id = o.order_id AND r.kind = 'cancel_or_refund'
                                  AND r.modification_id IS NULL)
                THEN 0
                ELSE greatest(cap.captured_minor - rt.refunded_minor - rt.in_progress_minor
                              - rt.requested_minor, 0)
           END AS refundable_minor) t
CROSS JOIN LATERAL (
    SELECT count(*) AS open_alerts
    FROM smartpay.alerts a
    WHERE a.order_id = o.order_id AND a.acknowledged_at IS NULL) al
CROSS JOIN LATERAL (
    SELECT count(*) AS pending_requests
    FROM smartpay.requests r
    WHERE r.order_id = o.order_id AND r.modification_id IS NULL) rq;

-- One order's payment state: order_payments joined with its row in the orders relation
-- (status, authorized amount, deadline computed as the daemon does). No row when the
-- order is neither in the ledger nor in the relation.
CREATE FUNCTION smartpay.order_payment(p_order_id text)
RETURNS TABLE (
    order_id             text,
    in_relation          boolean,
    status               text,
    transaction_id       text,
    currency             text,
    authorized_minor     bigint,
    authorized           numeric,
    authorized_at        timestamptz,
    deadline             timestamptz,
    capture_state        text,
    captured_minor       bigint,
    captured             numeric,
    refunded_minor       bigint,
    refunded             numeric,
    refund_pending_minor bigint,
    refund_pending       numeric,
    refundable_minor     bigint,
    refundable           numeric,
    cancel_state         text,
    cancelled            boolean,
    last_modification_id uuid,
    last_kind            text,
    last_state           text,
    last_at              timestamptz,
    open_alerts          bigint,
    pending_requests     bigint)
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT p_order_id,
           s.in_relation,
           s.status,
           coalesce(p.transaction_id, s.transaction_id),
           coalesce(p.currency, s.currency),
           (s.amount * (10::numeric ^ c.exponent))::bigint,
           smartpay.minor_to_numeric((s.amount * (10::numeric ^ c.exponent))::bigint, c.code),
           s.authorized_at,
           coalesce(s.deadline, p.deadline),
           p.capture_state,
           coalesce(p.captured_minor, 0),
           coalesce(p.captured, smartpay.minor_to_numeric(0, coalesce(p.currency, s.currency))),
           coalesce(p.refunded_minor, 0),
           coalesce(p.refunded, smartpay.minor_to_numeric(0, coalesce(p.currency, s.currency))),
           coalesce(p.refund_pending_minor, 0),
           coalesce(p.refund_pending, smartpay.minor_to_numeric(0, coalesce(p.currency, s.currency))),
           coalesce(p.refundable_minor, 0),
           coalesce(p.refundable, smartpay.minor_to_numeric(0, coalesce(p.currency, s.currency))),
           p.cancel_state,
           coalesce(p.cancelled, false),
           p.last_modification_id,
           p.last_kind,
           p.last_state,
           p.last_at,
           coalesce(p.open_alerts, 0),
           coalesce(p.pending_requests, 0)
    FROM smartpay.shop_order(p_order_id) s
    LEFT JOIN smartpay.order_payments p ON p.order_id = p_order_id
    LEFT JOIN smartpay.currencies c ON c.code = coalesce(p.currency, s.currency)
    WHERE s.in_relation OR p.order_id IS NOT NULL
$$;
