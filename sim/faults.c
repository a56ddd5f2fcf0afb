#include "autoconfig.h"

#include "faults.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

void sim_faults_clear(struct sim_faults *f)
{
	memset(f, 0, sizeof(*f));
	f->status = 503;
	f->retry_after = 1;
	f->slow_ms = 95000;
	f->status_status = 503;
	f->status_hang_ms = 95000;
}

/* Frees a list of owned strings. */
static void free_ids(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

void sim_faults_free(struct sim_faults *f)
{
	for (size_t i = 0; i < f->nhostile; i++) {
		free_ids(f->hostile[i].transactions, f->hostile[i].ntransactions);
		free_ids(f->hostile[i].modifications, f->hostile[i].nmodifications);
	}
	free(f->hostile);
	sim_faults_clear(f);
}

/* The mode names of the faults document, indexed by enum sim_hostile_mode. */
static const char *const hostile_names[SIM_HOSTILE_MODE_COUNT] = {
    "error_200", "empty_202", "other_id",    "failed_status", "nul_status", "nul_id",
    "html_200",  "empty_200", "latin1_page", "nul_body",      "cut_utf8",   "long_utf8",
};

const char *sim_hostile_mode_name(enum sim_hostile_mode m)
{
	return (unsigned)m < SIM_HOSTILE_MODE_COUNT ? hostile_names[m] : "?";
}

bool sim_hostile_mode_parse(const char *name, enum sim_hostile_mode *out)
{
	for (int i = 0; i < SIM_HOSTILE_MODE_COUNT; i++) {
		if (strcmp(name, hostile_names[i]) == 0) {
			*out = (enum sim_hostile_mode)i;
			return true;
		}
	}
	return false;
}

/* True for the modes whose status may also be a 5xx (error pages and long bodies). */
static bool mode_allows_5xx(enum sim_hostile_mode m)
{
	return m == SIM_HOSTILE_LATIN1 || m == SIM_HOSTILE_NUL_BODY || m == SIM_HOSTILE_CUT_UTF8 ||
	       m == SIM_HOSTILE_LONG_UTF8;
}

/* The status a mode sends unless the rule says otherwise. */
static int mode_default_status(enum sim_hostile_mode m)
{
	switch (m) {
	case SIM_HOSTILE_EMPTY_202:
		return 202;
	case SIM_HOSTILE_LATIN1:
	case SIM_HOSTILE_NUL_BODY:
	case SIM_HOSTILE_CUT_UTF8:
		return 503;
	default:
		return 200;
	}
}

/* Reads a rate in [0, 1]. */
static bool get_rate(struct json_object *v, const char *key, double *out, char *err, size_t errlen)
{
	if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int)) {
		snprintf(err, errlen, "%s must be a number between 0 and 1", key);
		return false;
	}
	double d = json_object_get_double(v);
	if (!(d >= 0.0 && d <= 1.0)) {
		snprintf(err, errlen, "%s must be between 0 and 1", key);
		return false;
	}
	*out = d;
	return true;
}

/* Reads a non-negative integer no larger than max. */
static bool get_int(struct json_object *v, const char *key, int64_t max, int64_t *out, char *err,
                    size_t errlen)
{
	if (!json_object_is_type(v, json_type_int)) {
		snprintf(err, errlen, "%s must be an integer", key);
		return false;
	}
	int64_t n = json_object_get_int64(v);
	if (n < 0 || n > max) {
		snprintf(err, errlen, "%s must be between 0 and %" PRId64, key, max);
		return false;
	}
	*out = n;
	return true;
}

/* Reads a boolean flag. */
static bool get_bool(struct json_object *v, const char *key, bool *out, char *err, size_t errlen)
{
	if (!json_object_is_type(v, json_type_boolean)) {
		snprintf(err, errlen, "%s must be true or false", key);
		return false;
	}
	*out = json_object_get_boolean(v);
	return true;
}

