/* The simulator's HTTP/2 front end (--http2): over TLS, a client that offers ALPN "h2"
 * gets an nghttp2 server session on its connection; every stream's request goes to the
 * same handlers as an HTTP/1.1 request (sim_server_dispatch) and is answered through
 * the same sim_answer, timers and faults. Clients that offer http/1.1 or no ALPN stay
 * with evhttp. */
#ifndef SIM_H2_H
#define SIM_H2_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/bufferevent.h>

#include "sim.h"

/* The TLS handshake chose h2 (tls.c): the connection moves from evhttp to an HTTP/2
 * session on the same bufferevent. */
void sim_h2_start(struct sim_ctx *ctx, struct bufferevent *bev);

/* Answers a stream's request now: status, the headers in its sim_req's out list,
 * and body (copied). A stream whose client went away is freed instead. */
void sim_h2_reply(struct sim_h2_stream *st, int status, const char *body, size_t len);

/* Ends a stream without an answer (RST_STREAM: INTERNAL_ERROR when `reset`, else
 * CANCEL); the connection's other streams go on. */
void sim_h2_abort(struct sim_h2_stream *st, bool reset);

/* The stream's answer waits on a timer: the stream is kept until it is answered,
 * even when the client or the connection goes away meanwhile. */
void sim_h2_wait(struct sim_h2_stream *st);

/* Closes every HTTP/2 connection (before evhttp_free). */
void sim_h2_close_all(struct sim_ctx *ctx);

#endif
