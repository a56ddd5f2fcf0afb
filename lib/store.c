#include "autoconfig.h"

#include "store.h"

#include "clock.h"
#include "config.h"
#include "store_migrate.h"
#include "store_internal.h"
#include "store_relation.h"
#include "store_session.h"
#include "trim.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Key class of the advisory lock that keeps two daemons from sharing an instance name. */
#define STORE_INSTANCE_LOCK_CLASS 0x53504431

struct store {
	struct pg_conn *pc;
	const struct sp_config *cfg;
	char *relation; /* quoted orders relation, e.g. "public"."orders"; NULL until quoted */
	char *instance; /* lease owner and instance lock name, fixed until a restart */
	char *id_type;  /* SQL type of the orders' id column, from the catalog */
	char *authorized_type; /* SQL types of the time columns; NULL until known */
	char *expires_type;
	char *sql_scan;       /* candidate query over the whole relation */
	char *sql_targeted;   /* candidate query for a list of order ids */
	char *sql_requests;   /* open shop requests */
	char *sql_intents[3]; /* the intent insert: plain, with ON CONFLICT DO NOTHING, lean */
	int intents_guarded;  /* intent inserts left to send with ON CONFLICT after a conflict */
	bool queue_fed;       /* a trigger writes smartpay.order_changes (last prepare) */
	/* the durability settings last logged (store_session.c) */
	char *session_reported;
	/* what the gauges reads remember of expiring authorizations (store_metrics.c) */
	struct store_expiring *expiring;
	/* the asynchronous calls under way (store_internal.c) */
	struct store_call *calls;
};

static void store_intents_sql(struct store *st);

/* The index of the lean intent insert's text in sql_intents. */
#define INTENTS_LEAN 2

/* Every connect of the store's connection runs `setup` first (taken). */
static void store_session_set(struct store *st, char *setup)
{
	pg_conn_set_session(st->pc,
	                    &(struct pg_conn_session){.fallback_application_name = "smartpayd",
	                                              .setup_sql = setup});
	free(setup);
}

struct store *store_new(struct pg_conn *pc, const struct sp_config *cfg)
{
	struct store *st = xcalloc(1, sizeof(*st));
	st->pc = pc;
	st->cfg = cfg;
	/* every connection: synchronous_commit = on and the statement_timeout first */
	store_session_set(st, store_session_setup_sql(cfg->statement_timeout_ms));
	st->instance = xstrdup(cfg->instance_name);
	store_intents_sql(st);
	return st;
}

void store_use_for_outcomes(struct store *st)
{
	store_session_set(st, store_session_outcomes_sql(st->cfg->statement_timeout_ms));
}

void store_free(struct store *st)
{
	if (st == NULL)
		return;
	free(st->relation);
	free(st->instance);
	free(st->id_type);
	free(st->authorized_type);
	free(st->expires_type);
	free(st->sql_scan);
	free(st->sql_targeted);
	free(st->sql_requests);
	for (int k = 0; k < 3; k++)
		free(st->sql_intents[k]);
	free(st->session_reported);
	store_expiring_free(st->expiring);
	/* the calls whose statements the freed connection dropped */
	while (st->calls)
		store_call_free(st->calls);
	free(st);
}

struct pg_conn *store_conn(const struct store *st)
{
	return st->pc;
}

const struct sp_config *store_config(const struct store *st)
{
	return st->cfg;
}

const char *store_instance_name(const struct store *st)
{
	return st->instance;
}

/* Quotes the orders relation on the live connection once; NULL with *err when it cannot. */
static const char *store_quote_relation(struct store *st, char **err)
{
	*err = NULL;
	if (st->relation == NULL) {
		PGconn *conn = pg_conn_pgconn(st->pc);
		if (conn == NULL) {
			*err = xstrdup("database connection lost");
			return NULL;
		}
		st->relation = store_relation_quote(conn, st->cfg->orders_relation, err);
	}
	return st->relation;
}

const char *store_orders_relation(struct store *st)
{
	char *err;
	const char *relation = store_quote_relation(st, &err);
	free(err);
	return relation;
}

void store_share_relation(struct store *dst, const struct store *src)
{
	free(dst->id_type);
	dst->id_type = src->id_type ? xstrdup(src->id_type) : NULL;
	free(dst->authorized_type);
	free(dst->expires_type);
	dst->authorized_type = src->authorized_type ? xstrdup(src->authorized_type) : NULL;
	dst->expires_type = src->expires_type ? xstrdup(src->expires_type) : NULL;
}

const char *store_id_type(const struct store *st)
{
	return st->id_type;
}

/* The list of the store's calls under way. */
struct store_call **store_calls_slot(struct store *st)
{
	return &st->calls;
}

struct store_expiring **store_expiring_slot(struct store *st)
{
	return &st->expiring;
}

void store_set_config(struct store *st, const struct sp_config *cfg)
{
	st->cfg = cfg;
}

/* Longest order id the ledger can hold: its indexes on order_id cannot take more. Rows
 * with longer ids are not looked at (README, "The shop's side"). */
#define STORE_ORDER_ID_MAX_BYTES 1000

/* Whether a column of SQL type `type` compares with timestamptz without a cast that can fail. */
static bool is_time_type(const char *type)
{
	return type &&
	       (strcmp(type, "timestamp with time zone") == 0 ||
	        strcmp(type, "timestamp without time zone") == 0 || strcmp(type, "date") == 0);
}

/* An SQL expression for a time column of the orders relation as timestamptz, NULL when
 * it is null, infinite or outside 1970..9999: compared in its own type when that is a
 * time type, else read as text through smartpay.shop_time(), so that no value makes the
 * query fail. */
static char *time_expr(const char *column, const char *type)
{
	if (is_time_type(type))
		return xasprintf("CASE WHEN o.%s >= '1970-01-01' AND o.%s < '10000-01-01' "
		                 "THEN o.%s::timestamptz END",
		                 column, column, column);
	return xasprintf("smartpay.shop_time(o.%s::text)", column);
}

/* A time column as the argument of smartpay.order_deadline(timestamptz, ...): itself
 * when it is a timestamptz; a timestamp or date outside 1970..9999 (which may not even
 * cast) as 'infinity', which gives no deadline as it does in a timestamptz column. */
static char *deadline_arg(const char *column, const char *type)
{
	if (strcmp(type, "timestamp with time zone") == 0)
		return xasprintf("o.%s", column);
	return xasprintf("CASE WHEN o.%s >= '1970-01-01' AND o.%s < '10000-01-01' "
	                 "THEN o.%s::timestamptz WHEN o.%s IS NOT NULL "
	                 "THEN 'infinity'::timestamptz END",
	                 column, column, column, column);
}

/* The authorization deadline as timestamptz through the rule of sql/011_adoption.sql,
 * smartpay.order_deadline (inlined by the planner): its timestamptz form when both
 * columns are times, else its text form; `validity` is an interval placeholder. */
static char *deadline_expr(const char *authorized_type, const char *expires_type,
                           const char *validity)
{
	if (!is_time_type(authorized_type) || !is_time_type(expires_type))
		return xasprintf("smartpay.order_deadline(o.authorized_at::text, "
		                 "o.authorization_expires_at::text, %s::interval)",
		                 validity);
	char *a = deadline_arg("authorized_at", authorized_type);
	char *x = deadline_arg("authorization_expires_at", expires_type);
	char *d = xasprintf("smartpay.order_deadline(%s, %s, %s::interval)", a, x, validity);
	free(a);
	free(x);
	return d;
}

char *store_deadline_sql(const struct store *st, const char *validity)
{
	return deadline_expr(st->authorized_type, st->expires_type, validity);
}

char *store_deadline_sql_for(const struct store_shape *shape, const char *validity)
{
	return deadline_expr(shape->authorized_type, shape->expires_type, validity);
}

char *store_history_rule(const struct store_shape *shape, const char *cut)
{
	char *dl = deadline_expr(shape->authorized_type, shape->expires_type, "$3");
	char *a = time_expr("authorized_at", shape->authorized_type);
	char *rule = xasprintf("((o.status::text = ANY($1::text[]) OR o.status::text = "
	                       "ANY($2::text[]) OR coalesce(%s <= now(), false)) "
	                       "AND coalesce(%s < %s, true))",
	                       dl, a, cut);
	free(dl);
	free(a);
	return rule;
}

char *store_deadline_window(const struct store *st, const char *validity, const char *after,
                            const char *until)
{
	if (!is_time_type(st->authorized_type) || !is_time_type(st->expires_type)) {
		char *d = store_deadline_sql(st, validity);
		char *w = xasprintf("(%s > %s AND %s <= %s)", d, after, d, until);
		free(d);
		return w;
	}
	return xasprintf("((o.authorization_expires_at > %s AND o.authorization_expires_at <= %s) "
	                 "OR (o.authorization_expires_at IS NULL AND o.authorized_at > %s - %s "
	                 "AND o.authorized_at <= %s - %s))",
	                 after, until, after, validity, until, validity);
}

/* The columns of every candidate branch after the transaction id and before the kind:
 * amount, currency (the given expression), capture_amount, deadline_ms. */
