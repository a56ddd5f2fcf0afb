#include "autoconfig.h"

#include "h2.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <nghttp2/nghttp2.h>

#include "server.h"
#include "timeutil.h"
#include "xmalloc.h"

/* The largest request body taken (evhttp's limit, sim_server_start). */
#define H2_MAX_BODY (1 << 20)
/* The most answer headers besides :status and content-length. */
#define H2_MAX_HEADERS 16

/* One HTTP/2 connection: the TLS bufferevent evhttp accepted, taken over after the
 * handshake chose h2, and its nghttp2 server session. */
struct sim_h2_conn {
	struct sim_ctx *ctx;
	struct bufferevent *bev;
	struct evhttp_connection *evcon; /* evhttp's, which owns bev; freed with the connection */
	nghttp2_session *session;
	struct event *peek; /* one-shot, at SIM_PRIO_PEEK: runs before the read */
	int64_t arrival_us; /* monotonic: the peeked receive time of the next bytes; 0: none */
	int64_t batch_us;   /* when the requests of the read being handled arrived */
	bool in_recv;       /* inside nghttp2_session_mem_recv: no sending now */
	bool dying;         /* being freed: stream close callbacks do nothing */
	struct sim_h2_stream *streams; /* open streams */
	struct sim_h2_conn *prev, *next;
};

/* One stream: the request as it comes in, then the answer as it goes out. */
struct sim_h2_stream {
	struct sim_h2_conn *conn; /* NULL once the stream or its connection closed */
	int32_t id;
	enum evhttp_cmd_type method;
	bool method_ok; /* :method is one evhttp's front end also takes */
	char *path;     /* :path without its query; owned */
	struct evkeyvalq in, out;
	struct evbuffer *body;
	bool dispatched; /* the request went to the handlers */
	bool waiting;    /* its answer waits on a timer (sim_h2_wait) */
	char *answer;    /* owned: the answer body being sent */
	size_t alen, aoff;
	struct sim_h2_stream *prev, *next;
};

/* Frees a stream's memory (it is already unlinked). */
static void stream_free(struct sim_h2_stream *st)
{
	evhttp_clear_headers(&st->in);
	evhttp_clear_headers(&st->out);
	evbuffer_free(st->body);
	free(st->path);
	free(st->answer);
	free(st);
}

/* Unlinks a stream from its connection; it is then detached (conn NULL). */
static void stream_unlink(struct sim_h2_stream *st)
{
	struct sim_h2_conn *c = st->conn;
	if (c == NULL)
		return;
	if (st->prev)
		st->prev->next = st->next;
	else
		c->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	st->prev = st->next = NULL;
	st->conn = NULL;
}

/* The stream is over for nghttp2 or for its connection: freed now, or, while its
 * answer waits on a timer, kept detached until that answer (sim_h2_reply, _abort). */
static void stream_done(struct sim_h2_stream *st)
{
	stream_unlink(st);
	if (!st->waiting)
		stream_free(st);
}

/* Frees a connection: its session, its streams (but those whose answer waits), and
 * evhttp's connection with the bufferevent and socket. */
static void conn_free(struct sim_h2_conn *c)
{
	struct sim_ctx *ctx = c->ctx;
	c->dying = true;
	while (c->streams != NULL)
		stream_done(c->streams);
	nghttp2_session_del(c->session);
	if (c->prev)
		c->prev->next = c->next;
	else
		ctx->h2conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	if (c->peek != NULL)
		event_free(c->peek);
	evhttp_connection_free(c->evcon);
	free(c);
}

/* Serialises what the session has to send into the bufferevent; frees the connection
 * when the session is over (GOAWAY exchanged, or an error) and the output is out. */
static void conn_flush(struct sim_h2_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	const uint8_t *data;
	ssize_t n;
	while ((n = nghttp2_session_mem_send(c->session, &data)) > 0)
		evbuffer_add(out, data, (size_t)n);
	if (n < 0 || (!nghttp2_session_want_read(c->session) &&
	              !nghttp2_session_want_write(c->session) && evbuffer_get_length(out) == 0))
		conn_free(c);
}

/* Sends the session's output unless inside its receive (then the read does). */
static void conn_kick(struct sim_h2_conn *c)
{
	if (c != NULL && !c->in_recv)
		conn_flush(c);
}

/* Loop callback: the next bytes are in; their kernel receive time is kept. */
static void conn_peek(evutil_socket_t fd, short what, void *arg)
{
	struct sim_h2_conn *c = arg;
	(void)what;
	int64_t at = sim_server_peek_arrival(fd);
	if (at > 0 && c->arrival_us == 0)
		c->arrival_us = at;
}

/* Arms the one-shot peek for the connection's next bytes. */
static void conn_watch(struct sim_h2_conn *c)
{
	if (c->peek != NULL && !event_pending(c->peek, EV_READ, NULL))
		(void)event_add(c->peek, NULL);
}

