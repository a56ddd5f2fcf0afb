#include "autoconfig.h"

#include "request.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "money.h"
#include "trim.h"

struct json_object *sim_request_json(struct json_tokener *reuse, const char *body, size_t len)
{
	struct json_tokener *tok = reuse ? reuse : json_tokener_new();
	json_tokener_reset(tok);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	struct json_object *root = json_tokener_parse_ex(tok, body, (int)len);
	bool ok = root != NULL && json_tokener_get_error(tok) == json_tokener_success;
	/* only white space may follow the value */
	size_t end = ok ? json_tokener_get_parse_end(tok) : len;
	if (end < len && trim_start_len(body + end, len - end, " \t\r\n") != len - end)
		ok = false;
	if (reuse == NULL)
		json_tokener_free(tok);
	if (!ok) {
		json_object_put(root);
		return NULL;
	}
	return root;
}

const char *sim_request_modification_id(struct json_object *root)
{
	struct json_object *v;
	if (root == NULL || !json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "modificationId", &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Records a validation failure. */
__attribute__((format(printf, 4, 5))) static void fail(struct sim_parsed *out, int status,
                                                       const char *error, const char *fmt, ...)
{
	va_list ap;
	out->status = status;
	out->error = error;
	va_start(ap, fmt);
	vsnprintf(out->details, sizeof(out->details), fmt, ap);
	va_end(ap);
}

/* Appends the names of keys of obj that are not in `known` to the ignored list. */
static void collect_ignored(struct json_object *obj, const char *prefix, const char *const *known,
                            struct json_object *ignored)
{
	json_object_object_foreach(obj, key, val)
	{
		(void)val;
		bool found = false;
		for (const char *const *k = known; *k; k++) {
			if (strcmp(*k, key) == 0) {
				found = true;
				break;
			}
		}
		if (found)
			continue;
		char name[160];
		snprintf(name, sizeof(name), "%s%s%s", prefix ? prefix : "", prefix ? "." : "",
		         key);
		json_object_array_add(ignored, json_object_new_string(name));
	}
}

/* Reads an optional (required when `required`) string field of at most `max`
 * characters (exactly `max` when `exact`); JSON null counts as absent. */
static bool get_string(struct json_object *obj, const char *path, const char *key, bool required,
                       size_t max, bool exact, const char **value, struct sim_parsed *out)
{
	struct json_object *v;
	*value = NULL;
	if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null)) {
		if (required) {
			fail(out, 400, "missing_field", "%s is required", path);
			return false;
		}
		return true;
	}
	if (!json_object_is_type(v, json_type_string)) {
		fail(out, 400, "invalid_field", "%s must be a string", path);
		return false;
	}
	size_t n = (size_t)json_object_get_string_len(v);
	if (exact ? n != max : (n == 0 || n > max)) {
		if (exact)
			fail(out, 400, "invalid_field", "%s must be exactly %zu characters", path,
			     max);
		else
			fail(out, 400, "invalid_field", "%s must be 1 to %zu characters", path,
			     max);
		return false;
	}
	*value = json_object_get_string(v);
	return true;
}

/* Validates customReferences: an object of custom1..custom3 strings. */
static bool check_custom_references(struct json_object *root, struct sim_parsed *out)
{
	static const char *const known[] = {"custom1", "custom2", "custom3", NULL};
	struct json_object *cr;
	if (!json_object_object_get_ex(root, "customReferences", &cr) ||
	    json_object_is_type(cr, json_type_null))
		return true;
	if (!json_object_is_type(cr, json_type_object)) {
		fail(out, 400, "invalid_field", "customReferences must be an object");
		return false;
	}
	collect_ignored(cr, "customReferences", known, out->ignored);
	const char *s;
	char path[40];
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "customReferences.%s", known[i]);
		if (!get_string(cr, path, known[i], false, 255, false, &s, out))
			return false;
	}
	return true;
}

