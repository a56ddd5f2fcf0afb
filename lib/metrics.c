#include "autoconfig.h"

#include "metrics.h"
#include "reconciler.h"
#include "status_call.h"

#include "clock.h"
#include "config.h"
#include "duration.h"
#include "engine.h"
#include "log.h"
#include "modification.h"
#include "store.h"
#include "store_alerts.h"
#include "store_metrics.h"
#include "xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

/* How long a scrape waits for the first read of the database gauges (later scrapes
 * never wait: they get the last reading). */
#define GAUGES_WAIT_MS 2000
/* Before the first successful read, one is tried at least this often. */
#define GAUGES_FIRST_RETRY_MS 200
/* The request line and headers together; a request body is read and discarded. */
#define MAX_HEAD_BYTES 8192
#define MAX_BODY_BYTES 4096
/* After accept() fails (EMFILE, ENFILE, ENOBUFS...), the listener rests this long
 * instead of being called again at once for the same pending connection. */
#define ACCEPT_PAUSE_MS 1000
/* Descriptors kept free below RLIMIT_NOFILE beside [daemon] max_inflight: the database
 * connections, the webhook, name resolution, the log, curl's spares. */
#define FD_RESERVE_MARGIN 32
/* At most one log line of each kind of listener trouble in this many milliseconds. */
#define LOG_EVERY_MS 10000
#define LISTEN_BACKLOG 128

#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TYPE_TEXT "text/plain; charset=utf-8"

/* A kind of log line written at most once per LOG_EVERY_MS, with a count of the rest. */
struct ratelog {
	bool logged;     /* a line was written */
	int64_t last_ms; /* when (monotonic) */
	uint64_t held;   /* occurrences since then that were not logged */
};

enum conn_state {
	CONN_READING, /* the request line, the headers, a small body */
	CONN_WAITING, /* a /metrics answer waits for the database gauges */
	CONN_WRITING, /* the answer is going out */
	CONN_CLOSING, /* sent and shut down for writing: waits for the client to close */
};

/* One accepted connection: one request, one answer, then closed; never longer than
 * [metrics] request_timeout from accept. */
struct conn {
	struct metrics *m;
	struct bufferevent *bev; /* owns the socket */
	struct event *ev_deadline;
	enum conn_state state;
	size_t head_bytes;      /* request line and headers read so far */
	bool have_line;         /* the request line was read */
	bool head_done;         /* the empty line after the headers was read */
	int64_t content_length; /* -1: none given */
	int64_t body_left;      /* body bytes still to read and discard */
	char method[16];
	char *path; /* the request target without its query (malloc'd) */
	TAILQ_ENTRY(conn) link;
};

TAILQ_HEAD(conn_list, conn);

struct metrics {
	struct event_base *base;
	const struct engine *engine;
	struct evconnlistener *listener;
	struct event *ev_resume; /* enables the listener again after an accept error */
	char *listen;
	int64_t started_ms; /* unix ms */

	struct conn_list conns; /* every open connection */
	size_t nconns;
	uint64_t refused_limit; /* connections closed at once: max_connections reached */
	uint64_t refused_fds;   /* connections closed at once: descriptors in reserve */
	uint64_t accept_errors; /* accept() failures, each followed by a pause */
	uint64_t timed_out;     /* connections closed at request_timeout */
	struct ratelog log_limit, log_fds, log_accept, log_timeout;

	struct store *gauges_st;    /* the housekeeping connection's store, NULL: no gauges */
	struct event *ev_refresh;   /* the next background read */
	struct store_gauges gauges; /* the last successful read */
	bool have_gauges;
	int64_t gauges_at_mono_ms;     /* when it was asked for (monotonic) */
	int64_t gauges_at_ms;          /* when it was asked for (unix) */
	int64_t read_mono_ms, read_ms; /* when the read under way was asked for */
	bool reading;
	bool read_failing; /* the last read failed (logged once per streak) */

	size_t nwaiting;       /* connections in CONN_WAITING */
	struct event *ev_wait; /* stops waiting after GAUGES_WAIT_MS */

	const struct reconciler *reconciler; /* NULL: no reconcile metrics */
	const struct status_client *status;  /* NULL: no status call metrics */
};

