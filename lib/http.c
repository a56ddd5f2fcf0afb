#include "autoconfig.h"

#include "http.h"

#include "clock.h"
#include "trim.h"
#include "url.h"
#include "xmalloc.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Longest Retry-After value kept (an HTTP-date is 29 characters). */
#define HTTP_RETRY_AFTER_MAX 128

/* curl's receive buffer per transfer: its default is 16 KiB, 16 MiB at 1,000 transfers in
 * flight; 1 KiB is curl's minimum. An answer (about 1 KiB) takes one or two reads, a
 * longer body more, and curl_write_cb keeps it whole all the same. Measured at 500 ms
 * and 1,000 in flight: peak memory 34.2 MiB with 4 KiB, 32.2 with 2 KiB, 31.2 with 1 KiB,
 * and no difference in CPU per request that the noise would show. */
#define HTTP_RECV_BUFFER 1024

/* curl's upload buffer, used over TLS to hold the request (its default is 64 KiB per
 * transfer); 16 KiB is curl's minimum and far above a request body. */
#define HTTP_UPLOAD_BUFFER 16384

/* How long curl keeps the CA store it read for new connections (its default is a day):
 * a replaced CA file is in use within ten minutes. */
#define HTTP_CA_CACHE_S 600L

/* Transfers per curl multi handle ("lane"). curl 7.88 walks every connection of its
 * cache when a transfer is removed (looking for a connect-only one) and the host's
 * connections when one starts (looking for an idle one): at 1,000 in flight on one
 * multi handle that was about 8% of the daemon's CPU. A client allowed more
 * connections spreads its transfers over several lanes, each with its own connection
 * cache of at most this many. */
#define HTTP_LANE_SIZE 128

/* curl's default limit of HTTP/2 streams per connection (CURLMOPT_MAX_CONCURRENT_STREAMS). */
#define HTTP_H2_STREAMS_DEFAULT 100L

/* At most this many lanes (the scans above are then over max_host_connections / 16). */
#define HTTP_LANES_MAX 16

/* Idle easy handles kept for reuse at most (curl_easy_init and curl_easy_cleanup per
 * request were 4% of the daemon's CPU at 1,000 in flight). A finished transfer's handle
 * is back in the pool before its callback sends the next request, so a window kept
 * full needs few; the rest are freed when the window drains (over TLS each keeps a
 * 16 KiB upload buffer). */
#define HTTP_POOL_MAX 64

/* Header lists a client builds once and keeps (the engine's and the status calls' lines
 * are one list each); a request with other lines past these gets a list of its own. */
#define HTTP_HEADER_SETS 4

/* Most header lines of a request that fit the request's list on the stack. */
#define HTTP_LINES_STACK 16

/* curl's TLS session cache, held by every client that shares it (http_client_share_tls). */
struct http_tls_share {
	CURLSH *share;
	int refs;
};

/* One curl multi handle with its own timer and connection cache. */
struct http_lane {
	struct http_client *client;
	CURLM *multi;
	struct event *timer;
	size_t inflight;
	/* a transfer was added while curl was being driven (a done callback sent the next
	 * request): curl starts it before the loop callback returns */
	bool added;
};

/* One socket curl asked us to watch: its event, assigned with curl_multi_assign. */
struct http_sock {
	struct http_client *client;
	struct event *ev;
	struct http_sock *prev, *next;
};

/* A request's header lines and "Expect:" as the curl list sent for them, kept by the
 * client for every request with the same lines. */
struct http_header_set {
	char **lines; /* copies, NULL-terminated */
	struct curl_slist *list;
};

/* One transfer: the curl handle, the collected answer and the caller's callback. */
struct http_xfer {
	struct http_client *client;
	struct http_lane *lane;
	CURL *easy;
	bool easy_ready;            /* easy has the client's options (handle_setup) */
	struct curl_slist *headers; /* the transfer's own header list, or NULL */
	http_done_fn done;
	void *arg;
	char *body; /* NUL-terminated; at most HTTP_BODY_MAX bytes kept */
	size_t body_len, body_cap;
	bool body_truncated;
	char *retry_after;
	int64_t start_us;
	char errbuf[CURL_ERROR_SIZE];
	struct http_xfer *prev, *next;
};

