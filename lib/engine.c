/* The flow of a modification, in the order it happens, one section each: start (the two
 * database connections); wake-up (a notification, the timer, a kick after any step);
 * claim (the next claim is chosen by lib/schedule.c: due rows, shop requests, the
 * notified orders or a scan; candidates and requests become intents, recorded with
 * their request bodies and ids before anything is sent); send (the leased rows through
 * the in-flight window); classify (what an answer means, lib/outcome.c; the credentials
 * breaker, lib/breaker.c); record (the outcome write, lib/engine_record.c); retry /
 * expire; shutdown (drain, free). Within a section a step's helpers come before it.
 * Beside it: lib/engine_orders.c keeps which orders are to be looked at,
 * lib/engine_settle.c settles unknown outcomes from the transaction's status history,
 * lib/engine_internal.h has struct engine. */
#include "autoconfig.h"

#include "engine_internal.h"

#include "backoff.h"
#include "clock.h"
#include "config.h"
#include "http.h"
#include "intent.h"
#include "log.h"
#include "modification.h"
#include "pgconn.h"
#include "status_call.h"
#include "uuid.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pause after a claim statement failed, doubled per failure of the same claim up to the
 * cap; the alert is raised at the second failure in a row (a shutting-down server fails
 * one statement before the connection goes). */
#define CLAIM_BACKOFF_FIRST_MS 1000
#define CLAIM_BACKOFF_MAX_MS 300000

const int64_t engine_latency_bounds_us[ENGINE_LATENCY_BUCKETS] = {
    5000,    10000,   25000,   50000,    100000,   250000,  500000,
    1000000, 2500000, 5000000, 10000000, 30000000, 90000000};

/* The steps later in the cycle (a claim's answer, a request's answer, an outcome
 * written, a timer) that earlier ones start or call. */
static void engine_db_up(void *arg);
static void engine_prepared(size_t affected, const char *error, void *arg);
static void engine_db_down(void *arg, const char *why);
static void engine_writer_up(void *arg);
static void engine_db_notify(void *arg, const char *channel, const char *payload);
static void engine_arm_timer(struct engine *e);
static void engine_timer_cb(evutil_socket_t fd, short what, void *arg);
static void engine_kick_cb(evutil_socket_t fd, short what, void *arg);
static void engine_pump(struct engine *e);
static void engine_want_requests(struct engine *e);
static void engine_on_due(struct claim *rows, size_t n, const char *error, void *arg);
static void engine_on_changes(struct order_change *rows, size_t n, const char *error, void *arg);
static void engine_on_candidates(struct candidate *rows, size_t n, const char *error, void *arg);
static void engine_on_requests(struct shop_request *rows, size_t n, bool blocked, const char *error,
                               void *arg);
static void engine_on_inserted(struct claim *rows, size_t n, const char *error, void *arg);
static void engine_send_all(struct engine *e, struct claim *rows, size_t n);
static void engine_breaker_changed(struct engine *e);
static void engine_on_answer(const struct http_result *res, void *arg);
static void engine_retry_at(struct engine *e, int64_t at);
static void engine_expire(struct engine *e, struct claim *c);
static void engine_give_up(struct engine *e, const char *why);
static void engine_check_idle(struct engine *e);
static void engine_drain_cb(evutil_socket_t fd, short what, void *arg);

/* ---- start: creation, the two database connections ---- */

/* Creates the engine: two database connections (claims, outcome writes), the HTTP client,
 * the kick, flush, poll and drain events; everything is wanted at the first claim. */
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
	store_use_for_outcomes(e->wst);
	struct http_options ho = {.ca_file = cfg->ca_file && *cfg->ca_file ? cfg->ca_file : NULL,
	                          .timeout_ms = cfg->timeout_ms,
	                          .connect_timeout_ms = cfg->connect_timeout_ms,
	                          .max_host_connections = cfg->max_inflight,
	                          .user_agent = cfg->user_agent};
	e->http = http_client_new(base, &ho);
	e->ev_kick = event_new(base, -1, 0, engine_kick_cb, e);
	/* the kick after an answer runs once the other answers of the pass are handled, as
	 * with one priority (the HTTP client's, the loop's lowest: lib/http.c) */
	int npri = event_base_get_npriorities(base);
	if (npri > 1)
		event_priority_set(e->ev_kick, npri - 1);
	e->ev_flush = evtimer_new(base, engine_flush_cb, e);
	e->ev_pause = evtimer_new(base, engine_kick_cb, e);
	e->ev_timer = evtimer_new(base, engine_timer_cb, e);
	e->ev_drain = evtimer_new(base, engine_drain_cb, e);
	e->targeted_max = TARGETED_MAX_IDS;
	e->running = SCHED_NONE;
	e->own_wanted = true;
	e->wanted[SCHED_SCAN] = true;
	e->wanted[SCHED_DUE] = true;
	engine_want_requests(e);
	return e;
}

/* Starts the connections and the poll timer: the first wake-up is the database coming up. */
void engine_start(struct engine *e)
{
	e->next_poll_ms = clock_real_ms() + e->cfg->poll_interval_ms;
	engine_arm_timer(e);
	pg_conn_start(e->pc);
	pg_conn_start(e->wpc);
}