static char *candidate_money_columns(const char *currency)
{
	return xasprintf(
	    "o.amount::text, %s, o.capture_amount::text, o.sp_deadline_ms AS deadline_ms",
	    currency);
}

/* The columns the candidate branches read of an order: the contract's, the deadline in
 * ms (sp_deadline_ms) and the id as text (sp_id). */
static char *candidate_order_columns(const char *deadline)
{
	return xasprintf("o.id, o.status, o.smartpay_transaction_id, o.amount, o.currency, "
	                 "o.capture_amount, o.authorized_at, o.authorization_expires_at, "
	                 "(extract(epoch FROM %s) * 1000)::bigint AS sp_deadline_ms, "
	                 "o.id::text AS sp_id",
	                 deadline);
}

/* The orders of one candidate branch as the subquery o, in the claim's order (deadline,
 * then id), with candidate_order_columns: read from `relation` when given, else from
 * the orders a targeted claim read once (ord); `where` tests only the order. The branch
 * probes the ledger for these rows in this order and stops when its LIMIT is filled,
 * instead of probing every order of the list (a targeted claim reads up to four times
 * its room) or of the status and sorting afterwards. OFFSET 0 keeps the subquery, and
 * its order, whole. */
static char *candidate_orders(const char *relation, const char *deadline, const char *where)
{
	if (relation == NULL)
		return xasprintf("(SELECT * FROM ord o WHERE %s "
		                 "ORDER BY sp_deadline_ms NULLS LAST, sp_id OFFSET 0) o",
		                 where);
	char *cols = candidate_order_columns(deadline);
	char *sub = xasprintf("(SELECT %s FROM %s o WHERE %s "
	                      "ORDER BY sp_deadline_ms NULLS LAST, sp_id OFFSET 0) o",
	                      cols, relation, where);
	free(cols);
	return sub;
}

/* The candidate query: shipped orders without a capture; cancelled orders without a
 * cancel whose capture is absent, refused or succeeded (a pending or doubtful capture
 * waits); with the opt-in expiry policy, orders in an early status whose deadline is
 * within the margin. Every column is read as text and nothing is cast that could fail:
 * lib/intent.c judges the values, so one bad row is refused on its own. A shipped order
 * whose cancel is live comes with that cancel (and is refused, never captured). After a
 * succeeded capture a cancelled order gets a cancel_or_refund on the capture's
 * transaction, or when it was partly refunded a refund of the rest (none when nothing
 * is left; a pending refund is waited for). History (the baseline) is left out.
 * `targeted` restricts it to a list of ids cast to the id column's type. Each branch
 * gives its first $4 rows in the order of the whole (candidate_orders), so the union's
 * first $4 are the same as when every branch gave all of its rows. Parameters: $1
 * shipped, $2 cancelled, $3 validity, $4 limit, $5 early statuses, $6 early margin, $7
 * early kind, $8 ids. */
static char *candidate_sql(const struct store_shape *shape, bool targeted, bool adopted)
{
	const char *relation = shape->relation;
	/* history is never looked at: the baseline's rows, or before adoption (a preview)
	 * what `smartpayctl adopt` would record */
	char *rule = adopted ? xstrdup(STORE_NOT_HISTORY_SQL) : NULL;
	if (rule == NULL) {
		char *h = store_history_rule(shape, "now()");
		rule = xasprintf("NOT %s", h);
		free(h);
	}
	char *dl = deadline_expr(shape->authorized_type, shape->expires_type, "$3");
	/* ids the ledger can record */
	char *ids = xasprintf("o.id IS NOT NULL AND octet_length(o.id::text) <= %d",
	                      STORE_ORDER_ID_MAX_BYTES);
	static const char times[] = "o.authorized_at::text, o.authorization_expires_at::text";
	/* A targeted claim reads its orders by id: its status test is written so that no
	 * index on the status matches it (another collation; equality is the same), or
	 * statistics taken before a burst of shipping (no order had that status) have the
	 * planner read every order of the status for each claim instead. It reads them once
	 * for the three branches (ord); a scan reads each branch's status on its own. */
	const char *status = targeted ? "(o.status::text COLLATE \"C\")" : "o.status::text";
	char *with = NULL;
	if (targeted) {
		char *cols = candidate_order_columns(dl);
		with = xasprintf("WITH ord AS MATERIALIZED (SELECT %s FROM %s o WHERE %s "
		                 "AND o.id = ANY($8::%s[]) AND (%s = ANY($1::text[]) OR %s = "
		                 "ANY($2::text[]) OR %s = ANY($5::text[]))) ",
		                 cols, relation, ids, shape->id_type, status, status, status);
		free(cols);
		free(ids);
		ids = xstrdup("true");
	}
	const char *from = targeted ? NULL : relation;
	char *w_shipped = xasprintf("%s = ANY($1::text[]) AND %s", status, ids);
	char *w_early = xasprintf("cardinality($5::text[]) > 0 AND %s = ANY($5::text[]) "
	                          "AND %s - $6::interval <= now() AND %s",
	                          status, dl, ids);
	char *w_cancelled = xasprintf("%s = ANY($2::text[]) AND %s", status, ids);
	char *o_shipped = candidate_orders(from, dl, w_shipped);
	char *o_early = candidate_orders(from, dl, w_early);
	char *o_cancelled = candidate_orders(from, dl, w_cancelled);
	/* LIMIT 1 keeps these per-row index probes: as an anti-join the planner would hash
	 * the whole ledger on every claim */
	static const char no_capture[] =
	    "NOT EXISTS (SELECT 1 FROM smartpay.modifications m WHERE m.order_id = o.sp_id "
	    "AND m.kind = 'capture' AND m.dismissed_at IS NULL LIMIT 1)";
	static const char no_cancel[] =
	    "NOT EXISTS (SELECT 1 FROM smartpay.modifications m WHERE m.order_id = o.sp_id "
	    "AND (m.kind IN ('cancel', 'cancel_or_refund') OR m.settles_cancel) "
	    "AND m.dismissed_at IS NULL LIMIT 1)";
	static const char order_limit[] = "ORDER BY o.sp_deadline_ms NULLS LAST, o.sp_id LIMIT $4";
	char *mid_order = candidate_money_columns("o.currency::text");
	char *mid_cancel = candidate_money_columns(
	    "CASE WHEN cap.state = 'succeeded' THEN cap.currency ELSE o.currency::text END");
	char *sql = xasprintf(
	    "%sSELECT * FROM (("
	    /* shipped: capture, unless a capture exists in any state; a live cancel comes
	     * along so that the capture is refused (at most one is live). One read of the
	     * order's rows answers both. */
	    "SELECT o.sp_id AS id, o.status::text AS status, "
	    "o.smartpay_transaction_id::text AS transaction_id, %s, 'capture' AS kind, %s, "
	    "can.state AS cancel_state, can.id AS cancel_id, NULL::bigint AS captured_minor, "
	    "NULL::bigint AS refunded_minor FROM %s CROSS JOIN LATERAL (SELECT "
	    "bool_or(m.kind = 'capture' AND m.dismissed_at IS NULL) AS captured, "
	    "(array_agg(m.state) FILTER (WHERE m.kind IN ('cancel', 'cancel_or_refund') "
	    "AND m.state <> 'refused'))[1] AS state, (array_agg(m.modification_id::text) "
	    "FILTER (WHERE m.kind IN ('cancel', 'cancel_or_refund') "
	    "AND m.state <> 'refused'))[1] AS id "
	    "FROM smartpay.modifications m WHERE m.order_id = o.sp_id) can "
	    "WHERE can.captured IS NOT TRUE AND %s %s"
	    ") UNION ALL ("
	    /* opt-in expiry policy: capture or cancel within the margin of the deadline (a
	     * one-time test leaves the branch out when no status has a policy) */
	    "SELECT o.sp_id, o.status::text, o.smartpay_transaction_id::text, %s, $7, %s, "
	    "NULL, NULL, NULL, NULL FROM %s WHERE %s AND %s AND %s %s"
	    ") UNION ALL ("
	    /* cancelled: cancel before capture; after a successful one cancel_or_refund, or
	     * the rest of a partly refunded capture; a pending or doubtful capture, and a
	     * pending refund, wait for their outcome */
	    "SELECT o.sp_id, o.status::text, CASE WHEN cap.state = 'succeeded' "
	    "THEN cap.transaction_id ELSE o.smartpay_transaction_id::text END, %s, "
	    "CASE WHEN cap.state IS DISTINCT FROM 'succeeded' THEN 'cancel' "
	    "WHEN rf.refunded > 0 THEN 'refund' ELSE 'cancel_or_refund' END, %s, NULL, NULL, "
	    "CASE WHEN cap.state = 'succeeded' THEN cap.amount_minor END, rf.refunded "
	    "FROM %s LEFT JOIN LATERAL (SELECT m.state, m.transaction_id, "
	    "m.currency::text AS currency, m.amount_minor FROM "
	    "smartpay.modifications m WHERE m.order_id = o.sp_id AND m.kind = 'capture' "
	    "AND m.dismissed_at IS NULL "
	    "ORDER BY m.state = 'refused', m.created_at DESC LIMIT 1) cap ON true "
	    "CROSS JOIN LATERAL (SELECT coalesce(sum(m.amount_minor) FILTER (WHERE m.state "
	    "IN ('succeeded', 'needs_attention')), 0)::bigint AS refunded, count(*) FILTER "
	    "(WHERE m.state = 'pending') AS pending FROM smartpay.modifications m "
	    "WHERE m.order_id = o.sp_id AND m.kind = 'refund' AND cap.state = 'succeeded') rf "
	    "WHERE (cap.state IS NULL OR cap.state IN ('succeeded', 'refused')) "
	    "AND (cap.state IS DISTINCT FROM 'succeeded' OR (rf.pending = 0 AND "
	    "(rf.refunded = 0 OR rf.refunded < cap.amount_minor))) AND %s AND %s %s"
	    ")) c ORDER BY deadline_ms NULLS LAST, id LIMIT $4",
	    with ? with : "", mid_order, times, o_shipped, rule, order_limit, mid_order, times,
	    o_early, no_capture, no_cancel, rule, order_limit, mid_cancel, times, o_cancelled,
	    no_cancel, rule, order_limit);
	free(with);
	free(rule);
	free(dl);
	free(ids);
	free(w_shipped);
	free(w_early);
	free(w_cancelled);
	free(o_shipped);
	free(o_early);
	free(o_cancelled);
	free(mid_order);
	free(mid_cancel);
	return sql;
}