/* Reads a list of 1..SIM_HOSTILE_TARGETS_MAX non-empty ids (owned copies). */
static bool get_ids(struct json_object *v, const char *key, char ***ids, size_t *n, char *err,
                    size_t errlen)
{
	size_t len = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;
	if (len == 0 || len > SIM_HOSTILE_TARGETS_MAX) {
		snprintf(err, errlen, "%s must be an array of 1 to %d ids", key,
		         SIM_HOSTILE_TARGETS_MAX);
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		struct json_object *e = json_object_array_get_idx(v, i);
		if (!json_object_is_type(e, json_type_string) ||
		    json_object_get_string_len(e) == 0) {
			snprintf(err, errlen, "%s must hold non-empty strings", key);
			return false;
		}
	}
	free_ids(*ids, *n);
	*ids = xcalloc(len, sizeof(**ids));
	*n = len;
	for (size_t i = 0; i < len; i++)
		(*ids)[i] = xstrdup(json_object_get_string(json_object_array_get_idx(v, i)));
	return true;
}

/* Reads one member of a hostile rule. */
static bool hostile_member(const char *key, struct json_object *v, struct sim_hostile *h,
                           bool *has_mode, bool *has_processed, bool *has_status, char *err,
                           size_t errlen)
{
	int64_t n;
	if (strcmp(key, "mode") == 0) {
		if (!json_object_is_type(v, json_type_string) ||
		    !sim_hostile_mode_parse(json_object_get_string(v), &h->mode)) {
			snprintf(err, errlen,
			         "mode must be one of error_200, empty_202, other_id, "
			         "failed_status, nul_status, nul_id, html_200, empty_200, "
			         "latin1_page, nul_body, cut_utf8, long_utf8");
			return false;
		}
		*has_mode = true;
		return true;
	}
	if (strcmp(key, "processed") == 0) {
		*has_processed = true;
		return get_bool(v, key, &h->processed, err, errlen);
	}
	if (strcmp(key, "rate") == 0)
		return get_rate(v, key, &h->rate, err, errlen);
	if (strcmp(key, "status") == 0) {
		*has_status = true;
		if (!get_int(v, key, 599, &n, err, errlen))
			return false;
		h->status = (int)n;
		return true;
	}
	if (strcmp(key, "max_per_id") == 0) {
		if (!get_int(v, key, INT64_MAX, &n, err, errlen))
			return false;
		h->max_per_id = (uint64_t)n;
		return true;
	}
	if (strcmp(key, "failed_status") == 0) {
		const char *s =
		    json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
		if (s[0] == '\0' || strlen(s) >= sizeof(h->failed_status)) {
			snprintf(err, errlen,
			         "failed_status must be a string of 1 to %zu characters",
			         sizeof(h->failed_status) - 1);
			return false;
		}
		snprintf(h->failed_status, sizeof(h->failed_status), "%s", s);
		return true;
	}
	if (strcmp(key, "transactions") == 0)
		return get_ids(v, key, &h->transactions, &h->ntransactions, err, errlen);
	if (strcmp(key, "modifications") == 0)
		return get_ids(v, key, &h->modifications, &h->nmodifications, err, errlen);
	snprintf(err, errlen, "unknown setting \"%s\"", key);
	return false;
}

/* Reads one hostile rule; mode and processed are required. */
static bool hostile_rule(struct json_object *v, struct sim_hostile *h, char *err, size_t errlen)
{
	memset(h, 0, sizeof(*h));
	h->rate = 1.0;
	snprintf(h->failed_status, sizeof(h->failed_status), "FAILED");
	if (!json_object_is_type(v, json_type_object)) {
		snprintf(err, errlen, "must be an object");
		return false;
	}
	bool has_mode = false, has_processed = false, has_status = false;
	json_object_object_foreach(v, key, m)
	{
		if (!hostile_member(key, m, h, &has_mode, &has_processed, &has_status, err, errlen))
			return false;
	}
	if (!has_mode || !has_processed) {
		snprintf(err, errlen, "mode and processed (true or false) are required");
		return false;
	}
	if (!has_status)
		h->status = mode_default_status(h->mode);
	bool ok = (h->status >= 200 && h->status <= 299) ||
	          (mode_allows_5xx(h->mode) && h->status >= 500 && h->status <= 599);
	if (!ok) {
		snprintf(err, errlen, "status must be 2xx%s",
		         mode_allows_5xx(h->mode) ? " or 5xx" : "");
		return false;
	}
	return true;
}

