#include "autoconfig.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "store_migrate.h"
#include "pgtest.h"
#include "store_indexes.h"
#include "testutil.h"
#include "xmalloc.h"

/* The newest built-in migration version. */
static int newest_version(void)
{
	return sp_builtin_migrations[sp_builtin_migration_count - 1].version;
}

START_TEST(test_builtin_list)
{
	/* the generated table follows the file names: 001_ledger.sql first */
	ck_assert_uint_ge(sp_builtin_migration_count, 1);
	ck_assert_int_eq(sp_builtin_migrations[0].version, 1);
	ck_assert_str_eq(sp_builtin_migrations[0].name, "001_ledger.sql");
	ck_assert_ptr_nonnull(
	    strstr(sp_builtin_migrations[0].sql, "CREATE TABLE smartpay.modifications"));
	for (size_t i = 1; i < sp_builtin_migration_count; i++)
		ck_assert_int_gt(sp_builtin_migrations[i].version,
		                 sp_builtin_migrations[i - 1].version);
}
END_TEST

START_TEST(test_apply_twice)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	bool mask[64];
	int applied = -1, version = -1;
	char *err = NULL;

	ck_assert_uint_le(sp_builtin_migration_count, 64);
	ck_assert_int_eq(migrate_current_version(conn, &version, &err), 0);
	ck_assert_int_eq(version, 0);

	ck_assert_msg(migrate_apply(conn, sp_builtin_migrations, sp_builtin_migration_count, mask,
	                            &applied, &err) == 0,
	              "%s", err);
	ck_assert_int_eq(applied, (int)sp_builtin_migration_count);
	for (size_t i = 0; i < sp_builtin_migration_count; i++)
		ck_assert(mask[i]);
	ck_assert_int_eq(migrate_current_version(conn, &version, &err), 0);
	ck_assert_int_eq(version, newest_version());
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.schema_migrations"),
	                 (long long)sp_builtin_migration_count);
	char *name =
	    pgtest_value(conn, "SELECT name FROM smartpay.schema_migrations WHERE version = 1");
	ck_assert_str_eq(name, "001_ledger.sql");
	free(name);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.schema_migrations "
	                                  "WHERE applied_at > now() - interval '1 hour'"),
	                 (long long)sp_builtin_migration_count);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM pg_class WHERE oid IN "
	                                  "(to_regclass('smartpay.modifications'), "
	                                  "to_regclass('smartpay.alerts'))"),
	                 2);

	/* the second run is a no-op */
	ck_assert_msg(migrate_apply(conn, sp_builtin_migrations, sp_builtin_migration_count, mask,
	                            &applied, &err) == 0,
	              "%s", err);
	ck_assert_int_eq(applied, 0);
	for (size_t i = 0; i < sp_builtin_migration_count; i++)
		ck_assert(!mask[i]);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.schema_migrations"),
	                 (long long)sp_builtin_migration_count);
	ck_assert_int_eq(migrate_current_version(conn, &version, &err), 0);
	ck_assert_int_eq(version, newest_version());
	ck_assert_int_eq(PQtransactionStatus(conn), PQTRANS_IDLE);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* One concurrent migrator: its own connection, its outcome kept for the main thread
 * (Check's assertions belong to the test's thread). */
struct migrator {
	const char *conninfo;
	pthread_t thread;
	int rc;
	int applied;
	char *err;
};

/* Thread body: connect and migrate. */
static void *migrator_run(void *arg)
{
	struct migrator *m = arg;
	PGconn *conn = PQconnectdb(m->conninfo);

	m->rc = -1;
	if (PQstatus(conn) != CONNECTION_OK) {
		m->err = xstrdup(PQerrorMessage(conn));
	} else {
		m->rc = migrate_apply(conn, sp_builtin_migrations, sp_builtin_migration_count, NULL,
		                      &m->applied, &m->err);
	}
	PQfinish(conn);
	return NULL;
}

