#include "autoconfig.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "migrate.h"
#include "pgtest.h"
#include "testutil.h"
#include "xmalloc.h"

/* The version of sql/013_pending_queue.sql: the pending rows' own table. */
#define QUEUE_VERSION 13

/* Inserts a modification of order `order`, transaction `txn`, in `state`; returns its id. */
static char *insert_row(PGconn *conn, const char *order, const char *txn, const char *state)
{
	char *sql = xasprintf("INSERT INTO smartpay.modifications (modification_id, order_id, "
	                      "transaction_id, kind, state, amount_minor, currency, request_body, "
	                      "deadline, lease_owner, lease_expires_at) VALUES (gen_random_uuid(), "
	                      "'%s', '%s', 'capture', '%s', 1000, 'EUR', '{\"amount\":1000}', "
	                      "now() + interval '3 days', 'a', now() + interval '1 minute') "
	                      "RETURNING modification_id::text",
	                      order, txn, state);
	char *id = pgtest_value(conn, sql);
	free(sql);
	return id;
}

/* Whether the queue holds `id` with the ledger row's transaction, next attempt and
 * deadline: 1 when it does, 0 when it holds nothing for it, -1 when it disagrees. */
static long long queued(PGconn *conn, const char *id)
{
	char *sql = xasprintf(
	    "SELECT CASE WHEN count(q.*) = 0 THEN 0 WHEN bool_and(q.transaction_id = "
	    "m.transaction_id AND q.next_attempt_at = m.next_attempt_at AND q.deadline IS NOT "
	    "DISTINCT FROM m.deadline) THEN 1 ELSE -1 END FROM smartpay.modifications m LEFT "
	    "JOIN smartpay.modification_queue q ON q.modification_id = m.modification_id "
	    "WHERE m.modification_id = '%s'",
	    id);
	long long n = pgtest_int(conn, sql);
	free(sql);
	return n;
}

/* Runs the statement `head` on the one ledger row `id`. */
static void exec_id(PGconn *conn, const char *head, const char *id)
{
	char *sql = xasprintf("%s WHERE modification_id = '%s'", head, id);
	pgtest_exec(conn, sql);
	free(sql);
}

START_TEST(test_queue_follows_the_state)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	pgtest_migrate(conn);

	char *a = insert_row(conn, "o1", "t1", "pending");
	char *r = insert_row(conn, "o2", "t2", "refused");
	ck_assert_int_eq(queued(conn, a), 1);
	ck_assert_int_eq(queued(conn, r), 0);

	/* a new next attempt (a retry, the expiry sweep, an operator) and a new deadline */
	exec_id(conn,
	        "UPDATE smartpay.modifications SET next_attempt_at = now() + interval '5 s', "
	        "deadline = now() + interval '1 day'",
	        a);
	ck_assert_int_eq(queued(conn, a), 1);
	/* a claim changes the lease only: the entry stays */
	exec_id(conn,
	        "UPDATE smartpay.modifications SET lease_owner = 'b', lease_generation = "
	        "lease_generation + 1",
	        a);
	ck_assert_int_eq(queued(conn, a), 1);

	/* out of pending and back (needs_attention, then an operator's requeue) */
	exec_id(conn, "UPDATE smartpay.modifications SET state = 'needs_attention'", a);
	ck_assert_int_eq(queued(conn, a), 0);
	exec_id(conn, "UPDATE smartpay.modifications SET state = 'pending'", a);
	ck_assert_int_eq(queued(conn, a), 1);
	exec_id(conn, "UPDATE smartpay.modifications SET state = 'succeeded', completed_at = now()",
	        a);
	ck_assert_int_eq(queued(conn, a), 0);

	/* deleted and truncated ledger rows leave nothing behind */
	char *b = insert_row(conn, "o3", "t3", "pending");
	ck_assert_int_eq(queued(conn, b), 1);
	exec_id(conn, "DELETE FROM smartpay.modifications", b);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.modification_queue"), 0);
	free(insert_row(conn, "o4", "t4", "pending"));
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.modification_queue"), 1);
	pgtest_exec(conn, "TRUNCATE smartpay.alerts, smartpay.requests, smartpay.modifications");
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.modification_queue"), 0);

	free(a);
	free(r);
	free(b);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

