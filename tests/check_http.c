#include "autoconfig.h"

#include "http.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <check.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define USERNAME "0f0e0d0c-1111-2222-3333-444455556666"
#define PASSWORD "s3cr3t-pa55"
#define AUTH_HEADER "Basic MGYwZTBkMGMtMTExMS0yMjIyLTMzMzMtNDQ0NDU1NTU2NjY2OnMzY3IzdC1wYTU1"
#define USER_AGENT "smartpayd-test/1"
#define SLOW_DELAY_MS 3000

/* A request the test server holds back (the slow path) until its timer fires. */
struct held {
	struct evhttp_request *req;
	struct event *timer;
	struct test_server *srv;
	struct held *next;
};

/* The in-process gateway stand-in: evhttp on 127.0.0.1, answering by path. */
struct test_server {
	struct event_base *base;
	struct evhttp *http;
	int port;
	struct held *held;
	int hits_echo, hits_retry, hits_slow, hits_close, hits_auth, hits_get;
	unsigned char *peer_seen; /* by client port: a connection already counted */
	int peers;                /* distinct client connections seen on /echo and /slow */
};

/* State shared by the callbacks of one test. */
struct test_ctx {
	struct event_base *base;
	struct http_client *client;
	struct test_server *srv;
	int expected;
	int done;
	int failures;
	struct http_result last;
	char *last_body;
	char *last_error;
	char *last_retry_after;
	int chain_left;
};

static bool in_submit;

/* Answers a request with a status, optional extra header and body. */
static void reply(struct evhttp_request *req, int code, const char *header, const char *value,
                  const char *body, size_t len)
{
	struct evbuffer *out = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "application/json");
	if (header != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(req), header, value);
	evbuffer_add(out, body, len);
	evhttp_send_reply(req, code, code == 200 ? "OK" : "Test", out);
	evbuffer_free(out);
}

/* Timer of a held request: answer it now. */
static void held_fire(evutil_socket_t fd, short what, void *arg)
{
	struct held *h = arg;
	struct test_server *srv = h->srv;

	for (struct held **pp = &srv->held; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	}
	reply(h->req, 200, NULL, NULL, "{\"late\":true}", 13);
	event_free(h->timer);
	free(h);
}

/* Checks one request header, collecting mismatches into msg. */
static void check_header(struct evhttp_request *req, const char *name, const char *want, char *msg,
                         size_t size)
{
	const char *got = evhttp_find_header(evhttp_request_get_input_headers(req), name);

	if (want == NULL && got == NULL)
		return;
	if (want != NULL && got != NULL && strcmp(got, want) == 0)
		return;
	snprintf(msg + strlen(msg), size - strlen(msg), "%s=%s ", name, got ? got : "(none)");
}

/* Counts the client connection a request came on (by its port). */
static void count_peer(struct test_server *srv, struct evhttp_request *req)
{
	char *addr = NULL;
	ev_uint16_t port = 0;

	evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &port);
	if (!srv->peer_seen[port]) {
		srv->peer_seen[port] = 1;
		srv->peers++;
	}
}

