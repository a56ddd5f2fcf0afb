/* Which modification an order row or a shop request needs, and its exact request body.
 * Pure: no I/O. */
#ifndef SP_INTENT_H
#define SP_INTENT_H

#include "records.h"

/* Builds the intent for a candidate order (capture, cancel, cancel_or_refund, or the
 * refund of what remains captured of a cancelled order) with the given modification id.
 * Bad data makes it a local refusal: in->reason says why (quoting at most a short,
 * printable piece of the bad value) and in->body is NULL. Bad data is: a transaction id
 * missing or not 1 to 36 printable ASCII characters, a currency missing or unknown, an
 * amount or capture_amount missing, malformed, too large or not positive, a capture
 * above the authorization, authorized_at or authorization_expires_at present but not a
 * finite time between 1970 and 9999, a capture without either, a capture of an order
 * whose cancel succeeded or is pending or in doubt, an unbuildable body. Before a
 * capture or cancel the row is checked; after a succeeded capture the ledger's capture
 * counts (its transaction, currency and amount). A refused intent records no unknown
 * currency (in->currency NULL). *reason_buf owns the reason text (free it with the
 * body). Pointers into `c` are kept. */
void intent_from_order(const char *merchant_key, const char *modification_id,
                       const struct candidate *c, struct intent *in, char **reason_buf);

/* The same for a shop request: a refund of its amount, re-checked against the ledger (a
 * succeeded capture in the same currency, the order not cancelled, refunds succeeded,
 * pending or in doubt plus this one within the captured amount); or a cancel_or_refund,
 * which after partial refunds becomes a refund of exactly what remains captured. */
void intent_from_request(const char *merchant_key, const char *modification_id,
                         const struct shop_request *r, struct intent *in, char **reason_buf);

#endif
