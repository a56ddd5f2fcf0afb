/* The database gauges kept from what changed: the open alert counts that triggers keep
 * in smartpay.alert_counts (sql/014) against a count of the alerts themselves, the safe
 * cast of order ids, the real smartpayd's expiring-authorization gauges while orders
 * are added, shipped and captured after its first read, and its expiry sweeps after the
 * first one (each later read or sweep looks only at what changed, not at the whole
 * window). */
#include "autoconfig.h"

#include "pgtest.h"
#include "testutil.h"
#include "world.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 30000

/* Rows of smartpay.alert_counts that disagree with a count of the open alerts. */
static const char counts_disagree_sql[] =
    "SELECT count(*) FROM (SELECT kind, count(*) AS n FROM smartpay.alerts "
    "WHERE acknowledged_at IS NULL GROUP BY kind) a FULL JOIN "
    "(SELECT kind, open AS n FROM smartpay.alert_counts WHERE open <> 0) c USING (kind) "
    "WHERE a.n IS DISTINCT FROM c.n";

START_TEST(alert_counts_follow_every_write)
{
	struct world w;
	world_up_with(&w, &(struct world_opts){.no_sim = true}, NULL);
	/* several rows of several kinds in one statement */
	pgtest_exec(w.db, "INSERT INTO smartpay.alerts (kind, severity, dedup_key, message) "
	                  "SELECT CASE WHEN i % 3 = 0 THEN 'k_a' ELSE 'k_b' END, 'warning', "
	                  "'d' || i, 'm' FROM generate_series(1, 10) AS i");
	ck_assert_int_eq(pgtest_int(w.db, "SELECT open FROM smartpay.alert_counts WHERE kind = "
	                                  "'k_a'"),
	                 3);
	ck_assert_int_eq(pgtest_int(w.db, "SELECT open FROM smartpay.alert_counts WHERE kind = "
	                                  "'k_b'"),
	                 7);
	/* acknowledged, acknowledged again (no change), reopened */
	pgtest_exec(w.db, "UPDATE smartpay.alerts SET acknowledged_at = now() WHERE dedup_key IN "
	                  "('d1', 'd2', 'd3')");
	ck_assert_int_eq(pgtest_int(w.db, counts_disagree_sql), 0);
	ck_assert_int_eq(pgtest_int(w.db, "SELECT open FROM smartpay.alert_counts WHERE kind = "
	                                  "'k_b'"),
	                 5);
	pgtest_exec(w.db, "UPDATE smartpay.alerts SET acknowledged_at = now() WHERE dedup_key IN "
	                  "('d1', 'd2', 'd3')");
	ck_assert_int_eq(pgtest_int(w.db, counts_disagree_sql), 0);
	pgtest_exec(w.db,
	            "UPDATE smartpay.alerts SET acknowledged_at = NULL WHERE dedup_key = 'd3'");
	ck_assert_int_eq(pgtest_int(w.db, counts_disagree_sql), 0);
	ck_assert_int_eq(pgtest_int(w.db, "SELECT open FROM smartpay.alert_counts WHERE kind = "
	                                  "'k_a'"),
	                 3);
	/* an update that changes nothing the counts depend on */
	pgtest_exec(w.db, "UPDATE smartpay.alerts SET message = 'n'");
	ck_assert_int_eq(pgtest_int(w.db, counts_disagree_sql), 0);
	/* deleted rows, open and acknowledged */
	pgtest_exec(w.db, "DELETE FROM smartpay.alerts WHERE dedup_key IN ('d1', 'd4', 'd6')");
	ck_assert_int_eq(pgtest_int(w.db, counts_disagree_sql), 0);
	ck_assert_int_eq(pgtest_int(w.db, "SELECT open FROM smartpay.alert_counts WHERE kind = "
	                                  "'k_b'"),
	                 4);
	/* an insert that conflicts writes nothing and counts nothing */
	pgtest_exec(w.db, "INSERT INTO smartpay.alerts (kind, severity, dedup_key, message) "
	                  "VALUES ('k_b', 'warning', 'd5', 'm') ON CONFLICT DO NOTHING");
	ck_assert_int_eq(pgtest_int(w.db, counts_disagree_sql), 0);
	pgtest_exec(w.db, "TRUNCATE smartpay.alerts CASCADE");
	ck_assert_int_eq(
	    pgtest_int(w.db, "SELECT coalesce(sum(open), 0) FROM smartpay.alert_counts"), 0);
	world_down(&w);
}
END_TEST

