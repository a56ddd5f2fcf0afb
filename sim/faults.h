/* Fault injection: the configuration (from /_sim/faults or the command line) and
 * the seeded, reproducible decision taken for each /payment/ request. */
#ifndef SIM_FAULTS_H
#define SIM_FAULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "rng.h"

/* Rates are probabilities in [0, 1] whose sum is at most 1: each request gets at
 * most one of reset, fail, drop-after-commit, slow, garble. */
struct sim_faults {
	bool has_seed; /* reseed the fault generator with `seed` when applied */
	uint64_t seed;
	int64_t latency_ms, jitter_ms; /* every answer waits latency +- jitter */
	double reset_rate;             /* connection reset (RST) before processing */
	double fail_rate;              /* answer `status` without processing */
	int status;                    /* 500, 502, 503, 429 or 408 (default 503) */
	int retry_after;               /* seconds, sent with 429 and 503 (default 1) */
	double drop_after_commit_rate; /* process, then close without an answer */
	double slow_rate;              /* process, then answer after slow_ms more */
	int64_t slow_ms;               /* default 95000: past the 90 s client timeout */
	double garble_rate;            /* process, answer a truncated/corrupted body */
	bool extra_fields, reorder_fields, omit_optional;
	bool array_shape; /* "shape": "modifications" */
};

enum sim_fault_action {
	SIM_FAULT_NONE,
	SIM_FAULT_RESET,
	SIM_FAULT_FAIL,
	SIM_FAULT_DROP,
	SIM_FAULT_SLOW,
	SIM_FAULT_GARBLE,
};

/* What happens to one request. */
struct sim_fault_plan {
	enum sim_fault_action action;
	int64_t delay_ms; /* before the answer (or the reset / the drop) */
};

/* No faults: every rate 0, status 503, retry_after 1, slow_ms 95000. */
void sim_faults_clear(struct sim_faults *f);

/* Reads a faults document, every key optional, unknown keys refused. *out starts
 * from sim_faults_clear (the document replaces the whole configuration). On
 * failure returns false with a reason in err. */
bool sim_faults_from_json(struct json_object *doc, struct sim_faults *out, char *err,
                          size_t errlen);

/* Parses "MS" or "MS:JITTER_MS" (the --latency option). */
bool sim_faults_parse_latency(const char *text, struct sim_faults *f);

/* The configuration as a document of the same shape. */
struct json_object *sim_faults_to_json(const struct sim_faults *f);

/* Draws the plan for one request: always two draws from rng, so a seed and the
 * same sequence of requests give the same faults. */
void sim_faults_plan(const struct sim_faults *f, struct sim_rng *rng, struct sim_fault_plan *plan);

/* Returns a malloc'd corruption of body: cut before its last byte, sometimes with
 * bytes that are invalid JSON appended. Never valid JSON for an object body. */
char *sim_faults_garble(struct sim_rng *rng, const char *body, size_t len, size_t *out_len);

#endif
