/* The queue of changed orders in chunks (sql/022, lib/store.c): the daemon's queue read
 * (store_read_changes_sql) over both tables in queued-id order, and the deletion of the
 * orders looked at in the intent insert (store_intents_text): a chunk partly looked at
 * keeps the rest under the same ids, a statement that does not commit takes nothing,
 * two daemons taking orders of one chunk at once leave nothing behind, an order whose
 * intent was not recorded stays, and the rows queued one a row before the upgrade are
 * read and deleted too. */
#include "autoconfig.h"

#include "pgtest.h"
#include "store_internal.h"
#include "store_migrate.h"
#include "testutil.h"
#include "xmalloc.h"

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

/* The orders of a read, in the order read. */
struct queue_read {
	int64_t *ids;
	char **orders;
	size_t n;
};

/* A fresh database with the example orders table, migrated up to (not including)
 * migration `upto` (0: all), the orders triggers attached. */
static PGconn *queue_db(int upto)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	free(conninfo);
	pgtest_exec_file(conn, "sql/example-orders.sql");
	const struct migrate_settings settings = {
	    .orders_relation = "public.orders",
	    .authorization_validity_ms = 120 * 3600 * INT64_C(1000),
	};
	size_t count = 0;
	while (count < sp_builtin_migration_count &&
	       (upto == 0 || sp_builtin_migrations[count].version < upto))
		count++;
	bool mask[64];
	int applied = 0;
	char *err = NULL;
	ck_assert_msg(migrate_apply_configured(conn, sp_builtin_migrations, count, &settings, mask,
	                                       &applied, NULL, &err) == 0,
	              "%s", err);
	ck_assert_int_eq(migrate_attach_orders_trigger(conn, "public.orders", &err),
	                 MIGRATE_TRIGGER_ATTACHED);
	return conn;
}

/* Inserts n authorized orders in one statement, then ships them in another: only the
 * shipping is left queued. */
static void ship_orders(PGconn *conn, int n)
{
	char *sql = xasprintf("INSERT INTO public.orders (amount, status) SELECT 10.00, "
	                      "'authorized' FROM generate_series(1, %d)",
	                      n);
	pgtest_exec(conn, sql);
	free(sql);
	pgtest_exec(conn, "DELETE FROM smartpay.order_changes");
	pgtest_exec(conn, "DELETE FROM smartpay.order_change_chunks");
	pgtest_exec(conn, "UPDATE public.orders SET status = 'shipped' WHERE status <> 'shipped'");
}

/* Reads at most `limit` queued orders after queued id `after`, as the daemon does. */
static struct queue_read read_queue(PGconn *conn, int limit, int64_t after)
{
	char lim[24], from[24];
	snprintf(lim, sizeof(lim), "%d", limit);
	snprintf(from, sizeof(from), "%" PRId64, after);
	const char *p[] = {lim, from};
	PGresult *res = PQexecParams(conn, store_read_changes_sql, 2, NULL, p, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	struct queue_read r = {.n = (size_t)PQntuples(res)};
	r.ids = xcalloc(r.n + 1, sizeof(*r.ids));
	r.orders = xcalloc(r.n + 1, sizeof(*r.orders));
	for (size_t i = 0; i < r.n; i++) {
		r.ids[i] = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
		r.orders[i] = xstrdup(PQgetvalue(res, (int)i, 1));
	}
	PQclear(res);
	return r;
}

/* Reads the whole queue in pages of `page`, each after the last id read. */
static struct queue_read read_all(PGconn *conn, int page)
{
	struct queue_read all = {.ids = xcalloc(1, sizeof(int64_t)),
	                         .orders = xcalloc(1, sizeof(char *))};
	int64_t after = 0;
	for (;;) {
		struct queue_read r = read_queue(conn, page, after);
		all.ids = xrealloc(all.ids, (all.n + r.n + 1) * sizeof(*all.ids));
		all.orders = xrealloc(all.orders, (all.n + r.n + 1) * sizeof(*all.orders));
		for (size_t i = 0; i < r.n; i++) {
			all.ids[all.n] = r.ids[i];
			all.orders[all.n++] = r.orders[i];
		}
		size_t n = r.n;
		if (n > 0)
			after = r.ids[n - 1];
		free(r.ids);
		free(r.orders);
		if (n < (size_t)page)
			return all;
	}
}

/* Frees a read's ids and orders. */
static void queue_read_free(struct queue_read *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->orders[i]);
	free(r->orders);
	free(r->ids);
}

