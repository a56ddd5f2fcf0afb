/* JSON answers of the simulated gateway: the transaction model of smartpay-api.md
 * section 2, error bodies, and the format variations of fault injection. */
#ifndef SIM_RENDER_H
#define SIM_RENDER_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "jsonw.h"
#include "rng.h"
#include "state.h"

/* How to shape an answer. */
struct sim_render_opts {
	bool array_shape;  /* modification answers carry `modifications` (array), not `modification`
	                    */
	bool extra_fields; /* add unknown fields at every level, including decoys */
	bool reorder_fields; /* shuffle the keys of every object (needs rng) */
	bool omit_optional;  /* leave out optional fields */
	struct sim_rng *rng;
};

/* Writes the transaction model into w. mod_index selects the modification this
 * answer is about (a modification call), or is -1 for Get Payment Status (then
 * always the array of all modifications). ignored (borrowed, may be NULL: an array
 * of strings) becomes ignoredProperties. Amounts are JSON numbers with exactly the
 * currency's decimals ("40.00"). */
void sim_render_txn(struct sim_jw *w, const struct sim_txn *t, long mod_index,
                    struct json_object *ignored, const struct sim_render_opts *o);

/* Writes an error body: {"error", "errorDetails", "ignoredProperties"?}. */
void sim_render_error(struct sim_jw *w, const char *error, const char *details,
                      struct json_object *ignored, const struct sim_render_opts *o);

/* Applies reorder_fields to the finished text in w: every object's keys shuffled
 * with o->rng, values (and the exact number texts) unchanged. */
void sim_render_finish(struct sim_jw *w, const struct sim_render_opts *o);

#endif