START_TEST(test_concurrent)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *holder = pgtest_connect(conninfo);
	struct migrator m[2] = {{.conninfo = conninfo}, {.conninfo = conninfo}};
	char *lock = xasprintf("SELECT pg_advisory_xact_lock(%lld)", (long long)MIGRATE_LOCK_KEY);

	/* hold the migration lock so that both migrators are provably waiting at once */
	pgtest_exec(holder, "BEGIN");
	pgtest_exec(holder, lock);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&m[i].thread, NULL, migrator_run, &m[i]), 0);

	PGconn *observer = pgtest_connect(conninfo);
	pgtest_wait_advisory_waiters(observer, 2);
	pgtest_exec(holder, "COMMIT");

	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_join(m[i].thread, NULL), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_msg(m[i].rc == 0, "migrator %d: %s", i, m[i].err);
	/* one did everything, the other found it done */
	ck_assert_int_eq(m[0].applied + m[1].applied, (int)sp_builtin_migration_count);
	ck_assert(m[0].applied == 0 || m[1].applied == 0);
	ck_assert_int_eq(pgtest_int(observer, "SELECT count(*) FROM smartpay.schema_migrations"),
	                 (long long)sp_builtin_migration_count);
	ck_assert_int_eq(pgtest_int(observer, "SELECT count(DISTINCT version) FROM "
	                                      "smartpay.schema_migrations"),
	                 (long long)sp_builtin_migration_count);

	free(lock);
	PQfinish(observer);
	PQfinish(holder);
	free(conninfo);
}
END_TEST

START_TEST(test_broken_rolls_back)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	const struct sp_migration broken[] = {
	    sp_builtin_migrations[0],
	    {900, "900_broken.sql", "CREATE TABLE smartpay.extra (id int);\n\nSELEC 1;\n"},
	};
	int applied = -1, version = -1;
	char *err = NULL;

	ck_assert_int_eq(migrate_apply(conn, broken, 2, NULL, &applied, &err), -1);
	ck_assert_ptr_nonnull(err);
	/* the file and the line of the error */
	ck_assert_msg(strncmp(err, "900_broken.sql:3: ERROR: syntax error", 37) == 0, "%s", err);
	ck_assert_int_eq(applied, 0);
	free(err);
	err = NULL;
	ck_assert_int_eq(PQtransactionStatus(conn), PQTRANS_IDLE);
	/* nothing at all: not the schema, not 001's tables, no bookkeeping */
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM pg_namespace WHERE nspname = "
	                                  "'smartpay'"),
	                 0);
	char *modifications = pgtest_value(conn, "SELECT to_regclass('smartpay.modifications')");
	ck_assert_ptr_null(modifications);
	ck_assert_int_eq(migrate_current_version(conn, &version, &err), 0);
	ck_assert_int_eq(version, 0);

	/* on top of an applied 001: a failing 900 leaves version 1 and no trace */
	ck_assert_int_eq(migrate_apply(conn, broken, 1, NULL, &applied, &err), 0);
	ck_assert_int_eq(migrate_apply(conn, broken, 2, NULL, &applied, &err), -1);
	ck_assert_msg(strstr(err, "900_broken.sql") != NULL, "%s", err);
	free(err);
	err = NULL;
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.schema_migrations"), 1);
	char *extra = pgtest_value(conn, "SELECT to_regclass('smartpay.extra')");
	ck_assert_ptr_null(extra);

	/* a run-time error (no statement position) names the file too */
	const struct sp_migration clash[] = {
	    sp_builtin_migrations[0],
	    {901, "901_clash.sql", "CREATE TABLE smartpay.alerts (id int);"},
	};
	ck_assert_int_eq(migrate_apply(conn, clash, 2, NULL, &applied, &err), -1);
	ck_assert_msg(
	    strncmp(err, "901_clash.sql: ERROR: relation \"alerts\" already exists", 54) == 0, "%s",
	    err);
	free(err);
	err = NULL;

	/* a migration must not end the migrator's transaction */
	const struct sp_migration committing[] = {
	    {902, "902_commit.sql", "CREATE TABLE public.c902 (id int);\nCOMMIT;"},
	};
	ck_assert_int_eq(migrate_apply(conn, committing, 1, NULL, &applied, &err), -1);
	ck_assert_msg(strstr(err, "902_commit.sql: the migration ended the transaction") != NULL,
	              "%s", err);
	free(err);
	err = NULL;
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.schema_migrations"), 1);

	/* a list out of order is refused before touching the database */
	const struct sp_migration disordered[] = {
	    {2, "002_b.sql", "SELECT 1;"},
	    {1, "001_a.sql", "SELECT 1;"},
	};
	ck_assert_int_eq(migrate_apply(conn, disordered, 2, NULL, &applied, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "out of order"));
	free(err);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* Inserts a modification row; `sql_tail` is "(order, transaction, kind, state)". */
static void insert_modification(PGconn *conn, const char *values)
{
	char *sql = xasprintf("INSERT INTO smartpay.modifications (modification_id, order_id, "
	                      "transaction_id, kind, state, amount_minor, currency, request_body) "
	                      "VALUES (gen_random_uuid(), %s, 1000, 'EUR', '{}')",
	                      values);
	pgtest_exec(conn, sql);
	free(sql);
}

