#include "autoconfig.h"

#include "engine.h"

#include "backoff.h"
#include "breaker.h"
#include "config.h"
#include "http.h"
#include "intent.h"
#include "log.h"
#include "modification.h"
#include "pgconn.h"
#include "schedule.h"
#include "status_call.h"
#include "store.h"
#include "uuid.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Order ids remembered from notifications before falling back to a full scan. */
#define MAX_NOTIFIED_IDS 200000
/* The oldest this many notified orders compete by deadline in one targeted claim: exact
 * deadline order for any backlog up to that size, a bounded query beyond it (the poll's
 * full scan orders every candidate). */
#define TARGETED_MAX_IDS 2048
/* Candidates whose intent could not be recorded (e.g. a cancel waiting behind a pending
 * refund of its transaction) are remembered until the next poll, so that the scans look
 * past them instead of reading the same page again; at most this many. */
#define MAX_BLOCKED_IDS 8192
/* Pause after a claim statement failed, doubled per failure of the same claim up to the
 * cap; the alert is raised at the second failure in a row (a shutting-down server fails
 * one statement before the connection goes). */
#define CLAIM_BACKOFF_FIRST_MS 1000
#define CLAIM_BACKOFF_MAX_MS 300000
/* How long an outcome waits for others to share its write when no write is under way:
 * the answers of one round of requests arrive within a few milliseconds, and one
 * statement (one commit) records them together. */
#define OUTCOME_FLUSH_DELAY_MS 2

/* One modification on the wire, or waiting for its transaction's status to settle an
 * unknown outcome. */
struct flight {
	struct engine *e;
	struct store_claim claim; /* owned */
	unsigned epoch;           /* the credentials it was sent with (breaker.h) */
	bool probe;               /* the breaker's probe */
	/* while settling: the outcome of the unknown answer, kept unless the status history
	 * decides otherwise, and what the answer was */
	struct store_outcome held;
	enum engine_result held_result;
	int http_status;
	int64_t elapsed_us;
	struct flight *prev, *next; /* in engine.settling */
};

/* The failures in a row of one kind of claim. */
struct claim_failures {
	int count;
	int64_t backoff_ms;
	int64_t retry_at_ms; /* 0: may run */
	int64_t since_ms;    /* the first failure of the episode */
	bool alerted;
};

/* An outcome written on its own after its batch was refused. */
struct solo_outcome {
	struct store_outcome o;
	bool sanitised; /* the gateway's text is already dropped */
};

struct engine {
	struct event_base *base;
	const struct sp_config *cfg;
	char *secret;
	bool once;
	struct engine_hooks hooks;
	struct engine_listener listener; /* the alerts module; zeroed when none */

	struct pg_conn *pc;
	struct store *st;
	/* outcomes are written on a connection of their own, so that a claim never waits
	 * behind an outcome write nor an outcome write behind a claim */
	struct pg_conn *wpc;
	struct store *wst;
	struct http_client *http;
	struct status_client *status; /* NULL: unknown outcomes are not settled from status */
	struct flight *settling;      /* flights waiting for their status call */
	size_t nsettling;

	/* what the next claim cycle should look at */
	bool scan_wanted;     /* the whole orders relation */
	bool due_wanted;      /* pending retries whose time has come */
	bool own_wanted;      /* this instance's rows from before a restart */
	bool requests_wanted; /* open refund / cancel_or_refund requests of the shop */
	char **ids;           /* order ids to look at: from the queue (and, when no trigger
	                       * feeds it, from notifications and finished modifications) */
	size_t nids, cap_ids;
	/* smartpay.order_changes: rows read and not deleted yet (their orders are in ids
	 * until a targeted claim is done with them), and those the running insert deletes */
	bool changes_wanted;
	int64_t changes_after; /* read up to there in this poll (blocked ones stay queued) */
	struct store_change *changes;
	size_t nchanges, cap_changes;
	int64_t *consuming;
	size_t nconsuming;
	/* claimed rows waiting for room in the in-flight window, oldest first */
	struct store_claim *queue;
	size_t qhead, qlen, qcap;
	bool claiming;               /* one claim cycle at a time */
	enum sched_claim claim_kind; /* of the running cycle */
	bool claim_own;              /* the running due claim included own rows */
	struct claim_failures claim_failed[SCHED_KINDS];
	bool preparing; /* store_prepare under way */
	bool scanning;  /* the cycle reads the whole orders relation */
	/* the cycle looks past blocked candidates: a scan, or a targeted claim of queued
	 * changes (whose blocked orders stay queued for the next poll) */
	bool looking_past;
	size_t targeted;     /* ids[0..targeted) were given to the running targeted claim */
	size_t targeted_max; /* ids given at most: halved while a targeted query fails */
	int claim_limit;     /* rows asked for by the running cycle */
	int claim_room;      /* rows the running cycle may lease */
	bool prepared;
	/* the scans of this poll: blocked candidates (sorted), and what the running scan
	 * submitted for sending */
	char **blocked;
	size_t nblocked, cap_blocked;
	char **scan_sent; /* order ids of the sendable intents of the running scan */
	size_t nscan_sent;
	size_t claim_refused; /* local refusals the running cycle records */
	bool claim_full;      /* its page of candidates or requests came back full */

	/* outcomes waiting to be written, and the batch being written */
	struct store_outcome *out;
	size_t nout, cap_out;
	struct store_outcome *writing;
	size_t nwriting;
	struct solo_outcome *solo; /* from refused batches, written one by one, first */
	size_t nsolo, cap_solo;
	bool writing_solo;      /* the running write is solo[0] taken out */
	bool writing_sanitised; /* ... and its text was already dropped */
	bool out_blocked;       /* the last write failed: claiming waits for one to pass */

	struct event *ev_kick;  /* deferred pump */
	struct event *ev_flush; /* the outcome write after OUTCOME_FLUSH_DELAY_MS */
	struct event *ev_timer; /* next poll, retry or breaker probe */
	struct event *ev_drain; /* drain deadline */
	int64_t next_poll_ms;
	int64_t next_retry_ms; /* 0: none scheduled */

	struct breaker br;
	unsigned probes_on_wire; /* probes with the current credentials not answered yet */

	bool draining;
	bool gave_up; /* --once: credentials rejected, nothing more is sent */
	bool exited;
	unsigned left_undone; /* --once: attempted rows left pending or unwritten */
	char *problem;
	struct engine_stats stats;
};

const int64_t engine_latency_bounds_us[ENGINE_LATENCY_BUCKETS] = {
    5000,    10000,   25000,   50000,    100000,   250000,  500000,
    1000000, 2500000, 5000000, 10000000, 30000000, 90000000};

static void engine_pump(struct engine *e);
static void engine_flush(struct engine *e);
static void engine_arm_timer(struct engine *e);
static void engine_send_queued(struct engine *e);
static void engine_release_queued(struct engine *e);
static void engine_prepared(size_t affected, const char *error, void *arg);
struct flight;
static bool engine_wants_status(const struct engine *e, const struct store_claim *c,
                                enum engine_result r);
static void engine_ask_status(struct engine *e, struct flight *f, enum engine_result r,
                              struct store_outcome *o);
static void engine_conclude(struct engine *e, struct flight *f, enum engine_result r,
                            struct store_outcome *op);
static bool engine_is_blocked(const struct engine *e, const char *order_id);
static int engine_scan_limit(const struct engine *e, int room);

/* Wall-clock time in unix milliseconds. */
static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The monotonic clock in milliseconds (lease ends, store_claim.lease_until_ms). */
static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Asks for a pump on the next loop iteration, coalescing repeated requests. */
static void engine_kick(struct engine *e)
{
	if (!e->exited)
		event_active(e->ev_kick, EV_TIMEOUT, 0);
}

/* Outcomes held in memory: queued, being written, or waiting to be written alone. */
static size_t engine_outcomes_held(const struct engine *e)
{
	return e->nout + e->nwriting + e->nsolo;
}

/* Leaves the loop when there is nothing more to do in --once or drain mode. */
static void engine_check_idle(struct engine *e)
{
	if (e->exited || !(e->once || e->draining))
		return;
	if (e->claiming || http_inflight(e->http) > 0 || e->qlen > 0 || e->nsettling > 0 ||
	    engine_outcomes_held(e) > 0 || e->writing)
		return;
	if (e->once && !e->draining && !e->gave_up && e->prepared &&
	    (e->scan_wanted || e->due_wanted || e->own_wanted || e->requests_wanted ||
	     e->nids > 0 || e->changes_wanted))
		return;
	if (e->once && !e->prepared && e->problem == NULL)
		return;
	e->exited = true;
	if (e->hooks.idle_exit)
		e->hooks.idle_exit(e->hooks.arg);
}

