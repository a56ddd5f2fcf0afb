/* Named prepared statements on the non-blocking connection (lib/pgconn.c,
 * pg_conn_query_prepared) against a private PostgreSQL: a statement is prepared once
 * per connection and executed many times, a new text under its name replaces it, a
 * failed preparation is tried again at the next use, so is a statement whose result's
 * columns changed type under it, and after a reconnect (the backend terminated) it is
 * prepared again on the new connection. With the daemon's session settings
 * (store_session_setup_sql) every execution is planned for its own parameters: no
 * generic plan is ever used (they are the trap of bench/README.md). */
#include "autoconfig.h"

#include "pgconn.h"
#include "pgtest.h"
#include "store_session.h"
#include "testutil.h"
#include "xmalloc.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

/* The loop, the connection and what the last statement gave. */
struct fixture {
	struct event_base *base;
	struct pg_conn *pc;
	int ups;     /* connections made */
	bool done;   /* the last statement completed */
	char *value; /* its first value (malloc'd), NULL without one */
	char *error; /* its error (malloc'd), NULL on success */
};

/* The connection is up: the loop may stop waiting. */
static void on_up(void *arg)
{
	struct fixture *f = arg;
	f->ups++;
	event_base_loopbreak(f->base);
}

/* A statement completed: keeps its first value or its error. */
static void on_result(PGresult *res, const char *error, void *arg)
{
	struct fixture *f = arg;
	free(f->value);
	free(f->error);
	f->value = NULL;
	f->error = error ? xstrdup(error) : NULL;
	if (!error && res && PQntuples(res) > 0)
		f->value = xstrdup(PQgetvalue(res, 0, 0));
	f->done = true;
	event_base_loopbreak(f->base);
}

/* Runs the loop until `ups` connections were made (at most 30 s). */
static void wait_up(struct fixture *f, int ups)
{
	for (int i = 0; i < 300 && f->ups < ups; i++) {
		struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
		event_base_loopexit(f->base, &tv);
		event_base_dispatch(f->base);
	}
	ck_assert_int_ge(f->ups, ups);
}

/* Runs the loop until the statement queued last completed (at most 30 s). */
static void wait_done(struct fixture *f)
{
	for (int i = 0; i < 300 && !f->done; i++) {
		struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
		event_base_loopexit(f->base, &tv);
		event_base_dispatch(f->base);
	}
	ck_assert_msg(f->done, "the statement did not complete");
	f->done = false;
}

/* Executes the prepared statement `name` of `sql` with one text parameter. */
static void run_prepared(struct fixture *f, const char *name, const char *sql, const char *param)
{
	const char *p[] = {param};
	ck_assert(pg_conn_query_prepared(f->pc, name, sql, 1, p, NULL, NULL, on_result, f));
	wait_done(f);
}

/* Runs an unnamed statement without parameters on the same connection. */
static void run_plain(struct fixture *f, const char *sql)
{
	ck_assert(pg_conn_query(f->pc, sql, 0, NULL, on_result, f));
	wait_done(f);
	ck_assert_msg(f->error == NULL, "%s: %s", sql, f->error);
}

/* The session's prepared statement `name`: its text and executions ("text|n"), or NULL. */
static void prepared_state(struct fixture *f, const char *name)
{
	char *sql = xasprintf("SELECT statement || '|' || (generic_plans + custom_plans) FROM "
	                      "pg_prepared_statements WHERE name = '%s'",
	                      name);
	run_plain(f, sql);
	free(sql);
}