/* Open shop requests (refund, cancel_or_refund) whose transaction has nothing in flight,
 * oldest first, with the transaction id from the succeeded capture or else the orders
 * relation, and what lib/intent.c re-checks them against: the succeeded capture's
 * amount and currency and the order's refunds succeeded, pending or in doubt. A
 * cancel_or_refund request for an order that already has a live cancel (or a refund
 * standing for one) is linked to it instead. Parameters: $1 limit. */
static char *requests_sql(const char *relation, bool read_only)
{
	/* a preview only leaves out the requests that the daemon would link */
	const char *link = read_only ? "SELECT r.request_id FROM smartpay.requests r, "
	                               "smartpay.modifications m WHERE r.modification_id IS NULL "
	                             : "UPDATE smartpay.requests r SET modification_id = "
	                               "m.modification_id FROM smartpay.modifications m "
	                               "WHERE r.modification_id IS NULL ";
	/* the daemon's query says, when no request can go, whether one is open behind a
	 * modification in flight (one more row, all NULL): only then can a finished
	 * modification free a request, so only then is the query run again after one */
	const char *found = read_only ? "" : ", found AS MATERIALIZED (";
	const char *blocked =
	    read_only
	        ? ""
	        : ") SELECT * FROM found UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, "
	          "NULL, NULL, NULL, NULL, NULL, NULL WHERE NOT EXISTS (SELECT 1 FROM found) "
	          "AND EXISTS (SELECT 1 FROM smartpay.requests q WHERE q.modification_id IS "
	          "NULL AND q.request_id NOT IN (SELECT request_id FROM linked)) ORDER BY 1";
	return xasprintf(
	    "WITH linked AS (%s"
	    "AND r.kind = 'cancel_or_refund' AND m.order_id = r.order_id "
	    "AND (m.kind IN ('cancel', 'cancel_or_refund') OR m.settles_cancel) "
	    "AND m.state <> 'refused' %s)%s "
	    "SELECT r.request_id, r.order_id, r.kind, r.amount_minor, "
	    "coalesce(r.currency, cap.currency, ord.currency), r.reason, "
	    "coalesce(cap.transaction_id, ord.transaction_id), ord.amount, "
	    "EXISTS (SELECT 1 FROM smartpay.modifications c WHERE c.order_id = r.order_id "
	    "AND (c.kind IN ('cancel', 'cancel_or_refund') OR c.settles_cancel) "
	    "AND c.state <> 'refused'), cap.amount_minor, cap.currency, rf.refunded "
	    "FROM smartpay.requests r "
	    "LEFT JOIN LATERAL (SELECT m.transaction_id, m.currency::text, m.amount_minor FROM "
	    "smartpay.modifications m WHERE m.order_id = r.order_id AND m.kind = 'capture' "
	    "AND m.state = 'succeeded' LIMIT 1) cap ON true "
	    "CROSS JOIN LATERAL (SELECT coalesce(sum(m.amount_minor), 0)::bigint AS refunded "
	    "FROM smartpay.modifications m WHERE m.order_id = r.order_id AND m.kind = 'refund' "
	    "AND m.state IN ('succeeded', 'pending', 'needs_attention')) rf "
	    "LEFT JOIN LATERAL (SELECT o.smartpay_transaction_id::text AS transaction_id, "
	    "o.currency::text AS currency, o.amount::text AS amount FROM %s o "
	    "WHERE o.id::text = r.order_id LIMIT 1) ord ON true "
	    "WHERE r.modification_id IS NULL "
	    "AND r.request_id NOT IN (SELECT request_id FROM linked) "
	    "AND NOT EXISTS (SELECT 1 FROM smartpay.modifications p WHERE p.state = 'pending' "
	    "AND p.transaction_id = coalesce(cap.transaction_id, ord.transaction_id)) "
	    "ORDER BY r.request_id LIMIT $1%s",
	    link, read_only ? "" : "RETURNING r.request_id", found, relation, blocked);
}

/* ---- preparation after each connect ---- */

/* The schema version this build needs: the last built-in migration. */
static int schema_version_needed(void)
{
	return sp_builtin_migration_count
	           ? sp_builtin_migrations[sp_builtin_migration_count - 1].version
	           : 0;
}

static void prepare_step(PGresult *res, const char *error, void *arg);

/* Runs the next preparation statement, or reports success. */
static void prepare_next(struct store_call *c)
{
	struct store *st = c->st;
	bool ok = true;
	char buf[STORE_INT_TEXT];
	switch (c->step) {
	case 0: {
		store_int_text(schema_version_needed(), buf);
		const char *p[] = {buf};
		ok = pg_conn_query(
		    st->pc,
		    "SELECT coalesce((SELECT max(version) FROM smartpay.schema_migrations "
		    "WHERE to_regclass('smartpay.schema_migrations') IS NOT NULL), 0) >= "
		    "$1::int AS ok, to_regclass('smartpay.schema_migrations') IS NOT NULL",
		    1, p, prepare_step, c);
		break;
	}
	case 1: {
		/* the types of the id and time columns shape the candidate query */
		const char *p[] = {st->cfg->orders_relation};
		ok = pg_conn_query(st->pc, STORE_SHAPE_SQL, 1, p, prepare_step, c);
		break;
	}
	case 2: {
		/* the orders contract: every column is there */
		char *sql =
		    xasprintf("SELECT id, status, smartpay_transaction_id, amount, currency, "
		              "capture_amount, authorized_at, authorization_expires_at "
		              "FROM %s LIMIT 0",
		              st->relation);
		ok = pg_conn_query(st->pc, sql, 0, NULL, prepare_step, c);
		free(sql);
		break;
	}
	case 3: {
		/* a shop with orders and no baseline is not acted on: its history would be; and
		 * is an enabled trigger feeding the queue of changed orders? */
		char *sql =
		    xasprintf("SELECT EXISTS (SELECT 1 FROM smartpay.adoption) OR NOT EXISTS "
		              "(SELECT 1 FROM %s) OR EXISTS (SELECT 1 FROM "
		              "smartpay.modifications), EXISTS (SELECT 1 FROM pg_trigger t "
		              "WHERE t.tgfoid = 'smartpay.orders_notify()'::regprocedure "
		              "AND t.tgenabled <> 'D')",
		              st->relation);
		ok = pg_conn_query(st->pc, sql, 0, NULL, prepare_step, c);
		free(sql);
		break;
	}
	case 4: {
		store_int_text(STORE_INSTANCE_LOCK_CLASS, buf);
		const char *p[] = {buf, st->instance};
		ok = pg_conn_query(st->pc, "SELECT pg_try_advisory_lock($1::int, hashtext($2))", 2,
		                   p, prepare_step, c);
		break;
	}
	case 5:
		ok = pg_conn_exec(
		    st->pc, "LISTEN smartpay_orders; LISTEN smartpay_requests; LISTEN smartpay_due",
		    prepare_step, c);
		break;
	default:
		c->fn.done(0, NULL, c->arg);
		store_call_free(c);
		return;
	}
	if (!ok) {
		c->fn.done(0, "database connection lost", c->arg);
		store_call_free(c);
	}
}