/* --once: stops claiming and sending for the rest of the run; the exit status says why. */
static void engine_give_up(struct engine *e, const char *why)
{
	if (e->gave_up)
		return;
	e->gave_up = true;
	free(e->problem);
	e->problem = xstrdup(why);
	e->scan_wanted = e->due_wanted = e->own_wanted = e->requests_wanted = false;
	e->changes_wanted = false;
	for (size_t i = 0; i < e->nids; i++)
		free(e->ids[i]);
	e->nids = 0;
	e->left_undone++;
	engine_release_queued(e);
	engine_check_idle(e);
}

/* Completion of an alert the engine raises itself (claim_failed, outcome_unstorable). */
static void engine_alert_done(size_t affected, const char *error, void *arg)
{
	(void)affected;
	(void)arg;
	if (error) {
		char *why = store_error_text(error);
		log_event(LOG_LVL_WARNING, "alert_insert_failed", "reason", why, NULL);
		free(why);
	}
}

/* ---- outcomes ---- */

/* Queues an outcome for the next batched write. Takes ownership of its strings. */
static void engine_record(struct engine *e, struct store_outcome *o)
{
	if (e->nout == e->cap_out) {
		e->cap_out = e->cap_out ? 2 * e->cap_out : 64;
		e->out = xrealloc(e->out, (e->cap_out) * sizeof(*e->out));
	}
	e->out[e->nout++] = *o;
	memset(o, 0, sizeof(*o));
	if (e->nout >= (size_t)e->cfg->batch_size) {
		engine_flush(e);
	} else if (!e->writing && !evtimer_pending(e->ev_flush, NULL)) {
		struct timeval tv = {.tv_sec = 0, .tv_usec = OUTCOME_FLUSH_DELAY_MS * 1000};
		evtimer_add(e->ev_flush, &tv);
	}
}

/* Remembers an order id for a targeted look at the orders relation. Notified ids are
 * kept while a scan is wanted too: a scan's page may never reach them. */
static void engine_note_order(struct engine *e, const char *order_id)
{
	if (e->nids >= MAX_NOTIFIED_IDS) {
		for (size_t i = 0; i < e->nids; i++)
			free(e->ids[i]);
		e->nids = 0;
		e->scan_wanted = true;
		return;
	}
	if (e->nids == e->cap_ids) {
		e->cap_ids = e->cap_ids ? 2 * e->cap_ids : 256;
		e->ids = xrealloc(e->ids, (e->cap_ids) * sizeof(char *));
	}
	e->ids[e->nids++] = xstrdup(order_id);
}

/* Orders C strings (qsort, bsearch). */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* True when a trigger feeds smartpay.order_changes: the queue, not notifications or
 * scans, tells which orders changed. */
static bool engine_queue_mode(const struct engine *e)
{
	return store_queue_fed(e->st);
}

/* Whether the polls scan the whole orders relation: without a trigger feeding the
 * queue, for the opt-in expiry policy (its orders become due with time, not with a
 * change), and in --once runs. */
static bool engine_scans_at_poll(const struct engine *e)
{
	return !engine_queue_mode(e) || e->cfg->early_statuses.count > 0 || e->once;
}

/* Forgets the queued changes read (they stay in the table and are read again). */
static void engine_changes_clear(struct engine *e)
{
	for (size_t i = 0; i < e->nchanges; i++)
		free(e->changes[i].order_id);
	e->nchanges = 0;
	free(e->consuming);
	e->consuming = NULL;
	e->nconsuming = 0;
}

/* Whether the next targeted claim reads the queue first: changes are wanted and those
 * read before are all deleted (or no order of theirs is left to look at). */
static bool engine_reads_changes(const struct engine *e)
{
	return e->changes_wanted && (e->nchanges == 0 || e->nids == 0);
}

/* Picks the read changes whose orders the targeted claim is done with (no longer in
 * ids) as the ones the next insert deletes. */
static void engine_pick_consumed(struct engine *e)
{
	free(e->consuming);
	e->consuming = xcalloc(e->nchanges ? e->nchanges : 1, sizeof(*e->consuming));
	e->nconsuming = 0;
	char **left = xcalloc(e->nids ? e->nids : 1, sizeof(char *));
	memcpy(left, e->ids, e->nids * sizeof(char *));
	qsort(left, e->nids, sizeof(char *), cmp_str);
	for (size_t i = 0; i < e->nchanges; i++) {
		const char *id = e->changes[i].order_id;
		/* a blocked order stays queued: looked at again at the next poll */
		if (!bsearch(&id, left, e->nids, sizeof(char *), cmp_str) &&
		    !engine_is_blocked(e, id))
			e->consuming[e->nconsuming++] = e->changes[i].change_id;
	}
	free(left);
}

/* After an insert that deleted `consuming`: those rows are gone from the queue. */
static void engine_consumed(struct engine *e)
{
	size_t kept = 0, c = 0;
	for (size_t i = 0; i < e->nchanges; i++) {
		if (c < e->nconsuming && e->changes[i].change_id == e->consuming[c]) {
			c++;
			free(e->changes[i].order_id);
			continue;
		}
		e->changes[kept++] = e->changes[i];
	}
	e->nchanges = kept;
	free(e->consuming);
	e->consuming = NULL;
	e->nconsuming = 0;
}

/* Puts outcomes at the front of the solo queue (taking their strings). */
static void engine_solo_push_front(struct engine *e, struct store_outcome *o, size_t n,
                                   bool sanitised)
{
	if (e->nsolo + n > e->cap_solo) {
		e->cap_solo = e->nsolo + n + 16;
		e->solo = xrealloc(e->solo, (e->cap_solo) * sizeof(*e->solo));
	}
	memmove(e->solo + n, e->solo, e->nsolo * sizeof(*e->solo));
	for (size_t i = 0; i < n; i++) {
		e->solo[i].o = o[i];
		e->solo[i].sanitised = sanitised;
		memset(&o[i], 0, sizeof(o[i]));
	}
	e->nsolo += n;
}

/* Drops what came from the gateway (body, paymentStatus, reference) from an outcome the
 * database refused and says why in its reason; an answer counts as an attempt. */
static void engine_sanitise_outcome(struct store_outcome *o, const char *error)
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

/* Follow-ups of outcomes that were written (or given up), then frees them. */
static void engine_after_write(struct engine *e, struct store_outcome *o, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool final = strcmp(o[i].state, "pending") != 0;
		/* a finished modification may unblock the next one of its order (a cancel
		 * after a capture or behind a refund): the outcome's statement queued it */
		if (final && o[i].order_id && !engine_queue_mode(e))
			engine_note_order(e, o[i].order_id);
		if (final)
			e->changes_wanted = true;
		/* the transaction is free again: the next request for it may go */
		if (final)
			e->requests_wanted = true;
		/* a row given back unsent is due now, once its lease is free */
		if (o[i].released)
			e->due_wanted = !e->gave_up;
		else if (e->once && !final)
			e->left_undone++;
		store_outcome_clear(&o[i]);
	}
}

/* A write the database refused: the batch is split so that the other outcomes pass;
 * one outcome alone loses the gateway's text; refused even so, it is given up (its
 * lease lapses and the row is sent again, with the same id, later). */
static void engine_write_rejected(struct engine *e, struct store_outcome *w, size_t n,
                                  bool sanitised, const char *error)
{
	char *why = store_error_text(error);
	if (n > 1) {
		char count[24];
		snprintf(count, sizeof(count), "%zu", n);
		log_event(LOG_LVL_WARNING, "outcome_batch_rejected", "count", count, "reason", why,
		          "msg", "writing the outcomes one by one", NULL);
		engine_solo_push_front(e, w, n, false);
	} else if (!sanitised) {
		log_event(LOG_LVL_ERR, "outcome_rejected", "modification_id", w->modification_id,
		          "order_id", w->order_id, "reason", why, "msg",
		          "recording it without the gateway's answer", NULL);
		engine_sanitise_outcome(w, error);
		engine_solo_push_front(e, w, 1, true);
	} else {
		log_event(LOG_LVL_ERR, "outcome_unstorable", "modification_id", w->modification_id,
		          "order_id", w->order_id, "reason", why, "msg",
		          "the row stays pending and is sent again once its lease lapses", NULL);
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
			log_event(LOG_LVL_WARNING, "alert_insert_failed", "kind",
			          "outcome_unstorable", NULL);
		free(msg);
		free(text);
		store_outcome_clear(w);
	}
	free(why);
}