/* Inserting `values` must violate unique index `index`. */
static void insert_refused(PGconn *conn, const char *values, const char *index)
{
	char *sql = xasprintf("INSERT INTO smartpay.modifications (modification_id, order_id, "
	                      "transaction_id, kind, state, amount_minor, currency, request_body) "
	                      "VALUES (gen_random_uuid(), %s, 1000, 'EUR', '{}')",
	                      values);
	PGresult *res = PQexec(conn, sql);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);

	ck_assert_msg(
	    PQresultStatus(res) == PGRES_FATAL_ERROR && state != NULL &&
	        strcmp(state, "23505") == 0 && constraint != NULL && strcmp(constraint, index) == 0,
	    "%s: expected unique_violation on %s, got %s %s %s", sql, index,
	    PQresStatus(PQresultStatus(res)), state ? state : "-", constraint ? constraint : "-");
	PQclear(res);
	free(sql);
}

START_TEST(test_unique_live_modifications)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);

	pgtest_migrate(conn);

	/* one live capture per order, whatever its transaction */
	insert_modification(conn, "'o1', 'tx1', 'capture', 'pending'");
	insert_refused(conn, "'o1', 'tx1b', 'capture', 'pending'", "modifications_order_live");
	insert_refused(conn, "'o1', 'tx1c', 'capture', 'succeeded'", "modifications_order_live");
	insert_refused(conn, "'o1', 'tx1d', 'capture', 'needs_attention'",
	               "modifications_order_live");
	/* a refused capture does not count: the operator may try again */
	pgtest_exec(conn,
	            "UPDATE smartpay.modifications SET state = 'refused' WHERE order_id = 'o1'");
	insert_modification(conn, "'o1', 'tx1', 'capture', 'pending'");
	insert_modification(conn, "'o2', 'tx2', 'capture', 'refused'");
	insert_modification(conn, "'o2', 'tx2', 'capture', 'refused'");
	insert_modification(conn, "'o2', 'tx2', 'capture', 'succeeded'");
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.modifications WHERE "
	                                  "kind = 'capture' AND state <> 'refused'"),
	                 2);

	/* one live cancel (or cancelOrRefund) per order */
	insert_modification(conn, "'o3', 'tx3', 'cancel', 'succeeded'");
	insert_refused(conn, "'o3', 'tx3b', 'cancel_or_refund', 'succeeded'",
	               "modifications_order_live");
	/* a refused cancel does not count */
	insert_modification(conn, "'o3', 'tx3', 'cancel', 'refused'");
	/* one live refund standing for a cancel per order, beside the cancel; ordinary
	 * refunds are not limited */
	static const char settling[] =
	    "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, "
	    "kind, state, amount_minor, currency, request_body, settles_cancel) VALUES "
	    "(gen_random_uuid(), 'o3', 'tx3', 'refund', '%s', 500, 'EUR', '{}', %s)";
	char *sql = xasprintf(settling, "succeeded", "true");
	pgtest_exec(conn, sql);
	pgtest_exec_fails(conn, sql, "23505");
	free(sql);
	sql = xasprintf(settling, "refused", "true");
	pgtest_exec(conn, sql);
	free(sql);
	sql = xasprintf(settling, "succeeded", "false");
	pgtest_exec(conn, sql);
	pgtest_exec(conn, sql);
	free(sql);

	/* one pending modification per SmartPay transaction */
	insert_modification(conn, "'o4', 'tx4', 'refund', 'pending'");
	insert_refused(conn, "'o4', 'tx4', 'refund', 'pending'",
	               "modifications_transaction_pending");
	insert_modification(conn, "'o4', 'tx4', 'refund', 'succeeded'");
	pgtest_exec(conn, "UPDATE smartpay.modifications SET state = 'succeeded' WHERE order_id = "
	                  "'o4' AND state = 'pending'");
	insert_modification(conn, "'o4', 'tx4', 'refund', 'pending'");

	/* the row checks: a pending row needs a transaction, only a refused one may lack a body */
	pgtest_exec_fails(conn,
	                  "INSERT INTO smartpay.modifications (modification_id, order_id, kind) "
	                  "VALUES (gen_random_uuid(), 'o5', 'refund')",
	                  "23514");
	pgtest_exec(conn, "INSERT INTO smartpay.modifications (modification_id, order_id, kind, "
	                  "state, reason) VALUES (gen_random_uuid(), 'o5', 'capture', 'refused', "
	                  "'negative amount')");

	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* Asserts that the next notification on `listener` is smartpay_orders for order `id`,
 * and that the newest queued change (read on `conn`) is that order. */
