/* A small streaming JSON writer: the simulator's answers are written straight into
 * one growing buffer, which keeps the per-request allocations few. */
#ifndef SIM_JSONW_H
#define SIM_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_JW_DEPTH 32

/* The text so far is buf[0..len) and is always NUL-terminated. */
struct sim_jw {
	char *buf; /* owned */
	size_t len, cap;
	int depth;
	bool first[SIM_JW_DEPTH]; /* no member written yet at this depth */
	bool after_key;           /* a key was written; its value comes next */
};

void sim_jw_init(struct sim_jw *w);
void sim_jw_free(struct sim_jw *w);
/* Empties the buffer for reuse. */
void sim_jw_reset(struct sim_jw *w);

void sim_jw_object_begin(struct sim_jw *w);
void sim_jw_object_end(struct sim_jw *w);
void sim_jw_array_begin(struct sim_jw *w);
void sim_jw_array_end(struct sim_jw *w);

/* Writes a member name; the next value call writes its value. */
void sim_jw_key(struct sim_jw *w, const char *key);

void sim_jw_string(struct sim_jw *w, const char *s);
void sim_jw_int(struct sim_jw *w, int64_t v);
void sim_jw_bool(struct sim_jw *w, bool v);
void sim_jw_null(struct sim_jw *w);
/* Writes text verbatim as a value (a number already in JSON form: "40.00"). */
void sim_jw_raw(struct sim_jw *w, const char *text);

/* Shorthands for a member with a value. */
void sim_jw_kstring(struct sim_jw *w, const char *key, const char *s);

#endif
