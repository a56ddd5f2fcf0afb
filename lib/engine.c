#include "autoconfig.h"

#include "engine.h"

#include "backoff.h"
#include "config.h"
#include "http.h"
#include "intent.h"
#include "log.h"
#include "modification.h"
#include "pgconn.h"
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
/* Pause after credentials are rejected, doubled per failed probe up to retry_max. */
#define BREAKER_FIRST_PAUSE_MS 30000

/* One modification on the wire. */
struct flight {
	struct engine *e;
	struct store_claim claim; /* owned */
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
	struct http_client *http;

	/* what the next claim cycle should look at */
	bool scan_wanted;     /* the whole orders relation */
	bool due_wanted;      /* pending retries whose time has come */
	bool own_wanted;      /* this instance's rows from before a restart */
	bool requests_wanted; /* open refund / cancel_or_refund requests of the shop */
	char **ids;           /* order ids from notifications and finished captures */
	size_t nids, cap_ids;
	/* claimed rows waiting for room in the in-flight window, oldest first */
	struct store_claim *queue;
	size_t qhead, qlen, qcap;
	bool claiming;   /* one claim cycle at a time */
	bool preparing;  /* store_prepare under way */
	bool scanning;   /* the cycle reads the whole orders relation */
	size_t targeted; /* ids[0..targeted) were given to the running targeted claim */
	int claim_limit; /* rows asked for by the running cycle */
	bool prepared;

	/* outcomes waiting to be written, and the batch being written */
	struct store_outcome *out;
	size_t nout, cap_out;
	struct store_outcome *writing;
	size_t nwriting;

	struct event *ev_kick;  /* deferred pump */
	struct event *ev_timer; /* next poll, retry or breaker probe */
	struct event *ev_drain; /* drain deadline */
	int64_t next_poll_ms;
	int64_t next_retry_ms; /* 0: none scheduled */

	int64_t breaker_until_ms; /* 0: closed */
	int64_t breaker_pause_ms;
	bool probing;