/* The claim connection is up (again): the schema and the instance are checked first. */
static void engine_db_up(void *arg)
{
	struct engine *e = arg;
	e->stats.db_up = true;
	e->prepared = false;
	e->preparing = store_prepare(e->st, engine_prepared, e);
	if (!e->preparing)
		log_fields(LOG_LVL_WARNING, "database_not_ready",
		           LOG_STR("reason", "connection lost"));
}

/* The database is ready (or not): every claim is wanted, held outcomes are written. */
static void engine_prepared(size_t affected, const char *error, void *arg)
{
	struct engine *e = arg;
	(void)affected;
	e->preparing = false;
	if (error) {
		free(e->problem);
		e->problem = xstrdup(error);
		log_fields(LOG_LVL_ERR, "database_not_ready", LOG_STR("reason", error));
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
	e->wanted[SCHED_TARGETED] = true;
	e->changes_after = 0;
	e->wanted[SCHED_SCAN] = engine_scans_at_poll(e);
	e->wanted[SCHED_DUE] = true;
	engine_want_requests(e);
	engine_flush(e);
	if (first && e->hooks.ready)
		e->hooks.ready(e->hooks.arg);
	if (e->listener.db_ready)
		e->listener.db_ready(e->listener.arg);
	engine_kick(e);
}

/* The claim connection was lost: no claim runs until it is back and prepared again. */
static void engine_db_down(void *arg, const char *why)
{
	struct engine *e = arg;
	(void)why;
	e->stats.db_up = false;
	e->prepared = false;
	e->preparing = false;
	e->running = SCHED_NONE;
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

/* ---- wake-up: notifications, the timer, the kick ---- */

/* Asks for a pump on the next loop iteration, coalescing repeated requests. */
void engine_kick(struct engine *e)
{
	if (!e->exited)
		event_active(e->ev_kick, EV_TIMEOUT, 0);
}

/* A NOTIFY: what it names is wanted (the queue of changes, requests, due rows). */
static void engine_db_notify(void *arg, const char *channel, const char *payload)
{
	struct engine *e = arg;
	if (strcmp(channel, "smartpay_orders") == 0) {
		/* a wake-up: the queue says what changed */
		e->wanted[SCHED_TARGETED] = true;
		if (!engine_queue_mode(e) && payload && *payload)
			engine_note_order(e, payload);
		engine_kick(e);
	} else if (strcmp(channel, "smartpay_requests") == 0) {
		engine_want_requests(e);
		engine_kick(e);
	} else if (strcmp(channel, "smartpay_due") == 0) {
		e->wanted[SCHED_DUE] = true; /* an operator requeued a modification */
		engine_kick(e);
	}
	if (e->listener.notify)
		e->listener.notify(e->listener.arg, channel, payload);
}

/* A shop request may be open (a start, a reconnect, a notification, a poll): the
 * requests query is wanted, and again after each finished modification until it finds
 * none open. */
static void engine_want_requests(struct engine *e)
{
	e->wanted[SCHED_REQUESTS] = e->requests_open = true;
}

/* The expiry sweep made rows due: a due claim is wanted. */
void engine_want_due(struct engine *e)
{
	e->wanted[SCHED_DUE] = true;
	engine_kick(e);
}

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
	int64_t delay = at - clock_real_ms();
	if (delay < 0)
		delay = 0;
	struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
	evtimer_add(e->ev_timer, &tv);
}

/* SIGHUP: the new configuration and credentials; a probe at once if sending was paused. */
void engine_reload(struct engine *e, const struct sp_config *cfg, const char *secret)
{
	e->cfg = cfg;
	store_set_config(e->st, cfg);
	store_set_config(e->wst, cfg);
	free(e->secret);
	e->secret = xstrdup(secret);
	/* new credentials deserve a probe now rather than after the pause, and the answers
	 * to requests sent with the old ones do not count against them */
	breaker_reload(&e->br, clock_real_ms());
	e->probes_on_wire = 0; /* those are of the old credentials */
	engine_breaker_changed(e);
	e->next_poll_ms = clock_real_ms() + cfg->poll_interval_ms;
	e->wanted[SCHED_SCAN] = engine_scans_at_poll(e);
	e->wanted[SCHED_TARGETED] = true;
	engine_arm_timer(e);
	engine_kick(e);
}

/* The one timer: a poll (everything wanted again), a retry time, a probe, the end of a
 * claim's backoff. */
static void engine_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine *e = arg;
	(void)fd;
	(void)what;
	int64_t now = clock_real_ms();
	bool poll = now >= e->next_poll_ms;
	if (poll) {
		/* the fallback for lost notifications and other daemons' expired leases; the
		 * candidates that were blocked get another look */
		e->wanted[SCHED_SCAN] = engine_scans_at_poll(e);
		e->wanted[SCHED_TARGETED] = true;
		e->changes_after = 0; /* the blocked ones get another look */
		e->wanted[SCHED_DUE] = true;
		engine_want_requests(e);
		e->next_poll_ms = now + e->cfg->poll_interval_ms;
		engine_blocked_clear(e);
	}
	if (e->next_retry_ms && now >= e->next_retry_ms) {
		e->wanted[SCHED_DUE] = true;
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

/* The deferred kick: the next claim. */
static void engine_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	engine_pump(arg);
}

/* ---- claim: which claim runs next, and its statements ---- */

/* True when an answer came within the last sched_pause_us. */
static bool engine_answering(const struct engine *e)
{
	return e->last_answer_us != 0 &&
	       clock_mono_us() - e->last_answer_us < sched_pause_us(e->latency_avg_us);
}

/* The engine's state as the scheduler sees it (lib/schedule.c). */
static struct sched_state engine_sched_state(const struct engine *e, int64_t now)
{
	struct sched_state st = {.usable = e->running == SCHED_NONE && !e->draining && !e->exited &&
	                                   !e->gave_up && e->prepared && pg_conn_is_up(e->pc),
	                         .breaker_closed = e->br.state == BREAKER_CLOSED,
	                         .probe_due = breaker_probe_due(&e->br, now),
	                         .outcomes_blocked = e->out_blocked,
	                         .outcomes_held = engine_outcomes_held(e),
	                         .batch_size = e->cfg->batch_size,
	                         .max_inflight = e->cfg->max_inflight,
	                         .queued = e->qlen,
	                         .lead = e->claim_lead,
	                         .inflight = http_inflight(e->http) > 0,
	                         .answering = engine_answering(e),
	                         .want_due = e->own_wanted || e->wanted[SCHED_DUE],
	                         .want_requests = e->wanted[SCHED_REQUESTS],
	                         .want_scan = e->wanted[SCHED_SCAN],
	                         .notified = e->nids + engine_reads_changes(e)};
	for (int k = 0; k < SCHED_KINDS; k++)
		st.waiting[k] = now < e->claim_failed[k].retry_at_ms;
	return st;
}

/* Marks a claim cycle of `kind` as running. */
static void engine_claim_begin(struct engine *e, enum sched_claim kind, int limit, int room)
{
	e->running = kind;
	e->claim_limit = limit;
	e->claim_room = room;
	e->claim_refused = 0;
	e->claim_full = false;
	e->looking_past = kind == SCHED_SCAN;
	e->claim_sent_from = e->stats.sent;
	e->claim_starved = false;
}

/* Half-open breaker: one due row is claimed to go out as the probe. */
static bool engine_claim_probe(struct engine *e, int64_t now)
{
	breaker_probe_claimed(&e->br);
	engine_claim_begin(e, SCHED_DUE, 1, 1);
	e->claim_own = false;
	if (store_claim_due(e->st, 1, false, engine_on_due, e))
		return true;
	breaker_probe_unsent(&e->br, now, false);
	return false;
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

/* The notified orders: the oldest queued changes first when they are to be read (their
 * orders are looked at when they come back), else the orders in ids. */
static bool engine_claim_notified(struct engine *e, int room)
{
	engine_claim_begin(e, SCHED_TARGETED, room, room);
	if (!engine_reads_changes(e))
		return engine_claim_targeted(e);
	engine_changes_clear(e);
	e->wanted[SCHED_TARGETED] = false;
	if (store_read_changes(e->st, e->changes_after, (int)e->targeted_max, engine_on_changes, e))
		return true;
	e->wanted[SCHED_TARGETED] = true;
	return false;
}

/* Sends the statement of the chosen claim; false when it could not be sent. The due
 * rows, the requests and the scan are off the wanted set while their claim runs, and
 * wanted again when it cannot start. */
static bool engine_claim_start(struct engine *e, struct sched_choice next, int64_t now)
{
	enum sched_claim k = next.claim;
	if (k == SCHED_PROBE)
		return engine_claim_probe(e, now);
	if (k == SCHED_TARGETED)
		return engine_claim_notified(e, next.room);
	bool own = k == SCHED_DUE && e->own_wanted;
	e->wanted[k] = false;
	if (k == SCHED_DUE)
		e->own_wanted = false;
	int limit = k == SCHED_SCAN ? engine_scan_limit(e, next.room) : next.room;
	engine_claim_begin(e, k, limit, next.room);
	e->claim_own = own;
	bool ok = k == SCHED_DUE ? store_claim_due(e->st, limit, own, engine_on_due, e)
	          : k == SCHED_REQUESTS
	              ? store_find_requests(e->st, limit, engine_on_requests, e)
	              : store_find_candidates(e->st, NULL, 0, limit, engine_on_candidates, e);
	if (!ok) {
		e->wanted[k] = true;
		e->own_wanted = e->own_wanted || own;
	}
	return ok;
}

/* A claim waits for the answers to pause: the pump runs again when sched_pause_us
 * have passed since the last one (an answer meanwhile kicks it anyway). */
static void engine_pump_after_pause(struct engine *e)
{
	int64_t wait = e->last_answer_us + sched_pause_us(e->latency_avg_us) - clock_mono_us();
	if (wait < 1)
		wait = 1;
	struct timeval tv = {.tv_sec = (time_t)(wait / 1000000),
	                     .tv_usec = (suseconds_t)(wait % 1000000)};
	evtimer_add(e->ev_pause, &tv);
}

/* Starts the claim the scheduler picks from the engine's state (lib/schedule.c), if any. */
static void engine_pump(struct engine *e)
{
	int64_t now = clock_real_ms();
	struct sched_state st = engine_sched_state(e, now);
	struct sched_choice next = sched_next(&st);
	if (next.deferred)
		engine_pump_after_pause(e);
	if (next.claim != SCHED_NONE && !engine_claim_start(e, next, now))
		e->running = SCHED_NONE;
	engine_check_idle(e);
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
		log_fields(LOG_LVL_ERR, "claim_failed_alert", LOG_STR("claim", sched_claim_name(k)),
		           LOG_STR("msg", msg));
	}
	free(msg);
}

/* Completion of an alert the engine raises itself (claim_failed, outcome_unstorable). */
void engine_alert_done(size_t affected, const char *error, void *arg)
{
	(void)affected;
	(void)arg;
	if (error) {
		char *why = store_error_text(error);
		log_fields(LOG_LVL_WARNING, "alert_insert_failed", LOG_STR("reason", why));
		free(why);
	}
}

/* Ends a claim cycle that failed: the same claim waits (backoff) and is alerted, the
 * other claims go on; with --once the exit status says it. */
static void engine_claim_failed(struct engine *e, const char *error)
{
	enum sched_claim k = e->running;
	char *why = store_error_text(error);
	log_fields(LOG_LVL_WARNING, "claim_failed", LOG_STR("claim", sched_claim_name(k)),
	           LOG_STR("reason", why));
	e->running = SCHED_NONE;
	size_t given = e->targeted;
	e->targeted = 0;
	int64_t now = clock_real_ms();
	if (e->br.state == BREAKER_PROBING && e->probes_on_wire == 0)
		breaker_probe_unsent(&e->br, now, false);
	if (e->once) {
		free(e->problem);
		e->problem = xstrdup(error);
		e->wanted[SCHED_SCAN] = e->wanted[SCHED_DUE] = e->own_wanted =
		    e->wanted[SCHED_REQUESTS] = false;
		free(why);
		engine_check_idle(e);
		return;
	}
	/* wanted again (a targeted claim keeps its ids, and the queue read is kept) */
	if (k != SCHED_TARGETED)
		e->wanted[k] = true;
	if (k == SCHED_DUE && e->claim_own)
		e->own_wanted = true;
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
		log_fields(
		    LOG_LVL_WARNING, "order_skipped", LOG_STR("order_id", e->ids[0]),
		    LOG_STR("reason", why),
		    LOG_STR("msg",
		            engine_queue_mode(e)
		                ? "taken off the queue; `smartpayctl rescan` looks at it again"
		                : "left to the scans of the orders relation"));
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
	struct claim_failures *f = &e->claim_failed[e->running];
	if (f->count > 0)
		log_fields(LOG_LVL_NOTICE, "claim_recovered",
		           LOG_STR("claim", sched_claim_name(e->running)));
	memset(f, 0, sizeof(*f));
}

/* The answer of a claim's read statement: false after ending the cycle as failed, true
 * when the claim worked (its failure episode, if any, is over). */
static bool engine_claim_read(struct engine *e, const char *error)
{
	if (error) {
		engine_claim_failed(e, error);
		return false;
	}
	engine_claim_ok(e);
	return true;
}

/* Ends a claim cycle and looks for more work. */
static void engine_claim_end(struct engine *e)
{
	e->running = SCHED_NONE;
	engine_kick(e);
	engine_check_idle(e);
}

/* Due rows claimed (retries, rows put back, own rows after a restart, or the breaker's
 * probe): they are sent. */
static void engine_on_due(struct claim *rows, size_t n, const char *error, void *arg)
{
	struct engine *e = arg;
	if (!engine_claim_read(e, error))
		return;
	bool probing = e->br.state == BREAKER_PROBING;
	if (probing && n == 0) {
		/* nothing to probe with: the next real request tests the credentials */
		breaker_probe_unsent(&e->br, clock_real_ms(), true);
		engine_breaker_changed(e);
	}
	if ((int)n == e->claim_limit && !probing)
		e->wanted[SCHED_DUE] = true; /* a full batch: more may be due */
	if (n > 0)
		log_fields(LOG_LVL_INFO, "retries_claimed", LOG_UINT("count", n));
	engine_send_all(e, rows, n);
	if (e->br.state == BREAKER_PROBING && e->probes_on_wire == 0) {
		/* the probe was given up locally (a capture past its deadline): another one */
		breaker_probe_unsent(&e->br, clock_real_ms(), false);
		engine_breaker_changed(e);
	}
	engine_claim_end(e);
}

/* Queued changes read: their orders are looked at in the same claim cycle. */
static void engine_on_changes(struct order_change *rows, size_t n, const char *error, void *arg)
{
	struct engine *e = arg;
	if (error) {
		e->wanted[SCHED_TARGETED] = true;
		engine_claim_failed(e, error);
		return;
	}
	if ((int)n == (int)e->targeted_max)
		e->wanted[SCHED_TARGETED] = true; /* a full page: more are queued */
	engine_changes_read(e, rows, n);
	if (e->nids == 0) {
		engine_claim_ok(e);
		engine_claim_end(e);
		return;
	}
	if (!engine_claim_targeted(e)) {
		engine_changes_clear(e);
		e->wanted[SCHED_TARGETED] = true;
		engine_claim_failed(e, "database connection lost");
	}
}

/* Counts and logs an order row or request refused locally (no-op for a sendable intent). */
static void engine_note_refusal(struct engine *e, const char *event, const struct intent *in)
{
	if (in->reason == NULL)
		return;
	e->stats.refused_locally++;
	e->stats.results[in->kind][OUTCOME_REFUSED_LOCALLY]++;
	log_fields(LOG_LVL_ERR, event, LOG_STR("order_id", in->order_id),
	           LOG_STR("transaction_id", in->transaction_id),
	           LOG_STR("kind", mod_kind_name(in->kind)), LOG_STR("reason", in->reason));
}

/* Records intents (local refusals included) in one statement; what comes back leased is
 * sent. The first `room` sendable ones are leased, the rest recorded due. Frees the
 * intents' bodies and reasons and both arrays. */
static void engine_insert_intents(struct engine *e, struct intent *intents, char **reasons,
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
	const char **orders = engine_consuming_orders(e);
	if (!store_insert_intents_consuming(e->st, intents, n, e->consuming, orders, e->nconsuming,
	                                    engine_on_inserted, e)) {
		engine_scan_sent_clear(e);
		engine_claim_failed(e, "database connection lost");
	}
	free(orders);
	for (size_t i = 0; i < n; i++) {
		free(intents[i].body);
		free(reasons[i]);
	}
	free(intents);
	free(reasons);
}

/* Turns a page of candidate orders (`requests` NULL) or of shop requests into intents,
 * each with a fresh modification id, local refusals counted and logged, and records
 * them in one statement. */
static void engine_intents_from(struct engine *e, const struct candidate *orders,
                                const struct shop_request *requests, size_t n)
{
	struct intent *intents = xcalloc(n ? n : 1, sizeof(*intents));
	char **reasons = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		char id[37];
		uuid_v4(id);
		if (requests == NULL)
			intent_from_order(e->cfg->merchant_key, id, &orders[i], &intents[i],
			                  &reasons[i]);
		else
			intent_from_request(e->cfg->merchant_key, id, &requests[i], &intents[i],
			                    &reasons[i]);
		engine_note_refusal(e, requests == NULL ? "order_refused" : "request_refused",
		                    &intents[i]);
	}
	engine_insert_intents(e, intents, reasons, n);
}

