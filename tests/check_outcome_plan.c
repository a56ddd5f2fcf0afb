/* The outcome write (lib/store.c, store_write_outcomes_sql) against a migrated ledger
 * whose statistics lag behind a burst: analyzed nearly empty (no row had an owner), then
 * a few hundred leased captures and a batch of their outcomes, sent as the daemon sends
 * them (store_outcome_columns, binary arrays). Every row is written once, and the plan
 * does not loop over the batch for each ledger row (a nested loop whose join filter
 * compares the batch's ids, owner, generation and state: a write quadratic in the batch
 * size). The outcome connection's generic plan (store_session_outcomes_sql), built on a
 * nearly empty ledger, reads only the batch's rows of a large one; the order summary's
 * trigger plans its statements once per session (sql/021). */
#include "autoconfig.h"

#include "pgtest.h"
#include "records.h"
#include "store_internal.h"
#include "store_session.h"
#include "testutil.h"
#include "xmalloc.h"

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

/* The captures of the burst, and of the batch written. */
#define BURST 400
#define BATCH 300

/* Runs the outcome write for `outcomes` with owner "me": the prepared statement
 * `prepared` when not NULL, else the text under EXPLAIN when `explain` is not NULL (the
 * statement still runs: EXPLAIN ANALYZE); returns the result. */
static PGresult *run_outcomes(PGconn *conn, const struct outcome *outcomes, size_t n,
                              const char *explain, const char *prepared)
{
	struct store_bin_array col[STORE_OUTCOME_COLUMNS];
	store_outcome_columns(outcomes, n, col);
	const char *values[1 + STORE_OUTCOME_COLUMNS] = {"me"};
	int lengths[1 + STORE_OUTCOME_COLUMNS] = {0}, formats[1 + STORE_OUTCOME_COLUMNS] = {0};
	for (int k = 0; k < STORE_OUTCOME_COLUMNS; k++) {
		lengths[1 + k] = store_bin_array_finish(&col[k]);
		values[1 + k] = col[k].data;
		formats[1 + k] = 1;
	}
	PGresult *res;
	if (prepared) {
		res = PQexecPrepared(conn, prepared, 1 + STORE_OUTCOME_COLUMNS, values, lengths,
		                     formats, 0);
	} else {
		char *sql = xasprintf("%s%s", explain ? explain : "", store_write_outcomes_sql);
		res = PQexecParams(conn, sql, 1 + STORE_OUTCOME_COLUMNS, NULL, values, lengths,
		                   formats, 0);
		free(sql);
	}
	for (int k = 0; k < STORE_OUTCOME_COLUMNS; k++)
		store_bin_array_free(&col[k]);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	return res;
}

/* Runs the outcome write's text for `outcomes`, under EXPLAIN when `explain` is not NULL. */
static PGresult *write_outcomes(PGconn *conn, const struct outcome *outcomes, size_t n,
                                const char *explain)
{
	return run_outcomes(conn, outcomes, n, explain, NULL);
}

/* The text of a result of EXPLAIN, one line per row (malloc'd). */
static char *plan_text(PGresult *res)
{
	char *plan = xstrdup("");
	for (int i = 0; i < PQntuples(res); i++) {
		char *next = xasprintf("%s%s\n", plan, PQgetvalue(res, i, 0));
		free(plan);
		plan = next;
	}
	return plan;
}

/* Fills `o` with a succeeded capture of the burst's row `i` (strings malloc'd). */
static void succeeded(struct outcome *o, int i)
{
	*o = (struct outcome){
	    .generation = 1, .state = "succeeded", .http_status = 200, .counted = true};
	o->modification_id = xasprintf("00000000-0000-4000-8000-%012d", i);
	o->response_body =
	    xasprintf("{\"modificationId\":\"%s\",\"status\":\"SUCCESS\"}", o->modification_id);
	o->payment_status = xstrdup("CAPTURED");
}

/* A new migrated database whose ledger's statistics are those of two finished rows with
 * no owner, and which autovacuum leaves as they are (its conninfo in *conninfo). */