/* An outcome write finished: follow-ups, fenced and disagreeing outcomes logged; a
 * transient failure keeps the outcomes (and stops claims), a refusal splits them. */
static void engine_written(char **fenced, const bool *disagrees, size_t nfenced, const char *error,
                           bool rejected, void *arg)
{
	struct engine *e = arg;
	struct store_outcome *w = e->writing;
	size_t n = e->nwriting;
	bool solo = e->writing_solo, sanitised = e->writing_sanitised;
	e->writing = NULL;
	e->nwriting = 0;
	e->writing_solo = e->writing_sanitised = false;
	if (error && !rejected) {
		/* keep them: written again once the database is back; no claims meanwhile */
		log_event(LOG_LVL_WARNING, "outcome_write_failed", "reason", error, NULL);
		e->out_blocked = true;
		if (solo) {
			engine_solo_push_front(e, w, n, sanitised);
		} else {
			size_t total = n + e->nout;
			if (total > e->cap_out) {
				e->cap_out = total;
				e->out = xrealloc(e->out, (e->cap_out) * sizeof(*e->out));
			}
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
			log_event(LOG_LVL_ERR, "outcome_disagrees", "modification_id", fenced[i],
			          "msg",
			          "the lease moved to another owner whose outcome differs; alerted",
			          NULL);
		else
			log_event(LOG_LVL_WARNING, "outcome_fenced", "modification_id", fenced[i],
			          "msg", "the lease moved to another owner; its outcome wins",
			          NULL);
	}
	engine_after_write(e, w, n);
	free(w);
	if (e->once && !e->gave_up)
		e->scan_wanted = true; /* follow-ups (cancel after capture) are due now too */
	engine_flush(e);
	engine_kick(e);
}

/* Writes the queued outcomes when no write is under way (group commit); outcomes of a
 * refused batch go first, one statement each. */
static void engine_flush(struct engine *e)
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

/* ---- sending ---- */

/* Log fields shared by every line about one modification. */
#define FLIGHT_IDS(c)                                                                              \
	"modification_id", (c)->modification_id, "order_id", (c)->order_id, "transaction_id",      \
	    (c)->transaction_id, "kind", mod_kind_name((c)->kind)

/* Mirrors the breaker in the statistics and plans the next probe. */
static void engine_breaker_changed(struct engine *e)
{
	e->stats.gateway_paused = e->br.state != BREAKER_CLOSED;
	if (e->br.state == BREAKER_OPEN)
		engine_release_queued(e);
	engine_arm_timer(e);
}

/* Closes the circuit breaker after an HTTP answer that was not a credentials rejection. */
static void engine_resume_gateway(struct engine *e, const struct flight *f, int http_status)
{
	if (http_status <= 0) {
		if (f->probe)
			breaker_probe_failed(&e->br, now_ms());
		engine_breaker_changed(e);
		return;
	}
	if (!breaker_accepted(&e->br, f->epoch))
		return;
	e->due_wanted = true; /* the rows put back while paused */
	log_event(LOG_LVL_NOTICE, "gateway_resumed", "msg", "credentials accepted again", NULL);
	engine_breaker_changed(e);
	engine_send_queued(e);
}

/* Feeds the gateway statistics from one attempt. */
static void engine_note_gateway(struct engine *e, const struct http_result *res, int64_t now)
{
	if (res->http_status > 0) {
		e->stats.gateway_last_answer_ms = now;
		int b = 0;
		while (b < ENGINE_LATENCY_BUCKETS && res->elapsed_us > engine_latency_bounds_us[b])
			b++;
		e->stats.latency_buckets[b]++;
		e->stats.latency_count++;
		e->stats.latency_sum_us += (uint64_t)res->elapsed_us;
		e->stats.gateway_failing_since_ms = 0;
	} else {
		if (e->stats.gateway_failing_since_ms == 0)
			e->stats.gateway_failing_since_ms = now;
		if (e->listener.gateway_failed)
			e->listener.gateway_failed(e->listener.arg);
	}
}

/* A 401: sending pauses for everyone (one alert per episode); with --once the run ends. */
static void engine_credentials_rejected(struct engine *e, const struct flight *f,
                                        struct store_outcome *o, const char *status)
{
	const struct store_claim *c = &f->claim;
	bool first = breaker_rejected(&e->br, f->epoch, now_ms(), e->cfg->retry_max_ms);
	if (first) {
		o->alert_kind = "credentials_rejected";
		o->alert_severity = "critical";
	}
	e->stats.auth_rejected++;
	log_event(first ? LOG_LVL_ERR : LOG_LVL_WARNING, "credentials_rejected", FLIGHT_IDS(c),
	          "http_status", status, "msg",
	          e->once ? "SmartPay rejected the merchant key or authentication key; nothing "
	                    "more is sent in this run"
	                  : "SmartPay rejected the merchant key or authentication key; sending "
	                    "paused",
	          NULL);
	if (e->once)
		engine_give_up(e, "SmartPay rejected the merchant key or authentication key "
		                  "(HTTP 401)");
	engine_breaker_changed(e);
}

/* One HTTP answer: decide the outcome (lib/outcome.c), act on what it means for the
 * daemon (breaker, retry timer), log it and queue it for the batched write. */
static void engine_on_answer(const struct http_result *res, void *arg)
{
	struct flight *f = arg;
	struct engine *e = f->e;
	struct store_claim *c = &f->claim;
	int64_t now = now_ms();
	engine_note_gateway(e, res, now);
	if (f->probe && f->epoch == e->br.epoch && e->probes_on_wire > 0)
		e->probes_on_wire--;

	struct outcome_policy pol = {.retry_base_ms = e->cfg->retry_base_ms,
	                             .retry_max_ms = e->cfg->retry_max_ms,
	                             .max_attempts = e->cfg->max_attempts};
	struct outcome_answer ans = {.http_status = res->http_status,
	                             .transport_error = res->transport_error,
	                             .timed_out = res->timed_out,
	                             .error = res->error,
	                             .body = res->body,
	                             .body_len = res->body_len,
	                             .retry_after = res->retry_after};
	struct store_outcome o;
	enum engine_result r = outcome_decide(&pol, c, &ans, now, backoff_random(), &o);
	if (r != ER_AUTH_REJECTED)
		engine_resume_gateway(e, f, res->http_status);
	f->http_status = res->http_status;
	f->elapsed_us = res->elapsed_us;
	e->stats.inflight = (unsigned)http_inflight(e->http);
	if (engine_wants_status(e, c, r)) {
		engine_ask_status(e, f, r, &o);
		return;
	}
	engine_conclude(e, f, r, &o);
}

/* Counts, logs and records the outcome of one attempt; frees the flight. */
static void engine_conclude(struct engine *e, struct flight *f, enum engine_result r,
                            struct store_outcome *op)
{
	struct store_claim *c = &f->claim;
	struct store_outcome o = *op;
	memset(op, 0, sizeof(*op));
	int64_t now = now_ms();
	e->stats.results[c->kind][r]++;
	char status[16], attempt[16], elapsed[24], delay[24];
	snprintf(status, sizeof(status), "%d", f->http_status);
	snprintf(attempt, sizeof(attempt), "%d", c->attempts + 1);
	snprintf(elapsed, sizeof(elapsed), "%lld", (long long)(f->elapsed_us / 1000));
	switch (r) {
	case ER_SUCCEEDED:
		e->stats.succeeded++;
		log_event(LOG_LVL_INFO, "modification_succeeded", FLIGHT_IDS(c), "http_status",
		          status, "payment_status", o.payment_status, "attempt", attempt,
		          "elapsed_ms", elapsed, "settled_by",
		          o.settled_by ? o.settled_by : "answer", NULL);
		break;
	case ER_REFUSED:
		e->stats.refused++;
		log_event(LOG_LVL_WARNING, "modification_refused", FLIGHT_IDS(c), "http_status",
		          status, "reason", o.reason, NULL);
		break;
	case ER_AUTH_REJECTED:
		engine_credentials_rejected(e, f, &o, status);
		break;
	case ER_NEEDS_ATTENTION:
		e->stats.needs_attention++;
		log_event(LOG_LVL_ERR, "modification_needs_attention", FLIGHT_IDS(c), "reason",
		          o.reason, NULL);
		break;
	default:
		if (e->next_retry_ms == 0 || now + o.retry_delay_ms < e->next_retry_ms) {
			e->next_retry_ms = now + o.retry_delay_ms;
			engine_arm_timer(e);
		}
		e->stats.retries++;
		snprintf(delay, sizeof(delay), "%lld", (long long)o.retry_delay_ms);
		log_event(LOG_LVL_WARNING, "modification_retry", FLIGHT_IDS(c), "reason", o.reason,
		          "attempt", attempt, "retry_in_ms", delay, NULL);
		break;
	}
	store_claim_clear(&f->claim);
	free(f);
	engine_record(e, &o);
	engine_send_queued(e);
	engine_kick(e);
}

/* Whether an unknown outcome is to be settled from the transaction's status first: after
 * [reconcile] unknown_answers unknown answers, and always before needs_attention. */
static bool engine_wants_status(const struct engine *e, const struct store_claim *c,
                                enum engine_result r)
{
	if (e->status == NULL || c->transaction_id == NULL || c->transaction_id[0] == '\0')
		return false;
	if (r == ER_NEEDS_ATTENTION)
		return true;
	return r == ER_RETRY && c->attempts + 1 >= e->cfg->reconcile_unknown_answers;
}

/* The status answer for a flight with an unknown outcome: a readable history may settle
 * it; a failed call decides nothing and the unknown outcome stands. */
static void engine_on_status(enum status_result result, struct gw_history *history, int http_status,
                             const char *error, void *arg)
{
	(void)http_status;
	struct flight *f = arg;
	struct engine *e = f->e;
	struct store_claim *c = &f->claim;
	if (f->prev)
		f->prev->next = f->next;
	else
		e->settling = f->next;
	if (f->next)
		f->next->prev = f->prev;
	e->nsettling--;
	enum engine_result r = f->held_result;
	if (result == STATUS_OK) {
		struct outcome_policy pol = {.retry_base_ms = e->cfg->retry_base_ms,
		                             .retry_max_ms = e->cfg->retry_max_ms,
		                             .max_attempts = e->cfg->max_attempts};
		r = outcome_settle(&pol, c, history, f->held_result, &f->held);
		log_event(r == f->held_result ? LOG_LVL_INFO : LOG_LVL_NOTICE, "status_checked",
		          FLIGHT_IDS(c), "payment_status", history->payment_status, "result",
		          engine_result_name(r), "reason", f->held.reason, NULL);
	} else {
		log_event(LOG_LVL_WARNING, "status_call_failed", FLIGHT_IDS(c), "result",
		          status_result_name(result), "error", error, "msg",
		          "nothing decided from it", NULL);
	}
	engine_conclude(e, f, r, &f->held);
}

/* Holds a flight's unknown outcome and asks for its transaction's status. */
static void engine_ask_status(struct engine *e, struct flight *f, enum engine_result r,
                              struct store_outcome *o)
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
	log_event(LOG_LVL_DEBUG, "status_asked", FLIGHT_IDS(&f->claim), NULL);
	status_client_get(e->status, f->claim.transaction_id, engine_on_status, f);
}

