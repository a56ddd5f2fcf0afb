/* The reconciliation's SQL (part of the store module): which transactions a pass looks
 * at, a transaction's rows, and recording what a comparison found (external rows, a
 * blocked capture, alerts, the time of the comparison) in one statement.
 *
 * The statements are also run by smartpayctl reconcile (blocking libpq), so each comes
 * as text with documented parameters, and the daemon's asynchronous calls run the same
 * text on the reconciler's own connection. */
#ifndef SP_STORE_RECONCILE_H
#define SP_STORE_RECONCILE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reconcile.h"
#include "store.h"
#include "store_alerts.h"

struct sp_config;

/* One page of the transactions with open business, in transaction id order after a
 * cursor: those with a pending or needs_attention row, a row updated within the
 * lookback, or an order whose authorization (authorized_at) is within the lookback and
 * that has no succeeded capture, cancel or cancel_or_refund. Columns: transaction_id,
 * order_id, order_open ('t'/'f': not cancelled in the shop, no capture or cancel of ours
 * succeeded or under way). Parameters: $1 lookback in ms, $2 order id or NULL (only that
 * order), $3 the cancelled statuses as a JSON array, $4 the page size, $5 the cursor (the
 * last transaction id of the page before, '' for the first page). A page is index-driven
 * and reads about what it returns: the ledger through modifications_by_transaction from
 * the cursor on, the open authorizations from the pass's snapshot (`snapshot`) or else
 * from the orders relation through its index on authorized_at (for a timestamptz
 * column), each order's status by its id in the id column's type. A pass reads pages until one
 * is not full. `relation` is the quoted orders relation, `id_type` and
 * `authorized_type` the format_type() names of its id and authorized_at columns (NULL:
 * unknown, compared as text). Malloc'd. */
char *store_rc_page_sql(const char *relation, const char *id_type, const char *authorized_type,
                        bool snapshot);

/* The session's temporary table of a pass's open authorizations (transaction_id, unique,
 * order_id), read once per pass by store_rc_snapshot_sql; with `snapshot` the page
 * statement reads them from it by its index instead of from the orders relation, so a
 * page reads about what it returns, however many authorizations the lookback holds. */
#define STORE_RC_SNAPSHOT "smartpay_rc_open"

/* (Re)creates the pass's snapshot of the open authorizations within the lookback: one
 * statement through the index on authorized_at. Several statements, no parameters, for
 * the reconciler's own session. Malloc'd. */
char *store_rc_snapshot_sql(const char *relation, const char *authorized_type, int64_t lookback_ms);

/* store_rc_page_sql for a relation of unknown column types. Malloc'd. */
char *store_rc_targets_sql(const char *relation);

/* An SQL condition: the id column `col` (of type `id_type`, NULL unknown) equals the text
 * `value`, through the column's index where the type allows it; a text that is not a
 * value of the type matches nothing (never an error). Malloc'd. */
char *store_rc_id_match(const char *id_type, const char *col, const char *value);

/* Every row of a transaction: id (the gateway's id for an external row, else our
 * modification_id), kind, state, amount_minor (-1 when null), external ('t'/'f'),
 * order_id, modification_id. Parameter: $1 the transaction id. */
extern const char store_rc_rows_sql[];

/* Records one comparison; returns the alerts it inserted (alert_id, kind, severity,
 * order_id, modification_id, message). Parameters: see store_rc_record. */
extern const char store_rc_record_sql[];

/* The rows of one transaction, read from a store_rc_rows_sql result. */
struct store_rc_rows {
	struct rc_row *rows; /* their strings point into `ids` */
	char **ids;          /* owned */
	char **uuids;        /* owned: each row's modification_id */
	int *attempts;       /* owned: each row's attempts */
	size_t n;
	char *order_id; /* owned: the order of the rows, NULL without rows */
};

/* Reads a result of store_rc_rows_sql (rows with unknown kinds or states are left out). */
void store_rc_rows_read(PGresult *res, struct store_rc_rows *out);
void store_rc_rows_free(struct store_rc_rows *r);

/* The parameters of store_rc_record_sql for one comparison. */
struct store_rc_record {
	char *params[9]; /* owned; NULL for SQL NULL */
	size_t nalerts;  /* alerts asked for (some may exist already) */
};

