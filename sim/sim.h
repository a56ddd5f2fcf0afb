/* The simulator's shared context: one per process, passed to every handler. */
#ifndef SIM_SIM_H
#define SIM_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "faults.h"
#include "jsonw.h"
#include "rng.h"
#include "state.h"

struct event_base;
struct evhttp;
struct sim_pending;
struct sim_conn;
struct json_tokener;

struct sim_ctx {
	struct event_base *base;
	struct evhttp *http;
	SSL_CTX *ssl_ctx; /* NULL when serving plain HTTP */
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
	struct sim_jw out;        /* the answer being written (api.c), reused */
	struct json_tokener *tok; /* request parser (api.c), reused */
};

#endif
