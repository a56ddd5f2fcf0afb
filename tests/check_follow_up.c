/* The follow-up after a finished modification, end to end (real PostgreSQL, smartpay-sim,
 * smartpayd): a change of an order looked at while one of its modifications is in flight
 * (a cancel during its capture, a cancel behind a refund) is acted on once that one is
 * finished, across a restart too; a refund request waits behind a refund; and a plain
 * capture queues its order no second time. A capture in flight across the upgrade keeps
 * the follow-up it had. */
#include "autoconfig.h"

#include "store_migrate.h"
#include "pgtest.h"
#include "testutil.h"
#include "world.h"

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The gateway's latency in these tests: long enough for a change to arrive and be looked
 * at while a request is in flight. */
#define FOLLOW_LATENCY "{\"latency_ms\": 2000}"

/* Inserts an order of `amount` EUR in `status` and returns its id. */
static long add_order(struct world *w, const char *amount, const char *status)
{
	const struct world_order o = {.amount = amount, .status = status};
	return world_add_order(w, &o, NULL);
}

/* Sets the status of order `id`. */
static void set_status(struct world *w, long id, const char *status)
{
	char sql[512];
	snprintf(sql, sizeof(sql), "UPDATE public.orders SET status = '%s' WHERE id = %ld", status,
	         id);
	pgtest_exec(w->db, sql);
}

/* Logs every order queued (public.change_log), whoever queues it: the shop's trigger
 * (in chunks, smartpay.order_change_chunks), the daemon's follow-ups (one a row,
 * smartpay.order_changes). */
static void log_queued_changes(struct world *w)
{
	pgtest_exec(w->db,
	            "CREATE TABLE public.change_log (order_id text NOT NULL); "
	            "CREATE FUNCTION public.log_change() RETURNS trigger LANGUAGE plpgsql "
	            "SECURITY DEFINER SET search_path = pg_catalog AS $$ BEGIN "
	            "INSERT INTO public.change_log VALUES (NEW.order_id); RETURN NULL; END $$; "
	            "CREATE TRIGGER log_change AFTER INSERT ON smartpay.order_changes "
	            "FOR EACH ROW EXECUTE FUNCTION public.log_change(); "
	            "CREATE FUNCTION public.log_chunk() RETURNS trigger LANGUAGE plpgsql "
	            "SECURITY DEFINER SET search_path = pg_catalog AS $$ BEGIN "
	            "INSERT INTO public.change_log SELECT unnest(NEW.order_ids); RETURN NULL; "
	            "END $$; "
	            "CREATE TRIGGER log_chunk AFTER INSERT ON smartpay.order_change_chunks "
	            "FOR EACH ROW EXECUTE FUNCTION public.log_chunk()");
}

/* How many rows were queued for order `id` so far. */
static long long queued_for(struct world *w, long id)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM public.change_log WHERE order_id = '%ld'",
	         id);
	return world_count(w, sql);
}

/* Waits until the modification of `kind` of order `id` is recorded and the gateway has its
 * request (so it is in flight); returns its id (free it). */
static char *await_in_flight(struct world *w, long id, const char *kind)
{
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE order_id = '%ld' "
	         "AND kind = '%s'",
	         id, kind);
	world_await(w, sql, 1);
	snprintf(sql, sizeof(sql),
	         "SELECT modification_id FROM smartpay.modifications WHERE order_id = '%ld' "
	         "AND kind = '%s'",
	         id, kind);
	char *mid = pgtest_value(w->db, sql);
	for (int i = 0; i < 600 && simproc_request_count(w->sim, mid) == 0; i++)
		usleep(20000);
	ck_assert_msg(simproc_request_count(w->sim, mid) > 0, "%s %s never reached the gateway",
	              kind, mid);
	return mid;
}

/* Waits until `sql` counts nothing (world_await waits for at least a count). */
static void await_none(struct world *w, const char *sql)
{
	long long left = -1;
	for (int i = 0; i < 60000 / 50; i++) {
		left = world_count(w, sql);
		if (left == 0)
			return;
		usleep(50000);
	}
	daemonproc_print_log(&w->d);
	ck_abort_msg("%s: %lld left", sql, left);
}

/* Waits until the queued changes of order `id` are all looked at (deleted). */
static void await_looked_at(struct world *w, long id)
{
	char sql[128];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.queued_orders WHERE order_id = '%ld'", id);
	await_none(w, sql);
}

/* What `what` gives over the modifications of order `id` that match `where`. */
static long long mods_of(struct world *w, long id, const char *what, const char *where)
{
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT %s FROM smartpay.modifications WHERE order_id = '%ld' AND %s", what, id,
	         where);
	return world_count(w, sql);
}

/* Waits until `want` modifications of order `id` match `where`. */
static void await_mods(struct world *w, long id, const char *where, long long want)
{
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE order_id = '%ld' AND %s", id,
	         where);
	world_await(w, sql, want);
}