/* Gives up on a capture whose authorization deadline passed while it was pending: first
 * its transaction's status may show the gateway performed (or refused) it; otherwise, or
 * when the call fails, needs_attention. Never resent. Takes the claim's strings. */
static void engine_expire(struct engine *e, struct store_claim *c)
{
	struct store_outcome o;
	outcome_expired(c, &o);
	if (engine_wants_status(e, c, ER_NEEDS_ATTENTION)) {
		struct flight *f = xcalloc(1, sizeof(*f));
		f->e = e;
		f->claim = *c;
		memset(c, 0, sizeof(*c));
		engine_ask_status(e, f, ER_NEEDS_ATTENTION, &o);
		return;
	}
	e->stats.needs_attention++;
	e->stats.results[c->kind][ER_NEEDS_ATTENTION]++;
	log_event(LOG_LVL_ERR, "modification_needs_attention", FLIGHT_IDS(c), "reason", o.reason,
	          NULL);
	engine_record(e, &o);
	store_claim_clear(c);
}

/* Sends one leased modification: the stored body, byte for byte. Takes the claim's strings. */
static void engine_send(struct engine *e, struct store_claim *claim)
{
	if (claim->kind == MOD_CAPTURE && claim->deadline_passed) {
		engine_expire(e, claim);
		return;
	}
	struct flight *f = xcalloc(1, sizeof(*f));
	f->e = e;
	f->claim = *claim;
	f->epoch = e->br.epoch;
	f->probe = e->br.state == BREAKER_PROBING;
	if (f->probe)
		e->probes_on_wire++;
	memset(claim, 0, sizeof(*claim));
	struct store_claim *c = &f->claim;
	char *url = xasprintf("%s%s", e->cfg->base_url, mod_kind_path(c->kind));
	char *origin =
	    e->cfg->origin && *e->cfg->origin ? xasprintf("Origin: %s", e->cfg->origin) : NULL;
	const char *headers[] = {"Content-Type: application/json", "Accept-Language: en-US", origin,
	                         NULL};
	struct http_request req = {.method = "POST",
	                           .url = url,
	                           .headers = headers,
	                           .body = c->body,
	                           .body_len = strlen(c->body),
	                           .username = e->cfg->merchant_key,
	                           .password = e->secret};
	bool ok = http_submit(e->http, &req, engine_on_answer, f);
	free(url);
	free(origin);
	if (!ok) {
		struct http_result res = {.transport_error = true, .error = "request setup failed"};
		engine_on_answer(&res, f);
		return;
	}
	e->stats.sent++;
	e->stats.inflight = (unsigned)http_inflight(e->http);
	char attempt[16];
	snprintf(attempt, sizeof(attempt), "%d", c->attempts + 1);
	log_event(LOG_LVL_DEBUG, "modification_sent", FLIGHT_IDS(c), "attempt", attempt, NULL);
}

/* Gives the lease of one unsent row back: it stays pending, due now, for whoever claims
 * it next, with the same id and body. Takes the claim's strings. */
static void engine_release(struct engine *e, struct store_claim *c, const char *why)
{
	struct store_outcome o;
	memset(&o, 0, sizeof(o));
	o.modification_id = c->modification_id;
	o.order_id = c->order_id;
	o.kind = c->kind;
	o.generation = c->generation;
	o.state = "pending";
	o.reason = xstrdup(why);
	o.released = true;
	c->modification_id = c->order_id = NULL;
	store_claim_clear(c);
	engine_record(e, &o);
}

/* True when the row's lease still covers a whole request and the write of its outcome:
 * a row never goes out on a lease another daemon could take over meanwhile. Half the
 * configured margin is for the write, the other half lets a row of the shortest valid
 * lease wait in the queue a little. */
static bool engine_lease_covers_send(const struct engine *e, const struct store_claim *c)
{
	return c->lease_until_ms - mono_ms() >= e->cfg->timeout_ms + CONFIG_LEASE_MARGIN_MS / 2;
}

/* Sends queued rows while the in-flight window has room and sending is allowed. */
static void engine_send_queued(struct engine *e)
{
	/* while paused only the probe (the one row claimed for it) may go */
	while (e->qlen > 0 && !e->draining && breaker_may_send(&e->br) &&
	       (int)http_inflight(e->http) < e->cfg->max_inflight) {
		struct store_claim *c = &e->queue[e->qhead++];
		e->qlen--;
		if (engine_lease_covers_send(e, c)) {
			engine_send(e, c);
			continue;
		}
		log_event(LOG_LVL_NOTICE, "lease_too_short", FLIGHT_IDS(c), "msg",
		          "released unsent; claimed again with a fresh lease", NULL);
		engine_release(e, c, "released unsent: lease too short to send");
	}
	if (e->qlen == 0)
		e->qhead = 0;
}

/* Queues claimed rows for sending and sends what the window allows. Takes the array. */
static void engine_send_all(struct engine *e, struct store_claim *rows, size_t n)
{
	if (e->qhead + e->qlen + n > e->qcap) {
		if (e->qlen > 0)
			memmove(e->queue, e->queue + e->qhead, e->qlen * sizeof(*e->queue));
		e->qhead = 0;
		if (e->qlen + n > e->qcap) {
			e->qcap = e->qlen + n;
			e->queue = xrealloc(e->queue, (e->qcap) * sizeof(*e->queue));
		}
	}
	if (n > 0)
		memcpy(e->queue + e->qhead + e->qlen, rows, n * sizeof(*rows));
	e->qlen += n;
	free(rows);
	if (e->br.state == BREAKER_OPEN || e->gave_up)
		engine_release_queued(e); /* claimed before the pause began */
	else
		engine_send_queued(e);
}

/* Gives the leases of queued, unsent rows back (drain, paused gateway). */
static void engine_release_queued(struct engine *e)
{
	while (e->qlen > 0) {
		struct store_claim *c = &e->queue[e->qhead++];
		e->qlen--;
		engine_release(e, c, "released unsent");
	}
	e->qhead = 0;
}

