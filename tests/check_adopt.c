/* Adopting a shop with history, end to end (real PostgreSQL, smartpay-sim, smartpayd and
 * smartpayctl): the baseline keeps history out of the daemon's hands and alerts, `adopt
 * --order` brings one order back, `preview` tells what the daemon then does without
 * writing anything, `rescan` finds what no trigger reported, and the queue of changed
 * orders carries changes made while no daemon listened. */
#include "autoconfig.h"

#include "pgtest.h"
#include "testutil.h"
#include "world.h"

#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* `smartpayctl --json preview` as a JSON document (json_object_put it). */
static json_object *preview(const struct world *w)
{
	struct testutil_run r = WORLD_CTL(w, 0, "--json", "preview");
	json_object *doc = json_tokener_parse(r.out);
	ck_assert_msg(doc != NULL, "preview printed no JSON: %s", r.out);
	testutil_run_free(&r);
	return doc;
}

/* The count of GROUP.KEY in a preview document. */
static long long preview_count(json_object *doc, const char *group, const char *key)
{
	json_object *g = json_object_object_get(doc, group);
	json_object *e = g ? json_object_object_get(g, key) : NULL;
	ck_assert_msg(e != NULL, "preview has no %s.%s", group, key);
	return json_object_get_int64(json_object_object_get(e, "count"));
}

/* Inserts an order and returns its id. `txn` NULL makes a transaction at the simulator
 * (one the gateway knows); `age` is how long ago it was authorized (an interval). */
static long add_order(struct world *w, const char *txn, const char *status, const char *age)
{
	char authorized_at[64];
	snprintf(authorized_at, sizeof(authorized_at), "now() - interval '%s'", age);
	const struct world_order o = {.txn = txn, .status = status, .authorized_at = authorized_at};
	return world_add_order(w, &o, NULL);
}

/* Waits until the queue of changed orders is empty (consumed by the daemon). */
static void await_queue_empty(struct world *w)
{
	long long left = -1;
	for (int i = 0; i < 60000 / 50; i++) {
		left = world_count(w, "SELECT (SELECT count(*) FROM smartpay.queued_orders) + "
		                      "(SELECT count(*) FROM smartpay.order_change_chunks)");
		if (left == 0)
			return;
		usleep(50000);
	}
	daemonproc_print_log(&w->d);
	ck_abort_msg("%lld orders left in smartpay.queued_orders", left);
}

/* History: delivered and cancelled orders long past their deadline, one cancelled 6 days
 * ago (its authorization expired a day ago: an authorization_expired alert without a
 * baseline), and one shipped an hour before adoption. Every one has a transaction the
 * gateway knows, so anything sent for them would show. */
static void add_history(struct world *w, long *shipped_recently)
{
	for (int i = 0; i < 5; i++)
		add_order(w, NULL, "delivered", "40 days");
	for (int i = 0; i < 3; i++)
		add_order(w, NULL, "cancelled", "90 days");
	add_order(w, NULL, "cancelled", "6 days");
	add_order(w, NULL, "shipped", "7 days");
	*shipped_recently = add_order(w, NULL, "shipped", "1 hour");
}

START_TEST(history_is_never_acted_on_or_alerted)
{
	struct world w;
	world_up_with(&w, &(struct world_opts){.unmigrated = true}, NULL);
	long recent = 0;
	add_history(&w, &recent);
	long open = add_order(&w, NULL, "authorized", "2 hours");
	struct testutil_run r = WORLD_CTL(&w, 0, "migrate");
	testutil_run_free(&r);

	/* no baseline: the daemon does not act, and says what to run */
	daemonproc_start(&w.d, false);
	world_await_log(&w, "smartpayctl preview", 1);
	ck_assert(daemonproc_log_contains(&w.d, "smartpayctl adopt"));
	json_object *doc = preview(&w);
	ck_assert(!json_object_get_boolean(json_object_object_get(doc, "adopted")));
	ck_assert_int_eq(json_object_get_int64(json_object_object_get(doc, "history")), 11);
	ck_assert_int_eq(preview_count(doc, "send", "capture"), 0);
	ck_assert_int_eq(preview_count(doc, "send", "cancel"), 0);
	ck_assert_int_eq(preview_count(doc, "alerts", "authorization_expired"), 0);
	json_object_put(doc);

	r = WORLD_CTL(&w, 0, "adopt");
	ck_assert_ptr_nonnull(strstr(r.out, "11 orders recorded as history"));
	testutil_run_free(&r);
	r = WORLD_CTL(&w, 1, "adopt");
	ck_assert_ptr_nonnull(strstr(r.err, "adopted at"));
	testutil_run_free(&r);

	/* the waiting daemon starts working at its next poll: a new shipment is captured */
	long fresh = add_order(&w, NULL, "shipped", "1 minute");
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE order_id = '%ld' "
	         "AND state = 'succeeded'",
	         fresh);
	world_await(&w, sql, 1);
	/* the open order is not history: shipped now, it is captured too */
	snprintf(sql, sizeof(sql), "UPDATE public.orders SET status = 'shipped' WHERE id = %ld",
	         open);
	pgtest_exec(w.db, sql);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'", 2);
	/* several polls and sweeps later, history has no ledger row and no alert */
	sleep(2);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.modifications"), 2);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts"), 0);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "CAPTURE"), 2);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "CANCELLATION"), 0);

	/* one order brought back in is acted on */
	char id[32];
	snprintf(id, sizeof(id), "%ld", recent);
	r = WORLD_CTL(&w, 0, "adopt", "--order", id);
	ck_assert_ptr_nonnull(strstr(r.out, "no longer history"));
	testutil_run_free(&r);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE order_id = '%ld' "
	         "AND kind = 'capture' AND state = 'succeeded'",
	         recent);
	world_await(&w, sql, 1);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "CAPTURE"), 3);
	world_down(&w);
}
END_TEST

