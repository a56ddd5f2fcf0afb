/* The simulator's shared context: one per process, passed to every handler. */
#ifndef SIM_SIM_H
#define SIM_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/http.h>

#include "faults.h"
#include "jsonw.h"
#include "rng.h"
#include "state.h"

struct event_base;
struct evhttp;
struct sim_pending;
struct sim_conn;
struct sim_tls;
struct json_tokener;
struct sim_h2_conn;
struct sim_h2_stream;
struct evkeyvalq;
struct evbuffer;

/* One request as the handlers (api.c, control.c) see it and answer it, whichever
 * front end read it: evhttp's HTTP/1.1 one or the HTTP/2 one (h2.c). Copied by value
 * into a waiting answer: every pointer stays valid until the answer is sent. */
struct sim_req {
	enum evhttp_cmd_type method;
	struct evkeyvalq *in;      /* request headers */
	struct evkeyvalq *out;     /* headers the handlers add to the answer */
	struct evbuffer *body;     /* request body */
	struct evhttp_request *ev; /* the HTTP/1.1 request; NULL over HTTP/2 */
	struct sim_h2_stream *h2;  /* the HTTP/2 stream; NULL over HTTP/1.1 */
};

/* The loop's priorities, most urgent first (main.c sets them up, server.c assigns
 * them): a due answer's timer, then the peek of a request's arrival time, then
 * everything else at libevent's default (the middle of SIM_PRIO_COUNT: the listener,
 * evhttp's connections reading and parsing requests). A request read late keeps its
 * arrival time (the kernel's receive stamp, peeked), an answer written late does not,
 * so due answers go before new connections are accepted or requests read. */
enum sim_priority {
	SIM_PRIO_ANSWER = 0,
	SIM_PRIO_PEEK = 1,
	SIM_PRIO_DEFAULT = 2,
	SIM_PRIO_COUNT = 4 /* libevent's default priority is SIM_PRIO_COUNT / 2 */
};

struct sim_ctx {
	struct event_base *base;
	struct evhttp *http;
	struct sim_tls *tls;         /* NULL when serving plain HTTP (tls.c) */
	bool http2;                  /* --http2: the TLS listener also offers HTTP/2 (ALPN h2) */
	struct sim_h2_conn *h2conns; /* open HTTP/2 connections (h2.c) */
	uint64_t h2_connections;     /* of ctx->connections, those that chose HTTP/2 */
	struct sim_state *state;
	struct sim_faults faults;    /* applied to /payment/ requests only */
	struct sim_rng rng;          /* fault decisions and format variations */
	uint64_t seed;               /* --seed: reseeds rng when a faults document has no seed */
	char *merchant_key;          /* owned */
	char *auth_key;              /* owned; never logged */
	bool verbose;                /* one stderr line per request */
	struct sim_pending *pending; /* answers waiting on a timer (server.c) */
	uint64_t connections;        /* connections accepted (server.c) */
	uint64_t timer_writes;       /* delayed answers written whole from their timer (server.c) */
	int64_t request_us;          /* monotonic: when the request being handled arrived */
	struct sim_conn **conns;     /* connections by descriptor (server.c) */
	size_t nconns;
	struct sim_jw out;                      /* the answer being written (api.c), reused */
	struct json_tokener *tok;               /* request parser (api.c), reused */
};

#endif
