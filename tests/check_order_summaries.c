/* smartpay.order_summaries (sql/009_order_summaries.sql): the per-order summary behind
 * smartpay.order_payments agrees with the ledger after every kind of write (concurrent
 * ones, the backfill and the real daemon's included), and the admin grid's documented
 * query shapes use their indexes. "Agrees" means: the view returns exactly the rows that
 * the view of sql/003_shop_api.sql, which computed every order from the ledger,
 * returned; that definition is kept here as the reference. */
#include "autoconfig.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "store_migrate.h"
#include "pgtest.h"
#include "testutil.h"
#include "world.h"
#include "xmalloc.h"

/* The view as sql/003_shop_api.sql defined it: every order computed from the ledger. */
static const char reference_view[] =
    "CREATE VIEW public.reference_payments AS "
    "SELECT o.order_id, coalesce(cap.transaction_id, last.transaction_id) AS transaction_id, "
    "coalesce(cap.currency, last.currency)::text AS currency, cap.state AS capture_state, "
    "coalesce(cap.captured_minor, 0) AS captured_minor, "
    "smartpay.minor_to_numeric(coalesce(cap.captured_minor, 0), "
    "coalesce(cap.currency, last.currency)) AS captured, t.refunded_minor, "
    "smartpay.minor_to_numeric(t.refunded_minor, coalesce(cap.currency, last.currency)) "
    "AS refunded, t.refund_pending_minor, "
    "smartpay.minor_to_numeric(t.refund_pending_minor, coalesce(cap.currency, "
    "last.currency)) AS refund_pending, t.refundable_minor, "
    "smartpay.minor_to_numeric(t.refundable_minor, coalesce(cap.currency, last.currency)) "
    "AS refundable, can.state AS cancel_state, "
    "coalesce(can.state = 'succeeded', false) AS cancelled, "
    "coalesce(cap.deadline, last.deadline) AS deadline, "
    "last.modification_id AS last_modification_id, last.kind AS last_kind, "
    "last.state AS last_state, last.updated_at AS last_at, al.open_alerts, "
    "rq.pending_requests "
    "FROM (SELECT m.order_id FROM smartpay.modifications m UNION "
    "SELECT r.order_id FROM smartpay.requests r) o "
    "LEFT JOIN LATERAL (SELECT m.transaction_id, m.currency, m.state, m.deadline, "
    "CASE WHEN m.state = 'succeeded' THEN m.amount_minor END AS captured_minor "
    "FROM smartpay.modifications m WHERE m.order_id = o.order_id AND m.kind = 'capture' "
    "ORDER BY m.state = 'refused', m.created_at DESC LIMIT 1) cap ON true "
    "LEFT JOIN LATERAL (SELECT m.modification_id, m.transaction_id, m.currency, m.kind, "
    "m.state, m.deadline, m.updated_at FROM smartpay.modifications m "
    "WHERE m.order_id = o.order_id ORDER BY m.created_at DESC, m.modification_id DESC "
    "LIMIT 1) last ON true "
    "LEFT JOIN LATERAL (SELECT m.state FROM smartpay.modifications m "
    "WHERE m.order_id = o.order_id AND m.kind IN ('cancel', 'cancel_or_refund') "
    "ORDER BY m.state = 'refused', m.created_at DESC LIMIT 1) can ON true "
    "CROSS JOIN LATERAL smartpay.refund_totals(o.order_id) rt "
    "CROSS JOIN LATERAL (SELECT CASE WHEN can.state = 'succeeded' AND cap.captured_minor "
    "IS NOT NULL THEN cap.captured_minor ELSE rt.refunded_minor END AS refunded_minor, "
    "rt.in_progress_minor + rt.requested_minor AS refund_pending_minor, "
    "CASE WHEN cap.captured_minor IS NULL OR can.state IS NOT NULL "
    "OR EXISTS (SELECT 1 FROM smartpay.requests r WHERE r.order_id = o.order_id "
    "AND r.kind = 'cancel_or_refund' AND r.modification_id IS NULL) THEN 0 "
    "ELSE greatest(cap.captured_minor - rt.refunded_minor - rt.in_progress_minor "
    "- rt.requested_minor, 0) END AS refundable_minor) t "
    "CROSS JOIN LATERAL (SELECT count(*) AS open_alerts FROM smartpay.alerts a "
    "WHERE a.order_id = o.order_id AND a.acknowledged_at IS NULL) al "
    "CROSS JOIN LATERAL (SELECT count(*) AS pending_requests FROM smartpay.requests r "
    "WHERE r.order_id = o.order_id AND r.modification_id IS NULL) rq";

/* The settings smartpayctl migrate writes for the example shop. */
static const struct migrate_settings shop_settings = {
    .orders_relation = "public.orders",
    .authorization_validity_ms = 120 * 3600 * INT64_C(1000),
};

/* A fresh shop database with the reference view; returns its conninfo (malloc'd) and a
 * connection to it. */
static char *summary_db(PGconn **conn)
{
	char *conninfo = pgtest_createdb_shop(NULL);

	*conn = pgtest_connect(conninfo);
	pgtest_exec(*conn, reference_view);
	return conninfo;
}

/* Fails the test (at the caller's line) unless order_payments and the reference have
 * the same rows, listing the rows that differ. */
#define assert_agrees(conn) assert_agrees_at(__FILE__, __LINE__, (conn))
static void assert_agrees_at(const char *file, int line, PGconn *conn)
{
	char *diff = pgtest_value_at(
	    file, line, conn,
	    "SELECT string_agg(d.side || ' ' || d.r::text, E'\\n') FROM ("
	    "SELECT 'summary' AS side, s AS r FROM (SELECT * FROM smartpay.order_payments "
	    "EXCEPT ALL SELECT * FROM public.reference_payments) s "
	    "UNION ALL SELECT 'ledger', l FROM (SELECT * FROM public.reference_payments "
	    "EXCEPT ALL SELECT * FROM smartpay.order_payments) l) d");
	if (diff != NULL)
		ck_assert_msg(false, "%s:%d: summary and ledger differ:\n%s", file, line, diff);
	long long rows =
	    pgtest_int_at(file, line, conn, "SELECT count(*) FROM smartpay.order_summaries");
	long long orders =
	    pgtest_int_at(file, line, conn, "SELECT count(*) FROM public.reference_payments");
	ck_assert_msg(rows == orders, "%s:%d: %lld summary rows for %lld orders", file, line, rows,
	              orders);
}

/* A modification as the daemon's claim inserts it (pending, leased), or a finished one;
 * a refund gets a transaction id of its own, so that several can be pending at once.
 * Returns its id (malloc'd). */