/* The queued ids `ids[i]` for each i in [from, to) with i % step == phase, as a bigint[]
 * literal (malloc'd). */
static char *id_list(const int64_t *ids, size_t from, size_t to, size_t step, size_t phase)
{
	char *out = xstrdup("{");
	for (size_t i = from; i < to; i++) {
		if (i % step != phase)
			continue;
		char *next = xasprintf("%s%s%" PRId64, out, out[1] ? "," : "", ids[i]);
		free(out);
		out = next;
	}
	char *done = xasprintf("%s}", out);
	free(out);
	return done;
}

/* The intent insert's parameters with no intents: $1 the queued ids looked at. */
static void empty_batch(const char *p[15], const char *looked)
{
	p[0] = looked;
	p[1] = "me";
	p[2] = "30 seconds";
	for (int k = 3; k < 15; k++)
		p[k] = "{}";
}

/* Runs the intent insert with no intents, deleting the queued ids `looked` (a bigint[]
 * literal), on `conn` in its own transaction or the one open there. */
static void consume(PGconn *conn, const char *looked)
{
	char *sql = store_intents_text(false);
	const char *p[15];
	empty_batch(p, looked);
	PGresult *res = PQexecParams(conn, sql, 15, NULL, p, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	free(sql);
}

/* Fails unless the queue holds exactly `want` (queued id order), read in pages of 7. */
static void expect_queue(PGconn *conn, const struct queue_read *want)
{
	struct queue_read got = read_all(conn, 7);
	ck_assert_uint_eq(got.n, want->n);
	for (size_t i = 0; i < got.n; i++) {
		ck_assert_int_eq(got.ids[i], want->ids[i]);
		ck_assert_str_eq(got.orders[i], want->orders[i]);
	}
	queue_read_free(&got);
}

/* Fails unless the queue holds nothing at all: no order, no chunk row left. */
static void expect_empty(PGconn *conn)
{
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.order_changes"), 0);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.order_change_chunks"), 0);
}

START_TEST(reads_both_tables_in_queued_id_order)
{
	PGconn *conn = queue_db(0);
	ship_orders(conn, 300);
	/* one a row, before and after the chunks (a rescan, a follow-up): id 1 was the
	 * inserted orders' first chunk, deleted by ship_orders */
	pgtest_exec(conn, "INSERT INTO smartpay.order_changes (order_id, change_id) VALUES "
	                  "('before', 1)");
	pgtest_exec(conn, "INSERT INTO smartpay.order_changes (order_id) VALUES ('after')");
	struct queue_read all = read_all(conn, 100);
	ck_assert_uint_eq(all.n, 302);
	ck_assert_str_eq(all.orders[0], "before");
	ck_assert_int_eq(all.ids[0], 1024);
	ck_assert_str_eq(all.orders[301], "after");
	for (size_t i = 1; i < all.n; i++)
		ck_assert_int_gt(all.ids[i], all.ids[i - 1]);
	/* every shipped order once, as the view shows it; other page sizes read the same */
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(DISTINCT order_id) FROM "
	                                  "smartpay.queued_orders WHERE order_id ~ '^[0-9]+$'"),
	                 300);
	expect_queue(conn, &all);
	struct queue_read one = read_all(conn, 1);
	ck_assert_uint_eq(one.n, 302);
	queue_read_free(&one);
	/* a page read after an id in the middle of a chunk starts right after it */
	struct queue_read mid = read_queue(conn, 3, all.ids[100]);
	ck_assert_uint_eq(mid.n, 3);
	ck_assert_int_eq(mid.ids[0], all.ids[101]);
	ck_assert_int_eq(mid.ids[2], all.ids[103]);
	queue_read_free(&mid);
	queue_read_free(&all);
	PQfinish(conn);
}
END_TEST

