#include "autoconfig.h"

#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "h2.h"
#include "xmalloc.h"

/* The most plaintext one TLS record carries. */
#define TLS_RECORD_MAX 16384

struct sim_tls {
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t priority;
	gnutls_datum_t ticket_key; /* one per process: every connection's tickets resume */
	bool http2;                /* ALPN offers h2 */
	bool flushing;             /* inside conn_flush: the output filter encrypts */
	uint64_t stalls;           /* writes that found the socket full (each try counted) */
	uint64_t resumed;
};

/* One TLS connection: the session, the socket's bufferevent it reads through, and the
 * filter evhttp (or h2.c) reads and writes plaintext on. The filter owns this. */
struct tls_conn {
	struct sim_ctx *ctx;
	struct sim_tls *tls;
	gnutls_session_t session;
	struct bufferevent *under; /* the socket's: records come into its input; writes go past it */
	struct bufferevent *bev;   /* the filter */
	struct event *due;         /* active: the output goes out on the loop's next pass */
	struct event *writable;    /* the socket has room again (made on the first stall) */
	struct event *readable;    /* reads the socket after the first bytes (conn_take_reads) */
	bool reads_paused;         /* readable is off while evhttp reads no more */
	bool sending;              /* a record is half out: the session sends the rest */
	bool shaken;               /* the handshake is over */
	bool failed;               /* a fatal TLS error: the connection is reported broken */
};

static const gnutls_datum_t alpn_protocols[] = {{(unsigned char *)"h2", 2},
                                                {(unsigned char *)"http/1.1", 8}};

/* The socket under a connection (-1 before evhttp gave it one). */
static evutil_socket_t conn_fd(struct tls_conn *c)
{
	return bufferevent_getfd(c->under);
}

/* GnuTLS transport: records come from the socket bufferevent's input. */
static ssize_t tls_pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
	struct tls_conn *c = p;
	struct evbuffer *in = bufferevent_get_input(c->under);
	if (evbuffer_get_length(in) == 0) {
		gnutls_transport_set_errno(c->session, EAGAIN);
		return -1;
	}
	return evbuffer_remove(in, data, len);
}

/* GnuTLS transport: records go straight to the socket; a full socket is EAGAIN, and
 * the session keeps the rest until the socket has room (tls_out). */
static ssize_t tls_push(gnutls_transport_ptr_t p, const void *data, size_t len)
{
	struct tls_conn *c = p;
	ssize_t n = send(conn_fd(c), data, len, MSG_NOSIGNAL);
	if (n < 0)
		gnutls_transport_set_errno(c->session, errno == EWOULDBLOCK ? EAGAIN : errno);
	return n;
}

/* Marks the connection broken; its owner hears of it from the loop (tls_due). */
static void conn_fail(struct tls_conn *c)
{
	c->failed = true;
	event_active(c->due, 0, 1);
}

