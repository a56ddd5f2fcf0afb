#include "autoconfig.h"

#include "metrics.h"

#include "config.h"
#include "engine.h"
#include "log.h"
#include "modification.h"
#include "store.h"
#include "store_alerts.h"
#include "store_metrics.h"
#include "xmalloc.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Database gauges younger than this are served as they are. */
#define GAUGES_MAX_AGE_MS 5000
/* How long a scrape waits for a fresh read of the database gauges. */
#define GAUGES_WAIT_MS 2000
/* Idle HTTP connections are closed after this many seconds. */
#define HTTP_TIMEOUT_S 30

#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TYPE_TEXT "text/plain; charset=utf-8"

struct metrics {
	struct event_base *base;
	const struct engine *engine;
	struct evhttp *http;
	char *listen;
	int64_t started_ms; /* unix ms */

	struct store_gauges gauges; /* the last successful read */
	bool have_gauges;
	int64_t gauges_at_mono_ms; /* when it arrived (monotonic) */
	int64_t gauges_at_ms;      /* when it arrived (unix) */
	struct store_gauges_read read;
	bool reading;
	bool read_failing; /* the last read failed (logged once per streak) */

	struct evhttp_request **waiting; /* scrapes waiting for the read */
	size_t nwaiting, cap_waiting;
	struct event *ev_wait; /* stops waiting after GAUGES_WAIT_MS */
};

static int64_t clock_ms(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
	int64_t now = clock_ms(CLOCK_REALTIME);

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
		for (int r = 0; r < ER_COUNT; r++)
			evbuffer_add_printf(out,
			                    "smartpayd_modification_results_total{kind=\"%s\","
			                    "result=\"%s\"} %llu\n",
			                    mod_kind_name((enum mod_kind)k),
			                    engine_result_name((enum engine_result)r),
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
		char label[32];
		store_threshold_label(g->thresholds_ms[i], label);
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
	              "Time of the database read the gauges above come from.", m->gauges_at_ms);
}

/* Sends a complete answer. */
static void reply(struct evhttp_request *req, int code, const char *reason,
                  const char *content_type, struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", content_type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(req, code, reason, body);
}

static void reply_metrics(struct metrics *m, struct evhttp_request *req)
{
	struct evbuffer *body = evbuffer_new();
	render_engine(m, body);
	render_gauges(m, body);
	reply(req, HTTP_OK, "OK", CONTENT_TYPE_METRICS, body);
	evbuffer_free(body);
}

/* Answers every scrape that waited for the database read. */
static void answer_waiting(struct metrics *m)
{
	if (m->ev_wait)
		evtimer_del(m->ev_wait);
	for (size_t i = 0; i < m->nwaiting; i++)
		reply_metrics(m, m->waiting[i]);
	m->nwaiting = 0;
}

static void gauges_read(struct store_gauges *g, const char *error, void *arg)
{
	struct metrics *m = arg;
	m->reading = false;
	if (g == NULL) {
		if (!m->read_failing)
			log_event(LOG_LVL_WARNING, "metrics_gauges_failed", "reason", error, "msg",
			          "serving the last values read", NULL);
		m->read_failing = true;
	} else {
		if (m->read_failing)
			log_event(LOG_LVL_NOTICE, "metrics_gauges_recovered", NULL);
		m->read_failing = false;
		store_gauges_clear(&m->gauges);
		m->gauges = *g;
		memset(g, 0, sizeof(*g));
		m->have_gauges = true;
		m->gauges_at_mono_ms = clock_ms(CLOCK_MONOTONIC);
		m->gauges_at_ms = clock_ms(CLOCK_REALTIME);
	}
	answer_waiting(m);
}

static void wait_expired(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	answer_waiting(arg);
}

/* Serves /metrics: at once when the database gauges are fresh or cannot be read now,
 * else after the read (or GAUGES_WAIT_MS). */