static void expect_notify(PGconn *listener, PGconn *conn, const char *id)
{
	PGnotify *n = pgtest_wait_notify(listener, 5000);

	ck_assert_msg(n != NULL, "no notification for order %s", id);
	ck_assert_str_eq(n->relname, "smartpay_orders");
	ck_assert_str_eq(n->extra, id);
	PQfreemem(n);
	char *queued = pgtest_value(conn, "SELECT order_id FROM smartpay.queued_orders "
	                                  "ORDER BY change_id DESC LIMIT 1");
	ck_assert_str_eq(queued, id);
	free(queued);
}

/* Asserts that no notification arrives within a short while. */
static void expect_silence(PGconn *listener)
{
	PGnotify *n = pgtest_wait_notify(listener, 300);

	ck_assert_msg(n == NULL, "unexpected notification %s: %s", n ? n->relname : "",
	              n ? n->extra : "");
}

START_TEST(test_orders_trigger)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	PGconn *listener = pgtest_connect(conninfo);
	char *err = NULL;

	pgtest_exec_file(conn, "sql/example-orders.sql");
	pgtest_migrate(conn);
	ck_assert_int_eq(migrate_attach_orders_trigger(conn, "public.orders", &err),
	                 MIGRATE_TRIGGER_ATTACHED);
	/* again: replaced, still one trigger */
	ck_assert_int_eq(migrate_attach_orders_trigger(conn, "public.orders", &err),
	                 MIGRATE_TRIGGER_ATTACHED);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM pg_trigger WHERE tgrelid = "
	                                  "'public.orders'::regclass AND tgname = "
	                                  "'smartpay_orders_notify'"),
	                 1);

	pgtest_exec(listener, "LISTEN smartpay_orders");
	char *id = pgtest_value(conn, "INSERT INTO orders (amount, smartpay_transaction_id) "
	                              "VALUES (35.99, 'tx-a') RETURNING id");
	expect_notify(listener, conn, id);

	char *sql = xasprintf("UPDATE orders SET status = 'shipped' WHERE id = %s", id);
	pgtest_exec(conn, sql);
	free(sql);
	expect_notify(listener, conn, id);

	/* another column, or the same status again: no wake-up */
	sql = xasprintf("UPDATE orders SET capture_amount = 10.00 WHERE id = %s", id);
	pgtest_exec(conn, sql);
	free(sql);
	expect_silence(listener);
	sql = xasprintf("UPDATE orders SET status = 'shipped' WHERE id = %s", id);
	pgtest_exec(conn, sql);
	free(sql);
	expect_silence(listener);

	/* only committed changes wake the daemon */
	pgtest_exec(conn, "BEGIN");
	sql = xasprintf("UPDATE orders SET status = 'cancelled' WHERE id = %s", id);
	pgtest_exec(conn, sql);
	free(sql);
	expect_silence(listener);
	pgtest_exec(conn, "COMMIT");
	expect_notify(listener, conn, id);

	free(id);
	PQfinish(listener);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* A statement inserting many requests wakes the daemon once per transaction. */
START_TEST(test_notifications_collapse)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	PGconn *listener = pgtest_connect(conninfo);

	pgtest_migrate(conn);
	pgtest_exec(listener, "LISTEN smartpay_requests");
	PGnotify *n;
	/* the shop's requests: one wake-up for a statement inserting several */
	pgtest_exec(conn, "INSERT INTO smartpay.requests (order_id, kind) "
	                  "SELECT i::text, 'cancel_or_refund' FROM generate_series(1, 5) AS i");
	n = pgtest_wait_notify(listener, 5000);
	ck_assert_ptr_nonnull(n);
	ck_assert_str_eq(n->relname, "smartpay_requests");
	ck_assert_str_eq(n->extra, "");
	PQfreemem(n);
	expect_silence(listener);

	PQfinish(listener);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

