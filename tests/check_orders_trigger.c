/* The orders triggers once per statement (sql/020, lib/store_migrate.c): what one
 * statement queues (in chunks of up to 256 orders in smartpay.order_change_chunks,
 * sql/022) and which notifications it sends (one per changed order up to 64, else one
 * with an empty payload), that the row trigger of before is replaced, and that a row
 * trigger attached by hand still works (one row per order in smartpay.order_changes). */
#include "autoconfig.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pgtest.h"
#include "store_migrate.h"
#include "testutil.h"
#include "xmalloc.h"

/* A fresh database with the example orders table, migrated, the triggers attached, and
 * a second connection listening on smartpay_orders. */
struct trig_db {
	char *conninfo;
	PGconn *conn;
	PGconn *listener;
};

static void trig_db_open(struct trig_db *db)
{
	char *err = NULL;
	db->conninfo = pgtest_createdb(NULL);
	db->conn = pgtest_connect(db->conninfo);
	db->listener = pgtest_connect(db->conninfo);
	pgtest_exec_file(db->conn, "sql/example-orders.sql");
	pgtest_migrate(db->conn);
	ck_assert_int_eq(migrate_attach_orders_trigger(db->conn, "public.orders", &err),
	                 MIGRATE_TRIGGER_ATTACHED);
	pgtest_exec(db->listener, "LISTEN smartpay_orders");
}

static void trig_db_close(struct trig_db *db)
{
	PQfinish(db->listener);
	PQfinish(db->conn);
	free(db->conninfo);
}

/* Inserts n authorized orders in one statement. */
static void insert_orders(PGconn *conn, int n)
{
	char *sql = xasprintf("INSERT INTO public.orders (amount, status) SELECT 10.00, "
	                      "'authorized' FROM generate_series(1, %d)",
	                      n);
	pgtest_exec(conn, sql);
	free(sql);
}

/* The payloads of the notifications that arrive until a quiet 300 ms, joined by ",";
 * "" for an empty payload. */
static char *drain_notifications(PGconn *listener, int *count)
{
	char *all = xstrdup("");
	*count = 0;
	PGnotify *n;
	while ((n = pgtest_wait_notify(listener, 300)) != NULL) {
		char *next = xasprintf("%s%s%s", all, *count > 0 ? "," : "", n->extra);
		free(all);
		all = next;
		(*count)++;
		PQfreemem(n);
	}
	return all;
}

/* Empties the queue and forgets the notifications sent so far. */
static void reset_queue(struct trig_db *db)
{
	int count;
	free(drain_notifications(db->listener, &count));
	pgtest_exec(db->conn, "DELETE FROM smartpay.order_changes");
	pgtest_exec(db->conn, "DELETE FROM smartpay.order_change_chunks");
}

START_TEST(few_changes_notify_each_order)
{
	struct trig_db db;
	trig_db_open(&db);
	insert_orders(db.conn, 3);
	int count;
	char *got = drain_notifications(db.listener, &count);
	ck_assert_int_eq(count, 3);
	char *want = pgtest_value(db.conn, "SELECT string_agg(id::text, ',' ORDER BY id) FROM "
	                                   "public.orders");
	ck_assert_str_eq(got, want);
	free(got);
	free(want);
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(DISTINCT order_id) FROM "
	                                     "smartpay.queued_orders"),
	                 3);

	/* two of three change status: those two, once each */
	reset_queue(&db);
	pgtest_exec(db.conn, "UPDATE public.orders SET status = CASE WHEN id = (SELECT min(id) "
	                     "FROM public.orders) THEN status ELSE 'shipped' END");
	got = drain_notifications(db.listener, &count);
	ck_assert_int_eq(count, 2);
	want = pgtest_value(db.conn, "SELECT string_agg(id::text, ',' ORDER BY id) FROM "
	                             "public.orders WHERE status = 'shipped'");
	ck_assert_str_eq(got, want);
	free(got);
	free(want);
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM smartpay.queued_orders c "
	                                     "JOIN public.orders o ON o.id::text = c.order_id "
	                                     "WHERE o.status = 'shipped'"),
	                 2);
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM smartpay.queued_orders"), 2);

	/* another column only, or the same status: nothing queued, no notification */
	reset_queue(&db);
	pgtest_exec(db.conn, "UPDATE public.orders SET capture_amount = 1.00");
	pgtest_exec(db.conn, "UPDATE public.orders SET status = status");
	free(drain_notifications(db.listener, &count));
	ck_assert_int_eq(count, 0);
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM smartpay.queued_orders"), 0);
	trig_db_close(&db);
}
END_TEST