/* Bufferevent read callback: feeds the decrypted bytes to the session. */
static void conn_read(struct bufferevent *bev, void *arg)
{
	struct sim_h2_conn *c = arg;
	int64_t now = sim_time_mono_us();
	c->batch_us = c->arrival_us > 0 && c->arrival_us <= now ? c->arrival_us : now;
	c->arrival_us = 0;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	const uint8_t *data = evbuffer_pullup(in, -1);
	c->in_recv = true;
	ssize_t n = nghttp2_session_mem_recv(c->session, data, len);
	c->in_recv = false;
	if (n < 0) {
		conn_free(c);
		return;
	}
	evbuffer_drain(in, (size_t)n);
	conn_watch(c);
	conn_flush(c);
}

/* Bufferevent write callback: the output is out; the session may have more. */
static void conn_write(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_flush(arg);
}

/* Bufferevent event callback: the connection is gone (EOF, error, timeout). */
static void conn_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev, (void)what;
	conn_free(arg);
}

/* Starts the session on a connection whose handshake is over: the peek of each read's
 * arrival time, both directions on, the SETTINGS out. */
static void conn_start(struct sim_h2_conn *c)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	int one = 1;
	if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) == 0) {
		c->peek = event_new(c->ctx->base, fd, EV_READ, conn_peek, c);
		if (c->peek != NULL)
			(void)event_priority_set(c->peek, SIM_PRIO_PEEK);
	}
	(void)bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	conn_watch(c);
	conn_flush(c);
}

/* The method evhttp's front end would report, false for one it does not take. */
static bool method_of(const char *m, enum evhttp_cmd_type *out)
{
	static const struct {
		const char *name;
		enum evhttp_cmd_type type;
	} methods[] = {{"GET", EVHTTP_REQ_GET},
	               {"POST", EVHTTP_REQ_POST},
	               {"DELETE", EVHTTP_REQ_DELETE},
	               {"PUT", EVHTTP_REQ_PUT},
	               {"HEAD", EVHTTP_REQ_HEAD}};
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (strcmp(m, methods[i].name) == 0) {
			*out = methods[i].type;
			return true;
		}
	}
	return false;
}

/* nghttp2: a request's HEADERS begin: a new stream. */
static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
	struct sim_h2_conn *c = arg;
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct sim_h2_stream *st = xcalloc(1, sizeof(*st));
	st->conn = c;
	st->id = frame->hd.stream_id;
	TAILQ_INIT(&st->in);
	TAILQ_INIT(&st->out);
	st->body = evbuffer_new();
	st->next = c->streams;
	if (c->streams)
		c->streams->prev = st;
	c->streams = st;
	return nghttp2_session_set_stream_user_data(session, st->id, st);
}

/* nghttp2: one request header (names are lower case, both NUL-terminated). */
static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *arg)
{
	(void)namelen, (void)valuelen, (void)flags, (void)arg;
	struct sim_h2_stream *st =
	    nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (st == NULL || st->dispatched)
		return 0;
	const char *n = (const char *)name, *v = (const char *)value;
	if (strcmp(n, ":method") == 0) {
		st->method_ok = method_of(v, &st->method);
	} else if (strcmp(n, ":path") == 0) {
		free(st->path);
		st->path = xstrndup(v, strcspn(v, "?#"));
	} else if (n[0] != ':') {
		/* evhttp refuses the same values (CR, LF) */
		(void)evhttp_add_header(&st->in, n, v);
	}
	return 0;
}

/* nghttp2: request body bytes. */
static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *arg)
{
	(void)flags, (void)arg;
	struct sim_h2_stream *st = nghttp2_session_get_stream_user_data(session, stream_id);
	if (st == NULL || st->dispatched)
		return 0;
	if (evbuffer_get_length(st->body) + len > H2_MAX_BODY)
		return nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id,
		                                 NGHTTP2_REFUSED_STREAM);
	evbuffer_add(st->body, data, len);
	return 0;
}

/* Hands a whole request to the handlers, as evhttp's front end does. */
static void stream_dispatch(struct sim_h2_stream *st)
{
	struct sim_h2_conn *c = st->conn;
	st->dispatched = true;
	struct sim_req req = {.method = st->method,
	                      .in = &st->in,
	                      .out = &st->out,
	                      .body = st->body,
	                      .ev = NULL,
	                      .h2 = st};
	if (!st->method_ok || st->path == NULL) {
		/* what evhttp answers a method it does not take */
		sim_h2_reply(st, 501, "", 0);
		return;
	}
	sim_server_dispatch(c->ctx, &req, st->path, c->batch_us);
}

/* nghttp2: a frame is in; a request ends with END_STREAM on its HEADERS or DATA. */
static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
	(void)arg;
	if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	struct sim_h2_stream *st =
	    nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (st != NULL && !st->dispatched)
		stream_dispatch(st);
	return 0;
}

/* nghttp2: a stream closed (answered, reset by the client, or refused). */
static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *arg)
{
	(void)error_code;
	struct sim_h2_conn *c = arg;
	struct sim_h2_stream *st = nghttp2_session_get_stream_user_data(session, stream_id);
	if (st == NULL || c->dying)
		return 0;
	(void)nghttp2_session_set_stream_user_data(session, stream_id, NULL);
	stream_done(st);
	return 0;
}