static char *add_mod(PGconn *conn, const char *order, const char *kind, const char *state,
                     long long minor)
{
	char *sql = xasprintf(
	    "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, kind, "
	    "amount_minor, currency, request_body, state, lease_owner, lease_generation, "
	    "lease_expires_at, deadline, completed_at) VALUES (gen_random_uuid(), '%s', 'tx-%s' || "
	    "CASE WHEN '%s' = 'refund' THEN '-' || gen_random_uuid() ELSE '' END, '%s', %lld, "
	    "'EUR', '{}', '%s', CASE WHEN '%s' = 'pending' THEN 'test' END, 1, "
	    "CASE WHEN '%s' = 'pending' THEN now() + interval '1 minute' END, "
	    "now() + interval '3 days', CASE WHEN '%s' <> 'pending' THEN now() END) "
	    "RETURNING modification_id::text",
	    order, order, kind, kind, minor, state, state, state, state);
	char *id = pgtest_value(conn, sql);
	free(sql);
	return id;
}

/* The daemon's outcome write for one modification: state, reason, lease released. */
static void set_outcome(PGconn *conn, const char *id, const char *state)
{
	char *sql = xasprintf(
	    "UPDATE smartpay.modifications m SET state = '%s', attempts = m.attempts + 1, "
	    "http_status = 200, response_body = '{}', lease_owner = NULL, "
	    "lease_expires_at = NULL, updated_at = now(), completed_at = CASE WHEN '%s' = "
	    "'pending' THEN NULL ELSE now() END WHERE m.modification_id = '%s'",
	    state, state, id);
	pgtest_exec(conn, sql);
	free(sql);
}

/* The daemon turning an open request into its modification, in one statement as
 * store_insert_intents does: the row inserted and the request linked to it. Returns the
 * modification id (malloc'd). */
static char *take_request(PGconn *conn, long long request, const char *kind)
{
	char *sql = xasprintf(
	    "WITH r AS (SELECT * FROM smartpay.requests WHERE request_id = %lld), "
	    "ins AS (INSERT INTO smartpay.modifications (modification_id, order_id, "
	    "transaction_id, kind, amount_minor, currency, request_body, state, lease_owner, "
	    "lease_generation, lease_expires_at, request_id) SELECT gen_random_uuid(), r.order_id, "
	    "'tx-' || r.order_id, '%s', r.amount_minor, coalesce(r.currency, 'EUR'), '{}', "
	    "'pending', 'test', 1, now() + interval '1 minute', r.request_id FROM r "
	    "RETURNING modification_id, request_id), "
	    "upd AS (UPDATE smartpay.requests q SET modification_id = ins.modification_id "
	    "FROM ins WHERE q.request_id = ins.request_id) "
	    "SELECT modification_id::text FROM ins",
	    request, kind);
	char *id = pgtest_value(conn, sql);
	free(sql);
	return id;
}