/* A libevent timeout of `ms` milliseconds. */
static struct timeval tv_from_ms(int64_t ms)
{
	return (struct timeval){.tv_sec = (time_t)(ms / 1000),
	                        .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

/* Writes a non-negative quantity of microseconds as seconds without trailing zeros. */
static void put_seconds_us(struct evbuffer *out, uint64_t us)
{
	char frac[8];
	snprintf(frac, sizeof(frac), "%06llu", (unsigned long long)(us % 1000000));
	size_t n = strlen(frac);
	while (n > 0 && frac[n - 1] == '0')
		frac[--n] = '\0';
	evbuffer_add_printf(out, "%llu%s%s", (unsigned long long)(us / 1000000), n ? "." : "",
	                    frac);
}

/* Writes a label value with the escapes of the text format (\\, \" and \n). */
static void put_label_value(struct evbuffer *out, const char *v)
{
	for (const char *p = v; *p; p++) {
		if (*p == '\\')
			evbuffer_add(out, "\\\\", 2);
		else if (*p == '"')
			evbuffer_add(out, "\\\"", 2);
		else if (*p == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, p, 1);
	}
}

/* Writes the HELP and TYPE lines of one metric family. */
static void put_family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Writes a family of one unlabelled sample: its HELP and TYPE lines and the value. */
static void put_single(struct evbuffer *out, const char *name, const char *type, const char *help,
                       uint64_t v)
{
	put_family(out, name, type, help);
	evbuffer_add_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

/* Writes a family of one unlabelled sample in seconds, from milliseconds ("12.345"). */
static void put_single_ms(struct evbuffer *out, const char *name, const char *type,
                          const char *help, int64_t ms)
{
	put_family(out, name, type, help);
	evbuffer_add_printf(out, "%s %lld.%03lld\n", name, (long long)(ms / 1000),
	                    (long long)(ms % 1000));
}

/* The gateway counts as up unless requests have gone without any HTTP answer for longer
 * than [alerts] gateway_unreachable. Before the first request, and while idle, it is up:
 * nothing says otherwise. */
static bool gateway_up(const struct engine_stats *st, const struct sp_config *cfg, int64_t now)
{
	if (st->gateway_failing_since_ms == 0)
		return true;
	return now - st->gateway_failing_since_ms < cfg->gateway_unreachable_ms;
}

/* The counters and gauges the engine keeps in memory. */
static void render_engine(struct metrics *m, struct evbuffer *out)
{
	const struct engine_stats *st = engine_stats(m->engine);
	const struct sp_config *cfg = store_config(engine_store(m->engine));
	int64_t now = clock_real_ms();

	put_family(out, "smartpayd_build_info", "gauge",
	           "Version and instance name of the running daemon (always 1).");
	evbuffer_add_printf(out, "smartpayd_build_info{version=\"%s\",instance=\"",
	                    PACKAGE_VERSION);
	put_label_value(out, cfg->instance_name);
	evbuffer_add_printf(out, "\"} 1\n");

	put_single_ms(out, "smartpayd_start_time_seconds", "gauge",
	              "Time the daemon started, in seconds since the epoch.", m->started_ms);

	put_family(out, "smartpayd_modification_results_total", "counter",
	           "Results of modification attempts by kind (each retry counts once; "
	           "refused_locally counts order rows refused before sending).");
	for (int k = MOD_CAPTURE; k <= MOD_REFUND; k++)
		for (int r = 0; r < OUTCOME_RESULT_COUNT; r++)
			evbuffer_add_printf(out,
			                    "smartpayd_modification_results_total{kind=\"%s\","
			                    "result=\"%s\"} %llu\n",
			                    mod_kind_name((enum mod_kind)k),
			                    outcome_result_name((enum outcome_result)r),
			                    (unsigned long long)st->results[k][r]);

	put_single(out, "smartpayd_gateway_requests_total", "counter",
	           "Modification requests sent to SmartPay, retries included.", st->sent);
	put_single(out, "smartpayd_retries_total", "counter",
	           "Attempts whose outcome was unknown and that were scheduled again.",
	           st->retries);
	put_single(out, "smartpayd_outcomes_fenced_total", "counter",
	           "Outcomes dropped because another daemon had taken over the lease.", st->fenced);
	put_single(out, "smartpayd_requests_in_flight", "gauge",
	           "Requests to SmartPay waiting for an answer.", st->inflight);

	put_family(out, "smartpayd_gateway_latency_seconds", "histogram",
	           "Time from sending a request to SmartPay's HTTP answer.");
	uint64_t cumulative = 0;
	for (int b = 0; b < ENGINE_LATENCY_BUCKETS; b++) {
		cumulative += st->latency_buckets[b];
		evbuffer_add_printf(out, "smartpayd_gateway_latency_seconds_bucket{le=\"");
		put_seconds_us(out, (uint64_t)engine_latency_bounds_us[b]);
		evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)cumulative);
	}
	cumulative += st->latency_buckets[ENGINE_LATENCY_BUCKETS];
	evbuffer_add_printf(out, "smartpayd_gateway_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
	                    (unsigned long long)cumulative);
	evbuffer_add_printf(out, "smartpayd_gateway_latency_seconds_sum ");
	put_seconds_us(out, st->latency_sum_us);
	evbuffer_add_printf(out, "\nsmartpayd_gateway_latency_seconds_count %llu\n",
	                    (unsigned long long)st->latency_count);

	put_single_ms(out, "smartpayd_gateway_last_answer_timestamp_seconds", "gauge",
	              "Time of SmartPay's last HTTP answer of any status (0: none yet).",
	              st->gateway_last_answer_ms);
	put_single(out, "smartpayd_gateway_up", "gauge",
	           "0 when requests have gone without any HTTP answer from SmartPay for longer "
	           "than [alerts] gateway_unreachable, else 1.",
	           gateway_up(st, cfg, now) ? 1 : 0);
	put_single(out, "smartpayd_credentials_paused", "gauge",
	           "1 while sending is paused because SmartPay rejected the credentials (401).",
	           st->gateway_paused ? 1 : 0);
	put_single(out, "smartpayd_database_up", "gauge", "1 while the database connection is up.",
	           st->db_up ? 1 : 0);
}

/* The gauges read from the database, from the last successful read (absent before one). */
static void render_gauges(struct metrics *m, struct evbuffer *out)
{
	if (!m->have_gauges)
		return;
	const struct store_gauges *g = &m->gauges;
	put_family(out, "smartpayd_pending_modifications", "gauge",
	           "Pending modifications by age since their intent was recorded.");
	for (int b = 0; b < STORE_PENDING_AGE_BUCKETS; b++)
		evbuffer_add_printf(out, "smartpayd_pending_modifications{age=\"%s\"} %llu\n",
		                    store_pending_age_names[b], (unsigned long long)g->pending[b]);
	put_single_ms(out, "smartpayd_oldest_pending_modification_age_seconds", "gauge",
	              "Age of the oldest pending modification (0: none).",
	              g->oldest_pending_age_ms);
	put_family(out, "smartpayd_authorizations_expiring", "gauge",
	           "Open authorizations (no succeeded capture or cancel) whose deadline is within "
	           "each [alerts] expiry threshold and not passed.");
	for (size_t i = 0; i < g->nthresholds; i++) {
		char label[DURATION_TEXT_SIZE];
		duration_format(g->thresholds_ms[i], DURATION_EXACT_HOURS, label);
		evbuffer_add_printf(out, "smartpayd_authorizations_expiring{within=\"%s\"} %llu\n",
		                    label, (unsigned long long)g->expiring[i]);
	}
	put_family(out, "smartpayd_alerts_open", "gauge",
	           "Alerts not yet acknowledged, by kind (kinds with none are absent).");
	for (size_t i = 0; i < g->nalerts; i++) {
		evbuffer_add_printf(out, "smartpayd_alerts_open{kind=\"");
		put_label_value(out, g->alerts[i].kind);
		evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)g->alerts[i].count);
	}
	put_single_ms(out, "smartpayd_database_gauges_timestamp_seconds", "gauge",
	              "Time the database read the gauges above come from was made.",
	              m->gauges_at_ms);
	put_single_ms(out, "smartpayd_database_gauges_age_seconds", "gauge",
	              "Age of the database read the gauges above come from.",
	              clock_mono_ms() - m->gauges_at_mono_ms);
}

