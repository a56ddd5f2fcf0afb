#include "autoconfig.h"

#include "server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>

#include "api.h"
#include "control.h"
#include "h2.h"
#include "timeutil.h"
#include "tls.h"
#include "url.h"
#include "xmalloc.h"

/* An answer waiting on a timer (latency, slow answers, deferred drops and resets). */
struct sim_pending {
	struct sim_ctx *ctx;
	struct sim_req req; /* a copy: its pointers live until the answer is sent */
	struct event *timer;
	enum sim_fault_action action;
	int status;
	const char *content_type; /* static; NULL: application/json */
	char *body;               /* owned */
	size_t len;
	int64_t due_us; /* monotonic: when the answer is due (the request's arrival + delay) */
	struct sim_pending *prev, *next;
};

/* Adds the headers every answer carries; content_type NULL means JSON. */
static void answer_headers(struct sim_req *req, const char *content_type)
{
	evhttp_add_header(req->out, "Content-Type",
	                  content_type ? content_type : "application/json");
	evhttp_add_header(req->out, "Accept-Language", "en-US");
}

/* Sends status and body now, through the front end that read the request. */
static void send_typed(struct sim_req *req, int status, const char *content_type, const char *body,
                       size_t len)
{
	answer_headers(req, content_type);
	if (req->h2 != NULL) {
		sim_h2_reply(req->h2, status, body, len);
		return;
	}
	evbuffer_add(evhttp_request_get_output_buffer(req->ev), body, len);
	evhttp_send_reply(req->ev, status, NULL, NULL);
}

/* Sends a JSON status and body now. */
static void send_now(struct sim_req *req, int status, const char *body, size_t len)
{
	send_typed(req, status, NULL, body, len);
}

/* Adds Retry-After (the faults' retry_after) to a 429 or 503. */
static void add_retry_after(struct sim_ctx *ctx, struct sim_req *req, int status)
{
	if (status != 429 && status != 503)
		return;
	char ra[16];
	snprintf(ra, sizeof(ra), "%d", ctx->faults.retry_after);
	evhttp_add_header(req->out, "Retry-After", ra);
}

void sim_reply_json(struct sim_req *req, int status, struct json_object *obj)
{
	size_t len;
	const char *text = json_object_to_json_string_length(
	    obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	send_now(req, status, text, len);
	json_object_put(obj);
}

void sim_reply_error(struct sim_req *req, int status, const char *error, const char *details)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(error));
	json_object_object_add(o, "errorDetails", json_object_new_string(details));
	sim_reply_json(req, status, o);
}

/* Closes the request's connection without an answer; with `reset`, the socket is
 * aborted (SO_LINGER 0) so the client sees a connection reset instead of an EOF.
 * Over HTTP/2 only the request's stream ends, reset (h2.c). */