START_TEST(test_every_kind_of_change)
{
	PGconn *conn;
	char *conninfo = summary_db(&conn);

	/* a claim: three captures in one statement */
	pgtest_exec(conn, "INSERT INTO smartpay.modifications (modification_id, order_id, "
	                  "transaction_id, kind, amount_minor, currency, request_body, "
	                  "lease_owner, lease_generation, lease_expires_at, deadline) "
	                  "SELECT gen_random_uuid(), o, 'tx-' || o, 'capture', 10000, 'EUR', "
	                  "'{}', 'test', 1, now() + interval '1 minute', now() + interval "
	                  "'3 days' FROM unnest(ARRAY['a', 'b', 'c']) AS o");
	assert_agrees(conn);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.order_payments "
	                                  "WHERE capture_state = 'pending'"),
	                 3);
	/* their outcomes in one batched statement: succeeded, refused, needs_attention */
	pgtest_exec(conn, "UPDATE smartpay.modifications m SET state = u.state, "
	                  "reason = u.reason, attempts = m.attempts + 1, lease_owner = NULL, "
	                  "lease_expires_at = NULL, updated_at = now(), completed_at = now() "
	                  "FROM (VALUES ('a', 'succeeded', NULL), ('b', 'refused', 'declined'), "
	                  "('c', 'needs_attention', 'unknown')) AS u(o, state, reason) "
	                  "WHERE m.order_id = u.o");
	assert_agrees(conn);
	ck_assert_int_eq(pgtest_int(conn, "SELECT refundable_minor FROM smartpay.order_payments "
	                                  "WHERE order_id = 'a'"),
	                 10000);

	/* a retry's lease (store_claim_due): only the lease and updated_at change */
	char *d = add_mod(conn, "d", "capture", "pending", 5000);
	pgtest_exec(conn, "UPDATE smartpay.modifications m SET lease_owner = 'other', "
	                  "lease_generation = m.lease_generation + 1, "
	                  "lease_expires_at = now() + interval '1 minute', updated_at = now() "
	                  "WHERE m.order_id = 'd'");
	assert_agrees(conn);

	/* partial refunds: requested, taken, succeeded and needing attention */
	long long r1 = pgtest_int(conn, "SELECT smartpay.request_refund('a', 25.00)");
	long long r2 = pgtest_int(conn, "SELECT smartpay.request_refund('a', 10.00)");
	assert_agrees(conn);
	ck_assert_int_eq(pgtest_int(conn, "SELECT pending_requests FROM smartpay.order_payments "
	                                  "WHERE order_id = 'a'"),
	                 2);
	char *f1 = take_request(conn, r1, "refund");
	assert_agrees(conn);
	set_outcome(conn, f1, "succeeded");
	assert_agrees(conn);
	char *f2 = take_request(conn, r2, "refund");
	set_outcome(conn, f2, "needs_attention");
	assert_agrees(conn);
	ck_assert_int_eq(pgtest_int(conn, "SELECT refundable_minor FROM smartpay.order_payments "
	                                  "WHERE order_id = 'a'"),
	                 6500);

	/* the requeue of sql/004 (smartpayctl retry): needs_attention back to pending */
	char *sql = xasprintf("UPDATE smartpay.modifications m SET state = 'pending', "
	                      "next_attempt_at = now(), lease_owner = NULL, lease_expires_at = "
	                      "NULL, completed_at = NULL, reason = 'retry', updated_at = now() "
	                      "WHERE m.modification_id = '%s'",
	                      f2);
	pgtest_exec(conn, sql);
	free(sql);
	assert_agrees(conn);
	set_outcome(conn, f2, "refused");
	assert_agrees(conn);

	/* a cancel before capture: pending, then succeeded */
	char *e = add_mod(conn, "e", "cancel", "pending", 0);
	assert_agrees(conn);
	set_outcome(conn, e, "succeeded");
	assert_agrees(conn);
	ck_assert_int_eq(
	    pgtest_int(conn, "SELECT count(*) FROM smartpay.order_payments WHERE order_id = 'e' "
	                     "AND cancelled AND cancel_state = 'succeeded'"),
	    1);

	/* cancel_or_refund: requested (nothing refundable while open), taken, succeeded */
	long long r3 = pgtest_int(conn, "SELECT smartpay.request_cancel_or_refund('a')");
	assert_agrees(conn);
	ck_assert_int_eq(pgtest_int(conn, "SELECT refundable_minor FROM smartpay.order_payments "
	                                  "WHERE order_id = 'a'"),
	                 0);
	char *g = take_request(conn, r3, "cancel_or_refund");
	assert_agrees(conn);
	set_outcome(conn, g, "succeeded");
	assert_agrees(conn);
	ck_assert_int_eq(pgtest_int(conn, "SELECT refunded_minor FROM smartpay.order_payments "
	                                  "WHERE order_id = 'a'"),
	                 10000);

	/* the dismiss of sql/005 (smartpayctl dismiss), then a fresh capture for the order */
	pgtest_exec(conn, "UPDATE smartpay.modifications m SET dismissed_at = now(), "
	                  "dismissed_by = 'test', updated_at = now() WHERE m.order_id = 'b' "
	                  "AND m.state = 'refused'");
	assert_agrees(conn);
	char *b2 = add_mod(conn, "b", "capture", "pending", 10000);
	assert_agrees(conn);
	set_outcome(conn, b2, "succeeded");
	assert_agrees(conn);
	ck_assert_int_eq(pgtest_int(conn, "SELECT captured_minor FROM smartpay.order_payments "
	                                  "WHERE order_id = 'b'"),
	                 10000);

	/* the expiry sweep's needs_attention with its alert, and the alert acknowledged */
	pgtest_exec(conn, "WITH att AS (UPDATE smartpay.modifications m SET state = "
	                  "'needs_attention', reason = 'deadline passed', lease_owner = NULL, "
	                  "lease_expires_at = NULL, updated_at = now(), completed_at = now() "
	                  "WHERE m.order_id = 'd' RETURNING m.modification_id, m.order_id) "
	                  "INSERT INTO smartpay.alerts (kind, severity, order_id, "
	                  "modification_id, dedup_key, message) SELECT 'needs_attention', "
	                  "'critical', order_id, modification_id, order_id, 'x' FROM att");
	assert_agrees(conn);
	ck_assert_int_eq(pgtest_int(conn, "SELECT open_alerts FROM smartpay.order_payments "
	                                  "WHERE order_id = 'd'"),
	                 1);
	pgtest_exec(conn, "UPDATE smartpay.alerts SET acknowledged_at = now()");
	assert_agrees(conn);

	/* a request for an order with no modification yet, then one refused by the gateway */
	pgtest_exec(conn, "INSERT INTO orders (id, status, smartpay_transaction_id, amount, "
	                  "currency, authorized_at) VALUES (7, 'authorized', 'tx-7', 10.00, "
	                  "'EUR', now())");
	long long r4 = pgtest_int(conn, "SELECT smartpay.request_cancel_or_refund('7')");
	assert_agrees(conn);
	char *h = take_request(conn, r4, "cancel_or_refund");
	set_outcome(conn, h, "refused");
	assert_agrees(conn);

	/* rows deleted by hand: one modification, then everything of an order */
	sql = xasprintf("DELETE FROM smartpay.modifications WHERE modification_id = '%s'", e);
	pgtest_exec(conn, sql);
	free(sql);
	assert_agrees(conn);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.order_summaries "
	                                  "WHERE order_id = 'e'"),
	                 0);
	pgtest_exec(conn, "DELETE FROM smartpay.alerts WHERE order_id = 'c'; "
	                  "DELETE FROM smartpay.modifications WHERE order_id = 'c'");
	assert_agrees(conn);
	pgtest_exec(conn, "TRUNCATE smartpay.alerts, smartpay.requests, smartpay.modifications");
	assert_agrees(conn);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.order_summaries"), 0);

	free(d);
	free(f1);
	free(f2);
	free(e);
	free(g);
	free(b2);
	free(h);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* Fails unless every summary row's count of modifications, where known, is the
 * ledger's. */
#define assert_counts(conn) assert_counts_at(__FILE__, __LINE__, (conn))
static void assert_counts_at(const char *file, int line, PGconn *conn)
{
	long long wrong = pgtest_int_at(
	    file, line, conn,
	    "SELECT count(*) FROM smartpay.order_summaries s WHERE s.modifications IS DISTINCT "
	    "FROM (SELECT count(*) FROM smartpay.modifications m WHERE m.order_id = s.order_id) "
	    "AND s.modifications IS NOT NULL");
	ck_assert_msg(wrong == 0, "%s:%d: %lld summary rows count their modifications wrong", file,
	              line, wrong);
}

