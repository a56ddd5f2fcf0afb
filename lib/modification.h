/* Modification requests: kinds, endpoints and the exact JSON body sent to SmartPay. Pure. */
#ifndef SP_MODIFICATION_H
#define SP_MODIFICATION_H

#include <stdbool.h>
#include <stdint.h>

enum mod_kind { MOD_CAPTURE, MOD_CANCEL, MOD_CANCEL_OR_REFUND, MOD_REFUND };

/* The ledger's kind column: "capture", "cancel", "cancel_or_refund", "refund";
 * "unknown" for a value outside the enum. */
const char *mod_kind_name(enum mod_kind k);

/* Parses a ledger kind name (exact, lowercase); false when unknown. */
bool mod_kind_parse(const char *name, enum mod_kind *k) __attribute__((warn_unused_result));

/* The endpoint path relative to the base URL, e.g. "/payment/cancelOrRefund";
 * NULL for a value outside the enum. */
const char *mod_kind_path(enum mod_kind k);

/* Longest field values accepted, in characters (UTF-8 code points). */
#define MOD_TRANSACTION_ID_MAX 36
#define MOD_MERCHANT_KEY_MAX 36
#define MOD_MODIFICATION_ID_MAX 64
#define MOD_REFUND_MODIFICATION_ID_MAX 36
#define MOD_DESCRIPTION_MAX 127

/* One modification request. The strings are borrowed: the caller owns them. */
struct mod_request {
	enum mod_kind kind;
	const char *transaction_id;  /* <= 36 chars, required */
	const char *merchant_key;    /* <= 36, required */
	const char *modification_id; /* required; <= 64 (refund <= 36) */
	/* capture/refund: send modifiedAmount (partial); cancel/cancelOrRefund never */
	bool has_amount;
	int64_t amount_minor; /* > 0 when has_amount */
	const char *currency; /* ISO 4217, with has_amount */
	/* optional (NULL or "" means none), <= 127 chars; cancel/cancelOrRefund: top-level
	 * "description"; capture/refund: modifiedAmount.description when has_amount,
	 * else omitted */
	const char *description;
};

/* Builds the request body: compact JSON with deterministic bytes, fields in the order
 * transactionId, merchantKey, modificationId, then modifiedAmount {amount,
 * currencyCode, description?} or description. The amount is a JSON number in major
 * units with exactly the currency's exponent digits ({"amount":40.00,...}).
 * Every string must be valid UTF-8. Returns a malloc'd string the caller frees, or
 * NULL with *why set to a static reason for invalid input. */
char *mod_request_body(const struct mod_request *req, const char **why)
    __attribute__((warn_unused_result));

/* The header lines every SmartPay request carries, ready for http_request.headers: JSON
 * content, Accept-Language en-US and, when configured, Origin. */
struct mod_headers {
	const char *lines[4]; /* NULL-terminated "Name: value" list */
	char *origin;         /* the owned "Origin: ..." line, or NULL */
};

/* Fills h for the configured `origin` (NULL or "" sends none); mod_headers_free releases
 * it. */
void mod_headers_init(struct mod_headers *h, const char *origin);

/* Frees what mod_headers_init allocated. */
void mod_headers_free(struct mod_headers *h);

#endif