static void close_connection(struct sim_req *sreq, bool reset)
{
	if (sreq->h2 != NULL) {
		sim_h2_abort(sreq->h2, reset);
		return;
	}
	struct evhttp_request *req = sreq->ev;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	if (evcon == NULL) {
		/* the client went away already; sending frees the detached request */
		evhttp_send_reply(req, 500, NULL, NULL);
		return;
	}
	if (reset) {
		int fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
		if (fd >= 0) {
			struct linger lg = {.l_onoff = 1, .l_linger = 0};
			(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			/* Replace the descriptor by an unconnected socket: this closes the
			 * real one at once (RST), and libevent later closes the stand-in. */
			int standin = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (standin >= 0) {
				(void)dup2(standin, fd);
				close(standin);
			}
		}
	}
	evhttp_connection_free(evcon);
}

/* The error body of an injected failure. */
static void send_fault_status(struct sim_ctx *ctx, struct sim_req *req, int status)
{
	char details[96];
	snprintf(details, sizeof(details), "injected failure: HTTP %d without processing", status);
	add_retry_after(ctx, req, status);
	sim_reply_error(req, status, "simulated_failure", details);
}

/* Carries out a plan's action now. */
static void carry_out(struct sim_ctx *ctx, struct sim_req *req, enum sim_fault_action action,
                      int status, const char *content_type, const char *body, size_t len)
{
	switch (action) {
	case SIM_FAULT_RESET:
		close_connection(req, true);
		break;
	case SIM_FAULT_DROP:
		close_connection(req, false);
		break;
	case SIM_FAULT_FAIL:
		send_fault_status(ctx, req, status);
		break;
	case SIM_FAULT_GARBLE: {
		size_t glen;
		char *g = sim_faults_garble(&ctx->rng, body, len, &glen);
		send_now(req, status, g, glen);
		free(g);
		break;
	}
	case SIM_FAULT_HOSTILE:
		add_retry_after(ctx, req, status);
		send_typed(req, status, content_type, body, len);
		break;
	case SIM_FAULT_NONE:
	case SIM_FAULT_SLOW:
		send_now(req, status, body, len);
		break;
	}
}

/* Unlinks and frees a waiting answer (not its request). */
static void pending_free(struct sim_pending *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		p->ctx->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	event_free(p->timer);
	free(p->body);
	free(p);
}

/* Arms a delayed answer's timer for its deadline. */
static void pending_arm(struct sim_pending *p)
{
	int64_t wait = p->due_us - sim_time_mono_us();
	if (wait < 0)
		wait = 0;
	struct timeval tv = {.tv_sec = (time_t)(wait / 1000000),
	                     .tv_usec = (suseconds_t)(wait % 1000000)};
	evtimer_add(p->timer, &tv);
}

/* Writes a plain connection's whole output to its socket now; false when the socket
 * takes only part of it (the loop writes the rest). */
static bool write_plain(struct bufferevent *bev, struct evbuffer *out)
{
	evutil_socket_t fd = bufferevent_getfd(bev);
	if (fd < 0)
		return false;
	while (evbuffer_get_length(out) > 0)
		if (evbuffer_write(out, fd) <= 0)
			return false;
	return true;
}

/* Writes a delayed answer to the socket now, from the timer's callback, and tells
 * evhttp it is out (evhttp then reads the next request): without this the answer
 * waits for the loop's next pass, after every other answer due at the same time has
 * been built, and costs two epoll_ctl calls. When the socket takes only part of it,
 * the loop writes the rest as before. */
static void flush_answer(struct sim_ctx *ctx, struct bufferevent *bev)
{
	if (bev == NULL)
		return;
	struct evbuffer *out = bufferevent_get_output(bev);
	if (evbuffer_get_length(out) == 0)
		return;
	if (ctx->tls != NULL) {
		/* the flush runs evhttp's write callback itself once the answer is out */
		if (sim_tls_flush(ctx->tls, bev))
			ctx->timer_writes++;
		return;
	}
	if (!write_plain(bev, out))
		return;
	ctx->timer_writes++;
	/* the answer is out: evhttp's write callback finishes the request */
	bufferevent_trigger(bev, EV_WRITE, 0);
}

/* Timer callback: the wait is over. */
static void pending_fire(evutil_socket_t fd, short what, void *arg)
{
	struct sim_pending *p = arg;
	struct sim_ctx *ctx = p->ctx;
	bool answers = p->action != SIM_FAULT_RESET && p->action != SIM_FAULT_DROP;
	struct evhttp_connection *evcon =
	    p->req.ev != NULL ? evhttp_request_get_connection(p->req.ev) : NULL;
	struct bufferevent *bev =
	    answers && evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
	carry_out(ctx, &p->req, p->action, p->status, p->content_type, p->body, p->len);
	pending_free(p);
	flush_answer(ctx, bev);
}

/* What the simulator keeps per connection: the kernel's receive time of the next
 * request (over TLS: of its first record), peeked (SO_TIMESTAMPNS) before evhttp or
 * the TLS session reads it, so that a delayed answer is timed from the request's arrival
 * rather than from when the loop got to it (a busy or descheduled simulator read
 * requests a few hundred µs late). */
struct sim_conn {
	struct sim_ctx *ctx;
	struct evhttp_connection *evcon;
	evutil_socket_t fd;
	struct event *peek; /* one-shot, at SIM_PRIO_PEEK: runs before evhttp reads */
	int64_t arrival_us; /* monotonic; 0 when none was taken */
};

int64_t sim_server_peek_arrival(evutil_socket_t fd)
{
	char byte;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(struct timespec))];
	} control;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr msg = {.msg_iov = &iov,
	                     .msg_iovlen = 1,
	                     .msg_control = control.buf,
	                     .msg_controllen = sizeof(control.buf)};
	if (recvmsg(fd, &msg, MSG_PEEK | MSG_DONTWAIT) <= 0)
		return 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS)
			continue;
		struct timespec got, real;
		memcpy(&got, CMSG_DATA(c), sizeof(got));
		clock_gettime(CLOCK_REALTIME, &real);
		int64_t ago = ((int64_t)real.tv_sec - got.tv_sec) * 1000000 +
		              (real.tv_nsec - got.tv_nsec) / 1000;
		/* the kernel stamps with the wall clock: kept as "this long ago" */
		if (ago >= 0 && ago < 1000000)
			return sim_time_mono_us() - ago;
	}
	return 0;
}

