#include "autoconfig.h"

#include "store_ctl.h"

#include <stdlib.h>

#include "store_internal.h"
#include "store_session.h"
#include "xmalloc.h"

/* The columns smartpayctl shows of a modification `m`, named as in its JSON output. */
#define MODIFICATION_COLUMNS                                                                       \
	"m.modification_id::text AS modification_id, m.order_id, m.transaction_id, m.kind, "       \
	"m.state, m.amount_minor, m.currency::text AS currency, m.attempts, m.reason, "            \
	"m.request_id, m.next_attempt_at, m.deadline, m.created_at, m.updated_at, "                \
	"m.completed_at"

/* The columns smartpayctl shows of an alert `a`, named as in its JSON output. */
#define ALERT_COLUMNS                                                                              \
	"a.alert_id, a.kind, a.severity, a.order_id, a.modification_id::text AS modification_id, " \
	"a.message, a.created_at, a.acknowledged_at, a.acknowledged_by, a.webhook_state"

/* The columns of a shop's request `r`. */
#define REQUEST_COLUMNS                                                                            \
	"r.request_id, r.order_id, r.kind, r.amount_minor, r.currency::text AS currency, "         \
	"r.reason, r.requested_by, r.requested_at"

PGresult *store_ctl_exec(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	return PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
}

PGresult *store_ctl_exec1(PGconn *conn, const char *sql, const char *value)
{
	const char *params[1] = {value};
	return store_ctl_exec(conn, sql, 1, params);
}

PGresult *store_ctl_exec_built(PGconn *conn, char *sql, int nparams, const char *const *params)
{
	PGresult *res = store_ctl_exec(conn, sql, nparams, params);
	free(sql);
	return res;
}

PGresult *store_ctl_session(PGconn *conn, int64_t statement_timeout_ms)
{
	char *setup = store_session_setup_sql(statement_timeout_ms);
	char *sql = xasprintf("%s; SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'", setup);
	/* several statements: the simple protocol */
	PGresult *res = PQexec(conn, sql);
	free(sql);
	free(setup);
	return res;
}

PGresult *store_ctl_no_timeout(PGconn *conn, bool local)
{
	return store_ctl_exec(
	    conn, local ? "SET LOCAL statement_timeout = 0" : "SET statement_timeout = 0", 0, NULL);
}

PGresult *store_ctl_begin(PGconn *conn)
{
	return store_ctl_exec(conn, "BEGIN", 0, NULL);
}

PGresult *store_ctl_begin_read_only(PGconn *conn)
{
	return store_ctl_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL);
}

PGresult *store_ctl_commit(PGconn *conn)
{
	return store_ctl_exec(conn, "COMMIT", 0, NULL);
}

PGresult *store_ctl_rollback(PGconn *conn)
{
	return store_ctl_exec(conn, "ROLLBACK", 0, NULL);
}

PGresult *store_ctl_list(PGconn *conn, const char *state, const char *kind, const char *order,
                         const char *limit)
{
	const char *params[4] = {state, kind, order, limit};
	return store_ctl_exec(conn,
	                      "SELECT " MODIFICATION_COLUMNS " FROM smartpay.modifications m"
	                      " WHERE ($1::text IS NULL OR m.state = $1)"
	                      " AND ($2::text IS NULL OR m.kind = $2)"
	                      " AND ($3::text IS NULL OR m.order_id = $3)"
	                      " ORDER BY m.created_at DESC, m.modification_id DESC LIMIT $4",
	                      4, params);
}

PGresult *store_ctl_show(PGconn *conn, const char *id)
{
	/* every column, in the order people read them */
	return store_ctl_exec1(
	    conn,
	    "SELECT " MODIFICATION_COLUMNS ", m.lease_owner, m.lease_generation, "
	    "m.lease_expires_at, m.http_status, m.payment_status, m.reconciliation_reference_id, "
	    "m.settled_by, m.origin, m.external_id, m.request_body, m.response_body "
	    "FROM smartpay.modifications m WHERE m.modification_id = $1::uuid",
	    id);
}

