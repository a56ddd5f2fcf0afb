#include "autoconfig.h"

#include "alerts.h"

#include "backoff.h"
#include "classify.h"
#include "clock.h"
#include "config.h"
#include "duration.h"
#include "engine.h"
#include "http.h"
#include "log.h"
#include "pgconn.h"
#include "store.h"
#include "store_alerts.h"
#include "store_indexes.h"
#include "store_metrics.h"
#include "text.h"
#include "trim.h"
#include "xmalloc.h"

#include <event2/event.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A sweep at least this often, whatever the timer computed (leases that lapsed), and how
 * far past each threshold a sweep looks for the next crossing: a sweep that reads only
 * what changed reads the deadlines of the next minute, not those of the next hours. */
#define SWEEP_SAFETY_MS (60 * 1000)
/* A sweep reads what changed since the previous one (deadlines that crossed a threshold,
 * notified orders); every this often, and after a failure, a reconnect or a reload, it
 * reads the whole window instead (the safety net: a deadline the shop moved without a
 * status change, an order brought in from the history). */
#define SWEEP_FULL_EVERY_MS (30 * 60 * 1000)
/* More notified orders than this since the last sweep: read the whole window. */
#define SWEEP_IDS_MAX 2000
/* Least gap between two sweeps, and how many times the last sweep's duration it is at
 * least: a burst of order notifications costs one sweep a second, and a slow sweep over
 * a large orders relation never takes more than a tenth of the database's time. */
#define SWEEP_MIN_GAP_MS 1000
#define SWEEP_COST_FACTOR 10
/* Wake a little after a computed crossing so that it has happened by then. */
#define TIMER_PAD_MS 10
/* After a failed statement while the connection stays up, wait this long. */
#define ERROR_RETRY_MS 30000
#define WEBHOOK_MAX_INFLIGHT 8
#define WEBHOOK_TIMEOUT_MS 30000
/* How long a claimed alert is reserved for this daemon's request. */
#define WEBHOOK_LEASE_MS (WEBHOOK_TIMEOUT_MS + 60000)
/* Alerts due but claimed by nobody (row-locked by another daemon's claim): look again
 * after this long rather than at once. */
#define CLAIM_LOCKED_RETRY_MS 100

/* One webhook request in flight. */
struct delivery {
	struct delivery *prev, *next;
	struct alerts *a;
	int64_t alert_id;
	int attempts; /* made before this one */
};

struct alerts {
	struct engine *engine;
	struct event_base *base;
	struct pg_conn *pc;       /* the housekeeping connection, the alerts module's own */
	struct store *st;         /* on pc */
	struct http_client *http; /* webhook requests; NULL when curl could not be set up */
	struct event *ev_timer;   /* the one timer: next sweep, webhook round, gateway check */
	struct event *ev_kick;    /* deferred pump */
	bool conn_up;             /* the housekeeping connection is up and LISTENs */
	bool engine_ready;        /* the engine found the database prepared (schema checked) */
	bool indexes_checked;     /* the orders indexes were checked since the start */
	int64_t retry_at;         /* monotonic ms: no statements before this after an error */

	/* expiry sweep */
	bool sweeping;
	bool sweep_wanted;        /* as soon as the gap allows */
	int64_t sweep_at;         /* monotonic ms of the next timed sweep, 0 none */
	int64_t sweep_allowed_at; /* monotonic ms before which no sweep starts */
	int64_t sweep_started;
	char *sweep_since;     /* the last sweep's now() (database text); NULL: sweep all */
	int64_t sweep_full_at; /* monotonic ms of the last whole-window sweep */
	char **changed;        /* orders notified since the running sweep was sent */
	size_t nchanged, cap_changed;
	bool changed_overflow; /* more than SWEEP_IDS_MAX: the next sweep reads all */
	char **swept_ids;      /* those the running sweep reads again */
	size_t nswept_ids;

	/* webhook */
	bool claiming;
	size_t claim_limit; /* rows asked for by the running claim */
	bool claim_wanted;
	int64_t claim_at; /* monotonic ms of the next due delivery, 0 none */
	struct delivery *flights;
	struct store_webhook_result *results; /* outcomes waiting to be recorded */
	size_t nresults, cap_results;
	struct store_webhook_result *writing; /* outcomes being recorded */
	size_t nwriting;