START_TEST(a_chunk_partly_looked_at_keeps_the_rest)
{
	PGconn *conn = queue_db(0);
	ship_orders(conn, 300); /* chunks of 256 and 44 */
	struct queue_read all = read_queue(conn, 400, 0);
	ck_assert_uint_eq(all.n, 300);
	/* every other order of the first chunk, and the whole second */
	char *looked = id_list(all.ids, 0, 256, 2, 0);
	consume(conn, looked);
	free(looked);
	looked = id_list(all.ids, 256, 300, 1, 0);
	consume(conn, looked);
	free(looked);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.order_change_chunks"), 1);
	/* the rest under the same ids, in the same order */
	struct queue_read left = {.ids = xcalloc(128, sizeof(int64_t)),
	                          .orders = xcalloc(128, sizeof(char *))};
	for (size_t i = 1; i < 256; i += 2) {
		left.ids[left.n] = all.ids[i];
		left.orders[left.n++] = xstrdup(all.orders[i]);
	}
	expect_queue(conn, &left);
	/* looked at again (another daemon's ids, a second look): nothing more goes */
	looked = id_list(all.ids, 0, 256, 2, 0);
	consume(conn, looked);
	free(looked);
	expect_queue(conn, &left);
	/* the rest looked at: the chunk goes */
	looked = id_list(left.ids, 0, left.n, 1, 0);
	consume(conn, looked);
	free(looked);
	expect_empty(conn);
	queue_read_free(&left);
	queue_read_free(&all);
	PQfinish(conn);
}
END_TEST

START_TEST(nothing_goes_before_the_commit)
{
	PGconn *conn = queue_db(0);
	ship_orders(conn, 300);
	struct queue_read all = read_queue(conn, 400, 0);
	char *looked = id_list(all.ids, 0, all.n, 1, 0);
	/* rolled back, or the connection lost before the commit (a crash between the
	 * claim and the delete): every order stays queued */
	pgtest_exec(conn, "BEGIN");
	consume(conn, looked);
	pgtest_exec(conn, "ROLLBACK");
	expect_queue(conn, &all);
	char *conninfo = pgtest_conninfo_db(PQdb(conn));
	PGconn *other = pgtest_connect(conninfo);
	pgtest_exec(other, "BEGIN");
	consume(other, looked);
	PQfinish(other);
	expect_queue(conn, &all);
	/* read and never deleted: read again from the start, whole */
	struct queue_read again = read_all(conn, 50);
	ck_assert_uint_eq(again.n, 300);
	queue_read_free(&again);
	free(conninfo);
	free(looked);
	queue_read_free(&all);
	PQfinish(conn);
}
END_TEST