/* Reads the "hostile" array into out->hostile. */
static bool get_hostile(struct json_object *v, struct sim_faults *out, char *err, size_t errlen)
{
	size_t n = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;
	if (!json_object_is_type(v, json_type_array) || n > SIM_HOSTILE_MAX) {
		snprintf(err, errlen, "hostile must be an array of at most %d rules",
		         SIM_HOSTILE_MAX);
		return false;
	}
	out->hostile = xcalloc(n ? n : 1, sizeof(*out->hostile));
	double untargeted = 0;
	for (size_t i = 0; i < n; i++) {
		struct sim_hostile *h = &out->hostile[i];
		char why[160];
		bool ok = hostile_rule(json_object_array_get_idx(v, i), h, why, sizeof(why));
		out->nhostile = i + 1; /* what was allocated is freed on failure */
		if (!ok) {
			snprintf(err, errlen, "hostile[%zu]: %s", i, why);
			return false;
		}
		if (h->ntransactions == 0 && h->nmodifications == 0)
			untargeted += h->rate;
	}
	if (untargeted > 1.0 + 1e-9) {
		snprintf(err, errlen,
		         "the rates of the hostile rules without targets must not "
		         "exceed 1");
		return false;
	}
	return true;
}

/* Reads a fault status: 408, 429 or 5xx. */
static bool get_fault_status(struct json_object *v, const char *key, int *out, char *err,
                             size_t errlen)
{
	int64_t n;
	if (!get_int(v, key, 599, &n, err, errlen))
		return false;
	if (n != 408 && n != 429 && (n < 500 || n > 599)) {
		snprintf(err, errlen, "%s must be 408, 429 or 5xx", key);
		return false;
	}
	*out = (int)n;
	return true;
}

/* Reads the "status_call" object: the faults of GET /payment/status alone. */
static bool get_status_call(struct json_object *doc, struct sim_faults *out, char *err,
                            size_t errlen)
{
	const int64_t day_ms = 86400000;
	if (!json_object_is_type(doc, json_type_object)) {
		snprintf(err, errlen, "status_call must be an object");
		return false;
	}
	out->has_status_call = true;
	json_object_object_foreach(doc, key, v)
	{
		bool ok;
		if (strcmp(key, "fail_rate") == 0)
			ok = get_rate(v, "status_call.fail_rate", &out->status_fail_rate, err,
			              errlen);
		else if (strcmp(key, "status") == 0)
			ok = get_fault_status(v, "status_call.status", &out->status_status, err,
			                      errlen);
		else if (strcmp(key, "hang_rate") == 0)
			ok = get_rate(v, "status_call.hang_rate", &out->status_hang_rate, err,
			              errlen);
		else if (strcmp(key, "hang_ms") == 0)
			ok = get_int(v, "status_call.hang_ms", day_ms, &out->status_hang_ms, err,
			             errlen);
		else if (strcmp(key, "garble_rate") == 0)
			ok = get_rate(v, "status_call.garble_rate", &out->status_garble_rate, err,
			              errlen);
		else {
			snprintf(err, errlen, "unknown status_call setting \"%s\"", key);
			ok = false;
		}
		if (!ok)
			return false;
	}
	if (out->status_fail_rate + out->status_hang_rate + out->status_garble_rate > 1.0 + 1e-9) {
		snprintf(err, errlen,
		         "status_call: fail_rate + hang_rate + garble_rate must not exceed 1");
		return false;
	}
	return true;
}