PGresult *store_ctl_show_request(PGconn *conn, const char *id)
{
	return store_ctl_exec1(
	    conn,
	    "SELECT " REQUEST_COLUMNS " FROM smartpay.requests r "
	    "WHERE r.modification_id = $1::uuid OR r.request_id = "
	    "(SELECT request_id FROM smartpay.modifications WHERE modification_id = $1::uuid) "
	    "ORDER BY r.request_id LIMIT 1",
	    id);
}

PGresult *store_ctl_show_alerts(PGconn *conn, const char *id)
{
	return store_ctl_exec1(conn,
	                       "SELECT " ALERT_COLUMNS " FROM smartpay.alerts a "
	                       "WHERE a.modification_id = $1::uuid ORDER BY a.alert_id",
	                       id);
}

PGresult *store_ctl_retry_lock(PGconn *conn, const char *id)
{
	return store_ctl_exec1(conn,
	                       "SELECT state, transaction_id FROM smartpay.modifications "
	                       "WHERE modification_id = $1::uuid FOR UPDATE",
	                       id);
}

PGresult *store_ctl_retry_requeue(PGconn *conn, const char *id)
{
	/* same id, same body, attempts kept: only the schedule and the lease change */
	return store_ctl_exec1(
	    conn,
	    "UPDATE smartpay.modifications m SET state = 'pending', "
	    "next_attempt_at = now(), lease_owner = NULL, lease_expires_at = NULL, "
	    "completed_at = NULL, reason = 'requeued by operator', "
	    "updated_at = now() "
	    "WHERE m.modification_id = $1::uuid RETURNING " MODIFICATION_COLUMNS
	    ", (m.deadline <= now()) AS deadline_passed",
	    id);
}

PGresult *store_ctl_pending_of(PGconn *conn, const char *transaction)
{
	return store_ctl_exec1(conn,
	                       "SELECT modification_id::text, kind FROM smartpay.modifications "
	                       "WHERE transaction_id = $1 AND state = 'pending' LIMIT 1",
	                       transaction);
}

PGresult *store_ctl_dismiss(PGconn *conn, const char *id, const char *user)
{
	const char *params[2] = {id, user};
	/* one statement: the row changes, its order is queued and the daemon woken for it */
	return store_ctl_exec(
	    conn,
	    "WITH d AS (UPDATE smartpay.modifications m SET dismissed_at = now(), "
	    "dismissed_by = coalesce($2, current_user), updated_at = now() "
	    "WHERE m.modification_id = $1::uuid AND m.state = 'refused' AND m.dismissed_at IS NULL "
	    "RETURNING m.*), q AS (INSERT INTO smartpay.order_changes (order_id) "
	    "SELECT order_id FROM d), n AS (SELECT pg_notify('smartpay_orders', order_id) FROM d) "
	    "SELECT " MODIFICATION_COLUMNS ", (SELECT count(*) FROM n) AS notified "
	    "FROM d m",
	    2, params);
}

PGresult *store_ctl_state(PGconn *conn, const char *id)
{
	return store_ctl_exec1(conn,
	                       "SELECT state, dismissed_at IS NOT NULL FROM "
	                       "smartpay.modifications WHERE modification_id = $1::uuid",
	                       id);
}

PGresult *store_ctl_capture_currency(PGconn *conn, const char *order)
{
	return store_ctl_exec1(conn,
	                       "SELECT currency::text FROM smartpay.modifications WHERE order_id = "
	                       "$1 AND kind = 'capture' AND state = 'succeeded' LIMIT 1",
	                       order);
}

PGresult *store_ctl_request_refund(PGconn *conn, const char *order, const char *amount,
                                   const char *reason)
{
	const char *params[3] = {order, amount, reason};
	return store_ctl_exec(conn, "SELECT smartpay.request_refund($1, $2::numeric, $3)", 3,
	                      params);
}

