/* All of the daemon's SQL: candidate orders, write-ahead intents, leases, outcomes.
 * Every call is asynchronous on a pg_conn: it returns false when the connection is not
 * up (its callback is then never called), else calls `done` once with what the
 * statement gave or an error. Rows (records.h) belong to the callback, which frees them
 * with their store_*_free; other pointers are valid during the call only. The store's
 * files follow one convention, written down in lib/store_internal.h. */
#ifndef SP_STORE_H
#define SP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modification.h"
#include "pgconn.h"
#include "records.h"

struct sp_config;
struct store; /* opaque */

typedef void (*store_candidates_fn)(struct candidate *rows, size_t n, const char *error, void *arg);
typedef void (*store_requests_fn)(struct shop_request *rows, size_t n, bool blocked,
                                  const char *error, void *arg);
typedef void (*store_claims_fn)(struct claim *rows, size_t n, const char *error, void *arg);
typedef void (*store_changes_fn)(struct order_change *rows, size_t n, const char *error, void *arg);
typedef void (*store_done_fn)(size_t affected, const char *error, void *arg);
/* After an outcome write: the ids whose lease had moved on (not written; disagrees[i]
 * when that outcome contradicts the new owner's and was alerted), or an error;
 * `rejected` tells a statement the database refused (bad data: the same statement would
 * fail again) from a lost connection or a transient failure (worth retrying as is). */
typedef void (*store_written_fn)(char **fenced_ids, const bool *disagrees, size_t nfenced,
                                 const char *error, bool rejected, void *arg);

struct store *store_new(struct pg_conn *pc, const struct sp_config *cfg);
/* The store's connection writes outcomes only (store_write_outcomes): from its next
 * connect on, its session keeps the outcome write's generic plan
 * (store_session_outcomes_sql). Any other statement on it would be planned under
 * settings meant for that one. */
void store_use_for_outcomes(struct store *st);
void store_free(struct store *st);
/* The connection the store queries through (for store modules in other files). */
struct pg_conn *store_conn(const struct store *st);
const struct sp_config *store_config(const struct store *st);
/* The instance name of the leases and the instance lock: the one of the configuration the
 * store was created with (a reload does not change it; it waits for a restart). */
const char *store_instance_name(const struct store *st);
/* The orders relation as quoted SQL identifiers, e.g. "public"."orders": quoted through
 * PQescapeIdentifier (store_relation_quote) on the store's connection the first time it
 * is asked while that connection is up, then kept; NULL before (every statement needs
 * the connection up anyway) or when it cannot be quoted. */
const char *store_orders_relation(struct store *st);
/* The authorization deadline of the orders row `o` as an SQL timestamptz expression:
 * authorization_expires_at, else authorized_at + the interval parameter `validity`
 * (a placeholder such as "$1"); NULL when the time it needs is null, infinite, outside
 * 1970..9999 or not a time, so that no row can make a statement fail. Malloc'd. */
char *store_deadline_sql(const struct store *st, const char *validity);
/* The predicate "the deadline of order row o lies in (after, until]". With time-typed
 * columns it is written on the columns themselves, so that indexes on
 * authorization_expires_at and authorized_at serve it (store_indexes.h); with columns of
 * another type (text behind a view) on store_deadline_sql's expression, so that no value
 * can make the statement fail. `validity`, `after` and `until` are SQL expressions, e.g.
 * "$1::interval", "now()". Malloc'd. */
char *store_deadline_window(const struct store *st, const char *validity, const char *after,
                            const char *until);
void store_set_config(struct store *st, const struct sp_config *cfg);
/* The SQL type of the orders' id column (format_type), NULL until the store (or the one
 * it shares the relation of) was prepared. */
const char *store_id_type(const struct store *st);
struct store_expiring;
/* Where store_metrics.c keeps what its reads remember between them (owned by the store,
 * freed with it by store_expiring_free). */
struct store_expiring **store_expiring_slot(struct store *st);
/* Frees the gauges' memory of expiring authorizations (store_metrics.c); NULL accepted. */
void store_expiring_free(struct store_expiring *x);
/* Gives `dst` (a second connection's store, e.g. the housekeeping one) what `src`'s
 * preparation learned of the orders relation: its column types (id and times). */
void store_share_relation(struct store *dst, const struct store *src);

/* ---- the statements smartpayctl shares with the daemon (preview, adopt, rescan) ---- */

/* What the statements depend on of the orders relation. */
struct store_shape {
	const char *relation;        /* quoted, e.g. "public"."orders" */
	const char *id_type;         /* format_type() of the id column */
	const char *authorized_type; /* of authorized_at and authorization_expires_at */
	const char *expires_type;
};

/* The shape of the orders relation named $1 (as configured): one row (id type,
 * authorized_at type, authorization_expires_at type), none when it has no id column. */
#define STORE_SHAPE_SQL                                                                            \
	"SELECT t.id, t.authorized_at, t.expires_at FROM (SELECT "                                 \
	"max(format_type(a.atttypid, a.atttypmod)) FILTER (WHERE a.attname = 'id') "               \
	"AS id, max(format_type(a.atttypid, a.atttypmod)) FILTER (WHERE a.attname = "              \
	"'authorized_at') AS authorized_at, max(format_type(a.atttypid, a.atttypmod)) "            \
	"FILTER (WHERE a.attname = 'authorization_expires_at') AS expires_at "                     \
	"FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 "                 \
	"AND NOT a.attisdropped) t WHERE t.id IS NOT NULL"

/* True for an orders row `o` that is not history (smartpay.history, the baseline). */
#define STORE_NOT_HISTORY_SQL                                                                      \
	"NOT EXISTS (SELECT 1 FROM smartpay.history h WHERE h.order_id = o.id::text)"