/* Candidate orders read, by a scan or a targeted claim: the ids looked at are done with,
 * blocked candidates are looked past, the others become intents. */
static void engine_on_candidates(struct candidate *rows, size_t n, const char *error, void *arg)
{
	struct engine *e = arg;
	if (!engine_claim_read(e, error))
		return;
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
		candidates_free(rows, all);
		engine_claim_end(e);
		return;
	}
	engine_intents_from(e, rows, NULL, n);
	candidates_free(rows, all);
}

/* Open shop requests read: they become intents. None read and none open behind a
 * modification in flight: finished modifications free no request until one is notified
 * (or the next poll). */
static void engine_on_requests(struct shop_request *rows, size_t n, bool blocked, const char *error,
                               void *arg)
{
	struct engine *e = arg;
	if (!error)
		e->requests_open = n > 0 || blocked || e->wanted[SCHED_REQUESTS];
	if (!engine_claim_read(e, error))
		return;
	e->claim_full = (int)n == e->claim_limit;
	if (n == 0) {
		shop_requests_free(rows, n);
		engine_claim_end(e);
		return;
	}
	engine_intents_from(e, NULL, rows, n);
	shop_requests_free(rows, n);
}

/* Sends the leased rows of an insert; the ones recorded unleased are claimed as due. */
static void engine_send_leased(struct engine *e, struct claim *rows, size_t n)
{
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (rows[i].leased) {
			rows[kept++] = rows[i];
		} else {
			claim_clear(&rows[i]);
			e->wanted[SCHED_DUE] = true;
		}
	}
	engine_send_all(e, rows, kept);
}