/* ---- claiming ---- */

/* The engine's state as the scheduler sees it (lib/schedule.c). */
static struct sched_state engine_sched_state(const struct engine *e, int64_t now)
{
	struct sched_state st = {.usable = !e->claiming && !e->draining && !e->exited &&
	                                   !e->gave_up && e->prepared && pg_conn_is_up(e->pc),
	                         .breaker_closed = e->br.state == BREAKER_CLOSED,
	                         .probe_due = breaker_probe_due(&e->br, now),
	                         .outcomes_blocked =
	                             e->out_blocked ||
	                             engine_outcomes_held(e) >=
	                                 (size_t)e->cfg->batch_size + (size_t)e->cfg->max_inflight,
	                         .batch_size = e->cfg->batch_size,
	                         .max_inflight = e->cfg->max_inflight,
	                         .queued = e->qlen,
	                         .inflight = http_inflight(e->http) > 0,
	                         .want_due = e->own_wanted || e->due_wanted,
	                         .want_requests = e->requests_wanted,
	                         .want_scan = e->scan_wanted,
	                         .notified = e->nids + engine_reads_changes(e)};
	for (int k = 0; k < SCHED_KINDS; k++)
		st.waiting[k] = now < e->claim_failed[k].retry_at_ms;
	return st;
}

/* Completion of a statement that only deletes queued changes. */
static void engine_on_skipped(struct store_claim *rows, size_t n, const char *error, void *arg)
{
	(void)arg;
	store_claims_free(rows, n);
	if (error)
		log_event(LOG_LVL_WARNING, "queue_delete_failed", "reason", error, NULL);
}

/* Deletes the queued changes of an order no statement can read (it would hold up the
 * queue behind it). */
static void engine_skip_changes(struct engine *e, const char *order_id)
{
	int64_t *ids = xcalloc(e->nchanges ? e->nchanges : 1, sizeof(*ids));
	size_t n = 0, kept = 0;
	for (size_t i = 0; i < e->nchanges; i++) {
		if (strcmp(e->changes[i].order_id, order_id) == 0) {
			ids[n++] = e->changes[i].change_id;
			free(e->changes[i].order_id);
		} else {
			e->changes[kept++] = e->changes[i];
		}
	}
	e->nchanges = kept;
	if (n > 0 && !store_insert_intents_consuming(e->st, NULL, 0, ids, n, engine_on_skipped, e))
		log_event(LOG_LVL_WARNING, "queue_delete_failed", "reason",
		          "database connection lost", NULL);
	free(ids);
}

/* Raises the one claim_failed alert of an episode of failures of one claim. */
static void engine_alert_claim_failed(struct engine *e, enum sched_claim k, const char *why)
{
	struct claim_failures *f = &e->claim_failed[k];
	if (f->alerted || f->count < 2 || !pg_conn_is_up(e->pc))
		return;
	char key[64];
	snprintf(key, sizeof(key), "%s:%lld", sched_claim_name(k), (long long)f->since_ms);
	char *msg = xasprintf("the %s claim of instance %s fails (%d times in a row, retried with "
	                      "backoff): %s",
	                      sched_claim_name(k), store_instance_name(e->st), f->count, why);
	if (store_raise_alert(e->st, "claim_failed", "critical", key, msg, engine_alert_done, e)) {
		f->alerted = true;
		log_event(LOG_LVL_ERR, "claim_failed_alert", "claim", sched_claim_name(k), "msg",
		          msg, NULL);
	}
	free(msg);
}

/* Ends a claim cycle that failed: the same claim waits (backoff) and is alerted, the
 * other claims go on; with --once the exit status says it. */
static void engine_claim_failed(struct engine *e, const char *error)
{
	enum sched_claim k = e->claim_kind;
	char *why = store_error_text(error);
	log_event(LOG_LVL_WARNING, "claim_failed", "claim", sched_claim_name(k), "reason", why,
	          NULL);
	e->claiming = false;
	size_t given = e->targeted;
	e->targeted = 0;
	int64_t now = now_ms();
	if (e->br.state == BREAKER_PROBING && e->probes_on_wire == 0)
		breaker_probe_unsent(&e->br, now, false);
	if (e->once) {
		free(e->problem);
		e->problem = xstrdup(error);
		e->scan_wanted = e->due_wanted = e->own_wanted = e->requests_wanted = false;
		free(why);
		engine_check_idle(e);
		return;
	}
	if (k == SCHED_DUE)
		e->due_wanted = true;
	if (k == SCHED_DUE && e->claim_own)
		e->own_wanted = true;
	if (k == SCHED_REQUESTS)
		e->requests_wanted = true;
	if (k == SCHED_SCAN)
		e->scan_wanted = true;
	struct claim_failures *f = &e->claim_failed[k];
	if (k == SCHED_TARGETED && given > 1 && pg_conn_is_up(e->pc)) {
		/* one notified row the query cannot read fails all of them: fewer ids at once
		 * until it is alone, so the others go on at once */
		e->targeted_max = given / 2;
		free(why);
		engine_kick(e);
		return;
	}
	if (k == SCHED_TARGETED && given == 1 && e->nids > 0 && pg_conn_is_up(e->pc)) {
		/* that one is left to the scans (alerted and backed off if they fail too) */
		log_event(LOG_LVL_WARNING, "order_skipped", "order_id", e->ids[0], "reason", why,
		          "msg",
		          engine_queue_mode(e)
		              ? "taken off the queue; `smartpayctl rescan` looks at it again"
		              : "left to the scans of the orders relation",
		          NULL);
		engine_skip_changes(e, e->ids[0]);
		free(e->ids[0]);
		memmove(e->ids, e->ids + 1, (e->nids - 1) * sizeof(char *));
		e->nids--;
		e->targeted_max = TARGETED_MAX_IDS;
		/* and the usual backoff: when every query fails (a broken relation), ids
		 * are not dropped in a burst */
	}
	if (pg_conn_is_up(e->pc)) {
		f->count++;
		if (f->since_ms == 0)
			f->since_ms = now;
		f->backoff_ms = f->backoff_ms == 0                         ? CLAIM_BACKOFF_FIRST_MS
		                : f->backoff_ms * 2 > CLAIM_BACKOFF_MAX_MS ? CLAIM_BACKOFF_MAX_MS
		                                                           : f->backoff_ms * 2;
		f->retry_at_ms = now + f->backoff_ms;
		engine_alert_claim_failed(e, k, why);
	}
	free(why);
	engine_arm_timer(e);
	engine_kick(e);
}

/* A claim statement of this kind worked: its failure episode, if any, is over. */
static void engine_claim_ok(struct engine *e)
{
	struct claim_failures *f = &e->claim_failed[e->claim_kind];
	if (f->count > 0)
		log_event(LOG_LVL_NOTICE, "claim_recovered", "claim",
		          sched_claim_name(e->claim_kind), NULL);
	memset(f, 0, sizeof(*f));
}

/* Ends a claim cycle and looks for more work. */
static void engine_claim_end(struct engine *e)
{
	e->claiming = false;
	engine_kick(e);
	engine_check_idle(e);
}

/* Marks a claim cycle of `kind` as running. */
static void engine_claim_begin(struct engine *e, enum sched_claim kind, int limit, int room)
{
	e->claiming = true;
	e->claim_kind = kind;
	e->claim_limit = limit;
	e->claim_room = room;
	e->claim_refused = 0;
	e->claim_full = false;
	e->scanning = kind == SCHED_SCAN;
	e->looking_past = e->scanning;
}

static void engine_on_due(struct store_claim *rows, size_t n, const char *error, void *arg)
{
	struct engine *e = arg;
	if (error) {
		engine_claim_failed(e, error);
		return;
	}
	engine_claim_ok(e);
	bool probing = e->br.state == BREAKER_PROBING;
	if (probing && n == 0) {
		/* nothing to probe with: the next real request tests the credentials */
		breaker_probe_unsent(&e->br, now_ms(), true);
		engine_breaker_changed(e);
	}
	if ((int)n == e->claim_limit && !probing)
		e->due_wanted = true; /* a full batch: more may be due */
	if (n > 0) {
		char count[24];
		snprintf(count, sizeof(count), "%zu", n);
		log_event(LOG_LVL_INFO, "retries_claimed", "count", count, NULL);
	}
	engine_send_all(e, rows, n);
	if (e->br.state == BREAKER_PROBING && e->probes_on_wire == 0) {
		/* the probe was given up locally (a capture past its deadline): another one */
		breaker_probe_unsent(&e->br, now_ms(), false);
		engine_breaker_changed(e);
	}
	engine_claim_end(e);
}