/* Loop callback: the socket has room again; the handshake or the output goes on. */
static void tls_writable(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct tls_conn *c = arg;
	if (!c->shaken)
		bufferevent_trigger(c->under, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
	else
		event_active(c->due, 0, 1);
}

/* Loop callback: the socket's bytes go into the socket bufferevent's input and on to
 * the filter (tls_in), its end or error to the filter's owner; while evhttp reads no
 * more (a request is being answered) they wait in the socket (conn_resume_reads). The
 * connection may be gone after the trigger. */
static void tls_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct tls_conn *c = arg;
	if (!(bufferevent_get_enabled(c->bev) & EV_READ)) {
		event_del(c->readable);
		c->reads_paused = true;
		return;
	}
	struct evbuffer *in = bufferevent_get_input(c->under);
	/* a bufferevent's input takes bytes only from the bufferevent: its own read
	 * unfreezes it the same way */
	evbuffer_unfreeze(in, 0);
	int n = evbuffer_read(in, fd, -1);
	evbuffer_freeze(in, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n > 0) {
		bufferevent_trigger(c->under, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
		return;
	}
	event_del(c->readable);
	bufferevent_trigger_event(c->under, (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR) | BEV_EVENT_READING,
	                          0);
}

/* The socket's reads move from its bufferevent to the connection's own event at the
 * first bytes: the filter stops the bufferevent's reading each time evhttp reads no more
 * (a request is in) and starts it again with the answer, and libevent made of each such
 * pair one epoll_ctl per request that set the same events again. */
static bool conn_take_reads(struct tls_conn *c)
{
	c->readable = event_new(bufferevent_get_base(c->under), conn_fd(c), EV_READ | EV_PERSIST,
	                        tls_readable, c);
	if (c->readable == NULL || event_add(c->readable, NULL) != 0)
		return false;
	return bufferevent_disable(c->under, EV_READ) == 0;
}

/* Reads the socket again once evhttp does (it starts reading again when an answer went
 * out: tls_due comes after every answer). */
static void conn_resume_reads(struct tls_conn *c)
{
	if (c->reads_paused && (bufferevent_get_enabled(c->bev) & EV_READ) &&
	    event_add(c->readable, NULL) == 0)
		c->reads_paused = false;
}

/* Waits for room on the socket (a write or the handshake got EAGAIN). */
static bool conn_wait_writable(struct tls_conn *c)
{
	if (c->writable == NULL) {
		c->writable = event_new(bufferevent_get_base(c->under), conn_fd(c), EV_WRITE,
		                        tls_writable, c);
		if (c->writable == NULL)
			return false;
	}
	return event_add(c->writable, NULL) == 0;
}

/* The handshake is over: counts a resumption, and hands an h2 connection over. */
static void conn_shaken(struct tls_conn *c)
{
	c->shaken = true;
	if (gnutls_session_is_resumed(c->session))
		c->tls->resumed++;
	gnutls_datum_t proto;
	if (c->tls->http2 && gnutls_alpn_get_selected_protocol(c->session, &proto) == 0 &&
	    proto.size == 2 && memcmp(proto.data, "h2", 2) == 0)
		sim_h2_start(c->ctx, c->bev);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
		event_active(c->due, 0, 1);
}

/* Filter input: the handshake, then every whole record's plaintext into dst. */
static enum bufferevent_filter_result tls_in(struct evbuffer *src, struct evbuffer *dst,
                                             ev_ssize_t limit, enum bufferevent_flush_mode mode,
                                             void *arg)
{
	(void)limit, (void)mode;
	struct tls_conn *c = arg;
	if (c->failed)
		return BEV_ERROR;
	if (c->readable == NULL && !conn_take_reads(c)) {
		conn_fail(c);
		return BEV_ERROR;
	}
	if (!c->shaken) {
		int r = gnutls_handshake(c->session);
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
			if (gnutls_record_get_direction(c->session) == 1 && !conn_wait_writable(c))
				conn_fail(c);
			return BEV_NEED_MORE;
		}
		if (r < 0) {
			conn_fail(c);
			return BEV_ERROR;
		}
		conn_shaken(c);
	}
	bool got = false;
	for (;;) {
		char buf[TLS_RECORD_MAX];
		ssize_t n = gnutls_record_recv(c->session, buf, sizeof(buf));
		if (n > 0) {
			if (evbuffer_add(dst, buf, (size_t)n) != 0) {
				conn_fail(c);
				return BEV_ERROR;
			}
			got = true;
			/* the session reads records exactly: no more bytes, no more records */
			if (evbuffer_get_length(src) == 0 &&
			    gnutls_record_check_pending(c->session) == 0)
				return BEV_OK;
		} else if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
			return got ? BEV_OK : BEV_NEED_MORE;
		} else if (n == 0) {
			/* close_notify: the socket's EOF follows */
			return got ? BEV_OK : BEV_NEED_MORE;
		} else if (n == GNUTLS_E_REHANDSHAKE) {
			/* no renegotiation: a TLS 1.2 client cannot ask for new handshakes */
			(void)gnutls_alert_send(c->session, GNUTLS_AL_WARNING,
			                        GNUTLS_A_NO_RENEGOTIATION);
		} else if (n != GNUTLS_E_WARNING_ALERT_RECEIVED) {
			conn_fail(c);
			return BEV_ERROR;
		}
	}
}

/* Filter output: only inside conn_flush (never piece by piece as evhttp queues an
 * answer), src's bytes as one record (up to 16 KiB at a time), written to the socket.
 * src is drained once the socket took the record, so evhttp's write callback (which
 * may close the connection) runs only then; when the socket is full the session keeps
 * the rest of the record and sends it when the socket has room. */