/* Intents recorded: the leased ones are sent; a scan notes what it must look past. */
static void engine_on_inserted(struct claim *rows, size_t n, const char *error, void *arg)
{
	struct engine *e = arg;
	if (error) {
		/* nothing was recorded, so nothing is sent; the orders are looked at again (the
		 * queued changes were not deleted: they are read again) */
		if (e->nconsuming > 0) {
			engine_changes_clear(e);
			e->wanted[SCHED_TARGETED] = true;
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
		if (e->running == SCHED_SCAN && e->claim_full &&
		    (n > 0 || e->claim_refused > 0 || blocked > 0))
			e->wanted[SCHED_SCAN] = true;
		engine_scan_sent_clear(e);
	}
	/* likewise a full page of requests: only when this one recorded something */
	if (e->running == SCHED_REQUESTS && e->claim_full && (n > 0 || e->claim_refused > 0))
		e->wanted[SCHED_REQUESTS] = true;
	e->claim_refused = 0;
	engine_send_leased(e, rows, n);
	engine_claim_end(e);
}

/* ---- send: the in-flight window ---- */

/* Gives the lease of one unsent row back: it stays pending, due now, for whoever claims
 * it next, with the same id and body. Takes the claim's strings. */
static void engine_release(struct engine *e, struct claim *c, const char *why)
{
	struct outcome o;
	memset(&o, 0, sizeof(o));
	o.modification_id = c->modification_id;
	o.order_id = c->order_id;
	o.kind = c->kind;
	o.generation = c->generation;
	o.state = "pending";
	o.reason = xstrdup(why);
	o.released = true;
	c->modification_id = c->order_id = NULL;
	claim_clear(c);
	engine_record(e, &o);
}

/* Gives the leases of queued, unsent rows back (drain, paused gateway). */
static void engine_release_queued(struct engine *e)
{
	while (e->qlen > 0) {
		struct claim *c = &e->queue[e->qhead++];
		e->qlen--;
		engine_release(e, c, "released unsent");
	}
	e->qhead = 0;
}

/* True when the row's lease still covers a whole request and the write of its outcome:
 * a row never goes out on a lease another daemon could take over meanwhile. Half the
 * configured margin is for the write, the other half lets a row of the shortest valid
 * lease wait in the queue a little. */
static bool engine_lease_covers_send(const struct engine *e, const struct claim *c)
{
	return c->lease_until_ms - clock_mono_ms() >=
	       e->cfg->timeout_ms + CONFIG_LEASE_MARGIN_MS / 2;
}

/* Sends one leased modification: the stored body, byte for byte. Takes the claim's strings. */
static void engine_send(struct engine *e, struct claim *claim)
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
	struct claim *c = &f->claim;
	char *url = xasprintf("%s%s", e->cfg->base_url, mod_kind_path(c->kind));
	struct mod_headers headers;
	mod_headers_init(&headers, e->cfg->origin);
	struct http_request req = {.method = "POST",
	                           .url = url,
	                           .headers = headers.lines,
	                           .body = c->body,
	                           .body_len = strlen(c->body),
	                           .username = e->cfg->merchant_key,
	                           .password = e->secret};
	bool ok = http_submit(e->http, &req, engine_on_answer, f);
	free(url);
	mod_headers_free(&headers);
	if (!ok) {
		struct http_result res = {.transport_error = true, .error = "request setup failed"};
		engine_on_answer(&res, f);
		return;
	}
	e->stats.sent++;
	e->stats.inflight = (unsigned)http_inflight(e->http);
	log_fields(LOG_LVL_DEBUG, "modification_sent", FLIGHT_IDS(c),
	           LOG_INT("attempt", c->attempts + 1));
}