static PGconn *small_analyzed_ledger(char **conninfo)
{
	*conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(*conninfo);
	pgtest_migrate(conn);
	pgtest_exec(conn, "ALTER TABLE smartpay.modifications SET (autovacuum_enabled = false)");
	pgtest_exec(conn, "INSERT INTO smartpay.modifications (modification_id, order_id, "
	                  "transaction_id, kind, amount_minor, currency, request_body, state) "
	                  "VALUES (gen_random_uuid(), 'old-1', 'tx-old-1', 'capture', 1000, 'EUR', "
	                  "'{}', 'succeeded'), (gen_random_uuid(), 'old-2', 'tx-old-2', 'capture', "
	                  "1000, 'EUR', '{}', 'succeeded')");
	pgtest_exec(conn, "ANALYZE smartpay.modifications");
	return conn;
}

START_TEST(test_batch_with_stale_statistics)
{
	char *conninfo;
	PGconn *conn = small_analyzed_ledger(&conninfo);
	/* the burst: leased by this instance, generation 1, not analyzed */
	char *burst = xasprintf(
	    "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, "
	    "kind, amount_minor, currency, request_body, state, lease_owner, lease_generation, "
	    "lease_expires_at) SELECT format('00000000-0000-4000-8000-%%s', lpad(i::text, 12, "
	    "'0'))::uuid, 'o' || i, 'tx-' || i, 'capture', 1000, 'EUR', '{}', 'pending', 'me', 1, "
	    "now() + interval '1 minute' FROM generate_series(1, %d) AS i",
	    BURST);
	pgtest_exec(conn, burst);
	free(burst);

	struct outcome *batch = xcalloc(BATCH, sizeof(*batch));
	for (int i = 0; i < BATCH; i++)
		succeeded(&batch[i], i + 1);
	PGresult *res = write_outcomes(conn, batch, BATCH,
	                               "EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF, SUMMARY OFF) ");
	char *plan = plan_text(res);
	PQclear(res);

	/* the ledger's rows are found by the join on the batch's columns (a hash join or an
	 * index probe per row), never by a loop that filters the batch for each row */
	const char *update = strstr(plan, "Update on modifications");
	ck_assert_msg(update != NULL, "no update in:\n%s", plan);
	const char *after = strstr(update, "CTE fol");
	size_t span = after ? (size_t)(after - update) : strlen(update);
	char *upd = xasprintf("%.*s", (int)span, update);
	ck_assert_msg(strstr(upd, "Join Filter") == NULL, "the write loops over the batch:\n%s",
	              plan);
	ck_assert_msg(strstr(upd, "Rows Removed by Join Filter") == NULL,
	              "the write loops over the batch:\n%s", plan);
	free(upd);
	free(plan);

	/* each row written once: succeeded, its answer kept, no lease left */
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.modifications WHERE "
	                                  "state = 'succeeded' AND lease_owner IS NULL AND "
	                                  "attempts = 1 AND http_status = 200 AND "
	                                  "response_body = '{\"modificationId\":\"' || "
	                                  "modification_id || '\",\"status\":\"SUCCESS\"}'"),
	                 BATCH);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.modifications WHERE "
	                                  "state = 'pending' AND lease_owner = 'me'"),
	                 BURST - BATCH);

	/* written again (its lease is gone): every id comes back fenced, none disagrees */
	res = write_outcomes(conn, batch, BATCH, NULL);
	ck_assert_int_eq(PQntuples(res), BATCH);
	for (int i = 0; i < PQntuples(res); i++)
		ck_assert_str_eq(PQgetvalue(res, i, 1), "f");
	PQclear(res);

	for (int i = 0; i < BATCH; i++) {
		free(batch[i].modification_id);
		free(batch[i].response_body);
		free(batch[i].payment_status);
	}
	free(batch);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* The ledger the generic plan is used on, and the largest batch the engine writes. */
#define LEDGER 20000
#define BIG_BATCH 512