START_TEST(test_written_from_the_statement_rows)
{
	PGconn *conn;
	char *conninfo = summary_db(&conn);

	/* one statement: a new order's only capture (from the row), and two rows of another
	 * new order (from the ledger) */
	pgtest_exec(conn, "INSERT INTO smartpay.modifications (modification_id, order_id, "
	                  "transaction_id, kind, amount_minor, currency, request_body, "
	                  "lease_owner, lease_generation, lease_expires_at, deadline) "
	                  "SELECT gen_random_uuid(), o, 'tx-' || o || k, k, 700, 'EUR', '{}', "
	                  "'test', 1, now() + interval '1 minute', now() + interval '3 days' "
	                  "FROM (VALUES ('f1', 'capture'), ('f2', 'capture'), ('f2', 'refund')) "
	                  "AS v(o, k)");
	assert_agrees(conn);
	assert_counts(conn);
	ck_assert_int_eq(pgtest_int(conn, "SELECT modifications FROM smartpay.order_summaries "
	                                  "WHERE order_id = 'f1'"),
	                 1);

	/* the lease, then each outcome of the only modification, one statement each */
	pgtest_exec(conn, "UPDATE smartpay.modifications m SET lease_owner = 'other', "
	                  "lease_generation = m.lease_generation + 1, updated_at = now() "
	                  "WHERE m.order_id = 'f1'");
	assert_agrees(conn);
	const char *const states[] = {"pending", "needs_attention", "succeeded", "refused"};
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		char *sql =
		    xasprintf("UPDATE smartpay.modifications SET state = '%s', "
		              "updated_at = now() + interval '%zu seconds', "
		              "deadline = now() + interval '%zu days' WHERE order_id = 'f1'",
		              states[i], i, i + 1);
		pgtest_exec(conn, sql);
		free(sql);
		assert_agrees(conn);
	}

	/* an order whose only modification is a refund, a cancel or cancelOrRefund, or a
	 * locally refused capture without an amount or a transaction */
	free(add_mod(conn, "f3", "refund", "pending", 300));
	free(add_mod(conn, "f4", "cancel_or_refund", "pending", 0));
	pgtest_exec(conn, "INSERT INTO smartpay.modifications (modification_id, order_id, kind, "
	                  "state, reason) VALUES (gen_random_uuid(), 'f5', 'capture', "
	                  "'refused', 'bad amount')");
	assert_agrees(conn);
	pgtest_exec(conn, "UPDATE smartpay.modifications SET state = 'succeeded', updated_at = "
	                  "now() WHERE order_id IN ('f3', 'f4')");
	assert_agrees(conn);
	pgtest_exec(conn, "UPDATE smartpay.modifications SET state = 'needs_attention', "
	                  "updated_at = now() WHERE order_id = 'f3'");
	assert_agrees(conn);

	/* an order with an open request: its first modification, then its outcome */
	pgtest_exec(conn, "INSERT INTO smartpay.requests (order_id, kind) "
	                  "VALUES ('f6', 'cancel_or_refund')");
	free(add_mod(conn, "f6", "capture", "pending", 900));
	assert_agrees(conn);
	pgtest_exec(conn, "UPDATE smartpay.modifications SET state = 'succeeded', updated_at = "
	                  "now() WHERE order_id = 'f6'");
	assert_agrees(conn);

	/* a second modification of f1, then an update of the first */
	free(add_mod(conn, "f1", "capture", "pending", 800));
	assert_agrees(conn);
	pgtest_exec(conn, "UPDATE smartpay.modifications SET updated_at = now() + interval "
	                  "'1 hour' WHERE order_id = 'f1' AND state = 'refused'");
	assert_agrees(conn);

	/* an order's only modification moved to another order, to a new one, and its id
	 * changed */
	pgtest_exec(conn, "UPDATE smartpay.modifications SET order_id = 'f3' WHERE order_id = "
	                  "'f4'");
	assert_agrees(conn);
	pgtest_exec(conn, "UPDATE smartpay.modifications SET order_id = 'f7' WHERE order_id = "
	                  "'f5'");
	assert_agrees(conn);
	pgtest_exec(conn, "UPDATE smartpay.modifications SET modification_id = "
	                  "gen_random_uuid(), updated_at = now() WHERE order_id = 'f7'");
	assert_agrees(conn);
	assert_counts(conn);

	/* summary rows written before their count was kept (NULL) are recomputed from the
	 * ledger on their next write, which counts them */
	pgtest_exec(conn, "INSERT INTO smartpay.requests (order_id, kind) "
	                  "VALUES ('f8', 'cancel_or_refund')");
	pgtest_exec(conn, "UPDATE smartpay.order_summaries SET modifications = NULL");
	pgtest_exec(conn, "UPDATE smartpay.modifications SET updated_at = now() + interval "
	                  "'2 hours' WHERE order_id = 'f7'");
	assert_agrees(conn);
	ck_assert_int_eq(pgtest_int(conn, "SELECT modifications FROM smartpay.order_summaries "
	                                  "WHERE order_id = 'f7'"),
	                 1);
	pgtest_exec(conn, "UPDATE smartpay.modifications SET state = 'succeeded', updated_at = "
	                  "now() WHERE request_body IS NOT NULL AND state <> 'refused'");
	assert_agrees(conn);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.order_summaries WHERE "
	                                  "modifications IS NULL AND order_id = 'f8'"),
	                 1);
	assert_counts(conn);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* One statement of several orders where some are written from the statement's rows and
 * some are left to the recomputation (sql/018 counts what the fast path wrote): a new
 * order beside one that had a row and one with two rows in the statement, then updates
 * where an order's only row moves into an order whose only row is updated too. */
START_TEST(test_statements_mixing_fast_and_recomputed_orders)
{
	PGconn *conn;
	char *conninfo = summary_db(&conn);

	free(add_mod(conn, "g3", "capture", "succeeded", 500));
	assert_agrees(conn);
	pgtest_exec(conn, "INSERT INTO smartpay.modifications (modification_id, order_id, "
	                  "transaction_id, kind, amount_minor, currency, request_body, "
	                  "lease_owner, lease_generation, lease_expires_at, deadline) "
	                  "SELECT gen_random_uuid(), o, 'tx-' || o || k || i, k, 100, 'EUR', '{}', "
	                  "'test', 1, now() + interval '1 minute', now() + interval '3 days' "
	                  "FROM (VALUES (1, 'g1', 'capture'), (2, 'g2', 'cancel'), "
	                  "(3, 'g3', 'refund'), (4, 'g4', 'capture'), (5, 'g4', 'refund'), "
	                  "(6, 'g5', 'capture')) AS v(i, o, k)");
	assert_agrees(conn);
	assert_counts(conn);

	/* g1's only row moves into g2, whose only row is updated in the same statement; g5
	 * is written from its row, g4's two rows and g3's refund are recomputed */
	pgtest_exec(conn, "UPDATE smartpay.modifications SET order_id = CASE order_id WHEN 'g1' "
	                  "THEN 'g2' ELSE order_id END, state = 'succeeded', "
	                  "updated_at = now() + interval '1 minute' "
	                  "WHERE order_id IN ('g1', 'g2', 'g3', 'g4', 'g5')");
	assert_agrees(conn);
	assert_counts(conn);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.order_summaries "
	                                  "WHERE order_id = 'g1'"),
	                 0);

	/* only orders written from their rows, then a statement that changes no row */
	pgtest_exec(conn, "UPDATE smartpay.modifications SET state = 'needs_attention', "
	                  "updated_at = now() + interval '2 minutes' WHERE order_id = 'g5'");
	assert_agrees(conn);
	pgtest_exec(conn, "UPDATE smartpay.modifications SET updated_at = now() WHERE false");
	pgtest_exec(conn, "INSERT INTO smartpay.modifications (modification_id, order_id, kind, "
	                  "state, reason) SELECT gen_random_uuid(), 'g6', 'capture', 'refused', "
	                  "'bad amount' WHERE false");
	assert_agrees(conn);
	assert_counts(conn);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* Milliseconds on the monotonic clock. */
static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits (up to 20 s) until some backend of the database waits for a lock held by
 * another transaction. */
static void wait_for_lock_waiter(PGconn *observer)
{
	long long deadline = now_ms() + 20000;

	while (pgtest_int(observer, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
	                            "current_database() AND wait_event_type = 'Lock'") == 0) {
		ck_assert_msg(now_ms() < deadline, "no backend came to wait for a lock");
		struct timespec pause = {0, 20 * 1000 * 1000};
		nanosleep(&pause, NULL);
	}
}