/* Sends queued rows while the in-flight window has room and sending is allowed. */
static void engine_send_queued(struct engine *e)
{
	/* while paused only the probe (the one row claimed for it) may go */
	while (e->qlen > 0 && !e->draining && breaker_may_send(&e->br) &&
	       (int)http_inflight(e->http) < e->cfg->max_inflight) {
		struct claim *c = &e->queue[e->qhead++];
		e->qlen--;
		if (engine_lease_covers_send(e, c)) {
			engine_send(e, c);
			continue;
		}
		log_fields(LOG_LVL_NOTICE, "lease_too_short", FLIGHT_IDS(c),
		           LOG_STR("msg", "released unsent; claimed again with a fresh lease"));
		engine_release(e, c, "released unsent: lease too short to send");
	}
	if (e->qlen == 0) {
		e->qhead = 0;
		if (e->running != SCHED_NONE && (int)http_inflight(e->http) < e->cfg->max_inflight)
			e->claim_starved = true;
	}
}

/* Queues claimed rows for sending and sends what the window allows. Takes the array.
 * What the window took from the queue while this claim ran is the next claims' lead
 * (sched_lead: a whole batch when the queue ran dry with room in the window). */
static void engine_send_all(struct engine *e, struct claim *rows, size_t n)
{
	if (e->running != SCHED_NONE)
		e->claim_lead = sched_lead((size_t)(e->stats.sent - e->claim_sent_from),
		                           e->claim_starved, e->cfg->batch_size);
	if (e->qhead + e->qlen + n > e->qcap) {
		if (e->qlen > 0)
			memmove(e->queue, e->queue + e->qhead, e->qlen * sizeof(*e->queue));
		e->qhead = 0;
		e->queue = xgrow(e->queue, &e->qcap, e->qlen + n, sizeof(*e->queue));
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

/* ---- classify: what an answer means ---- */

/* The retry policy of the configuration, as lib/outcome.c takes it. */
struct outcome_policy engine_outcome_policy(const struct engine *e)
{
	return (struct outcome_policy){.retry_base_ms = e->cfg->retry_base_ms,
	                               .retry_max_ms = e->cfg->retry_max_ms,
	                               .max_attempts = e->cfg->max_attempts};
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
		e->latency_avg_us = sched_latency_avg(e->latency_avg_us, res->elapsed_us);
		e->stats.gateway_failing_since_ms = 0;
	} else {
		if (e->stats.gateway_failing_since_ms == 0)
			e->stats.gateway_failing_since_ms = now;
		if (e->listener.gateway_failed)
			e->listener.gateway_failed(e->listener.arg);
	}
}

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
			breaker_probe_failed(&e->br, clock_real_ms());
		engine_breaker_changed(e);
		return;
	}
	if (!breaker_accepted(&e->br, f->epoch))
		return;
	e->wanted[SCHED_DUE] = true; /* the rows put back while paused */
	log_fields(LOG_LVL_NOTICE, "gateway_resumed", LOG_STR("msg", "credentials accepted again"));
	engine_breaker_changed(e);
	engine_send_queued(e);
}