/* The listener's own counters: what it refused and closed to protect the daemon. */
static void render_listener(struct metrics *m, struct evbuffer *out)
{
	put_single(out, "smartpayd_metrics_connections_open", "gauge",
	           "Connections open to this metrics listener.", m->nconns);
	put_family(out, "smartpayd_metrics_connections_refused_total", "counter",
	           "Connections to this listener closed at once: [metrics] max_connections "
	           "reached, or the file descriptors left are kept for the database and SmartPay.");
	evbuffer_add_printf(
	    out,
	    "smartpayd_metrics_connections_refused_total{reason=\"max_connections\"} "
	    "%llu\n"
	    "smartpayd_metrics_connections_refused_total{reason=\"fd_reserve\"} %llu\n",
	    (unsigned long long)m->refused_limit, (unsigned long long)m->refused_fds);
	put_single(out, "smartpayd_metrics_accept_errors_total", "counter",
	           "Failures of accept() on this listener (e.g. out of file descriptors), each "
	           "followed by a pause.",
	           m->accept_errors);
	put_single(out, "smartpayd_metrics_requests_timed_out_total", "counter",
	           "Connections closed because their request and answer took longer than "
	           "[metrics] request_timeout.",
	           m->timed_out);
}

/* ---- log lines about the listener, rate-limited ------------------------------------- */

