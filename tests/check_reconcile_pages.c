/* The reconcile pass's targets read in pages (lib/store_reconcile.c) against a real
 * PostgreSQL: every transaction with open business exactly once, in order, with the
 * order's state, from the snapshot of the open authorizations or without it. */
#include "autoconfig.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pgtest.h"
#include "store_reconcile.h"
#include "testutil.h"
#include "xmalloc.h"

/* Seven days in ms, as the default lookback. */
#define LOOKBACK "604800000"

/* Builds the shop: 600 open authorizations, one cancelled, old orders, and ledger rows
 * (a capture, a pending row for an order id the relation cannot hold, refunds of old
 * orders). */
static PGconn *pages_shop(char **conninfo)
{
	*conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(*conninfo);
	pgtest_exec_file(conn, "sql/example-orders.sql");
	pgtest_migrate(conn);
	pgtest_exec(conn, "INSERT INTO public.orders (id, status, smartpay_transaction_id, amount) "
	                  "SELECT i, 'authorized', format('tx-%s', lpad(i::text, 4, '0')), 10.00 "
	                  "FROM generate_series(1, 600) AS i");
	pgtest_exec(conn, "INSERT INTO public.orders (id, status, smartpay_transaction_id, amount) "
	                  "VALUES (601, 'cancelled', 'tx-0601', 10.00)");
	pgtest_exec(conn, "INSERT INTO public.orders (id, status, smartpay_transaction_id, amount, "
	                  "authorized_at) SELECT i, CASE i WHEN 700 THEN 'cancelled' ELSE "
	                  "'delivered' END, format('tx-%s', i), 10.00, now() - interval '30 days' "
	                  "FROM generate_series(700, 705) AS i");
	pgtest_exec(
	    conn,
	    "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, "
	    "kind, amount_minor, currency, request_body, state) VALUES "
	    "(gen_random_uuid(), '10', 'tx-0010', 'capture', 1000, 'EUR', '{}', 'succeeded'), "
	    "(gen_random_uuid(), 'o-x', 'tx-old', 'capture', 1000, 'EUR', '{}', 'pending'), "
	    "(gen_random_uuid(), 'o-y', 'tx-oy', 'refund', 100, 'EUR', '{}', 'succeeded'), "
	    "(gen_random_uuid(), '700', 'tx-700', 'refund', 100, 'EUR', '{}', 'succeeded'), "
	    "(gen_random_uuid(), '701', 'tx-701', 'refund', 100, 'EUR', '{}', 'succeeded')");
	/* an old row that nothing keeps open */
	pgtest_exec(conn,
	            "UPDATE smartpay.modifications SET updated_at = now() - interval '20 days' "
	            "WHERE order_id = '701'");
	pgtest_exec(
	    conn, "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, "
	          "kind, amount_minor, currency, request_body, state) VALUES "
	          "(gen_random_uuid(), '702', 'tx-702', 'refund', 100, 'EUR', '{}', 'succeeded')");
	pgtest_exec(conn, "ANALYZE");
	return conn;
}

/* Reads every page of `sql` (limit `page`) and checks the targets. */
static void pages_check(PGconn *conn, const char *sql, int page)
{
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", page);
	char *after = xstrdup("");
	int total = 0, pages = 0;
	bool seen_10 = false, seen_old = false, seen_oy = false, seen_601 = false, seen_700 = false,
	     seen_702 = false;
	for (;;) {
		const char *p[] = {LOOKBACK, NULL, "[\"cancelled\"]", lim, after};
		PGresult *res = PQexecParams(conn, sql, 5, NULL, p, NULL, NULL, 0);
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(conn));
		int n = PQntuples(res);
		ck_assert_int_le(n, page);
		pages++;
		for (int i = 0; i < n; i++) {
			const char *tx = PQgetvalue(res, i, 0);
			const char *order = PQgetvalue(res, i, 1);
			bool open = strcmp(PQgetvalue(res, i, 2), "t") == 0;
			/* strictly after the cursor: each transaction once, in order */
			ck_assert_msg(strcmp(tx, after) > 0, "%s after %s", tx, after);
			free(after);
			after = xstrdup(tx);
			total++;
			if (strcmp(tx, "tx-0010") == 0) {
				seen_10 = true;
				ck_assert(!open); /* captured */
			} else if (strcmp(tx, "tx-old") == 0) {
				seen_old = true;
				ck_assert_str_eq(order, "o-x");
				ck_assert(!open); /* a capture under way */
			} else if (strcmp(tx, "tx-oy") == 0) {
				/* an id the relation's type cannot hold: no order, no error */
				seen_oy = true;
				ck_assert(open);
			} else if (strcmp(tx, "tx-0601") == 0) {
				seen_601 = true;
				ck_assert(!open); /* cancelled in the shop */
			} else if (strcmp(tx, "tx-700") == 0) {
				seen_700 = true;
				ck_assert(!open); /* cancelled in the shop, read by its id */
			} else if (strcmp(tx, "tx-702") == 0) {
				seen_702 = true;
				ck_assert(open); /* delivered, no capture or cancel of ours */
			} else {
				ck_assert_msg(strncmp(tx, "tx-0", 4) == 0 && strlen(tx) == 7, "%s",
				              tx);
				ck_assert(open);
			}
		}
		PQclear(res);
		if (n < page)
			break;
	}
	free(after);
	/* 600 authorizations and 601, tx-old, tx-oy, tx-700 and tx-702; not tx-701 (old)
	 * nor tx-703..705 (old, nothing open) */
	ck_assert_msg(seen_10 && seen_old && seen_oy && seen_601 && seen_700 && seen_702,
	              "%d %d %d %d %d %d", seen_10, seen_old, seen_oy, seen_601, seen_700,
	              seen_702);
	ck_assert_int_eq(total, 605);
	ck_assert_int_ge(pages, 605 / page);
}