START_TEST(prepared_once_per_connection)
{
	char *conninfo = pgtest_createdb(NULL);
	struct fixture f = {.base = event_base_new()};
	struct pg_conn_handlers h = {.up = on_up};
	f.pc = pg_conn_new(f.base, conninfo, &h, &f);
	pg_conn_start(f.pc);
	wait_up(&f, 1);

	/* prepared at the first use, then executed again without preparing */
	static const char add_one[] = "SELECT $1::int + 1";
	run_prepared(&f, "t_add", add_one, "41");
	ck_assert_ptr_null(f.error);
	ck_assert_str_eq(f.value, "42");
	run_prepared(&f, "t_add", add_one, "1");
	ck_assert_str_eq(f.value, "2");
	prepared_state(&f, "t_add");
	ck_assert_str_eq(f.value, "SELECT $1::int + 1|2");

	/* a new text under the name replaces the statement */
	static const char add_hundred[] = "SELECT $1::int + 100";
	run_prepared(&f, "t_add", add_hundred, "1");
	ck_assert_ptr_null(f.error);
	ck_assert_str_eq(f.value, "101");
	prepared_state(&f, "t_add");
	ck_assert_str_eq(f.value, "SELECT $1::int + 100|1");

	/* a failed preparation: the execution fails, the next use prepares again */
	run_plain(&f, "CREATE TABLE t_later (n int)");
	run_plain(&f, "DROP TABLE t_later");
	static const char count_later[] = "SELECT count(*) + $1::int FROM t_later";
	run_prepared(&f, "t_count", count_later, "0");
	ck_assert_ptr_nonnull(f.error);
	run_plain(&f, "CREATE TABLE t_later (n int)");
	run_prepared(&f, "t_count", count_later, "5");
	ck_assert_msg(f.error == NULL, "%s", f.error);
	ck_assert_str_eq(f.value, "5");

	/* a column's type changes under the statement: its next call fails (the server's
	 * cached plan may not change its result's columns), the one after prepares again */
	run_plain(&f, "CREATE TABLE t_col (v int)");
	run_plain(&f, "INSERT INTO t_col VALUES (3)");
	static const char read_col[] = "SELECT v * $1::int FROM t_col";
	run_prepared(&f, "t_col", read_col, "2");
	ck_assert_str_eq(f.value, "6");
	run_plain(&f, "ALTER TABLE t_col ALTER v TYPE bigint");
	run_prepared(&f, "t_col", read_col, "2");
	ck_assert_ptr_nonnull(f.error);
	run_prepared(&f, "t_col", read_col, "5");
	ck_assert_msg(f.error == NULL, "%s", f.error);
	ck_assert_str_eq(f.value, "15");

	/* the backend goes away: the new connection prepares the statement again */
	run_plain(&f, "SELECT pg_backend_pid()");
	char *pid = xstrdup(f.value);
	PGconn *admin = pgtest_connect(conninfo);
	char *kill = xasprintf("SELECT pg_terminate_backend(%s)", pid);
	pgtest_exec(admin, kill);
	free(kill);
	PQfinish(admin);
	wait_up(&f, 2);
	run_plain(&f, "SELECT pg_backend_pid()");
	ck_assert_str_ne(f.value, pid);
	free(pid);
	run_prepared(&f, "t_add", add_hundred, "2");
	ck_assert_msg(f.error == NULL, "%s", f.error);
	ck_assert_str_eq(f.value, "102");
	prepared_state(&f, "t_add");
	ck_assert_str_eq(f.value, "SELECT $1::int + 100|1");

	free(f.value);
	free(f.error);
	pg_conn_free(f.pc);
	event_base_free(f.base);
	free(conninfo);
}
END_TEST

START_TEST(the_daemons_sessions_plan_every_call)
{
	char *conninfo = pgtest_createdb(NULL);
	struct fixture f = {.base = event_base_new()};
	struct pg_conn_handlers h = {.up = on_up};
	f.pc = pg_conn_new(f.base, conninfo, &h, &f);
	char *setup = store_session_setup_sql(30000);
	pg_conn_set_session(f.pc, &(struct pg_conn_session){.setup_sql = setup});
	free(setup);
	pg_conn_start(f.pc);
	wait_up(&f, 1);
	run_plain(&f, "CREATE TABLE t_rows (n int PRIMARY KEY)");
	/* past the plan cache's five custom plans, after which it would switch to a
	 * generic one as cheap as they were */
	static const char row[] = "SELECT count(*) FROM t_rows WHERE n = $1::int";
	for (int i = 0; i < 12; i++)
		run_prepared(&f, "t_row", row, "7");
	run_plain(&f, "SELECT generic_plans || '/' || custom_plans FROM pg_prepared_statements "
	              "WHERE name = 't_row'");
	ck_assert_str_eq(f.value, "0/12");

	free(f.value);
	free(f.error);
	pg_conn_free(f.pc);
	event_base_free(f.base);
	free(conninfo);
}
END_TEST

int main(void)
{
	pgtest_start();
	Suite *s = suite_create("pgconn_prepared");
	testutil_tcase(s, "pgconn_prepared", 60,
	               (const TTest *const[]){prepared_once_per_connection,
	                                      the_daemons_sessions_plan_every_call, NULL});
	int status = testutil_run_suite(s, CK_NORMAL);
	pgtest_stop();
	return status;
}
