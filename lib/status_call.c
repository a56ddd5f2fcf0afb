#include "autoconfig.h"

#include "status_call.h"

#include "clock.h"
#include "config.h"
#include "http.h"
#include "modification.h"
#include "xmalloc.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One call, queued or running. */
struct status_call {
	struct status_call *prev, *next;
	struct status_client *c;
	char *transaction_id;
	status_done_fn done;
	void *arg;
	bool running;
	bool cancelled; /* running, but its caller went away */
};

struct status_client {
	struct event_base *base;
	const struct sp_config *cfg;
	const char *secret;
	struct http_client *http;
	struct event *ev_timer;
	struct status_call *head, *tail; /* queued and running calls, in order */
	int64_t next_ms;                 /* monotonic: the earliest moment of the next call */
	struct status_stats stats;
};

const char *status_result_name(enum status_result r)
{
	static const char *const names[STATUS_RESULT_COUNT] = {
	    "ok", "http_error", "transport_error", "timeout", "unreadable"};
	return (unsigned)r < STATUS_RESULT_COUNT ? names[r] : "unknown";
}

/* 1000 ms and a 5% margin, the gap at one call per second. */
#define STATUS_GAP_MARGIN_PERMILLE 1050

int64_t status_call_gap_ms(int requests_per_second)
{
	if (requests_per_second < 1)
		requests_per_second = 1;
	int64_t even = (1000 + requests_per_second - 1) / requests_per_second;
	/* the gateway counts arrivals: a 5% margin keeps a late call and the next on time
	 * from landing in one of its seconds together */
	int64_t margin = STATUS_GAP_MARGIN_PERMILLE / requests_per_second;
	return margin > even ? margin : even;
}

char *status_call_path(const char *transaction_id)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(transaction_id);
	char *out = xmalloc(sizeof("/payment/status/") + 3 * n);
	size_t o = strlen("/payment/status/");
	memcpy(out, "/payment/status/", o);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)transaction_id[i];
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = '\0';
	return out;
}

enum status_result status_call_classify(int http_status, bool transport_error, bool timed_out,
                                        const char *body, size_t body_len,
                                        const char *transaction_id, struct gw_history *history)
{
	memset(history, 0, sizeof(*history));
	if (timed_out)
		return STATUS_TIMEOUT;
	if (transport_error || http_status == 0)
		return STATUS_TRANSPORT;
	if (http_status < 200 || http_status > 299)
		return STATUS_HTTP_ERROR;
	if (!response_parse_history(body, body_len, history))
		return STATUS_UNREADABLE;
	if (history->has_error || (history->transaction_id != NULL &&
	                           strcmp(history->transaction_id, transaction_id) != 0)) {
		response_history_free(history);
		return STATUS_UNREADABLE;
	}
	return STATUS_OK;
}

/* Unlinks and frees a call. */
static void call_free(struct status_call *call)
{
	struct status_client *c = call->c;
	if (call->prev)
		call->prev->next = call->next;
	else
		c->head = call->next;
	if (call->next)
		call->next->prev = call->prev;
	else
		c->tail = call->prev;
	free(call->transaction_id);
	free(call);
}

static void status_arm(struct status_client *c);

/* A call's answer: classify, count, report. */
static void status_on_answer(const struct http_result *res, void *arg)
{
	struct status_call *call = arg;
	struct status_client *c = call->c;
	struct gw_history h;
	enum status_result r =
	    status_call_classify(res->http_status, res->transport_error, res->timed_out, res->body,
	                         res->body_len, call->transaction_id, &h);
	c->stats.calls[r]++;
	if (!call->cancelled)
		call->done(r, r == STATUS_OK ? &h : NULL, res->http_status,
		           r == STATUS_OK ? NULL
		                          : (res->error ? res->error : status_result_name(r)),
		           call->arg);
	response_history_free(&h);
	call_free(call);
}