	/* gateway unreachable */
	int64_t gw_alerted_since;  /* unix ms start of the episode already alerted */
	int64_t gw_check_at;       /* unix ms when the running episode becomes alertable, 0 none */
	char *gw_key, *gw_message; /* an alert waiting for the database */
	char *gw_sent_key, *gw_sent_message; /* the alert being inserted */

	struct alerts_stats stats;
};

static void alerts_pump(struct alerts *a);

/* Formats unix ms as ISO 8601 UTC with milliseconds. */
static void iso_time(int64_t ms, char out[40])
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char date[32];
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 40, "%s.%03dZ", date, (int)(ms % 1000));
}

static const struct sp_config *alerts_config(const struct alerts *a)
{
	return store_config(a->st);
}

static bool webhook_enabled(const struct alerts *a)
{
	const char *url = alerts_config(a)->webhook_url;
	return a->http != NULL && url != NULL && url[0] != '\0';
}

/* True when statements may be issued: the housekeeping connection is up and the engine
 * found the schema ready. */
static bool db_usable(const struct alerts *a)
{
	return a->conn_up && a->engine_ready && pg_conn_is_up(a->pc);
}

/* Asks for a pump on the next loop iteration, coalescing repeated requests. */
static void alerts_kick(struct alerts *a)
{
	event_active(a->ev_kick, EV_TIMEOUT, 0);
}

/* Strips the trailing newline libpq puts on its messages. */
static char *clean_error(const char *error)
{
	return trim_end(xstrdup(error ? error : "unknown error"), "\n ");
}

/* A statement failed: log it and hold further statements for a while when the
 * connection is still there (a reconnect lifts the hold). */
static void alerts_db_error(struct alerts *a, const char *event, const char *error)
{
	char *why = clean_error(error);
	log_fields(LOG_LVL_WARNING, event, LOG_STR("reason", why));
	free(why);
	a->retry_at = clock_mono_ms() + ERROR_RETRY_MS;
}

char *alerts_redact_url(const char *url)
{
	if (url == NULL)
		return xstrdup("");
	const char *sep = strstr(url, "://");
	const char *auth = sep ? sep + 3 : url;
	size_t auth_len = strcspn(auth, "/?#");
	const char *host = auth;
	for (const char *p = auth; p < auth + auth_len; p++)
		if (*p == '@')
			host = p + 1;
	const char *path = auth + auth_len;
	size_t path_len = *path == '/' ? strcspn(path, "?#") : 0;
	return xasprintf("%.*s%.*s%.*s", (int)(auth - url), url, (int)(auth + auth_len - host),
	                 host, (int)path_len, path);
}

char *alerts_webhook_body(const struct store_webhook_alert *alert)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "alert_id", json_object_new_int64(alert->alert_id));
	json_object_object_add(o, "kind", json_object_new_string(alert->kind));
	json_object_object_add(o, "severity", json_object_new_string(alert->severity));
	json_object_object_add(o, "order_id",
	                       alert->order_id ? json_object_new_string(alert->order_id) : NULL);
	json_object_object_add(
	    o, "modification_id",
	    alert->modification_id ? json_object_new_string(alert->modification_id) : NULL);
	json_object_object_add(o, "message", json_object_new_string(alert->message));
	json_object_object_add(o, "created_at", json_object_new_string(alert->created_at));
	char *body = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return body;
}

/* ---- the timer ---- */

/* Arms the one timer for the earliest of: the next sweep, the next due webhook
 * delivery, the moment the gateway episode becomes alertable, the end of an error hold. */