/* Counts one occurrence; true when a line may be written now, with *held the number of
 * occurrences not logged since the previous line. */
static bool ratelog_take(struct ratelog *r, uint64_t *held)
{
	int64_t now = clock_mono_ms();
	if (r->logged && now - r->last_ms < LOG_EVERY_MS) {
		r->held++;
		return false;
	}
	*held = r->held;
	r->held = 0;
	r->logged = true;
	r->last_ms = now;
	return true;
}

/* Logs a kind of listener trouble: at most one line per LOG_EVERY_MS, saying how many
 * occurrences were left out since the previous line. */
static void log_trouble(struct metrics *m, struct ratelog *r, const char *event, const char *reason)
{
	uint64_t held = 0;
	if (!ratelog_take(r, &held))
		return;
	log_fields(LOG_LVL_WARNING, event, LOG_STR("listen", m->listen), LOG_STR("reason", reason),
	           LOG_UINT("suppressed", held));
}

/* ---- one connection: read one small request, answer it, close ----------------------- */

/* The reason phrase of the statuses this listener answers with. */
static const char *status_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Content Too Large";
	case 431:
		return "Request Header Fields Too Large";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Error";
	}
}

/* Closes the connection and forgets it. */
static void conn_free(struct conn *c)
{
	struct metrics *m = c->m;
	if (c->state == CONN_WAITING)
		m->nwaiting--;
	TAILQ_REMOVE(&m->conns, c, link);
	m->nconns--;
	bufferevent_free(c->bev);
	event_free(c->ev_deadline);
	free(c->path);
	free(c);
}

/* End of file or an error from the client's side: nothing more to do for it. */
static void conn_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_free(arg);
}

/* Throws away whatever the client still sends after the answer. */
static void conn_discard(struct bufferevent *bev, void *arg)
{
	(void)arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	evbuffer_drain(in, evbuffer_get_length(in));
}

/* The answer is out: shut down our side and close when the client closes (or at the
 * deadline), so that unread request bytes cannot turn the close into a reset that
 * loses the answer. */
static void conn_written(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	c->state = CONN_CLOSING;
	shutdown(bufferevent_getfd(bev), SHUT_WR);
	bufferevent_setcb(bev, conn_discard, NULL, conn_event, c);
	bufferevent_enable(bev, EV_READ);
}

/* The whole-request deadline: the connection is closed whatever it is doing. */
static void conn_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	struct metrics *m = c->m;
	if (c->state != CONN_CLOSING) {
		m->timed_out++;
		log_trouble(m, &m->log_timeout, "metrics_request_timeout",
		            "request not completed within [metrics] request_timeout; closed");
	}
	conn_free(c);
}

/* Queues the whole answer (the body left out for HEAD); the connection closes once it
 * is sent. `allow` adds an Allow header when not NULL. */
static void conn_answer(struct conn *c, int status, const char *content_type, struct evbuffer *body,
                        const char *allow)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	evbuffer_add_printf(out,
	                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	                    "Cache-Control: no-store\r\nConnection: close\r\n",
	                    status, status_reason(status), content_type, evbuffer_get_length(body));
	if (allow != NULL)
		evbuffer_add_printf(out, "Allow: %s\r\n", allow);
	evbuffer_add(out, "\r\n", 2);
	if (strcmp(c->method, "HEAD") != 0)
		evbuffer_add_buffer(out, body);
	if (c->state == CONN_WAITING)
		c->m->nwaiting--;
	c->state = CONN_WRITING;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setcb(c->bev, conn_discard, conn_written, conn_event, c);
	bufferevent_enable(c->bev, EV_WRITE);
}

/* Answers with a short plain-text body. */
static void conn_answer_text(struct conn *c, int status, const char *text, const char *allow)
{
	struct evbuffer *body = evbuffer_new();
	evbuffer_add_printf(body, "%s\n", text);
	conn_answer(c, status, CONTENT_TYPE_TEXT, body, allow);
	evbuffer_free(body);
}