static enum bufferevent_filter_result tls_out(struct evbuffer *src, struct evbuffer *dst,
                                              ev_ssize_t limit, enum bufferevent_flush_mode mode,
                                              void *arg)
{
	(void)dst, (void)limit, (void)mode;
	struct tls_conn *c = arg;
	if (!c->tls->flushing || !c->shaken || c->failed || evbuffer_get_length(src) == 0)
		return BEV_NEED_MORE;
	ssize_t r;
	if (c->sending) {
		r = gnutls_record_send(c->session, NULL, 0);
	} else {
		char buf[TLS_RECORD_MAX];
		ev_ssize_t n = evbuffer_copyout(src, buf, sizeof(buf));
		r = n > 0 ? gnutls_record_send(c->session, buf, (size_t)n)
		          : GNUTLS_E_INTERNAL_ERROR;
	}
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
		c->sending = true;
		c->tls->stalls++;
		if (!conn_wait_writable(c))
			conn_fail(c);
		return BEV_NEED_MORE;
	}
	c->sending = false;
	if (r <= 0) {
		conn_fail(c);
		return BEV_ERROR;
	}
	evbuffer_drain(src, (size_t)r);
	return BEV_OK;
}

/* Encrypts and writes the connection's output now; the connection may be gone after. */
static void conn_flush(struct sim_tls *t, struct bufferevent *bev)
{
	t->flushing = true;
	(void)bufferevent_flush(bev, EV_WRITE, BEV_FLUSH);
	t->flushing = false;
}

/* Loop callback: the output queued since the last pass goes out (and the socket is
 * read again if evhttp now reads), or a broken connection is reported to its owner
 * (who frees it). */
static void tls_due(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct tls_conn *c = arg;
	if (c->failed) {
		bufferevent_trigger_event(c->bev, BEV_EVENT_ERROR | BEV_EVENT_READING, 0);
		return;
	}
	/* held, so that c outlives an answer after which evhttp frees the connection */
	struct bufferevent *bev = c->bev;
	bufferevent_incref(bev);
	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0 &&
	    (c->writable == NULL || !event_pending(c->writable, EV_WRITE, NULL)))
		conn_flush(c->tls, bev);
	conn_resume_reads(c);
	bufferevent_decref(bev);
}

/* Output-buffer hook: an answer (or part of one) was queued; it goes out once evhttp
 * or the HTTP/2 session is done queueing, on the loop's next pass. */
static void tls_output_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	(void)buf;
	struct tls_conn *c = arg;
	if (info->n_added > 0)
		event_active(c->due, 0, 1);
}

/* The filter's context is freed with it (or by a failed sim_tls_accept): the session
 * and the connection's events. */
static void conn_free(void *arg)
{
	struct tls_conn *c = arg;
	if (c->due != NULL)
		event_free(c->due);
	if (c->writable != NULL)
		event_free(c->writable);
	if (c->readable != NULL)
		event_free(c->readable);
	if (c->session != NULL)
		gnutls_deinit(c->session);
	free(c);
}

/* Sets up a new server session with the context's credentials and offers. */
static bool session_new(struct tls_conn *c)
{
	struct sim_tls *t = c->tls;
	if (gnutls_init(&c->session, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0)
		return false;
	gnutls_transport_set_ptr(c->session, c);
	gnutls_transport_set_pull_function(c->session, tls_pull);
	gnutls_transport_set_push_function(c->session, tls_push);
	return gnutls_priority_set(c->session, t->priority) == 0 &&
	       gnutls_credentials_set(c->session, GNUTLS_CRD_CERTIFICATE, t->cred) == 0 &&
	       gnutls_session_ticket_enable_server(c->session, &t->ticket_key) == 0 &&
	       (!t->http2 || gnutls_alpn_set_protocols(c->session, alpn_protocols, 2,
	                                               GNUTLS_ALPN_SERVER_PRECEDENCE) == 0);
}

struct bufferevent *sim_tls_accept(struct sim_ctx *ctx, struct event_base *base)
{
	struct tls_conn *c = xcalloc(1, sizeof(*c));
	c->ctx = ctx;
	c->tls = ctx->tls;
	bool ok = session_new(c);
	if (ok) {
		/* at the default priority: a higher one would end the loop's pass over the
		 * ready connections at every answer queued (one epoll_wait per request) */
		c->due = event_new(base, -1, 0, tls_due, c);
		ok = c->due != NULL;
	}
	if (ok)
		c->under = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->under != NULL)
		c->bev = bufferevent_filter_new(c->under, tls_in, tls_out, BEV_OPT_CLOSE_ON_FREE,
		                                conn_free, c);
	if (c->bev == NULL) {
		if (c->under != NULL)
			bufferevent_free(c->under);
		conn_free(c);
		return NULL;
	}
	if (evbuffer_add_cb(bufferevent_get_output(c->bev), tls_output_added, c) == NULL) {
		bufferevent_free(c->bev);
		return NULL;
	}
	return c->bev;
}

