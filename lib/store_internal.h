/* What the files of the store layer share (lib/store*.c): its two calling conventions and
 * its helpers. Not for callers outside the store.
 *
 * The two calling conventions:
 *
 * - On the daemon's loop every call is asynchronous:
 *       bool store_VERB(struct store *st, INPUTS..., store_RESULT_fn done, void *arg);
 *   It returns false when the connection is not up (`done` is then never called), else
 *   `done` runs exactly once with what the statement gave or an error text. The callback
 *   types are named typedefs (store.h), and `done` and `arg` are the last two parameters,
 *   as in pg_conn_query. The call's state lives in a struct store_call from
 *   store_call_new that holds the callback in its typed member (no casts), queued with
 *   store_call_query and freed by the completion (store_call_free) after `done` ran.
 *   The completion reads the rows with the field readers below into records
 *   (records.h) or plain values that it hands to `done`.
 *
 * - smartpayctl's blocking connection (store_ctl.h):
 *       PGresult *store_ctl_VERB(PGconn *conn, INPUTS...);
 *   One statement through store_ctl_exec (text parameters and results); the result comes
 *   back whatever its status, the caller PQclears it and reports a failure.
 *
 * Both quote identifiers through PQescapeIdentifier (store_relation_quote), write
 * intervals with store_interval_text and arrays with store_text_array/store_int_array,
 * and pass numbers as text made with store_int_text. */
#ifndef SP_STORE_INTERNAL_H
#define SP_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "pgconn.h"
#include "store.h"
#include "store_alerts.h"
#include "store_metrics.h"
#include "store_reconcile.h"

/* ---- the asynchronous calls ---- */

/* The context of one asynchronous store call: its callback, typed by what it reports. */
struct store_call {
	struct store *st;
	union {
		store_done_fn done;
		store_candidates_fn candidates;
		store_requests_fn requests;
		store_claims_fn claims;
		store_changes_fn changes;
		store_written_fn written;
		store_sweep_fn sweep;
		store_indexes_fn indexes;
		store_webhook_claim_fn webhook_claim;
		store_gauges_fn gauges;
		store_rc_shape_fn rc_shape;
		store_rc_targets_fn rc_targets;
		store_rc_rows_fn rc_rows;
		store_rc_recorded_fn rc_recorded;
	} fn;
	void *arg;
	int step;                       /* for calls of several statements (store_prepare) */
	struct store_call *prev, *next; /* the store's calls under way (store_calls_slot) */
	void *data;                     /* what the call keeps until it is done, or NULL */
	void (*data_free)(void *data);  /* frees data with the call (store_call_free) */
};

/* A call context for `st` with `arg`; the caller sets the callback member. */
struct store_call *store_call_new(struct store *st, void *arg);
/* Frees a call context (after its callback ran) and its data. */
void store_call_free(struct store_call *c);
/* The store's calls under way (store.c): those left when the store is freed are the
 * ones its freed connection dropped without their completions; store_free frees them. */
struct store_call **store_calls_slot(struct store *st);
/* Queues one statement on the store's connection with `c` as the completion's argument;
 * when it cannot be queued (the connection is not up) frees `c` and returns false. */
bool store_call_query(struct store_call *c, const char *sql, int nparams, const char *const *params,
                      pg_query_fn completion);
/* store_call_query with binary parameters (pg_conn_query_params). */
bool store_call_query_params(struct store_call *c, const char *sql, int nparams,
                             const char *const *params, const int *lengths, const int *formats,
                             pg_query_fn completion);
/* store_call_query_params for a named prepared statement (pg_conn_query_prepared). */
bool store_call_query_prepared(struct store_call *c, const char *name, const char *sql, int nparams,
                               const char *const *params, const int *lengths, const int *formats,
                               pg_query_fn completion);
/* store_call_query for parameterless SQL that may hold several statements (pg_conn_exec). */
bool store_call_exec(struct store_call *c, const char *sql, pg_query_fn completion);
/* The completion of a statement whose caller wants its row count (store_done_fn in
 * fn.done, which may be NULL): calls it and frees the call. */
void store_call_done(PGresult *res, const char *error, void *arg);

/* ---- the blocking calls (smartpayctl) ---- */

/* Runs one statement with text parameters and results (PQexecParams). */
PGresult *store_ctl_exec(PGconn *conn, const char *sql, int nparams, const char *const *params);
/* Runs one statement with one text parameter. */
PGresult *store_ctl_exec1(PGconn *conn, const char *sql, const char *value);
/* Runs a statement built for the call (malloc'd) and frees it. */
PGresult *store_ctl_exec_built(PGconn *conn, char *sql, int nparams, const char *const *params);

/* ---- parameters ---- */

/* Room for store_interval_text's and store_int_text's text. */
#define STORE_INTERVAL_TEXT 40
#define STORE_INT_TEXT 24