/* Frees the order ids the running scan submitted. */
static void engine_scan_sent_clear(struct engine *e)
{
	for (size_t i = 0; i < e->nscan_sent; i++)
		free(e->scan_sent[i]);
	free(e->scan_sent);
	e->scan_sent = NULL;
	e->nscan_sent = 0;
	e->claim_refused = 0;
}

/* Forgets the blocked candidates (at each poll: they are looked at again). */
static void engine_blocked_clear(struct engine *e)
{
	for (size_t i = 0; i < e->nblocked; i++)
		free(e->blocked[i]);
	e->nblocked = 0;
}

/* True when this poll's scans found the order's candidate blocked. */
static bool engine_is_blocked(const struct engine *e, const char *order_id)
{
	return e->nblocked > 0 &&
	       bsearch(&order_id, e->blocked, e->nblocked, sizeof(char *), cmp_str) != NULL;
}

/* After a scan's insert: the submitted candidates that were not recorded wait behind
 * something (or another daemon took them); the scans of this poll look past them.
 * Returns how many were added. */
static size_t engine_note_blocked(struct engine *e, const struct store_claim *rows, size_t n)
{
	char **recorded = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		recorded[i] = rows[i].order_id;
	qsort(recorded, n, sizeof(char *), cmp_str);
	/* the ids of one page are distinct (one status, one branch of the candidate query) */
	size_t old = e->nblocked;
	for (size_t i = 0; i < e->nscan_sent && e->nblocked < MAX_BLOCKED_IDS; i++) {
		const char *id = e->scan_sent[i];
		if (bsearch(&id, recorded, n, sizeof(char *), cmp_str) ||
		    (old > 0 && bsearch(&id, e->blocked, old, sizeof(char *), cmp_str)))
			continue;
		if (e->nblocked == e->cap_blocked) {
			e->cap_blocked = e->cap_blocked ? 2 * e->cap_blocked : 64;
			e->blocked = xrealloc(e->blocked, e->cap_blocked * sizeof(char *));
		}
		e->blocked[e->nblocked++] = e->scan_sent[i];
		e->scan_sent[i] = NULL;
	}
	if (e->nblocked > old)
		qsort(e->blocked, e->nblocked, sizeof(char *), cmp_str);
	free(recorded);
	return e->nblocked - old;
}

/* Sends the leased rows of an insert; the ones recorded unleased are claimed as due. */
static void engine_send_leased(struct engine *e, struct store_claim *rows, size_t n)
{
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (rows[i].leased) {
			rows[kept++] = rows[i];
		} else {
			store_claim_clear(&rows[i]);
			e->due_wanted = true;
		}
	}
	engine_send_all(e, rows, kept);
}

/* Intents recorded: the leased ones are sent; a scan notes what it must look past. */
static void engine_on_inserted(struct store_claim *rows, size_t n, const char *error, void *arg)
{
	struct engine *e = arg;
	if (error) {
		/* nothing was recorded, so nothing is sent; the orders are looked at again (the
		 * queued changes were not deleted: they are read again) */
		if (e->nconsuming > 0) {
			engine_changes_clear(e);
			e->changes_wanted = true;
			e->changes_after = 0;
		}
		engine_scan_sent_clear(e);
		engine_claim_failed(e, error);
		return;
	}
	engine_claim_ok(e);
	engine_consumed(e);
	if (e->looking_past) {
		/* a full page asks for the next one only when this one got somewhere (rows
		 * recorded, or blocked ones to look past): no back-to-back rescans of a page
		 * that cannot move until the next poll */
		size_t blocked = engine_note_blocked(e, rows, n);
		if (e->scanning && e->claim_full && (n > 0 || e->claim_refused > 0 || blocked > 0))
			e->scan_wanted = true;
		engine_scan_sent_clear(e);
	}
	/* likewise a full page of requests: only when this one recorded something */
	if (e->claim_kind == SCHED_REQUESTS && e->claim_full && (n > 0 || e->claim_refused > 0))
		e->requests_wanted = true;
	e->claim_refused = 0;
	engine_send_leased(e, rows, n);
	engine_claim_end(e);
}

/* Records intents (local refusals included) in one statement; what comes back leased is
 * sent. The first `room` sendable ones are leased, the rest recorded due. Frees the
 * intents' bodies and reasons and both arrays. */
static void engine_insert_intents(struct engine *e, struct store_intent *intents, char **reasons,
                                  size_t n)
{
	int leased = 0;
	for (size_t i = 0; i < n; i++) {
		intents[i].lease = intents[i].reason == NULL && leased < e->claim_room;
		if (intents[i].lease)
			leased++;
		if (intents[i].reason != NULL)
			e->claim_refused++;
	}
	if (e->looking_past) {
		e->scan_sent = xcalloc(n ? n : 1, sizeof(char *));
		for (size_t i = 0; i < n; i++)
			if (intents[i].reason == NULL)
				e->scan_sent[e->nscan_sent++] = xstrdup(intents[i].order_id);
	}
	if (!store_insert_intents_consuming(e->st, intents, n, e->consuming, e->nconsuming,
	                                    engine_on_inserted, e)) {
		engine_scan_sent_clear(e);
		engine_claim_failed(e, "database connection lost");
	}
	for (size_t i = 0; i < n; i++) {
		free(intents[i].body);
		free(reasons[i]);
	}
	free(intents);
	free(reasons);
}

/* Counts and logs an order row or request refused locally (no-op for a sendable intent). */
static void engine_note_refusal(struct engine *e, const char *event, const struct store_intent *in)
{
	if (in->reason == NULL)
		return;
	e->stats.refused_locally++;
	e->stats.results[in->kind][ER_REFUSED_LOCALLY]++;
	log_event(LOG_LVL_ERR, event, "order_id", in->order_id, "transaction_id",
	          in->transaction_id, "kind", mod_kind_name(in->kind), "reason", in->reason, NULL);
}

/* After a targeted claim: a partial page means every candidate among the given ids was
 * returned, so they are all done with; a full page leaves the ids it did not return
 * for the next claim. Ids notified meanwhile stay. */
static void engine_forget_ids(struct engine *e, const struct store_candidate *rows, size_t n)
{
	size_t given = e->targeted;
	e->targeted = 0;
	bool full = (int)n == e->claim_limit;
	char **returned = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		returned[i] = rows[i].order_id;
	qsort(returned, n, sizeof(char *), cmp_str);
	size_t kept = 0;
	for (size_t i = 0; i < e->nids; i++) {
		bool keep = i >= given ||
		            (full && !bsearch(&e->ids[i], returned, n, sizeof(char *), cmp_str));
		if (keep)
			e->ids[kept++] = e->ids[i];
		else
			free(e->ids[i]);
	}
	e->nids = kept;
	free(returned);
}

/* Moves the blocked candidates of a scan's page behind the others (in page order);
 * returns how many are not blocked. */
static size_t engine_drop_blocked(struct engine *e, struct store_candidate *rows, size_t n)
{
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (engine_is_blocked(e, rows[i].order_id))
			continue;
		if (i != kept) {
			struct store_candidate t = rows[kept];
			rows[kept] = rows[i];
			rows[i] = t;
		}
		kept++;
	}
	return kept;
}

static void engine_on_candidates(struct store_candidate *rows, size_t n, const char *error,
                                 void *arg)
{
	struct engine *e = arg;
	if (error) {
		engine_claim_failed(e, error);
		return;
	}
	engine_claim_ok(e);
	if (e->targeted) {
		engine_forget_ids(e, rows, n);
		engine_pick_consumed(e);
		e->targeted_max =
		    e->targeted_max * 2 > TARGETED_MAX_IDS ? TARGETED_MAX_IDS : e->targeted_max * 2;
	}
	size_t all = n; /* rows[n..all) are blocked ones the scan looks past */
	if (e->looking_past) {
		e->claim_full = (int)n == e->claim_limit; /* a full page: more may be waiting */
		n = engine_drop_blocked(e, rows, n);
	}
	if (n == 0 && e->nconsuming == 0) {
		store_candidates_free(rows, all);
		engine_claim_end(e);
		return;
	}
	struct store_intent *intents = xcalloc(n ? n : 1, sizeof(*intents));
	char **reasons = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		char id[37];
		uuid_v4(id);
		intent_from_order(e->cfg->merchant_key, id, &rows[i], &intents[i], &reasons[i]);
		engine_note_refusal(e, "order_refused", &intents[i]);
	}
	engine_insert_intents(e, intents, reasons, n);
	store_candidates_free(rows, all);
}

