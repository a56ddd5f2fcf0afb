/* Reconciliation: the ledger's rows for one transaction compared with the gateway's own
 * record of it (GET /payment/status). Pure: no I/O.
 *
 * "Our entry" for a row is a history entry whose modificationId is exactly the row's
 * (same bytes). The gateway's record settles a row whose outcome is unknown, and shows
 * what moved without the daemon (drift). */
#ifndef SP_RECONCILE_H
#define SP_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modification.h"
#include "response.h"

/* A ledger row's state, as far as reconciliation cares. */
enum rc_state {
	RC_ROW_PENDING,         /* pending: the outcome is not known yet */
	RC_ROW_NEEDS_ATTENTION, /* retries ran out: the outcome is not known */
	RC_ROW_SUCCEEDED,
	RC_ROW_REFUSED, /* refused by the gateway or locally: nothing happened */
};

/* One ledger row of the transaction (strings borrowed). */
struct rc_row {
	enum mod_kind kind;
	const char *modification_id;
	enum rc_state state;
	int64_t amount_minor; /* the row's amount; <= 0 when not known (cancel) */
	bool external;        /* recorded from the gateway's history, never sent */
};

/* What the gateway's record says of one row whose outcome is unknown. */
enum rc_settle {
	RC_SETTLE_SUCCEEDED, /* our entry confirms it */
	RC_SETTLE_REFUSED,   /* our entry reports a refusal (FAILED, REFUSED, DECLINED ...) */
	RC_SETTLE_ABSENT,    /* no entry names it: it did not happen (yet) */
	RC_SETTLE_UNDECIDED, /* entries disagree, or a status that decides nothing */
};

struct rc_settlement {
	size_t row; /* index into the rows */
	enum rc_settle settle;
	const char *gateway_status; /* our entry's status (borrowed from the history), or NULL */
	/* RC_SETTLE_ABSENT: the payment status shows the modification can still be made and
	 * has not been, so resending it (same id, same bytes) is safe */
	bool resend;
};

/* Drift: the ledger and the gateway differ. */
enum rc_drift {
	RC_DRIFT_EXTERNAL,   /* an effect at the gateway that no row of ours names */
	RC_DRIFT_LEDGER,     /* a succeeded row of ours that the gateway does not show */
	RC_DRIFT_AUTH_ENDED, /* the authorization expired or was cancelled at the gateway while
	                      * the order is open */
};

struct rc_finding {
	enum rc_drift drift;
	size_t row;         /* RC_DRIFT_LEDGER: index into the rows */
	size_t entry;       /* RC_DRIFT_EXTERNAL: index into the history's entries */
	enum mod_kind kind; /* RC_DRIFT_EXTERNAL: the effect's kind (capture, cancel, refund) */
	/* why, static text: "not in the gateway's history", "the gateway's entry does not
	 * confirm it", "the gateway's amount differs", "captured outside the daemon" ... */
	const char *what;
};

struct rc_report {
	struct rc_settlement *settlements; /* owned */
	size_t nsettlements;
	struct rc_finding *findings; /* owned */
	size_t nfindings;
};

/* Compares `rows` (every row of ours for the transaction) with its history `h`.
 * `order_open`: the shop's order still waits for a capture or cancel (not cancelled in
 * the shop, no capture or cancel of ours succeeded or under way).
 *  - every pending or needs_attention row gets one settlement;
 *  - every history entry of type CAPTURE, CANCELLATION or REFUND whose status confirms
 *    it and whose id no row names is RC_DRIFT_EXTERNAL;
 *  - every succeeded row (external ones too) without a confirming entry, or whose
 *    entry's amount differs from the row's, is RC_DRIFT_LEDGER;
 *  - a payment status EXPIRED or CANCELLED with `order_open` is RC_DRIFT_AUTH_ENDED.
 * *out must be released with reconcile_report_free. */
void reconcile_compare(const struct rc_row *rows, size_t nrows, const struct gw_history *h,
                       bool order_open, struct rc_report *out);

void reconcile_report_free(struct rc_report *r);

/* The kind of a history entry's type: CAPTURE, CANCELLATION (either spelling), REFUND;
 * false for any other type (CHARGEBACK, SETTLEMENT, missing). */
bool reconcile_entry_kind(const char *type, enum mod_kind *kind);

/* Whether a status reports a refusal of the modification: FAILED, REFUSED, DECLINED,
 * REJECTED, ERROR (any case). */
bool reconcile_status_refused(const char *status);

/* "external_modification", "ledger_drift", "authorization_ended". */
const char *reconcile_drift_name(enum rc_drift d);

/* "succeeded", "refused", "absent", "undecided". */
const char *reconcile_settle_name(enum rc_settle s);

#endif