/* The result of the query sent on `conn`, the others drained. */
static PGresult *await_result(PGconn *conn)
{
	PGresult *res = PQgetResult(conn);
	PGresult *extra;

	while ((extra = PQgetResult(conn)) != NULL)
		PQclear(extra);
	return res;
}

START_TEST(test_concurrent_writers_of_one_order)
{
	PGconn *a;
	char *conninfo = summary_db(&a);
	PGconn *b = pgtest_connect(conninfo);
	PGconn *observer = pgtest_connect(conninfo);

	/* two refunds of one order finishing in two transactions at once: the second waits
	 * for the first's summary row, and must then count both */
	char *cap = add_mod(a, "x", "capture", "succeeded", 10000);
	char *r1 = add_mod(a, "x", "refund", "pending", 1000);
	char *r2 = add_mod(a, "x", "refund", "pending", 2000);
	pgtest_exec(a, "BEGIN");
	set_outcome(a, r1, "succeeded");
	char *sql = xasprintf("UPDATE smartpay.modifications SET state = 'succeeded', "
	                      "updated_at = now(), lease_owner = NULL WHERE modification_id = "
	                      "'%s'",
	                      r2);
	ck_assert(PQsendQuery(b, sql));
	free(sql);
	wait_for_lock_waiter(observer);
	pgtest_exec(a, "COMMIT");
	PGresult *res = await_result(b);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	assert_agrees(a);
	ck_assert_int_eq(pgtest_int(a, "SELECT refunded_minor FROM smartpay.order_payments "
	                               "WHERE order_id = 'x'"),
	                 3000);

	/* the first two writes of a new order, at once: the second waits for the first's
	 * insert of the summary row and then updates it */
	pgtest_exec(a, "BEGIN");
	char *y1 = add_mod(a, "y", "capture", "pending", 4000);
	ck_assert(PQsendQuery(b, "INSERT INTO smartpay.requests (order_id, kind) "
	                         "VALUES ('y', 'cancel_or_refund')"));
	wait_for_lock_waiter(observer);
	pgtest_exec(a, "COMMIT");
	res = await_result(b);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	assert_agrees(a);
	ck_assert_int_eq(pgtest_int(a, "SELECT pending_requests FROM smartpay.order_payments "
	                               "WHERE order_id = 'y' AND capture_state = 'pending'"),
	                 1);

	/* one writer rolls back: the other's summary holds only its own change */
	pgtest_exec(a, "BEGIN");
	set_outcome(a, y1, "succeeded");
	ck_assert(PQsendQuery(b, "UPDATE smartpay.requests SET reason = 'changed' "
	                         "WHERE order_id = 'y'"));
	wait_for_lock_waiter(observer);
	pgtest_exec(a, "ROLLBACK");
	res = await_result(b);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	assert_agrees(a);

	/* REPEATABLE READ cannot recompute with a newer snapshot: a serialization error */
	pgtest_exec(b, "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1");
	pgtest_exec(a, "BEGIN");
	set_outcome(a, y1, "succeeded");
	ck_assert(PQsendQuery(b, "INSERT INTO smartpay.requests (order_id, kind) "
	                         "VALUES ('y', 'cancel_or_refund')"));
	wait_for_lock_waiter(observer);
	pgtest_exec(a, "COMMIT");
	res = await_result(b);
	ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "40001");
	PQclear(res);
	pgtest_exec(b, "ROLLBACK");
	assert_agrees(a);

	free(cap);
	free(r1);
	free(r2);
	free(y1);
	PQfinish(observer);
	PQfinish(b);
	PQfinish(a);
	free(conninfo);
}
END_TEST

/* One of the writers racing over a few orders: its own connection and random choices. */
struct writer {
	const char *conninfo;
	pthread_t thread;
	pthread_barrier_t *start;
	unsigned seed;
	int committed;
	int retried;
	char error[256];
};

/* The statements the writers pick from; @ stands for an order id. */
static const char *const writer_statements[] = {
    "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, kind, "
    "amount_minor, currency, request_body, state) VALUES (gen_random_uuid(), '@', "
    "gen_random_uuid()::text, 'refund', 100, 'EUR', '{}', 'pending')",
    "UPDATE smartpay.modifications SET state = (ARRAY['succeeded', 'refused', "
    "'needs_attention'])[1 + (random() * 2)::int], updated_at = now() WHERE order_id = "
    "'@' AND kind = 'refund' AND state = 'pending'",
    "UPDATE smartpay.modifications SET state = 'pending', updated_at = now() WHERE "
    "order_id = '@' AND kind = 'refund' AND state = 'needs_attention'",
    "INSERT INTO smartpay.requests (order_id, kind, amount_minor, currency) VALUES "
    "('@', 'refund', 50, 'EUR')",
    "UPDATE smartpay.requests SET modification_id = (SELECT modification_id FROM "
    "smartpay.modifications WHERE order_id = '@' ORDER BY random() LIMIT 1) WHERE "
    "order_id = '@' AND modification_id IS NULL",
    "UPDATE smartpay.modifications SET updated_at = now() WHERE order_id IN ('@', 'w0', "
    "'w3')",
    "UPDATE smartpay.modifications SET state = CASE WHEN state = 'succeeded' THEN 'pending' "
    "ELSE 'succeeded' END, updated_at = now() WHERE order_id = '@' AND kind = 'capture'",
};