START_TEST(test_pages_snapshot)
{
	char *conninfo;
	PGconn *conn = pages_shop(&conninfo);
	char *snap = store_rc_snapshot_sql("\"public\".\"orders\"", "timestamp with time zone",
	                                   INT64_C(604800000));
	pgtest_exec(conn, snap);
	free(snap);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM pg_temp." STORE_RC_SNAPSHOT), 600);
	char *sql =
	    store_rc_page_sql("\"public\".\"orders\"", "bigint", "timestamp with time zone", true);
	pages_check(conn, sql, 100);
	pages_check(conn, sql, 7);
	free(sql);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

START_TEST(test_pages_without_snapshot)
{
	char *conninfo;
	PGconn *conn = pages_shop(&conninfo);
	char *sql =
	    store_rc_page_sql("\"public\".\"orders\"", "bigint", "timestamp with time zone", false);
	pages_check(conn, sql, 100);
	free(sql);
	/* column types unknown (smartpayctl reconcile): the same targets, compared as text */
	sql = store_rc_targets_sql("\"public\".\"orders\"");
	pages_check(conn, sql, 100);
	free(sql);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

START_TEST(test_id_match)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	pgtest_exec(conn, "CREATE TABLE t (id bigint PRIMARY KEY); INSERT INTO t VALUES (42); "
	                  "CREATE TABLE u (id uuid PRIMARY KEY); INSERT INTO u VALUES "
	                  "('7b0c1f4e-8a51-4a5e-9d6b-0e1f2a3b4c5d'); CREATE TABLE v (v text)");
	/* a text that is not a value of the type matches nothing, without an error */
	const char *cases[][3] = {{"bigint", "t", "'42'"},
	                          {"bigint", "t", "'o-x'"},
	                          {"bigint", "t", "'99999999999999999999'"},
	                          {"uuid", "u", "'7b0c1f4e-8a51-4a5e-9d6b-0e1f2a3b4c5d'"},
	                          {"uuid", "u", "'nope'"}};
	const long long want[] = {1, 0, 0, 1, 0};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		/* the value is a column, as in the page statement (a constant would be cast
		 * when the statement is planned) */
		char *fill = xasprintf("TRUNCATE v; INSERT INTO v VALUES (%s)", cases[i][2]);
		pgtest_exec(conn, fill);
		free(fill);
		char *cond = store_rc_id_match(cases[i][0], "x.id", "v.v");
		char *sql = xasprintf("SELECT count(*) FROM %s x, v WHERE %s", cases[i][1], cond);
		ck_assert_int_eq(pgtest_int(conn, sql), want[i]);
		free(sql);
		free(cond);
	}
	PQfinish(conn);
	free(conninfo);
}
END_TEST

static Suite *pages_suite(void)
{
	Suite *s = suite_create("reconcile_pages");
	TCase *tc = tcase_create("pages");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pages_snapshot);
	tcase_add_test(tc, test_pages_without_snapshot);
	tcase_add_test(tc, test_id_match);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	pgtest_start();
	int status = testutil_run_suite(pages_suite(), CK_ENV);
	pgtest_stop();
	return status;
}
