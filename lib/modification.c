#include "autoconfig.h"

#include "modification.h"

#include "money.h"
#include "text.h"
#include "xmalloc.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Largest amount in minor units whose text fits SmartPay's 18 digits of precision. */
#define MOD_AMOUNT_MAX INT64_C(999999999999999999)

/* A growing output buffer for the body. */
struct mod_buf {
	char *data;
	size_t len;
	size_t cap;
};

const char *mod_kind_name(enum mod_kind k)
{
	switch (k) {
	case MOD_CAPTURE:
		return "capture";
	case MOD_CANCEL:
		return "cancel";
	case MOD_CANCEL_OR_REFUND:
		return "cancel_or_refund";
	case MOD_REFUND:
		return "refund";
	}
	return "unknown";
}

bool mod_kind_parse(const char *name, enum mod_kind *k)
{
	static const enum mod_kind all[] = {MOD_CAPTURE, MOD_CANCEL, MOD_CANCEL_OR_REFUND,
	                                    MOD_REFUND};

	if (name == NULL)
		return false;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcmp(name, mod_kind_name(all[i])) == 0) {
			*k = all[i];
			return true;
		}
	}
	return false;
}

const char *mod_kind_path(enum mod_kind k)
{
	switch (k) {
	case MOD_CAPTURE:
		return "/payment/capture";
	case MOD_CANCEL:
		return "/payment/cancel";
	case MOD_CANCEL_OR_REFUND:
		return "/payment/cancelOrRefund";
	case MOD_REFUND:
		return "/payment/refund";
	}
	return NULL;
}

/* Counts the code points of a UTF-8 string; returns -1 when it is not valid UTF-8
 * (overlong forms, surrogates and values above U+10FFFF are invalid). */
static long utf8_length(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t avail = strlen(s), subpart;
	long n = 0;

	while (avail > 0) {
		size_t k = text_utf8_sequence(p, avail, &subpart);
		if (k == 0)
			return -1;
		p += k;
		avail -= k;
		n++;
	}
	return n;
}

/* Checks one string field: present (unless optional), valid UTF-8, not too long. */
static bool check_field(const char *value, long max, bool required, const char *missing,
                        const char *bad_utf8, const char *too_long, const char **why)
{
	long n;

	if (value == NULL || value[0] == '\0') {
		if (required) {
			*why = missing;
			return false;
		}
		return true;
	}
	n = utf8_length(value);
	if (n < 0) {
		*why = bad_utf8;
		return false;
	}
	if (n > max) {
		*why = too_long;
		return false;
	}
	return true;
}

/* Appends len bytes to the buffer, growing it as needed. */
static void buf_add(struct mod_buf *b, const char *s, size_t len)
{
	xappend(&b->data, &b->len, &b->cap, s, len);
}

/* Appends a NUL-terminated string verbatim. */
static void buf_str(struct mod_buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* Appends s as a JSON string literal: quotes, backslash and control characters escaped. */
static void buf_json_string(struct mod_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;

	buf_add(b, "\"", 1);
	for (const char *p = s; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		char esc[7];
		if (c != '"' && c != '\\' && c >= 0x20)
			continue;
		buf_add(b, run, (size_t)(p - run));
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			buf_add(b, esc, 2);
		} else {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0x0f];
			buf_add(b, esc, 6);
		}
		run = p + 1;
	}
	buf_add(b, run, strlen(run));
	buf_add(b, "\"", 1);
}

/* True for a three-letter uppercase code that money.c knows. */
static bool currency_known(const char *currency)
{
	for (int i = 0; i < 3; i++)
		if (currency[i] < 'A' || currency[i] > 'Z')
			return false;
	return currency[3] == '\0' && money_exponent(currency) >= 0;
}

/* Validates a request against the API's field rules; sets *why on failure. */
static bool mod_request_valid(const struct mod_request *req, const char **why)
{
	bool is_cancel = req->kind == MOD_CANCEL || req->kind == MOD_CANCEL_OR_REFUND;
	long id_max =
	    req->kind == MOD_REFUND ? MOD_REFUND_MODIFICATION_ID_MAX : MOD_MODIFICATION_ID_MAX;

	if (mod_kind_path(req->kind) == NULL) {
		*why = "unknown modification kind";
		return false;
	}
	if (!check_field(req->transaction_id, MOD_TRANSACTION_ID_MAX, true,
	                 "missing transaction id", "transaction id is not valid UTF-8",
	                 "transaction id too long", why) ||
	    !check_field(req->merchant_key, MOD_MERCHANT_KEY_MAX, true, "missing merchant key",
	                 "merchant key is not valid UTF-8", "merchant key too long", why) ||
	    !check_field(req->modification_id, id_max, true, "missing modification id",
	                 "modification id is not valid UTF-8", "modification id too long", why) ||
	    !check_field(req->description, MOD_DESCRIPTION_MAX, false, NULL,
	                 "description is not valid UTF-8", "description too long", why))
		return false;
	if (req->has_amount) {
		if (is_cancel) {
			*why = req->kind == MOD_CANCEL ? "amount on cancel"
			                               : "amount on cancelOrRefund";
			return false;
		}
		if (req->amount_minor <= 0) {
			*why = "amount must be greater than zero";
			return false;
		}
		if (req->amount_minor > MOD_AMOUNT_MAX) {
			*why = "amount too large";
			return false;
		}
		if (req->currency == NULL || req->currency[0] == '\0') {
			*why = "missing currency";
			return false;
		}
		if (!currency_known(req->currency)) {
			*why = "unknown currency";
			return false;
		}
	}
	return true;
}

char *mod_request_body(const struct mod_request *req, const char **why)
{
	static const char *unused;
	struct mod_buf b = {NULL, 0, 0};
	bool has_description;

	if (why == NULL)
		why = &unused;
	if (req == NULL) {
		*why = "no request";
		return NULL;
	}
	if (!mod_request_valid(req, why))
		return NULL;
	has_description = req->description != NULL && req->description[0] != '\0';

	buf_str(&b, "{\"transactionId\":");
	buf_json_string(&b, req->transaction_id);
	buf_str(&b, ",\"merchantKey\":");
	buf_json_string(&b, req->merchant_key);
	buf_str(&b, ",\"modificationId\":");
	buf_json_string(&b, req->modification_id);
	if (req->has_amount) {
		char amount[MONEY_TEXT_MAX];
		if (!money_format(req->amount_minor, req->currency, amount)) {
			free(b.data);
			*why = "unknown currency";
			return NULL;
		}
		buf_str(&b, ",\"modifiedAmount\":{\"amount\":");
		buf_str(&b, amount);
		buf_str(&b, ",\"currencyCode\":");
		buf_json_string(&b, req->currency);
		if (has_description) {
			buf_str(&b, ",\"description\":");
			buf_json_string(&b, req->description);
		}
		buf_str(&b, "}");
	} else if (has_description &&
	           (req->kind == MOD_CANCEL || req->kind == MOD_CANCEL_OR_REFUND)) {
		buf_str(&b, ",\"description\":");
		buf_json_string(&b, req->description);
	}
	buf_str(&b, "}");
	*why = NULL;
	return b.data;
}

void mod_headers_init(struct mod_headers *h, const char *origin)
{
	h->origin = origin != NULL && *origin ? xasprintf("Origin: %s", origin) : NULL;
	h->lines[0] = "Content-Type: application/json";
	h->lines[1] = "Accept-Language: en-US";
	h->lines[2] = h->origin;
	h->lines[3] = NULL;
}

void mod_headers_free(struct mod_headers *h)
{
	free(h->origin);
	h->origin = NULL;
}
