/* Failover: a primary with a synchronous streaming standby, the daemon connected with a
 * multi-host conninfo and target_session_attrs=read-write. Orders ship, the primary is
 * killed with SIGKILL while captures are in flight, the standby is promoted, more orders
 * ship on it. The same daemon process carries on against the new primary; every order is
 * captured exactly once at the gateway; every modificationId the gateway ever received
 * is in the new primary's ledger (no committed intent was lost) and succeeded there. */
#include "autoconfig.h"

#include "pgtest.h"
#include "testutil.h"
#include "world.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BEFORE_ORDERS 240 /* shipped on the primary */
#define AFTER_ORDERS 60   /* shipped on the promoted standby */
#define WAIT_MS 180000

/* Adds `n` shipped orders of 12.50 EUR, each for a fresh authorization at the simulator. */
static void ship_orders(struct world *w, int n)
{
	for (int i = 0; i < n; i++)
		world_add_order(w, &(struct world_order){.amount = "12.50"}, NULL);
}

/* Appends `id` to a PostgreSQL array literal under construction ("{a,b"). */
static void array_add(char **array, const char *id)
{
	char *grown = NULL;
	ck_assert_int_ge(asprintf(&grown, "%s%s%s", *array, strlen(*array) > 1 ? "," : "", id), 0);
	free(*array);
	*array = grown;
}

/* The number of ids of the array literal (closed here) that `sql_where` does not match
 * in smartpay.modifications m. */