struct http_client {
	struct event_base *base;
	struct http_lane *lanes;
	size_t nlanes;
	struct http_tls_share *tls; /* TLS sessions, shared by every transfer */
	CURL **pool; /* idle easy handles with the client's options, no request's data */
	size_t npool;
	struct http_header_set header_sets[HTTP_HEADER_SETS];
	size_t nheader_sets;
	char *checked_url;     /* the last URL url_check took */
	char *user_agent_line; /* "User-Agent: ...", or NULL */
	/* the last credentials a request gave and their "Authorization: Basic" line: curl
	 * formatted and encoded them again for every request */
	char *auth_user, *auth_password, *auth_line;
	char *ca_file;
	bool bundle_only; /* trust one CA file (ours or curl's default), no CA directory */
	char *user_agent;
	long timeout_ms;
	long connect_timeout_ms;
	struct http_xfer *xfers; /* running transfers */
	size_t inflight;
	struct http_sock *socks;
	int priority; /* the loop's lowest priority for every event of the client, or -1 */
	int depth;    /* > 0 while curl is being driven from a loop callback */
	bool dying;   /* http_client_free was called while depth > 0 */
	bool added;   /* some lane's "added" is set */
};

/* A new TLS session cache with one holder, or NULL when curl refuses. */
static struct http_tls_share *tls_share_new(void)
{
	CURLSH *sh = curl_share_init();

	if (sh == NULL)
		return NULL;
	if (curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
		curl_share_cleanup(sh);
		return NULL;
	}
	struct http_tls_share *t = xcalloc(1, sizeof(*t));
	t->share = sh;
	t->refs = 1;
	return t;
}

/* Drops one holder of a TLS session cache; the last frees it (no easy handle of the
 * holder may still be attached). NULL is a no-op. */
static void tls_share_put(struct http_tls_share *t)
{
	if (t == NULL || --t->refs > 0)
		return;
	curl_share_cleanup(t->share);
	free(t);
}

/* Clears what a transfer set on its handle (URL, body, headers, credentials, pointers
 * to the transfer); the client's options stay for the next one. */
static void handle_clear(CURL *e)
{
	curl_easy_setopt(e, CURLOPT_URL, NULL);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL); /* frees the copied body */
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, NULL);
}

/* Returns an easy handle that has the client's options to the pool, cleared so that it
 * keeps no request's data, or frees it when the pool is full. */
static void pool_put(struct http_client *c, CURL *e)
{
	if (c->npool >= HTTP_POOL_MAX) {
		curl_easy_cleanup(e);
		return;
	}
	/* curl 7.88 refuses CURLOPT_BUFFERSIZE (CURLE_BAD_FUNCTION_ARGUMENT) on a handle
	 * whose last transfer was HTTP/2: such a handle is not reused */
	long version = 0;
	if (curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &version) == CURLE_OK &&
	    version == CURL_HTTP_VERSION_2_0) {
		curl_easy_cleanup(e);
		return;
	}
	/* not curl_easy_reset: setting the client's two dozen options again on every
	 * request was, with the reset, about 4% of the daemon's CPU at 0 ms */
	handle_clear(e);
	if (c->pool == NULL)
		c->pool = xcalloc(HTTP_POOL_MAX, sizeof(*c->pool));
	c->pool[c->npool++] = e;
}

/* An easy handle from the pool (*ready: it has the client's options), else a new one
 * with curl's defaults. */
static CURL *pool_get(struct http_client *c, bool *ready)
{
	*ready = c->npool > 0;
	if (c->npool > 0)
		return c->pool[--c->npool];
	return curl_easy_init();
}