/* Asserts that modification `later` of order `id` was recorded after `earlier` finished. */
static void assert_after(struct world *w, long id, const char *earlier, const char *later)
{
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications a, smartpay.modifications b "
	         "WHERE a.order_id = '%ld' AND b.order_id = a.order_id AND a.kind = '%s' "
	         "AND b.kind = '%s' AND a.state = 'succeeded' AND b.created_at >= a.completed_at",
	         id, earlier, later);
	ck_assert_int_eq(world_count(w, sql), 1);
}

START_TEST(cancel_during_capture_goes_out_after_it)
{
	struct world w;
	world_up(&w, NULL);
	ck_assert(simproc_set_faults(w.sim, FOLLOW_LATENCY));
	long id = add_order(&w, "25.00", "shipped");
	daemonproc_start(&w.d, false);
	char *capture = await_in_flight(&w, id, "capture");
	/* the shop cancels while the capture is in flight: nothing can go yet (never a
	 * cancel before the capture's answer), the change is looked at and taken off */
	set_status(&w, id, "cancelled");
	await_looked_at(&w, id);
	/* the capture's answer: its order is looked at again, the cancel goes out as a
	 * cancel_or_refund of the captured transaction */
	await_mods(&w, id, "kind = 'cancel_or_refund' AND state = 'succeeded'", 1);
	assert_after(&w, id, "capture", "cancel_or_refund");
	/* the cancel was looked at while the capture was pending (what this test is about) */
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE modification_id = '%s' "
	         "AND follow_up",
	         capture);
	ck_assert_int_eq(world_count(&w, sql), 1);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "CAPTURE"), 1);
	free(capture);
	world_down(&w);
}
END_TEST

START_TEST(cancel_behind_refund_refunds_the_rest_after_it)
{
	struct world w;
	world_up(&w, NULL);
	long id = add_order(&w, "100.00", "shipped");
	daemonproc_start(&w.d, false);
	await_mods(&w, id, "kind = 'capture' AND state = 'succeeded'", 1);
	ck_assert(simproc_set_faults(w.sim, FOLLOW_LATENCY));
	char sql[512];
	snprintf(sql, sizeof(sql), "SELECT smartpay.request_refund('%ld', 30.00, 'first')", id);
	pgtest_exec(w.db, sql);
	char *refund = await_in_flight(&w, id, "refund");
	/* cancelled while the refund is in flight: the rest waits for its answer */
	set_status(&w, id, "cancelled");
	await_looked_at(&w, id);
	await_mods(&w, id, "kind = 'refund' AND state = 'succeeded'", 2);
	ck_assert_int_eq(mods_of(&w, id, "sum(amount_minor)", "kind = 'refund'"), 10000);
	/* the rest was recorded only after the first refund's answer */
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications a, smartpay.modifications b "
	         "WHERE a.modification_id = '%s' AND b.order_id = a.order_id AND b.kind = "
	         "'refund' AND b.modification_id <> a.modification_id "
	         "AND b.created_at >= a.completed_at AND b.amount_minor = 7000",
	         refund);
	ck_assert_int_eq(world_count(&w, sql), 1);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "REFUND"), 2);
	free(refund);
	world_down(&w);
}
END_TEST

START_TEST(refund_request_waits_behind_a_refund)
{
	struct world w;
	world_up(&w, NULL);
	long id = add_order(&w, "80.00", "shipped");
	daemonproc_start(&w.d, false);
	await_mods(&w, id, "kind = 'capture' AND state = 'succeeded'", 1);
	ck_assert(simproc_set_faults(w.sim, FOLLOW_LATENCY));
	char sql[512];
	snprintf(sql, sizeof(sql), "SELECT smartpay.request_refund('%ld', 30.00, 'first')", id);
	pgtest_exec(w.db, sql);
	char *first = await_in_flight(&w, id, "refund");
	/* the second request arrives while the first refund is in flight */
	snprintf(sql, sizeof(sql), "SELECT smartpay.request_refund('%ld', 20.00, 'second')", id);
	pgtest_exec(w.db, sql);
	await_mods(&w, id, "kind = 'refund' AND state = 'succeeded'", 2);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications a, smartpay.modifications b "
	         "WHERE a.modification_id = '%s' AND b.order_id = a.order_id AND b.kind = "
	         "'refund' AND b.amount_minor = 2000 AND b.created_at >= a.completed_at",
	         first);
	ck_assert_int_eq(world_count(&w, sql), 1);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.requests "
	                                 "WHERE modification_id IS NULL"),
	                 0);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "REFUND"), 2);
	free(first);
	world_down(&w);
}
END_TEST

START_TEST(restart_between_keeps_the_follow_up)
{
	struct world w;
	world_up(&w, NULL);
	ck_assert(simproc_set_faults(w.sim, FOLLOW_LATENCY));
	long id = add_order(&w, "40.00", "shipped");
	daemonproc_start(&w.d, false);
	char *capture = await_in_flight(&w, id, "capture");
	set_status(&w, id, "cancelled");
	/* the change is looked at while the capture is pending (the mark is committed with
	 * the change's deletion), then the daemon dies before the capture's answer */
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE modification_id = '%s' "
	         "AND state = 'pending' AND follow_up",
	         capture);
	world_await(&w, sql, 1);
	daemonproc_kill(&w.d);
	/* the restarted daemon's first scan finds the capture still pending (sent again, the
	 * answer takes the gateway's latency): only the follow-up brings the cancel */
	daemonproc_start(&w.d, false);
	await_mods(&w, id, "kind = 'cancel_or_refund' AND state = 'succeeded'", 1);
	assert_after(&w, id, "capture", "cancel_or_refund");
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "CAPTURE"), 1);
	free(capture);
	world_down(&w);
}
END_TEST

