-- Reconciliation with the gateway's own record (GET /payment/status): outcomes settled
-- from the history, effects made outside the daemon, and when each transaction was last
-- compared.

-- settled_by: where a row's outcome came from, the answer to its own request or the
-- transaction's status history. origin: 'daemon' for the rows the daemon creates,
-- 'external' for an effect found in the gateway's history that the daemon never sent (a
-- portal capture, a cancel by support): recorded succeeded, without a request body, and
-- never sent. external_id is the gateway's modificationId of such an effect.
ALTER TABLE smartpay.modifications
    ADD COLUMN settled_by text NOT NULL DEFAULT 'answer'
        CHECK (settled_by IN ('answer', 'status')),
    ADD COLUMN origin text NOT NULL DEFAULT 'daemon'
        CHECK (origin IN ('daemon', 'external')),
    ADD COLUMN external_id text,
    ADD CONSTRAINT modifications_external_recorded_only
        CHECK (origin = 'daemon'
               OR (state = 'succeeded' AND request_body IS NULL AND transaction_id IS NOT NULL
                   AND octet_length(external_id) BETWEEN 1 AND 256)),
    ADD CONSTRAINT modifications_external_id_external_only
        CHECK (external_id IS NULL OR origin = 'external');

-- An external row has no request body: the body rule of 001 now reads "only a row that is
-- refused or external lacks one".
DO $$
DECLARE
    v_name name;
BEGIN
    FOR v_name IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'smartpay.modifications'::regclass AND contype = 'c'
          AND pg_get_constraintdef(oid) LIKE '%request_body IS NOT NULL%'
          AND pg_get_constraintdef(oid) NOT LIKE '%origin%'
    LOOP
        EXECUTE format('ALTER TABLE smartpay.modifications DROP CONSTRAINT %I', v_name);
    END LOOP;
END
$$;
ALTER TABLE smartpay.modifications
    ADD CONSTRAINT modifications_body_unless_refused_or_external
        CHECK (request_body IS NOT NULL OR state = 'refused' OR origin = 'external');

-- One external row per effect of the gateway.
CREATE UNIQUE INDEX modifications_one_per_external_effect
    ON smartpay.modifications (transaction_id, external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX modifications_by_transaction ON smartpay.modifications (transaction_id);

-- When each transaction was last compared with the gateway, and what was found.
CREATE TABLE smartpay.reconciliations (
    transaction_id  text PRIMARY KEY,
    order_id        text NOT NULL,
    reconciled_at   timestamptz NOT NULL DEFAULT now(),
    payment_status  text,
    findings        integer NOT NULL DEFAULT 0 CHECK (findings >= 0)
);
CREATE INDEX reconciliations_oldest ON smartpay.reconciliations (reconciled_at);