/* The server's request handler. */
static void serve(struct evhttp_request *req, void *arg)
{
	struct test_server *srv = arg;
	const char *uri = evhttp_request_get_uri(req);
	enum evhttp_cmd_type method = evhttp_request_get_command(req);

	if (strcmp(uri, "/echo") == 0 || strcmp(uri, "/slow") == 0)
		count_peer(srv, req);
	if (strcmp(uri, "/echo") == 0) {
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		size_t len = evbuffer_get_length(in);
		char *body = malloc(len + 1);
		srv->hits_echo++;
		evbuffer_remove(in, body, len);
		reply(req, method == EVHTTP_REQ_POST ? 200 : 405, NULL, NULL, body, len);
		free(body);
	} else if (strcmp(uri, "/retry") == 0) {
		srv->hits_retry++;
		reply(req, 503, "Retry-After", "7", "{\"message\":\"busy\"}", 18);
	} else if (strcmp(uri, "/slow") == 0) {
		struct held *h = calloc(1, sizeof(*h));
		struct timeval tv = {SLOW_DELAY_MS / 1000, (SLOW_DELAY_MS % 1000) * 1000};
		srv->hits_slow++;
		h->req = req;
		h->srv = srv;
		h->timer = evtimer_new(srv->base, held_fire, h);
		evtimer_add(h->timer, &tv);
		h->next = srv->held;
		srv->held = h;
	} else if (strcmp(uri, "/close") == 0) {
		/* hang up before any byte of an answer; the reply then fails and libevent
		 * frees the request with its connection */
		struct evhttp_connection *evcon = evhttp_request_get_connection(req);
		struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
		srv->hits_close++;
		shutdown(bufferevent_getfd(bev), SHUT_RDWR);
		reply(req, 200, NULL, NULL, "{}", 2);
	} else if (strcmp(uri, "/auth") == 0) {
		char msg[512] = "";
		const char *auth =
		    evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
		srv->hits_auth++;
		check_header(req, "Content-Type", "application/json", msg, sizeof(msg));
		check_header(req, "Accept-Language", "en-US", msg, sizeof(msg));
		check_header(req, "Origin", "https://shop.example", msg, sizeof(msg));
		check_header(req, "User-Agent", USER_AGENT, msg, sizeof(msg));
		check_header(req, "Expect", NULL, msg, sizeof(msg));
		if (auth == NULL || strcmp(auth, AUTH_HEADER) != 0)
			reply(req, 401, NULL, NULL, "{\"error\":\"unauthorized\"}", 24);
		else if (msg[0] != '\0')
			reply(req, 400, NULL, NULL, msg, strlen(msg));
		else
			reply(req, 200, NULL, NULL, "{\"paymentStatus\":\"CAPTURED\"}", 28);
	} else if (strcmp(uri, "/get") == 0) {
		srv->hits_get++;
		if (method == EVHTTP_REQ_GET)
			reply(req, 200, NULL, NULL, "{\"got\":1}", 9);
		else
			reply(req, 405, NULL, NULL, "{}", 2);
	} else if (strcmp(uri, "/headers") == 0) {
		/* the method, the X-Test header and the body's length, as the server saw them */
		char text[256];
		const char *x = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Test");
		int n = snprintf(text, sizeof(text), "%s %s %zu",
		                 method == EVHTTP_REQ_GET ? "GET" : "POST", x != NULL ? x : "-",
		                 evbuffer_get_length(evhttp_request_get_input_buffer(req)));
		reply(req, 200, NULL, NULL, text, (size_t)n);
	} else if (strcmp(uri, "/count") == 0) {
		/* how many User-Agent and Authorization headers came, and the first of each */
		char text[512];
		int ua = 0, auth = 0;
		const char *first_ua = "-", *first_auth = "-";
		for (struct evkeyval *h = evhttp_request_get_input_headers(req)->tqh_first;
		     h != NULL; h = h->next.tqe_next) {
			if (strcasecmp(h->key, "User-Agent") == 0 && ua++ == 0)
				first_ua = h->value;
			if (strcasecmp(h->key, "Authorization") == 0 && auth++ == 0)
				first_auth = h->value;
		}
		int n = snprintf(text, sizeof(text), "%d %s %d %s", ua, first_ua, auth, first_auth);
		reply(req, 200, NULL, NULL, text, (size_t)n);
	} else if (strcmp(uri, "/big") == 0) {
		size_t len = 2 * HTTP_BODY_MAX + 17;
		char *body = malloc(len);
		memset(body, 'a', len);
		reply(req, 200, NULL, NULL, body, len);
		free(body);
	} else {
		reply(req, 404, NULL, NULL, "{}", 2);
	}
}

/* Starts the server on 127.0.0.1 and an ephemeral port. */
static void server_start(struct test_server *srv, struct event_base *base)
{
	struct evhttp_bound_socket *bound;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);

	memset(srv, 0, sizeof(*srv));
	srv->base = base;
	srv->peer_seen = calloc(65536, 1);
	ck_assert_ptr_nonnull(srv->peer_seen);
	srv->http = evhttp_new(base);
	ck_assert_ptr_nonnull(srv->http);
	evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(srv->http, serve, srv);
	bound = evhttp_bind_socket_with_handle(srv->http, "127.0.0.1", 0);
	ck_assert_ptr_nonnull(bound);
	ck_assert_int_eq(
	    getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin, &slen), 0);
	srv->port = ntohs(sin.sin_port);
}