/* Appends each plan auto_explain sends as a notice to the text at `arg`. */
static void plan_notice(void *arg, const PGresult *res)
{
	char **plans = arg;
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	char *next = xasprintf("%s%s\n", *plans, msg ? msg : "");
	free(*plans);
	*plans = next;
}

/* Runs the prepared outcome write "w" for `outcomes` and fails unless the plan reported
 * for it reads the ledger only through its id lists and joins nothing in a loop;
 * returns the result. */
static PGresult *run_probes_only(PGconn *conn, char **plans, const struct outcome *outcomes,
                                 size_t n)
{
	free(*plans);
	*plans = xstrdup("");
	PGresult *res = run_outcomes(conn, outcomes, n, NULL, "w");
	/* every scan of the ledger has an id list as its index condition */
	int scans = 0, probed = 0;
	for (const char *line = *plans; *line;) {
		size_t len = strcspn(line, "\n");
		char *l = xasprintf("%.*s", (int)len, line);
		scans += strstr(l, "Scan") && strstr(l, " on modifications ");
		probed += strstr(l, "Index Cond: (modification_id = ANY") != NULL;
		free(l);
		line += len + (line[len] == '\n');
	}
	bool probes =
	    strstr(*plans, "Update on modifications") != NULL && scans > 0 && probed == scans;
	static const char *const bad[] = {"Seq Scan on modifications", "Nested Loop", "Merge Join",
	                                  "Rows Removed by Join Filter"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		probes = probes && strstr(*plans, bad[i]) == NULL;
	if (!probes)
		fprintf(stderr, "the plan of %zu outcomes:\n%s\n", n, *plans);
	ck_assert_msg(probes, "the ledger is not read by primary-key probes only (plan above)");
	return res;
}

/* A batch of `n` succeeded captures from the burst's row `first` on. */
static struct outcome *succeeded_batch(int first, int n)
{
	struct outcome *batch = xcalloc((size_t)n, sizeof(*batch));
	for (int i = 0; i < n; i++)
		succeeded(&batch[i], first + i);
	return batch;
}

/* Frees a batch of succeeded_batch. */
static void batch_free(struct outcome *batch, int n)
{
	for (int i = 0; i < n; i++) {
		free(batch[i].modification_id);
		free(batch[i].response_body);
		free(batch[i].payment_status);
	}
	free(batch);
}

/* The outcome connection keeps the statement's generic plan (store_session_outcomes_sql):
 * built at its first call on a ledger of two rows, it is used when the ledger holds
 * LEDGER rows, for one outcome, for BIG_BATCH, and for fenced outcomes that contradict
 * the ledger. Each time the ledger is read by its primary key for the batch's ids only
 * (no sequential scan, which the plan of a two-row ledger would keep for ever) and the
 * batch is joined by hash (no loop over the batch per row). */
START_TEST(test_generic_plan_built_on_a_small_ledger)
{
	char *conninfo;
	PGconn *conn = small_analyzed_ledger(&conninfo);

	/* the daemon's outcome session, and every plan of the session sent back */
	char *setup = store_session_outcomes_sql(0);
	pgtest_exec(conn, setup);
	free(setup);
	pgtest_exec(conn, "LOAD 'auto_explain'");
	pgtest_exec(conn,
	            "SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on; "
	            "SET auto_explain.log_timing = off; SET auto_explain.log_level = notice");
	char *plans = xstrdup("");
	PQsetNoticeReceiver(conn, plan_notice, &plans);
	PGresult *res = PQprepare(conn, "w", store_write_outcomes_sql, 0, NULL);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);

	/* the first call plans it, on the two-row ledger: nothing there, fenced */
	struct outcome *one = succeeded_batch(1, 1);
	res = run_outcomes(conn, one, 1, NULL, "w");
	ck_assert_int_eq(PQntuples(res), 1);
	PQclear(res);

	/* the ledger grows under the plan (no ANALYZE, which would plan it again) */
	char *burst = xasprintf(
	    "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, "
	    "kind, amount_minor, currency, request_body, state, lease_owner, lease_generation, "
	    "lease_expires_at) SELECT format('00000000-0000-4000-8000-%%s', lpad(i::text, 12, "
	    "'0'))::uuid, 'o' || i, 'tx-' || i, 'capture', 1000, 'EUR', '{}', 'pending', 'me', 1, "
	    "now() + interval '1 minute' FROM generate_series(1, %d) AS i",
	    LEDGER);
	pgtest_exec(conn, burst);
	free(burst);

	res = run_probes_only(conn, &plans, one, 1);
	ck_assert_int_eq(PQntuples(res), 0);
	PQclear(res);

	struct outcome *big = succeeded_batch(2, BIG_BATCH);
	res = run_probes_only(conn, &plans, big, BIG_BATCH);
	ck_assert_int_eq(PQntuples(res), 0);
	PQclear(res);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.modifications WHERE "
	                                  "state = 'succeeded' AND lease_owner IS NULL AND "
	                                  "attempts = 1 AND http_status = 200"),
	                 1 + BIG_BATCH);

	/* fenced final outcomes that contradict the ledger: alerted, reported, still probes */
	for (int i = 0; i < 3; i++) {
		big[i].state = "refused";
		big[i].http_status = 422;
	}
	res = run_probes_only(conn, &plans, big, 3);
	ck_assert_int_eq(PQntuples(res), 3);
	for (int i = 0; i < 3; i++)
		ck_assert_str_eq(PQgetvalue(res, i, 1), "t");
	PQclear(res);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.alerts "
	                                  "WHERE kind = 'outcome_disagrees'"),
	                 3);

	/* one plan, the generic one, used for every call */
	ck_assert_int_eq(pgtest_int(conn, "SELECT generic_plans FROM pg_prepared_statements "
	                                  "WHERE name = 'w'"),
	                 4);
	ck_assert_int_eq(pgtest_int(conn, "SELECT custom_plans FROM pg_prepared_statements "
	                                  "WHERE name = 'w'"),
	                 0);

	PQsetNoticeReceiver(conn, NULL, NULL);
	free(plans);
	batch_free(one, 1);
	batch_free(big, BIG_BATCH);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* The order summary's statement trigger (sql/021) plans its statements once per
 * session under the daemon's custom-plan session: every statement on smartpay.requests
 * (the requests query's link, each intent insert's) runs its set of touched orders,
 * which refers to a variable, so that session planned it at every call. Counted by
 * pg_stat_statements (track_planning) over 20 statements that change no request. */
