/* The least-privilege role of sql/grant-smartpayd.sql: applied with psql the way an
 * operator does, then the real daemon runs as that role through captures, a cancel and a
 * refund the shop requested, and the role is shown unable to delete, truncate, drop,
 * alter or create anything, or to write the shop's orders. */
#include "autoconfig.h"

#include "pgtest.h"
#include "testutil.h"
#include "world.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs sql/grant-smartpayd.sql with psql on `conninfo` with extra -v assignments
 * (NULL-terminated, may be NULL); returns psql's exit code. Its output (standard output,
 * then standard error) goes to *output. */
static int run_grant(const char *conninfo, const char *const *vars, char **output)
{
	const char *bindir = getenv("PG_BINDIR");
	const char *src = getenv("SP_TOP_SRCDIR");
	char psql[512], file[512];
	snprintf(psql, sizeof(psql), "%s/psql", bindir ? bindir : "/usr/lib/postgresql/15/bin");
	snprintf(file, sizeof(file), "%s/sql/grant-smartpayd.sql", src ? src : ".");
	const char *args[32] = {"-X", "-d", conninfo, "-f", file};
	int argc = 5;
	for (const char *const *v = vars; v && *v; v++) {
		args[argc++] = "-v";
		args[argc++] = *v;
	}
	args[argc] = NULL;
	struct testutil_run r = testutil_run(psql, args, pgtest_dir());
	ck_assert_int_ge(asprintf(output, "%s%s", r.out, r.err), 0);
	testutil_run_free(&r);
	return r.status;
}

/* Runs `smartpayctl -c CONF migrate` (as the schema owner) and returns its exit code;
 * its standard error is passed on. */
static int run_migrate(const char *conf)
{
	struct testutil_run r = testutil_run_built(
	    "smartpayctl", (const char *[]){"-c", conf, "migrate", NULL}, pgtest_dir());
	fputs(r.err, stderr);
	testutil_run_free(&r);
	return r.status;
}

/* The conninfo with user=postgres replaced by user=ROLE. */
static char *as_role(const char *conninfo, const char *role)
{
	const char *at = strstr(conninfo, "user=postgres");
	ck_assert_ptr_nonnull(at);
	char *out = NULL;
	ck_assert_int_ge(asprintf(&out, "%.*suser=%s%s", (int)(at - conninfo), conninfo, role,
	                          at + strlen("user=postgres")),
	                 0);
	return out;
}

/* A shipped or cancelled order of 30.00 EUR for a fresh authorization; returns its id. */
static long add_order(struct world *w, const char *status)
{
	return world_add_order(w, &(struct world_order){.amount = "30.00", .status = status}, NULL);
}