/* Answers held requests (which frees them even when the client has gone) and stops. */
static void server_stop(struct test_server *srv)
{
	while (srv->held != NULL) {
		struct held *h = srv->held;
		srv->held = h->next;
		event_free(h->timer);
		reply(h->req, 200, NULL, NULL, "{}", 2);
		free(h);
	}
	evhttp_free(srv->http);
	free(srv->peer_seen);
}

/* Builds a URL on the test server. */
static char *url_for(const struct test_server *srv, const char *path)
{
	char *url;

	ck_assert_int_gt(asprintf(&url, "http://127.0.0.1:%d%s", srv->port, path), 0);
	return url;
}

/* Ends a test loop that ran too long. */
static void watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct test_ctx *ctx = arg;

	ctx->failures++;
	event_base_loopbreak(ctx->base);
}

/* Runs the loop until the callbacks stop it, or for at most limit_s seconds. */
static void run_loop(struct test_ctx *ctx, int limit_s)
{
	struct timeval tv = {limit_s, 0};
	struct event *dog = evtimer_new(ctx->base, watchdog, ctx);

	evtimer_add(dog, &tv);
	event_base_dispatch(ctx->base);
	event_free(dog);
}

/* Runs the loop for ms milliseconds, whatever happens. */
static void run_for(struct event_base *base, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* Sets up a loop, a server and a client with the given total timeout. */
static void ctx_init(struct test_ctx *ctx, struct test_server *srv, int64_t timeout_ms)
{
	struct http_options opt = {.ca_file = NULL,
	                           .timeout_ms = timeout_ms,
	                           .connect_timeout_ms = 2000,
	                           .max_host_connections = 4,
	                           .user_agent = USER_AGENT};

	memset(ctx, 0, sizeof(*ctx));
	ctx->base = event_base_new();
	ck_assert_ptr_nonnull(ctx->base);
	server_start(srv, ctx->base);
	ctx->srv = srv;
	ctx->client = http_client_new(ctx->base, &opt);
	ck_assert_ptr_nonnull(ctx->client);
}

/* Frees what ctx_init made (the client may already be gone). */
static void ctx_done(struct test_ctx *ctx)
{
	http_client_free(ctx->client);
	server_stop(ctx->srv);
	event_base_free(ctx->base);
	free(ctx->last_body);
	free(ctx->last_error);
	free(ctx->last_retry_after);
}

/* Callback that keeps a copy of the one result a test waits for. */
static void keep_result(const struct http_result *res, void *arg)
{
	struct test_ctx *ctx = arg;

	if (in_submit)
		ctx->failures++;
	free(ctx->last_body);
	free(ctx->last_error);
	free(ctx->last_retry_after);
	ctx->last = *res;
	ctx->last_body = strndup(res->body, res->body_len);
	ctx->last_error = res->error ? strdup(res->error) : NULL;
	ctx->last_retry_after = res->retry_after ? strdup(res->retry_after) : NULL;
	ctx->last.body = ctx->last.error = ctx->last.retry_after = NULL;
	if (++ctx->done == ctx->expected)
		event_base_loopbreak(ctx->base);
}

/* Submits one request and waits for its result. */
static void one_request(struct test_ctx *ctx, const struct http_request *req)
{
	ctx->expected = ctx->done + 1;
	in_submit = true;
	ck_assert(http_submit(ctx->client, req, keep_result, ctx));
	in_submit = false;
	ck_assert_int_eq(ctx->done, ctx->expected - 1);
	ck_assert_uint_eq(http_inflight(ctx->client), 1);
	run_loop(ctx, 20);
	ck_assert_int_eq(ctx->failures, 0);
	ck_assert_int_eq(ctx->done, ctx->expected);
	ck_assert_uint_eq(http_inflight(ctx->client), 0);
}

/* POSTs "{}" to `path` of the test server and waits for the answer. */
static void post_empty(struct test_ctx *ctx, const char *path)
{
	char *url = url_for(ctx->srv, path);
	struct http_request req = {.method = "POST", .url = url, .body = "{}", .body_len = 2};
	one_request(ctx, &req);
	free(url);
}

/* Asserts that the last request got no answer: it timed out, or (timed_out false) it
 * failed in transport; either way with a message and no status. */
static void assert_no_answer(const struct test_ctx *ctx, bool timed_out)
{
	ck_assert_int_eq(ctx->last.timed_out, timed_out);
	ck_assert_int_eq(ctx->last.transport_error, !timed_out);
	ck_assert_int_eq(ctx->last.http_status, 0);
	ck_assert_ptr_nonnull(ctx->last_error);
}

/* Per-request argument of the concurrency test. */
struct echo_arg {
	struct test_ctx *ctx;
	char *body;
};

/* Callback of the concurrency test: status, body and completion counting. */
static void echo_done(const struct http_result *res, void *arg)
{
	struct echo_arg *ea = arg;
	struct test_ctx *ctx = ea->ctx;

	if (in_submit || res->http_status != 200 || res->transport_error || res->timed_out ||
	    res->error != NULL || res->body_len != strlen(ea->body) ||
	    memcmp(res->body, ea->body, res->body_len) != 0 || res->body[res->body_len] != '\0' ||
	    res->retry_after != NULL || res->body_truncated || res->elapsed_us <= 0)
		ctx->failures++;
	if (++ctx->done == ctx->expected)
		event_base_loopbreak(ctx->base);
}

START_TEST(test_many_concurrent)
{
	enum { N = 500 };
	struct test_server srv;
	struct test_ctx ctx;
	struct echo_arg *args = calloc(N, sizeof(*args));
	char *url;
	const char *const headers[] = {"Content-Type: application/json", "Accept-Language: en-US",
	                               NULL};

	ctx_init(&ctx, &srv, 10000);
	url = url_for(&srv, "/echo");
	ctx.expected = N;
	for (int i = 0; i < N; i++) {
		struct http_request req = {.method = "POST", .url = url, .headers = headers};
		args[i].ctx = &ctx;
		ck_assert_int_gt(
		    asprintf(&args[i].body, "{\"n\":%d,\"pad\":\"%0*d\"}", i, i % 300, 0), 0);
		req.body = args[i].body;
		req.body_len = strlen(args[i].body);
		in_submit = true;
		ck_assert(http_submit(ctx.client, &req, echo_done, &args[i]));
		in_submit = false;
	}
	ck_assert_int_eq(ctx.done, 0);
	ck_assert_uint_eq(http_inflight(ctx.client), N);
	run_loop(&ctx, 50);
	ck_assert_int_eq(ctx.failures, 0);
	ck_assert_int_eq(ctx.done, N);
	ck_assert_int_eq(srv.hits_echo, N);
	ck_assert_uint_eq(http_inflight(ctx.client), 0);
	for (int i = 0; i < N; i++)
		free(args[i].body);
	free(args);
	free(url);
	ctx_done(&ctx);
}
END_TEST

START_TEST(test_retry_after_header)
{
	struct test_server srv;
	struct test_ctx ctx;
	char *url;

	ctx_init(&ctx, &srv, 10000);
	post_empty(&ctx, "/retry");
	ck_assert_int_eq(ctx.last.http_status, 503);
	ck_assert(!ctx.last.transport_error);
	ck_assert(!ctx.last.timed_out);
	ck_assert_ptr_null(ctx.last_error);
	ck_assert_str_eq(ctx.last_retry_after, "7");
	ck_assert_str_eq(ctx.last_body, "{\"message\":\"busy\"}");
	ck_assert_int_eq(srv.hits_retry, 1);

	/* the next answer on the same client has no Retry-After */
	url = url_for(&srv, "/echo");
	{
		struct http_request req = {
		    .method = "POST", .url = url, .body = "x", .body_len = 1};
		one_request(&ctx, &req);
	}
	ck_assert_int_eq(ctx.last.http_status, 200);
	ck_assert_ptr_null(ctx.last_retry_after);
	free(url);
	ctx_done(&ctx);
}
END_TEST

START_TEST(test_timeout)
{
	struct test_server srv;
	struct test_ctx ctx;

	ctx_init(&ctx, &srv, 300);
	post_empty(&ctx, "/slow");
	assert_no_answer(&ctx, true);
	ck_assert_int_ge(ctx.last.elapsed_us, 250000);
	ck_assert_int_lt(ctx.last.elapsed_us, SLOW_DELAY_MS * 1000);
	ck_assert_int_eq(srv.hits_slow, 1);
	ctx_done(&ctx);
}
END_TEST

START_TEST(test_connection_refused)
{
	struct test_server srv;
	struct test_ctx ctx;
	int port = testutil_free_port(); /* a port that was just free */
	char *url;

	ck_assert_int_gt(port, 0);
	ctx_init(&ctx, &srv, 5000);
	ck_assert_int_gt(asprintf(&url, "http://127.0.0.1:%d/payment/capture", port), 0);
	{
		struct http_request req = {.method = "POST",
		                           .url = url,
		                           .body = "{}",
		                           .body_len = 2,
		                           .username = USERNAME,
		                           .password = PASSWORD};
		one_request(&ctx, &req);
	}
	assert_no_answer(&ctx, false);
	ck_assert_ptr_null(strstr(ctx.last_error, PASSWORD));
	ck_assert_uint_eq(ctx.last.body_len, 0);
	free(url);
	ctx_done(&ctx);
}
END_TEST

START_TEST(test_closed_without_answer)
{
	struct test_server srv;
	struct test_ctx ctx;

	ctx_init(&ctx, &srv, 5000);
	post_empty(&ctx, "/close");
	assert_no_answer(&ctx, false);
	ck_assert_int_ge(srv.hits_close, 1);
	ctx_done(&ctx);
}
END_TEST

START_TEST(test_basic_auth_and_headers)
{
	struct test_server srv;
	struct test_ctx ctx;
	char *url;
	const char *const headers[] = {"Content-Type: application/json", "Accept-Language: en-US",
	                               "Origin: https://shop.example", NULL};
	struct http_request req = {.method = "POST",
	                           .headers = headers,
	                           .body = "{\"a\":1}",
	                           .body_len = 7,
	                           .username = USERNAME,
	                           .password = PASSWORD};

	ctx_init(&ctx, &srv, 5000);
	url = url_for(&srv, "/auth");
	req.url = url;
	one_request(&ctx, &req);
	ck_assert_msg(ctx.last.http_status == 200, "status %d: %s", ctx.last.http_status,
	              ctx.last_body);
	ck_assert_str_eq(ctx.last_body, "{\"paymentStatus\":\"CAPTURED\"}");

	/* a wrong password is refused by the server */
	req.password = "wrong";
	one_request(&ctx, &req);
	ck_assert_int_eq(ctx.last.http_status, 401);
	ck_assert(!ctx.last.transport_error);

	/* no credentials: no Authorization header */
	req.username = NULL;
	req.password = NULL;
	one_request(&ctx, &req);
	ck_assert_int_eq(ctx.last.http_status, 401);

	/* nor right after a request with the right ones, on the same pooled handle */
	req.username = USERNAME;
	req.password = PASSWORD;
	one_request(&ctx, &req);
	ck_assert_int_eq(ctx.last.http_status, 200);
	req.username = NULL;
	req.password = NULL;
	one_request(&ctx, &req);
	ck_assert_int_eq(ctx.last.http_status, 401);
	ck_assert_int_eq(srv.hits_auth, 5);
	free(url);
	ctx_done(&ctx);
}
END_TEST

/* A pooled handle keeps the client's options and nothing of the request before: each
 * request goes with its own method, header lines and body, also past the header lists
 * the client keeps. */
START_TEST(test_pooled_handle_per_request)
{
	struct test_server srv;
	struct test_ctx ctx;
	static const char *const tags[] = {"a", "b", "c", "d", "e", "f", "g", "a", "b"};
	char line[32], want[64];

	ctx_init(&ctx, &srv, 5000);
	char *url = url_for(&srv, "/headers");
	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		snprintf(line, sizeof(line), "X-Test: %s", tags[i]);
		const char *const headers[] = {"Content-Type: application/json", line, NULL};
		const char *const one[] = {line, NULL};
		struct http_request post = {.method = "POST",
		                            .url = url,
		                            .headers = i % 2 == 0 ? headers : one,
		                            .body = "{\"k\":12345}",
		                            .body_len = i};
		struct http_request get = {.method = "GET", .url = url};

		one_request(&ctx, &post);
		snprintf(want, sizeof(want), "POST %s %zu", tags[i], i);
		ck_assert_str_eq(ctx.last_body, want);
		one_request(&ctx, &get);
		ck_assert_str_eq(ctx.last_body, "GET - 0");
	}
	free(url);
	ctx_done(&ctx);
}
END_TEST