START_TEST(test_orders_relations)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	PGconn *listener = pgtest_connect(conninfo);
	char *err = NULL;

	pgtest_exec_file(conn, "sql/example-orders.sql");
	pgtest_migrate(conn);
	pgtest_exec(listener, "LISTEN smartpay_orders");

	/* a view: nothing attached, the caller is told */
	pgtest_exec(conn, "CREATE VIEW public.orders_v AS SELECT * FROM public.orders");
	ck_assert_int_eq(migrate_attach_orders_trigger(conn, "public.orders_v", &err),
	                 MIGRATE_TRIGGER_VIEW);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM pg_trigger WHERE tgname = "
	                                  "'smartpay_orders_notify'"),
	                 0);

	/* unqualified: found through search_path */
	ck_assert_int_eq(migrate_attach_orders_trigger(conn, "orders", &err),
	                 MIGRATE_TRIGGER_ATTACHED);

	/* names that need quoting are quoted, not interpolated */
	pgtest_exec(conn, "CREATE SCHEMA \"Shop Schema\"; CREATE TABLE \"Shop Schema\".\"Odd "
	                  "\"\"Orders\"\"\" (id text PRIMARY KEY, status text)");
	ck_assert_msg(migrate_attach_orders_trigger(conn, "Shop Schema.Odd \"Orders\"", &err) ==
	                  MIGRATE_TRIGGER_ATTACHED,
	              "%s", err);
	pgtest_exec(conn,
	            "INSERT INTO \"Shop Schema\".\"Odd \"\"Orders\"\"\" VALUES ('A-1', 'new')");
	expect_notify(listener, conn, "A-1");

	/* a partitioned table */
	pgtest_exec(conn, "CREATE SCHEMA shop; CREATE TABLE shop.porders (id bigint, status text) "
	                  "PARTITION BY RANGE (id); CREATE TABLE shop.porders_1 PARTITION OF "
	                  "shop.porders FOR VALUES FROM (0) TO (1000)");
	ck_assert_msg(migrate_attach_orders_trigger(conn, "shop.porders", &err) ==
	                  MIGRATE_TRIGGER_ATTACHED,
	              "%s", err);
	pgtest_exec(conn, "INSERT INTO shop.porders VALUES (42, 'new')");
	expect_notify(listener, conn, "42");
	pgtest_exec(conn, "UPDATE shop.porders SET status = 'shipped' WHERE id = 42");
	expect_notify(listener, conn, "42");

	/* errors */
	ck_assert_int_eq(migrate_attach_orders_trigger(conn, "public.missing", &err),
	                 MIGRATE_TRIGGER_ERROR);
	ck_assert_msg(strstr(err, "does not exist") != NULL, "%s", err);
	free(err);
	ck_assert_int_eq(migrate_attach_orders_trigger(conn, "a.b.c", &err), MIGRATE_TRIGGER_ERROR);
	ck_assert_msg(strstr(err, "SCHEMA.NAME") != NULL, "%s", err);
	free(err);
	pgtest_exec(conn, "CREATE TABLE public.nostatus (id int)");
	ck_assert_int_eq(migrate_attach_orders_trigger(conn, "public.nostatus", &err),
	                 MIGRATE_TRIGGER_ERROR);
	ck_assert_msg(strstr(err, "status") != NULL, "%s", err);
	free(err);
	/* a transaction holding the table: give up after lock_timeout, do not queue */
	PGconn *shop = pgtest_connect(conninfo);
	pgtest_exec(shop, "BEGIN; INSERT INTO public.orders (amount) VALUES (1)");
	pgtest_exec(conn, "SET lock_timeout = '200ms'");
	ck_assert_int_eq(migrate_attach_orders_trigger(conn, "public.orders", &err),
	                 MIGRATE_TRIGGER_ERROR);
	ck_assert_msg(strstr(err, "could not lock it within lock_timeout 200ms") != NULL, "%s",
	              err);
	free(err);
	pgtest_exec(shop, "COMMIT");
	PQfinish(shop);
	ck_assert_int_eq(migrate_attach_orders_trigger(conn, "public.orders", &err),
	                 MIGRATE_TRIGGER_ATTACHED);
	/* without a session lock_timeout the default applies, then is gone again */
	pgtest_exec(conn, "RESET lock_timeout");
	ck_assert_int_eq(migrate_attach_orders_trigger(conn, "public.orders", &err),
	                 MIGRATE_TRIGGER_ATTACHED);
	char *timeout = pgtest_value(conn, "SHOW lock_timeout");
	ck_assert_str_eq(timeout, "0");
	free(timeout);

	pgtest_exec(conn, "CREATE SEQUENCE public.seq");
	ck_assert_int_eq(migrate_attach_orders_trigger(conn, "public.seq", &err),
	                 MIGRATE_TRIGGER_ERROR);
	free(err);
	ck_assert_int_eq(PQtransactionStatus(conn), PQTRANS_IDLE);

	PQfinish(listener);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* A fresh database with the example orders table and a config file pointing at it. */
struct shop_db {
	char *conninfo;
	PGconn *conn;
	char *config;
};