/* nghttp2 data source: the answer body, in one piece or more. */
static ssize_t answer_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                           uint32_t *data_flags, nghttp2_data_source *source, void *arg)
{
	(void)session, (void)stream_id, (void)arg;
	struct sim_h2_stream *st = source->ptr;
	size_t n = st->alen - st->aoff;
	if (n > length)
		n = length;
	memcpy(buf, st->answer + st->aoff, n);
	st->aoff += n;
	if (st->aoff == st->alen)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* Makes a server session for a connection and queues its SETTINGS. */
static bool conn_session(struct sim_h2_conn *c)
{
	nghttp2_session_callbacks *cbs;
	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return false;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	int rv = nghttp2_session_server_new(&c->session, cbs, c);
	nghttp2_session_callbacks_del(cbs);
	if (rv != 0)
		return false;
	/* as many streams as the daemon's largest window (max_inflight 1000) */
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000}};
	return nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 1) == 0;
}

/* The connection leaves evhttp (which keeps owning the bufferevent until conn_free)
 * for an HTTP/2 session. */
void sim_h2_start(struct sim_ctx *ctx, struct bufferevent *bev)
{
	bufferevent_data_cb rd, wr;
	bufferevent_event_cb ev;
	void *evcon = NULL;
	bufferevent_getcb(bev, &rd, &wr, &ev, &evcon);
	if (evcon == NULL)
		return;
	struct sim_h2_conn *c = xcalloc(1, sizeof(*c));
	c->ctx = ctx;
	c->bev = bev;
	c->evcon = evcon;
	if (!conn_session(c)) {
		if (c->session != NULL)
			nghttp2_session_del(c->session);
		free(c);
		return;
	}
	c->next = ctx->h2conns;
	if (ctx->h2conns)
		ctx->h2conns->prev = c;
	ctx->h2conns = c;
	ctx->h2_connections++;
	/* evhttp's idle timeout no longer applies: HTTP/2 keeps a connection open */
	(void)bufferevent_set_timeouts(bev, NULL, NULL);
	bufferevent_setcb(bev, conn_read, conn_write, conn_event, c);
	conn_start(c);
}

/* Lower-cases a header name into buf (HTTP/2 names are lower case). */
static size_t lower_name(const char *name, char *buf, size_t buflen)
{
	size_t n = 0;
	for (; name[n] != '\0' && n + 1 < buflen; n++)
		buf[n] = (char)tolower((unsigned char)name[n]);
	buf[n] = '\0';
	return n;
}

void sim_h2_reply(struct sim_h2_stream *st, int status, const char *body, size_t len)
{
	struct sim_h2_conn *c = st->conn;
	st->waiting = false;
	if (c == NULL) {
		/* the client reset the stream or closed the connection meanwhile */
		stream_free(st);
		return;
	}
	free(st->answer);
	st->answer = xmalloc(len + 1);
	memcpy(st->answer, body, len);
	st->alen = len;
	st->aoff = 0;
	char statusbuf[8], lenbuf[24], names[H2_MAX_HEADERS][64];
	snprintf(statusbuf, sizeof(statusbuf), "%d", status);
	snprintf(lenbuf, sizeof(lenbuf), "%zu", len);
	nghttp2_nv nva[H2_MAX_HEADERS + 2];
	size_t n = 0;
	nva[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)statusbuf, 7, strlen(statusbuf),
	                        NGHTTP2_NV_FLAG_NONE};
	nva[n++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)lenbuf, 14, strlen(lenbuf),
	                        NGHTTP2_NV_FLAG_NONE};
	struct evkeyval *h;
	TAILQ_FOREACH(h, &st->out, next)
	{
		if (n - 2 >= H2_MAX_HEADERS)
			break;
		size_t nl = lower_name(h->key, names[n - 2], sizeof(names[0]));
		nva[n] = (nghttp2_nv){(uint8_t *)names[n - 2], (uint8_t *)h->value, nl,
		                      strlen(h->value), NGHTTP2_NV_FLAG_NONE};
		n++;
	}
	nghttp2_data_provider prd = {.source.ptr = st, .read_callback = answer_read};
	if (nghttp2_submit_response(c->session, st->id, nva, n, &prd) != 0)
		(void)nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id,
		                                NGHTTP2_INTERNAL_ERROR);
	conn_kick(c);
}

void sim_h2_abort(struct sim_h2_stream *st, bool reset)
{
	struct sim_h2_conn *c = st->conn;
	st->waiting = false;
	if (c == NULL) {
		stream_free(st);
		return;
	}
	(void)nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id,
	                                reset ? NGHTTP2_INTERNAL_ERROR : NGHTTP2_CANCEL);
	conn_kick(c);
}

void sim_h2_wait(struct sim_h2_stream *st)
{
	st->waiting = true;
}

void sim_h2_close_all(struct sim_ctx *ctx)
{
	while (ctx->h2conns != NULL)
		conn_free(ctx->h2conns);
}