/* A 401: sending pauses for everyone (one alert per episode); with --once the run ends. */
static void engine_credentials_rejected(struct engine *e, const struct flight *f, struct outcome *o,
                                        int status)
{
	const struct claim *c = &f->claim;
	bool first = breaker_rejected(&e->br, f->epoch, clock_real_ms(), e->cfg->retry_max_ms);
	if (first) {
		o->alert_kind = "credentials_rejected";
		o->alert_severity = "critical";
	}
	e->stats.auth_rejected++;
	log_fields(
	    first ? LOG_LVL_ERR : LOG_LVL_WARNING, "credentials_rejected", FLIGHT_IDS(c),
	    LOG_INT("http_status", status),
	    LOG_STR("msg",
	            e->once ? "SmartPay rejected the merchant key or authentication key; nothing "
	                      "more is sent in this run"
	                    : "SmartPay rejected the merchant key or authentication key; sending "
	                      "paused"));
	if (e->once)
		engine_give_up(e, "SmartPay rejected the merchant key or authentication key "
		                  "(HTTP 401)");
	engine_breaker_changed(e);
}

/* Counts, logs and records the outcome of one attempt; frees the flight. */
void engine_conclude(struct engine *e, struct flight *f, enum outcome_result r, struct outcome *op)
{
	struct claim *c = &f->claim;
	struct outcome o = *op;
	memset(op, 0, sizeof(*op));
	int64_t now = clock_real_ms();
	e->stats.results[c->kind][r]++;
	int attempt = c->attempts + 1;
	switch (r) {
	case OUTCOME_SUCCEEDED:
		e->stats.succeeded++;
		log_fields(LOG_LVL_INFO, "modification_succeeded", FLIGHT_IDS(c),
		           LOG_INT("http_status", f->http_status),
		           LOG_STR("payment_status", o.payment_status), LOG_INT("attempt", attempt),
		           LOG_INT("elapsed_ms", f->elapsed_us / 1000),
		           LOG_STR("settled_by", o.settled_by ? o.settled_by : "answer"));
		break;
	case OUTCOME_REFUSED:
		e->stats.refused++;
		log_fields(LOG_LVL_WARNING, "modification_refused", FLIGHT_IDS(c),
		           LOG_INT("http_status", f->http_status), LOG_STR("reason", o.reason));
		break;
	case OUTCOME_AUTH_REJECTED:
		engine_credentials_rejected(e, f, &o, f->http_status);
		break;
	case OUTCOME_NEEDS_ATTENTION:
		e->stats.needs_attention++;
		log_fields(LOG_LVL_ERR, "modification_needs_attention", FLIGHT_IDS(c),
		           LOG_STR("reason", o.reason));
		break;
	default:
		engine_retry_at(e, now + o.retry_delay_ms);
		e->stats.retries++;
		log_fields(LOG_LVL_WARNING, "modification_retry", FLIGHT_IDS(c),
		           LOG_STR("reason", o.reason), LOG_INT("attempt", attempt),
		           LOG_INT("retry_in_ms", o.retry_delay_ms));
		break;
	}
	claim_clear(&f->claim);
	free(f);
	engine_record(e, &o);
	engine_send_queued(e);
	engine_kick(e);
}