/* Frees a string that may hold a secret, overwritten first. NULL is a no-op. */
static void wipe_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* Frees a curl list whose lines may hold a secret, each overwritten first. */
static void slist_wipe_free(struct curl_slist *list)
{
	for (struct curl_slist *l = list; l != NULL; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(list);
}

/* Releases a transfer that is no longer attached to its multi handle. */
static void xfer_free(struct http_xfer *x)
{
	if (x->easy != NULL && x->easy_ready)
		pool_put(x->client, x->easy);
	else if (x->easy != NULL)
		curl_easy_cleanup(x->easy);
	slist_wipe_free(x->headers);
	free(x->body);
	free(x->retry_after);
	free(x);
}

/* Detaches a transfer from the multi handle and the client's list. */
static void xfer_detach(struct http_xfer *x)
{
	struct http_client *c = x->client;

	curl_multi_remove_handle(x->lane->multi, x->easy);
	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		c->xfers = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	x->prev = x->next = NULL;
	c->inflight--;
	x->lane->inflight--;
}

/* Puts one of the client's events at its priority (the loop's lowest, when the loop has
 * more than one): the loop's other work, a database result above all (the next claim
 * statement, the next outcome write), is handled before the transfers that are ready in
 * the same pass. At 1,000 in flight a claim's 512 new connections took 30-35 ms of
 * connects and sends, and the next claim's candidates waited behind them for 25 ms. */
static void event_at_priority(const struct http_client *c, struct event *ev)
{
	if (c->priority >= 0)
		event_priority_set(ev, c->priority);
}

/* Frees a socket context and stops watching its socket. */
static void sock_free(struct http_sock *s)
{
	struct http_client *c = s->client;

	event_free(s->ev);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		c->socks = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	free(s);
}

/* Frees the lanes' multi handles and timers (those set up, after a failed start). */
static void lanes_free(struct http_client *c)
{
	for (size_t i = 0; i < c->nlanes; i++) {
		if (c->lanes[i].multi != NULL)
			curl_multi_cleanup(c->lanes[i].multi);
		if (c->lanes[i].timer != NULL)
			event_free(c->lanes[i].timer);
	}
	free(c->lanes);
	c->lanes = NULL;
	c->nlanes = 0;
}

/* Forgets the kept credentials and their line. */
static void auth_forget(struct http_client *c)
{
	wipe_free(c->auth_user);
	wipe_free(c->auth_password);
	wipe_free(c->auth_line);
	c->auth_user = c->auth_password = c->auth_line = NULL;
}

/* Frees everything; no transfer callback runs. */
static void client_destroy(struct http_client *c)
{
	while (c->xfers != NULL) {
		struct http_xfer *x = c->xfers;
		xfer_detach(x);
		xfer_free(x);
	}
	lanes_free(c);
	while (c->npool > 0)
		curl_easy_cleanup(c->pool[--c->npool]);
	free(c->pool);
	for (size_t i = 0; i < c->nheader_sets; i++) {
		for (char **l = c->header_sets[i].lines; *l != NULL; l++)
			wipe_free(*l);
		free(c->header_sets[i].lines);
		slist_wipe_free(c->header_sets[i].list);
	}
	free(c->checked_url);
	free(c->user_agent_line);
	auth_forget(c);
	tls_share_put(c->tls);
	while (c->socks != NULL)
		sock_free(c->socks);
	free(c->ca_file);
	free(c->user_agent);
	free(c);
	curl_global_cleanup();
}

/* Hands a finished transfer's result to its callback, then frees the transfer. */
static void xfer_complete(struct http_xfer *x, CURLcode code)
{
	struct http_result res;
	long status = 0;

	memset(&res, 0, sizeof(res));
	if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
		res.http_status = (int)status;
	res.timed_out = code == CURLE_OPERATION_TIMEDOUT;
	res.transport_error = code != CURLE_OK && !res.timed_out;
	if (code != CURLE_OK)
		res.error = x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(code);
	res.body = x->body != NULL ? x->body : "";
	res.body_len = x->body_len;
	res.body_truncated = x->body_truncated;
	res.retry_after = x->retry_after;
	res.elapsed_us = clock_mono_us() - x->start_us;

	xfer_detach(x);
	/* the callback needs nothing of the handle: the next request it sends reuses it */
	pool_put(x->client, x->easy);
	x->easy = NULL;
	x->done(&res, x->arg);
	xfer_free(x);
}

/* Collects a lane's finished transfers, as hiperfifo's check_multi_info does. */
static void check_multi_info(struct http_lane *l)
{
	CURLMsg *msg;
	int left;

	while (!l->client->dying && (msg = curl_multi_info_read(l->multi, &left)) != NULL) {
		char *priv = NULL;
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		if (priv != NULL)
			xfer_complete((struct http_xfer *)(void *)priv, msg->data.result);
	}
}

/* Starts the transfers added to any lane while curl was being driven. */
static void start_added(struct http_client *c)
{
	int running = 0;

	while (c->added && !c->dying) {
		c->added = false;
		for (size_t i = 0; i < c->nlanes && !c->dying; i++) {
			struct http_lane *l = &c->lanes[i];
			if (!l->added)
				continue;
			l->added = false;
			curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
			check_multi_info(l);
		}
	}
}

/* Tells a lane's curl about socket activity or a timeout, then completes finished
 * transfers. */
static void drive(struct http_lane *l, curl_socket_t fd, int action)
{
	struct http_client *c = l->client;
	int running = 0;

	c->depth++;
	curl_multi_socket_action(l->multi, fd, action, &running);
	/* curl cancels its own timer through curl_timer_cb; a callback below may have
	 * added a transfer, so "running" is not a reason to drop the timer here */
	check_multi_info(l);
	/* a done callback that sent the next request (the engine refills its window from
	 * the answer's callback): curl sends it now, on the connection the answer just
	 * freed, rather than on its timer after every other event of this loop iteration
	 * (at 1,000 in flight, the answers that arrive together) */
	start_added(c);
	c->depth--;
	if (c->dying && c->depth == 0)
		client_destroy(c);
}

/* Loop callback: a socket curl watches is readable or writable. */
static void on_socket(evutil_socket_t fd, short kind, void *arg)
{
	int action =
	    ((kind & EV_READ) ? CURL_CSELECT_IN : 0) | ((kind & EV_WRITE) ? CURL_CSELECT_OUT : 0);

	drive(arg, fd, action);
}

/* Loop callback: curl's single timer expired. */
static void on_timer(evutil_socket_t fd, short kind, void *arg)
{
	drive(arg, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching a socket of a lane. */
static int curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http_lane *l = userp;
	struct http_client *c = l->client;
	struct http_sock *s = socketp;
	short kind;

	if (what == CURL_POLL_REMOVE) {
		if (s != NULL)
			sock_free(s);
		return 0;
	}
	kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
	               ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->client = c;
		s->ev = event_new(c->base, fd, kind, on_socket, l);
		if (s->ev == NULL) {
			free(s);
			return -1;
		}
		event_at_priority(c, s->ev);
		s->next = c->socks;
		if (c->socks != NULL)
			c->socks->prev = s;
		c->socks = s;
		curl_multi_assign(l->multi, fd, s);
	} else {
		event_del(s->ev);
		event_assign(s->ev, c->base, fd, kind, on_socket, l);
		event_at_priority(c, s->ev);
	}
	return event_add(s->ev, NULL) == 0 ? 0 : -1;
}

/* CURLMOPT_TIMERFUNCTION: (re)arm or cancel a lane's one timer. */
static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct http_lane *l = userp;
	struct timeval tv;

	if (timeout_ms < 0)
		return evtimer_del(l->timer) == 0 ? 0 : -1;
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(l->timer, &tv) == 0 ? 0 : -1;
}