/* Validates modifiedAmount and converts its amount exactly into minor units. */
static bool check_modified_amount(struct json_object *root, struct sim_parsed *out)
{
	static const char *const known[] = {"amount", "currencyCode", "description", NULL};
	struct json_object *ma, *amount;
	if (!json_object_object_get_ex(root, "modifiedAmount", &ma) ||
	    json_object_is_type(ma, json_type_null))
		return true;
	if (!json_object_is_type(ma, json_type_object)) {
		fail(out, 400, "invalid_field", "modifiedAmount must be an object");
		return false;
	}
	collect_ignored(ma, "modifiedAmount", known, out->ignored);
	const char *currency, *description;
	if (!get_string(ma, "modifiedAmount.currencyCode", "currencyCode", true, 3, true, &currency,
	                out) ||
	    !get_string(ma, "modifiedAmount.description", "description", false, 127, false,
	                &description, out))
		return false;
	if (money_exponent(currency) < 0) {
		fail(out, 400, "invalid_field",
		     "modifiedAmount.currencyCode %s is not a known ISO 4217 code", currency);
		return false;
	}
	if (!json_object_object_get_ex(ma, "amount", &amount) ||
	    json_object_is_type(amount, json_type_null)) {
		fail(out, 400, "missing_field", "modifiedAmount.amount is required");
		return false;
	}
	if (!json_object_is_type(amount, json_type_int) &&
	    !json_object_is_type(amount, json_type_double)) {
		fail(out, 400, "invalid_amount", "modifiedAmount.amount must be a JSON number");
		return false;
	}
	/* json-c keeps the source text of a parsed number: convert that, never a double */
	const char *text = json_object_get_string(amount);
	const char *why = NULL;
	int64_t minor;
	if (!money_parse(text, currency, &minor, &why)) {
		fail(out, 400, "invalid_amount", "modifiedAmount.amount %s: %s", text, why);
		return false;
	}
	if (minor <= 0) {
		fail(out, 400, "invalid_amount", "modifiedAmount.amount must be greater than 0");
		return false;
	}
	out->req.has_amount = true;
	out->req.amount = minor;
	out->req.currency = currency;
	if (description != NULL)
		out->req.description = description;
	return true;
}

void sim_request_validate(enum sim_op op, struct json_object *root, const char *merchant_key,
                          struct sim_parsed *out)
{
	static const char *const known_amount[] = {"transactionId",  "merchantKey",
	                                           "modificationId", "customReferences",
	                                           "modifiedAmount", NULL};
	static const char *const known_plain[] = {"transactionId",  "merchantKey",
	                                          "modificationId", "customReferences",
	                                          "description",    NULL};
	bool with_amount = op == SIM_OP_CAPTURE || op == SIM_OP_REFUND;

	memset(out, 0, sizeof(*out));
	out->req.op = op;
	out->ignored = json_object_new_array();
	if (root == NULL || !json_object_is_type(root, json_type_object)) {
		fail(out, 400, "invalid_json", "the request body must be one JSON object");
		return;
	}
	collect_ignored(root, NULL, with_amount ? known_amount : known_plain, out->ignored);

	const char *mk;
	if (!get_string(root, "merchantKey", "merchantKey", true, 36, false, &mk, out))
		return;
	if (strcmp(mk, merchant_key) != 0) {
		fail(out, 403, "merchant_key_mismatch",
		     "merchantKey does not match the authenticated merchant");
		return;
	}
	if (!get_string(root, "transactionId", "transactionId", true, 36, false,
	                &out->req.transaction_id, out) ||
	    !get_string(root, "modificationId", "modificationId", true,
	                op == SIM_OP_REFUND ? 36 : 64, false, &out->req.modification_id, out))
		return;
	if (!with_amount && !get_string(root, "description", "description", false, 127, false,
	                                &out->req.description, out))
		return;
	if (!check_custom_references(root, out))
		return;
	if (with_amount && !check_modified_amount(root, out))
		return;
}

void sim_parsed_free(struct sim_parsed *p)
{
	json_object_put(p->ignored);
	p->ignored = NULL;
}