START_TEST(castable_ids_keep_only_values_of_the_type)
{
	struct world w;
	world_up_with(&w, &(struct world_opts){.no_sim = true}, NULL);
	ck_assert_int_eq(
	    pgtest_int(w.db, "SELECT (smartpay.castable_ids('{12,x,\"\",7,99999999999999999999}', "
	                     "'bigint') = '{12,7}')::int"),
	    1);
	ck_assert_int_eq(
	    pgtest_int(w.db, "SELECT cardinality(smartpay.castable_ids('{a,b}', 'text'))"), 2);
	ck_assert_int_eq(
	    pgtest_int(w.db, "SELECT cardinality(smartpay.castable_ids(NULL, 'uuid'))"), 0);
	world_down(&w);
}
END_TEST

/* The value of one series of the daemon's /metrics, or -1 when it is absent. */
static double metric(const struct world *w, const char *series)
{
	char url[128];
	snprintf(url, sizeof(url), "%s/metrics", w->metrics_base);
	char *body = NULL;
	double v = -1;
	if (world_http("GET", url, 5000, &body) == 200 && body) {
		size_t len = strlen(series);
		for (const char *p = body; (p = strstr(p, series)) != NULL; p += len) {
			if ((p == body || p[-1] == '\n') && p[len] == ' ') {
				v = strtod(p + len + 1, NULL);
				break;
			}
		}
	}
	free(body);
	return v;
}

/* Waits until the series has the value; fails the test with the last one seen. */
static void await_metric(const struct world *w, const char *series, double want)
{
	double v = -1;
	for (int waited = 0; waited < WAIT_MS; waited += 100) {
		v = metric(w, series);
		if (v == want)
			return;
		testutil_sleep_ms(100);
	}
	ck_abort_msg("%s is %g, not %g", series, v, want);
}

/* Inserts an authorized order of the shop with the given deadline (SQL) and returns its id. */
static long authorized(struct world *w, const char *expires_sql)
{
	return world_add_order(
	    w, &(struct world_order){.status = "authorized", .expires_at = expires_sql}, NULL);
}

static const char within_4h[] = "smartpayd_authorizations_expiring{within=\"4h\"}";
static const char within_24h[] = "smartpayd_authorizations_expiring{within=\"24h\"}";