/* Makes room for the whole body when the answer gives its length (an answer comes in
 * reads of HTTP_RECV_BUFFER bytes: growing the buffer read by read copied it again). */
static void body_reserve(struct http_xfer *x)
{
	curl_off_t len = -1;

	if (curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len) != CURLE_OK ||
	    len <= 0)
		return;
	x->body_cap = (size_t)len < HTTP_BODY_MAX ? (size_t)len + 1 : HTTP_BODY_MAX + 1;
	x->body = xmalloc(x->body_cap);
}

/* CURLOPT_WRITEFUNCTION: keeps up to HTTP_BODY_MAX bytes of the body, drops the rest. */
static size_t curl_write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct http_xfer *x = userdata;
	size_t n = size * nmemb;
	size_t keep = HTTP_BODY_MAX - x->body_len;

	if (keep > n)
		keep = n;
	if (keep < n)
		x->body_truncated = true;
	if (x->body_cap == 0 && keep > 0)
		body_reserve(x);
	if (keep > 0)
		xappend(&x->body, &x->body_len, &x->body_cap, data, keep);
	return n;
}

/* CURLOPT_HEADERFUNCTION: remembers the final response's Retry-After value. */
static size_t curl_header_cb(char *data, size_t size, size_t nitems, void *userdata)
{
	struct http_xfer *x = userdata;
	size_t n = size * nitems;
	static const char name[] = "Retry-After:";
	size_t start, end;

	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		/* a new response (after a 1xx): forget the previous one's header */
		free(x->retry_after);
		x->retry_after = NULL;
		return n;
	}
	if (n < sizeof(name) - 1 || strncasecmp(data, name, sizeof(name) - 1) != 0)
		return n;
	start = sizeof(name) - 1;
	start += trim_start_len(data + start, n - start, " \t");
	end = start + trim_end_len(data + start, n - start, " \t\r\n");
	if (end - start > HTTP_RETRY_AFTER_MAX)
		end = start + HTTP_RETRY_AFTER_MAX;
	free(x->retry_after);
	x->retry_after = xstrndup(data + start, end - start);
	return n;
}

