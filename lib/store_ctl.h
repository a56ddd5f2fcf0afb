/* The statements of smartpayctl's commands, on its blocking connection (libpq text
 * parameters and results). Each function runs one statement and returns its result
 * whatever its status (PQclear it; the caller reports a failure: the command knows what
 * it was doing), NULL only when libpq is out of memory. Timestamps come in the session's
 * form (smartpayctl sets TimeZone UTC and DateStyle ISO in store_ctl_session).
 *
 * lib/store_ctl.c: the session, transactions, the ledger's modifications, the shop's
 * requests and the alerts; lib/store_ctl_orders.c: what reads the orders relation
 * (status's expiring authorizations, adopt, preview, rescan, reconcile). */
#ifndef SP_STORE_CTL_H
#define SP_STORE_CTL_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "store.h"

struct sp_config;
struct store_rc_record;

/* ---- the session and transactions ---- */

/* The daemon's session settings (store_session_setup_sql) with `statement_timeout_ms`,
 * and TimeZone UTC, DateStyle ISO. */
PGresult *store_ctl_session(PGconn *conn, int64_t statement_timeout_ms);
/* No statement_timeout: for the session, or (`local`) the transaction. */
PGresult *store_ctl_no_timeout(PGconn *conn, bool local);
PGresult *store_ctl_begin(PGconn *conn);
/* A snapshot that sees one state of the database and writes nothing (preview). */
PGresult *store_ctl_begin_read_only(PGconn *conn);
PGresult *store_ctl_commit(PGconn *conn);
PGresult *store_ctl_rollback(PGconn *conn);

/* ---- modifications ---- */

/* The modifications newest first, each filter NULL for any: state, kind, order id; at
 * most `limit` (text) rows. Columns as named in the JSON output (amount_minor and
 * currency, no amount). */
PGresult *store_ctl_list(PGconn *conn, const char *state, const char *kind, const char *order,
                         const char *limit);
/* One modification, every column (bodies included), none when there is no such id. */
PGresult *store_ctl_show(PGconn *conn, const char *id);
/* The shop's request a modification came from (or that asked for it): 0 or 1 row. */
PGresult *store_ctl_show_request(PGconn *conn, const char *id);
/* A modification's alerts, oldest first. */
PGresult *store_ctl_show_alerts(PGconn *conn, const char *id);

/* Locks a modification in the transaction: (state, transaction_id), none when unknown. */
PGresult *store_ctl_retry_lock(PGconn *conn, const char *id);
/* Requeues it as pending, due now, without a lease, reason "requeued by operator": the
 * listing's columns and deadline_passed (bool). */
PGresult *store_ctl_retry_requeue(PGconn *conn, const char *id);
/* A pending modification of the transaction: (modification_id, kind), 0 or 1 row. */
PGresult *store_ctl_pending_of(PGconn *conn, const char *transaction);

/* Sets a refused modification aside as `user` (NULL: the database user), queues its
 * order and wakes the daemon in one statement: the listing's columns and notified, no
 * row when it is not a refused one. */
PGresult *store_ctl_dismiss(PGconn *conn, const char *id, const char *user);
/* (state, dismissed) of a modification, none when unknown. */
PGresult *store_ctl_state(PGconn *conn, const char *id);

/* ---- the shop's requests ---- */

/* The currency of the order's succeeded capture: 0 or 1 row. */
PGresult *store_ctl_capture_currency(PGconn *conn, const char *order);
/* smartpay.request_refund(order, amount (major units), reason): the request id. */
PGresult *store_ctl_request_refund(PGconn *conn, const char *order, const char *amount,
                                   const char *reason);
/* smartpay.request_cancel_or_refund(order, reason): the request id. */
PGresult *store_ctl_request_cancel_or_refund(PGconn *conn, const char *order, const char *reason);
/* One request (request_id, order_id, kind, amount_minor, currency, reason, requested_by,
 * requested_at). */
PGresult *store_ctl_request(PGconn *conn, const char *request_id);

/* ---- alerts ---- */

/* Alerts newest first: the unacknowledged ones (every one with `all`), of `kind` (NULL:
 * any), at most `limit` (text) rows; the columns of store_ctl_show_alerts and
 * summarised (whether the alert was folded into an alerts_summarised alert). */
PGresult *store_ctl_alerts(PGconn *conn, bool all, const char *kind, const char *limit);
/* Of the ids (a bigint[] literal), those that name no alert: one row, "1, 5" or NULL. */
PGresult *store_ctl_unknown_alerts(PGconn *conn, const char *ids);
/* Acknowledges the unacknowledged ones of the ids as `user` (NULL: the database user):
 * per alert (alert_id, acknowledged now, acknowledged_by, acknowledged_at as before, the
 * name recorded), by id. */
