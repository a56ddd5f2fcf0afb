#include "autoconfig.h"

#include "reconciler.h"

#include "clock.h"
#include "config.h"
#include "log.h"
#include "pgconn.h"
#include "reconcile.h"
#include "status_call.h"
#include "store.h"
#include "store_reconcile.h"
#include "xmalloc.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Transactions compared at once (each waits for its status call, then two statements). */
#define RC_WORKERS 4
/* Transactions one page of a pass reads (a short statement each; the next page is read
 * when the workers have taken this one). */
#define RC_PAGE 256
/* After a failed pass (database down, a statement failed), try again after this long. */
#define RC_RETRY_MS 30000

struct reconciler;

/* One transaction being compared. */
struct rc_worker {
	struct reconciler *r;
	bool busy;
	char *transaction_id;
	char *order_id;
	bool order_open;
	struct gw_history history;
	struct store_rc_rows rows;
	struct rc_report report;
	struct store_rc_record record;
};

struct reconciler {
	struct event_base *base;
	const struct sp_config *cfg;
	struct status_client *status;
	struct pg_conn *pc;
	struct store *st; /* the reconciliation's statements, on pc */
	struct event *ev_timer;
	struct store_rc_target *targets; /* the current page */
	size_t ntargets, next;
	bool snapshot; /* the pass's pages read its snapshot of the open authorizations */
	char *id_type, *authorized_type; /* of the orders relation, read at a pass's start */
	char *cursor;                    /* the last transaction id of the page read last */
	bool more;                       /* the last page was full: another follows */
	bool reading;                    /* a statement of the pass (shape or page) is under way */
	size_t seen;                     /* transactions of the pass so far */
	bool failed;                     /* this pass met a database error */
	struct rc_worker workers[RC_WORKERS];
	struct reconciler_stats stats;
};

/* Arms the timer for the next pass. */
static void rc_arm(struct reconciler *r, int64_t delay_ms)
{
	struct timeval tv = {.tv_sec = delay_ms / 1000, .tv_usec = (delay_ms % 1000) * 1000};
	evtimer_del(r->ev_timer);
	evtimer_add(r->ev_timer, &tv);
}

/* Frees the pass's target list. */
static void rc_targets_free(struct reconciler *r)
{
	store_rc_targets_free(r->targets, r->ntargets);
	r->targets = NULL;
	r->ntargets = r->next = 0;
}

/* Releases what a worker held and marks it free. */
static void rc_worker_clear(struct rc_worker *w)
{
	free(w->transaction_id);
	free(w->order_id);
	response_history_free(&w->history);
	store_rc_rows_free(&w->rows);
	reconcile_report_free(&w->report);
	store_rc_record_free(&w->record);
	struct reconciler *r = w->r;
	memset(w, 0, sizeof(*w));
	w->r = r;
}

static void rc_dispatch(struct reconciler *r);

/* A worker is done with its transaction: take the next one, or end the pass. */
static void rc_worker_done(struct rc_worker *w)
{
	struct reconciler *r = w->r;
	rc_worker_clear(w);
	rc_dispatch(r);
}

/* The record statement's answer: log every alert it inserted. */
static void rc_on_recorded(const struct store_new_alert *alerts, size_t n, const char *error,
                           void *arg)
{
	struct rc_worker *w = arg;
	struct reconciler *r = w->r;
	if (error != NULL) {
		r->failed = true;
		log_fields(LOG_LVL_WARNING, "reconcile_record_failed",
		           LOG_STR("transaction_id", w->transaction_id),
		           LOG_STR("order_id", w->order_id), LOG_STR("error", error));
		rc_worker_done(w);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct store_new_alert *a = &alerts[i];
		r->stats.alerts++;
		log_fields(strcmp(a->severity, "critical") == 0 ? LOG_LVL_ERR : LOG_LVL_WARNING,
		           "alert", LOG_INT("alert_id", a->alert_id), LOG_STR("kind", a->kind),
		           LOG_STR("severity", a->severity), LOG_STR("order_id", a->order_id),
		           LOG_STR("modification_id", a->modification_id),
		           LOG_STR("transaction_id", w->transaction_id),
		           LOG_STR("message", a->message));
	}
	rc_worker_done(w);
}

/* The transaction's rows, read after its status answer (a row is committed before its
 * request is sent, so every effect of ours at the gateway has its row by now). */