static void shop_db_open(struct shop_db *db)
{
	db->conninfo = pgtest_createdb(NULL);
	db->conn = pgtest_connect(db->conninfo);
	pgtest_exec_file(db->conn, "sql/example-orders.sql");
	db->config = pgtest_ctl_config(db->conninfo, NULL, NULL, NULL);
}

static void shop_db_close(struct shop_db *db)
{
	unlink(db->config);
	free(db->config);
	PQfinish(db->conn);
	free(db->conninfo);
}

/* Asserts that `haystack` contains `needle`, showing both otherwise. */
#define assert_contains(haystack, needle)                                                          \
	ck_assert_msg(strstr((haystack), (needle)) != NULL, "expected \"%s\" in:\n%s", (needle),   \
	              (haystack))

START_TEST(test_ctl_migrate)
{
	struct shop_db shop;
	shop_db_open(&shop);
	char *expect = NULL;

	struct testutil_run r = PGTEST_CTL(shop.config, 0, "migrate");
	assert_contains(r.out, "applied 001_ledger.sql\n");
	expect = xasprintf("schema is now at version %d\n", newest_version());
	assert_contains(r.out, expect);
	free(expect);
	assert_contains(r.out, "orders trigger smartpay_orders_notify is on public.orders\n");
	testutil_run_free(&r);

	r = PGTEST_CTL(shop.config, 0, "migrate");
	expect = xasprintf("schema is up to date (version %d)\n", newest_version());
	assert_contains(r.out, expect);
	free(expect);
	ck_assert_ptr_null(strstr(r.out, "applied"));
	ck_assert_str_eq(r.err, "");
	testutil_run_free(&r);

	ck_assert_int_eq(pgtest_int(shop.conn, "SELECT count(*) FROM smartpay.schema_migrations"),
	                 (long long)sp_builtin_migration_count);
	ck_assert_int_eq(pgtest_int(shop.conn, "SELECT count(*) FROM pg_trigger WHERE tgrelid = "
	                                       "'public.orders'::regclass AND tgname = "
	                                       "'smartpay_orders_notify'"),
	                 1);

	/* --json: one document for programs */
	r = PGTEST_CTL(shop.config, 0, "--json", "migrate");
	struct json_object *doc = json_tokener_parse(r.out);
	ck_assert_msg(doc != NULL, "not JSON: %s", r.out);
	struct json_object *field;
	ck_assert(json_object_object_get_ex(doc, "version", &field));
	ck_assert_int_eq(json_object_get_int(field), newest_version());
	ck_assert(json_object_object_get_ex(doc, "up_to_date", &field));
	ck_assert(json_object_get_boolean(field));
	ck_assert(json_object_object_get_ex(doc, "applied", &field));
	ck_assert_uint_eq(json_object_array_length(field), 0);
	ck_assert(json_object_object_get_ex(doc, "orders_trigger", &field));
	ck_assert_str_eq(json_object_get_string(field), "attached");
	json_object_put(doc);
	testutil_run_free(&r);

	shop_db_close(&shop);
}
END_TEST

/* The warning migrate gives for a missing index on `column`, with the statement. */
static char *index_warning(PGconn *conn, const char *column)
{
	char *err = NULL;
	char *create = store_index_statement(conn, "public.orders", column, &err);
	ck_assert_ptr_nonnull(create);
	char *w = xasprintf("warning: public.orders has no index on %s, so %s read the whole "
	                    "table; create it with: %s;",
	                    column, store_index_used_by(column), create);
	free(create);
	return w;
}

START_TEST(test_ctl_migrate_index_check)
{
	struct shop_db shop;
	shop_db_open(&shop);
	/* the shop's table without the indexes the sweep needs */
	pgtest_exec(shop.conn, "DROP INDEX public.orders_authorized_at_idx");
	pgtest_exec(shop.conn, "DROP INDEX public.orders_authorization_expires_at_idx");
	/* an index that does not serve (partial) does not count */
	pgtest_exec(shop.conn, "CREATE INDEX orders_partial ON public.orders (authorized_at) "
	                       "WHERE status = 'x'");
	char *on_authorized = index_warning(shop.conn, "authorized_at");
	char *on_expires = index_warning(shop.conn, "authorization_expires_at");
	ck_assert_ptr_nonnull(strstr(on_authorized, "CREATE INDEX CONCURRENTLY "
	                                            "\"orders_authorized_at_idx\" ON "
	                                            "\"public\".\"orders\" (\"authorized_at\")"));

	struct testutil_run r = PGTEST_CTL(shop.config, 0, "migrate");
	assert_contains(r.err, on_authorized);
	assert_contains(r.err, on_expires);
	testutil_run_free(&r);

	/* the statement the warning names creates the index; its warning goes away */
	char *err = NULL;
	char *create = store_index_statement(shop.conn, "public.orders", "authorized_at", &err);
	pgtest_exec(shop.conn, create);
	free(create);
	r = PGTEST_CTL(shop.config, 0, "--json", "migrate");
	ck_assert_ptr_null(strstr(r.err, "no index on authorized_at"));
	assert_contains(r.err, on_expires);
	testutil_run_free(&r);

	create =
	    store_index_statement(shop.conn, "public.orders", "authorization_expires_at", &err);
	pgtest_exec(shop.conn, create);
	free(create);
	r = PGTEST_CTL(shop.config, 0, "migrate");
	ck_assert_str_eq(r.err, "");
	testutil_run_free(&r);

	free(on_authorized);
	free(on_expires);
	shop_db_close(&shop);
}
END_TEST

