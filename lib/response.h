/* SmartPay answers: lenient parsing of the transaction model. Pure (json-c, no I/O). */
#ifndef SP_RESPONSE_H
#define SP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

/* What the daemon needs from an answer. Every string is malloc'd and owned by the
 * struct (response_free releases them); NULL means absent. Every string is well-formed
 * UTF-8 without NUL bytes: a NUL decoded from \u0000 and every ill-formed sequence
 * read as U+FFFD, so "CAPTURED\u0000junk" never reads as CAPTURED. Not truncated. */
struct gw_response {
	/* top-level paymentStatus, normalised: CANCELED -> CANCELLED,
	 * AUTORIZATION_INITIALIZED -> AUTHORIZATION_INITIALIZED; unknown kept verbatim */
	char *payment_status;
	/* from our modification's modificationData.reconciliationReferenceId if found,
	 * else the top-level one */
	char *reconciliation_reference_id;
	/* status of OUR modification (the entry whose modificationData.modificationId is
	 * exactly ours, same bytes, same length) in `modification` or `modifications`
	 * (an object or an array, arrays may nest), normalised like payment_status (also
	 * CANCELATION_PENDING -> CANCELLATION_PENDING) */
	char *modification_status;
	/* its modificationData.type: CAPTURE, CANCELLATION (CANCELATION normalised),
	 * REFUND ... */
	char *modification_type;
	/* top-level error / errorDetails / message, joined with "; " (4xx bodies) */
	char *error;
	/* a top-level `error` or `errorDetails` member that is not null */
	bool has_error;
	/* how many entries name our modificationId (0: none does) */
	size_t modification_entries;
	/* two of those entries differ in status or type (ignoring case and spelling) */
	bool entries_disagree;
};

/* Parses a body. True when it is one JSON object (fields in any order, unknown fields
 * ignored, optional fields may be missing or of the wrong type); false for an empty,
 * truncated, too deeply nested or non-object body, or one with trailing garbage.
 * `modification_id` (may be NULL) selects our modification, compared exactly.
 * *out is always initialised (all NULL on false); release it with response_free. */
bool response_parse(const char *body, size_t len, const char *modification_id,
                    struct gw_response *out) __attribute__((warn_unused_result));

/* Frees the strings of a parsed response and resets them to NULL. */
void response_free(struct gw_response *r);

/* Normalises a status spelling (CANCELED -> CANCELLED, AUTORIZATION_ ->
 * AUTHORIZATION_, CANCELATION -> CANCELLATION ...); returns a malloc'd string. */
char *response_normalise_status(const char *status) __attribute__((warn_unused_result));

#endif
