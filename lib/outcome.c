#include "autoconfig.h"

#include "outcome.h"

#include "backoff.h"
#include "classify.h"
#include "reconcile.h"
#include "response.h"
#include "text.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

const char *outcome_result_name(enum outcome_result r)
{
	static const char *const names[OUTCOME_RESULT_COUNT] = {
	    "succeeded", "refused", "retry", "needs_attention", "auth_rejected", "refused_locally"};
	return (unsigned)r < OUTCOME_RESULT_COUNT ? names[r] : "unknown";
}

/* Fills the fields every outcome of claim c has. */
static void outcome_init(const struct claim *c, struct outcome *o)
{
	memset(o, 0, sizeof(*o));
	o->modification_id = xstrdup(c->modification_id);
	o->order_id = xstrdup(c->order_id);
	o->kind = c->kind;
	o->generation = c->generation;
	o->counted = true;
}

/* What a 2xx that did not confirm this modification showed instead (the error, the
 * entry's type or status; well-formed text from the parsed body), or NULL. */
static const char *unconfirmed_detail(const struct classification *cls,
                                      const struct gw_response *parsed)
{
	if (strcmp(cls->unconfirmed, CLASSIFY_UNCONFIRMED_ERROR) == 0)
		return parsed->error;
	if (strcmp(cls->unconfirmed, CLASSIFY_UNCONFIRMED_WRONG_TYPE) == 0)
		return parsed->modification_type;
	if (strcmp(cls->unconfirmed, CLASSIFY_UNCONFIRMED_STATUS) == 0)
		return parsed->modification_status;
	return NULL;
}

/* What an unknown outcome says happened, malloc'd: the transport's message, why a 2xx
 * did not confirm this modification, or the classification's reason. */
static char *unknown_detail(const struct outcome_answer *a, const struct classification *cls,
                            const struct gw_response *parsed)
{
	const char *seen;

	if (a->error != NULL && a->http_status == 0)
		return xstrdup(a->error);
	if (cls->unconfirmed == NULL)
		return xstrdup(cls->reason);
	seen = unconfirmed_detail(cls, parsed);
	if (seen != NULL)
		return xasprintf(
		    "gateway answered %s without confirming this modification: %s (%s)",
		    cls->reason, cls->unconfirmed, seen);
	return xasprintf("gateway answered %s without confirming this modification: %s",
	                 cls->reason, cls->unconfirmed);
}

/* Takes a malloc'd reason and returns it storable (well-formed, bounded). */
static char *storable_reason(char *reason)
{
	char *out = text_storable_str(reason, OUTCOME_MAX_STORED_REASON);

	free(reason);
	return out;
}

/* Fills the outcome of an unknown answer: a retry, or needs_attention when retries are
 * exhausted or a capture's deadline leaves no room. */
static enum outcome_result outcome_unknown(const struct outcome_policy *p, const struct claim *c,
                                           const struct outcome_answer *a,
                                           const struct classification *cls,
                                           const struct gw_response *parsed, int64_t now_ms,
                                           uint64_t random, struct outcome *o)
{
	struct backoff_policy pol = {.base_ms = p->retry_base_ms,
	                             .max_ms = p->retry_max_ms,
	                             .max_attempts = p->max_attempts,
	                             .deadline_margin_ms = OUTCOME_DEADLINE_MARGIN_MS};
	int64_t deadline = c->kind == MOD_CAPTURE ? c->deadline_ms : 0;
	int64_t next_at = 0;
	const char *why = NULL;
	char *detail = unknown_detail(a, cls, parsed);
	enum outcome_result result;

	if (backoff_next(&pol, c->attempts + 1, now_ms, deadline, cls->retry_after_ms, random,
	                 &next_at, &why) == BACKOFF_GIVE_UP) {
		o->state = "needs_attention";
		o->reason =
		    xasprintf("%s after %d attempts; last: %s", why, c->attempts + 1, detail);
		o->alert_kind = "needs_attention";
		o->alert_severity = "critical";
		result = OUTCOME_NEEDS_ATTENTION;
	} else {
		o->state = "pending";
		o->reason = xasprintf("retrying: %s", detail);
		o->retry_delay_ms = next_at - now_ms;
		result = OUTCOME_RETRY;
	}
	free(detail);
	return result;
}

enum outcome_result outcome_decide(const struct outcome_policy *p, const struct claim *c,
                                   const struct outcome_answer *a, int64_t now_ms, uint64_t random,
                                   struct outcome *o)
{
	struct gw_response parsed;
	memset(&parsed, 0, sizeof(parsed));
	bool body_ok =
	    a->http_status > 0 && response_parse(a->body, a->body_len, c->modification_id, &parsed);
	struct classification cls;
	classify_answer(a->http_status, a->transport_error, a->timed_out, body_ok ? &parsed : NULL,
	                c->kind, a->retry_after, now_ms, &cls);