START_TEST(test_ctl_json_first_run)
{
	struct shop_db shop;
	shop_db_open(&shop);

	struct testutil_run r = PGTEST_CTL(shop.config, 0, "--json", "migrate");
	struct json_object *doc = json_tokener_parse(r.out);
	ck_assert_msg(doc != NULL, "not JSON: %s", r.out);
	struct json_object *applied, *first;
	ck_assert(json_object_object_get_ex(doc, "applied", &applied));
	ck_assert_uint_eq(json_object_array_length(applied), sp_builtin_migration_count);
	first = json_object_array_get_idx(applied, 0);
	ck_assert_str_eq(json_object_get_string(first), "001_ledger.sql");
	json_object_put(doc);
	testutil_run_free(&r);

	shop_db_close(&shop);
}
END_TEST

START_TEST(test_ctl_view_and_missing_relation)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	pgtest_exec_file(conn, "sql/example-orders.sql");
	pgtest_exec(conn, "CREATE VIEW public.orders_v AS SELECT * FROM public.orders");

	char *config = pgtest_ctl_config(conninfo, "public.orders_v", NULL, NULL);
	struct testutil_run r = PGTEST_CTL(config, 0, "migrate");
	assert_contains(r.out, "applied 001_ledger.sql\n");
	assert_contains(r.err, "public.orders_v is a view");
	testutil_run_free(&r);
	unlink(config);
	free(config);

	/* the migrations are in; the missing relation is a run-time failure */
	config = pgtest_ctl_config(conninfo, "public.nosuch", NULL, NULL);
	PGTEST_CTL_CHECK(config, 1, "orders relation public.nosuch does not exist", "migrate");
	unlink(config);
	free(config);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

START_TEST(test_ctl_errors)
{
	char *conninfo = pgtest_createdb(NULL);

	/* an unknown key: configuration error, exit 2, FILE:LINE on stderr */
	char *config = pgtest_ctl_config(conninfo, "public.orders", "no_such_key = 1\n", NULL);
	struct testutil_run r = PGTEST_CTL(config, 2, "migrate");
	char *where = xasprintf("%s:5", config);
	assert_contains(r.err, where);
	assert_contains(r.err, "no_such_key");
	free(where);
	testutil_run_free(&r);
	unlink(config);
	free(config);

	/* a database that is not there: run-time failure, exit 1 */
	config = pgtest_ctl_config("host=/nonexistent-pgtest-dir port=1 dbname=x", "public.orders",
	                           NULL, NULL);
	PGTEST_CTL_CHECK(config, 1, "smartpayctl: database: ", "migrate");

	/* usage errors: exit 2 */
	pgtest_ctl_check_at(__FILE__, __LINE__, config, 2, "no command",
	                    (const char *const[]){NULL});
	PGTEST_CTL_CHECK(config, 2, "unknown command 'frobnicate'", "frobnicate");
	PGTEST_CTL_CHECK(config, 2, "unexpected argument 'now'", "migrate", "now");
	PGTEST_CTL_CHECK(NULL, 2, NULL, "--bogus");
	unlink(config);
	free(config);

	/* a configuration file that does not exist */
	PGTEST_CTL_CHECK("/nonexistent/smartpayd.conf", 2, "/nonexistent/smartpayd.conf",
	                 "migrate");

	/* --help and --version need no configuration */
	r = PGTEST_CTL(NULL, 0, "--help");
	assert_contains(r.out, "migrate");
	assert_contains(r.out, "--json");
	testutil_run_free(&r);
	r = PGTEST_CTL(NULL, 0, "--version");
	assert_contains(r.out, "smartpayctl (" PACKAGE_NAME ") " PACKAGE_VERSION "\n");
	testutil_run_free(&r);
	r = PGTEST_CTL(NULL, 0, "help", "migrate");
	assert_contains(r.out, "usage: smartpayctl [-c FILE] [--json] migrate\n");
	testutil_run_free(&r);

	free(conninfo);
}
END_TEST

