/* Unknown outcomes settled from the transaction's status history (lib/status_call.c):
 * after [reconcile] unknown_answers unknown answers, and always before needs_attention,
 * a flight's outcome is held while Get Payment Status is asked; a readable history may
 * settle it (lib/outcome.c), a failed call decides nothing. Part of the engine
 * (lib/engine.c tells the flow). */
#include "autoconfig.h"

#include "engine_internal.h"

#include "config.h"
#include "log.h"
#include "status_call.h"

#include <stdlib.h>
#include <string.h>

/* Whether an unknown outcome is to be settled from the transaction's status first: after
 * [reconcile] unknown_answers unknown answers, and always before needs_attention. */
bool engine_wants_status(const struct engine *e, const struct claim *c, enum outcome_result r)
{
	if (e->status == NULL || c->transaction_id == NULL || c->transaction_id[0] == '\0')
		return false;
	if (r == OUTCOME_NEEDS_ATTENTION)
		return true;
	return r == OUTCOME_RETRY && c->attempts + 1 >= e->cfg->reconcile_unknown_answers;
}

/* The status answer for a flight with an unknown outcome: a readable history may settle
 * it; a failed call decides nothing and the unknown outcome stands. */
static void engine_on_status(enum status_result result, struct gw_history *history, int http_status,
                             const char *error, void *arg)
{
	(void)http_status;
	struct flight *f = arg;
	struct engine *e = f->e;
	struct claim *c = &f->claim;
	if (f->prev)
		f->prev->next = f->next;
	else
		e->settling = f->next;
	if (f->next)
		f->next->prev = f->prev;
	e->nsettling--;
	enum outcome_result r = f->held_result;
	if (result == STATUS_OK) {
		struct outcome_policy pol = engine_outcome_policy(e);
		r = outcome_settle(&pol, c, history, f->held_result, &f->held);
		log_fields(r == f->held_result ? LOG_LVL_INFO : LOG_LVL_NOTICE, "status_checked",
		           FLIGHT_IDS(c), LOG_STR("payment_status", history->payment_status),
		           LOG_STR("result", outcome_result_name(r)),
		           LOG_STR("reason", f->held.reason));
	} else {
		log_fields(LOG_LVL_WARNING, "status_call_failed", FLIGHT_IDS(c),
		           LOG_STR("result", status_result_name(result)), LOG_STR("error", error),
		           LOG_STR("msg", "nothing decided from it"));
	}
	engine_conclude(e, f, r, &f->held);
}

/* Holds a flight's unknown outcome and asks for its transaction's status. */
void engine_ask_status(struct engine *e, struct flight *f, enum outcome_result r, struct outcome *o)
{
	f->held = *o;
	memset(o, 0, sizeof(*o));
	f->held_result = r;
	f->prev = NULL;
	f->next = e->settling;
	if (e->settling)
		e->settling->prev = f;
	e->settling = f;
	e->nsettling++;
	log_fields(LOG_LVL_DEBUG, "status_asked", FLIGHT_IDS(&f->claim));
	status_client_get(e->status, f->claim.transaction_id, engine_on_status, f);
}

/* Drops the flights waiting for a status call (their rows stay pending under the lease,
 * taken up again after it). */
void engine_drop_settling(struct engine *e)
{
	while (e->settling != NULL) {
		struct flight *f = e->settling;
		e->settling = f->next;
		if (e->status)
			status_client_cancel(e->status, f);
		outcome_clear(&f->held);
		claim_clear(&f->claim);
		free(f);
	}
	e->nsettling = 0;
}