static void engine_on_requests(struct store_request *rows, size_t n, const char *error, void *arg)
{
	struct engine *e = arg;
	if (error) {
		engine_claim_failed(e, error);
		return;
	}
	engine_claim_ok(e);
	e->claim_full = (int)n == e->claim_limit;
	if (n == 0) {
		store_requests_free(rows, n);
		engine_claim_end(e);
		return;
	}
	struct store_intent *intents = xcalloc(n, sizeof(*intents));
	char **reasons = xcalloc(n, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		char id[37];
		uuid_v4(id);
		intent_from_request(e->cfg->merchant_key, id, &rows[i], &intents[i], &reasons[i]);
		engine_note_refusal(e, "request_refused", &intents[i]);
	}
	engine_insert_intents(e, intents, reasons, n);
	store_requests_free(rows, n);
}

/* Looks at the orders in ids: they compete, the earliest deadlines win the room. */
static bool engine_claim_targeted(struct engine *e)
{
	size_t give = e->nids < e->targeted_max ? e->nids : e->targeted_max;
	e->targeted = give;
	/* queued changes: blocked candidates are looked past, as by a scan */
	e->looking_past = engine_queue_mode(e);
	e->claim_limit = e->looking_past ? engine_scan_limit(e, e->claim_room) : e->claim_room;
	if (store_find_candidates(e->st, (const char *const *)e->ids, give, e->claim_limit,
	                          engine_on_candidates, e))
		return true;
	e->targeted = 0;
	return false;
}

/* Queued changes read: their orders are looked at in the same claim cycle. */
static void engine_on_changes(struct store_change *rows, size_t n, const char *error, void *arg)
{
	struct engine *e = arg;
	if (error) {
		e->changes_wanted = true;
		engine_claim_failed(e, error);
		return;
	}
	if ((int)n == (int)e->targeted_max)
		e->changes_wanted = true; /* a full page: more are queued */
	if (e->nchanges + n > e->cap_changes) {
		e->cap_changes = e->nchanges + n + 64;
		e->changes = xrealloc(e->changes, e->cap_changes * sizeof(*e->changes));
	}
	/* one look per order, however often it changed (the queue is read only once the
	 * changes read before are all deleted) */
	char **ids = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		if (rows[i].change_id > e->changes_after)
			e->changes_after = rows[i].change_id;
		ids[i] = rows[i].order_id;
		e->changes[e->nchanges++] = rows[i];
		rows[i].order_id = NULL;
	}
	qsort(ids, n, sizeof(char *), cmp_str);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || strcmp(ids[i], ids[i - 1]) != 0)
			engine_note_order(e, ids[i]);
	free(ids);
	store_changes_free(rows, n);
	if (e->nids == 0) {
		engine_claim_ok(e);
		engine_claim_end(e);
		return;
	}
	if (!engine_claim_targeted(e)) {
		engine_changes_clear(e);
		e->changes_wanted = true;
		engine_claim_failed(e, "database connection lost");
	}
}

/* How many candidates a scan reads: the room, and beyond it twice the blocked ones it
 * looks past, so that a poll finds what can move in a few statements however many
 * candidates wait behind something. */
static int engine_scan_limit(const struct engine *e, int room)
{
	return room + 2 * (int)e->nblocked;
}

/* Starts the claim the scheduler picks (lib/schedule.c), if any. */
static void engine_pump(struct engine *e)
{
	int64_t now = now_ms();
	struct sched_state st = engine_sched_state(e, now);
	struct sched_choice next = sched_next(&st);
	int room = next.room;
	bool ok = true;
	switch (next.claim) {
	case SCHED_PROBE:
		/* half-open: one due row goes out as a probe */
		breaker_probe_claimed(&e->br);
		engine_claim_begin(e, SCHED_DUE, 1, 1);
		e->claim_own = false;
		ok = store_claim_due(e->st, 1, false, engine_on_due, e);
		if (!ok)
			breaker_probe_unsent(&e->br, now, false);
		break;
	case SCHED_DUE: {
		bool own = e->own_wanted;
		e->own_wanted = e->due_wanted = false;
		engine_claim_begin(e, SCHED_DUE, room, room);
		e->claim_own = own;
		ok = store_claim_due(e->st, room, own, engine_on_due, e);
		if (!ok) {
			e->due_wanted = true;
			e->own_wanted = own;
		}
		break;
	}
	case SCHED_REQUESTS:
		e->requests_wanted = false;
		engine_claim_begin(e, SCHED_REQUESTS, room, room);
		ok = store_find_requests(e->st, room, engine_on_requests, e);
		if (!ok)
			e->requests_wanted = true;
		break;
	case SCHED_TARGETED:
		engine_claim_begin(e, SCHED_TARGETED, room, room);
		if (engine_reads_changes(e)) {
			/* what changed: the oldest queued changes, then their orders */
			engine_changes_clear(e);
			e->changes_wanted = false;
			ok = store_read_changes(e->st, e->changes_after, (int)e->targeted_max,
			                        engine_on_changes, e);
			if (!ok)
				e->changes_wanted = true;
		} else {
			ok = engine_claim_targeted(e);
		}
		break;
	case SCHED_SCAN: {
		e->scan_wanted = false;
		int limit = engine_scan_limit(e, room);
		engine_claim_begin(e, SCHED_SCAN, limit, room);
		ok = store_find_candidates(e->st, NULL, 0, limit, engine_on_candidates, e);
		if (!ok)
			e->scan_wanted = true;
		break;
	}
	default:
		break;
	}
	if (!ok)
		e->claiming = false;
	engine_check_idle(e);
}

static void engine_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	engine_pump(arg);
}

/* The flush delay is over: the outcomes queued meanwhile are written together. */
static void engine_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	engine_flush(arg);
}

/* ---- timers ---- */

/* Arms the one timer for the earliest of: next poll, next retry, breaker probe, the end
 * of a claim's failure backoff. */
static void engine_arm_timer(struct engine *e)
{
	if (e->once || e->exited)
		return;
	int64_t at = e->next_poll_ms;
	if (e->next_retry_ms && e->next_retry_ms < at)
		at = e->next_retry_ms;
	int64_t probe = breaker_wake_at(&e->br);
	if (probe && probe < at)
		at = probe;
	for (int k = 0; k < SCHED_KINDS; k++)
		if (e->claim_failed[k].retry_at_ms && e->claim_failed[k].retry_at_ms < at)
			at = e->claim_failed[k].retry_at_ms;
	int64_t delay = at - now_ms();
	if (delay < 0)
		delay = 0;
	struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
	evtimer_add(e->ev_timer, &tv);
}

static void engine_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine *e = arg;
	(void)fd;
	(void)what;
	int64_t now = now_ms();
	bool poll = now >= e->next_poll_ms;
	if (poll) {
		/* the fallback for lost notifications and other daemons' expired leases; the
		 * candidates that were blocked get another look */
		e->scan_wanted = engine_scans_at_poll(e);
		e->changes_wanted = true;
		e->changes_after = 0; /* the blocked ones get another look */
		e->due_wanted = true;
		e->requests_wanted = true;
		e->next_poll_ms = now + e->cfg->poll_interval_ms;
		engine_blocked_clear(e);
	}
	if (e->next_retry_ms && now >= e->next_retry_ms) {
		e->due_wanted = true;
		e->next_retry_ms = 0;
	}
	/* a database that was not ready (schema missing, instance name taken) is checked
	 * again at every poll, so the daemon starts working once the cause is gone */
	if (poll && e->problem && !e->prepared && !e->preparing && pg_conn_is_up(e->pc))
		e->preparing = store_prepare(e->st, engine_prepared, e);
	engine_arm_timer(e);
	engine_flush(e);
	engine_pump(e);
}

static void engine_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine *e = arg;
	(void)fd;
	(void)what;
	if (e->exited)
		return;
	char n[24];
	snprintf(n, sizeof(n), "%zu", http_inflight(e->http));
	log_event(LOG_LVL_WARNING, "drain_timeout", "inflight", n, "msg",
	          "leaving requests in flight; they are resent with the same id at the next start",
	          NULL);
	e->exited = true;
	if (e->hooks.idle_exit)
		e->hooks.idle_exit(e->hooks.arg);
}

/* ---- database connection ---- */