/* Loop callback: the next request's first bytes are in; their kernel receive time is
 * kept (the data stays for evhttp). */
static void conn_peek(evutil_socket_t fd, short what, void *arg)
{
	struct sim_conn *sc = arg;
	(void)what;
	int64_t at = sim_server_peek_arrival(fd);
	if (at > 0)
		sc->arrival_us = at;
}

/* Frees a connection's state. */
static void conn_free(struct sim_conn *sc)
{
	event_free(sc->peek);
	free(sc);
}

/* evhttp close hook: the connection's state goes with it. */
static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct sim_conn *sc = arg;
	(void)evcon;
	if (sc->fd >= 0 && (size_t)sc->fd < sc->ctx->nconns && sc->ctx->conns[sc->fd] == sc)
		sc->ctx->conns[sc->fd] = NULL;
	conn_free(sc);
}

/* The descriptor of the request's connection, -1 when it has none. */
static evutil_socket_t request_fd(struct evhttp_request *req, struct evhttp_connection **evcon)
{
	*evcon = evhttp_request_get_connection(req);
	return *evcon != NULL ? bufferevent_getfd(evhttp_connection_get_bufferevent(*evcon)) : -1;
}

/* The connection's state, made at its first delayed answer (NULL when the socket takes
 * no receive timestamps). */
static struct sim_conn *conn_state(struct sim_ctx *ctx, struct evhttp_request *req)
{
	struct evhttp_connection *evcon;
	evutil_socket_t fd = request_fd(req, &evcon);
	if (fd < 0)
		return NULL;
	if ((size_t)fd < ctx->nconns && ctx->conns[fd] != NULL) {
		struct sim_conn *old = ctx->conns[fd];
		if (old->evcon == evcon)
			return old;
		/* a closed connection's whose close hook did not run (evhttp runs it only
		 * for a connected one): its descriptor is reused, so it is gone */
		conn_free(old);
		ctx->conns[fd] = NULL;
	}
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) != 0)
		return NULL;
	if ((size_t)fd >= ctx->nconns) {
		size_t n = (size_t)fd + 64;
		ctx->conns = xrealloc(ctx->conns, n * sizeof(*ctx->conns));
		memset(ctx->conns + ctx->nconns, 0, (n - ctx->nconns) * sizeof(*ctx->conns));
		ctx->nconns = n;
	}
	struct sim_conn *sc = xcalloc(1, sizeof(*sc));
	sc->ctx = ctx;
	sc->evcon = evcon;
	sc->fd = fd;
	sc->peek = event_new(ctx->base, fd, EV_READ, conn_peek, sc);
	if (sc->peek == NULL) {
		free(sc);
		return NULL;
	}
	(void)event_priority_set(sc->peek, 0);
	ctx->conns[fd] = sc;
	evhttp_connection_set_closecb(evcon, conn_closed, sc);
	return sc;
}

/* When the request being dispatched arrived: its kernel receive time when one was
 * taken, else now. */
static int64_t request_arrival(struct sim_ctx *ctx, struct evhttp_request *req)
{
	int64_t now = sim_time_mono_us();
	struct evhttp_connection *evcon;
	evutil_socket_t fd = request_fd(req, &evcon);
	if (fd < 0 || (size_t)fd >= ctx->nconns || ctx->conns[fd] == NULL ||
	    ctx->conns[fd]->evcon != evcon)
		return now;
	struct sim_conn *sc = ctx->conns[fd];
	int64_t at = sc->arrival_us > 0 && sc->arrival_us <= now ? sc->arrival_us : now;
	sc->arrival_us = 0;
	return at;
}

/* A delayed answer is on its way: the connection's next request is timed from its
 * arrival (answers without delay need no time). */
static void watch_next_arrival(struct sim_ctx *ctx, struct evhttp_request *req)
{
	struct sim_conn *sc = conn_state(ctx, req);
	if (sc != NULL && !event_pending(sc->peek, EV_READ, NULL))
		(void)event_add(sc->peek, NULL);
}