START_TEST(test_one_pending_per_transaction)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	pgtest_migrate(conn);

	char *a = insert_row(conn, "o1", "t1", "pending");
	char *b = insert_row(conn, "o2", "t1", "needs_attention");
	/* a second pending row of the transaction, inserted or requeued: unique_violation */
	pgtest_exec_fails(
	    conn,
	    "INSERT INTO smartpay.modifications (modification_id, order_id, "
	    "transaction_id, kind, state, amount_minor, currency, request_body) "
	    "VALUES (gen_random_uuid(), 'o3', 't1', 'refund', 'pending', 1, 'EUR', '{}')",
	    "23505");
	char *sql = xasprintf(
	    "UPDATE smartpay.modifications SET state = 'pending' WHERE modification_id = '%s'", b);
	pgtest_exec_fails(conn, sql, "23505");
	/* once the first is final, the other may go */
	exec_id(conn, "UPDATE smartpay.modifications SET state = 'succeeded'", a);
	pgtest_exec(conn, sql);
	ck_assert_int_eq(queued(conn, b), 1);

	free(sql);
	free(a);
	free(b);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* The outcome of a pending row (state, the gateway's answer, the lease released) is a
 * heap-only update: no index names a column it changes, and the row's page has room. */
START_TEST(test_outcome_is_a_hot_update)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	pgtest_migrate(conn);

	char *a = insert_row(conn, "o1", "t1", "pending");
	pgtest_exec(conn, "BEGIN");
	exec_id(conn,
	        "UPDATE smartpay.modifications SET state = 'succeeded', http_status = 200, "
	        "response_body = repeat('{\"pspReference\":\"x\"}', 40), payment_status = "
	        "'CAPTURED', reconciliation_reference_id = 'r1', attempts = attempts + 1, "
	        "lease_owner = NULL, lease_expires_at = NULL, updated_at = now(), completed_at = "
	        "now()",
	        a);
	ck_assert_int_eq(pgtest_int(conn, "SELECT n_tup_upd FROM pg_stat_xact_user_tables "
	                                  "WHERE relid = 'smartpay.modifications'::regclass"),
	                 1);
	ck_assert_int_eq(pgtest_int(conn, "SELECT n_tup_hot_upd FROM pg_stat_xact_user_tables "
	                                  "WHERE relid = 'smartpay.modifications'::regclass"),
	                 1);
	pgtest_exec(conn, "COMMIT");
	ck_assert_int_eq(queued(conn, a), 0);

	free(a);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

START_TEST(test_migration_queues_pending_rows)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);

	/* a ledger at the version before, with rows */
	size_t before = 0;
	while (before < sp_builtin_migration_count &&
	       sp_builtin_migrations[before].version < QUEUE_VERSION)
		before++;
	ck_assert_uint_lt(before, sp_builtin_migration_count);
	int applied = 0;
	char *err = NULL;
	ck_assert_int_eq(migrate_apply(conn, sp_builtin_migrations, before, NULL, &applied, &err),
	                 0);
	pgtest_exec(conn,
	            "INSERT INTO smartpay.modifications (modification_id, order_id, "
	            "transaction_id, kind, state, amount_minor, currency, request_body) "
	            "SELECT gen_random_uuid(), 'o' || i, 't' || i, 'capture', CASE WHEN i % 3 "
	            "= 0 THEN 'pending' ELSE 'succeeded' END, 1000, 'EUR', '{}' "
	            "FROM generate_series(1, 30) i");

	pgtest_migrate(conn);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.modification_queue q "
	                                  "JOIN smartpay.modifications m USING (modification_id) "
	                                  "WHERE m.state = 'pending' AND q.transaction_id = "
	                                  "m.transaction_id"),
	                 10);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.modification_queue"), 10);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.modifications WHERE live"),
	                 30);

	PQfinish(conn);
	free(conninfo);
}
END_TEST

/* The pending rows' table, kept by the ledger's triggers. */
static Suite *queue_suite(void)
{
	Suite *s = suite_create("ledger_queue");
	TCase *tc = tcase_create("queue");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_queue_follows_the_state);
	tcase_add_test(tc, test_one_pending_per_transaction);
	tcase_add_test(tc, test_outcome_is_a_hot_update);
	tcase_add_test(tc, test_migration_queues_pending_rows);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	pgtest_start();
	int status = testutil_run_suite(queue_suite(), CK_ENV);
	pgtest_stop();
	return status;
}