/* sim_faults_from_json without the clean-up on failure. */
static bool sim_faults_read(struct json_object *doc, struct sim_faults *out, char *err,
                            size_t errlen)
{
	const int64_t day_ms = 86400000;
	sim_faults_clear(out);
	if (doc == NULL || !json_object_is_type(doc, json_type_object)) {
		snprintf(err, errlen, "the faults document must be a JSON object");
		return false;
	}
	json_object_object_foreach(doc, key, v)
	{
		int64_t n;
		bool ok = true;
		if (strcmp(key, "seed") == 0) {
			ok = get_int(v, key, INT64_MAX, &n, err, errlen);
			out->has_seed = true;
			out->seed = (uint64_t)n;
		} else if (strcmp(key, "latency_ms") == 0) {
			ok = get_int(v, key, day_ms, &out->latency_ms, err, errlen);
		} else if (strcmp(key, "jitter_ms") == 0) {
			ok = get_int(v, key, day_ms, &out->jitter_ms, err, errlen);
		} else if (strcmp(key, "reset_rate") == 0) {
			ok = get_rate(v, key, &out->reset_rate, err, errlen);
		} else if (strcmp(key, "fail_rate") == 0) {
			ok = get_rate(v, key, &out->fail_rate, err, errlen);
		} else if (strcmp(key, "status") == 0) {
			ok = get_fault_status(v, key, &out->status, err, errlen);
		} else if (strcmp(key, "retry_after") == 0) {
			ok = get_int(v, key, 86400, &n, err, errlen);
			out->retry_after = (int)n;
		} else if (strcmp(key, "drop_after_commit_rate") == 0) {
			ok = get_rate(v, key, &out->drop_after_commit_rate, err, errlen);
		} else if (strcmp(key, "slow_rate") == 0) {
			ok = get_rate(v, key, &out->slow_rate, err, errlen);
		} else if (strcmp(key, "slow_ms") == 0) {
			ok = get_int(v, key, day_ms, &out->slow_ms, err, errlen);
		} else if (strcmp(key, "garble_rate") == 0) {
			ok = get_rate(v, key, &out->garble_rate, err, errlen);
		} else if (strcmp(key, "extra_fields") == 0) {
			ok = get_bool(v, key, &out->extra_fields, err, errlen);
		} else if (strcmp(key, "reorder_fields") == 0) {
			ok = get_bool(v, key, &out->reorder_fields, err, errlen);
		} else if (strcmp(key, "omit_optional") == 0) {
			ok = get_bool(v, key, &out->omit_optional, err, errlen);
		} else if (strcmp(key, "hostile") == 0) {
			ok = get_hostile(v, out, err, errlen);
		} else if (strcmp(key, "status_call") == 0) {
			ok = get_status_call(v, out, err, errlen);
		} else if (strcmp(key, "shape") == 0) {
			const char *s = json_object_is_type(v, json_type_string)
			                    ? json_object_get_string(v)
			                    : "";
			if (strcmp(s, "modifications") == 0)
				out->array_shape = true;
			else if (strcmp(s, "modification") == 0)
				out->array_shape = false;
			else {
				snprintf(err, errlen,
				         "shape must be \"modification\" or \"modifications\"");
				ok = false;
			}
		} else {
			snprintf(err, errlen, "unknown fault setting \"%s\"", key);
			ok = false;
		}
		if (!ok)
			return false;
	}
	double sum = out->reset_rate + out->fail_rate + out->drop_after_commit_rate +
	             out->slow_rate + out->garble_rate;
	if (sum > 1.0 + 1e-9) {
		snprintf(err, errlen,
		         "reset_rate + fail_rate + drop_after_commit_rate + slow_rate + "
		         "garble_rate must not exceed 1");
		return false;
	}
	return true;
}

bool sim_faults_from_json(struct json_object *doc, struct sim_faults *out, char *err, size_t errlen)
{
	bool ok = sim_faults_read(doc, out, err, errlen);
	if (!ok)
		sim_faults_free(out);
	return ok;
}

bool sim_faults_parse_latency(const char *text, struct sim_faults *f)
{
	char *end;
	long long ms = strtoll(text, &end, 10);
	long long jitter = 0;
	if (end == text || ms < 0 || ms > 86400000)
		return false;
	if (*end == ':') {
		const char *j = end + 1;
		jitter = strtoll(j, &end, 10);
		if (end == j || jitter < 0 || jitter > 86400000)
			return false;
	}
	if (*end != '\0')
		return false;
	f->latency_ms = ms;
	f->jitter_ms = jitter;
	return true;
}

