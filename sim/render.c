#include "autoconfig.h"

#include "render.h"

#include <stdlib.h>
#include <string.h>

#include "money.h"
#include "timeutil.h"
#include "xmalloc.h"

/* Writes a member whose value is a timestamp. */
static void put_time(struct sim_jw *w, const char *key, int64_t ms)
{
	char text[SIM_TIME_TEXT_MAX];
	sim_time_format(ms, text);
	sim_jw_kstring(w, key, text);
}

/* Writes a member whose value is an exact amount as a JSON number. */
static void put_money(struct sim_jw *w, const char *key, int64_t minor, const char *currency)
{
	char text[MONEY_TEXT_MAX];
	sim_jw_key(w, key);
	if (money_format(minor, currency, text))
		sim_jw_raw(w, text);
	else
		sim_jw_null(w);
}

/* {amount, currencyCode, description?}. */
static void put_amount(struct sim_jw *w, const char *key, int64_t minor, const char *currency,
                       const char *description, const struct sim_render_opts *o)
{
	sim_jw_key(w, key);
	sim_jw_object_begin(w);
	put_money(w, "amount", minor, currency);
	sim_jw_kstring(w, "currencyCode", currency);
	if (description != NULL && !o->omit_optional)
		sim_jw_kstring(w, "description", description);
	sim_jw_object_end(w);
}

/* One entry of the modification history. */
static void put_mod(struct sim_jw *w, const struct sim_txn *t, const struct sim_mod *m,
                    const struct sim_render_opts *o)
{
	char when[SIM_TIME_TEXT_MAX];
	sim_time_format(m->at, when);
	sim_jw_object_begin(w);
	sim_jw_key(w, "modificationData");
	sim_jw_object_begin(w);
	sim_jw_kstring(w, "type", sim_mod_type_name(m->type));
	sim_jw_kstring(w, "modificationId", m->modification_id);
	sim_jw_kstring(w, "reconciliationReferenceId", m->recon_id);
	if (o->extra_fields) {
		sim_jw_key(w, "simExtraCode");
		sim_jw_int(w, 7);
	}
	sim_jw_object_end(w);
	put_amount(w, "modificationAmount", m->amount, t->currency, m->description, o);
	sim_jw_kstring(w, "status", sim_mod_status_name(m->type));
	if (!o->omit_optional) {
		sim_jw_kstring(w, "creationDate", when);
		sim_jw_kstring(w, "lastStatusDate", when);
		sim_jw_key(w, "statusHistory");
		sim_jw_array_begin(w);
		sim_jw_object_begin(w);
		sim_jw_kstring(w, "status", sim_mod_pending_name(m->type));
		sim_jw_kstring(w, "statusDate", when);
		sim_jw_object_end(w);
		sim_jw_object_begin(w);
		sim_jw_kstring(w, "status", sim_mod_status_name(m->type));
		sim_jw_kstring(w, "statusDate", when);
		put_amount(w, "modificationAmount", m->amount, t->currency, NULL, o);
		sim_jw_object_end(w);
		sim_jw_array_end(w);
	}
	if (o->extra_fields)
		sim_jw_kstring(w, "simExtraNote", "an unknown field a client must ignore");
	sim_jw_object_end(w);
}

/* A nested unknown member whose inner keys mimic real ones, to catch sloppy parsers. */
static void put_decoy(struct sim_jw *w)
{
	sim_jw_key(w, "simExtra");
	sim_jw_object_begin(w);
	sim_jw_kstring(w, "paymentStatus", "SIM_DECOY_STATUS");
	sim_jw_kstring(w, "modificationId", "sim-decoy-modification-id");
	sim_jw_key(w, "nested");
	sim_jw_array_begin(w);
	sim_jw_int(w, 1);
	sim_jw_string(w, "two");
	sim_jw_null(w);
	sim_jw_bool(w, true);
	sim_jw_object_begin(w);
	sim_jw_key(w, "error");
	sim_jw_object_begin(w);
	sim_jw_object_end(w);
	sim_jw_object_end(w);
	sim_jw_array_end(w);
	sim_jw_object_end(w);
}

/* ignoredProperties, left out when empty and optional fields are omitted. */
static void put_ignored(struct sim_jw *w, struct json_object *ignored,
                        const struct sim_render_opts *o)
{
	if (ignored == NULL)
		return;
	size_t n = json_object_array_length(ignored);
	if (n == 0 && o->omit_optional)
		return;
	sim_jw_key(w, "ignoredProperties");
	sim_jw_array_begin(w);
	for (size_t i = 0; i < n; i++)
		sim_jw_string(w, json_object_get_string(json_object_array_get_idx(ignored, i)));
	sim_jw_array_end(w);
}

