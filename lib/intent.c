#include "autoconfig.h"

#include "intent.h"

#include "modification.h"
#include "money.h"
#include "xmalloc.h"

#include <stdio.h>
#include <string.h>

/* Longest piece of a bad value quoted in a reason. */
#define QUOTE_MAX 40

/* A bad value as a reason may quote it: printable ASCII only (others become '?'), at
 * most QUOTE_MAX characters, so that a hostile row gives a short, storable reason. */
static void quote_value(const char *value, char out[QUOTE_MAX + 4])
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)value; *p && n < QUOTE_MAX; p++)
		out[n++] = *p >= 0x20 && *p < 0x7f ? (char)*p : '?';
	if (value[n] != '\0' && n == QUOTE_MAX) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

/* True for a value SmartPay could have issued as a transactionId: 1 to 36 printable
 * ASCII characters (a GUID has 36), none of them a space. */
static bool transaction_id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > MOD_TRANSACTION_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)id[i];
		if (ch <= 0x20 || ch >= 0x7f)
			return false;
	}
	return true;
}

/* Why a transaction id cannot be sent, or NULL. `what` names it in the reason. */
static char *transaction_id_problem(const char *id, const char *what)
{
	if (id == NULL || id[0] == '\0')
		return xasprintf("missing %s", what);
	if (transaction_id_ok(id))
		return NULL;
	char q[QUOTE_MAX + 4];
	quote_value(id, q);
	return xasprintf("%s '%s' is not a SmartPay transaction id (1 to %d printable ASCII "
	                 "characters)",
	                 what, q, MOD_TRANSACTION_ID_MAX);
}

/* Why a currency is not one we can move money in, or NULL. */
static char *currency_problem(const char *currency)
{
	if (currency == NULL || currency[0] == '\0')
		return xstrdup("missing currency");
	if (money_exponent(currency) >= 0)
		return NULL;
	char q[QUOTE_MAX + 4];
	quote_value(currency, q);
	return xasprintf("unknown currency '%s'", q);
}

/* Parses an amount column into minor units; on failure returns why. */
static char *amount_problem(const char *column, const char *text, const char *currency,
                            int64_t *minor)
{
	const char *why = NULL;
	if (text == NULL)
		return xasprintf("missing %s", column);
	if (!money_parse(text, currency, minor, &why)) {
		char q[QUOTE_MAX + 4];
		quote_value(text, q);
		return xasprintf("invalid %s %s: %s", column, q, why);
	}
	if (*minor <= 0)
		return xasprintf("%s must be greater than zero", column);
	return NULL;
}

/* Why the order's times give no deadline, or NULL. A capture needs one; a time that is
 * there but unusable (infinite, out of range, not a time) is bad data for any kind. */
static char *deadline_problem(const struct candidate *c)
{
	if (c->has_deadline)
		return NULL;
	char q[QUOTE_MAX + 4];
	if (c->expires_at) {
		quote_value(c->expires_at, q);
		return xasprintf(
		    "authorization_expires_at '%s' is not a time between 1970 and 9999", q);
	}
	if (c->authorized_at) {
		quote_value(c->authorized_at, q);
		return xasprintf("authorized_at '%s' is not a time between 1970 and 9999", q);
	}
	if (c->kind == MOD_CAPTURE)
		return xstrdup("authorized_at and authorization_expires_at are both null: the "
		               "authorization deadline is unknown");
	return NULL;
}

/* Fills the fields every intent has. A currency we do not know is not recorded (the
 * ledger's column holds ISO 4217 codes only); the reason names it. */
static void intent_init(struct intent *in, const char *modification_id, const char *order_id,
                        const char *transaction_id, enum mod_kind kind, const char *currency)
{
	memset(in, 0, sizeof(*in));
	snprintf(in->modification_id, sizeof(in->modification_id), "%s", modification_id);
	in->order_id = order_id;
	in->transaction_id = transaction_id;
	in->kind = kind;
	in->currency = money_exponent(currency) >= 0 ? currency : NULL;
	in->amount_minor = -1;
}