/* A list of ids as a JSON array. */
static struct json_object *ids_to_json(char *const *ids, size_t n)
{
	struct json_object *a = json_object_new_array_ext((int)n);
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(ids[i]));
	return a;
}

/* The hostile rules as the array of the faults document, every setting spelled out. */
static struct json_object *hostile_to_json(const struct sim_faults *f)
{
	struct json_object *a = json_object_new_array_ext((int)f->nhostile);
	for (size_t i = 0; i < f->nhostile; i++) {
		const struct sim_hostile *h = &f->hostile[i];
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "mode", json_object_new_string(hostile_names[h->mode]));
		json_object_object_add(o, "processed", json_object_new_boolean(h->processed));
		json_object_object_add(o, "rate", json_object_new_double(h->rate));
		json_object_object_add(o, "status", json_object_new_int(h->status));
		if (h->mode == SIM_HOSTILE_FAILED_STATUS)
			json_object_object_add(o, "failed_status",
			                       json_object_new_string(h->failed_status));
		if (h->max_per_id > 0)
			json_object_object_add(o, "max_per_id",
			                       json_object_new_int64((int64_t)h->max_per_id));
		if (h->ntransactions > 0)
			json_object_object_add(o, "transactions",
			                       ids_to_json(h->transactions, h->ntransactions));
		if (h->nmodifications > 0)
			json_object_object_add(o, "modifications",
			                       ids_to_json(h->modifications, h->nmodifications));
		json_object_array_add(a, o);
	}
	return a;
}

struct json_object *sim_faults_to_json(const struct sim_faults *f)
{
	struct json_object *o = json_object_new_object();
	if (f->has_seed)
		json_object_object_add(o, "seed", json_object_new_int64((int64_t)f->seed));
	json_object_object_add(o, "latency_ms", json_object_new_int64(f->latency_ms));
	json_object_object_add(o, "jitter_ms", json_object_new_int64(f->jitter_ms));
	json_object_object_add(o, "reset_rate", json_object_new_double(f->reset_rate));
	json_object_object_add(o, "fail_rate", json_object_new_double(f->fail_rate));
	json_object_object_add(o, "status", json_object_new_int(f->status));
	json_object_object_add(o, "retry_after", json_object_new_int(f->retry_after));
	json_object_object_add(o, "drop_after_commit_rate",
	                       json_object_new_double(f->drop_after_commit_rate));
	json_object_object_add(o, "slow_rate", json_object_new_double(f->slow_rate));
	json_object_object_add(o, "slow_ms", json_object_new_int64(f->slow_ms));
	json_object_object_add(o, "garble_rate", json_object_new_double(f->garble_rate));
	json_object_object_add(o, "extra_fields", json_object_new_boolean(f->extra_fields));
	json_object_object_add(o, "reorder_fields", json_object_new_boolean(f->reorder_fields));
	json_object_object_add(o, "omit_optional", json_object_new_boolean(f->omit_optional));
	json_object_object_add(
	    o, "shape", json_object_new_string(f->array_shape ? "modifications" : "modification"));
	if (f->nhostile > 0)
		json_object_object_add(o, "hostile", hostile_to_json(f));
	if (f->has_status_call) {
		struct json_object *sc = json_object_new_object();
		json_object_object_add(sc, "fail_rate",
		                       json_object_new_double(f->status_fail_rate));
		json_object_object_add(sc, "status", json_object_new_int(f->status_status));
		json_object_object_add(sc, "hang_rate",
		                       json_object_new_double(f->status_hang_rate));
		json_object_object_add(sc, "hang_ms", json_object_new_int64(f->status_hang_ms));
		json_object_object_add(sc, "garble_rate",
		                       json_object_new_double(f->status_garble_rate));
		json_object_object_add(o, "status_call", sc);
	}
	return o;
}