static void alerts_arm_timer(struct alerts *a)
{
	int64_t now = clock_mono_ms();
	int64_t at = INT64_MAX;
	if (db_usable(a)) {
		if (a->sweep_wanted && !a->sweeping)
			at = a->sweep_allowed_at;
		else if (a->sweep_at && !a->sweeping)
			at = a->sweep_at > a->sweep_allowed_at ? a->sweep_at : a->sweep_allowed_at;
		if (a->claim_at && a->claim_at < at)
			at = a->claim_at;
		if (at < a->retry_at)
			at = a->retry_at;
	}
	if (a->gw_check_at) {
		int64_t gw = now + (a->gw_check_at - clock_real_ms());
		if (gw < at)
			at = gw;
	}
	if (at == INT64_MAX) {
		evtimer_del(a->ev_timer);
		return;
	}
	int64_t delay = at - now;
	if (delay < 0)
		delay = 0;
	struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
	evtimer_add(a->ev_timer, &tv);
}

/* ---- gateway unreachable ---- */

/* Raises the alert of the running episode once it has lasted longer than the limit, or
 * notes when it will have. */
static void alerts_check_gateway(struct alerts *a)
{
	const struct sp_config *cfg = alerts_config(a);
	int64_t since = engine_stats(a->engine)->gateway_failing_since_ms;
	a->gw_check_at = 0;
	if (since == 0 || since == a->gw_alerted_since)
		return;
	int64_t due = since + cfg->gateway_unreachable_ms;
	if (clock_real_ms() < due) {
		a->gw_check_at = due;
		return;
	}
	a->gw_alerted_since = since;
	char start[40], limit[DURATION_TEXT_SIZE];
	iso_time(since, start);
	duration_format(cfg->gateway_unreachable_ms, DURATION_EXACT_HOURS, limit);
	char *url = alerts_redact_url(cfg->base_url);
	free(a->gw_key);
	free(a->gw_message);
	a->gw_key = xstrdup(start);
	a->gw_message = xasprintf("no HTTP answer from SmartPay at %s since %s (longer than %s), "
	                          "instance %s",
	                          url, start, limit, cfg->instance_name);
	a->stats.raised++;
	log_fields(LOG_LVL_ERR, "gateway_unreachable", LOG_STR("severity", "critical"),
	           LOG_STR("since", start), LOG_STR("url", url), LOG_STR("msg", a->gw_message));
	free(url);
}

static void gateway_inserted(size_t affected, const char *error, void *arg)
{
	struct alerts *a = arg;
	(void)affected;
	if (error) {
		alerts_db_error(a, "alert_insert_failed", error);
		if (a->gw_key == NULL) {
			/* nothing newer: try this one again */
			a->gw_key = a->gw_sent_key;
			a->gw_message = a->gw_sent_message;
			a->gw_sent_key = a->gw_sent_message = NULL;
		}
	}
	free(a->gw_sent_key);
	free(a->gw_sent_message);
	a->gw_sent_key = a->gw_sent_message = NULL;
	alerts_kick(a);
}

/* Inserts the waiting gateway alert. */
static void alerts_insert_gateway(struct alerts *a)
{
	if (a->gw_key == NULL || a->gw_sent_key != NULL)
		return;
	if (!store_alert_gateway(a->st, a->gw_key, a->gw_message, gateway_inserted, a))
		return;
	a->gw_sent_key = a->gw_key;
	a->gw_sent_message = a->gw_message;
	a->gw_key = a->gw_message = NULL;
}

/* ---- expiry sweep ---- */

/* Logs one alert the daemon has just raised. */
static void log_alert(const struct store_new_alert *al)
{
	enum log_level level =
	    strcmp(al->severity, "critical") == 0 ? LOG_LVL_ERR : LOG_LVL_WARNING;
	log_fields(level, "alert_raised", LOG_INT("alert_id", al->alert_id),
	           LOG_STR("kind", al->kind), LOG_STR("severity", al->severity),
	           LOG_STR("order_id", al->order_id),
	           LOG_STR("modification_id", al->modification_id), LOG_STR("msg", al->message));
}

/* Hands the pending captures past their deadline, made due by the sweep, to the engine:
 * it asks each one's transaction status before it records needs_attention. One line each
 * up to [alerts] summary_after, then one line with the count of the rest. */