/* An interval parameter of `ms` milliseconds, e.g. "30000 milliseconds". Returns out. */
const char *store_interval_text(int64_t ms, char out[STORE_INTERVAL_TEXT]);
/* An integer parameter in decimal. Returns out. */
const char *store_int_text(int64_t v, char out[STORE_INT_TEXT]);
/* A text[] literal of `items`, each double-quoted and escaped, e.g. {"a","b\"c"}.
 * Malloc'd. */
char *store_text_array(char *const *items, size_t n);
/* A bigint[] literal, e.g. {86400000,14400000}. Malloc'd. */
char *store_int_array(const int64_t *v, size_t n);

/* A one-dimensional array parameter in PostgreSQL's binary format (what array_recv
 * reads), sent with pg_conn_query_params: its elements go as bytes, with no quoting or
 * escaping on either side (a request or an answer body as an element of a text[] costs
 * a copy, not a parse of a JSON or array literal). The statement names its type, e.g.
 * $2::text[]. */
struct store_bin_array {
	char *data;
	size_t len, cap;
	int32_t count;
	bool has_null;
	uint32_t element_oid;
};

/* The element types of store_bin_array (pg_type OIDs). */
#define STORE_OID_BOOL 16
#define STORE_OID_INT8 20
#define STORE_OID_TEXT 25

/* Starts an empty array of elements of type `element_oid`. */
void store_bin_array_init(struct store_bin_array *a, uint32_t element_oid);
/* Appends a text element; NULL appends an SQL null. */
void store_bin_array_text(struct store_bin_array *a, const char *s);
/* Appends a bigint element, or an SQL null when `null`. */
void store_bin_array_int8(struct store_bin_array *a, int64_t v, bool null);
/* Appends a boolean element. */
void store_bin_array_bool(struct store_bin_array *a, bool v);
/* Completes the header; the array's bytes are a->data, its length the return value. */
int store_bin_array_finish(struct store_bin_array *a);
/* Frees the array's bytes. */
void store_bin_array_free(struct store_bin_array *a);

/* The columns of the outcome write's batch, $2... of store_write_outcomes_sql. */
#define STORE_OUTCOME_COLUMNS 13

/* The outcome write (store_write_outcomes). Parameters: $1 the instance, then the
 * STORE_OUTCOME_COLUMNS binary arrays of store_outcome_columns. Returns the ids not
 * written (fenced) and whether each disagrees with the final state recorded. */
extern const char store_write_outcomes_sql[];
/* The columns of a batch of outcomes for store_write_outcomes_sql (each initialised
 * here; store_bin_array_finish and store_bin_array_free are the caller's). */
struct outcome;
void store_outcome_columns(const struct outcome *outcomes, size_t n,
                           struct store_bin_array col[STORE_OUTCOME_COLUMNS]);

/* ---- results ---- */

/* A nullable text field as it is in `res` (valid while `res` is); NULL for SQL null. */
const char *store_field_value(const PGresult *res, int row, int col);
/* A copy of a nullable text field; NULL for SQL null. */
char *store_field_text(const PGresult *res, int row, int col);
/* A bigint field; 0 for SQL null. */
int64_t store_field_int(const PGresult *res, int row, int col);
/* A bigint field; `null_value` for SQL null. */
int64_t store_field_int_or(const PGresult *res, int row, int col, int64_t null_value);
/* A boolean field: true only for 't'. */
bool store_field_bool(const PGresult *res, int row, int col);
/* True when the database refused the statement itself (its data, a constraint, a
 * trigger): sending it again unchanged fails again. False for a lost connection (`res`
 * NULL) and for failures that pass (serialization, deadlock, resources, cancels,
 * shutdowns). */
bool store_result_rejected(const PGresult *res);

/* ---- statements the tests run directly ---- */

/* The claim of due modifications (store_claim_due). Parameters: $1 instance, $2 lease
 * (interval), $3 limit, $4 own leases too (bool); the rows are CLAIM_COLUMNS. */
extern const char store_claim_due_sql[];

/* The queue read of store_read_changes: $1 the limit, $2 the queued id after which to
 * read (sql/022: change_id * 1024 + the position in a chunk). */
extern const char store_read_changes_sql[];
/* The intent insert's text (store_insert_intents_consuming), plain or with ON CONFLICT
 * DO NOTHING: $1 the queued ids looked at, $2 the instance, $3 the lease, $4... the
 * batch's columns (malloc'd). */
char *store_intents_text(bool guarded);
/* The plain intent insert without the follow-up of orders looked at that gave no
 * intent, the refunds' room, the requests' links and the refusals' alerts, for a batch
 * store_intents_leave_nothing accepts (malloc'd; same parameters). */
char *store_intents_lean_text(void);
/* True when the lean insert does what the full one does for the batch: no refund (the
 * insert re-checks its room), no refused intent, none answering a shop request, and
 * each of the nchanges queued orders looked at (changed_orders, NULL when not known)
 * has an intent in it. */
bool store_intents_leave_nothing(const struct intent *intents, size_t n,
                                 const char *const *changed_orders, size_t nchanges);

#endif