/* Checks one preparation answer and moves on. */
static void prepare_step(PGresult *res, const char *error, void *arg)
{
	struct store_call *c = arg;
	struct store *st = c->st;
	char *why = NULL;
	if (error) {
		why = xstrdup(error);
	} else if (c->step == 0 && !store_field_bool(res, 0, 0)) {
		why = xasprintf("the database schema is not up to date (need version %d): run "
		                "`smartpayctl migrate`",
		                schema_version_needed());
	} else if (c->step == 0 && store_quote_relation(st, &why) == NULL) {
		/* the statements below name the relation quoted on this connection */
	} else if (c->step == 1) {
		if (PQntuples(res) != 1) {
			why = xasprintf("orders relation %s not found or has no id column",
			                st->cfg->orders_relation);
		} else {
			free(st->id_type);
			st->id_type = xstrdup(PQgetvalue(res, 0, 0));
			free(st->authorized_type);
			free(st->expires_type);
			st->authorized_type = store_field_text(res, 0, 1);
			st->expires_type = store_field_text(res, 0, 2);
			free(st->sql_scan);
			free(st->sql_targeted);
			free(st->sql_requests);
			const struct store_shape shape = {st->relation, st->id_type,
			                                  st->authorized_type, st->expires_type};
			st->sql_scan = candidate_sql(&shape, false, true);
			st->sql_targeted = candidate_sql(&shape, true, true);
			st->sql_requests = requests_sql(st->relation, false);
		}
	} else if (c->step == 3 && !store_field_bool(res, 0, 0)) {
		why = xstrdup(STORE_NO_BASELINE_MESSAGE);
	} else if (c->step == 3) {
		st->queue_fed = store_field_bool(res, 0, 1);
	} else if (c->step == 4 && !store_field_bool(res, 0, 0)) {
		why = xasprintf("another smartpayd with instance_name %s is connected to this "
		                "database; each instance needs its own name",
		                st->instance);
	}
	if (why) {
		/* without libpq's trailing newline */
		c->fn.done(0, trim_end(why, "\n"), c->arg);
		free(why);
		store_call_free(c);
		return;
	}
	c->step++;
	prepare_next(c);
}

bool store_prepare(struct store *st, store_done_fn done, void *arg)
{
	if (!pg_conn_is_up(st->pc))
		return false;
	/* logs once what the server does with a commit (fire and forget) */
	if (!store_session_check(st->pc, &st->session_reported))
		return false;
	struct store_call *c = store_call_new(st, arg);
	c->fn.done = done;
	prepare_next(c);
	return true;
}

/* ---- candidates ---- */

struct candidate *store_candidates_read(PGresult *res, size_t *count)
{
	size_t n = (size_t)PQntuples(res);
	struct candidate *rows = xcalloc(n ? n : 1, sizeof(*rows));
	for (size_t i = 0; i < n; i++) {
		int r = (int)i;
		rows[i].order_id = store_field_text(res, r, 0);
		rows[i].status = store_field_text(res, r, 1);
		rows[i].transaction_id = store_field_text(res, r, 2);
		rows[i].amount = store_field_text(res, r, 3);
		rows[i].currency = store_field_text(res, r, 4);
		rows[i].capture_amount = store_field_text(res, r, 5);
		rows[i].has_deadline = !PQgetisnull(res, r, 6);
		rows[i].deadline_ms = store_field_int(res, r, 6);
		if (!mod_kind_parse(PQgetvalue(res, r, 7), &rows[i].kind))
			rows[i].kind = MOD_CAPTURE;
		rows[i].authorized_at = store_field_text(res, r, 8);
		rows[i].expires_at = store_field_text(res, r, 9);
		rows[i].cancel_state = store_field_text(res, r, 10);
		rows[i].cancel_id = store_field_text(res, r, 11);
		rows[i].captured_minor = store_field_int_or(res, r, 12, -1);
		rows[i].refunded_minor = store_field_int(res, r, 13);
	}
	*count = n;
	return rows;
}

/* Completion of store_find_candidates: the rows go to the caller. */
static void candidates_done(PGresult *res, const char *error, void *arg)
{
	struct store_call *c = arg;
	size_t n = 0;
	struct candidate *rows = error ? NULL : store_candidates_read(res, &n);
	c->fn.candidates(rows, n, error, c->arg);
	store_call_free(c);
}

void store_candidate_params_init(struct store_candidate_params *p, const struct sp_config *cfg,
                                 int limit, const char *const *ids, size_t nids)
{
	memset(p, 0, sizeof(*p));
	p->shipped = store_text_array(cfg->shipped_statuses.items, cfg->shipped_statuses.count);
	p->cancelled =
	    store_text_array(cfg->cancelled_statuses.items, cfg->cancelled_statuses.count);
	p->early = store_text_array(cfg->early_statuses.items, cfg->early_statuses.count);
	store_interval_text(cfg->authorization_validity_ms, p->validity);
	store_interval_text(cfg->early_margin_ms, p->margin);
	store_int_text(limit, p->limit);
	p->idlist = ids ? store_text_array((char *const *)ids, nids) : NULL;
	p->values[0] = p->shipped;
	p->values[1] = p->cancelled;
	p->values[2] = p->validity;
	p->values[3] = p->limit;
	p->values[4] = p->early;
	p->values[5] = p->margin;
	p->values[6] = cfg->early_action_cancel ? "cancel" : "capture";
	p->values[7] = p->idlist;
	p->count = ids ? 8 : 7;
}

void store_candidate_params_clear(struct store_candidate_params *p)
{
	free(p->shipped);
	free(p->cancelled);
	free(p->early);
	free(p->idlist);
	memset(p, 0, sizeof(*p));
}

bool store_find_candidates(struct store *st, const char *const *ids, size_t nids, int limit,
                           store_candidates_fn done, void *arg)
{
	if (st->sql_scan == NULL || !pg_conn_is_up(st->pc))
		return false;
	struct store_candidate_params p;
	store_candidate_params_init(&p, st->cfg, limit, ids, nids);
	struct store_call *c = store_call_new(st, arg);
	c->fn.candidates = done;
	bool ok =
	    ids ? store_call_query_prepared(c, "smartpay_targeted_candidates", st->sql_targeted,
	                                    p.count, p.values, NULL, NULL, candidates_done)
	        : store_call_query_prepared(c, "smartpay_candidates", st->sql_scan, p.count,
	                                    p.values, NULL, NULL, candidates_done);
	store_candidate_params_clear(&p);
	return ok;
}

char *store_candidate_query(const struct store_shape *shape, bool targeted, bool adopted)
{
	return candidate_sql(shape, targeted, adopted);
}

char *store_requests_query(const char *relation, bool read_only)
{
	return requests_sql(relation, read_only);
}

char *store_error_text(const char *error)
{
	const char *s = error && *error ? error : "unknown error";
	if (strncmp(s, "ERROR:", 6) == 0)
		for (s += 6; *s == ' '; s++)
			;
	size_t n = 0;
	while (s[n] && s[n] != '\n' && n < 200)
		n++;
	n = trim_end_len(s, n, " ");
	char *out = xstrndup(s, n);
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	if (*out == '\0') {
		free(out);
		out = xstrdup("unknown error");
	}
	return out;
}

/* ---- shop requests ---- */

/* The first n rows of a requests result. */
static struct shop_request *requests_rows(PGresult *res, size_t n)
{
	struct shop_request *rows = xcalloc(n ? n : 1, sizeof(*rows));
	for (size_t i = 0; i < n; i++) {
		int r = (int)i;
		rows[i].request_id = store_field_int(res, r, 0);
		rows[i].order_id = store_field_text(res, r, 1);
		if (!mod_kind_parse(PQgetvalue(res, r, 2), &rows[i].kind))
			rows[i].kind = MOD_REFUND;
		rows[i].amount_minor = store_field_int_or(res, r, 3, -1);
		rows[i].currency = store_field_text(res, r, 4);
		rows[i].reason = store_field_text(res, r, 5);
		rows[i].transaction_id = store_field_text(res, r, 6);
		rows[i].order_amount = store_field_text(res, r, 7);
		rows[i].order_cancelled = store_field_bool(res, r, 8);
		rows[i].captured_minor = store_field_int_or(res, r, 9, -1);
		rows[i].capture_currency = store_field_text(res, r, 10);
		rows[i].refunded_minor = store_field_int(res, r, 11);
	}
	return rows;
}

struct shop_request *store_requests_read(PGresult *res, size_t *count)
{
	*count = (size_t)PQntuples(res);
	return requests_rows(res, *count);
}

/* The rows of the daemon's query; a request open behind a modification in flight is
 * the all-NULL row, only when none came. */
struct shop_request *store_requests_found(PGresult *res, size_t *count, bool *blocked)
{
	size_t n = (size_t)PQntuples(res);
	*blocked = n > 0 && PQgetisnull(res, (int)n - 1, 0);
	if (*blocked)
		n--;
	*count = n;
	return requests_rows(res, n);
}

/* Completion of store_find_requests: the rows go to the caller, and whether a request
 * is open behind a modification in flight. */
static void requests_done(PGresult *res, const char *error, void *arg)
{
	struct store_call *c = arg;
	size_t n = 0;
	bool blocked = false;
	struct shop_request *rows = error ? NULL : store_requests_found(res, &n, &blocked);
	c->fn.requests(rows, n, blocked, error, c->arg);
	store_call_free(c);
}

bool store_find_requests(struct store *st, int limit, store_requests_fn done, void *arg)
{
	if (st->sql_requests == NULL || !pg_conn_is_up(st->pc))
		return false;
	char lim[STORE_INT_TEXT];
	const char *p[] = {store_int_text(limit, lim)};
	struct store_call *c = store_call_new(st, arg);
	c->fn.requests = done;
	return store_call_query_prepared(c, "smartpay_requests", st->sql_requests, 1, p, NULL, NULL,
	                                 requests_done);
}