/* The client's User-Agent and a request's credentials go once, as their own headers,
 * unless the request gives those headers itself; new credentials replace the old. */
START_TEST(test_agent_and_credentials_once)
{
	struct test_server srv;
	struct test_ctx ctx;
	const char *const own[] = {"user-agent: mine/2", "Authorization: Bearer t", NULL};
	const char *const plain[] = {"Content-Type: application/json", NULL};

	ctx_init(&ctx, &srv, 5000);
	char *url = url_for(&srv, "/count");
	struct http_request req = {.method = "POST",
	                           .url = url,
	                           .headers = plain,
	                           .body = "{}",
	                           .body_len = 2,
	                           .username = USERNAME,
	                           .password = PASSWORD};
	one_request(&ctx, &req);
	ck_assert_str_eq(ctx.last_body, "1 " USER_AGENT " 1 " AUTH_HEADER);
	/* user "a", password "b": "a:b" */
	req.username = "a";
	req.password = "b";
	one_request(&ctx, &req);
	ck_assert_str_eq(ctx.last_body, "1 " USER_AGENT " 1 Basic YTpi");
	/* no password: "a:" */
	req.password = NULL;
	one_request(&ctx, &req);
	ck_assert_str_eq(ctx.last_body, "1 " USER_AGENT " 1 Basic YTo=");
	req.headers = own;
	one_request(&ctx, &req);
	ck_assert_str_eq(ctx.last_body, "1 mine/2 1 Bearer t");
	req.headers = NULL;
	req.username = NULL;
	one_request(&ctx, &req);
	ck_assert_str_eq(ctx.last_body, "1 " USER_AGENT " 0 -");
	free(url);
	ctx_done(&ctx);
}
END_TEST

