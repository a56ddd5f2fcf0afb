/* Validation of modification request bodies against the documented field tables.
 * Pure (json-c, no I/O), so the rules are unit-testable without HTTP. */
#ifndef SIM_REQUEST_H
#define SIM_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "state.h"

/* The outcome of validating one body. */
struct sim_parsed {
	struct sim_mod_request req; /* valid when status == 0; strings point into the body tree */
	struct json_object
	    *ignored;      /* owned array: unknown property names ("x", "modifiedAmount.y") */
	int status;        /* 0 when valid, else the HTTP status: 400 or 403 */
	const char *error; /* stable error code when status != 0 */
	char details[200]; /* human-readable reason when status != 0 */
};

/* Parses a request body strictly (RFC 8259 JSON). Returns the tree (caller puts it)
 * or NULL when the text is not valid JSON. tok is a tokener to reuse (creating one
 * per request costs more than the parse), or NULL for a temporary one. */
struct json_object *sim_request_json(struct json_tokener *tok, const char *body, size_t len);

/* Returns the body's modificationId when it is a string, else NULL (borrowed). */
const char *sim_request_modification_id(struct json_object *root);

/* Validates a parsed body (root may be NULL for unparsable text) for endpoint `op`
 * with the configured merchant key. Always initialises *out; release it with
 * sim_parsed_free. The body tree must outlive out->req. */
void sim_request_validate(enum sim_op op, struct json_object *root, const char *merchant_key,
                          struct sim_parsed *out);

void sim_parsed_free(struct sim_parsed *p);

#endif