/* True when curl's default CA bundle file exists: it holds the whole system store
 * (Debian: /etc/ssl/certs/ca-certificates.crt, made from the same certificates as the
 * directory /etc/ssl/certs). */
static bool default_ca_bundle(void)
{
#if LIBCURL_VERSION_NUM >= 0x074600
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	return v->age >= CURLVERSION_SEVENTH && v->cainfo != NULL && v->cainfo[0] != '\0' &&
	       access(v->cainfo, R_OK) == 0;
#else
	return false;
#endif
}

/* Sets up one lane: its multi handle and timer, with max_conns connections at most
 * (0: no limit); false when curl or libevent refuses. */
static bool lane_init(struct http_client *c, struct http_lane *l, long max_conns)
{
	l->client = c;
	l->multi = curl_multi_init();
	l->timer = evtimer_new(c->base, on_timer, l);
	if (l->multi == NULL || l->timer == NULL)
		return false;
	event_at_priority(c, l->timer);
	curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
	curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
	curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
	curl_multi_setopt(l->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(l->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_conns);
	/* Over HTTP/2 a lane's whole window may share one connection: past curl's default of
	 * 100 streams the transfers started at once opened more connections (and TLS
	 * handshakes). A gateway's own, lower SETTINGS_MAX_CONCURRENT_STREAMS still
	 * bounds each connection: nghttp2 opens no stream past it. */
	if (max_conns > HTTP_H2_STREAMS_DEFAULT)
		curl_multi_setopt(l->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, max_conns);
	/* Keep as many idle connections as may be in flight. curl's default keeps four per
	 * transfer still attached, so each time the window drains it closes the idle ones
	 * and the next batch opens (over TLS: handshakes) them again. */
	if (max_conns > 0)
		curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, max_conns);
	return true;
}

/* Lanes for a connection limit: one per HTTP_LANE_SIZE connections, at most
 * HTTP_LANES_MAX; one when there is no limit. */
static size_t lane_count(long max_host_connections)
{
	size_t n;

	if (max_host_connections <= 0)
		return 1;
	n = ((size_t)max_host_connections + HTTP_LANE_SIZE - 1) / HTTP_LANE_SIZE;
	return n > HTTP_LANES_MAX ? HTTP_LANES_MAX : n;
}

struct http_client *http_client_new(struct event_base *base, const struct http_options *opt)
{
	struct http_client *c;
	bool ok;