START_TEST(test_get_and_big_body)
{
	struct test_server srv;
	struct test_ctx ctx;
	char *url;

	ctx_init(&ctx, &srv, 10000);
	url = url_for(&srv, "/get");
	{
		struct http_request req = {.method = "GET", .url = url};
		one_request(&ctx, &req);
	}
	ck_assert_int_eq(ctx.last.http_status, 200);
	ck_assert_str_eq(ctx.last_body, "{\"got\":1}");
	ck_assert_int_eq(srv.hits_get, 1);
	free(url);

	url = url_for(&srv, "/big");
	{
		struct http_request req = {.method = "GET", .url = url};
		one_request(&ctx, &req);
	}
	ck_assert_int_eq(ctx.last.http_status, 200);
	ck_assert(!ctx.last.transport_error);
	ck_assert(ctx.last.body_truncated);
	ck_assert_uint_eq(ctx.last.body_len, HTTP_BODY_MAX);
	ck_assert_uint_eq(strlen(ctx.last_body), HTTP_BODY_MAX);
	free(url);
	ctx_done(&ctx);
}
END_TEST

/* Callback that must never run. */
static void never_called(const struct http_result *res, void *arg)
{
	struct test_ctx *ctx = arg;

	ctx->failures++;
}

START_TEST(test_setup_errors)
{
	struct test_server srv;
	struct test_ctx ctx;
	char *url;

	ctx_init(&ctx, &srv, 5000);
	url = url_for(&srv, "/echo");
	{
		struct http_request put = {.method = "PUT", .url = url};
		struct http_request get_body = {
		    .method = "GET", .url = url, .body = "x", .body_len = 1};
		struct http_request no_body = {.method = "POST", .url = url, .body_len = 5};
		struct http_request creds = {.method = "POST",
		                             .url = "http://user:" PASSWORD "@127.0.0.1:1/"};
		struct http_request ftp = {.method = "GET", .url = "ftp://127.0.0.1/x"};
		struct http_request file = {.method = "GET", .url = "file:///etc/passwd"};
		struct http_request junk = {.method = "GET", .url = "not a url"};
		struct http_request nourl = {.method = "GET", .url = NULL};

		ck_assert(!http_submit(ctx.client, &put, never_called, &ctx));
		ck_assert(!http_submit(ctx.client, &get_body, never_called, &ctx));
		ck_assert(!http_submit(ctx.client, &no_body, never_called, &ctx));
		ck_assert(!http_submit(ctx.client, &creds, never_called, &ctx));
		ck_assert(!http_submit(ctx.client, &ftp, never_called, &ctx));
		ck_assert(!http_submit(ctx.client, &file, never_called, &ctx));
		ck_assert(!http_submit(ctx.client, &junk, never_called, &ctx));
		ck_assert(!http_submit(ctx.client, &nourl, never_called, &ctx));
		ck_assert(!http_submit(ctx.client, NULL, never_called, &ctx));
		ck_assert(!http_submit(NULL, &put, never_called, &ctx));
	}
	ck_assert_uint_eq(http_inflight(ctx.client), 0);
	run_for(ctx.base, 100);
	ck_assert_int_eq(ctx.failures, 0);
	free(url);
	ctx_done(&ctx);
}
END_TEST