/* Starts one queued call. */
static void status_send(struct status_client *c, struct status_call *call)
{
	char *path = status_call_path(call->transaction_id);
	char *url = xasprintf("%s%s", c->cfg->base_url, path);
	struct mod_headers headers;
	mod_headers_init(&headers, c->cfg->origin);
	struct http_request req = {.method = "GET",
	                           .url = url,
	                           .headers = headers.lines,
	                           .username = c->cfg->merchant_key,
	                           .password = c->secret};
	call->running = true;
	c->stats.queued--;
	bool ok = c->http != NULL && http_submit(c->http, &req, status_on_answer, call);
	free(path);
	free(url);
	mod_headers_free(&headers);
	if (!ok) {
		struct http_result res = {.transport_error = true, .error = "request setup failed"};
		status_on_answer(&res, call);
	}
}

/* The timer: sends the next queued call when the cap allows, then waits for the next. */
static void status_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct status_client *c = arg;
	int64_t now = clock_mono_ms();
	struct status_call *call = c->head;
	while (call != NULL && call->running)
		call = call->next;
	if (call == NULL)
		return;
	if (now < c->next_ms) {
		status_arm(c);
		return;
	}
	c->next_ms = now + status_call_gap_ms(c->cfg->reconcile_requests_per_second);
	status_send(c, call);
	status_arm(c);
}

/* Arms the timer for the next queued call, if any. */
static void status_arm(struct status_client *c)
{
	if (c->stats.queued == 0 || evtimer_pending(c->ev_timer, NULL))
		return;
	int64_t wait = c->next_ms - clock_mono_ms();
	if (wait < 0)
		wait = 0;
	struct timeval tv = {.tv_sec = wait / 1000, .tv_usec = (wait % 1000) * 1000};
	evtimer_add(c->ev_timer, &tv);
}

/* The curl client, with the engine's TLS settings. */
static struct http_client *status_http(struct event_base *base, const struct sp_config *cfg)
{
	struct http_options ho = {.ca_file = cfg->ca_file && *cfg->ca_file ? cfg->ca_file : NULL,
	                          .timeout_ms = cfg->timeout_ms,
	                          .connect_timeout_ms = cfg->connect_timeout_ms,
	                          .max_host_connections = 4,
	                          .user_agent = cfg->user_agent};
	return http_client_new(base, &ho);
}

struct status_client *status_client_new(struct event_base *base, const struct sp_config *cfg,
                                        const char *secret)
{
	struct http_client *http = status_http(base, cfg);
	if (http == NULL)
		return NULL;
	struct status_client *c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->cfg = cfg;
	c->secret = secret;
	c->http = http;
	c->ev_timer = evtimer_new(base, status_timer_cb, c);
	c->next_ms = clock_mono_ms();
	return c;
}

void status_client_free(struct status_client *c)
{
	if (c == NULL)
		return;
	http_client_free(c->http);
	while (c->head != NULL)
		call_free(c->head);
	event_free(c->ev_timer);
	free(c);
}

bool status_client_share_tls(struct status_client *c, struct http_client *http)
{
	return c != NULL && http_client_share_tls(c->http, http);
}

void status_client_reload(struct status_client *c, const struct sp_config *cfg, const char *secret)
{
	c->cfg = cfg;
	c->secret = secret;
}

void status_client_get(struct status_client *c, const char *transaction_id, status_done_fn done,
                       void *arg)
{
	struct status_call *call = xcalloc(1, sizeof(*call));
	call->c = c;
	call->transaction_id = xstrdup(transaction_id);
	call->done = done;
	call->arg = arg;
	call->prev = c->tail;
	if (c->tail)
		c->tail->next = call;
	else
		c->head = call;
	c->tail = call;
	c->stats.queued++;
	status_arm(c);
}

void status_client_cancel(struct status_client *c, void *arg)
{
	struct status_call *call = c->head;
	while (call != NULL) {
		struct status_call *next = call->next;
		if (call->arg == arg) {
			if (call->running) {
				call->cancelled = true;
			} else {
				c->stats.queued--;
				call_free(call);
			}
		}
		call = next;
	}
}

const struct status_stats *status_client_stats(const struct status_client *c)
{
	return &c->stats;
}