static void engine_prepared(size_t affected, const char *error, void *arg)
{
	struct engine *e = arg;
	(void)affected;
	e->preparing = false;
	if (error) {
		free(e->problem);
		e->problem = xstrdup(error);
		log_event(LOG_LVL_ERR, "database_not_ready", "reason", error, NULL);
		if (e->once) {
			e->left_undone++;
			e->exited = true;
			if (e->hooks.idle_exit)
				e->hooks.idle_exit(e->hooks.arg);
		}
		/* otherwise the next poll after a reconnect tries again */
		return;
	}
	free(e->problem);
	e->problem = NULL;
	bool first = !e->stats.ready;
	e->prepared = true;
	e->stats.ready = true;
	/* what was read of the queue before is read again */
	engine_changes_clear(e);
	e->changes_wanted = true;
	e->changes_after = 0;
	e->scan_wanted = engine_scans_at_poll(e);
	e->due_wanted = true;
	e->requests_wanted = true;
	engine_flush(e);
	if (first && e->hooks.ready)
		e->hooks.ready(e->hooks.arg);
	if (e->listener.db_ready)
		e->listener.db_ready(e->listener.arg);
	engine_kick(e);
}

static void engine_db_up(void *arg)
{
	struct engine *e = arg;
	e->stats.db_up = true;
	e->prepared = false;
	e->preparing = store_prepare(e->st, engine_prepared, e);
	if (!e->preparing)
		log_event(LOG_LVL_WARNING, "database_not_ready", "reason", "connection lost", NULL);
}

static void engine_db_down(void *arg, const char *why)
{
	struct engine *e = arg;
	(void)why;
	e->stats.db_up = false;
	e->prepared = false;
	e->preparing = false;
	e->claiming = false;
	if (e->listener.db_down)
		e->listener.db_down(e->listener.arg);
	if (e->once && !e->stats.ready) {
		free(e->problem);
		e->problem = xasprintf("cannot connect to the database: %s", why);
		e->left_undone++;
		e->exited = true;
		if (e->hooks.idle_exit)
			e->hooks.idle_exit(e->hooks.arg);
	}
}

/* The outcome connection is up (again): what is held is written. */
static void engine_writer_up(void *arg)
{
	struct engine *e = arg;
	engine_flush(e);
	engine_kick(e);
}

static void engine_db_notify(void *arg, const char *channel, const char *payload)
{
	struct engine *e = arg;
	if (strcmp(channel, "smartpay_orders") == 0) {
		/* a wake-up: the queue says what changed */
		e->changes_wanted = true;
		if (!engine_queue_mode(e) && payload && *payload)
			engine_note_order(e, payload);
		engine_kick(e);
	} else if (strcmp(channel, "smartpay_requests") == 0) {
		e->requests_wanted = true;
		engine_kick(e);
	} else if (strcmp(channel, "smartpay_due") == 0) {
		e->due_wanted = true; /* an operator requeued a modification */
		engine_kick(e);
	}
	if (e->listener.notify)
		e->listener.notify(e->listener.arg, channel, payload);
}

/* ---- life cycle ---- */

struct engine *engine_new(struct event_base *base, const struct sp_config *cfg, const char *secret,
                          bool once, const struct engine_hooks *hooks)
{
	struct engine *e = xcalloc(1, sizeof(*e));
	e->base = base;
	e->cfg = cfg;
	e->secret = xstrdup(secret);
	e->once = once;
	if (hooks)
		e->hooks = *hooks;
	struct pg_conn_handlers h = {
	    .up = engine_db_up, .down = engine_db_down, .notify = engine_db_notify};
	e->pc = pg_conn_new(base, cfg->db_conninfo, &h, e);
	e->st = store_new(e->pc, cfg);
	struct pg_conn_handlers wh = {.up = engine_writer_up};
	e->wpc = pg_conn_new(base, cfg->db_conninfo, &wh, e);
	e->wst = store_new(e->wpc, cfg);
	struct http_options ho = {.ca_file = cfg->ca_file && *cfg->ca_file ? cfg->ca_file : NULL,
	                          .timeout_ms = cfg->timeout_ms,
	                          .connect_timeout_ms = cfg->connect_timeout_ms,
	                          .max_host_connections = cfg->max_inflight,
	                          .user_agent = cfg->user_agent};
	e->http = http_client_new(base, &ho);
	e->ev_kick = event_new(base, -1, 0, engine_kick_cb, e);
	e->ev_flush = evtimer_new(base, engine_flush_cb, e);
	e->ev_timer = evtimer_new(base, engine_timer_cb, e);
	e->ev_drain = evtimer_new(base, engine_drain_cb, e);
	e->targeted_max = TARGETED_MAX_IDS;
	e->own_wanted = true;
	e->scan_wanted = true;
	e->due_wanted = true;
	e->requests_wanted = true;
	return e;
}

void engine_start(struct engine *e)
{
	e->next_poll_ms = now_ms() + e->cfg->poll_interval_ms;
	engine_arm_timer(e);
	pg_conn_start(e->pc);
	pg_conn_start(e->wpc);
}

void engine_drain(struct engine *e)
{
	if (e->draining)
		return;
	e->draining = true;
	char n[24];
	snprintf(n, sizeof(n), "%zu", http_inflight(e->http));
	log_event(LOG_LVL_NOTICE, "draining", "inflight", n, NULL);
	engine_release_queued(e);
	struct timeval tv = {.tv_sec = e->cfg->drain_timeout_ms / 1000,
	                     .tv_usec = (e->cfg->drain_timeout_ms % 1000) * 1000};
	evtimer_add(e->ev_drain, &tv);
	engine_check_idle(e);
}

void engine_reload(struct engine *e, const struct sp_config *cfg, const char *secret)
{
	e->cfg = cfg;
	store_set_config(e->st, cfg);
	store_set_config(e->wst, cfg);
	free(e->secret);
	e->secret = xstrdup(secret);
	/* new credentials deserve a probe now rather than after the pause, and the answers
	 * to requests sent with the old ones do not count against them */
	breaker_reload(&e->br, now_ms());
	e->probes_on_wire = 0; /* those are of the old credentials */
	engine_breaker_changed(e);
	e->next_poll_ms = now_ms() + cfg->poll_interval_ms;
	e->scan_wanted = engine_scans_at_poll(e);
	e->changes_wanted = true;
	engine_arm_timer(e);
	engine_kick(e);
}

const struct engine_stats *engine_stats(const struct engine *e)
{
	return &e->stats;
}

struct store *engine_store(const struct engine *e)
{
	return e->st;
}

struct event_base *engine_base(const struct engine *e)
{
	return e->base;
}

void engine_want_due(struct engine *e)
{
	e->due_wanted = true;
	engine_kick(e);
}

void engine_set_listener(struct engine *e, const struct engine_listener *l)
{
	if (l)
		e->listener = *l;
	else
		memset(&e->listener, 0, sizeof(e->listener));
}

int engine_exit_status(const struct engine *e)
{
	return e->left_undone == 0 && e->problem == NULL ? 0 : 1;
}

const char *engine_problem(const struct engine *e)
{
	return e->problem;
}

/* Drops the flights waiting for a status call (their rows stay pending under the lease,
 * taken up again after it). */
static void engine_drop_settling(struct engine *e)
{
	while (e->settling != NULL) {
		struct flight *f = e->settling;
		e->settling = f->next;
		if (e->status)
			status_client_cancel(e->status, f);
		store_outcome_clear(&f->held);
		store_claim_clear(&f->claim);
		free(f);
	}
	e->nsettling = 0;
}

void engine_set_status_client(struct engine *e, struct status_client *status)
{
	if (status != e->status)
		engine_drop_settling(e);
	e->status = status;
}

void engine_free(struct engine *e)
{
	if (e == NULL)
		return;
	engine_drop_settling(e);
	http_client_free(e->http);
	pg_conn_free(e->pc);
	store_free(e->st);
	pg_conn_free(e->wpc);
	store_free(e->wst);
	for (size_t i = 0; i < e->nout; i++)
		store_outcome_clear(&e->out[i]);
	free(e->out);
	for (size_t i = 0; i < e->nwriting; i++)
		store_outcome_clear(&e->writing[i]);
	free(e->writing);
	for (size_t i = 0; i < e->nsolo; i++)
		store_outcome_clear(&e->solo[i].o);
	free(e->solo);
	engine_blocked_clear(e);
	free(e->blocked);
	engine_scan_sent_clear(e);
	for (size_t i = 0; i < e->nids; i++)
		free(e->ids[i]);
	free(e->ids);
	engine_changes_clear(e);
	free(e->changes);
	for (size_t i = 0; i < e->qlen; i++)
		store_claim_clear(&e->queue[e->qhead + i]);
	free(e->queue);
	event_free(e->ev_kick);
	event_free(e->ev_flush);
	event_free(e->ev_timer);
	event_free(e->ev_drain);
	if (e->secret) {
		explicit_bzero(e->secret, strlen(e->secret));
		free(e->secret);
	}
	free(e->problem);
	free(e);
}