/* Builds the body, or records why it cannot be built. Takes `reason` (may be NULL). */
static void intent_finish(struct intent *in, const struct mod_request *req, char *reason,
                          char **reason_buf)
{
	const char *why = NULL;
	if (reason == NULL) {
		in->body = mod_request_body(req, &why);
		if (in->body == NULL)
			reason = xstrdup(why ? why : "request could not be built");
	}
	if (reason)
		in->amount_minor = -1;
	*reason_buf = reason;
	in->reason = reason;
}

/* The checks of an order before its capture or cancel: the row's own data. Sets the
 * authorized amount and, for a capture, the amount to capture. */
static char *order_row_problem(const struct candidate *c, int64_t *amount, int64_t *capture)
{
	char *why = transaction_id_problem(c->transaction_id, "smartpay_transaction_id");
	if (why == NULL)
		why = currency_problem(c->currency);
	if (why == NULL)
		why = amount_problem("amount", c->amount, c->currency, amount);
	if (why == NULL)
		why = deadline_problem(c);
	if (why == NULL && c->kind == MOD_CAPTURE && c->capture_amount) {
		why = amount_problem("capture_amount", c->capture_amount, c->currency, capture);
		if (why == NULL && *capture > *amount)
			why = xstrdup("capture_amount above the authorized amount");
	}
	return why;
}

/* Why a capture must not go because the order is cancelled, or NULL. */
static char *cancelled_problem(const struct candidate *c)
{
	if (c->cancel_state == NULL)
		return NULL;
	const char *how = strcmp(c->cancel_state, "succeeded") == 0 ? "succeeded"
	                  : strcmp(c->cancel_state, "pending") == 0
	                      ? "is pending"
	                      : "is in doubt (needs attention)";
	return xasprintf("the order is cancelled (cancel %s %s): no capture is sent",
	                 c->cancel_id ? c->cancel_id : "?", how);
}

/* The amount a refund standing for a cancel moves: what remains captured. */
static char *remaining_problem(int64_t captured, int64_t refunded, int64_t *remaining)
{
	if (captured < 0)
		return xstrdup("the order has no succeeded capture to refund");
	*remaining = captured - refunded;
	if (*remaining <= 0)
		return xstrdup("nothing left to refund: the refunds already reach the captured "
		               "amount");
	return NULL;
}

void intent_from_order(const char *merchant_key, const char *modification_id,
                       const struct candidate *c, struct intent *in, char **reason_buf)
{
	intent_init(in, modification_id, c->order_id, c->transaction_id, c->kind, c->currency);
	in->deadline_ms = c->has_deadline ? c->deadline_ms : 0;
	int64_t amount = 0, capture = -1;
	bool partial = false;
	char *why = NULL;
	switch (c->kind) {
	case MOD_CAPTURE:
	case MOD_CANCEL:
		why = c->kind == MOD_CAPTURE ? cancelled_problem(c) : NULL;
		if (why == NULL)
			why = order_row_problem(c, &amount, &capture);
		/* a full capture leaves modifiedAmount out, as the API asks */
		partial = c->kind == MOD_CAPTURE && capture > 0 && capture < amount;
		in->amount_minor = capture > 0 ? capture : amount;
		break;
	case MOD_CANCEL_OR_REFUND:
		/* after the capture the ledger's capture counts, not the row's amount */
		why = transaction_id_problem(c->transaction_id, "capture transaction id");
		in->amount_minor = c->captured_minor;
		break;
	case MOD_REFUND:
		why = transaction_id_problem(c->transaction_id, "capture transaction id");
		if (why == NULL)
			why = currency_problem(c->currency);
		if (why == NULL)
			why = remaining_problem(c->captured_minor, c->refunded_minor,
			                        &in->amount_minor);
		in->settles_cancel = true;
		partial = true;
		break;
	}
	struct mod_request req = {.kind = c->kind,
	                          .transaction_id = c->transaction_id,
	                          .merchant_key = merchant_key,
	                          .modification_id = in->modification_id,
	                          .has_amount = partial,
	                          .amount_minor = in->amount_minor,
	                          .currency = c->currency};
	intent_finish(in, &req, why, reason_buf);
}