START_TEST(test_summary_trigger_plans_kept)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	pgtest_migrate(conn);
	pgtest_exec(conn, "CREATE EXTENSION pg_stat_statements");
	char *setup = store_session_setup_sql(0);
	pgtest_exec(conn, setup);
	free(setup);
	pgtest_exec(conn, "SELECT pg_stat_statements_reset()");
	for (int i = 0; i < 20; i++)
		pgtest_exec(conn,
		            "UPDATE smartpay.requests SET reason = reason WHERE request_id = -1");
	static const char nested[] =
	    "SELECT count(*) FROM pg_stat_statements WHERE NOT toplevel AND calls >= 20 "
	    "AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())";
	ck_assert_int_ge(pgtest_int(conn, nested), 1);
	char *replanned = xasprintf("%s AND plans > 2", nested);
	ck_assert_int_eq(pgtest_int(conn, replanned), 0);
	free(replanned);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

static Suite *outcome_plan_suite(void)
{
	Suite *s = suite_create("outcome_plan");
	TCase *tc = tcase_create("outcome_plan");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_batch_with_stale_statistics);
	tcase_add_test(tc, test_generic_plan_built_on_a_small_ledger);
	tcase_add_test(tc, test_summary_trigger_plans_kept);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	/* pg_stat_statements counts the plans of nested statements */
	struct pgtest_options opts = {.extra_conf =
	                                  "shared_preload_libraries = 'pg_stat_statements'\n"
	                                  "pg_stat_statements.track = all\n"
	                                  "pg_stat_statements.track_planning = on"};
	pgtest_start_with(&opts);
	int status = testutil_run_suite(outcome_plan_suite(), CK_NORMAL);
	pgtest_stop();
	return status;
}