/* Answers a scrape with everything known now. */
/* The reconciliation's counters: status calls, drift, passes. */
static void render_reconcile(struct metrics *m, struct evbuffer *out)
{
	if (m->status != NULL) {
		const struct status_stats *ss = status_client_stats(m->status);
		put_family(out, "smartpayd_status_calls_total", "counter",
		           "Get Payment Status calls by result (only ok decides anything).");
		for (int r = 0; r < STATUS_RESULT_COUNT; r++)
			evbuffer_add_printf(out,
			                    "smartpayd_status_calls_total{result=\"%s\"} %llu\n",
			                    status_result_name((enum status_result)r),
			                    (unsigned long long)ss->calls[r]);
		put_single(out, "smartpayd_status_calls_queued", "gauge",
		           "Status calls waiting for the [reconcile] requests_per_second cap.",
		           ss->queued);
	}
	if (m->reconciler == NULL)
		return;
	const struct reconciler_stats *rs = reconciler_stats(m->reconciler);
	put_family(out, "smartpayd_reconcile_drift_total", "counter",
	           "Differences between the ledger and SmartPay found by the reconcile pass.");
	for (int d = RC_DRIFT_EXTERNAL; d <= RC_DRIFT_AUTH_ENDED; d++)
		evbuffer_add_printf(out, "smartpayd_reconcile_drift_total{kind=\"%s\"} %llu\n",
		                    reconcile_drift_name((enum rc_drift)d),
		                    (unsigned long long)rs->drift[d]);
	put_single(out, "smartpayd_reconcile_passes_total", "counter", "Complete reconcile passes.",
	           rs->passes);
	put_single(out, "smartpayd_reconcile_transactions_total", "counter",
	           "Transactions compared with SmartPay's record.", rs->compared);
	put_single_ms(out, "smartpayd_reconcile_last_pass_timestamp_seconds", "gauge",
	              "Time the last complete reconcile pass ended (0: none yet).",
	              rs->last_pass_ms);
}

void metrics_set_reconcile(struct metrics *m, const struct reconciler *r,
                           const struct status_client *status)
{
	if (m == NULL)
		return;
	m->reconciler = r;
	m->status = status;
}

static void reply_metrics(struct metrics *m, struct conn *c)
{
	struct evbuffer *body = evbuffer_new();
	render_engine(m, body);
	render_reconcile(m, body);
	render_gauges(m, body);
	render_listener(m, body);
	conn_answer(c, 200, CONTENT_TYPE_METRICS, body, NULL);
	evbuffer_free(body);
}

/* Answers every scrape that waited for the database read. */
static void answer_waiting(struct metrics *m)
{
	if (m->ev_wait)
		evtimer_del(m->ev_wait);
	struct conn *c;
	TAILQ_FOREACH(c, &m->conns, link)
	{
		if (c->state == CONN_WAITING)
			reply_metrics(m, c);
	}
}

/* Arms the next background read: every [metrics] gauges_interval, more often until the
 * first read succeeded. */
static void arm_refresh(struct metrics *m)
{
	int64_t every = store_config(m->gauges_st)->metrics_gauges_interval_ms;
	if (!m->have_gauges && every > GAUGES_FIRST_RETRY_MS)
		every = GAUGES_FIRST_RETRY_MS;
	struct timeval tv = tv_from_ms(every);
	evtimer_add(m->ev_refresh, &tv);
}

/* The database read finished (g NULL on failure): keep it and answer the waiting scrapes. */
static void gauges_read(struct store_gauges *g, const char *error, void *arg)
{
	struct metrics *m = arg;
	m->reading = false;
	if (g == NULL) {
		if (!m->read_failing)
			log_fields(LOG_LVL_WARNING, "metrics_gauges_failed",
			           LOG_STR("reason", error),
			           LOG_STR("msg", "serving the last values read"));
		m->read_failing = true;
	} else {
		if (m->read_failing)
			log_fields(LOG_LVL_NOTICE, "metrics_gauges_recovered");
		m->read_failing = false;
		store_gauges_clear(&m->gauges);
		m->gauges = *g;
		memset(g, 0, sizeof(*g));
		bool first = !m->have_gauges;
		m->have_gauges = true;
		m->gauges_at_mono_ms = m->read_mono_ms;
		m->gauges_at_ms = m->read_ms;
		if (first)
			arm_refresh(m);
	}
	answer_waiting(m);
}

/* Reads the database gauges in the background, every [metrics] gauges_interval (more
 * often until the first read succeeded), whatever the scrapes. */
static void gauges_refresh(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct metrics *m = arg;
	if (!m->reading) {
		m->read_mono_ms = clock_mono_ms();
		m->read_ms = clock_real_ms();
		/* set first: a connection that breaks while sending completes the read at once */
		m->reading = true;
		if (!store_read_gauges(m->gauges_st, gauges_read, m))
			m->reading = false;
	}
	arm_refresh(m);
}

/* The read takes too long: the waiting scrapes get the last values read. */
static void wait_expired(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	answer_waiting(arg);
}

/* Serves /metrics from what the daemon has: the database gauges of the last background
 * read. Only before the first reading does a scrape wait for it (at most
 * GAUGES_WAIT_MS); without a database to read from it answers at once. */