	outcome_init(c, o);
	o->http_status = a->http_status;
	if (a->http_status > 0 && a->body_len > 0)
		o->response_body =
		    text_storable(a->body, a->body_len, OUTCOME_MAX_STORED_RESPONSE, TEXT_NUL_DROP);
	enum outcome_result result;
	switch (cls.verdict) {
	case VERDICT_ACCEPTED:
		o->state = "succeeded";
		o->payment_status =
		    text_storable_str(parsed.payment_status, OUTCOME_MAX_STORED_FIELD);
		o->reconciliation_reference_id =
		    text_storable_str(parsed.reconciliation_reference_id, OUTCOME_MAX_STORED_FIELD);
		result = OUTCOME_SUCCEEDED;
		break;
	case VERDICT_REFUSED:
		o->state = "refused";
		o->reason = parsed.error ? xasprintf("%s: %s", cls.reason, parsed.error)
		                         : xstrdup(cls.reason);
		o->alert_kind = "modification_refused";
		o->alert_severity = "critical";
		result = OUTCOME_REFUSED;
		break;
	case VERDICT_AUTH_REJECTED:
		/* not this order's fault: back in the queue at once, not counted */
		o->state = "pending";
		o->counted = false;
		o->reason = xstrdup(cls.reason);
		result = OUTCOME_AUTH_REJECTED;
		break;
	default:
		result = outcome_unknown(p, c, a, &cls, &parsed, now_ms, random, o);
		break;
	}
	o->reason = storable_reason(o->reason);
	response_free(&parsed);
	return result;
}

/* Replaces o's reason by a storable copy of `reason` (malloc'd, taken). */
static void set_reason(struct outcome *o, char *reason)
{
	free(o->reason);
	o->reason = storable_reason(reason);
}

/* Whether the claim is a capture whose authorization deadline had passed when claimed:
 * it is never sent again. */
static bool outcome_past_deadline(const struct claim *c)
{
	return c->kind == MOD_CAPTURE && c->deadline_passed;
}

enum outcome_result outcome_settle(const struct outcome_policy *p, const struct claim *c,
                                   const struct gw_history *h, enum outcome_result unknown,
                                   struct outcome *o)
{
	struct rc_row row = {
	    .kind = c->kind, .modification_id = c->modification_id, .state = RC_ROW_PENDING};
	struct rc_report rep;
	reconcile_compare(&row, 1, h, false, &rep);
	const struct rc_settlement *s = &rep.settlements[0];
	const char *ps = h->payment_status ? h->payment_status : "none";
	const char *gs = s->gateway_status ? s->gateway_status : "none";
	enum outcome_result result = unknown;
	if (s->settle == RC_SETTLE_SUCCEEDED) {
		o->state = "succeeded";
		o->settled_by = "status";
		o->alert_kind = o->alert_severity = NULL;
		o->retry_delay_ms = 0;
		free(o->payment_status);
		o->payment_status = text_storable_str(h->payment_status, OUTCOME_MAX_STORED_FIELD);
		set_reason(o, xasprintf("settled from the gateway's status history: its entry for "
		                        "this modificationId has status %s",
		                        gs));
		result = OUTCOME_SUCCEEDED;
	} else if (s->settle == RC_SETTLE_REFUSED) {
		o->state = "refused";
		o->settled_by = "status";
		o->alert_kind = "modification_refused";
		o->alert_severity = "critical";
		o->retry_delay_ms = 0;
		set_reason(o, xasprintf("refused at the gateway: its status history has status %s "
		                        "for this modificationId",
		                        gs));
		result = OUTCOME_REFUSED;
	} else if (s->settle == RC_SETTLE_ABSENT && s->resend && !outcome_past_deadline(c) &&
	           (unknown != OUTCOME_NEEDS_ATTENTION || c->attempts + 1 < 2 * p->max_attempts)) {
		if (unknown == OUTCOME_NEEDS_ATTENTION)
			o->retry_delay_ms = p->retry_max_ms;
		o->state = "pending";
		o->alert_kind = o->alert_severity = NULL;
		set_reason(o, xasprintf("resending the same request: the gateway's status history "
		                        "does not have this modificationId and its payment status "
		                        "%s shows it can still be made",
		                        ps));
		result = OUTCOME_RETRY;
	} else {
		set_reason(o, xasprintf("%s; the gateway's status history: %s (payment status %s)",
		                        o->reason ? o->reason : "unknown",
		                        reconcile_settle_name(s->settle), ps));
	}
	reconcile_report_free(&rep);
	return result;
}

void outcome_expired(const struct claim *c, struct outcome *o)
{
	outcome_init(c, o);
	o->counted = false; /* nothing was sent */
	o->state = "needs_attention";
	o->reason = xstrdup("authorization deadline passed before the capture was confirmed");
	o->alert_kind = "needs_attention";
	o->alert_severity = "critical";
}
