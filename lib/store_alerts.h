/* The alerts module's SQL (part of the store module): the authorization expiry sweep,
 * the gateway-unreachable alert and the webhook delivery queue of smartpay.alerts.
 *
 * Every call follows the store's convention (store_internal.h): it returns false when
 * the connection is not up (`done` is then never called), else `done` runs once with
 * `arg` (not when the store's connection is freed first, which drops queued
 * statements). Pointers handed to `done` are valid during the call only. */
#ifndef SP_STORE_ALERTS_H
#define SP_STORE_ALERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* An alert row that a statement has just inserted. */
struct store_new_alert {
	int64_t alert_id;
	const char *kind;
	const char *severity;        /* "warning" or "critical" */
	const char *order_id;        /* NULL when none */
	const char *modification_id; /* NULL when none */
	const char *message;
};

/* A pending capture past its deadline that the sweep made due for the engine. */
struct store_expired_capture {
	const char *modification_id;
	const char *order_id;
	const char *transaction_id;
};

struct store_sweep_result {
	const struct store_new_alert *alerts;
	size_t nalerts;
	const struct store_expired_capture *captures;
	size_t ncaptures;
	/* alerts inserted but summarised: neither among `alerts` nor to be posted; each kind
	 * with some has one 'alerts_summarised' alert among `alerts` */
	size_t nsummarised;
	/* Milliseconds (by the database clock) until the next moment an open authorization
	 * crosses a threshold or its deadline, or a pending capture's deadline passes with
	 * its lease free; -1 when there is none. */
	int64_t next_delay_ms;
	/* the sweep's now() (timestamptz text), for the next sweep's `since` */
	const char *db_now;
};

/* What a sweep reads after an earlier one. */
struct store_sweep_since {
	const char *since;      /* the earlier sweep's db_now; NULL: read the whole window */
	const char *const *ids; /* orders changed since (notified): read again whatever */
	size_t nids;            /* their deadline within the window */
};

/* Completion of store_sweep_expiry: `r` is NULL on error. */
typedef void (*store_sweep_fn)(const struct store_sweep_result *r, const char *error, void *arg);

/* One sweep in one statement, whatever the number of orders. An authorization is open
 * while its order has a transaction id and no succeeded capture, cancel or
 * cancel_or_refund (whatever the order's status); its deadline is
 * coalesce(authorization_expires_at, authorized_at + authorization_validity).
 *  - every open authorization whose deadline is within a configured threshold and not
 *    passed gets one 'authorization_expiring' alert for the smallest such threshold
 *    (dedup_key ORDER:LABEL; critical for the smallest threshold, warning for the others);
 *  - every open authorization whose deadline passed less than `lookback_ms` ago gets one
 *    'authorization_expired' alert (critical, dedup_key ORDER);
 *  - every pending capture whose deadline passed and whose lease is free or expired is
 *    made due now with its lease cleared and returned among `captures`: the engine claims
 *    it, asks its transaction's status, and records the outcome the history shows or
 *    needs_attention (with its 'needs_attention' alert); the sweep decides nothing.
 * Alerts that exist already (acknowledged or not) are not raised again. Only the orders
 * whose deadline lies between `lookback_ms` ago and the largest threshold plus
 * `horizon_ms` ahead are read (next_delay_ms then looks no further than that); after an
 * earlier sweep (`since` not NULL, with since->since) only those whose deadline crossed
 * a threshold (or passed) since it or will within `horizon_ms`, and the orders in
 * since->ids, so that a sweep reads what changed rather than every open authorization
 * of the window. Past
 * [alerts] summary_after new alerts of one kind, the rest are inserted summarised (not
 * returned, never posted) and one 'alerts_summarised' alert per such kind (critical when
 * one of them is, dedup_key KIND:FIRST_ID) gives their count. */
bool store_sweep_expiry(struct store *st, int64_t lookback_ms, int64_t horizon_ms,
                        const struct store_sweep_since *since, store_sweep_fn done, void *arg)
    __attribute__((warn_unused_result));

/* Raises one 'gateway_unreachable' alert (critical) unless one with this dedup_key
 * exists. */
bool store_alert_gateway(struct store *st, const char *dedup_key, const char *message,
                         store_done_fn done, void *arg) __attribute__((warn_unused_result));

/* LISTEN smartpay_alerts and smartpay_orders on the store's connection (again after
 * each connect). */
bool store_listen_alerts(struct store *st, store_done_fn done, void *arg)
    __attribute__((warn_unused_result));

/* Completion of store_check_indexes: the needed columns (store_indexes.h) without an
 * index on the orders relation. */
typedef void (*store_indexes_fn)(const char *const *missing, size_t n, const char *error,
                                 void *arg);

/* Checks the orders relation for the indexes the daemon's queries need. */
bool store_check_indexes(struct store *st, store_indexes_fn done, void *arg)
    __attribute__((warn_unused_result));

/* An alert to POST to the webhook. */
struct store_webhook_alert {
	int64_t alert_id;
	const char *kind;
	const char *severity;
	const char *order_id;        /* NULL when none */
	const char *modification_id; /* NULL when none */
	const char *message;
	const char *created_at; /* ISO 8601 UTC with milliseconds, e.g. 2024-05-01T12:00:00.000Z */
	int attempts;           /* delivery attempts made before this one */
};

/* Completion of store_webhook_claim. next_delay_ms: until the earliest undelivered alert
 * not claimed now becomes due (0 when some are due already), -1 when there is none. */
typedef void (*store_webhook_claim_fn)(const struct store_webhook_alert *rows, size_t n,
                                       int64_t next_delay_ms, const char *error, void *arg);

/* Claims up to `limit` alerts whose delivery is due (webhook_state 'pending', not
 * acknowledged, webhook_next_attempt_at passed), oldest first, by moving their next
 * attempt `lease_ms` ahead so that no other daemon sends them meanwhile. */
bool store_webhook_claim(struct store *st, int limit, int64_t lease_ms, store_webhook_claim_fn done,
                         void *arg) __attribute__((warn_unused_result));

/* The outcome of one delivery attempt. */
struct store_webhook_result {
	int64_t alert_id;
	bool delivered;         /* a 2xx answer: webhook_state 'delivered' */
	char *error;            /* owned; the failure recorded in webhook_last_error */
	int64_t retry_delay_ms; /* not delivered: next attempt after this delay */
};

/* Records outcomes in one statement (attempts counted, next attempt, last error). */
bool store_webhook_record(struct store *st, const struct store_webhook_result *results, size_t n,
                          store_done_fn done, void *arg) __attribute__((warn_unused_result));

#endif