void sim_render_txn(struct sim_jw *w, const struct sim_txn *t, long mod_index,
                    struct json_object *ignored, const struct sim_render_opts *o)
{
	const struct sim_mod *mod = mod_index >= 0 ? &t->mods[mod_index] : NULL;
	sim_jw_object_begin(w);
	sim_jw_kstring(w, "reconciliationReferenceId", mod ? mod->recon_id : t->recon_id);
	if (t->description != NULL && !o->omit_optional)
		sim_jw_kstring(w, "description", t->description);
	sim_jw_kstring(w, "paymentStatus", sim_pay_status_name(t->status));
	if (!o->omit_optional) {
		put_time(w, "creationDate", t->created_at);
		put_time(w, "lastStatusDate", t->last_status_at);
	}
	sim_jw_key(w, "transactionOverview");
	sim_jw_object_begin(w);
	sim_jw_kstring(w, "transactionId", t->id);
	if (!o->omit_optional)
		sim_jw_kstring(w, "paymentMethod", t->payment_method);
	put_money(w, "amount", t->amount, t->currency);
	sim_jw_kstring(w, "currencyCode", t->currency);
	if (!o->omit_optional) {
		sim_jw_key(w, "mit");
		sim_jw_bool(w, t->mit);
	}
	if (o->extra_fields) {
		sim_jw_key(w, "simExtraFlag");
		sim_jw_bool(w, false);
	}
	sim_jw_object_end(w);

	if (mod != NULL && !o->array_shape) {
		sim_jw_key(w, "modification");
		put_mod(w, t, mod, o);
	} else {
		sim_jw_key(w, "modifications");
		sim_jw_array_begin(w);
		for (size_t i = 0; i < t->nmods; i++)
			put_mod(w, t, &t->mods[i], o);
		sim_jw_array_end(w);
	}
	put_ignored(w, ignored, o);
	if (o->extra_fields) {
		put_decoy(w);
		sim_jw_key(w, "simExtraNull");
		sim_jw_null(w);
	}
	sim_jw_object_end(w);
}

void sim_render_error(struct sim_jw *w, const char *error, const char *details,
                      struct json_object *ignored, const struct sim_render_opts *o)
{
	sim_jw_object_begin(w);
	sim_jw_kstring(w, "error", error);
	sim_jw_kstring(w, "errorDetails", details);
	put_ignored(w, ignored, o);
	if (o->extra_fields)
		put_decoy(w);
	sim_jw_object_end(w);
}

/* Rebuilds obj with its keys (recursively) in a random order; consumes obj's
 * reference and returns a new one. */
static struct json_object *reorder(struct json_object *obj, struct sim_rng *rng)
{
	if (json_object_is_type(obj, json_type_array)) {
		size_t n = json_object_array_length(obj);
		for (size_t i = 0; i < n; i++) {
			struct json_object *child = json_object_array_get_idx(obj, i);
			if (child != NULL)
				json_object_array_put_idx(obj, i,
				                          reorder(json_object_get(child), rng));
		}
		return obj;
	}
	if (!json_object_is_type(obj, json_type_object))
		return obj;
	size_t n = (size_t)json_object_object_length(obj), i = 0;
	const char **keys = xcalloc(n ? n : 1, sizeof(*keys));
	struct json_object **vals = xcalloc(n ? n : 1, sizeof(*vals));
	json_object_object_foreach(obj, key, val)
	{
		keys[i] = key;
		vals[i] = val;
		i++;
	}
	for (i = n; i > 1; i--) {
		size_t j = (size_t)sim_rng_below(rng, i);
		const char *tk = keys[i - 1];
		struct json_object *tv = vals[i - 1];
		keys[i - 1] = keys[j];
		vals[i - 1] = vals[j];
		keys[j] = tk;
		vals[j] = tv;
	}
	struct json_object *out = json_object_new_object();
	for (i = 0; i < n; i++) {
		struct json_object *v = vals[i] ? reorder(json_object_get(vals[i]), rng) : NULL;
		json_object_object_add(out, keys[i], v);
	}
	free(keys);
	free(vals);
	json_object_put(obj);
	return out;
}

void sim_render_finish(struct sim_jw *w, const struct sim_render_opts *o)
{
	if (!o->reorder_fields || o->rng == NULL)
		return;
	/* json-c keeps the source text of parsed numbers, so "40.00" stays "40.00" */
	struct json_object *tree = json_tokener_parse(w->buf);
	if (tree == NULL)
		return;
	tree = reorder(tree, o->rng);
	size_t len;
	const char *text = json_object_to_json_string_length(
	    tree, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	sim_jw_reset(w);
	sim_jw_raw(w, text);
	json_object_put(tree);
}