START_TEST(two_daemons_taking_one_chunk_leave_nothing)
{
	PGconn *conn = queue_db(0);
	ship_orders(conn, 256); /* one chunk */
	struct queue_read all = read_queue(conn, 400, 0);
	ck_assert_uint_eq(all.n, 256);
	char *conninfo = pgtest_conninfo_db(PQdb(conn));
	PGconn *a = pgtest_connect(conninfo);
	PGconn *b = pgtest_connect(conninfo);
	/* a takes the first half; b, at the same time, the second and a few of a's: b
	 * waits for a's commit and then sees the chunk as a left it */
	char *first = id_list(all.ids, 0, 128, 1, 0);
	char *second = id_list(all.ids, 120, 256, 1, 0);
	pgtest_exec(a, "BEGIN");
	consume(a, first);
	char *sql = store_intents_text(false);
	const char *p[15];
	empty_batch(p, second);
	ck_assert(PQsendQueryParams(b, sql, 15, NULL, p, NULL, NULL, 0));
	/* b is blocked on the chunk's row lock */
	for (int i = 0; i < 200 && pgtest_int(conn, "SELECT count(*) FROM pg_stat_activity WHERE "
	                                            "datname = current_database() AND "
	                                            "wait_event_type = 'Lock'") == 0;
	     i++)
		usleep(25000);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM pg_stat_activity WHERE "
	                                  "datname = current_database() AND "
	                                  "wait_event_type = 'Lock'"),
	                 1);
	pgtest_exec(a, "COMMIT");
	PGresult *res;
	while ((res = PQgetResult(b)) != NULL) {
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s",
		              PQresultErrorMessage(res));
		PQclear(res);
	}
	expect_empty(conn);
	free(sql);
	free(first);
	free(second);
	free(conninfo);
	PQfinish(a);
	PQfinish(b);
	queue_read_free(&all);
	PQfinish(conn);
}
END_TEST

START_TEST(an_order_whose_intent_was_not_recorded_stays)
{
	PGconn *conn = queue_db(0);
	ship_orders(conn, 3);
	struct queue_read all = read_queue(conn, 10, 0);
	ck_assert_uint_eq(all.n, 3);
	/* a live capture of the first order: its new capture conflicts and is not recorded */
	char *sql = xasprintf("INSERT INTO smartpay.modifications (modification_id, order_id, "
	                      "transaction_id, kind, amount_minor, currency, request_body, state, "
	                      "deadline) VALUES (gen_random_uuid(), '%s', 'tx-1', 'capture', "
	                      "1000, 'EUR', '{}', 'pending', now() + interval '1 day')",
	                      all.orders[0]);
	pgtest_exec(conn, sql);
	free(sql);
	char *looked = id_list(all.ids, 0, all.n, 1, 0);
	char *orders = xasprintf("{%s}", all.orders[0]);
	char *text = store_intents_text(true);
	const char *p[15] = {
	    looked,   "me",       "30 seconds", "{6f1c2a9e-0000-4000-8000-000000000001}",
	    orders,   "{tx-2}",   "{capture}",  "{1000}",
	    "{EUR}",  "{\"{}\"}", "{NULL}",     "{4102444800000}",
	    "{NULL}", "{NULL}",   "{t}"};
	PGresult *res = PQexecParams(conn, text, 15, NULL, p, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	ck_assert_int_eq(PQntuples(res), 0);
	PQclear(res);
	/* the other two are gone, the first stays under its id */
	struct queue_read left = read_all(conn, 10);
	ck_assert_uint_eq(left.n, 1);
	ck_assert_int_eq(left.ids[0], all.ids[0]);
	ck_assert_str_eq(left.orders[0], all.orders[0]);
	queue_read_free(&left);
	free(text);
	free(orders);
	free(looked);
	queue_read_free(&all);
	PQfinish(conn);
}
END_TEST

START_TEST(rows_queued_before_the_upgrade_are_consumed)
{
	PGconn *conn = queue_db(22);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM pg_class WHERE relname = "
	                                  "'order_change_chunks'"),
	                 0);
	/* the shop ships 10 orders under the old trigger: one row each */
	pgtest_exec(conn, "INSERT INTO public.orders (amount, status) SELECT 10.00, 'authorized' "
	                  "FROM generate_series(1, 10)");
	pgtest_exec(conn, "DELETE FROM smartpay.order_changes");
	pgtest_exec(conn, "UPDATE public.orders SET status = 'shipped'");
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.order_changes"), 10);
	/* upgraded: the next 10 shipped go in a chunk */
	const struct migrate_settings settings = {
	    .orders_relation = "public.orders",
	    .authorization_validity_ms = 120 * 3600 * INT64_C(1000),
	};
	bool mask[64];
	int applied = 0;
	char *err = NULL;
	ck_assert_msg(migrate_apply_configured(conn, sp_builtin_migrations,
	                                       sp_builtin_migration_count, &settings, mask,
	                                       &applied, NULL, &err) == 0,
	              "%s", err);
	pgtest_exec(conn, "INSERT INTO public.orders (amount, status) SELECT 10.00, 'authorized' "
	                  "FROM generate_series(1, 10)");
	pgtest_exec(conn, "UPDATE public.orders SET status = 'shipped' WHERE status <> 'shipped'");
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.order_change_chunks"), 2);
	struct queue_read all = read_all(conn, 4);
	ck_assert_uint_eq(all.n, 30);
	/* the old rows first, one id each (position 0) */
	for (size_t i = 0; i < 10; i++)
		ck_assert_int_eq(all.ids[i] % 1024, 0);
	char *looked = id_list(all.ids, 0, all.n, 1, 0);
	consume(conn, looked);
	free(looked);
	expect_empty(conn);
	queue_read_free(&all);
	PQfinish(conn);
}
END_TEST