/* One HTTP answer: decide the outcome (lib/outcome.c), act on what it means for the
 * daemon (breaker, retry timer), log it and queue it for the batched write. */
static void engine_on_answer(const struct http_result *res, void *arg)
{
	struct flight *f = arg;
	struct engine *e = f->e;
	struct claim *c = &f->claim;
	int64_t now = clock_real_ms();
	e->last_answer_us = clock_mono_us();
	engine_note_gateway(e, res, now);
	if (f->probe && f->epoch == e->br.epoch && e->probes_on_wire > 0)
		e->probes_on_wire--;

	struct outcome_policy pol = engine_outcome_policy(e);
	struct outcome_answer ans = {.http_status = res->http_status,
	                             .transport_error = res->transport_error,
	                             .timed_out = res->timed_out,
	                             .error = res->error,
	                             .body = res->body,
	                             .body_len = res->body_len,
	                             .retry_after = res->retry_after};
	struct outcome o;
	enum outcome_result r = outcome_decide(&pol, c, &ans, now, backoff_random(), &o);
	if (r != OUTCOME_AUTH_REJECTED)
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

/* ---- record: the outcome write, in lib/engine_record.c ---- */

/* ---- retry / expire ---- */

/* An unknown outcome is retried at `at` (its row stays pending, due then): the timer
 * wakes up for the earliest retry. */
static void engine_retry_at(struct engine *e, int64_t at)
{
	if (e->next_retry_ms == 0 || at < e->next_retry_ms) {
		e->next_retry_ms = at;
		engine_arm_timer(e);
	}
}

/* Gives up on a capture whose authorization deadline passed while it was pending: first
 * its transaction's status may show the gateway performed (or refused) it; otherwise, or
 * when the call fails, needs_attention. Never resent. Takes the claim's strings. */
static void engine_expire(struct engine *e, struct claim *c)
{
	struct outcome o;
	outcome_expired(c, &o);
	if (engine_wants_status(e, c, OUTCOME_NEEDS_ATTENTION)) {
		struct flight *f = xcalloc(1, sizeof(*f));
		f->e = e;
		f->claim = *c;
		memset(c, 0, sizeof(*c));
		engine_ask_status(e, f, OUTCOME_NEEDS_ATTENTION, &o);
		return;
	}
	e->stats.needs_attention++;
	e->stats.results[c->kind][OUTCOME_NEEDS_ATTENTION]++;
	log_fields(LOG_LVL_ERR, "modification_needs_attention", FLIGHT_IDS(c),
	           LOG_STR("reason", o.reason));
	engine_record(e, &o);
	claim_clear(c);
}

/* --once: stops claiming and sending for the rest of the run; the exit status says why. */
static void engine_give_up(struct engine *e, const char *why)
{
	if (e->gave_up)
		return;
	e->gave_up = true;
	free(e->problem);
	e->problem = xstrdup(why);
	e->wanted[SCHED_SCAN] = e->wanted[SCHED_DUE] = e->own_wanted = e->wanted[SCHED_REQUESTS] =
	    false;
	e->wanted[SCHED_TARGETED] = false;
	for (size_t i = 0; i < e->nids; i++)
		free(e->ids[i]);
	e->nids = 0;
	e->left_undone++;
	engine_release_queued(e);
	engine_check_idle(e);
}

/* ---- shutdown: drain, exit, free ---- */

/* Leaves the loop when there is nothing more to do in --once or drain mode. */
static void engine_check_idle(struct engine *e)
{
	if (e->exited || !(e->once || e->draining))
		return;
	if (e->running != SCHED_NONE || http_inflight(e->http) > 0 || e->qlen > 0 ||
	    e->nsettling > 0 || engine_outcomes_held(e) > 0 || e->writing)
		return;
	if (e->once && !e->draining && !e->gave_up && e->prepared &&
	    (e->wanted[SCHED_SCAN] || e->wanted[SCHED_DUE] || e->own_wanted ||
	     e->wanted[SCHED_REQUESTS] || e->nids > 0 || e->wanted[SCHED_TARGETED]))
		return;
	if (e->once && !e->prepared && e->problem == NULL)
		return;
	e->exited = true;
	if (e->hooks.idle_exit)
		e->hooks.idle_exit(e->hooks.arg);
}

/* The first SIGTERM: stops claiming, gives queued rows back, and waits for what is in
 * flight up to the drain timeout. */
void engine_drain(struct engine *e)
{
	if (e->draining)
		return;
	e->draining = true;
	log_fields(LOG_LVL_NOTICE, "draining", LOG_UINT("inflight", http_inflight(e->http)));
	engine_release_queued(e);
	struct timeval tv = {.tv_sec = e->cfg->drain_timeout_ms / 1000,
	                     .tv_usec = (e->cfg->drain_timeout_ms % 1000) * 1000};
	evtimer_add(e->ev_drain, &tv);
	engine_check_idle(e);
}

/* The drain timeout: leaves with requests in flight (resent with the same id later). */
static void engine_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine *e = arg;
	(void)fd;
	(void)what;
	if (e->exited)
		return;
	log_fields(
	    LOG_LVL_WARNING, "drain_timeout", LOG_UINT("inflight", http_inflight(e->http)),
	    LOG_STR(
	        "msg",
	        "leaving requests in flight; they are resent with the same id at the next start"));
	e->exited = true;
	if (e->hooks.idle_exit)
		e->hooks.idle_exit(e->hooks.arg);
}