/* ---- claims ---- */

/* The columns every claim query returns, in the order claims_done reads them. */
#define CLAIM_COLUMNS                                                                              \
	"m.modification_id::text, m.order_id, m.transaction_id, m.kind, m.request_body, "          \
	"m.attempts, m.lease_generation, (extract(epoch FROM m.deadline) * 1000)::bigint, "        \
	"coalesce(m.deadline <= now(), false), m.lease_owner IS NOT NULL, "                        \
	"coalesce((extract(epoch FROM m.lease_expires_at - clock_timestamp()) * 1000)::bigint, 0)"

/* The claims of a result of CLAIM_COLUMNS. */
static struct claim *claims_read(PGresult *res, size_t *count)
{
	size_t n = (size_t)PQntuples(res);
	int64_t now = clock_mono_ms();
	struct claim *rows = xcalloc(n ? n : 1, sizeof(*rows));
	for (size_t i = 0; i < n; i++) {
		int r = (int)i;
		rows[i].modification_id = store_field_text(res, r, 0);
		rows[i].order_id = store_field_text(res, r, 1);
		rows[i].transaction_id = store_field_text(res, r, 2);
		if (!mod_kind_parse(PQgetvalue(res, r, 3), &rows[i].kind))
			rows[i].kind = MOD_CAPTURE;
		rows[i].body = store_field_text(res, r, 4);
		rows[i].attempts = (int)store_field_int(res, r, 5);
		rows[i].generation = store_field_int(res, r, 6);
		rows[i].deadline_ms = store_field_int(res, r, 7);
		rows[i].deadline_passed = store_field_bool(res, r, 8);
		rows[i].leased = store_field_bool(res, r, 9);
		rows[i].lease_until_ms = now + store_field_int(res, r, 10);
	}
	*count = n;
	return rows;
}

/* Completion of a statement that returns claims: they go to the caller. */
static void claims_done(PGresult *res, const char *error, void *arg)
{
	struct store_call *c = arg;
	size_t n = 0;
	struct claim *rows = error ? NULL : claims_read(res, &n);
	c->fn.claims(rows, n, error, c->arg);
	store_call_free(c);
}

/* The most parameters of a batch statement: its text parameters, then its columns. */
#define BATCH_MAX_PARAMS 16

/* A batch statement's parameters: its text parameters ($1...), then each of its columns
 * as a binary array (pointing into the texts and the arrays, which outlive them). */
struct batch_params {
	const char *values[BATCH_MAX_PARAMS];
	int lengths[BATCH_MAX_PARAMS], formats[BATCH_MAX_PARAMS];
	int n;
};

/* Fills `p` from `ntext` texts and `ncols` columns (finished here). */
static void batch_params_set(struct batch_params *p, const char *const *text, int ntext,
                             struct store_bin_array *cols, int ncols)
{
	*p = (struct batch_params){.n = ntext + ncols};
	for (int k = 0; k < ntext; k++)
		p->values[k] = text[k];
	for (int k = 0; k < ncols; k++) {
		p->lengths[ntext + k] = store_bin_array_finish(&cols[k]);
		p->values[ntext + k] = cols[k].data;
		p->formats[ntext + k] = 1;
	}
}

/* Queues the batch statement `sql`, prepared once per connection as `name`, with
 * parameters `p`. */
static bool batch_query(struct store_call *c, const char *name, const char *sql,
                        const struct batch_params *p, pg_query_fn completion)
{
	return store_call_query_prepared(c, name, sql, p->n, p->values, p->lengths, p->formats,
	                                 completion);
}

/* Queues the batch statement `sql` (batch_query) with `ntext` text parameters, then each
 * of the `ncols` columns as a binary array, which it frees. */
static bool batch_send(struct store_call *c, const char *name, const char *sql,
                       const char *const *text, int ntext, struct store_bin_array *cols, int ncols,
                       pg_query_fn completion)
{
	struct batch_params p;
	batch_params_set(&p, text, ntext, cols, ncols);
	bool ok = batch_query(c, name, sql, &p, completion);
	for (int k = 0; k < ncols; k++)
		store_bin_array_free(&cols[k]);
	return ok;
}

bool store_insert_intents(struct store *st, const struct intent *intents, size_t n,
                          store_claims_fn done, void *arg)
{
	return store_insert_intents_consuming(st, intents, n, NULL, NULL, 0, done, arg);
}

/* After an intent insert that a conflict with a rule failed, how many of the next ones
 * are sent with ON CONFLICT at once: conflicts come in runs (another instance claiming
 * the same orders, changes waiting behind a modification in flight). */
#define INTENTS_GUARDED_AFTER_CONFLICT 32

/* The intent insert up to the insert's conflict clause. */
static const char intents_sql_head[] =
    /* $1 the consumed changes, $2 the instance, $3 the lease, then the batch's
     * columns as binary arrays (struct intents_params) */
    "WITH u AS (SELECT id::uuid AS id, order_id, transaction_id, kind, amount, currency, "
    "body, reason, deadline_ms, request_id, settles_cancel, lease FROM unnest($4::text[], "
    "$5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[], "
    "$11::text[], $12::bigint[], $13::bigint[], $14::bool[], $15::bool[]) AS u(id, "
    "order_id, transaction_id, kind, amount, currency, body, reason, deadline_ms, "
    "request_id, settles_cancel, lease)), "
    "ins AS (INSERT INTO smartpay.modifications AS m (modification_id, order_id, "
    "transaction_id, kind, amount_minor, currency, request_body, state, reason, deadline, "
    "lease_owner, lease_generation, lease_expires_at, completed_at, request_id, "
    "settles_cancel) "
    "SELECT id, order_id, transaction_id, kind, amount, currency, body, "
    "CASE WHEN reason IS NULL THEN 'pending' ELSE 'refused' END, reason, "
    "to_timestamp(deadline_ms / 1000.0), CASE WHEN reason IS NULL AND lease THEN $2 END, "
    "1, "
    "CASE WHEN reason IS NULL AND lease THEN now() + $3::interval END, "
    "CASE WHEN reason IS NULL THEN NULL ELSE now() END, request_id, "
    "coalesce(settles_cancel, false) FROM u ";

/* The intent insert's test of a refund's room, after intents_sql_head. */
static const char intents_sql_refund_room[] =
    /* a refund is recorded only within what remains captured by the ledger as this
     * statement sees it (another daemon may have recorded one since the claim read
     * it); one left out is looked at again and refused with its reason */
    "WHERE CASE WHEN u.kind = 'refund' AND u.reason IS NULL THEN u.amount + "
    "(SELECT coalesce(sum(r.amount_minor), 0) FROM smartpay.modifications r "
    "WHERE r.order_id = u.order_id AND r.kind = 'refund' "
    "AND r.state IN ('succeeded', 'pending', 'needs_attention')) <= "
    "(SELECT c.amount_minor FROM smartpay.modifications c WHERE c.order_id = u.order_id "
    "AND c.kind = 'capture' AND c.state = 'succeeded' LIMIT 1) ELSE true END ";

/* The intent insert after its conflict clause. */
/* The intent insert's links of shop requests and refusals' alerts, after "RETURNING *), ". */
static const char intents_sql_links[] =
    "req AS (UPDATE smartpay.requests r SET modification_id = ins.modification_id "
    "FROM ins WHERE r.request_id = ins.request_id), "
    "al AS (INSERT INTO smartpay.alerts (kind, severity, order_id, modification_id, "
    "dedup_key, message) SELECT 'order_refused', 'critical', order_id, modification_id, "
    "modification_id::text, 'order ' || order_id || ' refused: ' || reason "
    "FROM ins WHERE state = 'refused' ON CONFLICT DO NOTHING), ";

/* The queued orders looked at go with the intents they gave, named by their queued ids
 * (sql/022: change_id * 1024 + the position in a chunk), except an order whose intent
 * was not recorded (blocked behind a pending modification of its transaction, a refund
 * that no longer fits): it stays (kp, in the full text only). */
static const char intents_sql_kept[] = "kp AS (SELECT u.order_id FROM u WHERE NOT EXISTS "
                                       "(SELECT 1 FROM ins WHERE ins.order_id = u.order_id)), ";

/* The consumed changes' bookkeeping in three parts around the two tests of kp (the full
 * text: intents_sql_kept_change, intents_sql_kept_entry; the lean text has none). */
static const char intents_sql_chunks_head[] =
    "sn AS (SELECT x AS id FROM unnest($1::bigint[]) AS x), "
    /* one order a row: deleted */
    "con AS (DELETE FROM smartpay.order_changes c "
    "WHERE c.change_id = ANY (ARRAY(SELECT id / 1024 FROM sn WHERE id % 1024 = 0)) ";
static const char intents_sql_kept_change[] =
    "AND NOT EXISTS (SELECT 1 FROM kp WHERE kp.order_id = c.order_id) ";