static long long ids_missing(PGconn *db, char **array, const char *sql_where)
{
	array_add(array, "");
	(*array)[strlen(*array) - 1] = '}';
	char *sql = NULL;
	ck_assert_int_ge(asprintf(&sql,
	                          "SELECT count(*) FROM unnest($1::uuid[]) AS x(id) WHERE NOT "
	                          "EXISTS (SELECT 1 FROM smartpay.modifications m WHERE "
	                          "m.modification_id = x.id AND %s)",
	                          sql_where),
	                 0);
	const char *p[] = {*array};
	PGresult *r = PQexecParams(db, sql, 1, NULL, p, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	long long n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	free(sql);
	return n;
}

START_TEST(daemon_survives_failover)
{
	static const char *const sim_args[] = {"--latency", "40", NULL};
	struct simproc_opts so = {.extra_args = sim_args};
	struct world w;
	world_up_with(&w, &(struct world_opts){.sim = &so, .dbname = "failover"}, NULL);
	char *conninfo = NULL;
	ck_assert_int_ge(asprintf(&conninfo,
	                          "host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres "
	                          "dbname=failover target_session_attrs=read-write "
	                          "connect_timeout=2",
	                          pgtest_port(), pgtest_standby_port()),
	                 0);
	world_daemon(&w, conninfo, "[daemon]\nmax_inflight = 4\nbatch_size = 16\n");

	ship_orders(&w, BEFORE_ORDERS);
	daemonproc_start(&w.d, false);
	pid_t pid = w.d.pid;
	/* mid-run: a quarter captured, the rest claimed, in flight or still to come */
	long long done = daemonproc_wait_count(&w.d, w.db,
	                                       "SELECT count(*) FROM smartpay.modifications "
	                                       "WHERE kind = 'capture' AND state = 'succeeded'",
	                                       BEFORE_ORDERS / 4, WAIT_MS);
	ck_assert_int_ge(done, BEFORE_ORDERS / 4);
	pgtest_primary_kill();
	PQfinish(w.db);
	ck_assert_msg(done < BEFORE_ORDERS, "all captured before the primary was killed");
	testutil_sleep_ms(1000); /* the daemon finds the primary gone and the standby read-only */
	pgtest_standby_promote();

	char *standby = pgtest_standby_conninfo_db("failover");
	w.db = pgtest_connect(standby);
	ship_orders(&w, AFTER_ORDERS);
	const int total = BEFORE_ORDERS + AFTER_ORDERS;
	ck_assert_int_eq(pgtest_int(w.db, "SELECT count(*) FROM public.orders"), total);
	long long succeeded = daemonproc_wait_count(&w.d, w.db,
	                                            "SELECT count(*) FROM smartpay.modifications "
	                                            "WHERE kind = 'capture' AND state = "
	                                            "'succeeded'",
	                                            total, WAIT_MS);
	ck_assert_int_eq(succeeded, total);

	/* the same process went on: it is still running, never restarted */
	ck_assert_int_eq(w.d.pid, pid);
	ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), 0);
	ck_assert(daemonproc_log_contains(&w.d, "event=db_disconnected"));
	char *log = testutil_read_file(w.d.log);
	ck_assert_ptr_nonnull(log);
	ck_assert_ptr_nonnull(strstr(log, "event=starting"));
	ck_assert_ptr_null(strstr(strstr(log, "event=starting") + 1, "event=starting"));
	free(log);

	/* one capture intent per order, none refused, every order's captured */
	ck_assert_int_eq(pgtest_int(w.db, "SELECT count(*) FROM smartpay.modifications"), total);
	ck_assert_int_eq(pgtest_int(w.db, "SELECT count(DISTINCT order_id) FROM "
	                                  "smartpay.modifications WHERE kind = 'capture' AND "
	                                  "state = 'succeeded'"),
	                 total);

	/* at the gateway: exactly one effect per order, each the ledger's succeeded capture
	 * of that transaction, and every id it was sent is in the new primary's ledger */
	struct json_object *ledger = simproc_ledger(w.sim);
	ck_assert_ptr_nonnull(ledger);
	ck_assert_int_eq(simproc_ledger_count(ledger, NULL, NULL), total);
	ck_assert_int_eq(simproc_ledger_count(ledger, NULL, "capture"), total);
	struct json_object *effects = NULL, *requests = NULL;
	ck_assert(json_object_object_get_ex(ledger, "effects", &effects));
	ck_assert(json_object_object_get_ex(ledger, "requests", &requests));
	char *effect_ids = strdup("{");
	for (size_t i = 0; i < json_object_array_length(effects); i++) {
		struct json_object *e = json_object_array_get_idx(effects, i), *v = NULL;
		ck_assert(json_object_object_get_ex(e, "transactionId", &v));
		const char *txn = json_object_get_string(v);
		ck_assert_int_eq(simproc_ledger_count(ledger, txn, NULL), 1);
		ck_assert(json_object_object_get_ex(e, "modificationId", &v));
		array_add(&effect_ids, json_object_get_string(v));
	}
	ck_assert_int_eq(
	    ids_missing(w.db, &effect_ids, "m.kind = 'capture' AND m.state = 'succeeded'"), 0);
	char *sent_ids = strdup("{");
	int sent = 0;
	json_object_object_foreach(requests, id, count)
	{
		(void)count;
		array_add(&sent_ids, id);
		sent++;
	}
	ck_assert_int_eq(sent, total);
	ck_assert_int_eq(ids_missing(w.db, &sent_ids, "true"), 0);
	free(effect_ids);
	free(sent_ids);
	json_object_put(ledger);

	ck_assert_int_eq(daemonproc_stop(&w.d), 0);
	world_down(&w);
	free(standby);
	free(conninfo);
}
END_TEST

int main(void)
{
	struct pgtest_options opts = {.replication = true};
	pgtest_start_with(&opts);
	pgtest_standby_start();
	Suite *s = suite_create("failover");
	testutil_tcase(s, "standby", 600, (const TTest *const[]){daemon_survives_failover, NULL});
	int status = testutil_run_suite(s, CK_NORMAL);
	if (status != 0) {
		pgtest_print_log();
		fprintf(stderr, "standby log: %s\n", pgtest_standby_log_path());
	}
	pgtest_stop();
	return status;
}