START_TEST(test_free_with_inflight)
{
	struct test_server srv;
	struct test_ctx ctx;
	char *slow, *echo;

	ctx_init(&ctx, &srv, 10000);
	slow = url_for(&srv, "/slow");
	echo = url_for(&srv, "/echo");
	for (int i = 0; i < 20; i++) {
		struct http_request req = {
		    .method = "POST", .url = slow, .body = "{}", .body_len = 2};
		ck_assert(http_submit(ctx.client, &req, never_called, &ctx));
	}
	/* 4 are on the wire (max_host_connections), 16 are queued behind them */
	run_for(ctx.base, 300);
	ck_assert_int_eq(srv.hits_slow, 4);
	ck_assert_uint_eq(http_inflight(ctx.client), 20);
	http_client_free(ctx.client);
	ctx.client = NULL;
	run_for(ctx.base, 100);
	ck_assert_int_eq(ctx.failures, 0);
	free(slow);
	free(echo);
	ctx_done(&ctx);
}
END_TEST

/* Callback that frees the client from inside the first completion. */
static void free_in_callback(const struct http_result *res, void *arg)
{
	struct test_ctx *ctx = arg;

	ctx->done++;
	if (ctx->client != NULL) {
		http_client_free(ctx->client);
		ctx->client = NULL;
	} else {
		ctx->failures++;
	}
}