START_TEST(preview_tells_what_the_daemon_then_does)
{
	struct world w;
	world_up(&w, NULL);
	add_order(&w, NULL, "shipped", "1 hour");
	add_order(&w, NULL, "shipped", "2 hours");
	add_order(&w, "", "shipped", "1 hour");         /* no transaction id: refused locally */
	add_order(&w, NULL, "cancelled", "3 hours");    /* a cancel */
	add_order(&w, NULL, "authorized", "119 hours"); /* expires within 4h */
	add_order(&w, NULL, "authorized", "1 hour");    /* nothing to do */

	json_object *doc = preview(&w);
	long long captures = preview_count(doc, "send", "capture");
	long long cancels = preview_count(doc, "send", "cancel");
	long long refused = preview_count(doc, "refuse_locally", "capture");
	long long order_refused = preview_count(doc, "alerts", "order_refused");
	long long expiring = preview_count(doc, "alerts", "authorization_expiring");
	ck_assert_int_eq(captures, 2);
	ck_assert_int_eq(cancels, 1);
	ck_assert_int_eq(refused, 1);
	ck_assert_int_eq(preview_count(doc, "send", "cancel_or_refund"), 0);
	ck_assert_int_eq(preview_count(doc, "send", "refund"), 0);
	ck_assert_int_eq(order_refused, 1);
	ck_assert_int_eq(expiring, 1);
	json_object_put(doc);
	struct testutil_run r = WORLD_CTL(&w, 0, "preview");
	ck_assert_ptr_nonnull(strstr(r.out, "capture"));
	testutil_run_free(&r);
	/* it wrote nothing and sent nothing */
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.modifications"), 0);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts"), 0);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, NULL), 0);

	/* the daemon does what it said */
	daemonproc_start(&w.d, false);
	world_await(&w,
	            "SELECT count(*) FROM smartpay.modifications WHERE kind = 'capture' "
	            "AND state = 'succeeded'",
	            captures);
	world_await(&w,
	            "SELECT count(*) FROM smartpay.modifications WHERE kind = 'cancel' "
	            "AND state = 'succeeded'",
	            cancels);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'refused'",
	            refused);
	world_await(&w,
	            "SELECT count(*) FROM smartpay.alerts WHERE kind = 'authorization_expiring'",
	            expiring);
	world_await(&w, "SELECT count(*) FROM smartpay.alerts WHERE kind = 'order_refused'",
	            order_refused);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.modifications"),
	                 captures + cancels + refused);
	/* and afterwards there is nothing left to do */
	doc = preview(&w);
	ck_assert_int_eq(preview_count(doc, "send", "capture"), 0);
	ck_assert_int_eq(preview_count(doc, "alerts", "authorization_expiring"), 0);
	json_object_put(doc);
	world_down(&w);
}
END_TEST

/* preview's alerts look back as far as the sweep of lib/alerts.c does ([alerts]
 * expired_lookback), and it says how far. Validity is 120h: an order authorized 7 days
 * ago expired 2 days ago, one authorized 9 days ago 4 days ago. */
START_TEST(preview_looks_back_as_configured)
{
	struct world w;
	world_up(&w, "[alerts]\nexpired_lookback = 3d\n");
	add_order(&w, "tx-expired-2d", "authorized", "7 days");
	add_order(&w, "tx-expired-4d", "authorized", "9 days");

	json_object *doc = preview(&w);
	ck_assert_int_eq(preview_count(doc, "alerts", "authorization_expired"), 1);
	ck_assert_int_eq(
	    json_object_get_int64(json_object_object_get(doc, "expired_lookback_seconds")),
	    3 * 86400);
	json_object_put(doc);
	struct testutil_run r = WORLD_CTL(&w, 0, "preview");
	ck_assert_ptr_nonnull(
	    strstr(r.out, "alerts (authorizations expired within 3d, [alerts] expired_lookback):"));
	testutil_run_free(&r);

	/* a longer look-back takes in the older one, and the daemon's sweep agrees */
	world_conf_replace(&w.d, "expired_lookback = 3d", "expired_lookback = 5d");
	doc = preview(&w);
	ck_assert_int_eq(preview_count(doc, "alerts", "authorization_expired"), 2);
	ck_assert_int_eq(
	    json_object_get_int64(json_object_object_get(doc, "expired_lookback_seconds")),
	    5 * 86400);
	json_object_put(doc);
	daemonproc_start(&w.d, false);
	world_await(&w, "SELECT count(*) FROM smartpay.alerts WHERE kind = 'authorization_expired'",
	            2);
	world_down(&w);
}
END_TEST

