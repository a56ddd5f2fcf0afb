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
