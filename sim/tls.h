/* The simulator's TLS: GnuTLS sessions behind libevent filter bufferevents, which
 * evhttp (and the HTTP/2 front end, h2.c) read and write as they would a socket's.
 * Each answer goes out as one TLS record on the loop's next pass, written straight
 * to the socket. */
#ifndef SIM_TLS_H
#define SIM_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>

#include "sim.h"

/* Loads the certificate chain and the key (PEM files) into a TLS server set-up that
 * offers TLS 1.2 and 1.3, session tickets, and with `http2` ALPN h2 before
 * http/1.1. NULL with a reason naming the file in err on failure. */
struct sim_tls *sim_tls_new(const char *cert, const char *key, bool http2, char *err,
                            size_t errlen);

/* Frees the set-up and the sockets still writing their last bytes (after evhttp_free). */
void sim_tls_free(struct sim_tls *t);

/* A new connection's bufferevent (for evhttp's connection hook): the server side of a
 * TLS session on the socket evhttp then gives it. NULL when out of memory. */
struct bufferevent *sim_tls_accept(struct sim_ctx *ctx, struct event_base *base);

/* Encrypts and writes what waits in a TLS connection's output now instead of on the
 * loop's next pass; true when all of it is on the socket. The connection may be
 * gone when it returns (its write callback ran). */
bool sim_tls_flush(struct sim_tls *t, struct bufferevent *bev);

/* Handshakes that resumed an earlier session (a session ticket). */
uint64_t sim_tls_resumed(const struct sim_tls *t);

/* Writes that found the socket full and waited for room (the client reads slowly). */
uint64_t sim_tls_stalls(const struct sim_tls *t);

#endif
