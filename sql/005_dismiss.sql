-- An operator can dismiss a refused modification (`smartpayctl dismiss`): the daemon then
-- looks at the order again and, if it still needs one, creates a new modification with a
-- new id. A refusal at the gateway is final for its modificationId, and a bad order row
-- the shop has since corrected deserves a fresh intent.
ALTER TABLE smartpay.modifications
    ADD COLUMN dismissed_at timestamptz,
    ADD COLUMN dismissed_by text,
    ADD CONSTRAINT modifications_dismiss_refused_only
        CHECK (dismissed_at IS NULL OR state = 'refused');