/* Builds the parameters from a comparison of `rows` with `h` (reconcile_compare's
 * report): an external row (succeeded, origin external, no request body) for each
 * external effect, an 'external_modification' alert (warning) for it, a 'ledger_drift'
 * alert (critical) per drifted row, and for an ended authorization an
 * 'authorization_ended' alert (critical) and a refused capture row without a request
 * body, so that no capture is created for the order (smartpayctl dismiss removes it).
 * A needs_attention row that the history settles becomes succeeded or refused (with a
 * modification_refused alert), settled_by status; one it lacks and that can still be
 * made goes back to pending, to be resent with the same id and body, while it has made
 * fewer than 2 * max_attempts attempts (as the engine's own resends). */
void store_rc_record_build(const char *transaction_id, const char *order_id,
                           const struct gw_history *h, const struct store_rc_rows *rows,
                           const struct rc_report *rep, int max_attempts,
                           struct store_rc_record *out);
void store_rc_record_free(struct store_rc_record *r);

/* A human sentence for one finding: "captured 40.00 EUR outside the daemon (gateway
 * modificationId X, status CAPTURED)". Malloc'd. */
char *store_rc_finding_text(const struct rc_finding *f, const struct gw_history *h,
                            const struct store_rc_rows *rows);

/* ---- the daemon's asynchronous calls (on its own connection) ----
 *
 * The store's convention (store_internal.h): each returns false when the store's
 * connection is not up (`done` is then never called), else `done` runs once with `arg`.
 * The orders relation is the store's (store_orders_relation, store_config). */

/* Completion of store_rc_shape: the format_type() names of the relation's id and
 * authorized_at columns (authorized_type NULL without one), valid during the call; an
 * error when the statement failed or the relation was not found or has no id column. */
typedef void (*store_rc_shape_fn)(const char *id_type, const char *authorized_type,
                                  const char *error, void *arg);

/* A transaction of a page (store_rc_page_sql's row). */
struct store_rc_target {
	char *transaction_id;
	char *order_id;
	bool order_open;
};

/* Completion of store_rc_page: the page's targets (NULL on error), owned by the callee
 * (store_rc_targets_free). */
typedef void (*store_rc_targets_fn)(struct store_rc_target *rows, size_t n, const char *error,
                                    void *arg);
void store_rc_targets_free(struct store_rc_target *rows, size_t n);

/* Completion of store_rc_rows: the transaction's rows (NULL on error); the callee takes
 * what `rows` holds (a copy of the struct) or frees it with store_rc_rows_free. */
typedef void (*store_rc_rows_fn)(struct store_rc_rows *rows, const char *error, void *arg);

/* Completion of store_rc_record: the alerts the statement inserted, valid during the
 * call (NULL on error). */
typedef void (*store_rc_recorded_fn)(const struct store_new_alert *alerts, size_t n,
                                     const char *error, void *arg);

/* The shape of the configured orders relation (STORE_SHAPE_SQL). */
bool store_rc_shape(struct store *st, store_rc_shape_fn done, void *arg)
    __attribute__((warn_unused_result));
/* (Re)creates the pass's snapshot (store_rc_snapshot_sql) of the orders relation, whose
 * authorized_at column has the type `authorized_type` (NULL unknown). */
bool store_rc_snapshot(struct store *st, const char *authorized_type, int64_t lookback_ms,
                       store_done_fn done, void *arg) __attribute__((warn_unused_result));
/* One page of targets (store_rc_page_sql for the relation with these column types, from
 * the pass's snapshot or not) after the transaction id `after`. */
bool store_rc_page(struct store *st, const char *id_type, const char *authorized_type,
                   bool snapshot, int64_t lookback_ms, int limit, const char *after,
                   store_rc_targets_fn done, void *arg) __attribute__((warn_unused_result));
/* The rows of one transaction (store_rc_rows_sql), read with store_rc_rows_read. */
bool store_rc_rows(struct store *st, const char *transaction_id, store_rc_rows_fn done, void *arg)
    __attribute__((warn_unused_result));
/* Records one comparison (store_rc_record_sql). */
bool store_rc_record(struct store *st, const struct store_rc_record *rec, store_rc_recorded_fn done,
                     void *arg) __attribute__((warn_unused_result));

/* The cancelled statuses of the configuration as the JSON array parameter. Malloc'd. */
char *store_rc_statuses_json(const struct sp_config *cfg);

#endif