void sim_answer(struct sim_ctx *ctx, struct sim_req *req, const struct sim_fault_plan *plan,
                int status, const char *body, size_t len)
{
	if (plan->action == SIM_FAULT_FAIL)
		status = plan->status != 0 ? plan->status : ctx->faults.status;
	/* Plain answers without delay go out at once; everything else through a timer,
	 * so that no connection is freed inside libevent's own request callback. */
	if (plan->delay_ms == 0 &&
	    (plan->action == SIM_FAULT_NONE || plan->action == SIM_FAULT_FAIL ||
	     plan->action == SIM_FAULT_GARBLE || plan->action == SIM_FAULT_HOSTILE)) {
		carry_out(ctx, req, plan->action, status, plan->content_type, body, len);
		return;
	}
	struct sim_pending *p = xcalloc(1, sizeof(*p));
	p->ctx = ctx;
	p->req = *req;
	if (req->h2 != NULL)
		sim_h2_wait(req->h2);
	p->action = plan->action;
	p->status = status;
	p->content_type = plan->content_type;
	if (body != NULL) {
		p->body = xmalloc(len + 1);
		memcpy(p->body, body, len);
		p->len = len;
	}
	p->timer = evtimer_new(ctx->base, pending_fire, p);
	/* a due answer goes before new connections and requests (sim.h) */
	(void)event_priority_set(p->timer, SIM_PRIO_ANSWER);
	p->next = ctx->pending;
	if (ctx->pending)
		ctx->pending->prev = p;
	ctx->pending = p;
	p->due_us = ctx->request_us + plan->delay_ms * 1000;
	pending_arm(p);
	if (req->ev != NULL)
		watch_next_arrival(ctx, req->ev);
}

void sim_server_dispatch(struct sim_ctx *ctx, struct sim_req *req, const char *path,
                         int64_t arrival_us)
{
	/* a delayed answer is due its delay after the request's arrival */
	ctx->request_us = arrival_us;
	if (strncmp(path, "/payment/", 9) == 0) {
		sim_api_handle(ctx, req, path);
	} else if (strncmp(path, "/_sim/", 6) == 0) {
		sim_control_handle(ctx, req, path);
	} else {
		sim_reply_error(req, 404, "not_found", "unknown path");
	}
}

/* evhttp callback: one HTTP/1.1 request, routed with its arrival time. */
static void dispatch(struct evhttp_request *ev, void *arg)
{
	struct sim_ctx *ctx = arg;
	struct sim_req req = {.method = evhttp_request_get_command(ev),
	                      .in = evhttp_request_get_input_headers(ev),
	                      .out = evhttp_request_get_output_headers(ev),
	                      .body = evhttp_request_get_input_buffer(ev),
	                      .ev = ev};
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	sim_server_dispatch(ctx, &req, path != NULL ? path : "", request_arrival(ctx, ev));
}

/* evhttp connection hook for plain HTTP: counts the connection, then the bufferevent
 * evhttp would make itself. */
static struct bufferevent *plain_bevcb(struct event_base *base, void *arg)
{
	struct sim_ctx *ctx = arg;
	ctx->connections++;
	return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
}

/* evhttp connection hook for TLS: counts the connection; a TLS session's bufferevent. */
static struct bufferevent *tls_bevcb(struct event_base *base, void *arg)
{
	struct sim_ctx *ctx = arg;
	ctx->connections++;
	return sim_tls_accept(ctx, base);
}

/* Splits "HOST:PORT" and accepts only loopback hosts; host gets the numeric form. */
static bool parse_listen(const char *listen, char *host, size_t hostlen, int *port, char *err,
                         size_t errlen)
{
	const char *colon = strrchr(listen, ':');
	if (colon == NULL || colon == listen) {
		snprintf(err, errlen, "--listen %s: expected HOST:PORT", listen);
		return false;
	}
	char *end;
	long p = strtol(colon + 1, &end, 10);
	if (*end != '\0' || end == colon + 1 || p < 0 || p > 65535) {
		snprintf(err, errlen, "--listen %s: bad port", listen);
		return false;
	}
	*port = (int)p;
	size_t n = (size_t)(colon - listen);
	const char *h = listen;
	if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
		h++;
		n -= 2;
	}
	if (n >= hostlen) {
		snprintf(err, errlen, "--listen %s: bad host", listen);
		return false;
	}
	memcpy(host, h, n);
	host[n] = '\0';
	if (strcmp(host, "localhost") == 0)
		snprintf(host, hostlen, "127.0.0.1");
	if (url_host_is_loopback(host))
		return true;
	snprintf(err, errlen, "--listen %s: only loopback addresses are allowed", listen);
	return false;
}

