#include "autoconfig.h"

#include "reconcile.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "classify.h"
#include "xmalloc.h"

const char *reconcile_drift_name(enum rc_drift d)
{
	switch (d) {
	case RC_DRIFT_EXTERNAL:
		return "external_modification";
	case RC_DRIFT_LEDGER:
		return "ledger_drift";
	case RC_DRIFT_AUTH_ENDED:
		return "authorization_ended";
	}
	return "unknown";
}

const char *reconcile_settle_name(enum rc_settle s)
{
	switch (s) {
	case RC_SETTLE_SUCCEEDED:
		return "succeeded";
	case RC_SETTLE_REFUSED:
		return "refused";
	case RC_SETTLE_ABSENT:
		return "absent";
	case RC_SETTLE_UNDECIDED:
		return "undecided";
	}
	return "unknown";
}

bool reconcile_entry_kind(const char *type, enum mod_kind *kind)
{
	if (type == NULL)
		return false;
	if (strcasecmp(type, "CAPTURE") == 0)
		*kind = MOD_CAPTURE;
	else if (strcasecmp(type, "CANCELLATION") == 0 || strcasecmp(type, "CANCELATION") == 0)
		*kind = MOD_CANCEL;
	else if (strcasecmp(type, "REFUND") == 0)
		*kind = MOD_REFUND;
	else
		return false;
	return true;
}

bool reconcile_status_refused(const char *status)
{
	static const char *const refused[] = {"FAILED", "REFUSED", "DECLINED", "REJECTED", "ERROR"};
	if (status == NULL)
		return false;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (strcasecmp(status, refused[i]) == 0)
			return true;
	return false;
}

/* True when the payment status is one of the NULL-terminated list (any case). */
static bool status_in(const char *status, const char *const *list)
{
	if (status == NULL)
		return false;
	for (; *list != NULL; list++)
		if (strcasecmp(status, *list) == 0)
			return true;
	return false;
}

/* Whether a payment status shows that a modification of `kind` can still be made and
 * has not been: then one missing from the history may be resent. */
static bool still_possible(enum mod_kind kind, const char *payment_status)
{
	static const char *const authorized[] = {"AUTHORIZATION_COMPLETED", NULL};
	static const char *const captured[] = {"CAPTURED", "SETTLED", NULL};
	switch (kind) {
	case MOD_CAPTURE:
	case MOD_CANCEL:
		return status_in(payment_status, authorized);
	case MOD_REFUND:
		return status_in(payment_status, captured);
	case MOD_CANCEL_OR_REFUND:
		return status_in(payment_status, authorized) || status_in(payment_status, captured);
	}
	return false;
}

/* True when the entry's modificationId is exactly `id`. */
static bool entry_names(const struct gw_entry *e, const char *id)
{
	return e->modification_id != NULL && id != NULL && strcmp(e->modification_id, id) == 0;
}

/* What the entries naming a row say: the first one, and whether others disagree. */
struct row_entries {
	const struct gw_entry *first;
	size_t count;
	bool disagree;
	bool confirms; /* some entry confirms the row's kind */
};

/* Finds the entries naming `row`. */
static void entries_of(const struct rc_row *row, const struct gw_history *h,
                       struct row_entries *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < h->nentries; i++) {
		const struct gw_entry *e = &h->entries[i];
		if (!entry_names(e, row->modification_id))
			continue;
		out->count++;
		if (classify_confirms(row->kind, e->type, e->status) == NULL)
			out->confirms = true;
		if (out->first == NULL) {
			out->first = e;
			continue;
		}
		if ((e->status == NULL) != (out->first->status == NULL) ||
		    (e->status != NULL && strcasecmp(e->status, out->first->status) != 0) ||
		    (e->type == NULL) != (out->first->type == NULL) ||
		    (e->type != NULL && strcasecmp(e->type, out->first->type) != 0))
			out->disagree = true;
	}
}

/* The settlement of a row whose outcome is unknown. */
static void settle_row(const struct rc_row *row, size_t index, const struct gw_history *h,
                       struct rc_settlement *s)
{
	struct row_entries re;
	entries_of(row, h, &re);
	memset(s, 0, sizeof(*s));
	s->row = index;
	if (re.count == 0) {
		s->settle = RC_SETTLE_ABSENT;
		s->resend = still_possible(row->kind, h->payment_status);
		return;
	}
	s->gateway_status = re.first->status;
	if (re.disagree)
		s->settle = RC_SETTLE_UNDECIDED;
	else if (classify_confirms(row->kind, re.first->type, re.first->status) == NULL)
		s->settle = RC_SETTLE_SUCCEEDED;
	else if (reconcile_status_refused(re.first->status))
		s->settle = RC_SETTLE_REFUSED;
	else
		s->settle = RC_SETTLE_UNDECIDED;
}