PGresult *store_ctl_ack(PGconn *conn, const char *ids, const char *user);

/* ---- status ---- */

/* (kind, state, count) of the modifications. */
PGresult *store_ctl_counts(PGconn *conn);
/* The oldest pending modification (modification_id, order_id, kind, attempts,
 * created_at, age_seconds, next_attempt_at): 0 or 1 row. */
PGresult *store_ctl_oldest_pending(PGconn *conn);
/* The shop's requests without a modification: (count, oldest_requested_at). */
PGresult *store_ctl_open_requests(PGconn *conn);
/* (kind, severity, count) of the unacknowledged alerts. */
PGresult *store_ctl_open_alert_counts(PGconn *conn);
/* The orders of `relation` (quoted) whose authorization expires within `window_ms`
 * without a succeeded capture or cancel, most urgent first, at most `limit`: order_id,
 * status, transaction_id, deadline, expires_in_seconds, capture_state, total. */
PGresult *store_ctl_expiring(PGconn *conn, const char *relation, const struct sp_config *cfg,
                             int64_t window_ms, int limit);

/* ---- the orders relation: adopt, preview, rescan ---- */

/* The shape of the configured orders relation (STORE_SHAPE_SQL). */
PGresult *store_ctl_shape(PGconn *conn, const char *relation);
/* The baseline as the daemon judges it at start (store_prepare): (recorded, implied by
 * an empty relation or a ledger with rows). */
PGresult *store_ctl_adopted(PGconn *conn, const struct store_shape *shape);
/* The count of recorded history (smartpay.history). */
PGresult *store_ctl_history_count(PGconn *conn);
/* The count of orders `smartpayctl adopt` would record as history now. */
PGresult *store_ctl_would_be_history(PGconn *conn, const struct store_shape *shape,
                                     const struct sp_config *cfg);
/* The daemon's candidate query over the whole relation (store_candidate_query), every
 * row. */
PGresult *store_ctl_candidates(PGconn *conn, const struct store_shape *shape,
                               const struct sp_config *cfg, bool adopted);
/* The open-requests query, read only, every row. */
PGresult *store_ctl_requests(PGconn *conn, const struct store_shape *shape);
/* Pending modifications by kind: (kind, count, the first three order ids). */
PGresult *store_ctl_pending_by_kind(PGconn *conn);
/* The expiry sweep's alerts that do not exist yet, by kind: (kind, count, the first
 * three order ids); expired authorizations looked back `cfg->expired_lookback_ms`. */
PGresult *store_ctl_due_alerts(PGconn *conn, const struct store_shape *shape,
                               const struct sp_config *cfg, bool adopted);

/* Records the baseline with the cut `from` (NULL: now): (cut, history_orders,
 * adopted_at, adopted_by), no row when one is recorded already. In the caller's
 * transaction. */
PGresult *store_ctl_adopt(PGconn *conn, const struct store_shape *shape,
                          const struct sp_config *cfg, const char *from);
/* When the baseline was recorded: (adopted_at). */
PGresult *store_ctl_adopted_at(PGconn *conn);
/* Takes one order out of history, queues it and wakes the daemon: (count, notified). */
PGresult *store_ctl_adopt_order(PGconn *conn, const char *order);

/* Queues every order the candidate query finds in the whole relation: (queued, sample
 * of the first five ids). */
PGresult *store_ctl_rescan(PGconn *conn, const struct store_shape *shape,
                           const struct sp_config *cfg);
/* Wakes the daemon (NOTIFY smartpay_orders). */
PGresult *store_ctl_notify_orders(PGconn *conn);

/* ---- reconcile (the statements of lib/store_reconcile.h) ---- */

/* The transactions to compare (store_rc_targets_sql over `relation`, quoted): the
 * lookback in ms (text), one order or NULL, the statuses (store_rc_statuses_json), the
 * limit. */
PGresult *store_ctl_rc_targets(PGconn *conn, const char *relation, const char *lookback_ms,
                               const char *order, const char *statuses, const char *limit);
/* The ledger's rows of a transaction (store_rc_rows_sql). */
PGresult *store_ctl_rc_rows(PGconn *conn, const char *transaction);
/* Records what a comparison found (store_rc_record_sql): one row per alert raised. */
PGresult *store_ctl_rc_record(PGconn *conn, const struct store_rc_record *rec);

#endif
