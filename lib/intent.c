#include "autoconfig.h"

#include "intent.h"

#include "modification.h"
#include "money.h"
#include "xmalloc.h"

#include <stdio.h>
#include <string.h>

/* Fills the fields every intent has. */
static void intent_init(struct store_intent *in, const char *modification_id, const char *order_id,
                        const char *transaction_id, enum mod_kind kind, const char *currency)
{
	memset(in, 0, sizeof(*in));
	snprintf(in->modification_id, sizeof(in->modification_id), "%s", modification_id);
	in->order_id = order_id;
	in->transaction_id = transaction_id;
	in->kind = kind;
	in->currency = currency;
	in->amount_minor = -1;
}

/* Builds the body, or records why it cannot be built. */
static void intent_finish(struct store_intent *in, const struct mod_request *req, const char *why,
                          char **reason_buf)
{
	if (why == NULL && *reason_buf == NULL)
		in->body = mod_request_body(req, &why);
	if (in->body == NULL && *reason_buf == NULL)
		*reason_buf = xstrdup(why ? why : "request could not be built");
	in->reason = *reason_buf;
}

void intent_from_order(const char *merchant_key, const char *modification_id,
                       const struct store_candidate *c, struct store_intent *in, char **reason_buf)
{
	intent_init(in, modification_id, c->order_id, c->transaction_id, c->kind, c->currency);
	in->deadline_ms = c->deadline_ms;
	*reason_buf = NULL;

	const char *why = NULL;
	int64_t amount = 0, capture = -1;
	if (c->transaction_id == NULL || c->transaction_id[0] == '\0')
		why = "missing smartpay_transaction_id";
	else if (c->currency == NULL || money_exponent(c->currency) < 0)
		why = "unknown currency";
	else if (c->amount == NULL)
		why = "missing amount";
	else if (!money_parse(c->amount, c->currency, &amount, &why))
		*reason_buf = xasprintf("invalid amount %s: %s", c->amount, why);
	else if (amount <= 0)
		why = "amount must be greater than zero";
	else if (c->kind == MOD_CAPTURE && c->capture_amount) {
		if (!money_parse(c->capture_amount, c->currency, &capture, &why))
			*reason_buf =
			    xasprintf("invalid capture_amount %s: %s", c->capture_amount, why);
		else if (capture <= 0)
			why = "capture_amount must be greater than zero";
		else if (capture > amount)
			why = "capture_amount above the authorized amount";
	}
	/* a full capture leaves modifiedAmount out, as the API asks */
	bool partial = c->kind == MOD_CAPTURE && capture > 0 && capture < amount;
	in->amount_minor = capture > 0 ? capture : amount;
	struct mod_request req = {.kind = c->kind,
	                          .transaction_id = c->transaction_id,
	                          .merchant_key = merchant_key,
	                          .modification_id = in->modification_id,
	                          .has_amount = partial,
	                          .amount_minor = in->amount_minor,
	                          .currency = c->currency};
	if (why || *reason_buf)
		in->amount_minor = -1;
	intent_finish(in, &req, why, reason_buf);
}

void intent_from_request(const char *merchant_key, const char *modification_id,
                         const struct store_request *r, struct store_intent *in, char **reason_buf)
{
	intent_init(in, modification_id, r->order_id, r->transaction_id, r->kind, r->currency);
	in->request_id = r->request_id;
	in->amount_minor = r->amount_minor;
	*reason_buf = NULL;
	const char *why = NULL;
	if (r->transaction_id == NULL || r->transaction_id[0] == '\0')
		why = r->kind == MOD_REFUND ? "the order has no successful capture to refund"
		                            : "the order has no smartpay_transaction_id";
	else if (r->kind == MOD_REFUND && (r->amount_minor <= 0 || r->currency == NULL))
		why = "refund request without a positive amount and currency";
	else if (r->kind == MOD_REFUND && r->order_cancelled)
		why = "the order was cancelled (cancelOrRefund) before this refund was sent";
	if (why == NULL && r->kind == MOD_CANCEL_OR_REFUND && r->order_amount && r->currency) {
		/* informational: cancelOrRefund always acts on the full amount */
		int64_t amount;
		const char *ignored;
		if (money_parse(r->order_amount, r->currency, &amount, &ignored))
			in->amount_minor = amount;
	}
	struct mod_request req = {.kind = r->kind,
	                          .transaction_id = r->transaction_id,
	                          .merchant_key = merchant_key,
	                          .modification_id = in->modification_id,
	                          .has_amount = r->kind == MOD_REFUND,
	                          .amount_minor = r->amount_minor,
	                          .currency = r->currency};
	intent_finish(in, &req, why, reason_buf);
}