bool sim_server_start(struct sim_ctx *ctx, const char *listen_at, const char *tls_cert,
                      const char *tls_key, char *bound, size_t boundlen, char *err, size_t errlen)
{
	char host[64];
	int port;
	if (!parse_listen(listen_at, host, sizeof(host), &port, err, errlen))
		return false;
	if (tls_cert != NULL) {
		ctx->tls = sim_tls_new(tls_cert, tls_key, ctx->http2, err, errlen);
		if (ctx->tls == NULL)
			return false;
	}
	ctx->http = evhttp_new(ctx->base);
	if (ctx->http == NULL) {
		snprintf(err, errlen, "cannot create the HTTP server");
		return false;
	}
	evhttp_set_allowed_methods(ctx->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE |
	                                          EVHTTP_REQ_PUT | EVHTTP_REQ_HEAD);
	evhttp_set_max_body_size(ctx->http, 1 << 20);
	evhttp_set_timeout(ctx->http, 3600);
	evhttp_set_gencb(ctx->http, dispatch, ctx);
	evhttp_set_bevcb(ctx->http, ctx->tls != NULL ? tls_bevcb : plain_bevcb, ctx);
	struct evhttp_bound_socket *bs =
	    evhttp_bind_socket_with_handle(ctx->http, host, (ev_uint16_t)port);
	if (bs == NULL) {
		snprintf(err, errlen, "cannot listen on %s", listen_at);
		return false;
	}
	int lfd = evhttp_bound_socket_get_fd(bs);
	/* Accepted sockets inherit TCP_NODELAY from the listener. Without it a TLS answer
	 * (the headers and the body go out as two records) stalls on Nagle's algorithm
	 * until the client's delayed ACK, some 40 ms per answer. */
	int one = 1;
	if (setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
		snprintf(err, errlen, "cannot set TCP_NODELAY on %s", listen_at);
		return false;
	}
	/* A connection is accepted with its first bytes (a request, a TLS ClientHello), not
	 * at the end of its handshake: one wake-up of the simulator per new connection
	 * instead of two. Where the daemon runs beside the simulator, each handshake's
	 * wake-up preempted the daemon inside its connect(): at 1,000 new connections 416-456
	 * times, 87 with this, and the daemon's 1,000 connects took 56 ms instead of 63. */
	int defer_s = 1;
	if (setsockopt(lfd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof(defer_s)) != 0) {
		snprintf(err, errlen, "cannot set TCP_DEFER_ACCEPT on %s", listen_at);
		return false;
	}
	/* libevent listens with a backlog of 128: a daemon opening 1,000 connections at once
	 * (max_inflight 1000) had some 150 SYNs dropped and retried a second later. Calling
	 * listen() again raises the backlog (the kernel caps it at net.core.somaxconn). */
	if (listen(lfd, 4096) != 0) {
		snprintf(err, errlen, "cannot raise the listen backlog on %s", listen_at);
		return false;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(lfd, (struct sockaddr *)&ss, &sl) != 0) {
		snprintf(err, errlen, "getsockname failed");
		return false;
	}
	int actual = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
	                                      : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (strchr(host, ':') != NULL)
		snprintf(bound, boundlen, "[%s]:%d", host, actual);
	else
		snprintf(bound, boundlen, "%s:%d", host, actual);
	return true;
}

void sim_server_stop(struct sim_ctx *ctx)
{
	while (ctx->pending != NULL) {
		struct sim_pending *p = ctx->pending;
		close_connection(&p->req, false);
		pending_free(p);
	}
	/* before evhttp_free, which frees their bufferevents with its connections */
	sim_h2_close_all(ctx);
	if (ctx->http != NULL)
		evhttp_free(ctx->http);
	ctx->http = NULL;
	/* those whose close hook evhttp did not run */
	for (size_t i = 0; i < ctx->nconns; i++) {
		if (ctx->conns[i] != NULL)
			conn_free(ctx->conns[i]);
	}
	free(ctx->conns);
	ctx->conns = NULL;
	ctx->nconns = 0;
	sim_tls_free(ctx->tls);
	ctx->tls = NULL;
}
