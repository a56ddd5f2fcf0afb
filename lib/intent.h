/* Which modification an order row or a shop request needs, and its exact request body.
 * Pure: no I/O. */
#ifndef SP_INTENT_H
#define SP_INTENT_H

#include "store.h"

/* Builds the intent for a candidate order (capture, cancel or cancel_or_refund) with the
 * given modification id. Bad data (no transaction id, unknown currency, amount not
 * positive, capture above the authorization, an unbuildable body) makes it a local
 * refusal: in->reason says why and in->body is NULL. *reason_buf owns the reason text
 * when one was formatted (free it with the body). Pointers into `c` are kept. */
void intent_from_order(const char *merchant_key, const char *modification_id,
                       const struct store_candidate *c, struct store_intent *in, char **reason_buf);

/* The same for a shop request: a refund of its amount, or a cancel_or_refund. */
void intent_from_request(const char *merchant_key, const char *modification_id,
                         const struct store_request *r, struct store_intent *in, char **reason_buf);

#endif