/* Appends `item` to the array literal being built in *lit ("{" at the start). */
static void lit_add(char **lit, const char *item)
{
	char *next = xasprintf("%s%s%s", *lit, (*lit)[1] ? "," : "", item);
	free(*lit);
	*lit = next;
}

/* Closes an array literal built with lit_add (returns it, malloc'd). */
static char *lit_end(char *lit)
{
	char *done = xasprintf("%s}", lit);
	free(lit);
	return done;
}

/* True for the orders of the lean insert's test that are looked at: the first 100 of
 * the first chunk, the whole second chunk (256-299) and the single row (300). */
static bool lean_looked(size_t i)
{
	return i < 100 || i >= 256;
}

/* Records a capture intent for each order of `all` that lean_looked picks with the
 * insert `text`, consuming the queued ids of the same orders; returns the rows
 * recorded. */
static int record_captures(PGconn *conn, const char *text, const struct queue_read *all)
{
	char *cols[12];
	char *looked = xstrdup("{");
	for (int k = 0; k < 12; k++)
		cols[k] = xstrdup("{");
	for (size_t i = 0; i < all->n; i++) {
		if (!lean_looked(i))
			continue;
		char *queued = xasprintf("%" PRId64, all->ids[i]);
		char *id = xasprintf("6f1c2a9e-0000-4000-8000-%012zu", i);
		char *tx = xasprintf("tx-%s", all->orders[i]);
		const char *v[12] = {
		    id,     all->orders[i],  tx,     "capture", "1000", "EUR", "\"{}\"",
		    "NULL", "4102444800000", "NULL", "NULL",    "t"};
		lit_add(&looked, queued);
		for (int k = 0; k < 12; k++)
			lit_add(&cols[k], v[k]);
		free(queued);
		free(id);
		free(tx);
	}
	looked = lit_end(looked);
	const char *p[15] = {looked, "me", "30 seconds"};
	for (int k = 0; k < 12; k++) {
		cols[k] = lit_end(cols[k]);
		p[3 + k] = cols[k];
	}
	PGresult *res = PQexecParams(conn, text, 15, NULL, p, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	int n = PQntuples(res);
	PQclear(res);
	for (int k = 0; k < 12; k++)
		free(cols[k]);
	free(looked);
	return n;
}

/* The lean intent insert (store_intents_lean_text), which leaves out the follow-up of
 * orders that gave no intent, consumes what the full one does when every order looked
 * at gave one: a chunk partly looked at keeps the rest, a whole chunk and a row-per-order
 * change go, and the intents are recorded. */
START_TEST(the_lean_insert_consumes_what_the_full_one_does)
{
	for (int lean = 0; lean < 2; lean++) {
		PGconn *conn = queue_db(0);
		ship_orders(conn, 300); /* chunks of 256 and 44 */
		pgtest_exec(conn, "INSERT INTO smartpay.order_changes (order_id) VALUES ('one')");
		struct queue_read all = read_queue(conn, 400, 0);
		ck_assert_uint_eq(all.n, 301);
		ck_assert_str_eq(all.orders[300], "one");
		char *text = lean ? store_intents_lean_text() : store_intents_text(false);
		ck_assert_int_eq(record_captures(conn, text, &all), 145);
		free(text);
		/* the rest of the first chunk under the same ids, nothing else */
		struct queue_read left = read_all(conn, 50);
		ck_assert_uint_eq(left.n, 156);
		for (size_t i = 0; i < left.n; i++) {
			ck_assert_int_eq(left.ids[i], all.ids[100 + i]);
			ck_assert_str_eq(left.orders[i], all.orders[100 + i]);
		}
		ck_assert_int_eq(
		    pgtest_int(conn, "SELECT count(*) FROM smartpay.order_change_chunks"), 1);
		ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.modifications "
		                                  "WHERE state = 'pending' AND lease_owner = 'me'"),
		                 145);
		queue_read_free(&left);
		queue_read_free(&all);
		PQfinish(conn);
	}
}
END_TEST

