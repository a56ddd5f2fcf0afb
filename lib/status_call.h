/* Get Payment Status: GET /payment/status/{transactionId} through libcurl multi on the
 * daemon's loop, with the engine's TLS settings and headers (Basic authentication with
 * the merchant key and the authentication key), at most [reconcile] requests_per_second
 * for everyone who asks (the reconcile pass and the settling of unknown outcomes). */
#ifndef SP_STATUS_CALL_H
#define SP_STATUS_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "response.h"

struct event_base;
struct sp_config;
struct status_client; /* opaque */
struct http_client;

/* How a status call ended. Only STATUS_OK carries a history; nothing may be decided
 * from any other result. */
enum status_result {
	STATUS_OK,         /* 200 with a readable transaction model of this transaction */
	STATUS_HTTP_ERROR, /* an HTTP answer other than 2xx (404, 5xx ...) */
	STATUS_TRANSPORT,  /* no answer: connection refused or reset, TLS ... */
	STATUS_TIMEOUT,    /* no answer within [smartpay] timeout */
	STATUS_UNREADABLE, /* a 2xx that is not one JSON object, carries an error, or is about
	                    * another transaction */
	STATUS_RESULT_COUNT
};

/* "ok", "http_error", "transport_error", "timeout", "unreadable". */
const char *status_result_name(enum status_result r);

/* Running totals by result. */
struct status_stats {
	uint64_t calls[STATUS_RESULT_COUNT];
	unsigned queued; /* waiting for the rate cap */
};

/* Called once per call from the loop; `error` is valid during the call only. `history`
 * (STATUS_OK only, else NULL) is freed after the call unless the callback takes it
 * (copies the struct and zeroes *history). */
typedef void (*status_done_fn)(enum status_result result, struct gw_history *history,
                               int http_status, const char *error, void *arg);

/* Creates a client on the loop; cfg and secret must stay valid until the next reload or
 * the free. NULL when curl cannot be set up. */
struct status_client *status_client_new(struct event_base *base, const struct sp_config *cfg,
                                        const char *secret) __attribute__((warn_unused_result));

/* Drops queued calls and aborts running ones (their callbacks are not called). NULL is a
 * no-op. */
void status_client_free(struct status_client *c);

/* The status calls' TLS connections keep and resume their sessions in the cache of
 * http (the engine's client to the same gateway): lib/http.h, http_client_share_tls.
 * False (each keeps its own) when a call is running or either is NULL. */
bool status_client_share_tls(struct status_client *c, struct http_client *http);

/* Swaps in a new configuration and secret (same lifetime rule as at creation). */
void status_client_reload(struct status_client *c, const struct sp_config *cfg, const char *secret);

/* Queues a status call for `transaction_id`; it goes out when the rate cap allows.
 * `done` is always called later, never from inside this call. */
void status_client_get(struct status_client *c, const char *transaction_id, status_done_fn done,
                       void *arg);

/* Forgets every queued or running call whose arg is `arg` (their callbacks are not
 * called): for a caller that goes away. */
void status_client_cancel(struct status_client *c, void *arg);

const struct status_stats *status_client_stats(const struct status_client *c);

/* The path of the call, the transaction id percent-encoded outside the unreserved
 * characters of RFC 3986: "/payment/status/ID". Malloc'd. Pure. */
char *status_call_path(const char *transaction_id) __attribute__((warn_unused_result));

/* Classifies one answer (pure): STATUS_OK with *history filled (release it with
 * response_history_free) only for a 2xx whose body is one JSON object without an
 * `error`/`errorDetails` member and whose transactionOverview.transactionId, when given,
 * is exactly `transaction_id`. */
enum status_result status_call_classify(int http_status, bool transport_error, bool timed_out,
                                        const char *body, size_t body_len,
                                        const char *transaction_id, struct gw_history *history);

/* The smallest gap between two calls under the cap: ceil(1000 / requests_per_second) ms,
 * widened by 5% (floor(1050 / requests_per_second)) where that is longer, so that the
 * gateway, which counts the calls as they arrive, never sees more than the cap in a second. */
int64_t status_call_gap_ms(int requests_per_second);

#endif