START_TEST(many_changes_one_empty_notification)
{
	struct trig_db db;
	trig_db_open(&db);
	insert_orders(db.conn, 100);
	int count;
	char *got = drain_notifications(db.listener, &count);
	ck_assert_int_eq(count, 1);
	ck_assert_str_eq(got, "");
	free(got);
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(DISTINCT order_id) FROM "
	                                     "smartpay.queued_orders"),
	                 100);

	/* 70 of 100 change status: all 70 queued, one notification */
	reset_queue(&db);
	pgtest_exec(db.conn, "UPDATE public.orders SET status = CASE WHEN id < (SELECT min(id) "
	                     "+ 70 FROM public.orders) THEN 'shipped' ELSE status END");
	got = drain_notifications(db.listener, &count);
	ck_assert_int_eq(count, 1);
	ck_assert_str_eq(got, "");
	free(got);
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM smartpay.queued_orders c "
	                                     "JOIN public.orders o ON o.id::text = c.order_id "
	                                     "WHERE o.status = 'shipped'"),
	                 70);
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM smartpay.queued_orders"), 70);
	/* in one chunk, none one order a row */
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM smartpay.order_change_chunks"),
	                 1);
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM smartpay.order_changes"), 0);

	/* exactly 64 changed: still one notification each */
	reset_queue(&db);
	pgtest_exec(db.conn, "UPDATE public.orders SET status = 'cancelled' WHERE id < (SELECT "
	                     "min(id) + 64 FROM public.orders)");
	free(drain_notifications(db.listener, &count));
	ck_assert_int_eq(count, 64);
	trig_db_close(&db);
}
END_TEST

START_TEST(large_statements_queue_chunks_of_256)
{
	struct trig_db db;
	trig_db_open(&db);
	insert_orders(db.conn, 600);
	/* 600 inserted: chunks of 256, 256 and 88, every order once, numbered from 0 */
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM smartpay.order_change_chunks"),
	                 3);
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT max(cardinality(order_ids)) FROM "
	                                     "smartpay.order_change_chunks"),
	                 256);
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM public.orders o WHERE "
	                                     "(SELECT count(*) FROM smartpay.queued_orders q "
	                                     "WHERE q.order_id = o.id::text) = 1"),
	                 600);
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM smartpay.queued_orders q JOIN "
	                                     "smartpay.order_change_chunks k ON k.change_id = "
	                                     "q.change_id / 1024 WHERE k.order_ids[q.change_id "
	                                     "% 1024 + 1] = q.order_id"),
	                 600);

	/* 300 of them shipped and the others' amount changed in one statement: 300 queued */
	reset_queue(&db);
	pgtest_exec(db.conn, "UPDATE public.orders SET status = CASE WHEN id % 2 = 0 THEN "
	                     "'shipped' ELSE status END, capture_amount = 1.00");
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM smartpay.order_change_chunks"),
	                 2);
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM smartpay.queued_orders q JOIN "
	                                     "public.orders o ON o.id::text = q.order_id WHERE "
	                                     "o.status = 'shipped'"),
	                 300);
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM smartpay.queued_orders"), 300);
	trig_db_close(&db);
}
END_TEST