/* Why a refund request must not be sent: it re-checks, at claim time, what
 * smartpay.request_refund checked when it was made (a row written into the table
 * directly was never checked). */
static char *refund_request_problem(const struct shop_request *r)
{
	char *why = NULL;
	char a[MONEY_TEXT_MAX], b[MONEY_TEXT_MAX], c[MONEY_TEXT_MAX];
	if (r->captured_minor < 0 || r->transaction_id == NULL || r->transaction_id[0] == '\0')
		return xstrdup("the order has no successful capture to refund");
	if (r->amount_minor <= 0 || r->currency == NULL)
		return xstrdup("refund request without a positive amount and currency");
	if (r->order_cancelled)
		return xstrdup(
		    "the order was cancelled (cancelOrRefund) before this refund was sent");
	if ((why = transaction_id_problem(r->transaction_id, "capture transaction id")))
		return why;
	if (r->capture_currency == NULL || strcmp(r->currency, r->capture_currency) != 0) {
		char q[QUOTE_MAX + 4];
		quote_value(r->currency, q);
		return xasprintf("refund currency '%s' is not the captured currency %s", q,
		                 r->capture_currency ? r->capture_currency : "(unknown)");
	}
	if ((why = currency_problem(r->currency)))
		return why;
	if (r->amount_minor > r->captured_minor - r->refunded_minor) {
		money_format(r->amount_minor, r->currency, a);
		money_format(r->refunded_minor, r->currency, b);
		money_format(r->captured_minor, r->currency, c);
		return xasprintf("refund of %s %s exceeds what remains captured: %s of %s already "
		                 "refunded or in progress",
		                 a, r->currency, b, c);
	}
	return NULL;
}

void intent_from_request(const char *merchant_key, const char *modification_id,
                         const struct shop_request *r, struct intent *in, char **reason_buf)
{
	const char *currency =
	    r->captured_minor >= 0 && r->capture_currency ? r->capture_currency : r->currency;
	enum mod_kind kind = r->kind;
	/* a cancelOrRefund after partial refunds becomes a refund of what remains */
	if (kind == MOD_CANCEL_OR_REFUND && r->captured_minor >= 0 && r->refunded_minor > 0)
		kind = MOD_REFUND;
	intent_init(in, modification_id, r->order_id, r->transaction_id, kind,
	            kind == MOD_REFUND && r->kind == MOD_REFUND ? r->currency : currency);
	in->request_id = r->request_id;
	in->amount_minor = r->amount_minor;
	char *why = NULL;
	if (r->kind == MOD_REFUND) {
		why = refund_request_problem(r);
	} else if (kind == MOD_REFUND) {
		why = transaction_id_problem(r->transaction_id, "capture transaction id");
		if (why == NULL)
			why = currency_problem(currency);
		if (why == NULL)
			why = remaining_problem(r->captured_minor, r->refunded_minor,
			                        &in->amount_minor);
		in->settles_cancel = true;
	} else {
		if (r->transaction_id == NULL || r->transaction_id[0] == '\0')
			why = xstrdup("the order has no smartpay_transaction_id");
		else
			why = transaction_id_problem(r->transaction_id, "smartpay_transaction_id");
		/* informational: cancelOrRefund acts on the whole captured or authorized amount */
		int64_t amount;
		const char *ignored;
		if (r->captured_minor >= 0)
			in->amount_minor = r->captured_minor;
		else if (r->order_amount &&
		         money_parse(r->order_amount, currency, &amount, &ignored))
			in->amount_minor = amount;
	}
	struct mod_request req = {.kind = kind,
	                          .transaction_id = r->transaction_id,
	                          .merchant_key = merchant_key,
	                          .modification_id = in->modification_id,
	                          .has_amount = kind == MOD_REFUND,
	                          .amount_minor = in->amount_minor,
	                          .currency = in->currency};
	intent_finish(in, &req, why, reason_buf);
}
