-- The shop-facing functions run with the rights of their owner (whoever ran the
-- migrations, the owner of schema smartpay): a shop role needs USAGE on the schema and
-- EXECUTE on them (SELECT on smartpay.order_payments for the view), no privilege on the
-- tables and none on the orders relation. While they run with those rights their
-- search_path is fixed, pg_catalog first and pg_temp last, so that functions, operators
-- or tables in a schema the caller controls cannot stand in for the built-in ones.
ALTER FUNCTION smartpay.request_refund(text, numeric, text)
    SECURITY DEFINER SET search_path = pg_catalog, smartpay, pg_temp;
ALTER FUNCTION smartpay.request_cancel_or_refund(text, text)
    SECURITY DEFINER SET search_path = pg_catalog, smartpay, pg_temp;
ALTER FUNCTION smartpay.order_payment(text)
    SECURITY DEFINER SET search_path = pg_catalog, smartpay, pg_temp;
-- What the view smartpay.order_payments calls: functions in a view run with the rights
-- of whoever selects from it, so these two read the ledger as its owner. Both stay
-- executable by any role with USAGE on the schema; they only read.
ALTER FUNCTION smartpay.refund_totals(text)
    SECURITY DEFINER SET search_path = pg_catalog, smartpay, pg_temp;
ALTER FUNCTION smartpay.minor_to_numeric(bigint, text)
    SECURITY DEFINER SET search_path = pg_catalog, smartpay, pg_temp;

-- Inside those functions current_user is their owner: a request records the role that
-- logged in (session_user) as the one who asked.
ALTER TABLE smartpay.requests ALTER COLUMN requested_by SET DEFAULT session_user;

-- Asking for money to move, and reading each order's payments, is for the roles granted
-- it, not for every role that can reach the schema (the daemon's, for one).
REVOKE EXECUTE ON FUNCTION smartpay.request_refund(text, numeric, text),
                           smartpay.request_cancel_or_refund(text, text),
                           smartpay.order_payment(text)
    FROM PUBLIC;

-- Shop roles set up for the SECURITY INVOKER functions held INSERT on smartpay.requests:
-- they keep what they could do (EXECUTE on the functions) and lose the direct write.
DO $$
DECLARE
    v_grantee regrole;
BEGIN
    FOR v_grantee IN
        SELECT DISTINCT a.grantee::regrole
        FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
        WHERE c.oid = 'smartpay.requests'::regclass AND a.privilege_type = 'INSERT'
          AND a.grantee <> c.relowner AND a.grantee <> 0
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION smartpay.request_refund(text, numeric, text), '
                       'smartpay.request_cancel_or_refund(text, text), '
                       'smartpay.order_payment(text) TO %s', v_grantee);
        EXECUTE format('REVOKE INSERT ON smartpay.requests FROM %s', v_grantee);
        EXECUTE format('REVOKE USAGE, UPDATE ON SEQUENCE smartpay.requests_request_id_seq '
                       'FROM %s', v_grantee);
    END LOOP;
    REVOKE INSERT ON smartpay.requests FROM PUBLIC;
    REVOKE USAGE, UPDATE ON SEQUENCE smartpay.requests_request_id_seq FROM PUBLIC;
END
$$;
