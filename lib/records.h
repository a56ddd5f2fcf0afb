/* The domain records of the lifecycle: an order that needs a modification (candidate),
 * a shop request, the modification recorded before anything is sent (intent), one held
 * under a lease (claim), the result of an attempt (outcome), a queued order change.
 * Plain data and how to free it: no I/O library. The store (store.h) reads and writes
 * them; the pure decision modules (intent.h, outcome.h) work on them. */
#ifndef SP_RECORDS_H
#define SP_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modification.h"

/* An order that needs a modification, as read from the orders relation. Every column
 * is read as text, whatever its type, so that no row can make the query fail; the
 * values are checked by lib/intent.c. */
struct candidate {
	char *order_id;
	char *status;
	/* the order's; after a succeeded capture, the capture's. NULL when missing */
	char *transaction_id;
	char *amount; /* the relation's text of it, NULL when missing */
	/* the order's; after a succeeded capture, the capture's */
	char *currency;
	char *capture_amount; /* NULL: capture the full amount */
	char *authorized_at;  /* the relation's text, NULL when missing */
	char *expires_at;     /* authorization_expires_at's text, NULL when missing */
	bool has_deadline;    /* the two times gave a usable deadline */
	int64_t deadline_ms;  /* authorization deadline, 0 when unknown */
	/* capture, cancel, cancel_or_refund, or refund (the rest of a partly refunded
	 * capture of a cancelled order) */
	enum mod_kind kind;
	/* a capture: the order's live cancel or cancel_or_refund (state and id), else NULL */
	char *cancel_state;
	char *cancel_id;
	int64_t captured_minor; /* the succeeded capture's amount, -1 without one */
	int64_t refunded_minor; /* its refunds succeeded or in doubt */
};

/* A modification to record before anything is sent. With `reason` set it is refused
 * locally (bad order data): recorded as refused, alerted, never sent. */
struct intent {
	char modification_id[37];
	const char *order_id;
	const char *transaction_id;
	enum mod_kind kind;
	int64_t amount_minor; /* -1 when unknown */
	const char *currency;
	char *body; /* owned by the caller; NULL when refused */
	const char *reason;
	int64_t deadline_ms;
	int64_t request_id;  /* the shop request it answers, 0 for none */
	bool settles_cancel; /* a refund of what remains captured, standing for a cancel */
	bool lease; /* leased to this daemon for sending now; else recorded due, unleased */
};

/* An open shop request (smartpay.requests) ready to become a modification. */
struct shop_request {
	int64_t request_id;
	char *order_id;
	enum mod_kind kind;   /* refund or cancel_or_refund */
	int64_t amount_minor; /* refund amount; -1 for cancel_or_refund */
	char *currency;
	char *reason;
	char *transaction_id;   /* NULL when neither a capture nor the order names one */
	char *order_amount;     /* authorized amount text from the orders relation, or NULL */
	bool order_cancelled;   /* a cancel, cancel_or_refund or settling refund is live */
	int64_t captured_minor; /* the succeeded capture's amount, -1 without one */
	char *capture_currency; /* its currency, NULL without one */
	int64_t refunded_minor; /* the order's refunds succeeded, pending or in doubt */
};

/* A modification this daemon holds the lease of and may send. */
struct claim {
	char *modification_id;
	char *order_id;
	char *transaction_id;
	enum mod_kind kind;
	char *body;
	int attempts;
	int64_t generation;
	int64_t deadline_ms;    /* 0 when none */
	bool deadline_passed;   /* by the database clock */
	bool leased;            /* false: an intent recorded unleased (due now), not to send */
	int64_t lease_until_ms; /* CLOCK_MONOTONIC ms when the lease ends */
};

/* The result of one attempt, written back under the lease (fenced). */
struct outcome {
	char *modification_id;
	int64_t generation;
	const char *state;    /* pending, succeeded, refused, needs_attention */
	char *reason;         /* may be NULL */
	int http_status;      /* 0 = none */
	char *response_body;  /* may be NULL */
	char *payment_status; /* may be NULL */
	char *reconciliation_reference_id;
	int64_t retry_delay_ms; /* pending: next attempt after this delay */
	bool counted;           /* counts as an attempt */
	const char *settled_by; /* "status" when the status history decided; NULL: "answer" */
	const char *alert_kind; /* NULL: no alert */
	const char *alert_severity;
	char *order_id; /* for logs and follow-up scans */
	enum mod_kind kind;
	bool released; /* a lease given back unsent, not an attempt */
};

/* A queued order, inserted or changed in status: change_id is its queued id (sql/022:
 * the row's change_id * 1024 + its position in a chunk). */
struct order_change {
	int64_t change_id;
	char *order_id;
};

/* Frees the strings of each row and the array. */
void candidates_free(struct candidate *rows, size_t n);
void shop_requests_free(struct shop_request *rows, size_t n);
void order_changes_free(struct order_change *rows, size_t n);
void claims_free(struct claim *rows, size_t n);
/* Frees the strings of one claim, not the struct, and zeroes it. */
void claim_clear(struct claim *c);
/* Frees the strings of one outcome, not the struct, and zeroes it. */
void outcome_clear(struct outcome *o);

#endif