/* Why a succeeded or refused row disagrees with the history; NULL when it does not. */
static const char *row_drift(const struct rc_row *row, const struct gw_history *h)
{
	struct row_entries re;
	entries_of(row, h, &re);
	if (row->state == RC_ROW_REFUSED)
		return re.confirms && !re.disagree
		           ? "the gateway performed a modification the ledger has as refused"
		           : NULL;
	if (re.count == 0)
		return "not in the gateway's history";
	if (!re.confirms || re.disagree)
		return "the gateway's entry does not confirm it";
	if ((row->kind == MOD_CAPTURE || row->kind == MOD_REFUND) && row->amount_minor > 0 &&
	    re.first->has_amount && re.first->amount_minor != row->amount_minor)
		return "the gateway's amount differs";
	return NULL;
}

/* What an external effect of `kind` was. */
static const char *external_what(enum mod_kind kind)
{
	switch (kind) {
	case MOD_CAPTURE:
		return "captured outside the daemon";
	case MOD_CANCEL:
	case MOD_CANCEL_OR_REFUND:
		return "cancelled outside the daemon";
	case MOD_REFUND:
		return "refunded outside the daemon";
	}
	return "changed outside the daemon";
}

/* Appends a finding. */
static void add_finding(struct rc_report *r, size_t *cap, const struct rc_finding *f)
{
	r->findings = xgrow(r->findings, cap, r->nfindings + 1, sizeof(*r->findings));
	r->findings[r->nfindings++] = *f;
}

/* True when one of our rows is a cancel or cancelOrRefund that is not refused: a
 * cancelled payment is then the daemon's own doing (settled or drift-checked above). */
static bool cancel_is_ours(const struct rc_row *rows, size_t nrows)
{
	for (size_t i = 0; i < nrows; i++)
		if ((rows[i].kind == MOD_CANCEL || rows[i].kind == MOD_CANCEL_OR_REFUND) &&
		    rows[i].state != RC_ROW_REFUSED)
			return true;
	return false;
}

/* True when some row names the entry's modificationId. */
static bool entry_is_ours(const struct gw_entry *e, const struct rc_row *rows, size_t nrows)
{
	for (size_t i = 0; i < nrows; i++)
		if (entry_names(e, rows[i].modification_id))
			return true;
	return false;
}

void reconcile_compare(const struct rc_row *rows, size_t nrows, const struct gw_history *h,
                       bool order_open, struct rc_report *out)
{
	size_t cap = 0;
	memset(out, 0, sizeof(*out));
	out->settlements = xcalloc(nrows ? nrows : 1, sizeof(*out->settlements));
	for (size_t i = 0; i < nrows; i++) {
		if (rows[i].state == RC_ROW_PENDING || rows[i].state == RC_ROW_NEEDS_ATTENTION) {
			settle_row(&rows[i], i, h, &out->settlements[out->nsettlements++]);
			continue;
		}
		const char *why = row_drift(&rows[i], h);
		if (why != NULL) {
			struct rc_finding f = {
			    .drift = RC_DRIFT_LEDGER, .row = i, .kind = rows[i].kind, .what = why};
			add_finding(out, &cap, &f);
		}
	}
	for (size_t i = 0; i < h->nentries; i++) {
		const struct gw_entry *e = &h->entries[i];
		enum mod_kind kind;
		if (!reconcile_entry_kind(e->type, &kind) ||
		    classify_confirms(kind, e->type, e->status) != NULL ||
		    entry_is_ours(e, rows, nrows))
			continue;
		struct rc_finding f = {.drift = RC_DRIFT_EXTERNAL,
		                       .entry = i,
		                       .kind = kind,
		                       .what = external_what(kind)};
		add_finding(out, &cap, &f);
	}
	static const char *const ended[] = {"EXPIRED", "CANCELLED", NULL};
	bool cancelled = strcasecmp(h->payment_status ? h->payment_status : "", "EXPIRED") != 0;
	if (order_open && status_in(h->payment_status, ended) &&
	    !(cancelled && cancel_is_ours(rows, nrows))) {
		struct rc_finding f = {.drift = RC_DRIFT_AUTH_ENDED,
		                       .what =
		                           strcasecmp(h->payment_status, "EXPIRED") == 0
		                               ? "the authorization expired at the gateway"
		                               : "the authorization was cancelled at the gateway"};
		add_finding(out, &cap, &f);
	}
}

void reconcile_report_free(struct rc_report *r)
{
	if (r == NULL)
		return;
	free(r->settlements);
	free(r->findings);
	memset(r, 0, sizeof(*r));
}
