/* The outcome write path of the engine: outcomes queue up and are written together (a
 * group commit on a connection of their own) under the lease's fencing; a batch the
 * database refuses is split, an outcome refused alone loses the gateway's text, and one
 * refused even so is given up (alerted; its row is sent again, with the same id, once
 * its lease lapses). Part of the engine (lib/engine.c tells the flow). */
#include "autoconfig.h"

#include "engine_internal.h"

#include "config.h"
#include "http.h"
#include "log.h"
#include "modification.h"
#include "pgconn.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

static void engine_flush_soon(struct engine *e);

/* Outcomes held in memory: queued, being written, or waiting to be written alone. */
size_t engine_outcomes_held(const struct engine *e)
{
	return e->nout + e->nwriting + e->nsolo;
}

/* Queues an outcome for the next batched write. Takes ownership of its strings. */
void engine_record(struct engine *e, struct outcome *o)
{
	e->out = xgrow(e->out, &e->cap_out, e->nout + 1, sizeof(*e->out));
	e->out[e->nout++] = *o;
	memset(o, 0, sizeof(*o));
	engine_flush_soon(e);
}

/* Writes the queued outcomes now or after a short wait: the answers of a round share one
 * write (lib/schedule.h, sched_flush_delay_us), also those that queued while the last
 * write ran; a full batch, a solo write, or nothing in flight (the last answer of a
 * burst: no answer is coming to share it) goes at once. */
static void engine_flush_soon(struct engine *e)
{
	if (e->nout >= (size_t)e->cfg->batch_size || e->nsolo > 0 ||
	    (http_inflight(e->http) == 0 && e->nsettling == 0)) {
		engine_flush(e);
	} else if (e->nout > 0 && !e->writing && !evtimer_pending(e->ev_flush, NULL)) {
		int64_t delay = sched_flush_delay_us(e->latency_avg_us);
		struct timeval tv = {.tv_sec = 0, .tv_usec = (suseconds_t)delay};
		evtimer_add(e->ev_flush, &tv);
	}
}

/* Drops what came from the gateway (body, paymentStatus, reference) from an outcome the
 * database refused and says why in its reason; an answer counts as an attempt. */
static void engine_sanitise_outcome(struct outcome *o, const char *error)
{
	free(o->response_body);
	free(o->payment_status);
	free(o->reconciliation_reference_id);
	o->response_body = o->payment_status = o->reconciliation_reference_id = NULL;
	char *why = store_error_text(error);
	free(o->reason);
	o->reason = xasprintf("the gateway's answer could not be stored: %s", why);
	free(why);
	/* a 401 is the daemon's fault, never the order's: it stays uncounted */
	o->counted = o->counted || (o->http_status > 0 && o->http_status != 401);
}

/* Puts outcomes at the front of the solo queue (taking their strings). */
static void engine_solo_push_front(struct engine *e, struct outcome *o, size_t n, bool sanitised)
{
	e->solo = xgrow(e->solo, &e->cap_solo, e->nsolo + n, sizeof(*e->solo));
	memmove(e->solo + n, e->solo, e->nsolo * sizeof(*e->solo));
	for (size_t i = 0; i < n; i++) {
		e->solo[i].o = o[i];
		e->solo[i].sanitised = sanitised;
		memset(&o[i], 0, sizeof(o[i]));
	}
	e->nsolo += n;
}

/* Follow-ups of outcomes that were written (or given up), then frees them. */
static void engine_after_write(struct engine *e, struct outcome *o, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool final = strcmp(o[i].state, "pending") != 0;
		/* a finished modification may unblock the next one of its order (a cancel
		 * after a capture or behind a refund): the outcome's statement queued it when a
		 * change of the order waited for it (sql/017) */
		if (final && o[i].order_id && !engine_queue_mode(e))
			engine_note_order(e, o[i].order_id);
		if (final)
			e->wanted[SCHED_TARGETED] = true;
		/* the transaction is free again: the next request for it may go (when the last
		 * requests query saw one open behind a modification in flight, or one was
		 * notified since) */
		if (final && e->requests_open)
			e->wanted[SCHED_REQUESTS] = true;
		/* a row given back unsent is due now, once its lease is free */
		if (o[i].released)
			e->wanted[SCHED_DUE] = !e->gave_up;
		else if (e->once && !final)
			e->left_undone++;
		outcome_clear(&o[i]);
	}
}

/* A write the database refused: the batch is split so that the other outcomes pass;
 * one outcome alone loses the gateway's text; refused even so, it is given up (its
 * lease lapses and the row is sent again, with the same id, later). */