	if (base == NULL || opt == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return NULL;
	c = xcalloc(1, sizeof(*c));
	c->base = base;
	int npri = event_base_get_npriorities(base);
	c->priority = npri > 1 ? npri - 1 : -1;
	c->tls = tls_share_new();
	ok = c->tls != NULL;
	c->nlanes = lane_count(opt->max_host_connections);
	c->lanes = xcalloc(c->nlanes, sizeof(*c->lanes));
	for (size_t i = 0; ok && i < c->nlanes; i++) {
		/* the limit split evenly: transfers go to the least busy lane, so no lane
		 * exceeds its share while fewer than the limit are in flight */
		long per = opt->max_host_connections > 0
		               ? (opt->max_host_connections + (long)c->nlanes - 1) / (long)c->nlanes
		               : 0L;
		ok = lane_init(c, &c->lanes[i], per);
	}
	if (!ok) {
		lanes_free(c);
		tls_share_put(c->tls);
		free(c);
		curl_global_cleanup();
		return NULL;
	}
	if (opt->ca_file != NULL && opt->ca_file[0] != '\0')
		c->ca_file = xstrdup(opt->ca_file);
	c->bundle_only = c->ca_file != NULL || default_ca_bundle();
	if (opt->user_agent != NULL && opt->user_agent[0] != '\0') {
		c->user_agent = xstrdup(opt->user_agent);
		c->user_agent_line = xasprintf("User-Agent: %s", opt->user_agent);
	}
	c->timeout_ms = opt->timeout_ms > 0 ? (long)opt->timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
	c->connect_timeout_ms = opt->connect_timeout_ms > 0 ? (long)opt->connect_timeout_ms : 0;
	return c;
}

void http_client_free(struct http_client *c)
{
	if (c == NULL)
		return;
	if (c->depth > 0) {
		/* inside a done callback: drop the other transfers now, the rest on unwind */
		c->dying = true;
		while (c->xfers != NULL) {
			struct http_xfer *x = c->xfers;
			xfer_detach(x);
			xfer_free(x);
		}
		return;
	}
	client_destroy(c);
}

#define SETOPT(opt, val)                                                                           \
	do {                                                                                       \
		if (rc == CURLE_OK)                                                                \
			rc = curl_easy_setopt(e, opt, val);                                        \
	} while (0)

/* Sets the options that are the client's, the same for every transfer, on a new handle
 * (a pooled handle keeps them); false when curl refuses one. */
static bool handle_setup(const struct http_client *c, CURL *e)
{
	CURLcode rc = CURLE_OK;

	SETOPT(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
	SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_file != NULL)
		SETOPT(CURLOPT_CAINFO, c->ca_file);
	SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(CURLOPT_SHARE, c->tls->share);
	if (c->bundle_only)
		SETOPT(CURLOPT_CAPATH, NULL);
#if LIBCURL_VERSION_NUM >= 0x075700
	SETOPT(CURLOPT_CA_CACHE_TIMEOUT, HTTP_CA_CACHE_S);
#endif
	SETOPT(CURLOPT_BUFFERSIZE, (long)HTTP_RECV_BUFFER);
	SETOPT(CURLOPT_UPLOAD_BUFFERSIZE, (long)HTTP_UPLOAD_BUFFER);
	SETOPT(CURLOPT_TIMEOUT_MS, c->timeout_ms);
	if (c->connect_timeout_ms > 0)
		SETOPT(CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	SETOPT(CURLOPT_WRITEFUNCTION, curl_write_cb);
	SETOPT(CURLOPT_HEADERFUNCTION, curl_header_cb);
	return rc == CURLE_OK;
}

/* Sets the transfer's own options (handle_clear takes them off again); false when curl
 * refuses one. */
static bool xfer_setup(struct http_xfer *x, const struct http_request *req,
                       struct curl_slist *headers)
{
	CURL *e = x->easy;
	bool post = strcmp(req->method, "POST") == 0;
	CURLcode rc = CURLE_OK;

	SETOPT(CURLOPT_PRIVATE, (void *)x);
	SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
	SETOPT(CURLOPT_URL, req->url);
	/* over TLS, ALPN tells at the handshake whether HTTP/2 can multiplex: wait for it
	 * rather than open a connection per transfer. Plain http/1.1 would only be known
	 * after the first answer, so there every transfer may open its own connection. */
	SETOPT(CURLOPT_PIPEWAIT, strncasecmp(req->url, "https:", 6) == 0 ? 1L : 0L);
	SETOPT(CURLOPT_WRITEDATA, (void *)x);
	SETOPT(CURLOPT_HEADERDATA, (void *)x);
	SETOPT(CURLOPT_HTTPHEADER, headers);
	if (post) {
		SETOPT(CURLOPT_POST, 1L);
		SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		SETOPT(CURLOPT_COPYPOSTFIELDS, req->body_len > 0 ? req->body : "");
	} else {
		SETOPT(CURLOPT_HTTPGET, 1L);
	}
	return rc == CURLE_OK;
}
#undef SETOPT

/* True when the NULL-terminated lists hold the same lines (a NULL list none). */
static bool same_lines(const char *const *a, char *const *b)
{
	size_t i = 0;

	for (; a != NULL && a[i] != NULL; i++) {
		if (b[i] == NULL || strcmp(a[i], b[i]) != 0)
			return false;
	}
	return b[i] == NULL;
}

/* The curl list of the lines (NULL-terminated, may be NULL) and "Expect:", or NULL when
 * curl refuses. */
static struct curl_slist *header_list(const char *const *lines)
{
	struct curl_slist *list = NULL, *l;

	for (const char *const *h = lines; h != NULL && *h != NULL; h++) {
		if ((l = curl_slist_append(list, *h)) == NULL)
			goto fail;
		list = l;
	}
	/* no "Expect: 100-continue" round trip before the body */
	if ((l = curl_slist_append(list, "Expect:")) == NULL)
		goto fail;
	return l;
fail:
	curl_slist_free_all(list);
	return NULL;
}

/* The header list for a request's lines: one the client keeps (built now if there is
 * room), else one of the transfer's own in *own; NULL when curl refuses. */
static struct curl_slist *headers_for(struct http_client *c, const char *const *lines,
                                      struct curl_slist **own)
{
	struct http_header_set *set;
	size_t n = 0;

	*own = NULL;
	for (size_t i = 0; i < c->nheader_sets; i++) {
		if (same_lines(lines, c->header_sets[i].lines))
			return c->header_sets[i].list;
	}
	struct curl_slist *list = header_list(lines);
	if (list == NULL || c->nheader_sets == HTTP_HEADER_SETS)
		return *own = list;
	set = &c->header_sets[c->nheader_sets++];
	while (lines != NULL && lines[n] != NULL)
		n++;
	set->lines = xcalloc(n + 1, sizeof(*set->lines));
	for (size_t i = 0; i < n; i++)
		set->lines[i] = xstrdup(lines[i]);
	set->list = list;
	return list;
}

/* Basic credentials as curl sends them: "Authorization: Basic " and the RFC 4648
 * base64 of user:password. */
static char *basic_auth_line(const char *user, const char *password)
{
	static const char digits[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	static const char prefix[] = "Authorization: Basic ";
	size_t ul = strlen(user), pl = strlen(password), n = ul + 1 + pl;
	unsigned char *plain = xmalloc(n);
	char *out = xmalloc(sizeof(prefix) + (n + 2) / 3 * 4);
	char *o = out + sizeof(prefix) - 1;

	memcpy(plain, user, ul);
	plain[ul] = ':';
	memcpy(plain + ul + 1, password, pl);
	memcpy(out, prefix, sizeof(prefix) - 1);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)plain[i] << 16 |
		             (i + 1 < n ? (uint32_t)plain[i + 1] << 8 : 0) |
		             (i + 2 < n ? plain[i + 2] : 0);
		*o++ = digits[v >> 18 & 63];
		*o++ = digits[v >> 12 & 63];
		*o++ = i + 1 < n ? digits[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? digits[v & 63] : '=';
	}
	*o = '\0';
	explicit_bzero(plain, n);
	free(plain);
	return out;
}

/* The Authorization line for a request's credentials (the client keeps the last). */
static const char *auth_line_for(struct http_client *c, const char *user, const char *password)
{
	if (password == NULL)
		password = "";
	if (c->auth_line != NULL && strcmp(c->auth_user, user) == 0 &&
	    strcmp(c->auth_password, password) == 0)
		return c->auth_line;
	auth_forget(c);
	c->auth_user = xstrdup(user);
	c->auth_password = xstrdup(password);
	c->auth_line = basic_auth_line(user, password);
	return c->auth_line;
}

/* True when one of the lines (NULL-terminated, may be NULL) is the header `name:`. */
static bool has_header(const char *const *lines, const char *name)
{
	size_t n = strlen(name);

	for (const char *const *h = lines; h != NULL && *h != NULL; h++) {
		if (strncasecmp(*h, name, n) == 0 && (*h)[n] == ':')
			return true;
	}
	return false;
}

/* The lines a request sends: its own, then the Authorization line of its credentials
 * and the client's User-Agent unless it gives those headers itself (as curl did), into
 * `lines` when they fit HTTP_LINES_STACK, else a malloc'd array in *heap.
 * NULL-terminated. */
static const char **request_lines(struct http_client *c, const struct http_request *req,
                                  const char **lines, const char ***heap)
{
	size_t n = 0, o = 0;

	while (req->headers != NULL && req->headers[n] != NULL)
		n++;
	*heap = NULL;
	if (n > HTTP_LINES_STACK)
		lines = *heap = xcalloc(n + 3, sizeof(*lines));
	for (; o < n; o++)
		lines[o] = req->headers[o];
	if (req->username != NULL && !has_header(req->headers, "Authorization"))
		lines[o++] = auth_line_for(c, req->username, req->password);
	if (c->user_agent_line != NULL && !has_header(req->headers, "User-Agent"))
		lines[o++] = c->user_agent_line;
	lines[o] = NULL;
	return lines;
}

/* True when url_check takes the URL (the last URL it took is not checked again). */
static bool url_usable(struct http_client *c, const char *url)
{
	struct url_parts parts;

	if (c->checked_url != NULL && strcmp(c->checked_url, url) == 0)
		return true;
	if (!url_check(url, &parts, NULL, 0))
		return false;
	free(c->checked_url);
	c->checked_url = xstrdup(url);
	return true;
}

/* The lane with the fewest transfers in flight (the first of equals). */
static struct http_lane *least_busy_lane(struct http_client *c)
{
	struct http_lane *best = &c->lanes[0];

	for (size_t i = 1; i < c->nlanes; i++)
		if (c->lanes[i].inflight < best->inflight)
			best = &c->lanes[i];
	return best;
}

bool http_submit(struct http_client *c, const struct http_request *req, http_done_fn done,
                 void *arg)
{
	struct http_xfer *x;

	if (c == NULL || c->dying || req == NULL || done == NULL || req->method == NULL ||
	    req->url == NULL)
		return false;
	if (strcmp(req->method, "POST") != 0 && strcmp(req->method, "GET") != 0)
		return false;
	if (strcmp(req->method, "GET") == 0 && req->body_len > 0)
		return false;
	if (req->body_len > 0 && req->body == NULL)
		return false;
	if (!url_usable(c, req->url))
		return false;

	x = xcalloc(1, sizeof(*x));
	x->client = c;
	x->lane = least_busy_lane(c);
	x->done = done;
	x->arg = arg;
	x->easy = pool_get(c, &x->easy_ready);
	if (x->easy == NULL) {
		free(x);
		return false;
	}
	if (!x->easy_ready && !(x->easy_ready = handle_setup(c, x->easy)))
		goto fail;
	const char *stack[HTTP_LINES_STACK + 3], **heap;
	const char **lines = request_lines(c, req, stack, &heap);
	struct curl_slist *headers = headers_for(c, lines, &x->headers);
	free(heap);
	if (headers == NULL || !xfer_setup(x, req, headers))
		goto fail;
	x->start_us = clock_mono_us();
	if (curl_multi_add_handle(x->lane->multi, x->easy) != CURLM_OK)
		goto fail;
	x->next = c->xfers;
	if (c->xfers != NULL)
		c->xfers->prev = x;
	c->xfers = x;
	c->inflight++;
	x->lane->inflight++;
	if (c->depth > 0)
		c->added = x->lane->added = true;
	return true;
fail:
	xfer_free(x);
	return false;
}

size_t http_inflight(const struct http_client *c)
{
	return c != NULL ? c->inflight : 0;
}

bool http_client_share_tls(struct http_client *c, struct http_client *with)
{
	if (c == NULL || with == NULL || c->inflight > 0)
		return false;
	if (c->tls == with->tls)
		return true;
	/* the pooled handles are still attached to the old cache: curl frees it only
	 * once none is */
	while (c->npool > 0)
		curl_easy_cleanup(c->pool[--c->npool]);
	tls_share_put(c->tls);
	c->tls = with->tls;
	c->tls->refs++;
	return true;
}