START_TEST(expiring_gauges_follow_changes_after_the_first_read)
{
	struct world w;
	world_up_with(
	    &w, &(struct world_opts){.metrics = true, .wait_ms = WAIT_MS},
	    "[alerts]\nexpiry_thresholds = 24h, 4h\n[metrics]\ngauges_interval = 200ms\n");
	long first = authorized(&w, "now() + interval '2 hours'");
	daemonproc_start(&w.d, false);
	await_metric(&w, within_4h, 1);
	await_metric(&w, within_24h, 1);

	/* added while the daemon runs: a deadline inside the window (the notified order is
	 * read again), one far ahead (never counted), one through the validity */
	long second = authorized(&w, "now() + interval '10 hours'");
	authorized(&w, "now() + interval '3 days'");
	pgtest_exec(w.db, "INSERT INTO public.orders (smartpay_transaction_id, amount, status, "
	                  "authorized_at) VALUES ('t-validity', 10.00, 'authorized', "
	                  "now() - interval '119 hours')");
	await_metric(&w, within_24h, 3);
	ck_assert_double_eq(metric(&w, within_4h), 2);

	/* shipped and captured: no longer open */
	char sql[160];
	snprintf(sql, sizeof(sql), "UPDATE public.orders SET status = 'shipped' WHERE id = %ld",
	         first);
	pgtest_exec(w.db, sql);
	world_await(&w,
	            "SELECT count(*) FROM smartpay.modifications WHERE kind = 'capture' "
	            "AND state = 'succeeded'",
	            1);
	await_metric(&w, within_4h, 1);
	await_metric(&w, within_24h, 2);

	/* the shop moves a deadline past the window with its status: read again, gone */
	snprintf(sql, sizeof(sql),
	         "UPDATE public.orders SET authorization_expires_at = now() + interval '2 days', "
	         "status = 'on_hold' WHERE id = %ld",
	         second);
	pgtest_exec(w.db, sql);
	await_metric(&w, within_24h, 1);
	ck_assert_double_eq(metric(&w, within_4h), 1);

	/* an alert raised and acknowledged shows in the counts */
	pgtest_exec(w.db, "INSERT INTO smartpay.alerts (kind, severity, dedup_key, message) "
	                  "VALUES ('test_kind', 'warning', 'k1', 'a test alert')");
	await_metric(&w, "smartpayd_alerts_open{kind=\"test_kind\"}", 1);
	pgtest_exec(w.db, "UPDATE smartpay.alerts SET acknowledged_at = now() WHERE kind = "
	                  "'test_kind'");
	await_metric(&w, "smartpayd_alerts_open{kind=\"test_kind\"}", -1);
	world_down(&w);
}
END_TEST

START_TEST(sweeps_after_the_first_read_crossings_and_notified_orders)
{
	struct world w;
	/* the crossing is 45 s after the insert: wait past it */
	world_up_with(&w, &(struct world_opts){.wait_ms = 3 * WAIT_MS},
	              "[alerts]\nexpiry_thresholds = 24h, 4h\n");
	/* crosses 24h 45 s after its insert, after the first sweep: found by a later sweep, which
	 * reads only the deadlines that crossed since the one before */
	long crossing = authorized(&w, "now() + interval '24 hours 45 seconds'");
	daemonproc_start(&w.d, false);
	world_await_log(&w, "event=expiry_swept", 1);
	ck_assert_int_eq(pgtest_int(w.db, "SELECT count(*) FROM smartpay.alerts"), 0);
	/* inserted while the daemon runs, its deadline long inside 4h: read as notified */
	long notified = authorized(&w, "now() + interval '2 hours'");
	char sql[200];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.alerts WHERE kind = 'authorization_expiring' "
	         "AND dedup_key = '%ld:4h'",
	         notified);
	world_await(&w, sql, 1);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.alerts WHERE kind = 'authorization_expiring' "
	         "AND dedup_key = '%ld:24h'",
	         crossing);
	world_await(&w, sql, 1);
	ck_assert_int_eq(pgtest_int(w.db, "SELECT count(*) FROM smartpay.alerts"), 2);
	world_down(&w);
}
END_TEST

static Suite *gauges_suite(void)
{
	Suite *s = suite_create("gauges");
	TCase *db = tcase_create("database");
	tcase_set_timeout(db, 60);
	tcase_add_test(db, alert_counts_follow_every_write);
	tcase_add_test(db, castable_ids_keep_only_values_of_the_type);
	suite_add_tcase(s, db);
	TCase *daemon = tcase_create("daemon");
	tcase_set_timeout(daemon, 180);
	tcase_add_test(daemon, expiring_gauges_follow_changes_after_the_first_read);
	tcase_add_test(daemon, sweeps_after_the_first_read_crossings_and_notified_orders);
	suite_add_tcase(s, daemon);
	return s;
}

int main(void)
{
	pgtest_start();
	return testutil_run_suite(gauges_suite(), CK_ENV);
}