static void engine_write_rejected(struct engine *e, struct outcome *w, size_t n, bool sanitised,
                                  const char *error)
{
	char *why = store_error_text(error);
	if (n > 1) {
		log_fields(LOG_LVL_WARNING, "outcome_batch_rejected", LOG_UINT("count", n),
		           LOG_STR("reason", why),
		           LOG_STR("msg", "writing the outcomes one by one"));
		engine_solo_push_front(e, w, n, false);
	} else if (!sanitised) {
		log_fields(LOG_LVL_ERR, "outcome_rejected",
		           LOG_STR("modification_id", w->modification_id),
		           LOG_STR("order_id", w->order_id), LOG_STR("reason", why),
		           LOG_STR("msg", "recording it without the gateway's answer"));
		engine_sanitise_outcome(w, error);
		engine_solo_push_front(e, w, 1, true);
	} else {
		log_fields(
		    LOG_LVL_ERR, "outcome_unstorable",
		    LOG_STR("modification_id", w->modification_id),
		    LOG_STR("order_id", w->order_id), LOG_STR("reason", why),
		    LOG_STR("msg",
		            "the row stays pending and is sent again once its lease lapses"));
		e->stats.outcomes_dropped++;
		if (e->once)
			e->left_undone++;
		char *msg = xasprintf("%s for order %s: the database refuses its outcome (%s) even "
		                      "without the gateway's answer; modification %s stays pending",
		                      mod_kind_name(w->kind), w->order_id ? w->order_id : "-",
		                      w->state, w->modification_id);
		char *text = xasprintf("%s: %s", msg, why);
		if (!store_raise_alert(e->st, "outcome_unstorable", "critical", w->modification_id,
		                       text, engine_alert_done, e))
			log_fields(LOG_LVL_WARNING, "alert_insert_failed",
			           LOG_STR("kind", "outcome_unstorable"));
		free(msg);
		free(text);
		outcome_clear(w);
	}
	free(why);
}

/* An outcome write finished: follow-ups, fenced and disagreeing outcomes logged; a
 * transient failure keeps the outcomes (and stops claims), a refusal splits them. */
static void engine_written(char **fenced, const bool *disagrees, size_t nfenced, const char *error,
                           bool rejected, void *arg)
{
	struct engine *e = arg;
	struct outcome *w = e->writing;
	size_t n = e->nwriting;
	bool solo = e->writing_solo, sanitised = e->writing_sanitised;
	e->writing = NULL;
	e->nwriting = 0;
	e->writing_solo = e->writing_sanitised = false;
	if (error && !rejected) {
		/* keep them: written again once the database is back; no claims meanwhile */
		log_fields(LOG_LVL_WARNING, "outcome_write_failed", LOG_STR("reason", error));
		e->out_blocked = true;
		if (solo) {
			engine_solo_push_front(e, w, n, sanitised);
		} else {
			size_t total = n + e->nout;
			e->out = xgrow(e->out, &e->cap_out, total, sizeof(*e->out));
			memmove(e->out + n, e->out, e->nout * sizeof(*e->out));
			memcpy(e->out, w, n * sizeof(*e->out));
			e->nout = total;
		}
		free(w);
		return;
	}
	if (error) {
		engine_write_rejected(e, w, n, sanitised, error);
		free(w);
		engine_flush(e);
		engine_kick(e);
		return;
	}
	e->out_blocked = false;
	for (size_t i = 0; i < nfenced; i++) {
		e->stats.fenced++;
		if (disagrees[i])
			log_fields(
			    LOG_LVL_ERR, "outcome_disagrees", LOG_STR("modification_id", fenced[i]),
			    LOG_STR(
			        "msg",
			        "the lease moved to another owner whose outcome differs; alerted"));
		else
			log_fields(
			    LOG_LVL_WARNING, "outcome_fenced",
			    LOG_STR("modification_id", fenced[i]),
			    LOG_STR("msg", "the lease moved to another owner; its outcome wins"));
	}
	engine_after_write(e, w, n);
	free(w);
	if (e->once && !e->gave_up)
		e->wanted[SCHED_SCAN] =
		    true; /* follow-ups (cancel after capture) are due now too */
	engine_flush_soon(e);
	engine_kick(e);
}

/* Writes the queued outcomes when no write is under way (group commit); outcomes of a
 * refused batch go first, one statement each. */
void engine_flush(struct engine *e)
{
	if (e->writing || !pg_conn_is_up(e->wpc))
		return;
	evtimer_del(e->ev_flush);
	if (e->nsolo > 0) {
		e->writing = xmalloc(sizeof(*e->writing));
		*e->writing = e->solo[0].o;
		e->nwriting = 1;
		e->writing_solo = true;
		e->writing_sanitised = e->solo[0].sanitised;
		memmove(e->solo, e->solo + 1, (e->nsolo - 1) * sizeof(*e->solo));
		e->nsolo--;
	} else if (e->nout > 0) {
		e->writing = e->out;
		e->nwriting = e->nout;
		e->out = NULL;
		e->nout = e->cap_out = 0;
	} else {
		return;
	}
	if (!store_write_outcomes(e->wst, e->writing, e->nwriting, engine_written, e))
		engine_written(NULL, NULL, 0, "database connection lost", false, e);
}

/* The flush delay is over: the outcomes queued meanwhile are written together. */
void engine_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	engine_flush(arg);
}

/* Frees the outcomes held: queued, being written, waiting to be written alone. */
void engine_outcomes_free(struct engine *e)
{
	for (size_t i = 0; i < e->nout; i++)
		outcome_clear(&e->out[i]);
	free(e->out);
	for (size_t i = 0; i < e->nwriting; i++)
		outcome_clear(&e->writing[i]);
	free(e->writing);
	for (size_t i = 0; i < e->nsolo; i++)
		outcome_clear(&e->solo[i].o);
	free(e->solo);
}