static const char intents_sql_chunks_mid[] =
    "RETURNING c.order_id), "
    /* the chunks: locked in id order and read as they are now (another daemon may
     * have taken orders out since this statement's snapshot), so that what is
     * decided here holds until the commit */
    "ck AS MATERIALIZED (SELECT k.change_id, k.order_ids "
    "FROM smartpay.order_change_chunks k "
    "WHERE k.change_id = ANY (ARRAY(SELECT DISTINCT id / 1024 FROM sn)) "
    "ORDER BY k.change_id FOR UPDATE), "
    "ce AS MATERIALIZED (SELECT ck.change_id, ck.change_id * 1024 + e.pos - 1 AS id, "
    "e.order_id, ck.change_id * 1024 + e.pos - 1 IN (SELECT id FROM sn) ";
static const char intents_sql_kept_entry[] =
    "AND NOT EXISTS (SELECT 1 FROM kp WHERE kp.order_id = e.order_id) ";
static const char intents_sql_chunks_tail[] =
    "AS done "
    "FROM ck CROSS JOIN LATERAL unnest(ck.order_ids) WITH ORDINALITY AS e(order_id, pos) "
    "WHERE e.order_id IS NOT NULL), "
    "cd AS (SELECT change_id, bool_and(done) AS whole FROM ce GROUP BY change_id "
    "HAVING bool_or(done)), "
    /* a chunk whose orders are all looked at is deleted; one with orders left keeps
     * them, the others set to NULL */
    "cdel AS (DELETE FROM smartpay.order_change_chunks k USING cd "
    "WHERE k.change_id = cd.change_id AND cd.whole), "
    "cupd AS (UPDATE smartpay.order_change_chunks k SET order_ids = "
    "(SELECT array_agg(CASE WHEN k.change_id * 1024 + e.pos - 1 IN "
    "(SELECT id FROM ce WHERE done) THEN NULL ELSE e.order_id END ORDER BY e.pos) "
    "FROM unnest(k.order_ids) WITH ORDINALITY AS e(order_id, pos)) "
    "FROM cd WHERE k.change_id = cd.change_id AND NOT cd.whole)";

/* The full text's follow-up marks and queued-again changes, after the bookkeeping. */
static const char intents_sql_follow_up[] =
    ", "
    /* an order looked at that gave no intent may wait behind a modification in
     * flight (a cancel during its capture, behind a refund): that one is marked and
     * its outcome queues the order again (sql/017); so is what an intent that was
     * not recorded waits behind. A finished one that nobody asked about (false) is
     * marked too: the claim may have read it still pending. */
    "qt AS (SELECT DISTINCT order_id FROM (SELECT order_id FROM con UNION ALL "
    "SELECT order_id FROM ce WHERE done) d WHERE NOT EXISTS (SELECT 1 FROM u "
    "WHERE u.order_id = d.order_id)), "
    "fu AS (UPDATE smartpay.modifications m SET follow_up = true "
    "WHERE m.order_id = ANY (ARRAY(SELECT order_id FROM qt UNION SELECT u.order_id "
    "FROM u WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.order_id = u.order_id))) "
    "AND m.follow_up IS NOT TRUE AND (m.state = 'pending' OR (m.follow_up = false "
    "AND m.order_id IN (SELECT order_id FROM qt))) "
    "RETURNING m.modification_id, m.order_id, m.state = 'pending' AS marked), "
    /* where the mark did not land on a pending one (its outcome was written since)
     * or met a finished one, the order is queued again at once, in this commit */
    "rq AS (INSERT INTO smartpay.order_changes (order_id) SELECT r.order_id FROM "
    "(SELECT q.order_id FROM qt q WHERE EXISTS (SELECT 1 FROM fu "
    "WHERE fu.order_id = q.order_id AND NOT fu.marked) OR EXISTS (SELECT 1 FROM "
    "smartpay.modifications p WHERE p.order_id = q.order_id AND p.state = 'pending' "
    "AND p.follow_up IS NOT TRUE AND NOT EXISTS (SELECT 1 FROM fu "
    "WHERE fu.modification_id = p.modification_id AND fu.marked))) r "
    "CROSS JOIN LATERAL pg_notify('smartpay_orders', r.order_id) n) "
    "SELECT " CLAIM_COLUMNS " FROM ins m WHERE m.state = 'pending'";

/* The intent insert's texts (and the lean one of a batch that leaves nothing behind,
 * above): plain, where a conflict with one of the ledger's rules
 * (one live capture or cancel per order, one pending modification per transaction, one
 * modification per shop request) fails the whole statement, and with ON CONFLICT DO
 * NOTHING, which records the others. The plain insert is sent first: ON CONFLICT probes
 * every unique index of the ledger for each row before inserting it and takes a
 * speculative-insertion lock per row, about 4 us a row (bench/README.md); a plain
 * insert checks the same indexes as it inserts into them. A batch that conflicts is
 * sent again with ON CONFLICT in the same call (intents_done): its first statement
 * wrote nothing. */
static void store_intents_sql(struct store *st)
{
	for (int guarded = 0; guarded < 2; guarded++)
		st->sql_intents[guarded] = store_intents_text(guarded);
	st->sql_intents[INTENTS_LEAN] = store_intents_lean_text();
}

/* The intent insert, plain or with ON CONFLICT DO NOTHING (store_internal.h). */
char *store_intents_text(bool guarded)
{
	return xasprintf("%s%s%sRETURNING *), %s%s%s%s%s%s%s%s", intents_sql_head,
	                 intents_sql_refund_room, guarded ? "ON CONFLICT DO NOTHING " : "",
	                 intents_sql_links, intents_sql_kept, intents_sql_chunks_head,
	                 intents_sql_kept_change, intents_sql_chunks_mid, intents_sql_kept_entry,
	                 intents_sql_chunks_tail, intents_sql_follow_up);
}

/* The plain intent insert that leaves nothing behind (store_internal.h), for a batch
 * where nothing can be left behind (store_intents_leave_nothing): every queued order
 * looked at gave an intent of the batch, no refund's room is tested against the ledger
 * (none is in the batch) and the insert is plain (a conflict fails it whole), so every
 * row of u is recorded, every change looked at is done and no order waits behind a
 * modification in flight. The orders left (kp), the orders looked at without an intent
 * (qt), their follow-up marks (fu) and queued-again changes (rq) of the full text are
 * then all empty, and are left out; so are the shop requests' links (req) and the
 * refusals' alerts (al), since no intent answers a request or is refused: an empty
 * UPDATE of smartpay.requests and an empty INSERT into smartpay.alerts still fire their
 * tables' statement triggers. */
char *store_intents_lean_text(void)
{
	return xasprintf("%sRETURNING *), %s%s%s SELECT " CLAIM_COLUMNS
	                 " FROM ins m WHERE m.state = 'pending'",
	                 intents_sql_head, intents_sql_chunks_head, intents_sql_chunks_mid,
	                 intents_sql_chunks_tail);
}

/* Orders strings for qsort and bsearch. */
static int intents_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* True when the lean intent insert does what the full one does (store_internal.h). */
bool store_intents_leave_nothing(const struct intent *intents, size_t n,
                                 const char *const *changed_orders, size_t nchanges)
{
	for (size_t i = 0; i < n; i++)
		if (intents[i].kind == MOD_REFUND || intents[i].reason != NULL ||
		    intents[i].request_id > 0)
			return false;
	if (nchanges == 0)
		return true;
	if (changed_orders == NULL || n == 0)
		return false;
	const char **own = xcalloc(n, sizeof(char *));
	size_t nown = 0;
	for (size_t i = 0; i < n; i++)
		if (intents[i].order_id != NULL)
			own[nown++] = intents[i].order_id;
	qsort(own, nown, sizeof(char *), intents_cmp_str);
	bool all = true;
	for (size_t k = 0; k < nchanges && all; k++)
		all = changed_orders[k] != NULL && bsearch(&changed_orders[k], own, nown,
		                                           sizeof(char *), intents_cmp_str) != NULL;
	free(own);
	return all;
}

/* The intent insert's columns, sent as binary arrays after its three text parameters. */
enum {
	I_ID,
	I_ORDER,
	I_TRANSACTION,
	I_KIND,
	I_AMOUNT,
	I_CURRENCY,
	I_BODY,
	I_REASON,
	I_DEADLINE,
	I_REQUEST,
	I_SETTLES,
	I_LEASE,
	I_COLUMNS
};
#define INTENTS_TEXT_PARAMS 3

/* An intent insert's parameters, kept until its answer: a batch that conflicts is sent
 * again with ON CONFLICT. */
struct intents_params {
	struct batch_params params;
	struct store_bin_array col[I_COLUMNS];
	char *consumed;
	char lease[STORE_INTERVAL_TEXT];
	bool guarded; /* sent with ON CONFLICT DO NOTHING */
	bool lean;    /* plain, and nothing of the batch can be left behind */
};

/* Frees an intent insert's parameters (the call's data). */
static void intents_params_free(void *data)
{
	struct intents_params *p = data;
	for (int k = 0; k < I_COLUMNS; k++)
		store_bin_array_free(&p->col[k]);
	free(p->consumed);
	free(p);
}

/* Tells a unique violation, a conflict with one of the ledger's rules, from other
 * failures. */
static bool result_unique_violation(const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	return state != NULL && strcmp(state, "23505") == 0;
}