bool sim_tls_flush(struct sim_tls *t, struct bufferevent *bev)
{
	uint64_t stalls = t->stalls;
	conn_flush(t, bev);
	return t->stalls == stalls;
}

uint64_t sim_tls_resumed(const struct sim_tls *t)
{
	return t->resumed;
}

uint64_t sim_tls_stalls(const struct sim_tls *t)
{
	return t->stalls;
}

/* Reads a PEM file whole; false with a reason naming it. */
static bool load_pem(const char *path, const char *what, gnutls_datum_t *out, char *err,
                     size_t errlen)
{
	int r = gnutls_load_file(path, out);
	if (r < 0)
		snprintf(err, errlen, "%s: cannot read the TLS %s: %s", path, what,
		         gnutls_strerror(r));
	return r >= 0;
}

/* Checks that data holds a certificate chain (cert) or a private key (key). */
static bool pem_parses(const gnutls_datum_t *data, bool is_key, const char *path, char *err,
                       size_t errlen)
{
	int r;
	if (is_key) {
		gnutls_x509_privkey_t k;
		if ((r = gnutls_x509_privkey_init(&k)) == 0) {
			r = gnutls_x509_privkey_import2(k, data, GNUTLS_X509_FMT_PEM, NULL, 0);
			gnutls_x509_privkey_deinit(k);
		}
	} else {
		gnutls_x509_crt_t *crts = NULL;
		unsigned int n = 0;
		r = gnutls_x509_crt_list_import2(&crts, &n, data, GNUTLS_X509_FMT_PEM, 0);
		for (unsigned int i = 0; r >= 0 && i < n; i++)
			gnutls_x509_crt_deinit(crts[i]);
		gnutls_free(crts);
	}
	if (r < 0)
		snprintf(err, errlen, "%s: cannot load the TLS %s: %s", path,
		         is_key ? "key" : "certificate", gnutls_strerror(r));
	return r >= 0;
}

/* Loads the chain and the key into t's credentials, naming the file that fails. */
static bool load_credentials(struct sim_tls *t, const char *cert, const char *key, char *err,
                             size_t errlen)
{
	gnutls_datum_t c = {NULL, 0}, k = {NULL, 0};
	bool ok = load_pem(cert, "certificate", &c, err, errlen) &&
	          load_pem(key, "key", &k, err, errlen) &&
	          pem_parses(&c, false, cert, err, errlen) &&
	          pem_parses(&k, true, key, err, errlen);
	if (ok) {
		int r = gnutls_certificate_set_x509_key_mem2(t->cred, &c, &k, GNUTLS_X509_FMT_PEM,
		                                             NULL, 0);
		if (r < 0)
			snprintf(err, errlen, "%s: the TLS key does not match %s: %s", key, cert,
			         gnutls_strerror(r));
		ok = r >= 0;
	}
	gnutls_free(c.data);
	if (k.data != NULL)
		gnutls_memset(k.data, 0, k.size);
	gnutls_free(k.data);
	return ok;
}

struct sim_tls *sim_tls_new(const char *cert, const char *key, bool http2, char *err, size_t errlen)
{
	struct sim_tls *t = xcalloc(1, sizeof(*t));
	t->http2 = http2;
	if (gnutls_certificate_allocate_credentials(&t->cred) < 0 ||
	    gnutls_priority_init2(&t->priority,
	                          "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-"
	                          "GCM:+AES-256-GCM:+CHACHA20-POLY1305:%SERVER_PRECEDENCE",
	                          NULL, 0) < 0 ||
	    gnutls_session_ticket_key_generate(&t->ticket_key) < 0) {
		snprintf(err, errlen, "cannot set up TLS");
		sim_tls_free(t);
		return NULL;
	}
	if (!load_credentials(t, cert, key, err, errlen)) {
		sim_tls_free(t);
		return NULL;
	}
	return t;
}

void sim_tls_free(struct sim_tls *t)
{
	if (t == NULL)
		return;
	if (t->cred != NULL)
		gnutls_certificate_free_credentials(t->cred);
	if (t->priority != NULL)
		gnutls_priority_deinit(t->priority);
	if (t->ticket_key.data != NULL) {
		gnutls_memset(t->ticket_key.data, 0, t->ticket_key.size);
		gnutls_free(t->ticket_key.data);
	}
	free(t);
}