static void rc_on_rows(struct store_rc_rows *rows, const char *error, void *arg)
{
	struct rc_worker *w = arg;
	struct reconciler *r = w->r;
	if (error != NULL) {
		r->failed = true;
		rc_worker_done(w);
		return;
	}
	w->rows = *rows;
	reconcile_compare(w->rows.rows, w->rows.n, &w->history, w->order_open, &w->report);
	r->stats.compared++;
	for (size_t i = 0; i < w->report.nfindings; i++)
		r->stats.drift[w->report.findings[i].drift]++;
	const char *order = w->rows.order_id ? w->rows.order_id : w->order_id;
	store_rc_record_build(w->transaction_id, order, &w->history, &w->rows, &w->report,
	                      r->cfg->max_attempts, &w->record);
	if (!store_rc_record(r->st, &w->record, rc_on_recorded, w)) {
		r->failed = true;
		rc_worker_done(w);
	}
}

/* The status answer: a failed call decides nothing. */
static void rc_on_status(enum status_result result, struct gw_history *history, int http_status,
                         const char *error, void *arg)
{
	(void)http_status;
	struct rc_worker *w = arg;
	struct reconciler *r = w->r;
	if (result != STATUS_OK) {
		r->stats.undecided++;
		log_fields(LOG_LVL_INFO, "reconcile_status_failed",
		           LOG_STR("transaction_id", w->transaction_id),
		           LOG_STR("order_id", w->order_id),
		           LOG_STR("result", status_result_name(result)), LOG_STR("error", error));
		rc_worker_done(w);
		return;
	}
	w->history = *history;
	memset(history, 0, sizeof(*history));
	if (!store_rc_rows(r->st, w->transaction_id, rc_on_rows, w)) {
		r->failed = true;
		rc_worker_done(w);
	}
}

static void rc_read_page(struct reconciler *r);

/* Hands targets to idle workers, reads the next page once they have taken this one; ends
 * the pass when all are done. */
static void rc_dispatch(struct reconciler *r)
{
	for (size_t i = 0; i < RC_WORKERS && r->next < r->ntargets && !r->failed; i++) {
		struct rc_worker *w = &r->workers[i];
		if (w->busy)
			continue;
		struct store_rc_target *t = &r->targets[r->next++];
		w->busy = true;
		/* the worker takes the target's strings */
		w->transaction_id = t->transaction_id;
		w->order_id = t->order_id;
		t->transaction_id = t->order_id = NULL;
		w->order_open = t->order_open;
		status_client_get(r->status, w->transaction_id, rc_on_status, w);
	}
	if (r->next >= r->ntargets && r->more && !r->reading && !r->failed)
		rc_read_page(r);
	if (r->reading)
		return;
	for (size_t i = 0; i < RC_WORKERS; i++)
		if (r->workers[i].busy)
			return;
	if (!r->stats.running)
		return;
	r->stats.running = false;
	size_t n = r->seen;
	rc_targets_free(r);
	if (r->failed) {
		rc_arm(r, RC_RETRY_MS);
		return;
	}
	r->stats.passes++;
	r->stats.last_pass_ms = clock_real_ms();
	log_fields(LOG_LVL_DEBUG, "reconcile_pass", LOG_UINT("transactions", n));
	if (r->cfg->reconcile_interval_ms > 0)
		rc_arm(r, r->cfg->reconcile_interval_ms);
}

/* A page of the pass's transactions. */
static void rc_on_page(struct store_rc_target *rows, size_t n, const char *error, void *arg)
{
	struct reconciler *r = arg;
	r->reading = false;
	if (error != NULL) {
		log_fields(LOG_LVL_WARNING, "reconcile_failed", LOG_STR("error", error));
		r->failed = true;
		rc_dispatch(r);
		return;
	}
	rc_targets_free(r);
	r->targets = rows;
	r->ntargets = n;
	r->next = 0;
	r->seen += n;
	r->more = n == RC_PAGE;
	if (n > 0) {
		free(r->cursor);
		r->cursor = xstrdup(rows[n - 1].transaction_id);
	}
	rc_dispatch(r);
}