static void hand_expired_captures(struct alerts *a, const struct store_sweep_result *r)
{
	if (r->ncaptures == 0)
		return;
	size_t each = (size_t)alerts_config(a)->summary_after;
	for (size_t i = 0; i < r->ncaptures && i < each; i++) {
		const struct store_expired_capture *c = &r->captures[i];
		log_fields(LOG_LVL_NOTICE, "capture_deadline_passed",
		           LOG_STR("modification_id", c->modification_id),
		           LOG_STR("order_id", c->order_id),
		           LOG_STR("transaction_id", c->transaction_id), LOG_STR("kind", "capture"),
		           LOG_STR("msg", "the transaction's status is asked before it goes to "
		                          "needs_attention"));
	}
	if (r->ncaptures > each) {
		log_fields(LOG_LVL_NOTICE, "captures_deadline_passed",
		           LOG_UINT("count", r->ncaptures - each), LOG_STR("kind", "capture"),
		           LOG_STR("msg", "the transaction's status is asked before they go to "
		                          "needs_attention"));
	}
	engine_want_due(a->engine);
}

/* Frees a list of order ids. */
static void free_ids(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* The next sweep reads the whole window. */
static void sweep_forget(struct alerts *a)
{
	free(a->sweep_since);
	a->sweep_since = NULL;
}

/* Remembers a notified order for the next sweep; NULL: orders not named changed, the
 * next sweep reads all. */
static void sweep_note_order(struct alerts *a, const char *order_id)
{
	if (a->changed_overflow)
		return;
	if (order_id == NULL || a->nchanged == SWEEP_IDS_MAX) {
		a->changed_overflow = true;
		free_ids(a->changed, a->nchanged);
		a->changed = NULL;
		a->nchanged = a->cap_changed = 0;
		return;
	}
	a->changed = xgrow(a->changed, &a->cap_changed, a->nchanged + 1, sizeof(*a->changed));
	a->changed[a->nchanged++] = xstrdup(order_id);
}

static void sweep_done(const struct store_sweep_result *r, const char *error, void *arg)
{
	struct alerts *a = arg;
	int64_t now = clock_mono_ms();
	a->sweeping = false;
	free_ids(a->swept_ids, a->nswept_ids);
	a->swept_ids = NULL;
	a->nswept_ids = 0;
	int64_t cost = now - a->sweep_started;
	int64_t gap = cost * SWEEP_COST_FACTOR > SWEEP_MIN_GAP_MS ? cost * SWEEP_COST_FACTOR
	                                                          : SWEEP_MIN_GAP_MS;
	a->sweep_allowed_at = now + gap;
	if (error) {
		alerts_db_error(a, "expiry_sweep_failed", error);
		sweep_forget(a);
		a->sweep_wanted = true;
		alerts_kick(a);
		return;
	}
	a->stats.sweeps++;
	free(a->sweep_since);
	a->sweep_since = r->db_now ? xstrdup(r->db_now) : NULL;
	hand_expired_captures(a, r);
	for (size_t i = 0; i < r->nalerts; i++)
		log_alert(&r->alerts[i]);
	a->stats.raised += r->nalerts + r->nsummarised;
	a->stats.summarised += r->nsummarised;
	a->stats.captures_expired += r->ncaptures;
	int64_t delay = SWEEP_SAFETY_MS;
	if (r->next_delay_ms >= 0 && r->next_delay_ms + TIMER_PAD_MS < delay)
		delay = r->next_delay_ms + TIMER_PAD_MS;
	a->sweep_at = now + delay;
	log_fields(LOG_LVL_DEBUG, "expiry_swept", LOG_UINT("new_alerts", r->nalerts),
	           LOG_UINT("captures_expired", r->ncaptures), LOG_INT("next_sweep_in_ms", delay),
	           LOG_INT("elapsed_ms", cost));
	alerts_kick(a);
}

/* Starts a sweep when one is wanted and the gap since the last one allows it. */
static void alerts_start_sweep(struct alerts *a, int64_t now)
{
	if (a->sweeping || !a->sweep_wanted || now < a->sweep_allowed_at)
		return;
	a->sweeping = true;
	a->sweep_wanted = false;
	a->sweep_at = 0;
	a->sweep_started = now;
	if (a->changed_overflow || now - a->sweep_full_at >= SWEEP_FULL_EVERY_MS)
		sweep_forget(a);
	if (a->sweep_since == NULL)
		a->sweep_full_at = now;
	/* the orders notified until now are read by this sweep */
	a->swept_ids = a->changed;
	a->nswept_ids = a->nchanged;
	a->changed = NULL;
	a->nchanged = a->cap_changed = 0;
	a->changed_overflow = false;
	struct store_sweep_since since = {.since = a->sweep_since,
	                                  .ids = (const char *const *)a->swept_ids,
	                                  .nids = a->nswept_ids};
	if (!store_sweep_expiry(a->st, alerts_config(a)->expired_lookback_ms, SWEEP_SAFETY_MS,
	                        &since, sweep_done, a)) {
		a->sweeping = false;
		a->sweep_wanted = true;
		/* not sent: what it would have read is read by the next one, whole */
		free_ids(a->swept_ids, a->nswept_ids);
		a->swept_ids = NULL;
		a->nswept_ids = 0;
		sweep_forget(a);
	}
}

/* ---- webhook ---- */

static void record_done(size_t affected, const char *error, void *arg);

/* Records the waiting delivery outcomes in one statement. */
static void alerts_flush_results(struct alerts *a)
{
	if (a->writing || a->nresults == 0)
		return;
	a->writing = a->results;
	a->nwriting = a->nresults;
	a->results = NULL;
	a->nresults = a->cap_results = 0;
	if (!store_webhook_record(a->st, a->writing, a->nwriting, record_done, a))
		record_done(0, "database connection lost", a);
}

static void record_done(size_t affected, const char *error, void *arg)
{
	struct alerts *a = arg;
	(void)affected;
	if (error) {
		/* keep them, in front of the newer ones, for the next try */
		if (strcmp(error, "database connection lost") != 0)
			alerts_db_error(a, "webhook_record_failed", error);
		size_t total = a->nwriting + a->nresults;
		a->writing = xreallocarray(a->writing, total, sizeof(*a->writing));
		if (a->nresults > 0)
			memcpy(a->writing + a->nwriting, a->results,
			       a->nresults * sizeof(*a->results));
		free(a->results);
		a->results = a->writing;
		a->nresults = a->cap_results = total;
		a->writing = NULL;
		a->nwriting = 0;
		alerts_kick(a);
		return;
	}
	int64_t now = clock_mono_ms();
	for (size_t i = 0; i < a->nwriting; i++) {
		struct store_webhook_result *r = &a->writing[i];
		if (!r->delivered) {
			int64_t at = now + r->retry_delay_ms + TIMER_PAD_MS;
			if (a->claim_at == 0 || at < a->claim_at)
				a->claim_at = at;
		}
		free(r->error);
	}
	free(a->writing);
	a->writing = NULL;
	a->nwriting = 0;
	alerts_kick(a);
}

/* Queues the outcome of one delivery attempt and logs it. `res` is NULL when the
 * request could not even be set up. */
static void webhook_outcome(struct alerts *a, int64_t alert_id, int attempts,
                            const struct http_result *res)
{
	const struct sp_config *cfg = alerts_config(a);
	struct store_webhook_result r = {.alert_id = alert_id};
	int status = res ? res->http_status : 0;
	if (status >= 200 && status < 300) {
		r.delivered = true;
		a->stats.webhook_delivered++;
		log_fields(LOG_LVL_INFO, "webhook_delivered", LOG_INT("alert_id", alert_id),
		           LOG_INT("http_status", status), LOG_INT("attempt", attempts + 1));
	} else {
		if (status > 0)
			r.error = xasprintf("http %d", status);
		else if (res == NULL)
			r.error = xstrdup("request setup failed");
		else if (res->timed_out)
			r.error = xstrdup("timeout");
		else
			r.error = text_storable_str(res->error ? res->error : "no answer", 2048);
		int64_t now = clock_real_ms();
		struct backoff_policy pol = {.base_ms = cfg->retry_base_ms,
		                             .max_ms = cfg->retry_max_ms,
		                             .max_attempts = INT_MAX,
		                             .deadline_margin_ms = 0};
		int64_t retry_after = classify_retry_after(res ? res->retry_after : NULL, now);
		int64_t next_at = now;
		if (backoff_next(&pol, attempts + 1, now, 0, retry_after, backoff_random(),
		                 &next_at, NULL) != BACKOFF_RETRY)
			next_at = now + cfg->retry_max_ms;
		r.retry_delay_ms = next_at - now;
		a->stats.webhook_failed++;
		char *url = alerts_redact_url(cfg->webhook_url);
		log_fields(LOG_LVL_WARNING, "webhook_failed", LOG_INT("alert_id", alert_id),
		           LOG_STR("url", url), LOG_INT("http_status", status),
		           LOG_STR("reason", r.error), LOG_INT("attempt", attempts + 1),
		           LOG_INT("retry_in_ms", r.retry_delay_ms));
		free(url);
	}
	a->results = xgrow(a->results, &a->cap_results, a->nresults + 1, sizeof(*a->results));
	a->results[a->nresults++] = r;
}

static void webhook_answered(const struct http_result *res, void *arg)
{
	struct delivery *d = arg;
	struct alerts *a = d->a;
	if (d->prev)
		d->prev->next = d->next;
	else
		a->flights = d->next;
	if (d->next)
		d->next->prev = d->prev;
	a->stats.webhook_inflight--;
	webhook_outcome(a, d->alert_id, d->attempts, res);
	free(d);
	alerts_kick(a);
}

/* POSTs one alert to the webhook. */
static void webhook_send(struct alerts *a, const struct store_webhook_alert *alert)
{
	char *body = alerts_webhook_body(alert);
	const char *headers[] = {"Content-Type: application/json", NULL};
	struct http_request req = {.method = "POST",
	                           .url = alerts_config(a)->webhook_url,
	                           .headers = headers,
	                           .body = body,
	                           .body_len = strlen(body)};
	struct delivery *d = xcalloc(1, sizeof(*d));
	d->a = a;
	d->alert_id = alert->alert_id;
	d->attempts = alert->attempts;
	bool ok = http_submit(a->http, &req, webhook_answered, d);
	free(body);
	if (!ok) {
		webhook_outcome(a, d->alert_id, d->attempts, NULL);
		free(d);
		return;
	}
	d->next = a->flights;
	if (a->flights)
		a->flights->prev = d;
	a->flights = d;
	a->stats.webhook_inflight++;
}

static void claim_done(const struct store_webhook_alert *rows, size_t n, int64_t next_delay_ms,
                       const char *error, void *arg)
{
	struct alerts *a = arg;
	a->claiming = false;
	if (error) {
		alerts_db_error(a, "webhook_claim_failed", error);
		a->claim_wanted = true;
		alerts_kick(a);
		return;
	}
	/* a reload may have removed the webhook meanwhile: the claims then lapse */
	for (size_t i = 0; i < n && webhook_enabled(a); i++)
		webhook_send(a, &rows[i]);
	int64_t now = clock_mono_ms();
	if (n > 0 && n == a->claim_limit)
		a->claim_wanted = true; /* a full batch: more may be due */
	if (next_delay_ms < 0)
		a->claim_at = 0;
	else if (next_delay_ms == 0 && n < a->claim_limit)
		a->claim_at = now + CLAIM_LOCKED_RETRY_MS; /* due, but locked by another daemon */
	else
		a->claim_at = now + next_delay_ms + TIMER_PAD_MS;
	alerts_kick(a);
}

/* Claims due alerts for delivery while there is room for more requests. */
static void alerts_start_claim(struct alerts *a)
{
	if (!webhook_enabled(a)) {
		a->claim_wanted = false;
		a->claim_at = 0;
		return;
	}
	int room = WEBHOOK_MAX_INFLIGHT - (int)a->stats.webhook_inflight;
	if (a->claiming || !a->claim_wanted || room <= 0)
		return;
	a->claiming = true;
	a->claim_wanted = false;
	a->claim_limit = (size_t)room;
	if (!store_webhook_claim(a->st, room, WEBHOOK_LEASE_MS, claim_done, a)) {
		a->claiming = false;
		a->claim_wanted = true;
	}
}

/* ---- the pump ---- */

/* Starts whatever is wanted and allowed now, then re-arms the timer. */
static void alerts_pump(struct alerts *a)
{
	int64_t now = clock_mono_ms();
	if (db_usable(a) && now >= a->retry_at) {
		alerts_start_sweep(a, now);
		alerts_start_claim(a);
		alerts_flush_results(a);
		alerts_insert_gateway(a);
	}
	alerts_arm_timer(a);
}

static void alerts_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	alerts_pump(arg);
}

