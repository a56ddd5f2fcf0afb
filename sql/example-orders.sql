-- An example shop orders table following the contract in the README (design.md,
-- "The orders contract"). Used by the tests and the demo.
CREATE TABLE IF NOT EXISTS public.orders (
    id                       bigserial PRIMARY KEY,
    status                   text NOT NULL DEFAULT 'authorized',
    smartpay_transaction_id  text,
    amount                   numeric(18,2) NOT NULL,
    currency                 char(3) NOT NULL DEFAULT 'EUR',
    capture_amount           numeric(18,2),
    authorized_at            timestamptz NOT NULL DEFAULT now(),
    authorization_expires_at timestamptz
);
CREATE INDEX IF NOT EXISTS orders_status ON public.orders (status);
-- The expiry sweep and the gauges read only the deadlines near now through these
-- (`smartpayctl migrate` warns when one is missing).
CREATE INDEX IF NOT EXISTS orders_authorized_at_idx ON public.orders (authorized_at);
CREATE INDEX IF NOT EXISTS orders_authorization_expires_at_idx
    ON public.orders (authorization_expires_at);