/* Reads the page after the cursor. */
static void rc_read_page(struct reconciler *r)
{
	r->more = false;
	if (!store_rc_page(r->st, r->id_type, r->authorized_type, r->snapshot,
	                   r->cfg->reconcile_lookback_ms, RC_PAGE, r->cursor, rc_on_page, r)) {
		r->failed = true;
		return;
	}
	r->reading = true;
}

/* The pass's snapshot of the open authorizations is there: the first page. Without it
 * (e.g. a role that may not create temporary tables) the pages read the orders relation
 * themselves. */
static void rc_on_snapshot(size_t affected, const char *error, void *arg)
{
	(void)affected;
	struct reconciler *r = arg;
	r->reading = false;
	if (error != NULL) {
		log_fields(LOG_LVL_WARNING, "reconcile_snapshot_failed", LOG_STR("error", error));
		r->snapshot = false;
	}
	rc_read_page(r);
	rc_dispatch(r);
}

/* The orders relation's column types: the page statement for them, then the snapshot. */
static void rc_on_shape(const char *id_type, const char *authorized_type, const char *error,
                        void *arg)
{
	struct reconciler *r = arg;
	r->reading = false;
	if (error != NULL) {
		log_fields(LOG_LVL_WARNING, "reconcile_failed", LOG_STR("error", error));
		r->failed = true;
		rc_dispatch(r);
		return;
	}
	free(r->id_type);
	free(r->authorized_type);
	r->id_type = xstrdup(id_type);
	r->authorized_type = authorized_type ? xstrdup(authorized_type) : NULL;
	r->snapshot = true;
	if (!store_rc_snapshot(r->st, r->authorized_type, r->cfg->reconcile_lookback_ms,
	                       rc_on_snapshot, r))
		r->failed = true;
	else
		r->reading = true;
	rc_dispatch(r);
}

/* The timer: starts a pass when the database is up. */
static void rc_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct reconciler *r = arg;
	if (r->stats.running || r->cfg->reconcile_interval_ms == 0)
		return;
	r->failed = false;
	r->more = false;
	r->seen = 0;
	free(r->cursor);
	r->cursor = xstrdup("");
	if (!store_rc_shape(r->st, rc_on_shape, r)) {
		rc_arm(r, RC_RETRY_MS);
		return;
	}
	r->reading = true;
	r->stats.running = true;
}

/* Connected: a pass soon. */
static void rc_db_up(void *arg)
{
	struct reconciler *r = arg;
	if (!r->stats.running && r->cfg->reconcile_interval_ms > 0)
		rc_arm(r, 0);
}

/* Disconnected: the running statements fail on their own; pg_conn reconnects. */
static void rc_db_down(void *arg, const char *why)
{
	(void)arg;
	log_fields(LOG_LVL_WARNING, "reconcile_database_down", LOG_STR("error", why));
}

struct reconciler *reconciler_new(struct event_base *base, const struct sp_config *cfg,
                                  struct status_client *status)
{
	struct reconciler *r = xcalloc(1, sizeof(*r));
	r->base = base;
	r->cfg = cfg;
	r->status = status;
	struct pg_conn_handlers h = {.up = rc_db_up, .down = rc_db_down};
	r->pc = pg_conn_new(base, cfg->db_conninfo, &h, r);
	r->st = store_new(r->pc, cfg);
	r->ev_timer = evtimer_new(base, rc_timer_cb, r);
	for (size_t i = 0; i < RC_WORKERS; i++)
		r->workers[i].r = r;
	return r;
}

void reconciler_start(struct reconciler *r)
{
	pg_conn_start(r->pc);
}

void reconciler_reload(struct reconciler *r, const struct sp_config *cfg)
{
	r->cfg = cfg;
	store_set_config(r->st, cfg);
	if (!r->stats.running && cfg->reconcile_interval_ms > 0 && pg_conn_is_up(r->pc))
		rc_arm(r, cfg->reconcile_interval_ms);
}

void reconciler_free(struct reconciler *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < RC_WORKERS; i++) {
		status_client_cancel(r->status, &r->workers[i]);
		rc_worker_clear(&r->workers[i]);
	}
	rc_targets_free(r);
	free(r->id_type);
	free(r->authorized_type);
	free(r->cursor);
	event_free(r->ev_timer);
	store_free(r->st);
	pg_conn_free(r->pc);
	free(r);
}

const struct reconciler_stats *reconciler_stats(const struct reconciler *r)
{
	return &r->stats;
}