static void serve_metrics(struct metrics *m, struct conn *c)
{
	if (m->have_gauges || m->gauges_st == NULL) {
		reply_metrics(m, c);
		return;
	}
	c->state = CONN_WAITING;
	if (m->nwaiting++ == 0) {
		struct timeval tv = tv_from_ms(GAUGES_WAIT_MS);
		evtimer_add(m->ev_wait, &tv);
	}
}

/* Serves /healthz: the loop answers, so it is alive; the database must be up and usable. */
static void serve_health(struct metrics *m, struct conn *c)
{
	const struct engine_stats *st = engine_stats(m->engine);
	const char *problem = engine_problem(m->engine);
	struct evbuffer *body = evbuffer_new();
	int code = 200;
	if (!st->db_up) {
		evbuffer_add_printf(body, "database down\n");
		code = 503;
	} else if (problem != NULL) {
		evbuffer_add_printf(body, "database not ready: %s\n", problem);
		code = 503;
	} else if (!st->ready) {
		evbuffer_add_printf(body, "database not ready: still checking the schema\n");
		code = 503;
	} else {
		evbuffer_add_printf(body, "ok\n");
	}
	conn_answer(c, code, CONTENT_TYPE_TEXT, body, NULL);
	evbuffer_free(body);
}

/* Routes the complete request. */
static void conn_route(struct conn *c)
{
	bool metrics = strcmp(c->path, "/metrics") == 0;
	if (!metrics && strcmp(c->path, "/healthz") != 0) {
		conn_answer_text(c, 404, "not found: try /metrics or /healthz", NULL);
		return;
	}
	if (strcmp(c->method, "GET") != 0 && strcmp(c->method, "HEAD") != 0) {
		conn_answer_text(c, 405, "method not allowed", "GET, HEAD");
		return;
	}
	if (metrics)
		serve_metrics(c->m, c);
	else
		serve_health(c->m, c);
}

/* True for the characters of an HTTP token (a method, a header name). */
static bool is_tchar(char ch)
{
	return isalnum((unsigned char)ch) || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Reads "METHOD SP target SP HTTP/1.x"; returns 0, or the status to answer. */
static int parse_request_line(struct conn *c, const char *line)
{
	const char *sp1 = strchr(line, ' ');
	if (sp1 == NULL || sp1 == line || (size_t)(sp1 - line) >= sizeof(c->method))
		return 400;
	for (const char *p = line; p < sp1; p++)
		if (!is_tchar(*p))
			return 400;
	const char *target = sp1 + 1;
	const char *sp2 = strchr(target, ' ');
	if (sp2 == NULL || sp2 == target)
		return 400;
	for (const char *p = target; p < sp2; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return 400;
	const char *version = sp2 + 1;
	if (strncmp(version, "HTTP/", 5) != 0 || strchr(version, ' ') != NULL)
		return 400;
	if (strcmp(version, "HTTP/1.0") != 0 && strcmp(version, "HTTP/1.1") != 0)
		return 505;
	memcpy(c->method, line, (size_t)(sp1 - line));
	c->method[sp1 - line] = '\0';
	size_t plen = strcspn(target, "? ");
	c->path = xstrndup(target, plen);
	return 0;
}

/* Reads one header line: only the body's framing matters here (no endpoint takes a
 * body). Returns 0, or the status to answer. */
static int parse_header(struct conn *c, const char *line)
{
	const char *colon = strchr(line, ':');
	if (colon == NULL || colon == line)
		return 400; /* also obsolete line folding: it starts with a space */
	for (const char *p = line; p < colon; p++)
		if (!is_tchar(*p))
			return 400;
	size_t nlen = (size_t)(colon - line);
	const char *v = colon + 1 + strspn(colon + 1, " \t");
	if (nlen == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0)
		return 501;
	if (nlen != 14 || strncasecmp(line, "Content-Length", 14) != 0)
		return 0;
	size_t digits = strspn(v, "0123456789");
	if (digits == 0 || v[digits + strspn(v + digits, " \t")] != '\0')
		return 400;
	int64_t n = 0;
	for (size_t i = 0; i < digits && n <= MAX_BODY_BYTES; i++)
		n = n * 10 + (v[i] - '0');
	if (n > MAX_BODY_BYTES)
		return 413;
	if (c->content_length >= 0 && c->content_length != n)
		return 400;
	c->content_length = n;
	return 0;
}

/* Takes one line of the request head (without its line end). Returns 0, or the status
 * to answer. */
static int conn_head_line(struct conn *c, const char *line, size_t len)
{
	if (strlen(line) != len)
		return 400; /* a NUL byte */
	if (!c->have_line) {
		if (len == 0)
			return 0; /* an empty line before the request line is ignored */
		c->have_line = true;
		return parse_request_line(c, line);
	}
	if (len == 0) {
		c->head_done = true;
		c->body_left = c->content_length > 0 ? c->content_length : 0;
		return 0;
	}
	return parse_header(c, line);
}

/* Reads what arrived: the head line by line within MAX_HEAD_BYTES, then the body, then
 * routes the request. */
static void conn_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	while (c->state == CONN_READING) {
		if (c->head_done) {
			size_t n = evbuffer_get_length(in);
			if ((int64_t)n > c->body_left)
				n = (size_t)c->body_left;
			evbuffer_drain(in, n);
			c->body_left -= (int64_t)n;
			if (c->body_left == 0)
				conn_route(c);
			return;
		}
		size_t before = evbuffer_get_length(in);
		size_t len = 0;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (c->head_bytes + before > MAX_HEAD_BYTES)
				conn_answer_text(c, 431, "request head too large", NULL);
			return;
		}
		c->head_bytes += before - evbuffer_get_length(in);
		int status = c->head_bytes > MAX_HEAD_BYTES ? 431 : conn_head_line(c, line, len);
		free(line);
		if (status == 431)
			conn_answer_text(c, status, "request head too large", NULL);
		else if (status == 413)
			conn_answer_text(c, status, "request body too large", NULL);
		else if (status != 0)
			conn_answer_text(c, status, "bad request", NULL);
	}
}