static void alerts_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct alerts *a = arg;
	(void)fd;
	(void)what;
	int64_t now = clock_mono_ms();
	if (a->sweep_at && now >= a->sweep_at) {
		a->sweep_wanted = true;
		a->sweep_at = 0;
	}
	if (a->claim_at && now >= a->claim_at) {
		a->claim_wanted = true;
		a->claim_at = 0;
	}
	alerts_check_gateway(a);
	alerts_pump(a);
}

/* ---- the housekeeping connection and the engine's events ---- */

static void listen_done(size_t affected, const char *error, void *arg)
{
	struct alerts *a = arg;
	(void)affected;
	if (error)
		alerts_db_error(a, "alerts_listen_failed", error);
}

/* The statement that creates the index on `column` (quoted for the housekeeping
 * connection), or why it cannot be written. Malloc'd. */
static char *alerts_index_statement(struct alerts *a, const char *column)
{
	char *err = NULL;
	char *create = store_index_statement(pg_conn_pgconn(store_conn(a->st)),
	                                     alerts_config(a)->orders_relation, column, &err);
	return create ? create : err;
}

/* Logs one warning per needed index the orders relation lacks, with the statement that
 * creates it. */
static void indexes_done(const char *const *missing, size_t n, const char *error, void *arg)
{
	struct alerts *a = arg;
	if (error) {
		char *why = clean_error(error);
		log_fields(LOG_LVL_WARNING, "orders_index_check_failed", LOG_STR("reason", why));
		free(why);
		return;
	}
	a->indexes_checked = true;
	const char *relation = alerts_config(a)->orders_relation;
	for (size_t i = 0; i < n; i++) {
		char *create = alerts_index_statement(a, missing[i]);
		char *msg = xasprintf("no index on %s (%s): those queries read the whole table; "
		                      "the shop creates it with: %s",
		                      missing[i], store_index_used_by(missing[i]), create);
		log_fields(LOG_LVL_WARNING, "orders_index_missing", LOG_STR("relation", relation),
		           LOG_STR("column", missing[i]), LOG_STR("create", create),
		           LOG_STR("msg", msg));
		free(msg);
		free(create);
	}
}

