#include "autoconfig.h"

#include "outcome.h"

#include "backoff.h"
#include "classify.h"
#include "response.h"
#include "xmalloc.h"

#include <string.h>

const char *engine_result_name(enum engine_result r)
{
	static const char *const names[ER_COUNT] = {
	    "succeeded", "refused", "retry", "needs_attention", "auth_rejected", "refused_locally"};
	return (unsigned)r < ER_COUNT ? names[r] : "unknown";
}

/* Fills the fields every outcome of claim c has. */
static void outcome_init(const struct store_claim *c, struct store_outcome *o)
{
	memset(o, 0, sizeof(*o));
	o->modification_id = xstrdup(c->modification_id);
	o->order_id = xstrdup(c->order_id);
	o->kind = c->kind;
	o->generation = c->generation;
	o->counted = true;
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

enum engine_result outcome_decide(const struct outcome_policy *p, const struct store_claim *c,
                                  const struct outcome_answer *a, int64_t now_ms, uint64_t random,
                                  struct store_outcome *o)
{
	struct gw_response parsed;
	memset(&parsed, 0, sizeof(parsed));
	bool body_ok =
	    a->http_status > 0 && response_parse(a->body, a->body_len, c->modification_id, &parsed);
	struct classification cls;
	classify_answer(a->http_status, a->transport_error, a->timed_out, body_ok, a->retry_after,
	                now_ms, &cls);

	outcome_init(c, o);
	o->http_status = a->http_status;
	if (a->http_status > 0 && a->body_len > 0)
		o->response_body = xstrndup(a->body, a->body_len < OUTCOME_MAX_STORED_RESPONSE
		                                         ? a->body_len
		                                         : OUTCOME_MAX_STORED_RESPONSE);
	enum engine_result result;
	switch (cls.outcome) {
	case OUTCOME_ACCEPTED:
		o->state = "succeeded";
		o->payment_status = dup_or_null(parsed.payment_status);
		o->reconciliation_reference_id = dup_or_null(parsed.reconciliation_reference_id);
		result = ER_SUCCEEDED;
		break;
	case OUTCOME_REFUSED:
		o->state = "refused";
		o->reason = parsed.error ? xasprintf("%s: %s", cls.reason, parsed.error)
		                         : xstrdup(cls.reason);
		o->alert_kind = "modification_refused";
		o->alert_severity = "critical";
		result = ER_REFUSED;
		break;
	case OUTCOME_AUTH_REJECTED:
		/* not this order's fault: back in the queue at once, not counted */
		o->state = "pending";
		o->counted = false;
		o->reason = xstrdup(cls.reason);
		result = ER_AUTH_REJECTED;
		break;
	default: {
		struct backoff_policy pol = {.base_ms = p->retry_base_ms,
		                             .max_ms = p->retry_max_ms,
		                             .max_attempts = p->max_attempts,
		                             .deadline_margin_ms = OUTCOME_DEADLINE_MARGIN_MS};
		int64_t deadline = c->kind == MOD_CAPTURE ? c->deadline_ms : 0;
		int64_t next_at = 0;
		const char *why = NULL;
		const char *detail = a->error && a->http_status == 0 ? a->error : cls.reason;
		if (backoff_next(&pol, c->attempts + 1, now_ms, deadline, cls.retry_after_ms,
		                 random, &next_at, &why) == BACKOFF_GIVE_UP) {
			o->state = "needs_attention";
			o->reason = xasprintf("%s after %d attempts; last: %s", why,
			                      c->attempts + 1, detail);
			o->alert_kind = "needs_attention";
			o->alert_severity = "critical";
			result = ER_NEEDS_ATTENTION;
		} else {
			o->state = "pending";
			o->reason = xasprintf("retrying: %s", detail);
			o->retry_delay_ms = next_at - now_ms;
			result = ER_RETRY;
		}
		break;
	}
	}
	response_free(&parsed);
	return result;
}

void outcome_expired(const struct store_claim *c, struct store_outcome *o)
{
	outcome_init(c, o);
	o->state = "needs_attention";
	o->reason = xstrdup("authorization deadline passed before the capture was confirmed");
	o->alert_kind = "needs_attention";
	o->alert_severity = "critical";
}