START_TEST(test_free_inside_callback)
{
	struct test_server srv;
	struct test_ctx ctx;
	char *slow, *echo;

	ctx_init(&ctx, &srv, 10000);
	slow = url_for(&srv, "/slow");
	echo = url_for(&srv, "/echo");
	for (int i = 0; i < 12; i++) {
		struct http_request req = {
		    .method = "POST", .url = i < 8 ? echo : slow, .body = "{}", .body_len = 2};
		ck_assert(http_submit(ctx.client, &req, free_in_callback, &ctx));
	}
	run_for(ctx.base, 500);
	ck_assert_int_eq(ctx.done, 1);
	ck_assert_int_eq(ctx.failures, 0);
	ck_assert_ptr_null(ctx.client);
	free(slow);
	free(echo);
	ctx_done(&ctx);
}
END_TEST

/* Callback that submits the next request of a chain from inside a completion. */
static void chain_next(const struct http_result *res, void *arg)
{
	struct test_ctx *ctx = arg;
	char *url;

	if (res->http_status != 200)
		ctx->failures++;
	ctx->done++;
	if (--ctx->chain_left == 0) {
		event_base_loopbreak(ctx->base);
		return;
	}
	url = url_for(ctx->srv, "/echo");
	{
		struct http_request req = {
		    .method = "POST", .url = url, .body = "c", .body_len = 1};
		in_submit = true;
		if (!http_submit(ctx->client, &req, chain_next, ctx))
			ctx->failures++;
		in_submit = false;
	}
	free(url);
	if (ctx->done != 30 - ctx->chain_left)
		ctx->failures++;
}

START_TEST(test_submit_from_callback)
{
	struct test_server srv;
	struct test_ctx ctx;
	char *url;

	ctx_init(&ctx, &srv, 10000);
	url = url_for(&srv, "/echo");
	ctx.chain_left = 30;
	{
		struct http_request req = {
		    .method = "POST", .url = url, .body = "c", .body_len = 1};
		ck_assert(http_submit(ctx.client, &req, chain_next, &ctx));
	}
	run_loop(&ctx, 20);
	ck_assert_int_eq(ctx.failures, 0);
	ck_assert_int_eq(ctx.done, 30);
	ck_assert_int_eq(srv.hits_echo, 30);
	free(url);
	ctx_done(&ctx);
}
END_TEST