/* Sweeps and delivers now: both the connection and the schema have become ready. */
static void alerts_start_work(struct alerts *a)
{
	a->retry_at = 0;
	a->sweep_allowed_at = 0;
	a->sweep_wanted = true;
	a->claim_wanted = true;
	alerts_kick(a);
}

static void on_conn_up(void *arg)
{
	struct alerts *a = arg;
	a->conn_up = true;
	/* orders notified while the connection was down were not heard */
	store_gauges_order_changed(a->st, NULL);
	sweep_forget(a);
	if (!store_listen_alerts(a->st, listen_done, a))
		log_fields(LOG_LVL_WARNING, "alerts_listen_failed",
		           LOG_STR("reason", "connection lost"));
	if (!a->indexes_checked && !store_check_indexes(a->st, indexes_done, a))
		log_fields(LOG_LVL_WARNING, "orders_index_check_failed",
		           LOG_STR("reason", "connection lost"));
	if (a->engine_ready)
		alerts_start_work(a);
}

static void on_conn_down(void *arg, const char *why)
{
	struct alerts *a = arg;
	(void)why;
	a->conn_up = false;
	alerts_arm_timer(a);
}

static void on_notify(void *arg, const char *channel, const char *payload)
{
	struct alerts *a = arg;
	if (strcmp(channel, "smartpay_orders") == 0) {
		/* the gauges and the next sweep read this order again; an empty payload (a
		 * statement that changed many orders, sql/020): every order */
		bool many = payload == NULL || *payload == '\0';
		store_gauges_order_changed(a->st, many ? NULL : payload);
		sweep_note_order(a, many ? NULL : payload);
		alerts_poke(a);
	} else if (strcmp(channel, "smartpay_alerts") == 0 && webhook_enabled(a)) {
		a->claim_wanted = true;
		alerts_kick(a);
	}
}

