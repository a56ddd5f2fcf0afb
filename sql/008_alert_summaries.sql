-- Alert summaries: past [alerts] summary_after new alerts of one kind in one expiry sweep,
-- the rest are recorded with summarised = true (listed by `smartpayctl alerts`, never
-- posted to the webhook: webhook_state 'none', no NOTIFY) and one 'alerts_summarised'
-- alert gives their count.
ALTER TABLE smartpay.alerts
    ADD COLUMN summarised boolean NOT NULL DEFAULT false;

DROP TRIGGER alerts_notify ON smartpay.alerts;
CREATE TRIGGER alerts_notify AFTER INSERT ON smartpay.alerts
    FOR EACH ROW WHEN (NOT NEW.summarised) EXECUTE FUNCTION smartpay.alerts_notify();