/* `tmpl` with every @ replaced by `order` (malloc'd). */
static char *with_order(const char *tmpl, const char *order)
{
	size_t n = 0;
	for (const char *p = tmpl; *p; p++)
		n += *p == '@' ? strlen(order) : 1;
	char *out = xmalloc(n + 1), *o = out;
	for (const char *p = tmpl; *p; p++) {
		if (*p == '@') {
			memcpy(o, order, strlen(order));
			o += strlen(order);
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

/* Thread body: transactions of one to three random statements, each committed; a
 * deadlock or serialization failure is rolled back and counted, anything else stops
 * the writer with the message. */
static void *writer_run(void *arg)
{
	enum { TRANSACTIONS = 60 };
	struct writer *w = arg;
	PGconn *conn = PQconnectdb(w->conninfo);

	pthread_barrier_wait(w->start);
	if (PQstatus(conn) != CONNECTION_OK) {
		snprintf(w->error, sizeof(w->error), "%s", PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	size_t kinds = sizeof(writer_statements) / sizeof(writer_statements[0]);
	for (int t = 0; t < TRANSACTIONS && w->error[0] == '\0'; t++) {
		PQclear(PQexec(conn, "BEGIN"));
		int n = 1 + rand_r(&w->seed) % 3;
		bool failed = false;
		for (int i = 0; i < n && !failed; i++) {
			char order[8];
			snprintf(order, sizeof(order), "w%d", rand_r(&w->seed) % 5);
			char *sql =
			    with_order(writer_statements[(size_t)rand_r(&w->seed) % kinds], order);
			PGresult *res = PQexec(conn, sql);
			free(sql);
			if (PQresultStatus(res) != PGRES_COMMAND_OK) {
				const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
				if (state &&
				    (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0))
					w->retried++;
				else
					snprintf(w->error, sizeof(w->error), "%s",
					         PQresultErrorMessage(res));
				failed = true;
			}
			PQclear(res);
		}
		PGresult *end = PQexec(conn, failed ? "ROLLBACK" : "COMMIT");
		if (!failed && PQresultStatus(end) == PGRES_COMMAND_OK)
			w->committed++;
		PQclear(end);
	}
	PQfinish(conn);
	return NULL;
}

START_TEST(test_many_concurrent_writers)
{
	enum { WRITERS = 4 };
	PGconn *conn;
	char *conninfo = summary_db(&conn);
	struct writer writers[WRITERS];
	pthread_barrier_t start;

	for (int i = 0; i < 5; i++) {
		char order[8];
		snprintf(order, sizeof(order), "w%d", i);
		free(add_mod(conn, order, "capture", "succeeded", 100000));
	}
	ck_assert_int_eq(pthread_barrier_init(&start, NULL, WRITERS), 0);
	for (int i = 0; i < WRITERS; i++) {
		writers[i] = (struct writer){
		    .conninfo = conninfo, .start = &start, .seed = (unsigned)(1234 + i)};
		ck_assert_int_eq(pthread_create(&writers[i].thread, NULL, writer_run, &writers[i]),
		                 0);
	}
	int committed = 0;
	for (int i = 0; i < WRITERS; i++) {
		ck_assert_int_eq(pthread_join(writers[i].thread, NULL), 0);
		ck_assert_msg(writers[i].error[0] == '\0', "writer %d: %s", i, writers[i].error);
		committed += writers[i].committed;
	}
	pthread_barrier_destroy(&start);
	ck_assert_int_gt(committed, WRITERS * 30);
	assert_agrees(conn);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* The plan of `query` as text, one line per node (malloc'd). */
static char *plan_of(PGconn *conn, const char *query)
{
	char *sql = xasprintf("EXPLAIN (COSTS OFF) %s", query);
	PGresult *res = pgtest_query(conn, sql);
	free(sql);
	size_t len = 1;
	for (int i = 0; i < PQntuples(res); i++)
		len += strlen(PQgetvalue(res, i, 0)) + 1;
	char *plan = xmalloc(len);
	plan[0] = '\0';
	for (int i = 0; i < PQntuples(res); i++) {
		strcat(plan, PQgetvalue(res, i, 0));
		strcat(plan, "\n");
	}
	PQclear(res);
	return plan;
}

/* Fails unless the plan of `query` reads the summary through `index` (either way: the
 * grid's indexes are ascending and read backward, sql/023) and neither scans the whole
 * summary nor sorts. */
static void assert_plan_uses(PGconn *conn, const char *query, const char *index)
{
	char *plan = plan_of(conn, query);
	char *scan = xasprintf(" using %s on order_summaries", index);
	ck_assert_msg(strstr(plan, scan) != NULL && strstr(plan, "Index Scan") != NULL,
	              "%s\nexpected an Index Scan%s in:\n%s", query, scan, plan);
	ck_assert_msg(strstr(plan, "Seq Scan on order_summaries") == NULL, "%s\nscans:\n%s", query,
	              plan);
	ck_assert_msg(strstr(plan, "Sort") == NULL, "%s\nsorts:\n%s", query, plan);
	free(scan);
	free(plan);
}

/* The order ids `query` returns, comma-separated (malloc'd). */
static char *ids_of(PGconn *conn, const char *query)
{
	char *sql = xasprintf("SELECT string_agg(q.order_id, ',') FROM (%s) q", query);
	char *ids = pgtest_value(conn, sql);
	free(sql);
	return ids;
}

/* Fails unless `query` on the view returns the same orders in the same order as on the
 * reference. */
static void assert_same_page(PGconn *conn, const char *where)
{
	char *view = xasprintf("SELECT order_id FROM smartpay.order_payments %s ORDER BY last_at "
	                       "DESC, order_id DESC LIMIT 50",
	                       where);
	char *ref = xasprintf("SELECT order_id FROM public.reference_payments %s ORDER BY "
	                      "last_at DESC, order_id DESC LIMIT 50",
	                      where);
	char *got = ids_of(conn, view);
	char *want = ids_of(conn, ref);
	ck_assert_ptr_nonnull(want);
	ck_assert_str_eq(got, want);
	free(got);
	free(want);
	free(view);
	free(ref);
}

START_TEST(test_query_shapes_use_their_indexes)
{
	PGconn *conn;
	char *conninfo = summary_db(&conn);

	/* 20,000 orders of which 1% need attention and a third are fully refunded */
	pgtest_exec(conn,
	            "INSERT INTO smartpay.modifications (modification_id, order_id, "
	            "transaction_id, kind, amount_minor, currency, request_body, state, "
	            "created_at, updated_at) SELECT gen_random_uuid(), 'o' || i, 'tx-' || i, "
	            "'capture', 1000, 'EUR', '{}', CASE WHEN i % 100 = 0 THEN 'needs_attention' "
	            "WHEN i % 10 = 1 THEN 'pending' ELSE 'succeeded' END, "
	            "now() - i * interval '1 minute', now() - i * interval '1 minute' "
	            "FROM generate_series(1, 20000) AS i");
	pgtest_exec(conn,
	            "INSERT INTO smartpay.modifications (modification_id, order_id, "
	            "transaction_id, kind, amount_minor, currency, request_body, state, "
	            "created_at, updated_at) SELECT gen_random_uuid(), 'o' || i, 'tx-' || i, "
	            "'refund', 1000, 'EUR', '{}', 'succeeded', "
	            "now() - i * interval '1 minute' + interval '30 seconds', "
	            "now() - i * interval '1 minute' + interval '30 seconds' "
	            "FROM generate_series(3, 20000, 3) AS i WHERE i % 100 <> 0 AND i % 10 <> 1");
	pgtest_exec(conn, "ANALYZE smartpay.order_summaries");
	assert_agrees(conn);

	assert_plan_uses(conn,
	                 "SELECT * FROM smartpay.order_payments ORDER BY last_at DESC, "
	                 "order_id DESC LIMIT 50",
	                 "order_summaries_newest");
	assert_plan_uses(conn,
	                 "SELECT * FROM smartpay.order_payments ORDER BY last_at DESC LIMIT 50",
	                 "order_summaries_newest");
	assert_plan_uses(conn,
	                 "SELECT * FROM smartpay.order_payments WHERE (last_at, order_id) < "
	                 "(now() - interval '1 day', 'o9') ORDER BY last_at DESC, order_id DESC "
	                 "LIMIT 50",
	                 "order_summaries_newest");
	assert_plan_uses(conn,
	                 "SELECT * FROM smartpay.order_payments WHERE last_state = "
	                 "'needs_attention' ORDER BY last_at DESC, order_id DESC LIMIT 50",
	                 "order_summaries_by_state");
	/* pending orders are not in the by-state index (sql/018): the newest ones, found
	 * walking order_summaries_newest as the succeeded ones are */
	assert_plan_uses(conn,
	                 "SELECT * FROM smartpay.order_payments WHERE last_state = 'pending' "
	                 "ORDER BY last_at DESC, order_id DESC LIMIT 50",
	                 "order_summaries_newest");
	assert_plan_uses(conn,
	                 "SELECT * FROM smartpay.order_payments WHERE refundable_minor > 0 "
	                 "ORDER BY last_at DESC, order_id DESC LIMIT 50",
	                 "order_summaries_refundable");
	assert_plan_uses(conn, "SELECT * FROM smartpay.order_payments WHERE order_id = 'o4711'",
	                 "order_summaries_pkey");
	/* smartpay.order_payment(id) is SECURITY DEFINER (sql/006), so the planner does not
	 * inline it and EXPLAIN shows only a Function Scan; its body reads the view by
	 * order_id, the shape just checked to use order_summaries_pkey */

	/* and the pages are the ones the ledger gives */
	assert_same_page(conn, "");
	assert_same_page(conn, "WHERE last_state = 'needs_attention'");
	assert_same_page(conn, "WHERE last_state = 'pending'");
	assert_same_page(conn, "WHERE refundable_minor > 0");
	assert_same_page(conn, "WHERE refundable > 0");
	assert_same_page(conn, "WHERE (last_at, order_id) < (now() - interval '1 day', 'o9')");

	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* The leaf density (percent) of the summary's index `index`, from pgstatindex. */
static long long leaf_density(PGconn *conn, const char *index)
{
	char *sql =
	    xasprintf("SELECT round(avg_leaf_density) FROM pgstatindex('smartpay.%s')", index);
	long long density = pgtest_int(conn, sql);
	free(sql);
	return density;
}

START_TEST(test_grid_indexes_stay_dense_under_new_writes)
{
	PGconn *conn;
	char *conninfo = summary_db(&conn);

	/* the daemon's writes: every intent and every outcome is newer than all before it,
	 * 40 intent statements of 500 captures, then their outcomes in 40 statements */
	pgtest_exec(conn, "CREATE EXTENSION pgstattuple");
	for (int b = 0; b < 40; b++) {
		char *sql = xasprintf(
		    "INSERT INTO smartpay.modifications (modification_id, order_id, "
		    "transaction_id, "
		    "kind, amount_minor, currency, request_body, state, created_at, updated_at) "
		    "SELECT gen_random_uuid(), 'o' || i, 'tx-' || i, 'capture', 1000, 'EUR', '{}', "
		    "'pending', now() + i * interval '1 ms', now() + i * interval '1 ms' "
		    "FROM generate_series(%d, %d) AS i",
		    b * 500, b * 500 + 499);
		pgtest_exec(conn, sql);
		free(sql);
	}
	for (int b = 0; b < 40; b++) {
		char *sql = xasprintf("UPDATE smartpay.modifications SET state = 'succeeded', "
		                      "updated_at = now() + interval '1 hour' + "
		                      "substr(order_id, 2)::int * interval '1 ms' "
		                      "WHERE order_id = ANY (ARRAY(SELECT 'o' || i FROM "
		                      "generate_series(%d, %d) AS i))",
		                      b * 500, b * 500 + 499);
		pgtest_exec(conn, sql);
		free(sql);
	}
	assert_agrees(conn);
	/* each new entry lands at the right edge of an ascending index, where a full page
	 * is split leaving its left half full; at the left edge of a descending one every
	 * split leaves a half-empty page behind (about 50% there) */
	long long newest = leaf_density(conn, "order_summaries_newest");
	long long refundable = leaf_density(conn, "order_summaries_refundable");
	ck_assert_msg(newest >= 80, "order_summaries_newest leaf density %lld%%", newest);
	ck_assert_msg(refundable >= 80, "order_summaries_refundable leaf density %lld%%",
	              refundable);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

START_TEST(test_backfill_from_an_existing_ledger)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	size_t before = 0;
	bool mask[64];
	int applied = 0;
	char *err = NULL;

	/* the schema as it was before the summary, with a ledger and requests in it */
	while (before < sp_builtin_migration_count && sp_builtin_migrations[before].version < 9)
		before++;
	pgtest_exec_file(conn, "sql/example-orders.sql");
	ck_assert_msg(migrate_apply_configured(conn, sp_builtin_migrations, before, &shop_settings,
	                                       mask, &applied, NULL, &err) == 0,
	              "%s", err);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM pg_class WHERE relname = "
	                                  "'order_summaries'"),
	                 0);
	free(add_mod(conn, "p", "capture", "succeeded", 3000));
	free(add_mod(conn, "p", "refund", "succeeded", 1000));
	free(add_mod(conn, "p", "refund", "needs_attention", 500));
	free(add_mod(conn, "q", "capture", "refused", 2000));
	free(add_mod(conn, "q", "capture", "pending", 2000));
	free(add_mod(conn, "s", "cancel", "succeeded", 0));
	pgtest_exec(conn, "INSERT INTO smartpay.requests (order_id, kind, amount_minor, currency) "
	                  "VALUES ('p', 'refund', 700, 'EUR'); "
	                  "INSERT INTO smartpay.requests (order_id, kind) "
	                  "VALUES ('t', 'cancel_or_refund')");

	ck_assert_msg(migrate_apply_configured(conn, sp_builtin_migrations,
	                                       sp_builtin_migration_count, &shop_settings, mask,
	                                       &applied, NULL, &err) == 0,
	              "%s", err);
	ck_assert_int_eq(applied, (int)(sp_builtin_migration_count - before));
	pgtest_exec(conn, reference_view);
	assert_agrees(conn);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.order_summaries"), 4);
	ck_assert_int_eq(pgtest_int(conn, "SELECT refund_pending_minor FROM "
	                                  "smartpay.order_payments WHERE order_id = 'p'"),
	                 1200);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

START_TEST(test_upgrade_keeps_the_summaries)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	size_t before = 0;
	bool mask[64];
	int applied = 0;
	char *err = NULL;

	/* summaries kept by the triggers of sql/009 before sql/012 counted modifications */
	while (before < sp_builtin_migration_count && sp_builtin_migrations[before].version < 12)
		before++;
	pgtest_exec_file(conn, "sql/example-orders.sql");
	ck_assert_msg(migrate_apply_configured(conn, sp_builtin_migrations, before, &shop_settings,
	                                       mask, &applied, NULL, &err) == 0,
	              "%s", err);
	char *u1 = add_mod(conn, "u1", "capture", "pending", 3000);
	char *u2 = add_mod(conn, "u2", "capture", "pending", 2000);
	free(add_mod(conn, "u2", "refund", "pending", 500));

	ck_assert_msg(migrate_apply_configured(conn, sp_builtin_migrations,
	                                       sp_builtin_migration_count, &shop_settings, mask,
	                                       &applied, NULL, &err) == 0,
	              "%s", err);
	pgtest_exec(conn, reference_view);
	assert_agrees(conn);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.order_summaries WHERE "
	                                  "modifications IS NULL"),
	                 2);
	/* the next writes of those orders recompute them from the ledger */
	set_outcome(conn, u1, "succeeded");
	set_outcome(conn, u2, "succeeded");
	assert_agrees(conn);
	assert_counts(conn);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.order_summaries WHERE "
	                                  "modifications IS NULL"),
	                 0);
	set_outcome(conn, u1, "refused");
	assert_agrees(conn);

	free(u1);
	free(u2);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

START_TEST(test_shop_role_keeps_the_summary)
{
	PGconn *conn;
	char *conninfo = summary_db(&conn);

	free(add_mod(conn, "42", "capture", "succeeded", 5000));
	/* the grants README.md gives a shop role: nothing on the summary itself */
	pgtest_exec(
	    conn,
	    "CREATE ROLE shop_summary_app; GRANT USAGE ON SCHEMA smartpay TO shop_summary_app; "
	    "GRANT EXECUTE ON FUNCTION smartpay.request_refund(text, numeric, text), "
	    "smartpay.request_cancel_or_refund(text, text), smartpay.order_payment(text) "
	    "TO shop_summary_app; "
	    "GRANT SELECT ON smartpay.order_payments TO shop_summary_app");
	pgtest_exec(conn, "SET ROLE shop_summary_app");
	pgtest_exec_fails(conn, "SELECT * FROM smartpay.order_summaries", "42501");
	pgtest_exec_fails(conn, "SELECT smartpay.order_summaries_rebuild()", "42501");
	pgtest_exec_fails(conn, "SELECT smartpay.order_summaries_refresh('{42}', false)", "42501");
	pgtest_int(conn, "SELECT smartpay.request_refund('42', 10.00)");
	ck_assert_int_eq(pgtest_int(conn, "SELECT refundable_minor FROM smartpay.order_payments "
	                                  "WHERE order_id = '42'"),
	                 4000);
	pgtest_exec(conn, "RESET ROLE");
	assert_agrees(conn);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* An order of `amount` EUR authorized at the simulator (or, with `txn` given, naming that
 * transaction) in `status`; returns its id. */
static long sim_order(struct world *w, const char *amount, const char *txn, const char *status)
{
	struct world_order o = {.amount = amount, .txn = txn, .status = status};
	return world_add_order(w, &o, NULL);
}

START_TEST(test_real_daemon_writes)
{
	struct world w;
	world_up_with(&w, &(struct world_opts){.wait_ms = 30000}, NULL);
	pgtest_exec(w.db, reference_view);
	long a = sim_order(&w, "100.00", NULL, "shipped");
	long b = sim_order(&w, "40.00", NULL, "shipped");
	sim_order(&w, "20.00", NULL, "cancelled");
	sim_order(&w, "10.00", "8f3c2a51-0000-4000-8000-000000000000", "shipped");
	daemonproc_start(&w.d, false);
	/* captures succeeded, a cancel, a capture the gateway refused */
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state <> 'pending'", 4);
	assert_agrees(w.db);

	/* partial refunds one at a time, and a cancelOrRefund after the capture */
	char *sql = xasprintf("SELECT smartpay.request_refund('%ld', 30.00), "
	                      "smartpay.request_refund('%ld', 20.00), "
	                      "smartpay.request_cancel_or_refund('%ld')",
	                      a, a, b);
	pgtest_exec(w.db, sql);
	free(sql);
	assert_agrees(w.db);
	world_await(&w,
	            "SELECT count(*) FROM smartpay.modifications WHERE kind IN ('refund', "
	            "'cancel_or_refund') AND state = 'succeeded'",
	            3);
	ck_assert_int_eq(daemonproc_stop(&w.d), 0);
	assert_agrees(w.db);
	sql = xasprintf("SELECT count(*) FROM smartpay.order_payments WHERE order_id = '%ld' "
	                "AND refundable_minor = 5000 AND refunded_minor = 5000",
	                a);
	ck_assert_int_eq(pgtest_int(w.db, sql), 1);
	free(sql);
	sql = xasprintf("SELECT count(*) FROM smartpay.order_payments WHERE order_id = '%ld' "
	                "AND cancelled AND refunded_minor = 4000",
	                b);
	ck_assert_int_eq(pgtest_int(w.db, sql), 1);
	free(sql);
	ck_assert_int_eq(pgtest_int(w.db, "SELECT count(*) FROM smartpay.order_payments WHERE "
	                                  "last_state = 'refused'"),
	                 1);

	world_down(&w);
}
END_TEST

static Suite *order_summaries_suite(void)
{
	Suite *s = suite_create("order_summaries");
	TCase *tc = tcase_create("sql");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_every_kind_of_change);
	tcase_add_test(tc, test_written_from_the_statement_rows);
	tcase_add_test(tc, test_statements_mixing_fast_and_recomputed_orders);
	tcase_add_test(tc, test_concurrent_writers_of_one_order);
	tcase_add_test(tc, test_many_concurrent_writers);
	tcase_add_test(tc, test_query_shapes_use_their_indexes);
	tcase_add_test(tc, test_grid_indexes_stay_dense_under_new_writes);
	tcase_add_test(tc, test_backfill_from_an_existing_ledger);
	tcase_add_test(tc, test_upgrade_keeps_the_summaries);
	tcase_add_test(tc, test_shop_role_keeps_the_summary);
	tcase_add_test(tc, test_real_daemon_writes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	pgtest_start();
	int status = testutil_run_suite(order_summaries_suite(), CK_ENV);
	pgtest_stop();
	return status;
}