static void on_db_ready(void *arg)
{
	struct alerts *a = arg;
	a->engine_ready = true;
	/* the orders relation's column types, as the engine's preparation learned them */
	store_share_relation(a->st, engine_store(a->engine));
	if (a->conn_up)
		alerts_start_work(a);
}

static void on_db_down(void *arg)
{
	struct alerts *a = arg;
	a->engine_ready = false;
	alerts_arm_timer(a);
}

static void on_gateway_failed(void *arg)
{
	struct alerts *a = arg;
	alerts_check_gateway(a);
	alerts_kick(a);
}

/* ---- life cycle ---- */

struct alerts *alerts_new(struct engine *engine)
{
	struct alerts *a = xcalloc(1, sizeof(*a));
	a->engine = engine;
	a->base = engine_base(engine);
	const struct sp_config *cfg = store_config(engine_store(engine));
	struct pg_conn_handlers h = {.up = on_conn_up, .down = on_conn_down, .notify = on_notify};
	a->pc = pg_conn_new(a->base, cfg->db_conninfo, &h, a);
	a->st = store_new(a->pc, cfg);
	struct http_options ho = {.timeout_ms = WEBHOOK_TIMEOUT_MS,
	                          .connect_timeout_ms = cfg->connect_timeout_ms,
	                          .max_host_connections = WEBHOOK_MAX_INFLIGHT,
	                          .user_agent = cfg->user_agent};
	a->http = http_client_new(a->base, &ho);
	if (a->http == NULL)
		log_fields(LOG_LVL_ERR, "webhook_disabled",
		           LOG_STR("reason", "the HTTP client could not be set up"));
	a->ev_timer = evtimer_new(a->base, alerts_timer_cb, a);
	a->ev_kick = event_new(a->base, -1, 0, alerts_kick_cb, a);
	struct engine_listener l = {.db_ready = on_db_ready,
	                            .db_down = on_db_down,
	                            .gateway_failed = on_gateway_failed,
	                            .arg = a};
	engine_set_listener(engine, &l);
	pg_conn_start(a->pc);
	return a;
}