/* Frees the engine and everything it holds (unsent rows stay pending in the database). */
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
	engine_outcomes_free(e);
	engine_orders_free(e);
	for (size_t i = 0; i < e->qlen; i++)
		claim_clear(&e->queue[e->qhead + i]);
	free(e->queue);
	event_free(e->ev_kick);
	event_free(e->ev_flush);
	event_free(e->ev_pause);
	event_free(e->ev_timer);
	event_free(e->ev_drain);
	if (e->secret) {
		explicit_bzero(e->secret, strlen(e->secret));
		free(e->secret);
	}
	free(e->problem);
	free(e);
}

/* ---- for the daemon and the other modules ---- */

/* The running totals. */
const struct engine_stats *engine_stats(const struct engine *e)
{
	return &e->stats;
}

/* The claim connection's store, for read-only queries of other modules. */
struct store *engine_store(const struct engine *e)
{
	return e->st;
}

/* The loop the engine runs on. */
struct event_base *engine_base(const struct engine *e)
{
	return e->base;
}

/* Sets or clears the one listener (the alerts module). */
void engine_set_listener(struct engine *e, const struct engine_listener *l)
{
	if (l)
		e->listener = *l;
	else
		memset(&e->listener, 0, sizeof(e->listener));
}

/* Sets the status client; changing it drops the settlements under way. */
void engine_set_status_client(struct engine *e, struct status_client *status)
{
	if (status != e->status)
		engine_drop_settling(e);
	e->status = status;
	/* one TLS session cache for both callers of the gateway: a session the status calls
	 * hold (the reconciler's, before any capture) resumes a burst's first connections */
	if (status != NULL && e->http != NULL)
		(void)status_client_share_tls(status, e->http);
}

/* The --once exit status: 0 when nothing due was left undone. */
int engine_exit_status(const struct engine *e)
{
	return e->left_undone == 0 && e->problem == NULL ? 0 : 1;
}

/* The last fatal preparation problem, or NULL. */
const char *engine_problem(const struct engine *e)
{
	return e->problem;
}