START_TEST(daemon_runs_as_least_privilege_role)
{
	struct world w;
	world_up(&w, NULL);
	const char *owner = w.conninfo;
	/* the operator's order: migrate as the owner, then the grant file */
	ck_assert_int_eq(run_migrate(w.d.conf), 0);
	char *out = NULL;
	int code = run_grant(owner, NULL, &out);
	ck_assert_msg(code == 0, "psql exited %d:\n%s", code, out);
	ck_assert_ptr_nonnull(strstr(out, "created role smartpayd"));
	free(out);
	/* idempotent: a second run (after an upgrade) changes nothing and succeeds */
	code = run_grant(owner, NULL, &out);
	ck_assert_msg(code == 0, "psql exited %d:\n%s", code, out);
	ck_assert_ptr_null(strstr(out, "created role"));
	free(out);
	ck_assert_int_eq(pgtest_int(w.db,
	                            "SELECT count(*) FROM pg_roles WHERE rolname = 'smartpayd' "
	                            "AND rolcanlogin AND NOT (rolsuper OR rolcreatedb OR "
	                            "rolcreaterole OR rolreplication OR rolbypassrls)"),
	                 1);

	long shipped1 = add_order(&w, "shipped");
	add_order(&w, "shipped");
	add_order(&w, "cancelled");
	(void)shipped1;

	char *role = as_role(owner, "smartpayd");
	world_daemon(&w, role, NULL);
	code = daemonproc_run_once(&w.d);
	if (code != 0 || daemonproc_log_contains(&w.d, "permission denied"))
		daemonproc_print_log(&w.d);
	ck_assert_int_eq(code, 0);
	ck_assert(!daemonproc_log_contains(&w.d, "permission denied"));
	ck_assert_int_eq(pgtest_int(w.db, "SELECT count(*) FROM smartpay.modifications "
	                                  "WHERE state = 'succeeded'"),
	                 3);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "capture"), 2);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "cancel"), 1);

	/* the shop asks for a refund (as the owner here); the daemon, as its role, sends it */
	{
		char sql[160];
		snprintf(sql, sizeof(sql), "SELECT smartpay.request_refund('%ld', 5.00, 'damaged')",
		         shipped1);
		pgtest_exec(w.db, sql);
		code = daemonproc_run_once(&w.d);
		if (code != 0)
			daemonproc_print_log(&w.d);
		ck_assert_int_eq(code, 0);
		ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "refund"), 1);
		ck_assert(!daemonproc_log_contains(&w.d, "permission denied"));
	}

	/* what the role may not do: SQLSTATE 42501 insufficient_privilege each time */
	PGconn *r = pgtest_connect(role);
	ck_assert_int_ge(pgtest_int(r, "SELECT count(*) FROM smartpay.modifications"), 3);
	static const char *const denied[] = {
	    "DELETE FROM smartpay.modifications",
	    "DELETE FROM smartpay.alerts",
	    "TRUNCATE smartpay.modifications",
	    "DROP TABLE smartpay.alerts",
	    "ALTER TABLE smartpay.modifications ADD COLUMN x int",
	    "CREATE TABLE smartpay.x (i int)",
	    "CREATE TABLE public.x (i int)",
	    "INSERT INTO smartpay.schema_migrations (version, name) VALUES (999, 'x')",
	    "UPDATE public.orders SET status = 'shipped'",
	    "INSERT INTO public.orders (amount) VALUES (1)",
	    "DELETE FROM public.orders",
	    /* the queue's chunks are the shop trigger's to write */
	    "INSERT INTO smartpay.order_change_chunks (order_ids) VALUES ('{1}')",
	    "TRUNCATE smartpay.order_change_chunks",
	    "CREATE ROLE intruder",
	    "DROP SCHEMA smartpay CASCADE",
	    /* the shop's functions run as their owner: not for the daemon's role */
	    "SELECT smartpay.request_refund('1', 1.00)",
	    "SELECT smartpay.request_cancel_or_refund('1')",
	    "SELECT * FROM smartpay.order_payment('1')",
	};
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
		pgtest_exec_fails(r, denied[i], "42501");
	PQfinish(r);

	free(role);
	world_down(&w);
}
END_TEST

START_TEST(grant_refuses_unsafe_setups)
{
	char *owner = pgtest_createdb_shop(NULL);
	char *out = NULL;
	/* restricting the role that runs the script */
	const char *self[] = {"role=postgres", NULL};
	ck_assert_int_ne(run_grant(owner, self, &out), 0);
	ck_assert_ptr_nonnull(strstr(out, "refusing to restrict postgres"));
	free(out);
	/* an orders relation that does not exist */
	const char *missing[] = {"role=sp_other", "orders_relation=public.nope", NULL};
	ck_assert_int_ne(run_grant(owner, missing, &out), 0);
	ck_assert_ptr_nonnull(strstr(out, "orders relation public.nope does not exist"));
	free(out);
	/* an existing role is stripped of its powers, and a view works as the orders relation */
	PGconn *db = pgtest_connect(owner);
	pgtest_exec(db,
	            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
	            "'sp_strong') THEN CREATE ROLE sp_strong LOGIN CREATEDB CREATEROLE; END IF; "
	            "END $$");
	pgtest_exec(db, "CREATE VIEW public.shop_orders AS SELECT * FROM public.orders");
	const char *view[] = {"role=sp_strong", "orders_relation=public.shop_orders", NULL};
	int code = run_grant(owner, view, &out);
	ck_assert_msg(code == 0, "psql exited %d:\n%s", code, out);
	free(out);
	ck_assert_int_eq(pgtest_int(db, "SELECT count(*) FROM pg_roles WHERE rolname = 'sp_strong' "
	                                "AND NOT (rolcreatedb OR rolcreaterole)"),
	                 1);
	ck_assert_int_eq(
	    pgtest_int(db, "SELECT has_table_privilege('sp_strong', "
	                   "'public.shop_orders', 'SELECT')::int + "
	                   "has_table_privilege('sp_strong', 'public.orders', 'SELECT')::int"),
	    1);
	PQfinish(db);
	free(owner);
}
END_TEST

int main(void)
{
	pgtest_start();
	Suite *s = suite_create("privilege");
	testutil_tcase(s, "role", 60,
	               (const TTest *const[]){daemon_runs_as_least_privilege_role,
	                                      grant_refuses_unsafe_setups, NULL});
	return testutil_run_suite(s, CK_ENV);
}