void alerts_free(struct alerts *a)
{
	if (a == NULL)
		return;
	engine_set_listener(a->engine, NULL);
	/* aborts the transfers without their callbacks: their contexts are freed here */
	http_client_free(a->http);
	/* drops the queued statements without their callbacks */
	pg_conn_free(a->pc);
	store_free(a->st);
	while (a->flights) {
		struct delivery *d = a->flights;
		a->flights = d->next;
		free(d);
	}
	for (size_t i = 0; i < a->nresults; i++)
		free(a->results[i].error);
	free(a->results);
	for (size_t i = 0; i < a->nwriting; i++)
		free(a->writing[i].error);
	free(a->writing);
	free(a->gw_key);
	free(a->gw_message);
	free(a->gw_sent_key);
	free(a->gw_sent_message);
	free(a->sweep_since);
	free_ids(a->changed, a->nchanged);
	free_ids(a->swept_ids, a->nswept_ids);
	event_free(a->ev_timer);
	event_free(a->ev_kick);
	free(a);
}

void alerts_poke(struct alerts *a)
{
	a->sweep_wanted = true;
	alerts_kick(a);
}

void alerts_reload(struct alerts *a)
{
	store_set_config(a->st, store_config(engine_store(a->engine)));
	/* thresholds or validity may have changed: the next sweep reads the whole window */
	sweep_forget(a);
	a->sweep_wanted = true;
	a->sweep_allowed_at = 0;
	a->claim_wanted = true;
	/* a new limit applies to the running episode too */
	alerts_check_gateway(a);
	alerts_kick(a);
}

const struct alerts_stats *alerts_stats(const struct alerts *a)
{
	return &a->stats;
}

struct store *alerts_store(const struct alerts *a)
{
	return a ? a->st : NULL;
}