static void intents_done(PGresult *res, const char *error, void *arg);

/* Queues the call's intent insert (its data), plain or with ON CONFLICT. */
static bool intents_send(struct store_call *c)
{
	struct intents_params *p = c->data;
	if (p->guarded)
		return batch_query(c, "smartpay_insert_intents", c->st->sql_intents[1], &p->params,
		                   intents_done);
	if (p->lean)
		return batch_query(c, "smartpay_insert_intents_lean",
		                   c->st->sql_intents[INTENTS_LEAN], &p->params, intents_done);
	return batch_query(c, "smartpay_insert_intents_plain", c->st->sql_intents[0], &p->params,
	                   intents_done);
}

/* Completion of an intent insert: a plain one that a rule's conflict failed (nothing of
 * it was written) goes again with ON CONFLICT in the same call, and so do the next few;
 * otherwise the claims go to the caller. */
static void intents_done(PGresult *res, const char *error, void *arg)
{
	struct store_call *c = arg;
	struct intents_params *p = c->data;
	if (error == NULL || p->guarded || !result_unique_violation(res)) {
		claims_done(res, error, arg);
		return;
	}
	c->st->intents_guarded = INTENTS_GUARDED_AFTER_CONFLICT;
	p->guarded = true;
	store_claims_fn done = c->fn.claims;
	void *done_arg = c->arg;
	if (!intents_send(c)) /* the call is freed */
		done(NULL, 0, error, done_arg);
}

bool store_insert_intents_consuming(struct store *st, const struct intent *intents, size_t n,
                                    const int64_t *changes, const char *const *changed_orders,
                                    size_t nchanges, store_claims_fn done, void *arg)
{
	if (!pg_conn_is_up(st->pc))
		return false;
	static const uint32_t types[I_COLUMNS] = {STORE_OID_TEXT, STORE_OID_TEXT, STORE_OID_TEXT,
	                                          STORE_OID_TEXT, STORE_OID_INT8, STORE_OID_TEXT,
	                                          STORE_OID_TEXT, STORE_OID_TEXT, STORE_OID_INT8,
	                                          STORE_OID_INT8, STORE_OID_BOOL, STORE_OID_BOOL};
	struct intents_params *p = xcalloc(1, sizeof(*p));
	struct store_bin_array *col = p->col;
	for (int k = 0; k < I_COLUMNS; k++)
		store_bin_array_init(&col[k], types[k]);
	for (size_t i = 0; i < n; i++) {
		const struct intent *in = &intents[i];
		store_bin_array_text(&col[I_ID], in->modification_id);
		store_bin_array_text(&col[I_ORDER], in->order_id);
		store_bin_array_text(&col[I_TRANSACTION], in->transaction_id);
		store_bin_array_text(&col[I_KIND], mod_kind_name(in->kind));
		store_bin_array_int8(&col[I_AMOUNT], in->amount_minor, in->amount_minor < 0);
		store_bin_array_text(&col[I_CURRENCY], in->currency);
		store_bin_array_text(&col[I_BODY], in->body);
		store_bin_array_text(&col[I_REASON], in->reason);
		store_bin_array_int8(&col[I_DEADLINE], in->deadline_ms, in->deadline_ms <= 0);
		store_bin_array_int8(&col[I_REQUEST], in->request_id, in->request_id <= 0);
		store_bin_array_bool(&col[I_SETTLES], in->settles_cancel);
		store_bin_array_bool(&col[I_LEASE], in->lease);
	}
	/* $1 the consumed changes, $2 the instance, $3 the lease, then the columns */
	p->consumed = store_int_array(changes, nchanges);
	const char *text[INTENTS_TEXT_PARAMS] = {p->consumed, st->instance,
	                                         store_interval_text(st->cfg->lease_ms, p->lease)};
	batch_params_set(&p->params, text, INTENTS_TEXT_PARAMS, col, I_COLUMNS);
	p->guarded = st->intents_guarded > 0;
	if (st->intents_guarded > 0)
		st->intents_guarded--;
	p->lean = store_intents_leave_nothing(intents, n, changed_orders, nchanges);
	struct store_call *c = store_call_new(st, arg);
	c->fn.claims = done;
	c->data = p;
	c->data_free = intents_params_free;
	return intents_send(c);
}

/* The claim of due rows: pending, attempt time passed, not leased or the lease
 * expired, or ($4) leased by this instance; earliest deadline first. The range test on
 * the time a row becomes available reads only those rows through
 * smartpay.modifications_available (sql/019), not the leased ones, which are nearly all
 * of the pending rows in a burst. Parameters: $1 instance, $2 lease, $3 limit, $4 own. */
const char store_claim_due_sql[] =
    "WITH due AS (SELECT modification_id FROM smartpay.modifications "
    "WHERE state = 'pending' AND (((CASE WHEN lease_owner IS NULL THEN next_attempt_at "
    "ELSE greatest(next_attempt_at, lease_expires_at) END) <= now() "
    "AND next_attempt_at <= now() AND (lease_owner IS NULL "
    "OR lease_expires_at < now())) OR ($4::bool AND lease_owner = $1)) "
    "ORDER BY deadline NULLS LAST, next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) "
    "UPDATE smartpay.modifications m SET lease_owner = $1, "
    "lease_generation = m.lease_generation + 1, lease_expires_at = now() + $2::interval, "
    "updated_at = now() FROM due WHERE m.modification_id = due.modification_id "
    "RETURNING " CLAIM_COLUMNS;

bool store_claim_due(struct store *st, int limit, bool own, store_claims_fn done, void *arg)
{
	if (!pg_conn_is_up(st->pc))
		return false;
	char lease[STORE_INTERVAL_TEXT], lim[STORE_INT_TEXT];
	const char *p[] = {st->instance, store_interval_text(st->cfg->lease_ms, lease),
	                   store_int_text(limit, lim), own ? "t" : "f"};
	struct store_call *c = store_call_new(st, arg);
	c->fn.claims = done;
	return store_call_query(c, store_claim_due_sql, 4, p, claims_done);
}

/* ---- outcomes ---- */

/* Completion of store_write_outcomes: the fenced ids go to the caller. */
static void outcomes_done(PGresult *res, const char *error, void *arg)
{
	struct store_call *c = arg;
	if (error) {
		c->fn.written(NULL, NULL, 0, error, store_result_rejected(res), c->arg);
		store_call_free(c);
		return;
	}
	size_t n = (size_t)PQntuples(res);
	char **fenced = xcalloc(n ? n : 1, sizeof(char *));
	bool *disagrees = xcalloc(n ? n : 1, sizeof(bool));
	for (size_t i = 0; i < n; i++) {
		fenced[i] = xstrdup(PQgetvalue(res, (int)i, 0));
		disagrees[i] = store_field_bool(res, (int)i, 1);
	}
	c->fn.written(fenced, disagrees, n, NULL, false, c->arg);
	for (size_t i = 0; i < n; i++)
		free(fenced[i]);
	free(fenced);
	free(disagrees);
	store_call_free(c);
}

/* Rows whose lease moved on (another owner or generation) are not written; their ids
 * come back as fenced. */
