-- Wake the daemon when a modification becomes pending again (an operator's
-- `smartpayctl retry`, or any requeue done in SQL), instead of waiting for the poll.
CREATE FUNCTION smartpay.modifications_requeued_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('smartpay_due', NEW.modification_id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER modifications_requeued AFTER UPDATE OF state ON smartpay.modifications
    FOR EACH ROW WHEN (OLD.state <> 'pending' AND NEW.state = 'pending')
    EXECUTE FUNCTION smartpay.modifications_requeued_notify();