/* Sets up a loop, a server and a client allowed max_conns connections. */
static void ctx_init_conns(struct test_ctx *ctx, struct test_server *srv, long max_conns)
{
	struct http_options opt = {
	    .timeout_ms = 10000, .connect_timeout_ms = 2000, .max_host_connections = max_conns};

	memset(ctx, 0, sizeof(*ctx));
	ctx->base = event_base_new();
	ck_assert_ptr_nonnull(ctx->base);
	server_start(srv, ctx->base);
	ctx->srv = srv;
	ctx->client = http_client_new(ctx->base, &opt);
	ck_assert_ptr_nonnull(ctx->client);
}

/* Submits n echo requests at once and waits for all of their answers. */
static void echo_round(struct test_ctx *ctx, const char *url, int n)
{
	struct echo_arg *args = calloc((size_t)n, sizeof(*args));

	ctx->expected = ctx->done + n;
	for (int i = 0; i < n; i++) {
		struct http_request req = {.method = "POST", .url = url};
		args[i].ctx = ctx;
		ck_assert_int_gt(asprintf(&args[i].body, "{\"n\":%d}", i), 0);
		req.body = args[i].body;
		req.body_len = strlen(args[i].body);
		ck_assert(http_submit(ctx->client, &req, echo_done, &args[i]));
	}
	run_loop(ctx, 50);
	for (int i = 0; i < n; i++)
		free(args[i].body);
	free(args);
}

START_TEST(test_many_connections_reused)
{
	struct test_server srv;
	struct test_ctx ctx;
	char *url;
	int first;

	/* more connections than one curl multi handle is given: the transfers are spread
	 * over several, and the second round still finds every connection the first opened */
	ctx_init_conns(&ctx, &srv, 300);
	url = url_for(&srv, "/echo");
	echo_round(&ctx, url, 250);
	ck_assert_int_eq(ctx.failures, 0);
	ck_assert_int_eq(ctx.done, 250);
	first = srv.peers;
	ck_assert_int_gt(first, 1);
	ck_assert_int_le(first, 250);
	echo_round(&ctx, url, 250);
	ck_assert_int_eq(ctx.failures, 0);
	ck_assert_int_eq(ctx.done, 500);
	ck_assert_int_eq(srv.hits_echo, 500);
	ck_assert_int_eq(srv.peers, first);
	ck_assert_uint_eq(http_inflight(ctx.client), 0);
	free(url);
	ctx_done(&ctx);
}
END_TEST

START_TEST(test_connection_limit_over_many)
{
	struct test_server srv;
	struct test_ctx ctx;
	char *slow;

	/* the limit holds in total when it is split: 310 held requests, 300 on the wire */
	ctx_init_conns(&ctx, &srv, 300);
	slow = url_for(&srv, "/slow");
	for (int i = 0; i < 310; i++) {
		struct http_request req = {
		    .method = "POST", .url = slow, .body = "{}", .body_len = 2};
		ck_assert(http_submit(ctx.client, &req, never_called, &ctx));
	}
	/* up to 10 s for the 300 (valgrind on a busy machine took more than 2 s), then
	 * 200 ms in which none of the 10 held back may arrive */
	for (int i = 0; i < 200 && srv.hits_slow < 300; i++)
		run_for(ctx.base, 50);
	run_for(ctx.base, 200);
	ck_assert_int_eq(srv.hits_slow, 300);
	ck_assert_int_eq(srv.peers, 300);
	ck_assert_uint_eq(http_inflight(ctx.client), 310);
	http_client_free(ctx.client);
	ctx.client = NULL;
	ck_assert_int_eq(ctx.failures, 0);
	free(slow);
	ctx_done(&ctx);
}
END_TEST

/* Builds the suite. */
static Suite *http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("client");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_many_concurrent);
	tcase_add_test(tc, test_retry_after_header);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_connection_refused);
	tcase_add_test(tc, test_closed_without_answer);
	tcase_add_test(tc, test_basic_auth_and_headers);
	tcase_add_test(tc, test_pooled_handle_per_request);
	tcase_add_test(tc, test_agent_and_credentials_once);
	tcase_add_test(tc, test_get_and_big_body);
	tcase_add_test(tc, test_setup_errors);
	tcase_add_test(tc, test_free_with_inflight);
	tcase_add_test(tc, test_free_inside_callback);
	tcase_add_test(tc, test_submit_from_callback);
	tcase_add_test(tc, test_many_connections_reused);
	tcase_add_test(tc, test_connection_limit_over_many);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return testutil_run_suite(http_suite(), CK_NORMAL);
}
