/* The claim of due modifications (lib/store.c, store_claim_due_sql) against a migrated
 * ledger: which pending rows it takes, in which order, and that it reads them through
 * the index of the time a row becomes available (sql/019) rather than every pending
 * row. */
#include "autoconfig.h"

#include "pgtest.h"
#include "store_internal.h"
#include "testutil.h"
#include "xmalloc.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#define DUE "00000000-0000-4000-8000-000000000001"
#define EXPIRED "00000000-0000-4000-8000-000000000002"
#define LEASED "00000000-0000-4000-8000-000000000003"
#define LATER "00000000-0000-4000-8000-000000000004"
#define MINE "00000000-0000-4000-8000-000000000005"
#define DONE "00000000-0000-4000-8000-000000000006"

/* Inserts a capture of order `order`: its state, deadline, lease and next attempt as SQL. */
static void add_row(PGconn *conn, const char *id, const char *order, const char *state,
                    const char *deadline, const char *owner, const char *expires, const char *next)
{
	char *sql = xasprintf(
	    "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, "
	    "kind, amount_minor, currency, request_body, state, deadline, lease_owner, "
	    "lease_expires_at, next_attempt_at) VALUES ('%s', '%s', 'tx-%s', 'capture', 1000, "
	    "'EUR', '{}', '%s', %s, %s, %s, %s)",
	    id, order, order, state, deadline, owner, expires, next);
	pgtest_exec(conn, sql);
	free(sql);
}

/* qsort comparison of two strings. */
static int compare_text(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs the claim as instance "me" and returns the claimed ids, sorted and
 * comma-separated ("" for none; malloc'd). */
static char *claim(PGconn *conn, int limit, bool own)
{
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", limit);
	const char *p[] = {"me", "30 seconds", lim, own ? "t" : "f"};
	PGresult *res = PQexecParams(conn, store_claim_due_sql, 4, NULL, p, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	int n = PQntuples(res);
	char **ids = xcalloc((size_t)n + 1, sizeof(char *));
	for (int i = 0; i < n; i++)
		ids[i] = PQgetvalue(res, i, 0);
	qsort(ids, (size_t)n, sizeof(char *), compare_text);
	char *out = xstrdup("");
	for (int i = 0; i < n; i++) {
		char *next = xasprintf("%s%s%s", out, i ? "," : "", ids[i]);
		free(out);
		out = next;
	}
	free(ids);
	PQclear(res);
	return out;
}

/* Fails unless claim() gives `want`. */
static void expect_claim(PGconn *conn, int limit, bool own, const char *want)
{
	char *got = claim(conn, limit, own);
	ck_assert_msg(strcmp(got, want) == 0, "claim(%d, %s): got \"%s\", want \"%s\"", limit,
	              own ? "own" : "not own", got, want);
	free(got);
}

START_TEST(test_claims_what_is_due)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	pgtest_migrate(conn);

	const char *past = "now() - interval '1 minute'";
	const char *future = "now() + interval '1 hour'";
	add_row(conn, DUE, "o1", "pending", "now() + interval '2 days'", "NULL", "NULL", past);
	add_row(conn, EXPIRED, "o2", "pending", "now() + interval '1 day'", "'other'", past, past);
	add_row(conn, LEASED, "o3", "pending", "now() + interval '1 hour'", "'other'", future,
	        past);
	add_row(conn, LATER, "o4", "pending", "now() + interval '1 hour'", "NULL", "NULL", future);
	add_row(conn, MINE, "o5", "pending", "now() + interval '1 hour'", "'me'", future, past);
	add_row(conn, DONE, "o6", "succeeded", "now() + interval '1 hour'", "NULL", "NULL", past);

	/* earliest deadline first: the expired lease (1 day) before the unleased row (2 days) */
	expect_claim(conn, 1, false, EXPIRED);
	ck_assert_int_eq(pgtest_int(conn,
	                            "SELECT lease_generation FROM smartpay.modifications "
	                            "WHERE modification_id = '" EXPIRED "' AND lease_owner = 'me' "
	                            "AND lease_expires_at > now()"),
	                 1);
	/* now leased by this instance: only the unleased due row is left; a live lease of
	 * another instance, an attempt still to come, a finished row are not taken */
	expect_claim(conn, 10, false, DUE);
	expect_claim(conn, 10, false, "");
	/* own leases too (after a restart): this instance's live leases, nothing else */
	expect_claim(conn, 10, true, DUE "," EXPIRED "," MINE);
	/* an attempt whose time has come */
	pgtest_exec(conn, "UPDATE smartpay.modifications SET next_attempt_at = now() "
	                  "WHERE modification_id = '" LATER "'");
	expect_claim(conn, 10, false, LATER);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

START_TEST(test_reads_only_the_available_rows)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	pgtest_migrate(conn);

	/* a burst: 5,000 pending rows leased by the instances sending them, 10 due */
	pgtest_exec(conn, "INSERT INTO smartpay.modifications (modification_id, order_id, "
	                  "transaction_id, kind, amount_minor, currency, request_body, state, "
	                  "lease_owner, lease_expires_at, next_attempt_at) SELECT "
	                  "gen_random_uuid(), 'o' || i, 'tx-' || i, 'capture', 1000, 'EUR', '{}', "
	                  "'pending', CASE WHEN i <= 10 THEN NULL ELSE 'other' END, CASE WHEN "
	                  "i <= 10 THEN NULL ELSE now() + interval '1 minute' END, "
	                  "now() - interval '1 second' FROM generate_series(1, 5000) AS i");
	pgtest_exec(conn, "ANALYZE smartpay.modifications");

	char *explain = xasprintf("EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF, SUMMARY OFF) %s",
	                          store_claim_due_sql);
	const char *p[] = {"me", "30 seconds", "100", "f"};
	PGresult *res = PQexecParams(conn, explain, 4, NULL, p, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	char *plan = xstrdup("");
	for (int i = 0; i < PQntuples(res); i++) {
		char *next = xasprintf("%s%s\n", plan, PQgetvalue(res, i, 0));
		free(plan);
		plan = next;
	}
	PQclear(res);
	free(explain);
	/* the index is searched by the time (an Index Cond on it), not walked whole with
	 * the lease tested on every row */
	const char *scan = strstr(plan, "modifications_available");
	ck_assert_msg(scan != NULL, "no modifications_available in:\n%s", plan);
	const char *line_end = strchr(scan, '\n');
	ck_assert_msg(line_end != NULL && strstr(line_end, "Index Cond") != NULL &&
	                  strstr(line_end, "Index Cond") < strchr(line_end + 1, '\n'),
	              "modifications_available without an index condition:\n%s", plan);
	ck_assert_msg(strstr(plan, "Seq Scan on modifications") == NULL, "scans the ledger:\n%s",
	              plan);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.modifications WHERE "
	                                  "lease_owner = 'me'"),
	                 10);
	free(plan);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

static Suite *due_claim_suite(void)
{
	Suite *s = suite_create("due_claim");
	TCase *tc = tcase_create("due_claim");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_claims_what_is_due);
	tcase_add_test(tc, test_reads_only_the_available_rows);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	pgtest_start();
	int status = testutil_run_suite(due_claim_suite(), CK_NORMAL);
	pgtest_stop();
	return status;
}
