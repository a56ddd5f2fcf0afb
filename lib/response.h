/* SmartPay answers: lenient parsing of the transaction model. Pure (json-c, no I/O). */
#ifndef SP_RESPONSE_H
#define SP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* One modification entry of a transaction's history (GET /payment/status). Strings
 * are malloc'd, storable text (as in gw_response), NULL when absent. */
struct gw_entry {
	char *modification_id; /* modificationData.modificationId, exact text */
	char *type;            /* modificationData.type, normalised (CANCELATION -> CANCELLATION) */
	char *status;          /* status, normalised */
	bool has_amount;       /* modificationAmount.amount read exactly in the currency */
	int64_t amount_minor;
	char *currency; /* modificationAmount.currencyCode, else the transaction's */
};

/* Every entry of an answer: the whole history of a status answer. */
struct gw_history {
	char *payment_status; /* normalised, as in gw_response */
	char *transaction_id; /* transactionOverview.transactionId */
	char *currency;       /* transactionOverview.currencyCode */
	bool has_error;       /* a top-level `error` or `errorDetails` member that is not null */
	struct gw_entry *entries; /* in the order of the body (`modification` first, then the
	                           * `modifications` arrays, nested ones flattened); only
	                           * objects with a modificationData member count */
	size_t nentries;
};

/* Parses every modification entry of an answer (the same leniency and limits as
 * response_parse). False, with *out empty, when the body is not one JSON object. */
bool response_parse_history(const char *body, size_t len, struct gw_history *out)
    __attribute__((warn_unused_result));

/* Frees a parsed history and empties it. */
void response_history_free(struct gw_history *h);

/* Frees the strings of a parsed response and resets them to NULL. */
void response_free(struct gw_response *r);

/* Normalises a status spelling (CANCELED -> CANCELLED, AUTORIZATION_ ->
 * AUTHORIZATION_, CANCELATION -> CANCELLATION ...); returns a malloc'd string. */
char *response_normalise_status(const char *status) __attribute__((warn_unused_result));

/* response_normalise_status into out[0..cap): false, out untouched, when the result
 * might not fit (cap under twice the length plus one). */
bool response_normalise_status_into(const char *status, char *out, size_t cap)
    __attribute__((warn_unused_result));

#endif
