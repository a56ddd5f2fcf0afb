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

bool sim_faults_from_json(struct json_object *doc, struct sim_faults *out, char *err, size_t errlen)
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
			ok = get_int(v, key, 599, &n, err, errlen);
			if (ok && n != 408 && n != 429 && (n < 500 || n > 599)) {
				snprintf(err, errlen, "status must be 408, 429 or 5xx");
				ok = false;
			}
			out->status = (int)n;
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
	return o;
}

void sim_faults_plan(const struct sim_faults *f, struct sim_rng *rng, struct sim_fault_plan *plan)
{
	double u = sim_rng_unit(rng);
	uint64_t j = sim_rng_below(rng, (uint64_t)f->jitter_ms * 2 + 1);
	int64_t delay = f->latency_ms - f->jitter_ms + (int64_t)j;
	plan->delay_ms = delay > 0 ? delay : 0;
	plan->action = SIM_FAULT_NONE;
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