/* ---- the listener ------------------------------------------------------------------- */

/* True when `fd` is one of the last max_inflight + FD_RESERVE_MARGIN descriptors below
 * the RLIMIT_NOFILE soft limit. The kernel hands out the lowest free descriptor, so all
 * below fd are in use: refusing such a connection keeps that many for the database and
 * SmartPay, whatever else holds descriptors. */
static bool fd_in_reserve(evutil_socket_t fd, const struct sp_config *cfg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return false;
	rlim_t reserve = (rlim_t)cfg->max_inflight + FD_RESERVE_MARGIN;
	return (rlim_t)fd + reserve >= rl.rlim_cur;
}

/* Takes a new connection, or closes it at once beyond max_connections or when the
 * descriptor is in the reserve. */
static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
	(void)l;
	(void)sa;
	(void)salen;
	struct metrics *m = arg;
	const struct sp_config *cfg = store_config(engine_store(m->engine));
	if (m->nconns >= (size_t)cfg->metrics_max_connections) {
		evutil_closesocket(fd);
		m->refused_limit++;
		log_trouble(m, &m->log_limit, "metrics_connection_refused",
		            "[metrics] max_connections reached");
		return;
	}
	if (fd_in_reserve(fd, cfg)) {
		evutil_closesocket(fd);
		m->refused_fds++;
		log_trouble(m, &m->log_fds, "metrics_connection_refused",
		            "file descriptors near RLIMIT_NOFILE are kept for the database and "
		            "SmartPay");
		return;
	}
	struct bufferevent *bev = bufferevent_socket_new(m->base, fd, BEV_OPT_CLOSE_ON_FREE);
	struct event *ev_deadline = NULL;
	struct conn *c = xcalloc(1, sizeof(*c));
	if (bev != NULL)
		ev_deadline = evtimer_new(m->base, conn_deadline, c);
	if (ev_deadline == NULL) {
		if (bev != NULL)
			bufferevent_free(bev);
		else
			evutil_closesocket(fd);
		free(c);
		m->accept_errors++;
		log_trouble(m, &m->log_accept, "metrics_accept_failed", "out of memory");
		return;
	}
	c->m = m;
	c->bev = bev;
	c->ev_deadline = ev_deadline;
	c->content_length = -1;
	TAILQ_INSERT_TAIL(&m->conns, c, link);
	m->nconns++;
	struct timeval tv = tv_from_ms(cfg->metrics_request_timeout_ms);
	evtimer_add(ev_deadline, &tv);
	bufferevent_setcb(bev, conn_read, NULL, conn_event, c);
	bufferevent_setwatermark(bev, EV_READ, 0, MAX_HEAD_BYTES + 1);
	bufferevent_enable(bev, EV_READ);
}