START_TEST(statement_triggers_replace_the_row_trigger)
{
	struct trig_db db;
	trig_db_open(&db);
	char *err = NULL;
	/* the row trigger the migrator attached before sql/020 */
	pgtest_exec(db.conn, "DROP TRIGGER smartpay_orders_notify_insert ON public.orders");
	pgtest_exec(db.conn, "CREATE OR REPLACE TRIGGER smartpay_orders_notify AFTER INSERT OR "
	                     "UPDATE OF status ON public.orders FOR EACH ROW EXECUTE FUNCTION "
	                     "smartpay.orders_notify()");
	ck_assert_int_eq(migrate_attach_orders_trigger(db.conn, "public.orders", &err),
	                 MIGRATE_TRIGGER_ATTACHED);
	/* two triggers call the function, both once per statement (tgtype bit 0: ROW) */
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM pg_trigger WHERE tgrelid = "
	                                     "'public.orders'::regclass AND tgfoid = "
	                                     "'smartpay.orders_notify()'::regprocedure AND "
	                                     "tgtype & 1 = 0"),
	                 2);
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM pg_trigger WHERE tgrelid = "
	                                     "'public.orders'::regclass AND NOT tgisinternal"),
	                 2);
	insert_orders(db.conn, 1);
	int count;
	free(drain_notifications(db.listener, &count));
	ck_assert_int_eq(count, 1);
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM smartpay.queued_orders"), 1);

	/* a relation the function cannot read is refused, not attached */
	pgtest_exec(db.conn, "CREATE TABLE public.noid (status text)");
	ck_assert_int_eq(migrate_attach_orders_trigger(db.conn, "public.noid", &err),
	                 MIGRATE_TRIGGER_ERROR);
	ck_assert_msg(strstr(err, "no column id") != NULL, "%s", err);
	free(err);
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM pg_trigger WHERE tgrelid = "
	                                     "'public.noid'::regclass"),
	                 0);
	trig_db_close(&db);
}
END_TEST

START_TEST(row_trigger_by_hand_still_works)
{
	struct trig_db db;
	trig_db_open(&db);
	/* the shop's table behind a view: the trigger the migrator's notice asks for */
	pgtest_exec(db.conn, "CREATE TABLE public.shop_orders (id text PRIMARY KEY, status text)");
	pgtest_exec(db.conn, "CREATE TRIGGER smartpay_orders_notify AFTER INSERT OR UPDATE OF "
	                     "status ON public.shop_orders FOR EACH ROW EXECUTE FUNCTION "
	                     "smartpay.orders_notify()");
	pgtest_exec(db.conn, "INSERT INTO public.shop_orders SELECT 'S-' || i, 'authorized' FROM "
	                     "generate_series(1, 70) AS i");
	int count;
	free(drain_notifications(db.listener, &count));
	ck_assert_int_eq(count, 70);
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM smartpay.order_changes"), 70);
	ck_assert_int_eq(pgtest_int(db.conn, "SELECT count(*) FROM smartpay.order_change_chunks"),
	                 0);
	reset_queue(&db);
	pgtest_exec(db.conn, "UPDATE public.shop_orders SET status = 'shipped' WHERE id = 'S-7'");
	char *got = drain_notifications(db.listener, &count);
	ck_assert_int_eq(count, 1);
	ck_assert_str_eq(got, "S-7");
	free(got);
	trig_db_close(&db);
}
END_TEST

static Suite *orders_trigger_suite(void)
{
	Suite *s = suite_create("orders_trigger");
	TCase *tc = tcase_create("statement");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, few_changes_notify_each_order);
	tcase_add_test(tc, many_changes_one_empty_notification);
	tcase_add_test(tc, large_statements_queue_chunks_of_256);
	tcase_add_test(tc, statement_triggers_replace_the_row_trigger);
	tcase_add_test(tc, row_trigger_by_hand_still_works);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	pgtest_start();
	int status = testutil_run_suite(orders_trigger_suite(), CK_ENV);
	pgtest_stop();
	return status;
}