const char store_write_outcomes_sql[] =
    /* the owner and the expected state travel with the rows (below) */
    "WITH u AS (SELECT id::uuid AS id, gen, state, reason, http_status::int AS "
    "http_status, response_body, payment_status, rrid, delay_ms, counted, alert_kind, "
    "alert_severity, settled_by, $1::text AS owner, 'pending'::text AS expected "
    /* the batch's columns as binary arrays (batch_send) */
    "FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], "
    "$7::text[], $8::text[], $9::text[], $10::bigint[], $11::bool[], $12::text[], "
    "$13::text[], $14::text[]) AS u(id, gen, state, reason, http_status, response_body, "
    "payment_status, rrid, delay_ms, counted, alert_kind, alert_severity, settled_by)), "
    "upd AS (UPDATE smartpay.modifications m SET state = u.state, "
    "reason = u.reason, settled_by = coalesce(u.settled_by, m.settled_by), "
    "attempts = m.attempts + CASE WHEN u.counted THEN 1 ELSE 0 END, "
    "http_status = coalesce(u.http_status, m.http_status), "
    "response_body = coalesce(u.response_body, m.response_body), "
    "payment_status = coalesce(u.payment_status, m.payment_status), "
    "reconciliation_reference_id = coalesce(u.rrid, m.reconciliation_reference_id), "
    "next_attempt_at = CASE WHEN u.state = 'pending' "
    "THEN now() + coalesce(u.delay_ms, 0) * interval '1 millisecond' "
    "ELSE m.next_attempt_at END, "
    "lease_owner = NULL, lease_expires_at = NULL, updated_at = now(), "
    "completed_at = CASE WHEN u.state = 'pending' THEN NULL ELSE now() END, "
    /* final: whether a change of the order waits for it (sql/017) */
    "follow_up = CASE WHEN u.state = 'pending' THEN m.follow_up "
    "ELSE m.follow_up IS TRUE END "
    /* the id list lets the planner probe the primary key whatever the statistics.
     * The owner and the state are compared with u's columns, not constants: as
     * restrictions of the ledger alone, estimated from statistics that lag behind
     * a burst (no row had an owner when they were taken), they made the ledger's
     * side look like one row, and the planner looped over the whole batch for each
     * row: a write quadratic in the batch size */
    "FROM u WHERE m.modification_id = ANY($2::text[]::uuid[]) AND m.modification_id = u.id "
    "AND m.lease_owner = u.owner "
    "AND m.lease_generation = u.gen AND m.state = u.expected "
    "RETURNING m.modification_id, m.order_id, m.kind, m.state, m.attempts, u.alert_kind, "
    "u.alert_severity, m.reason, m.follow_up), "
    /* a finished modification may let the next one of its order go (a cancel after
     * a capture or behind a refund): when a change of the order was looked at while
     * it was in flight (marked, sql/017), the order is queued in the same commit, so
     * a restart does not forget it */
    "fol AS (INSERT INTO smartpay.order_changes (order_id) SELECT DISTINCT order_id "
    "FROM upd WHERE state <> 'pending' AND follow_up), "
    "al AS (INSERT INTO smartpay.alerts (kind, severity, order_id, modification_id, "
    "dedup_key, message) SELECT alert_kind, alert_severity, order_id, modification_id, "
    "modification_id::text || ':' || attempts, kind || ' for order ' || order_id || ': ' "
    "|| "
    "coalesce(reason, alert_kind) FROM upd WHERE alert_kind IS NOT NULL "
    "ON CONFLICT DO NOTHING), "
    /* a fenced final outcome that contradicts the final state the new owner recorded:
     * the ledger keeps the winner's, an operator must look at the gateway */
    "dis AS (INSERT INTO smartpay.alerts (kind, severity, order_id, modification_id, "
    "dedup_key, message) SELECT 'outcome_disagrees', 'critical', m.order_id, "
    "m.modification_id, m.modification_id::text || ':' || u.state, "
    "m.kind || ' for order ' || m.order_id || ': instance ' || $1 || ' saw ' || u.state "
    "|| coalesce(' (HTTP ' || u.http_status || ')', '') || ' after its lease moved on, "
    "but the ledger records ' || m.state || coalesce(' (HTTP ' || m.http_status || ')', "
    "'') || '; check the transaction at SmartPay' "
    "FROM u JOIN smartpay.modifications m ON m.modification_id = u.id "
    /* the ledger's rows of the fenced final outcomes by their ids (none, mostly), as
     * in upd: no plan reads the ledger beyond them */
    "WHERE m.modification_id = ANY (ARRAY(SELECT f.id FROM u f WHERE f.id NOT IN "
    "(SELECT modification_id FROM upd) AND f.state <> 'pending')) "
    "AND u.id NOT IN (SELECT modification_id FROM upd) AND u.state <> 'pending' "
    "AND m.state <> 'pending' AND m.state <> u.state "
    "ON CONFLICT DO NOTHING RETURNING modification_id) "
    "SELECT u.id::text, u.id IN (SELECT modification_id FROM dis) FROM u "
    "WHERE u.id NOT IN (SELECT modification_id FROM upd)";

/* The batch of outcomes as the statement's columns, one binary array each. */
void store_outcome_columns(const struct outcome *outcomes, size_t n,
                           struct store_bin_array col[STORE_OUTCOME_COLUMNS])
{
	enum {
		O_ID,
		O_GEN,
		O_STATE,
		O_REASON,
		O_HTTP,
		O_BODY,
		O_PAYMENT,
		O_RRID,
		O_DELAY,
		O_COUNTED,
		O_ALERT_KIND,
		O_ALERT_SEVERITY,
		O_SETTLED
	};
	static const uint32_t types[STORE_OUTCOME_COLUMNS] = {
	    STORE_OID_TEXT, STORE_OID_INT8, STORE_OID_TEXT, STORE_OID_TEXT, STORE_OID_INT8,
	    STORE_OID_TEXT, STORE_OID_TEXT, STORE_OID_TEXT, STORE_OID_INT8, STORE_OID_BOOL,
	    STORE_OID_TEXT, STORE_OID_TEXT, STORE_OID_TEXT};
	for (int k = 0; k < STORE_OUTCOME_COLUMNS; k++)
		store_bin_array_init(&col[k], types[k]);
	for (size_t i = 0; i < n; i++) {
		const struct outcome *o = &outcomes[i];
		store_bin_array_text(&col[O_ID], o->modification_id);
		store_bin_array_int8(&col[O_GEN], o->generation, false);
		store_bin_array_text(&col[O_STATE], o->state);
		store_bin_array_text(&col[O_REASON], o->reason);
		store_bin_array_int8(&col[O_HTTP], o->http_status, o->http_status <= 0);
		store_bin_array_text(&col[O_BODY], o->response_body);
		store_bin_array_text(&col[O_PAYMENT], o->payment_status);
		store_bin_array_text(&col[O_RRID], o->reconciliation_reference_id);
		store_bin_array_int8(&col[O_DELAY], o->retry_delay_ms, false);
		store_bin_array_bool(&col[O_COUNTED], o->counted);
		store_bin_array_text(&col[O_ALERT_KIND], o->alert_kind);
		store_bin_array_text(&col[O_ALERT_SEVERITY], o->alert_severity);
		store_bin_array_text(&col[O_SETTLED], o->settled_by);
	}
}

bool store_write_outcomes(struct store *st, const struct outcome *outcomes, size_t n,
                          store_written_fn done, void *arg)
{
	if (!pg_conn_is_up(st->pc))
		return false;
	struct store_bin_array col[STORE_OUTCOME_COLUMNS];
	store_outcome_columns(outcomes, n, col);
	const char *text[] = {st->instance};
	struct store_call *c = store_call_new(st, arg);
	c->fn.written = done;
	return batch_send(c, "smartpay_write_outcomes", store_write_outcomes_sql, text, 1, col,
	                  STORE_OUTCOME_COLUMNS, outcomes_done);
}

/* ---- alerts of the claim path ---- */

bool store_raise_alert(struct store *st, const char *kind, const char *severity,
                       const char *dedup_key, const char *message, store_done_fn done, void *arg)
{
	static const char sql[] =
	    "INSERT INTO smartpay.alerts (kind, severity, dedup_key, message) "
	    "VALUES ($1, $2, $3, $4) ON CONFLICT (kind, dedup_key) DO NOTHING";
	if (!pg_conn_is_up(st->pc))
		return false;
	const char *p[] = {kind, severity, dedup_key, message};
	struct store_call *c = store_call_new(st, arg);
	c->fn.done = done;
	/* the rows inserted (0 or 1) go to the caller, if any */
	return store_call_query(c, sql, 4, p, store_call_done);
}

/* ---- the queue of changed orders ---- */

/* Completion of store_read_changes: the rows go to the caller. */
static void changes_done(PGresult *res, const char *error, void *arg)
{
	struct store_call *c = arg;
	if (error) {
		c->fn.changes(NULL, 0, error, c->arg);
		store_call_free(c);
		return;
	}
	size_t n = (size_t)PQntuples(res);
	struct order_change *rows = xcalloc(n ? n : 1, sizeof(*rows));
	for (size_t i = 0; i < n; i++) {
		rows[i].change_id = store_field_int(res, (int)i, 0);
		rows[i].order_id = store_field_text(res, (int)i, 1);
	}
	c->fn.changes(rows, n, NULL, c->arg);
	store_call_free(c);
}

/* The oldest queued orders after a queued id, each named by its queued id (sql/022):
 * change_id * 1024 + its position in a chunk, 0 for a row of smartpay.order_changes.
 * The rows of both tables in id order (one merge of their primary keys), each
 * unnested (an incremental sort by position): only the rows needed are read, the one
 * holding $2 (maybe with nothing after it) and then at most one per order (a chunk
 * holds at least one: the statement that takes its last order deletes it). */
const char store_read_changes_sql[] =
    "SELECT k.change_id * 1024 + e.pos - 1, e.order_id FROM "
    "(SELECT change_id, order_ids FROM smartpay.order_change_chunks "
    "WHERE change_id >= $2::bigint / 1024 "
    "UNION ALL SELECT change_id, ARRAY[order_id] FROM smartpay.order_changes "
    "WHERE change_id > $2::bigint / 1024 ORDER BY change_id LIMIT $1 + 1) k "
    "CROSS JOIN LATERAL unnest(k.order_ids) WITH ORDINALITY AS e(order_id, pos) "
    "WHERE e.order_id IS NOT NULL AND k.change_id * 1024 + e.pos - 1 > $2::bigint "
    "ORDER BY k.change_id, e.pos LIMIT $1";

bool store_read_changes(struct store *st, int64_t after, int limit, store_changes_fn done,
                        void *arg)
{
	if (!pg_conn_is_up(st->pc))
		return false;
	char lim[STORE_INT_TEXT], from[STORE_INT_TEXT];
	const char *p[] = {store_int_text(limit, lim), store_int_text(after, from)};
	struct store_call *c = store_call_new(st, arg);
	c->fn.changes = done;
	return store_call_query(c, store_read_changes_sql, 2, p, changes_done);
}

bool store_queue_fed(const struct store *st)
{
	return st->queue_fed;
}