void sim_faults_plan(const struct sim_faults *f, struct sim_rng *rng, struct sim_fault_plan *plan)
{
	double u = sim_rng_unit(rng);
	uint64_t j = sim_rng_below(rng, (uint64_t)f->jitter_ms * 2 + 1);
	int64_t delay = f->latency_ms - f->jitter_ms + (int64_t)j;
	plan->delay_ms = delay > 0 ? delay : 0;
	plan->action = SIM_FAULT_NONE;
	plan->hostile = NULL;
	plan->content_type = NULL;
	plan->status = 0;
	double edge = f->reset_rate;
	if (u < edge) {
		plan->action = SIM_FAULT_RESET;
		return;
	}
	if (u < (edge += f->fail_rate)) {
		plan->action = SIM_FAULT_FAIL;
		return;
	}
	if (u < (edge += f->drop_after_commit_rate)) {
		plan->action = SIM_FAULT_DROP;
		return;
	}
	if (u < (edge += f->slow_rate)) {
		plan->action = SIM_FAULT_SLOW;
		plan->delay_ms += f->slow_ms;
		return;
	}
	if (u < edge + f->garble_rate)
		plan->action = SIM_FAULT_GARBLE;
}

void sim_faults_plan_status(const struct sim_faults *f, struct sim_rng *rng,
                            struct sim_fault_plan *plan)
{
	if (!f->has_status_call) {
		sim_faults_plan(f, rng, plan);
		return;
	}
	double u = sim_rng_unit(rng);
	uint64_t j = sim_rng_below(rng, (uint64_t)f->jitter_ms * 2 + 1);
	int64_t delay = f->latency_ms - f->jitter_ms + (int64_t)j;
	plan->delay_ms = delay > 0 ? delay : 0;
	plan->action = SIM_FAULT_NONE;
	plan->hostile = NULL;
	plan->content_type = NULL;
	plan->status = 0;
	double edge = f->status_fail_rate;
	if (u < edge) {
		plan->action = SIM_FAULT_FAIL;
		plan->status = f->status_status;
	} else if (u < (edge += f->status_hang_rate)) {
		plan->action = SIM_FAULT_SLOW;
		plan->delay_ms += f->status_hang_ms;
	} else if (u < edge + f->status_garble_rate) {
		plan->action = SIM_FAULT_GARBLE;
	}
}

/* True when id is one of ids. */
static bool listed(char *const *ids, size_t n, const char *id)
{
	if (id == NULL)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(ids[i], id) == 0)
			return true;
	return false;
}

/* True when the rule applies to a request with these ids. */
static bool hostile_matches(const struct sim_hostile *h, const char *transaction_id,
                            const char *modification_id, uint64_t id_requests)
{
	if (h->max_per_id > 0 && id_requests > h->max_per_id)
		return false;
	if (h->ntransactions == 0 && h->nmodifications == 0)
		return true;
	return listed(h->transactions, h->ntransactions, transaction_id) ||
	       listed(h->modifications, h->nmodifications, modification_id);
}

void sim_faults_pick_hostile(const struct sim_faults *f, struct sim_rng *rng,
                             const char *transaction_id, const char *modification_id,
                             uint64_t id_requests, struct sim_fault_plan *plan)
{
	if (f->nhostile == 0)
		return;
	double u = sim_rng_unit(rng);
	if (plan->action != SIM_FAULT_NONE)
		return;
	double edge = 0;
	for (size_t i = 0; i < f->nhostile; i++) {
		const struct sim_hostile *h = &f->hostile[i];
		if (!hostile_matches(h, transaction_id, modification_id, id_requests))
			continue;
		edge += h->rate;
		if (u < edge) {
			plan->action = SIM_FAULT_HOSTILE;
			plan->hostile = h;
			return;
		}
	}
}

char *sim_faults_garble(struct sim_rng *rng, const char *body, size_t len, size_t *out_len)
{
	static const char junk[] = "\xff\xfe<garbled";
	size_t cut = len > 2 ? 1 + (size_t)sim_rng_below(rng, len - 2) : 0;
	bool tail = sim_rng_below(rng, 2) == 1;
	size_t n = cut + (tail ? sizeof(junk) - 1 : 0);
	char *out = xmalloc(n + 1);
	memcpy(out, body, cut);
	if (tail)
		memcpy(out + cut, junk, sizeof(junk) - 1);
	out[n] = '\0';
	*out_len = n;
	return out;
}
