/* The daemon's query of the shop's open requests (lib/store.c, store_requests_query)
 * against a migrated ledger: which requests it returns, and that when none can go it
 * says whether one is open behind a modification in flight (store_requests_found), the
 * only case in which a finished modification can free one. */
#include "autoconfig.h"

#include "pgtest.h"
#include "store.h"
#include "testutil.h"
#include "xmalloc.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

/* Runs the daemon's requests query with `limit`; returns how many requests came and
 * sets *blocked. */
static size_t find(PGconn *conn, int limit, bool *blocked)
{
	char *sql = store_requests_query("public.orders", false);
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", limit);
	const char *p[] = {lim};
	PGresult *res = PQexecParams(conn, sql, 1, NULL, p, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	size_t n = 0;
	struct shop_request *rows = store_requests_found(res, &n, blocked);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(rows[i].order_id != NULL, "request %zu without its order", i);
	shop_requests_free(rows, n);
	PQclear(res);
	free(sql);
	return n;
}

/* Fails unless the query gives `want` requests and says `want_blocked`. */
static void expect_found(PGconn *conn, int limit, size_t want, bool want_blocked)
{
	bool blocked = !want_blocked;
	size_t n = find(conn, limit, &blocked);
	ck_assert_msg(n == want && blocked == want_blocked,
	              "limit %d: got %zu requests, blocked %d; want %zu, blocked %d", limit, n,
	              blocked, want, want_blocked);
}

/* Inserts a capture of order `order` (transaction tx-ORDER) in `state`. */
static void add_capture(PGconn *conn, const char *id, const char *order, const char *state)
{
	char *sql = xasprintf(
	    "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, "
	    "kind, amount_minor, currency, request_body, state) VALUES ('%s', '%s', 'tx-%s', "
	    "'capture', 1000, 'EUR', '{}', '%s')",
	    id, order, order, state);
	pgtest_exec(conn, sql);
	free(sql);
}

/* A refund request of order `order`. */
static void add_refund(PGconn *conn, const char *order)
{
	char *sql = xasprintf("INSERT INTO smartpay.requests (order_id, kind, amount_minor, "
	                      "currency) VALUES ('%s', 'refund', 500, 'EUR')",
	                      order);
	pgtest_exec(conn, sql);
	free(sql);
}

START_TEST(test_says_when_a_request_waits_behind_one_in_flight)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	pgtest_migrate(conn);
	pgtest_exec(conn, "CREATE TABLE public.orders (id bigint PRIMARY KEY, "
	                  "smartpay_transaction_id text, currency text, amount numeric)");
	pgtest_exec(conn, "INSERT INTO public.orders VALUES (1, 'tx-1', 'EUR', 10.00), "
	                  "(2, 'tx-2', 'EUR', 10.00)");

	/* nothing open: nothing to free later either */
	expect_found(conn, 10, 0, false);
	/* a refund of an order whose capture is in flight: none can go, one is open */
	add_capture(conn, "00000000-0000-4000-8000-000000000001", "1", "pending");
	add_refund(conn, "1");
	expect_found(conn, 10, 0, true);
	/* the capture finished: the refund can go */
	pgtest_exec(conn, "UPDATE smartpay.modifications SET state = 'succeeded' "
	                  "WHERE order_id = '1'");
	expect_found(conn, 10, 1, false);
	/* one that can go and one behind a capture in flight: the one comes (the other is
	 * open, which a full page or the next finished write finds) */
	add_capture(conn, "00000000-0000-4000-8000-000000000002", "2", "pending");
	add_refund(conn, "2");
	expect_found(conn, 10, 1, false);
	/* a page of one, two that can go */
	pgtest_exec(conn, "UPDATE smartpay.modifications SET state = 'succeeded' "
	                  "WHERE order_id = '2'");
	expect_found(conn, 1, 1, false);
	expect_found(conn, 10, 2, false);
	/* linked requests are not open: all of them taken */
	pgtest_exec(conn, "UPDATE smartpay.requests SET modification_id = "
	                  "'00000000-0000-4000-8000-000000000001'");
	expect_found(conn, 10, 0, false);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

static Suite *requests_claim_suite(void)
{
	Suite *s = suite_create("requests_claim");
	TCase *tc = tcase_create("requests_claim");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_says_when_a_request_waits_behind_one_in_flight);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	pgtest_start();
	int status = testutil_run_suite(requests_claim_suite(), CK_NORMAL);
	pgtest_stop();
	return status;
}
