/* The bodies of hostile answers (faults.h, "hostile" rules): 2xx answers that confirm
 * nothing, error pages in other encodings, bodies cut inside a UTF-8 character.
 * Pure (json-c, no I/O), so every byte sent is unit-testable. */
#ifndef SIM_HOSTILE_H
#define SIM_HOSTILE_H

#include <stdbool.h>
#include <stddef.h>

#include "faults.h"
#include "rng.h"

/* The byte offset that the padded modes put inside a multibyte character: a client
 * that keeps the first 64 KiB of an answer cuts there. */
#define SIM_HOSTILE_CUT_OFFSET 65536

/* A hostile answer: status, body and its media type. */
struct sim_hostile_answer {
	int status;
	char *body; /* malloc'd, NUL-terminated (the body itself may hold NUL bytes) */
	size_t len;
	const char *content_type; /* static */
};

/* True when the mode's body is built from a success answer (sim_hostile_build's
 * template): other_id, failed_status, nul_status, nul_id, cut_utf8, long_utf8. */
bool sim_hostile_needs_template(enum sim_hostile_mode mode);

/* Builds the answer of rule h. template (len bytes, a JSON object: the answer that
 * confirms the request) is used by the modes that need one and may be NULL for the
 * others; our_id is the request's modificationId (NULL when it had none). rng makes
 * the other modificationId of other_id. Always fills *out; release it with
 * sim_hostile_answer_free. */
void sim_hostile_build(const struct sim_hostile *h, const char *template, size_t len,
                       const char *our_id, struct sim_rng *rng, struct sim_hostile_answer *out);

void sim_hostile_answer_free(struct sim_hostile_answer *a);

#endif