PGresult *store_ctl_request_cancel_or_refund(PGconn *conn, const char *order, const char *reason)
{
	const char *params[2] = {order, reason};
	return store_ctl_exec(conn, "SELECT smartpay.request_cancel_or_refund($1, $2)", 2, params);
}

PGresult *store_ctl_request(PGconn *conn, const char *request_id)
{
	return store_ctl_exec1(conn,
	                       "SELECT " REQUEST_COLUMNS
	                       " FROM smartpay.requests r WHERE r.request_id = $1::bigint",
	                       request_id);
}

PGresult *store_ctl_alerts(PGconn *conn, bool all, const char *kind, const char *limit)
{
	const char *params[3] = {all ? "t" : "f", kind, limit};
	return store_ctl_exec(conn,
	                      "SELECT " ALERT_COLUMNS ", a.summarised FROM smartpay.alerts a"
	                      " WHERE ($1::bool OR a.acknowledged_at IS NULL)"
	                      " AND ($2::text IS NULL OR a.kind = $2)"
	                      " ORDER BY a.alert_id DESC LIMIT $3",
	                      3, params);
}

PGresult *store_ctl_unknown_alerts(PGconn *conn, const char *ids)
{
	return store_ctl_exec1(conn,
	                       "SELECT string_agg(w.id::text, ', ' ORDER BY w.id) FROM "
	                       "(SELECT DISTINCT unnest($1::bigint[]) AS id) w WHERE NOT EXISTS "
	                       "(SELECT 1 FROM smartpay.alerts a WHERE a.alert_id = w.id)",
	                       ids);
}

PGresult *store_ctl_ack(PGconn *conn, const char *ids, const char *user)
{
	const char *params[2] = {ids, user};
	/* the outer SELECT sees the rows as they were before the UPDATE: who acknowledged
	 * the others, and when */
	return store_ctl_exec(conn,
	                      "WITH upd AS (UPDATE smartpay.alerts a SET acknowledged_at = now(), "
	                      "acknowledged_by = coalesce($2, current_user) "
	                      "WHERE a.alert_id = ANY ($1::bigint[]) AND a.acknowledged_at IS NULL "
	                      "RETURNING a.alert_id) "
	                      "SELECT a.alert_id, a.alert_id IN (SELECT alert_id FROM upd), "
	                      "a.acknowledged_by, a.acknowledged_at, coalesce($2, current_user) "
	                      "FROM smartpay.alerts a WHERE a.alert_id = ANY ($1::bigint[]) "
	                      "ORDER BY a.alert_id",
	                      2, params);
}

PGresult *store_ctl_counts(PGconn *conn)
{
	return store_ctl_exec(conn,
	                      "SELECT kind, state, count(*) FROM smartpay.modifications "
	                      "GROUP BY kind, state",
	                      0, NULL);
}

PGresult *store_ctl_oldest_pending(PGconn *conn)
{
	return store_ctl_exec(
	    conn,
	    "SELECT modification_id::text AS modification_id, order_id, kind, attempts, "
	    "created_at, floor(extract(epoch FROM now() - created_at))::bigint AS age_seconds, "
	    "next_attempt_at FROM smartpay.modifications WHERE state = 'pending' "
	    "ORDER BY created_at LIMIT 1",
	    0, NULL);
}

PGresult *store_ctl_open_requests(PGconn *conn)
{
	return store_ctl_exec(conn,
	                      "SELECT count(*) AS count, min(requested_at) AS oldest_requested_at "
	                      "FROM smartpay.requests WHERE modification_id IS NULL",
	                      0, NULL);
}

PGresult *store_ctl_open_alert_counts(PGconn *conn)
{
	return store_ctl_exec(conn,
	                      "SELECT kind, severity, count(*) FROM smartpay.alerts "
	                      "WHERE acknowledged_at IS NULL GROUP BY kind, severity "
	                      "ORDER BY kind, severity",
	                      0, NULL);
}