	bool draining;
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

/* Wall-clock time in unix milliseconds. */
static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Asks for a pump on the next loop iteration, coalescing repeated requests. */
static void engine_kick(struct engine *e)
{
	if (!e->exited)
		event_active(e->ev_kick, EV_TIMEOUT, 0);
}

/* Leaves the loop when there is nothing more to do in --once or drain mode. */
static void engine_check_idle(struct engine *e)
{
	if (e->exited || !(e->once || e->draining))
		return;
	if (e->claiming || http_inflight(e->http) > 0 || e->qlen > 0 || e->nout > 0 || e->writing)
		return;
	if (e->once && !e->draining && e->prepared &&
	    (e->scan_wanted || e->due_wanted || e->own_wanted || e->requests_wanted || e->nids > 0))
		return;
	if (e->once && !e->prepared && e->problem == NULL)
		return;
	e->exited = true;
	if (e->hooks.idle_exit)
		e->hooks.idle_exit(e->hooks.arg);
}

/* ---- outcomes ---- */

/* Queues an outcome for the next batched write. Takes ownership of its strings. */
static void engine_record(struct engine *e, struct store_outcome *o)
{
	if (e->nout == e->cap_out) {
		e->cap_out = e->cap_out ? 2 * e->cap_out : 64;
		e->out = xrealloc(e->out, e->cap_out * sizeof(*e->out));
	}
	e->out[e->nout++] = *o;
	memset(o, 0, sizeof(*o));
	engine_flush(e);
}

/* Remembers an order id for a targeted look at the orders relation. */
static void engine_note_order(struct engine *e, const char *order_id)
{
	if (e->scan_wanted)
		return;
	if (e->nids >= MAX_NOTIFIED_IDS) {
		for (size_t i = 0; i < e->nids; i++)
			free(e->ids[i]);
		e->nids = 0;
		e->scan_wanted = true;
		return;
	}
	if (e->nids == e->cap_ids) {
		e->cap_ids = e->cap_ids ? 2 * e->cap_ids : 256;
		e->ids = xrealloc(e->ids, e->cap_ids * sizeof(char *));
	}
	e->ids[e->nids++] = xstrdup(order_id);
}

static void engine_written(char **fenced, size_t nfenced, const char *error, void *arg)
{
	struct engine *e = arg;
	if (error) {
		/* keep the batch: it is written again once the database is back */
		log_event(LOG_LVL_WARNING, "outcome_write_failed", "reason", error, NULL);
		size_t total = e->nwriting + e->nout;
		if (total > e->cap_out) {
			e->cap_out = total;
			e->out = xrealloc(e->out, e->cap_out * sizeof(*e->out));
		}
		memmove(e->out + e->nwriting, e->out, e->nout * sizeof(*e->out));
		memcpy(e->out, e->writing, e->nwriting * sizeof(*e->out));
		e->nout = total;
		free(e->writing);
		e->writing = NULL;
		e->nwriting = 0;
		return;
	}
	for (size_t i = 0; i < nfenced; i++) {
		e->stats.fenced++;
		log_event(LOG_LVL_WARNING, "outcome_fenced", "modification_id", fenced[i], "msg",
		          "the lease moved to another owner; its outcome wins", NULL);
	}
	for (size_t i = 0; i < e->nwriting; i++) {
		struct store_outcome *o = &e->writing[i];
		/* a finished capture may unblock a cancel of the same order */
		if (o->kind == MOD_CAPTURE && strcmp(o->state, "pending") != 0)
			engine_note_order(e, o->order_id);
		/* the transaction is free again: the next request for it may go */
		if (strcmp(o->state, "pending") != 0)
			e->requests_wanted = true;
		if (e->once && strcmp(o->state, "pending") == 0)
			e->left_undone++;
		store_outcome_clear(o);
	}
	free(e->writing);
	e->writing = NULL;
	e->nwriting = 0;
	if (e->once)
		e->scan_wanted = true; /* follow-ups (cancel after capture) are due now too */
	engine_flush(e);
	engine_kick(e);
}

/* Writes the queued outcomes when no write is under way (group commit). */
static void engine_flush(struct engine *e)
{
	if (e->writing || e->nout == 0 || !pg_conn_is_up(e->pc))
		return;
	e->writing = e->out;
	e->nwriting = e->nout;
	e->out = NULL;
	e->nout = e->cap_out = 0;
	if (!store_write_outcomes(e->st, e->writing, e->nwriting, engine_written, e))
		engine_written(NULL, 0, "database connection lost", e);
}

/* ---- sending ---- */

/* Log fields shared by every line about one modification. */
#define FLIGHT_IDS(c)                                                                              \
	"modification_id", (c)->modification_id, "order_id", (c)->order_id, "transaction_id",      \
	    (c)->transaction_id, "kind", mod_kind_name((c)->kind)

/* Opens the circuit breaker: credentials were rejected, so nobody's request can succeed. */
static void engine_pause_gateway(struct engine *e, bool *first)
{
	*first = e->breaker_until_ms == 0;
	if (e->breaker_pause_ms == 0)
		e->breaker_pause_ms = BREAKER_FIRST_PAUSE_MS;
	else if (e->probing)
		e->breaker_pause_ms = e->breaker_pause_ms * 2 > e->cfg->retry_max_ms
		                          ? e->cfg->retry_max_ms
		                          : e->breaker_pause_ms * 2;
	e->breaker_until_ms = now_ms() + e->breaker_pause_ms;
	e->probing = false;
	e->stats.gateway_paused = true;
	engine_release_queued(e);
	engine_arm_timer(e);
}

/* Closes the circuit breaker after an answer that was not a credentials rejection. */
static void engine_resume_gateway(struct engine *e)
{
	if (e->breaker_until_ms == 0 && !e->probing)
		return;
	e->breaker_until_ms = 0;
	e->breaker_pause_ms = 0;
	e->probing = false;
	e->stats.gateway_paused = false;
	e->due_wanted = true; /* the rows put back while paused */
	log_event(LOG_LVL_NOTICE, "gateway_resumed", "msg", "credentials accepted again", NULL);
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

/* One HTTP answer: decide the outcome (lib/outcome.c), act on what it means for the
 * daemon (breaker, retry timer), log it and queue it for the batched write. */
static void engine_on_answer(const struct http_result *res, void *arg)
{
	struct flight *f = arg;
	struct engine *e = f->e;
	struct store_claim *c = &f->claim;
	int64_t now = now_ms();
	engine_note_gateway(e, res, now);

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
	e->stats.results[c->kind][r]++;

	char status[16], attempt[16], elapsed[24], delay[24];
	snprintf(status, sizeof(status), "%d", res->http_status);
	snprintf(attempt, sizeof(attempt), "%d", c->attempts + 1);
	snprintf(elapsed, sizeof(elapsed), "%lld", (long long)(res->elapsed_us / 1000));
	switch (r) {
	case ER_SUCCEEDED:
		engine_resume_gateway(e);
		e->stats.succeeded++;
		log_event(LOG_LVL_INFO, "modification_succeeded", FLIGHT_IDS(c), "http_status",
		          status, "payment_status", o.payment_status, "attempt", attempt,
		          "elapsed_ms", elapsed, NULL);
		break;
	case ER_REFUSED:
		engine_resume_gateway(e);
		e->stats.refused++;
		log_event(LOG_LVL_WARNING, "modification_refused", FLIGHT_IDS(c), "http_status",
		          status, "reason", o.reason, NULL);
		break;
	case ER_AUTH_REJECTED: {
		/* not this order's fault: sending pauses for everyone, one alert per episode */
		bool first;
		engine_pause_gateway(e, &first);
		if (first) {
			o.alert_kind = "credentials_rejected";
			o.alert_severity = "critical";
		}
		e->stats.auth_rejected++;
		log_event(
		    first ? LOG_LVL_ERR : LOG_LVL_WARNING, "credentials_rejected", FLIGHT_IDS(c),
		    "http_status", status, "msg",
		    "SmartPay rejected the merchant key or authentication key; sending paused",
		    NULL);
		break;
	}
	case ER_NEEDS_ATTENTION:
		engine_resume_gateway(e);
		e->stats.needs_attention++;
		log_event(LOG_LVL_ERR, "modification_needs_attention", FLIGHT_IDS(c), "reason",
		          o.reason, NULL);
		break;
	default:
		engine_resume_gateway(e);
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
	e->stats.inflight = (unsigned)http_inflight(e->http);
	engine_record(e, &o);
	engine_send_queued(e);
	engine_kick(e);
}

/* Gives up on a capture whose authorization deadline passed while it was pending. */
static void engine_expire(struct engine *e, struct store_claim *c)
{
	struct store_outcome o;
	outcome_expired(c, &o);
	e->stats.needs_attention++;
	e->stats.results[c->kind][ER_NEEDS_ATTENTION]++;
	log_event(LOG_LVL_ERR, "modification_needs_attention", FLIGHT_IDS(c), "reason", o.reason,
	          NULL);
	engine_record(e, &o);
}

/* Sends one leased modification: the stored body, byte for byte. Takes the claim's strings. */
static void engine_send(struct engine *e, struct store_claim *claim)
{
	if (claim->kind == MOD_CAPTURE && claim->deadline_passed) {
		engine_expire(e, claim);
		store_claim_clear(claim);
		return;
	}
	struct flight *f = xcalloc(1, sizeof(*f));
	f->e = e;
	f->claim = *claim;
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

/* Sends queued rows while the in-flight window has room and sending is allowed. */
static void engine_send_queued(struct engine *e)
{
	/* while paused only the probe (the one row claimed for it) may go */
	while (e->qlen > 0 && !e->draining && (e->breaker_until_ms == 0 || e->probing) &&
	       (int)http_inflight(e->http) < e->cfg->max_inflight) {
		struct store_claim *c = &e->queue[e->qhead++];
		e->qlen--;
		engine_send(e, c);
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
			e->queue = xrealloc(e->queue, e->qcap * sizeof(*e->queue));
		}
	}
	if (n > 0)
		memcpy(e->queue + e->qhead + e->qlen, rows, n * sizeof(*rows));
	e->qlen += n;
	free(rows);
	engine_send_queued(e);
}

/* Gives the leases of queued, unsent rows back (drain, paused gateway): they stay
 * pending, due now, for whoever claims them next, with the same id and body. */
static void engine_release_queued(struct engine *e)
{
	while (e->qlen > 0) {
		struct store_claim *c = &e->queue[e->qhead++];
		e->qlen--;
		struct store_outcome o;
		memset(&o, 0, sizeof(o));
		o.modification_id = c->modification_id;
		o.order_id = c->order_id;
		o.kind = c->kind;
		o.generation = c->generation;
		o.state = "pending";
		o.reason = xstrdup("released unsent");
		c->modification_id = c->order_id = NULL;
		store_claim_clear(c);
		engine_record(e, &o);
	}
	e->qhead = 0;
}

/* ---- claiming ---- */

/* How many more modifications to claim now: a batch beyond what the window holds. */
static int engine_room(const struct engine *e)
{
	if (e->probing)
		return 0;
	if (e->breaker_until_ms != 0)
		return now_ms() >= e->breaker_until_ms && e->qlen == 0 ? 1 : 0;
	int room = e->cfg->batch_size - (int)e->qlen;
	return room < 0 ? 0 : room;
}

/* Ends a claim cycle that failed; the poll (or, with --once, the exit status) takes over. */
static void engine_claim_failed(struct engine *e, const char *error)
{
	log_event(LOG_LVL_WARNING, "claim_failed", "reason", error, NULL);
	e->claiming = false;
	e->probing = false;
	if (e->once) {
		free(e->problem);
		e->problem = xstrdup(error);
		e->scan_wanted = e->due_wanted = e->own_wanted = e->requests_wanted = false;
		engine_check_idle(e);
	}
}

/* Ends a claim cycle and looks for more work. */
static void engine_claim_end(struct engine *e)
{
	e->claiming = false;
	engine_kick(e);
	engine_check_idle(e);
}

static void engine_on_due(struct store_claim *rows, size_t n, const char *error, void *arg)
{
	struct engine *e = arg;
	if (error) {
		engine_claim_failed(e, error);
		return;
	}
	if (e->probing && n == 0) {
		/* nothing to probe with: the next real request tests the credentials */
		e->probing = false;
		e->breaker_until_ms = 0;
		e->stats.gateway_paused = false;
	}
	if ((int)n == e->claim_limit)
		e->due_wanted = true; /* a full batch: more may be due */
	if (n > 0) {
		char count[24];
		snprintf(count, sizeof(count), "%zu", n);
		log_event(LOG_LVL_INFO, "retries_claimed", "count", count, NULL);
	}
	engine_send_all(e, rows, n);
	engine_claim_end(e);
}

static void engine_on_inserted(struct store_claim *rows, size_t n, const char *error, void *arg)
{
	struct engine *e = arg;
	if (error) {
		/* nothing was recorded, so nothing is sent; the orders are looked at again */
		engine_claim_failed(e, error);
		e->scan_wanted = !e->once;
		return;
	}
	engine_send_all(e, rows, n);
	engine_claim_end(e);
}

/* Records intents (local refusals included) in one statement; what comes back is sent.
 * Frees the intents' bodies and reasons and both arrays. */
static void engine_insert_intents(struct engine *e, struct store_intent *intents, char **reasons,
                                  size_t n)
{
	if (!store_insert_intents(e->st, intents, n, engine_on_inserted, e))
		engine_claim_failed(e, "database connection lost");
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

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
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

static void engine_on_candidates(struct store_candidate *rows, size_t n, const char *error,
                                 void *arg)
{
	struct engine *e = arg;
	if (error) {
		e->targeted = 0;
		engine_claim_failed(e, error);
		e->scan_wanted = !e->once;
		return;
	}
	if (e->scanning && (int)n == e->claim_limit)
		e->scan_wanted = true; /* a full page: more orders are waiting */
	if (e->targeted)
		engine_forget_ids(e, rows, n);
	if (n == 0) {
		store_candidates_free(rows, n);
		engine_claim_end(e);
		return;
	}
	struct store_intent *intents = xcalloc(n, sizeof(*intents));
	char **reasons = xcalloc(n, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		char id[37];
		uuid_v4(id);
		intent_from_order(e->cfg->merchant_key, id, &rows[i], &intents[i], &reasons[i]);
		engine_note_refusal(e, "order_refused", &intents[i]);
	}
	engine_insert_intents(e, intents, reasons, n);
	store_candidates_free(rows, n);
}

static void engine_on_requests(struct store_request *rows, size_t n, const char *error, void *arg)
{
	struct engine *e = arg;
	if (error) {
		engine_claim_failed(e, error);
		e->requests_wanted = !e->once;
		return;
	}
	if ((int)n == e->claim_limit)
		e->requests_wanted = true;
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

/* Starts one claim cycle when there is room and a reason to look for work. */
static void engine_pump(struct engine *e)
{
	if (e->claiming || e->draining || e->exited || !e->prepared || !pg_conn_is_up(e->pc))
		goto out;
	int room = engine_room(e);
	if (room <= 0)
		goto out;
	/* claim in batches: once half the queue has gone out, or when idle */
	if ((int)e->qlen > e->cfg->batch_size / 2 && http_inflight(e->http) > 0)
		goto out;
	e->claim_limit = room;
	e->scanning = false;
	if (e->breaker_until_ms != 0) {
		/* half-open: one due row goes out as a probe */
		e->probing = true;
		e->claiming = true;
		e->claim_limit = 1;
		if (!store_claim_due(e->st, 1, false, engine_on_due, e))
			e->claiming = e->probing = false;
		goto out;
	}
	if (e->own_wanted || e->due_wanted) {
		bool own = e->own_wanted;
		e->own_wanted = e->due_wanted = false;
		e->claiming = true;
		if (!store_claim_due(e->st, room, own, engine_on_due, e)) {
			e->claiming = false;
			e->due_wanted = true;
			e->own_wanted = own;
		}
		goto out;
	}
	if (e->requests_wanted) {
		e->requests_wanted = false;
		e->claiming = true;
		if (!store_find_requests(e->st, room, engine_on_requests, e)) {
			e->claiming = false;
			e->requests_wanted = true;
		}
		goto out;
	}
	if (e->nids > 0 && !e->scan_wanted) {
		/* the notified orders compete: the earliest deadlines win the room */
		size_t give = e->nids < TARGETED_MAX_IDS ? e->nids : TARGETED_MAX_IDS;
		e->claiming = true;
		e->targeted = give;
		if (!store_find_candidates(e->st, (const char *const *)e->ids, give, room,
		                           engine_on_candidates, e)) {
			e->claiming = false;
			e->targeted = 0;
		}
		goto out;
	}
	if (e->scan_wanted) {
		e->scan_wanted = false;
		for (size_t i = 0; i < e->nids; i++)
			free(e->ids[i]);
		e->nids = 0;
		e->claiming = true;
		e->scanning = true;
		if (!store_find_candidates(e->st, NULL, 0, room, engine_on_candidates, e)) {
			e->claiming = false;
			e->scan_wanted = true;
		}
		goto out;
	}
out:
	engine_check_idle(e);
}

static void engine_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	engine_pump(arg);
}

/* ---- timers ---- */

/* Arms the one timer for the earliest of: next poll, next retry, breaker probe. */
static void engine_arm_timer(struct engine *e)
{
	if (e->once || e->exited)
		return;
	int64_t at = e->next_poll_ms;
	if (e->next_retry_ms && e->next_retry_ms < at)
		at = e->next_retry_ms;
	if (e->breaker_until_ms && e->breaker_until_ms < at)
		at = e->breaker_until_ms;
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
		/* the fallback for lost notifications and other daemons' expired leases */
		e->scan_wanted = true;
		e->due_wanted = true;
		e->requests_wanted = true;
		e->next_poll_ms = now + e->cfg->poll_interval_ms;
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
	e->scan_wanted = true;
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

static void engine_db_notify(void *arg, const char *channel, const char *payload)
{
	struct engine *e = arg;
	if (strcmp(channel, "smartpay_orders") == 0 && payload && *payload) {
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
	struct http_options ho = {.ca_file = cfg->ca_file && *cfg->ca_file ? cfg->ca_file : NULL,
	                          .timeout_ms = cfg->timeout_ms,
	                          .connect_timeout_ms = cfg->connect_timeout_ms,
	                          .max_host_connections = cfg->max_inflight,
	                          .user_agent = cfg->user_agent};
	e->http = http_client_new(base, &ho);
	e->ev_kick = event_new(base, -1, 0, engine_kick_cb, e);
	e->ev_timer = evtimer_new(base, engine_timer_cb, e);
	e->ev_drain = evtimer_new(base, engine_drain_cb, e);
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
	free(e->secret);
	e->secret = xstrdup(secret);
	/* new credentials deserve a probe now rather than after the pause */
	if (e->breaker_until_ms != 0)
		e->breaker_until_ms = now_ms();
	e->next_poll_ms = now_ms() + cfg->poll_interval_ms;
	e->scan_wanted = true;
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

void engine_free(struct engine *e)
{
	if (e == NULL)
		return;
	http_client_free(e->http);
	pg_conn_free(e->pc);
	store_free(e->st);
	for (size_t i = 0; i < e->nout; i++)
		store_outcome_clear(&e->out[i]);
	free(e->out);
	for (size_t i = 0; i < e->nwriting; i++)
		store_outcome_clear(&e->writing[i]);
	free(e->writing);
	for (size_t i = 0; i < e->nids; i++)
		free(e->ids[i]);
	free(e->ids);
	for (size_t i = 0; i < e->qlen; i++)
		store_claim_clear(&e->queue[e->qhead + i]);
	free(e->queue);
	event_free(e->ev_kick);
	event_free(e->ev_timer);
	event_free(e->ev_drain);
	if (e->secret) {
		explicit_bzero(e->secret, strlen(e->secret));
		free(e->secret);
	}
	free(e->problem);
	free(e);
}
