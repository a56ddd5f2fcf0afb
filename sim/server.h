/* The HTTP side of the simulator: listening (plain or TLS) on loopback, routing,
 * and sending answers now or later, with the connection-level faults. */
#ifndef SIM_SERVER_H
#define SIM_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include <stdint.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/util.h>
#include <json-c/json.h>

#include "faults.h"
#include "sim.h"

/* Binds `listen` ("127.0.0.1:PORT", "[::1]:PORT", "localhost:PORT"; PORT 0 picks a
 * free port), loads the TLS certificate and key when both are given, and routes
 * requests to the API and control handlers. On success writes the bound address
 * ("127.0.0.1:43121") into bound. On failure returns false with a reason in err. */
bool sim_server_start(struct sim_ctx *ctx, const char *listen_at, const char *tls_cert,
                      const char *tls_key, char *bound, size_t boundlen, char *err, size_t errlen);

/* Drops waiting answers and closes every connection and the listener. */
void sim_server_stop(struct sim_ctx *ctx);

/* Sends a JSON answer now (control API and plain errors). Consumes obj's reference. */
void sim_reply_json(struct sim_req *req, int status, struct json_object *obj);

/* Sends {"error", "errorDetails"} now. */
void sim_reply_error(struct sim_req *req, int status, const char *error, const char *details);

/* Answers a /payment/ request the way the plan says: after plan->delay_ms, the
 * body with `status`, or a garbled body, or an error `status` of the faults
 * (SIM_FAULT_FAIL, body ignored), or no answer at all (drop, reset). A hostile
 * answer (SIM_FAULT_HOSTILE) is the body given, with plan->content_type and, for
 * 503, Retry-After. body is copied when the answer waits. */
void sim_answer(struct sim_ctx *ctx, struct sim_req *req, const struct sim_fault_plan *plan,
                int status, const char *body, size_t len);

/* Routes one request, read by either front end, to the SmartPay API or the control
 * API; a delayed answer is due its delay after arrival_us (monotonic). */
void sim_server_dispatch(struct sim_ctx *ctx, struct sim_req *req, const char *path,
                         int64_t arrival_us);

/* The kernel's receive time (monotonic µs) of the socket's next unread bytes, peeked
 * (SO_TIMESTAMPNS on), or 0 when none was taken. */
int64_t sim_server_peek_arrival(evutil_socket_t fd);

#endif