/* Which batches the lean intent insert may record (store_intents_leave_nothing): only
 * those where every queued order looked at has an intent, and none is a refund, refused
 * or a shop request's. */
START_TEST(the_lean_insert_only_where_nothing_is_left)
{
	struct intent in[3] = {{.order_id = "a", .kind = MOD_CAPTURE},
	                       {.order_id = "b", .kind = MOD_CANCEL},
	                       {.order_id = "c", .kind = MOD_CANCEL_OR_REFUND}};
	const char *all[] = {"c", "a", "b", "a"};
	const char *one_left[] = {"a", "d"};
	const char *unknown[] = {"a", NULL};
	ck_assert(store_intents_leave_nothing(in, 3, all, 4));
	ck_assert(store_intents_leave_nothing(in, 3, NULL, 0));
	ck_assert(!store_intents_leave_nothing(in, 3, one_left, 2));
	ck_assert(!store_intents_leave_nothing(in, 3, unknown, 2));
	ck_assert(!store_intents_leave_nothing(in, 3, NULL, 2));
	ck_assert(!store_intents_leave_nothing(NULL, 0, all, 1));
	/* a refund's room is re-checked by the insert, which may leave it out */
	in[1].kind = MOD_REFUND;
	ck_assert(!store_intents_leave_nothing(in, 3, all, 4));
	ck_assert(!store_intents_leave_nothing(in, 3, NULL, 0));
	/* a refusal's alert, a request's link */
	in[1].kind = MOD_CANCEL;
	in[2].reason = "refused";
	ck_assert(!store_intents_leave_nothing(in, 3, all, 4));
	in[2].reason = NULL;
	in[0].request_id = 7;
	ck_assert(!store_intents_leave_nothing(in, 3, all, 4));
	in[0].request_id = 0;
	ck_assert(store_intents_leave_nothing(in, 3, all, 4));
}
END_TEST

int main(void)
{
	pgtest_start();
	Suite *s = suite_create("queue");
	testutil_tcase(s, "queue", 120,
	               (const TTest *const[]){reads_both_tables_in_queued_id_order,
	                                      a_chunk_partly_looked_at_keeps_the_rest,
	                                      nothing_goes_before_the_commit,
	                                      two_daemons_taking_one_chunk_leave_nothing,
	                                      an_order_whose_intent_was_not_recorded_stays,
	                                      rows_queued_before_the_upgrade_are_consumed,
	                                      the_lean_insert_consumes_what_the_full_one_does,
	                                      the_lean_insert_only_where_nothing_is_left, NULL});
	int failed = testutil_run_suite(s, CK_NORMAL);
	pgtest_stop();
	return failed;
}