/* A world whose daemon polls only hourly (the trigger's notifications wake it), with one
 * shipped order captured. */
static void up_with_one_captured(struct world *w)
{
	world_up(w, "[daemon]\npoll_interval = 1h\n");
	daemonproc_start(&w->d, false);
	long first = add_order(w, NULL, "shipped", "1 hour");
	char sql[160];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE order_id = '%ld' "
	         "AND state = 'succeeded'",
	         first);
	world_await(w, sql, 1);
}

START_TEST(rescan_finds_orders_no_trigger_reported)
{
	struct world w;
	up_with_one_captured(&w);
	/* changes the trigger never saw (a bulk load with triggers off) */
	pgtest_exec(w.db, "ALTER TABLE public.orders DISABLE TRIGGER smartpay_orders_notify, "
	                  "DISABLE TRIGGER smartpay_orders_notify_insert");
	for (int i = 0; i < 3; i++)
		add_order(&w, NULL, "shipped", "1 hour");
	pgtest_exec(w.db, "ALTER TABLE public.orders ENABLE TRIGGER smartpay_orders_notify, "
	                  "ENABLE TRIGGER smartpay_orders_notify_insert");
	sleep(1);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.modifications"), 1);

	struct testutil_run r = WORLD_CTL(&w, 0, "rescan");
	ck_assert_ptr_nonnull(strstr(r.out, "queued 3 order(s)"));
	testutil_run_free(&r);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'", 4);
	await_queue_empty(&w);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "CAPTURE"), 4);
	world_down(&w);
}
END_TEST

START_TEST(changes_made_while_the_daemon_is_down_are_queued)
{
	struct world w;
	up_with_one_captured(&w);
	await_queue_empty(&w); /* the capture's follow-up is looked at too */
	ck_assert_int_eq(daemonproc_stop(&w.d), 0);

	/* nobody listens to these notifications */
	for (int i = 0; i < 4; i++)
		add_order(&w, NULL, "shipped", "1 hour");
	ck_assert_int_eq(
	    world_count(&w, "SELECT count(DISTINCT order_id) FROM smartpay.queued_orders"), 4);
	daemonproc_start(&w.d, false);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'", 5);
	/* the queue is consumed with the intents */
	await_queue_empty(&w);
	world_down(&w);
}
END_TEST

/* The daemon killed while the shop's chunks of shipped orders are partly looked at:
 * what it took was taken with the intents it recorded, the rest is still queued, and
 * after the restart every order is captured once and nothing is left queued. */
START_TEST(a_daemon_killed_mid_burst_loses_no_queued_order)
{
	struct world w;
	world_up(&w, NULL);
	world_add_orders(&w, 600, &(struct world_order){.status = "authorized"});
	pgtest_exec(w.db, "DELETE FROM smartpay.order_change_chunks");
	/* one statement: chunks of 256, 256 and 88 */
	pgtest_exec(w.db, "UPDATE public.orders SET status = 'shipped'");
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.order_change_chunks"), 3);
	/* 64 in flight for 500 ms each: about ten rounds */
	ck_assert(simproc_set_faults(w.sim, "{\"latency_ms\": 500}"));
	daemonproc_start(&w.d, false);
	world_await_at_least(&w,
	                     "SELECT count(*) FROM smartpay.modifications WHERE state = "
	                     "'succeeded'",
	                     64);
	daemonproc_kill(&w.d);
	long long queued = world_count(&w, "SELECT count(*) FROM smartpay.queued_orders");
	ck_assert_msg(queued > 0 && queued < 600, "%lld orders queued at the kill", queued);
	/* an order is either still queued or has its intent, never neither */
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM public.orders o WHERE NOT EXISTS "
	                                 "(SELECT 1 FROM smartpay.queued_orders q WHERE "
	                                 "q.order_id = o.id::text) AND NOT EXISTS (SELECT 1 FROM "
	                                 "smartpay.modifications m WHERE m.order_id = o.id::text)"),
	                 0);
	ck_assert(simproc_clear_faults(w.sim));
	daemonproc_start(&w.d, false);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'",
	            600);
	await_queue_empty(&w);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "CAPTURE"), 600);
	world_down(&w);
}
END_TEST

static Suite *adopt_suite(void)
{
	Suite *s = suite_create("adopt");
	TCase *tc = tcase_create("adopt");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, history_is_never_acted_on_or_alerted);
	tcase_add_test(tc, preview_tells_what_the_daemon_then_does);
	tcase_add_test(tc, preview_looks_back_as_configured);
	tcase_add_test(tc, rescan_finds_orders_no_trigger_reported);
	tcase_add_test(tc, changes_made_while_the_daemon_is_down_are_queued);
	tcase_add_test(tc, a_daemon_killed_mid_burst_loses_no_queued_order);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	pgtest_start();
	int status = testutil_run_suite(adopt_suite(), CK_NORMAL);
	pgtest_stop();
	return status;
}