START_TEST(plain_capture_queues_no_follow_up)
{
	struct world w;
	world_up(&w, NULL);
	log_queued_changes(&w);
	world_add_orders(&w, 20, &(struct world_order){.status = "shipped"});
	long cancelled = add_order(&w, "15.00", "shipped");
	long delivered = add_order(&w, "16.00", "shipped");
	daemonproc_start(&w.d, false);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'",
	            22);
	await_none(&w, "SELECT (SELECT count(*) FROM smartpay.queued_orders) + "
	               "(SELECT count(*) FROM smartpay.order_change_chunks)");
	/* one queued change per order, the shop's: no capture queued its order again */
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM public.change_log"), 22);
	ck_assert_int_eq(world_count(&w, "SELECT count(DISTINCT order_id) FROM public.change_log"),
	                 22);

	/* cancelled after its capture: the cancel_or_refund comes from the shop's change
	 * alone, and its own outcome queues nothing either */
	set_status(&w, cancelled, "cancelled");
	await_mods(&w, cancelled, "kind = 'cancel_or_refund' AND state = 'succeeded'", 1);
	await_looked_at(&w, cancelled);
	ck_assert_int_eq(queued_for(&w, cancelled), 2);

	/* a change that calls for nothing, first after the capture: looked at once more
	 * (the capture finished with nobody asking), then never again */
	set_status(&w, delivered, "delivered");
	for (int i = 0; i < 1200 && queued_for(&w, delivered) < 3; i++)
		usleep(50000);
	await_looked_at(&w, delivered);
	usleep(1500000); /* three polls */
	ck_assert_int_eq(queued_for(&w, delivered), 3);
	set_status(&w, delivered, "returned");
	await_looked_at(&w, delivered);
	usleep(1500000);
	ck_assert_int_eq(queued_for(&w, delivered), 4);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.queued_orders"), 0);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "CAPTURE"), 22);
	world_down(&w);
}
END_TEST

START_TEST(upgrade_keeps_the_follow_up_of_rows_in_flight)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	const struct migrate_settings settings = {
	    .orders_relation = "public.orders",
	    .authorization_validity_ms = 120 * 3600 * INT64_C(1000),
	};
	bool mask[64];
	int applied = 0;
	char *err = NULL;
	size_t before = 0;
	while (before < sp_builtin_migration_count && sp_builtin_migrations[before].version < 17)
		before++;
	pgtest_exec_file(conn, "sql/example-orders.sql");
	ck_assert_msg(migrate_apply_configured(conn, sp_builtin_migrations, before, &settings, mask,
	                                       &applied, NULL, &err) == 0,
	              "%s", err);
	/* a capture in flight while the previous daemon ran: that daemon may have looked at
	 * a cancel of its order, counting on the outcome to queue the order again */
	static const char insert[] =
	    "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, kind, "
	    "amount_minor, currency, request_body, state, lease_owner, lease_generation, "
	    "lease_expires_at, deadline) VALUES (gen_random_uuid(), '%s', 'tx-%s', 'capture', "
	    "1000, 'EUR', '{}', 'pending', 'old', 1, now() + interval '1 minute', "
	    "now() + interval '3 days')";
	char sql[512];
	snprintf(sql, sizeof(sql), insert, "in-flight", "in-flight");
	pgtest_exec(conn, sql);
	ck_assert_msg(migrate_apply_configured(conn, sp_builtin_migrations,
	                                       sp_builtin_migration_count, &settings, mask,
	                                       &applied, NULL, &err) == 0,
	              "%s", err);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.modifications "
	                                  "WHERE order_id = 'in-flight' AND follow_up"),
	                 1);
	/* new rows start unmarked */
	snprintf(sql, sizeof(sql), insert, "new", "new");
	pgtest_exec(conn, sql);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.modifications "
	                                  "WHERE order_id = 'new' AND follow_up IS NULL"),
	                 1);
	PQfinish(conn);
	free(conninfo);
}
END_TEST

static Suite *follow_up_suite(void)
{
	Suite *s = suite_create("follow_up");
	TCase *tc = tcase_create("follow_up");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, cancel_during_capture_goes_out_after_it);
	tcase_add_test(tc, cancel_behind_refund_refunds_the_rest_after_it);
	tcase_add_test(tc, refund_request_waits_behind_a_refund);
	tcase_add_test(tc, restart_between_keeps_the_follow_up);
	tcase_add_test(tc, plain_capture_queues_no_follow_up);
	tcase_add_test(tc, upgrade_keeps_the_follow_up_of_rows_in_flight);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	pgtest_start();
	int status = testutil_run_suite(follow_up_suite(), CK_NORMAL);
	pgtest_stop();
	return status;
}