START_TEST(test_harness_restart)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);

	pgtest_exec(conn, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)");
	char *started = pgtest_value(conn, "SELECT pg_postmaster_start_time()::text");

	/* like a crash: the committed row survives, old connections break */
	pgtest_restart(true);
	PGresult *res = PQexec(conn, "SELECT 1");
	ck_assert_int_ne(PQresultStatus(res), PGRES_TUPLES_OK);
	PQclear(res);
	PQfinish(conn);
	conn = pgtest_connect(conninfo);
	ck_assert_int_eq(pgtest_int(conn, "SELECT v FROM kept"), 7);
	char *restarted = pgtest_value(conn, "SELECT pg_postmaster_start_time()::text");
	ck_assert_str_ne(started, restarted);
	PQfinish(conn);

	/* stopped: nobody answers; started again on the same port, over TCP too */
	pgtest_server_stop(false);
	PGconn *refused = PQconnectdb(conninfo);
	ck_assert_int_eq(PQstatus(refused), CONNECTION_BAD);
	PQfinish(refused);
	pgtest_server_start();
	char *tcp =
	    xasprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres", pgtest_port());
	conn = pgtest_connect(tcp);
	ck_assert_int_eq(pgtest_int(conn, "SELECT 1"), 1);
	PQfinish(conn);

	free(tcp);
	free(started);
	free(restarted);
	free(conninfo);
}
END_TEST

/* The functions that read the shop's text times catch a failed cast (a subtransaction),
 * which a parallel plan refuses: a statement planned in parallel around them must still
 * run ("cannot start subtransactions during a parallel operation" otherwise). */
START_TEST(test_shop_time_in_a_parallel_plan)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);

	pgtest_migrate(conn);
	pgtest_exec(conn, "CREATE TABLE public.times AS SELECT CASE WHEN i % 10 = 0 THEN 'soon' "
	                  "ELSE '2026-11-01 12:00+00' END AS t FROM generate_series(1, 20000) i");
	pgtest_exec(conn, "ANALYZE public.times");
	pgtest_exec(conn, "SET parallel_setup_cost = 0");
	pgtest_exec(conn, "SET parallel_tuple_cost = 0");
	pgtest_exec(conn, "SET min_parallel_table_scan_size = 0");
	pgtest_exec(conn, "SET max_parallel_workers_per_gather = 2");
	char *n = pgtest_value(conn, "SELECT count(*) FROM public.times "
	                             "WHERE smartpay.shop_time(t) IS NOT NULL");
	ck_assert_str_eq(n, "18000");
	free(n);
	n = pgtest_value(conn, "SELECT count(*) FROM public.times "
	                       "WHERE smartpay.order_deadline(t, NULL, interval '5 days') IS NULL");
	ck_assert_str_eq(n, "2000");
	free(n);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* The schema tests and the smartpayctl tests, each test in its own database. */
static Suite *migrate_suite(void)
{
	Suite *s = suite_create("migrate");
	TCase *tc = tcase_create("schema");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_builtin_list);
	tcase_add_test(tc, test_apply_twice);
	tcase_add_test(tc, test_concurrent);
	tcase_add_test(tc, test_broken_rolls_back);
	tcase_add_test(tc, test_unique_live_modifications);
	tcase_add_test(tc, test_orders_trigger);
	tcase_add_test(tc, test_notifications_collapse);
	tcase_add_test(tc, test_orders_relations);
	tcase_add_test(tc, test_shop_time_in_a_parallel_plan);
	suite_add_tcase(s, tc);

	tc = tcase_create("smartpayctl");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_ctl_migrate);
	tcase_add_test(tc, test_ctl_migrate_index_check);
	tcase_add_test(tc, test_ctl_json_first_run);
	tcase_add_test(tc, test_ctl_view_and_missing_relation);
	tcase_add_test(tc, test_ctl_errors);
	suite_add_tcase(s, tc);

	/* last: it stops and starts the shared server */
	tc = tcase_create("harness");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_harness_restart);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	pgtest_start();
	int status = testutil_run_suite(migrate_suite(), CK_ENV);
	pgtest_stop();
	return status;
}
