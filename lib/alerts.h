/* The daemon's own alerts, on the engine's loop and on a database connection of their
 * own (the housekeeping connection: the engine's claims and outcome writes never wait
 * behind a sweep), reconnecting by itself like the engine's:
 *
 *  - authorization expiry: one sweep statement (store_alerts.h) raises the threshold,
 *    expired and needs-attention alerts; one timer re-sweeps at the next moment an
 *    authorization crosses a threshold or its deadline (at the latest every minute),
 *    and an orders notification asks for a sweep, at most one a second (more rarely when
 *    a sweep is slow: the gap is at least ten times the last sweep's duration);
 *  - gateway unreachable: one alert per episode of requests without any HTTP answer for
 *    longer than [alerts] gateway_unreachable (the episode as the engine counts it, the
 *    same as the metrics' gateway_up);
 *  - webhook: with [alerts] webhook_url set, every unacknowledged alert whose delivery is
 *    pending (whoever raised it) is POSTed as JSON through a curl multi client on the same
 *    loop, at most 8 at a time, retried with backoff until a 2xx answer. Woken by
 *    NOTIFY smartpay_alerts and by the timer for the next retry. Delivery is at least
 *    once: a receiver de-duplicates by alert_id.
 *
 * Every new alert is logged at warning (severity warning) or error (critical) priority
 * with its order_id and modification_id, up to [alerts] summary_after per kind and
 * sweep; the rest are summarised (store_alerts.h). On its first connect it checks the
 * orders relation for the indexes the sweep needs and logs a warning naming the
 * statement that creates a missing one. Not used with --once. */
#ifndef SP_ALERTS_H
#define SP_ALERTS_H

#include <stdbool.h>
#include <stdint.h>

struct engine;
struct store;
struct store_webhook_alert;
struct alerts; /* opaque */

/* Running totals, for logs and metrics. */
struct alerts_stats {
	uint64_t sweeps;
	uint64_t raised;           /* alerts inserted by the sweep and the gateway check */
	uint64_t summarised;       /* of them, inserted summarised (not logged, not posted) */
	uint64_t captures_expired; /* pending captures past their deadline handed to the engine */
	uint64_t webhook_delivered;
	uint64_t webhook_failed; /* failed attempts, each retried later */
	unsigned webhook_inflight;
};

/* Follows `engine` (whether it found the schema ready, and its gateway failures; the
 * engine must outlive the alerts), opens the housekeeping connection with the engine's
 * conninfo, and sweeps each time both are ready. Call before engine_start. */
struct alerts *alerts_new(struct engine *engine);

/* Stops following the engine and aborts webhook requests in flight (their alerts are
 * sent again once their claim lapses). Call while the loop is not running, before
 * engine_free. NULL is accepted. */
void alerts_free(struct alerts *a);

/* Asks for a sweep soon (debounced); e.g. after the orders relation changed. */
void alerts_poke(struct alerts *a);

/* The configuration was swapped (engine_reload): thresholds, webhook and the gateway
 * limit are read again, a sweep and a webhook round follow. */
void alerts_reload(struct alerts *a);

const struct alerts_stats *alerts_stats(const struct alerts *a);

/* The store on the housekeeping connection, for other background readers (the metrics
 * gauges); NULL for a NULL `a`. Valid until alerts_free. */
struct store *alerts_store(const struct alerts *a);

/* The webhook URL as it may be logged: scheme://host[:port]/path, without user
 * information, query or fragment (where tokens live). Malloc'd. */
char *alerts_redact_url(const char *url);

/* The JSON document POSTed for one alert: {"alert_id", "kind", "severity", "order_id",
 * "modification_id", "message", "created_at"} (absent ids as null). Malloc'd. */
char *alerts_webhook_body(const struct store_webhook_alert *alert);

#endif