static void serve_metrics(struct metrics *m, struct evhttp_request *req)
{
	bool fresh =
	    m->have_gauges && clock_ms(CLOCK_MONOTONIC) - m->gauges_at_mono_ms < GAUGES_MAX_AGE_MS;
	if (!fresh && !m->reading) {
		m->read.done = gauges_read;
		m->read.arg = m;
		/* set first: a connection that breaks while sending completes the read at once */
		m->reading = true;
		if (!store_read_gauges(engine_store(m->engine), &m->read))
			m->reading = false;
	}
	if (fresh || !m->reading) {
		reply_metrics(m, req);
		return;
	}
	if (m->nwaiting == m->cap_waiting) {
		m->cap_waiting = m->cap_waiting ? 2 * m->cap_waiting : 4;
		m->waiting = xrealloc(m->waiting, m->cap_waiting * sizeof(*m->waiting));
	}
	m->waiting[m->nwaiting++] = req;
	if (m->nwaiting == 1) {
		struct timeval tv = {.tv_sec = GAUGES_WAIT_MS / 1000,
		                     .tv_usec = (GAUGES_WAIT_MS % 1000) * 1000};
		evtimer_add(m->ev_wait, &tv);
	}
}

/* Serves /healthz: the loop answers, so it is alive; the database must be up and usable. */
static void serve_health(struct metrics *m, struct evhttp_request *req)
{
	const struct engine_stats *st = engine_stats(m->engine);
	const char *problem = engine_problem(m->engine);
	struct evbuffer *body = evbuffer_new();
	int code = HTTP_OK;
	const char *reason = "OK";
	if (!st->db_up) {
		evbuffer_add_printf(body, "database down\n");
		code = HTTP_SERVUNAVAIL;
	} else if (problem != NULL) {
		evbuffer_add_printf(body, "database not ready: %s\n", problem);
		code = HTTP_SERVUNAVAIL;
	} else if (!st->ready) {
		evbuffer_add_printf(body, "database not ready: still checking the schema\n");
		code = HTTP_SERVUNAVAIL;
	} else {
		evbuffer_add_printf(body, "ok\n");
	}
	if (code != HTTP_OK)
		reason = "Service Unavailable";
	reply(req, code, reason, CONTENT_TYPE_TEXT, body);
	evbuffer_free(body);
}

/* Routes one request. */
static void on_request(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	bool known = path && (strcmp(path, "/metrics") == 0 || strcmp(path, "/healthz") == 0);
	if (!known) {
		struct evbuffer *body = evbuffer_new();
		evbuffer_add_printf(body, "not found: try /metrics or /healthz\n");
		reply(req, HTTP_NOTFOUND, "Not Found", CONTENT_TYPE_TEXT, body);
		evbuffer_free(body);
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		struct evbuffer *body = evbuffer_new();
		evbuffer_add_printf(body, "method not allowed\n");
		reply(req, HTTP_BADMETHOD, "Method Not Allowed", CONTENT_TYPE_TEXT, body);
		evbuffer_free(body);
		return;
	}
	if (strcmp(path, "/metrics") == 0)
		serve_metrics(m, req);
	else
		serve_health(m, req);
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
	struct evhttp *http = evhttp_new(base);
	if (http == NULL) {
		free(host);
		*why = xasprintf("metrics: cannot create the HTTP server for %s", listen);
		return false;
	}
	errno = 0;
	if (evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port) == NULL) {
		int err = errno;
		*why = xasprintf("metrics: cannot listen on %s: %s", listen,
		                 err ? strerror(err) : "address not usable");
		evhttp_free(http);
		free(host);
		return false;
	}
	free(host);
	struct metrics *m = xcalloc(1, sizeof(*m));
	m->base = base;
	m->engine = engine;
	m->http = http;
	m->listen = xstrdup(listen);
	m->started_ms = clock_ms(CLOCK_REALTIME);
	m->ev_wait = evtimer_new(base, wait_expired, m);
	evhttp_set_timeout(http, HTTP_TIMEOUT_S);
	evhttp_set_max_headers_size(http, 16384);
	evhttp_set_max_body_size(http, 4096);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
	                                     EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
	evhttp_set_gencb(http, on_request, m);
	log_event(LOG_LVL_INFO, "metrics_listening", "listen", listen, NULL);
	*out = m;
	return true;
}

void metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nwaiting; i++) {
		struct evbuffer *body = evbuffer_new();
		evbuffer_add_printf(body, "shutting down\n");
		reply(m->waiting[i], HTTP_SERVUNAVAIL, "Service Unavailable", CONTENT_TYPE_TEXT,
		      body);
		evbuffer_free(body);
	}
	free(m->waiting);
	evhttp_free(m->http);
	event_free(m->ev_wait);
	store_gauges_clear(&m->gauges);
	free(m->listen);
	free(m);
}