/* accept() failed for a reason other than a vanished client: out of descriptors or
 * memory. The pending connection stays in the queue, so calling accept() again at once
 * would spin: the listener rests for ACCEPT_PAUSE_MS. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	struct metrics *m = arg;
	m->accept_errors++;
	evconnlistener_disable(l);
	struct timeval tv = tv_from_ms(ACCEPT_PAUSE_MS);
	evtimer_add(m->ev_resume, &tv);
	log_trouble(m, &m->log_accept, "metrics_accept_failed", evutil_socket_error_to_string(err));
}

/* The pause after an accept error is over: accept again. */
static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct metrics *m = arg;
	evconnlistener_enable(m->listener);
}

/* Splits "host:port" or "[v6]:port" (already validated by the configuration). */
static bool split_listen(const char *listen, char **host, unsigned *port)
{
	const char *colon = strrchr(listen, ':');
	if (colon == NULL || colon[1] == '\0')
		return false;
	char *end = NULL;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || p == 0 || p > 65535)
		return false;
	const char *h = listen;
	size_t len = (size_t)(colon - listen);
	if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
		h++;
		len -= 2;
	}
	if (len == 0)
		return false;
	*host = xstrndup(h, len);
	*port = (unsigned)p;
	return true;
}

/* Listens on host:port (a name or an address; the first address that binds). */
static struct evconnlistener *listen_on(struct metrics *m, const char *host, unsigned port,
                                        char **why)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	char service[8];
	snprintf(service, sizeof(service), "%u", port);
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(host, service, &hints, &ai);
	if (rc != 0) {
		*why = xasprintf("metrics: cannot listen on %s: %s", m->listen, gai_strerror(rc));
		return NULL;
	}
	struct evconnlistener *l = NULL;
	int err = 0;
	for (struct addrinfo *p = ai; p != NULL && l == NULL; p = p->ai_next) {
		errno = 0;
		l = evconnlistener_new_bind(m->base, on_accept, m,
		                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
		                                LEV_OPT_REUSEABLE,
		                            LISTEN_BACKLOG, p->ai_addr, (int)p->ai_addrlen);
		if (l == NULL)
			err = errno;
	}
	freeaddrinfo(ai);
	if (l == NULL)
		*why = xasprintf("metrics: cannot listen on %s: %s", m->listen,
		                 err ? strerror(err) : "address not usable");
	return l;
}

bool metrics_new(struct event_base *base, const struct engine *engine, const char *listen,
                 struct metrics **out, char **why)
{
	*out = NULL;
	*why = NULL;
	if (listen == NULL || *listen == '\0')
		return true;
	char *host = NULL;
	unsigned port = 0;
	if (!split_listen(listen, &host, &port)) {
		*why = xasprintf("metrics: bad listen address %s: expected host:port", listen);
		return false;
	}
	struct metrics *m = xcalloc(1, sizeof(*m));
	m->base = base;
	m->engine = engine;
	m->listen = xstrdup(listen);
	TAILQ_INIT(&m->conns);
	m->listener = listen_on(m, host, port, why);
	free(host);
	if (m->listener == NULL) {
		free(m->listen);
		free(m);
		return false;
	}
	evconnlistener_set_error_cb(m->listener, on_accept_error);
	m->started_ms = clock_real_ms();
	m->ev_wait = evtimer_new(base, wait_expired, m);
	m->ev_resume = evtimer_new(base, on_resume, m);
	m->ev_refresh = evtimer_new(base, gauges_refresh, m);
	struct rlimit rl;
	struct log_field limit = LOG_STR("fd_limit", "unlimited");
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		limit = LOG_UINT("fd_limit", rl.rlim_cur);
	log_fields(LOG_LVL_INFO, "metrics_listening", LOG_STR("listen", listen), limit);
	*out = m;
	return true;
}

void metrics_set_gauges_store(struct metrics *m, struct store *st)
{
	if (m == NULL)
		return;
	m->gauges_st = st;
	if (st == NULL) {
		evtimer_del(m->ev_refresh);
		return;
	}
	/* the first read as soon as the connection is up: it usually is not yet */
	struct timeval tv = tv_from_ms(0);
	evtimer_add(m->ev_refresh, &tv);
}

void metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	struct conn *c;
	/* the loop has stopped: a waiting scrape gets what one write can send now */
	TAILQ_FOREACH(c, &m->conns, link)
	{
		if (c->state != CONN_WAITING)
			continue;
		conn_answer_text(c, 503, "shutting down", NULL);
		evbuffer_write(bufferevent_get_output(c->bev), bufferevent_getfd(c->bev));
	}
	while ((c = TAILQ_FIRST(&m->conns)) != NULL)
		conn_free(c);
	evconnlistener_free(m->listener);
	event_free(m->ev_resume);
	event_free(m->ev_wait);
	event_free(m->ev_refresh);
	store_gauges_clear(&m->gauges);
	free(m->listen);
	free(m);
}