/* Why the daemon does not act on a database with orders and no baseline. */
#define STORE_NO_BASELINE_MESSAGE                                                                  \
	"the orders relation holds orders and no baseline is recorded: run `smartpayctl "          \
	"preview`, then `smartpayctl adopt`"

/* store_deadline_sql for a relation of that shape. Malloc'd. */
char *store_deadline_sql_for(const struct store_shape *shape, const char *validity);

/* The history rule over the orders row `o`: a shipped or cancelled status, or a deadline
 * passed, and authorized before `cut` (an SQL timestamptz expression; an unusable
 * authorized_at counts as before). Parameters: $1 shipped, $2 cancelled, $3 validity
 * (as for the candidate query). Malloc'd. */
char *store_history_rule(const struct store_shape *shape, const char *cut);

/* The daemon's candidate query (parameters: struct store_candidate_params), for a list
 * of ids or the whole relation; `adopted` false leaves out what the history rule with
 * the cut now() would make history instead of the baseline's rows. Malloc'd. */
char *store_candidate_query(const struct store_shape *shape, bool targeted, bool adopted);

/* The parameters of the candidate query, from the configuration. */
struct store_candidate_params {
	char *shipped, *cancelled, *early, *idlist;
	char validity[40], margin[40], limit[24]; /* store_interval_text, store_int_text */
	const char *values[8];
	int count; /* 7, or 8 with ids */
};
void store_candidate_params_init(struct store_candidate_params *p, const struct sp_config *cfg,
                                 int limit, const char *const *ids, size_t nids);
void store_candidate_params_clear(struct store_candidate_params *p);

/* The rows of a candidate query's result (free with candidates_free). */
struct candidate *store_candidates_read(PGresult *res, size_t *n);

/* The open-requests query (parameter $1 limit); `read_only` does not link the cancel
 * requests of orders already cancelled but leaves them out all the same. Malloc'd.
 * The daemon's (not read_only) says, when no request can go, whether one is open
 * behind a modification in flight: store_requests_found reads that. */
char *store_requests_query(const char *relation, bool read_only);
/* The rows of its result (free with shop_requests_free). */
struct shop_request *store_requests_read(PGresult *res, size_t *n);
/* The rows of the daemon's query, and whether a request is open behind a modification
 * in flight when none came (free with shop_requests_free). */
struct shop_request *store_requests_found(PGresult *res, size_t *n, bool *blocked);

/* After (re)connecting: checks the schema version and the orders relation, learns the
 * type of its id column, takes the instance lock and LISTENs. `done` gets an error text
 * when the daemon cannot work on this database. */
bool store_prepare(struct store *st, store_done_fn done, void *arg);

/* Orders needing a capture, cancel or cancel_or_refund, earliest deadline first.
 * With `ids` only those orders are looked at; else the whole relation. */
bool store_find_candidates(struct store *st, const char *const *ids, size_t nids, int limit,
                           store_candidates_fn done, void *arg);

/* Open refund and cancel_or_refund requests whose transaction has nothing in flight;
 * when there is none, `blocked` says whether a request is open behind a modification in
 * flight (false: no request is open at all). */
bool store_find_requests(struct store *st, int limit, store_requests_fn done, void *arg);

/* Records intents in one statement; the callback gets the rows recorded as pending:
 * those with `lease` set are leased to this daemon and must be sent, the others are
 * due now for the next claim (leased false). Rows missing from the answer were refused
 * locally, or lost a race: a unique index (a live capture, cancel, settling refund, or a
 * pending modification of the transaction), or a refund that no longer fits what the
 * ledger shows captured. */
bool store_insert_intents(struct store *st, const struct intent *intents, size_t n,
                          store_claims_fn done, void *arg);

/* The same, deleting the queued changes `changes` (their queued ids, sql/022) in the
 * statement that records the intents: what was looked at is consumed with what it
 * gave, or not at all; the changes of an order whose intent was not recorded stay.
 * changed_orders names each change's order (NULL: not known); when every one of them
 * has an intent in the batch, a shorter statement does the same. n may be 0. */
bool store_insert_intents_consuming(struct store *st, const struct intent *intents, size_t n,
                                    const int64_t *changes, const char *const *changed_orders,
                                    size_t nchanges, store_claims_fn done, void *arg);

/* The oldest `limit` queued changes after queued id `after`, from both tables of the
 * queue (free with order_changes_free). */
bool store_read_changes(struct store *st, int64_t after, int limit, store_changes_fn done,
                        void *arg);

/* True when, at the last preparation, an enabled trigger fed smartpay.order_changes;
 * without one only a scan of the relation finds changed orders. */
bool store_queue_fed(const struct store *st);

/* Leases pending modifications that are due (and, with `own`, every pending row this
 * instance held before a restart), earliest deadline first. */
bool store_claim_due(struct store *st, int limit, bool own, store_claims_fn done, void *arg);

/* Writes outcomes in one statement, fenced by lease owner and generation. A fenced
 * outcome that is final and disagrees with the final state recorded by the new owner
 * raises an 'outcome_disagrees' alert in the same statement. */
bool store_write_outcomes(struct store *st, const struct outcome *outcomes, size_t n,
                          store_written_fn done, void *arg);

/* Raises one alert (no order) unless one of this kind and dedup_key exists. */
bool store_raise_alert(struct store *st, const char *kind, const char *severity,
                       const char *dedup_key, const char *message, store_done_fn done, void *arg);

/* A database error message as one line fit for a log, a reason or an alert: the first
 * line without the "ERROR:" prefix, printable ASCII only, at most 200 bytes
 * (malloc'd). NULL gives "unknown error". */
char *store_error_text(const char *error);

#endif
