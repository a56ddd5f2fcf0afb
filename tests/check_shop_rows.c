/* The shop's data as it comes: bad rows among good ones in a view over text columns,
 * orders that flip back to shipped after a cancel, transaction ids that change, cancels
 * after partial refunds, refund requests written straight into smartpay.requests. The
 * real daemon, a private PostgreSQL and the real smartpay-sim; the assertions are on the
 * ledger, the alerts, the log and the simulator's effects. */
#include "autoconfig.h"

#include "pgtest.h"
#include "testutil.h"
#include "world.h"

#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs `smartpayd --once`, which must finish everything and exit 0; its log explains
 * a failure. */
static void run_once(struct world *w)
{
	/* the previous run's session may still hold the instance lock for a moment after
	 * the process exited (key class 0x53504431, lib/store.c) */
	wait_for_count(w->db,
	               "SELECT (count(*) = 0)::int FROM pg_locks WHERE locktype = 'advisory' "
	               "AND classid = 1397769265",
	               1, 10000);
	int rc = daemonproc_run_once(&w->d);
	if (rc != 0)
		daemonproc_print_log(&w->d);
	ck_assert_int_eq(rc, 0);
}

/* Runs `sql` with parameters; it must succeed. Returns the first value of the first row
 * (malloc'd) or NULL. */
static char *exec_params(struct world *w, const char *sql, int n, const char *const *p)
{
	PGresult *r = PQexecParams(w->db, sql, n, NULL, p, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK,
	              "%s: %s", sql, PQerrorMessage(w->db));
	char *v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)
	              ? strdup(PQgetvalue(r, 0, 0))
	              : NULL;
	PQclear(r);
	return v;
}

/* A number from a query with one text parameter. */
static long long count1(struct world *w, const char *sql, const char *param)
{
	const char *p[] = {param};
	char *v = exec_params(w, sql, 1, p);
	ck_assert_msg(v != NULL, "%s ($1 = %s): no value", sql, param);
	long long n = strtoll(v, NULL, 10);
	free(v);
	return n;
}

/* Creates an authorized transaction of `amount` EUR at the simulator; malloc'd id. */
static char *new_txn(struct world *w, const char *amount)
{
	char *txn = simproc_create_txn(w->sim, amount, "EUR");
	ck_assert_ptr_nonnull(txn);
	return txn;
}

/* An order of public.orders for a new transaction; returns its id (malloc'd) and, when
 * `txn_out` is not NULL, the transaction id (malloc'd). */
static char *add_order(struct world *w, const char *amount, const char *status, char **txn_out)
{
	struct world_order o = {.amount = amount, .status = status};
	char *id = NULL;
	ck_assert_int_ge(asprintf(&id, "%ld", world_add_order(w, &o, txn_out)), 0);
	return id;
}

/* Sets an order's status. */
static void set_status(struct world *w, const char *id, const char *status)
{
	const char *p[] = {status, id};
	free(exec_params(w, "UPDATE public.orders SET status = $1 WHERE id = $2::bigint", 2, p));
}

/* The sum of the simulator's effects of `type` on a transaction, in cents. */
static long effect_cents(struct world *w, const char *txn, const char *type)
{
	json_object *ledger = simproc_ledger(w->sim);
	ck_assert_ptr_nonnull(ledger);
	json_object *effects = json_object_object_get(ledger, "effects");
	long cents = 0;
	for (size_t i = 0; i < json_object_array_length(effects); i++) {
		json_object *e = json_object_array_get_idx(effects, i);
		const char *t = json_object_get_string(json_object_object_get(e, "type"));
		const char *x = json_object_get_string(json_object_object_get(e, "transactionId"));
		const char *a = json_object_get_string(json_object_object_get(e, "amount"));
		long major = 0, minor = 0;
		if (strcmp(t, type) == 0 && strcmp(x, txn) == 0) {
			ck_assert_int_eq(sscanf(a, "%ld.%ld", &major, &minor), 2);
			cents += major * 100 + minor;
		}
	}
	json_object_put(ledger);
	return cents;
}

/* The shop's own table has text and varchar columns; the daemon reads a view over it
 * whose time columns are text (authorized_at) and timestamptz (the expiry). */
static const char shop_schema[] =
    "CREATE TABLE public.shop_rows (ref text PRIMARY KEY, state varchar(20), txn text, "
    "total text, cur text, partial numeric, paid_at text, expires timestamptz);"
    "CREATE VIEW public.shop_view AS SELECT ref AS id, state AS status, "
    "txn AS smartpay_transaction_id, total AS amount, cur AS currency, "
    "partial AS capture_amount, paid_at AS authorized_at, "
    "expires AS authorization_expires_at FROM public.shop_rows;";

/* One row of shop_rows. `txn` "sim" gets a fresh simulator transaction. */
struct shop_row {
	const char *ref, *state, *txn, *total, *cur, *partial, *paid_at, *expires;
	const char *reason; /* NULL: a good row; else the start of its refusal's reason */
};

/* A bad row is recorded once as refused, with its reason and an order_refused alert
 * naming its modification; nothing of it is sent. */
static void assert_refused(struct world *w, const struct shop_row *row)
{
	const char *p[] = {row->ref};
	PGresult *r = PQexecParams(w->db,
	                           "SELECT m.state, m.reason, m.request_body IS NULL, "
	                           "(SELECT count(*) FROM smartpay.alerts a WHERE a.kind = "
	                           "'order_refused' AND a.modification_id = m.modification_id), "
	                           "m.modification_id::text FROM smartpay.modifications m "
	                           "WHERE m.order_id = $1",
	                           1, NULL, p, NULL, NULL, 0);
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	ck_assert_msg(PQntuples(r) == 1, "order %s: %d modifications", row->ref, PQntuples(r));
	ck_assert_str_eq(PQgetvalue(r, 0, 0), "refused");
	const char *reason = PQgetvalue(r, 0, 1);
	ck_assert_msg(strncmp(reason, row->reason, strlen(row->reason)) == 0,
	              "order %s: reason '%s', want '%s...'", row->ref, reason, row->reason);
	ck_assert_str_eq(PQgetvalue(r, 0, 2), "t");
	ck_assert_str_eq(PQgetvalue(r, 0, 3), "1");
	ck_assert_int_eq(simproc_request_count(w->sim, PQgetvalue(r, 0, 4)), 0);
	PQclear(r);
}

START_TEST(bad_rows_in_a_view_refuse_only_themselves)
{
	struct world w;
	/* small batches: good and bad rows share each claim */
	world_up(&w, "[database]\norders_relation = public.shop_view\n[daemon]\nbatch_size = 3\n");
	pgtest_exec(w.db, shop_schema);
	char long_txn[5001];
	memset(long_txn, 'x', sizeof(long_txn) - 1);
	long_txn[sizeof(long_txn) - 1] = '\0';
	/* paid_at: "now" a recent time, "old" 100 h ago (their deadlines come first) */
	const struct shop_row rows[] = {
	    {"good-1", "shipped", "sim", "10.00", "EUR", NULL, "now", NULL, NULL},
	    {"good-2", "shipped", "sim", "10.00", "EUR", "4.00", "now", NULL, NULL},
	    {"good-3 \xc3\xbc \"q\" \\ \xe2\x82\xac", "shipped", "sim", "10.00", "EUR", NULL, "now",
	     NULL, NULL},
	    {"good-4", "shipped", "sim", "10", "EUR", NULL, NULL, "+24h", NULL},
	    {"good-5", "cancelled", "sim", "10.00", "EUR", NULL, "now", NULL, NULL},
	    {"bad-infinity", "shipped", "sim", "10.00", "EUR", NULL, "infinity", NULL,
	     "authorized_at 'infinity' is not a time"},
	    {"bad-minus-infinity", "shipped", "sim", "10.00", "EUR", NULL, "-infinity", NULL,
	     "authorized_at '-infinity' is not a time"},
	    {"bad-no-time", "shipped", "sim", "10.00", "EUR", NULL, NULL, NULL,
	     "authorized_at and authorization_expires_at are both null"},
	    {"bad-expiry", "shipped", "sim", "10.00", "EUR", NULL, "now", "-infinity",
	     "authorization_expires_at '-infinity' is not a time"},
	    {"bad-time-text", "shipped", "sim", "10.00", "EUR", NULL, "when it arrives", NULL,
	     "authorized_at 'when it arrives' is not a time"},
	    {"bad-huge", "shipped", "sim", "1000000000000000000000000000000", "EUR", NULL, "old",
	     NULL, "invalid amount 1000000000000000000000000000000: more than 18"},
	    {"bad-huge-capture", "shipped", "sim", "10.00", "EUR", "1e30", "old", NULL,
	     "invalid capture_amount 1000000000000000000000000000000: more than 18"},
	    {"bad-negative", "shipped", "sim", "-5.00", "EUR", NULL, "old", NULL,
	     "invalid amount -5.00: negative amount"},
	    {"bad-abc", "shipped", "sim", "abc", "EUR", NULL, "old", NULL,
	     "invalid amount abc: not a decimal number"},
	    {"bad-euro", "shipped", "sim", "10.00", "EURO", NULL, "old", NULL,
	     "unknown currency 'EURO'"},
	    {"bad-eu", "shipped", "sim", "10.00", "eu", NULL, "old", NULL, "unknown currency 'eu'"},
	    {"bad-no-currency", "shipped", "sim", "10.00", NULL, NULL, "old", NULL,
	     "missing currency"},
	    {"bad-no-txn", "shipped", NULL, "10.00", "EUR", NULL, "old", NULL,
	     "missing smartpay_transaction_id"},
	    {"bad-empty-txn", "shipped", "", "10.00", "EUR", NULL, "old", NULL,
	     "missing smartpay_transaction_id"},
	    {"bad-long-txn", "shipped", long_txn, "10.00", "EUR", NULL, "old", NULL,
	     "smartpay_transaction_id 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' is not a "
	     "SmartPay transaction id"},
	    {"bad-odd-txn", "shipped", "tx\x01\"\xc3\xa9", "10.00", "EUR", NULL, "old", NULL,
	     "smartpay_transaction_id 'tx?\"?"
	     "?' is not a SmartPay transaction id"},
	    {"bad-cancel", "cancelled", "sim", "abc", "EUR", NULL, "old", NULL,
	     "invalid amount abc: not a decimal number"},
	    {"no-status", NULL, "sim", "10.00", "EUR", NULL, "now", NULL, NULL},
	};
	const size_t nrows = sizeof(rows) / sizeof(rows[0]);
	char *txns[sizeof(rows) / sizeof(rows[0])];
	size_t ngood = 0, nbad = 0;
	for (size_t i = 0; i < nrows; i++) {
		const struct shop_row *row = &rows[i];
		txns[i] = row->txn && strcmp(row->txn, "sim") == 0 ? new_txn(&w, "10.00") : NULL;
		const char *p[] = {row->ref,     row->state,  txns[i] ? txns[i] : row->txn,
		                   row->total,   row->cur,    row->partial,
		                   row->paid_at, row->expires};
		free(exec_params(
		    &w,
		    "INSERT INTO public.shop_rows VALUES ($1, $2, $3, $4, $5, $6, "
		    "CASE $7::text WHEN 'now' THEN (now() - interval '1 hour')::text "
		    "WHEN 'old' THEN (now() - interval '100 hours')::text ELSE $7::text "
		    "END, CASE $8::text WHEN '+24h' THEN now() + interval '24 hours' "
		    "ELSE $8::text::timestamptz END)",
		    8, p));
		if (row->reason)
			nbad++;
		else if (row->state)
			ngood++;
	}

	run_once(&w);
	/* every good row has exactly its effect */
	json_object *ledger = simproc_ledger(w.sim);
	ck_assert_int_eq(simproc_ledger_count(ledger, NULL, "CAPTURE"), 4);
	ck_assert_int_eq(simproc_ledger_count(ledger, NULL, "CANCELLATION"), 1);
	ck_assert_int_eq(simproc_ledger_count(ledger, NULL, "REFUND"), 0);
	for (size_t i = 0; i < nrows; i++) {
		if (rows[i].reason == NULL && rows[i].state && txns[i])
			ck_assert_int_eq(simproc_ledger_count(ledger, txns[i], NULL), 1);
		else if (txns[i])
			ck_assert_int_eq(simproc_ledger_count(ledger, txns[i], NULL), 0);
	}
	json_object_put(ledger);
	ck_assert_int_eq(pgtest_int(w.db, "SELECT count(*) FROM smartpay.modifications "
	                                  "WHERE state = 'succeeded'"),
	                 (long long)ngood);
	ck_assert_int_eq(
	    count1(&w, "SELECT amount_minor FROM smartpay.modifications WHERE order_id = $1",
	           "good-2"),
	    400);
	/* every bad one is refused on its own, with its reason and an alert */
	for (size_t i = 0; i < nrows; i++)
		if (rows[i].reason)
			assert_refused(&w, &rows[i]);
	ck_assert_int_eq(count1(&w,
	                        "SELECT count(*) FROM smartpay.modifications WHERE order_id = $1",
	                        "no-status"),
	                 0);
	ck_assert_int_eq(world_log_count(&w, "event=order_refused"), (int)nbad);

	/* recorded once: later scans do not offer them again */
	run_once(&w);
	ck_assert_int_eq(pgtest_int(w.db, "SELECT count(*) FROM smartpay.modifications"),
	                 (long long)(ngood + nbad));
	ck_assert_int_eq(pgtest_int(w.db, "SELECT count(*) FROM smartpay.alerts WHERE kind = "
	                                  "'order_refused'"),
	                 (long long)nbad);
	ck_assert_int_eq(world_log_count(&w, "event=order_refused"), (int)nbad);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, NULL), 5);
	for (size_t i = 0; i < nrows; i++)
		free(txns[i]);
	world_down(&w);
}
END_TEST

/* The expiry sweep reads the same relation: rows whose times are infinite or not times
 * leave it working for the others. */
START_TEST(expiry_alerts_read_past_bad_times)
{
	struct world w;
	world_up(&w, "[database]\norders_relation = public.shop_view\n");
	pgtest_exec(w.db, shop_schema);
	char *t1 = new_txn(&w, "10.00"), *t2 = new_txn(&w, "10.00"), *t3 = new_txn(&w, "10.00"),
	     *t4 = new_txn(&w, "10.00");
	const char *p[] = {t1, t2, t3, t4};
	free(
	    exec_params(&w,
	                "INSERT INTO public.shop_rows VALUES "
	                "('inf', 'authorized', $1, '10.00', 'EUR', NULL, 'infinity', NULL), "
	                "('text', 'authorized', $2, '10.00', 'EUR', NULL, 'garbage', NULL), "
	                "('expiry-inf', 'authorized', $3, '10.00', 'EUR', NULL, NULL, 'infinity'), "
	                "('soon', 'authorized', $4, '10.00', 'EUR', NULL, NULL, "
	                "now() + interval '2 hours')",
	                4, p));
	daemonproc_start(&w.d, false);
	long long got = daemonproc_wait_count(&w.d, w.db,
	                                      "SELECT count(*) FROM smartpay.alerts WHERE kind = "
	                                      "'authorization_expiring' AND order_id = 'soon'",
	                                      1, 60000);
	ck_assert_int_eq(got, 1);
	ck_assert_int_eq(daemonproc_stop(&w.d), 0);
	ck_assert_int_eq(pgtest_int(w.db, "SELECT count(*) FROM smartpay.alerts WHERE order_id "
	                                  "<> 'soon'"),
	                 0);
	free(t1);
	free(t2);
	free(t3);
	free(t4);
	world_down(&w);
}
END_TEST

/* Inserts a cancel of an order straight into the ledger, in `state`, leased to another
 * daemon for an hour (so this one leaves a pending one alone). */
static void ledger_cancel(struct world *w, const char *order_id, const char *txn, const char *state)
{
	const char *p[] = {order_id, txn, state};
	free(exec_params(
	    w,
	    "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, kind, "
	    "request_body, state, next_attempt_at, lease_owner, lease_generation, "
	    "lease_expires_at) VALUES (gen_random_uuid(), $1, $2, 'cancel', '{}', $3, "
	    "now() + interval '1 hour', CASE WHEN $3 = 'pending' THEN 'elsewhere' END, 1, "
	    "CASE WHEN $3 = 'pending' THEN now() + interval '1 hour' END)",
	    3, p));
}

/* An order cancelled first and shipped afterwards is never captured: its cancel
 * succeeded, is pending or is in doubt. The capture is refused locally and alerted. */
START_TEST(capture_never_after_a_cancel)
{
	struct world w;
	world_up(&w, NULL);
	char *t_done, *t_pending, *t_doubt, *t_good;
	char *done = add_order(&w, "10.00", "cancelled", &t_done);
	run_once(&w);
	ck_assert_int_eq(simproc_count_effects(w.sim, t_done, "CANCELLATION"), 1);
	char *pending = add_order(&w, "10.00", "authorized", &t_pending);
	char *doubt = add_order(&w, "10.00", "authorized", &t_doubt);
	ledger_cancel(&w, pending, t_pending, "pending");
	ledger_cancel(&w, doubt, t_doubt, "needs_attention");
	/* the shop flips them back to shipped, beside an order shipped normally */
	set_status(&w, done, "shipped");
	set_status(&w, pending, "shipped");
	set_status(&w, doubt, "shipped");
	char *good = add_order(&w, "10.00", "shipped", &t_good);
	run_once(&w);

	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "CAPTURE"), 1);
	ck_assert_int_eq(simproc_count_effects(w.sim, t_good, "CAPTURE"), 1);
	const char *cancelled[] = {done, pending, doubt};
	const char *const how[] = {"succeeded)", "is pending)", "is in doubt"};
	for (size_t i = 0; i < 3; i++) {
		const char *p[] = {cancelled[i]};
		char *reason =
		    exec_params(&w,
		                "SELECT reason FROM smartpay.modifications WHERE "
		                "order_id = $1 AND kind = 'capture' AND state = 'refused' "
		                "AND request_body IS NULL",
		                1, p);
		ck_assert_msg(reason != NULL, "order %s: no refused capture", cancelled[i]);
		ck_assert_ptr_nonnull(strstr(reason, "cancelled"));
		ck_assert_msg(strstr(reason, how[i]) != NULL, "reason: %s", reason);
		free(reason);
		ck_assert_int_eq(count1(&w,
		                        "SELECT count(*) FROM smartpay.alerts a JOIN "
		                        "smartpay.modifications m USING (modification_id) WHERE "
		                        "a.kind = 'order_refused' AND m.order_id = $1 AND "
		                        "m.kind = 'capture'",
		                        cancelled[i]),
		                 1);
	}
	free(done);
	free(pending);
	free(doubt);
	free(good);
	free(t_done);
	free(t_pending);
	free(t_doubt);
	free(t_good);
	world_down(&w);
}
END_TEST

/* The shop overwrites the order's transaction id after the capture: the cancel and the
 * refund still go to the transaction that was captured. */
START_TEST(cancels_and_refunds_go_to_the_captured_transaction)
{
	struct world w;
	world_up(&w, NULL);
	char *t_cancel, *t_refund;
	char *cancel = add_order(&w, "20.00", "shipped", &t_cancel);
	char *refund = add_order(&w, "30.00", "shipped", &t_refund);
	run_once(&w);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "CAPTURE"), 2);
	char *other1 = new_txn(&w, "20.00"), *other2 = new_txn(&w, "30.00");
	const char *p1[] = {other1, cancel};
	free(exec_params(&w,
	                 "UPDATE public.orders SET smartpay_transaction_id = $1, "
	                 "status = 'cancelled' WHERE id = $2::bigint",
	                 2, p1));
	const char *p2[] = {other2, refund};
	free(exec_params(&w,
	                 "UPDATE public.orders SET smartpay_transaction_id = $1 "
	                 "WHERE id = $2::bigint",
	                 2, p2));
	const char *p3[] = {refund};
	free(exec_params(&w, "SELECT smartpay.request_refund($1, 5.00)", 1, p3));
	run_once(&w);

	ck_assert_int_eq(effect_cents(&w, t_cancel, "REFUND"), 2000);
	ck_assert_int_eq(effect_cents(&w, t_refund, "REFUND"), 500);
	ck_assert_int_eq(simproc_count_effects(w.sim, other1, NULL), 0);
	ck_assert_int_eq(simproc_count_effects(w.sim, other2, NULL), 0);
	ck_assert_int_eq(count1(&w,
	                        "SELECT count(*) FROM smartpay.modifications WHERE order_id = $1 "
	                        "AND kind = 'cancel_or_refund' AND state = 'succeeded'",
	                        cancel),
	                 1);
	free(cancel);
	free(refund);
	free(t_cancel);
	free(t_refund);
	free(other1);
	free(other2);
	world_down(&w);
}
END_TEST

/* A cancelled order with partial refunds gets a refund of exactly the rest, never a
 * cancelOrRefund; a fully refunded one gets nothing. */
START_TEST(cancel_after_partial_refunds_refunds_the_rest)
{
	struct world w;
	world_up(&w, NULL);
	char *t_part, *t_full, *t_req;
	char *part = add_order(&w, "50.00", "shipped", &t_part);
	char *full = add_order(&w, "40.00", "shipped", &t_full);
	char *req = add_order(&w, "30.00", "shipped", &t_req);
	run_once(&w);
	const char *p1[] = {part};
	free(exec_params(&w, "SELECT smartpay.request_refund($1, 20.00, 'partial')", 1, p1));
	const char *p2[] = {full};
	free(exec_params(&w, "SELECT smartpay.request_refund($1, 40.00, 'all of it')", 1, p2));
	const char *p3[] = {req};
	free(exec_params(&w, "SELECT smartpay.request_refund($1, 10.00, 'partial')", 1, p3));
	run_once(&w);
	ck_assert_int_eq(effect_cents(&w, t_part, "REFUND"), 2000);
	ck_assert_int_eq(effect_cents(&w, t_full, "REFUND"), 4000);
	ck_assert_int_eq(effect_cents(&w, t_req, "REFUND"), 1000);

	/* the shop cancels two of them, and asks for a cancelOrRefund of the third */
	set_status(&w, part, "cancelled");
	set_status(&w, full, "cancelled");
	free(exec_params(&w, "SELECT smartpay.request_cancel_or_refund($1, 'returned')", 1, p3));
	run_once(&w);
	ck_assert_int_eq(effect_cents(&w, t_part, "REFUND"), 5000);
	ck_assert_int_eq(effect_cents(&w, t_full, "REFUND"), 4000);
	ck_assert_int_eq(effect_cents(&w, t_req, "REFUND"), 3000);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "CANCELLATION"), 0);
	static const char settled[] =
	    "SELECT amount_minor FROM smartpay.modifications WHERE order_id = $1 "
	    "AND kind = 'refund' AND settles_cancel AND state = 'succeeded'";
	ck_assert_int_eq(count1(&w, settled, part), 3000);
	ck_assert_int_eq(count1(&w, settled, req), 2000);
	ck_assert_int_eq(count1(&w,
	                        "SELECT count(*) FROM smartpay.modifications WHERE kind = "
	                        "'cancel_or_refund' OR order_id = $1",
	                        full),
	                 2);
	/* and nothing more on later scans */
	run_once(&w);
	ck_assert_int_eq(pgtest_int(w.db, "SELECT count(*) FROM smartpay.modifications"), 8);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "REFUND"), 5);
	free(part);
	free(full);
	free(req);
	free(t_part);
	free(t_full);
	free(t_req);
	world_down(&w);
}
END_TEST

/* Refund requests written straight into smartpay.requests (not through
 * smartpay.request_refund) are checked before they are sent: within what remains
 * captured, in the captured currency, of a captured order. */
START_TEST(refund_requests_are_rechecked_before_sending)
{
	struct world w;
	world_up(&w, NULL);
	char *t_cap, *t_auth;
	char *captured = add_order(&w, "10.00", "shipped", &t_cap);
	char *authorized = add_order(&w, "10.00", "authorized", &t_auth);
	run_once(&w);
	const char *p[] = {captured, authorized};
	free(exec_params(&w,
	                 "INSERT INTO smartpay.requests (order_id, kind, amount_minor, currency) "
	                 "VALUES ($1, 'refund', 800, 'EUR'), ($1, 'refund', 500, 'EUR'), "
	                 "($1, 'refund', 100, 'USD'), ($2, 'refund', 100, 'EUR')",
	                 2, p));
	run_once(&w);

	ck_assert_int_eq(effect_cents(&w, t_cap, "REFUND"), 800);
	ck_assert_int_eq(simproc_count_effects(w.sim, t_auth, NULL), 0);
	PGresult *r = pgtest_query(w.db, "SELECT m.state, m.reason, (SELECT count(*) FROM "
	                                 "smartpay.alerts a WHERE a.kind = 'order_refused' AND "
	                                 "a.modification_id = m.modification_id) FROM "
	                                 "smartpay.requests q JOIN smartpay.modifications m USING "
	                                 "(modification_id) ORDER BY q.request_id");
	ck_assert_int_eq(PQntuples(r), 4);
	static const char *const reasons[] = {
	    NULL, "refund of 5.00 EUR exceeds what remains captured: 8.00 of 10.00",
	    "refund currency 'USD' is not the captured currency EUR",
	    "the order has no successful capture to refund"};
	for (int i = 0; i < 4; i++) {
		if (reasons[i] == NULL) {
			ck_assert_str_eq(PQgetvalue(r, i, 0), "succeeded");
			continue;
		}
		ck_assert_str_eq(PQgetvalue(r, i, 0), "refused");
		ck_assert_msg(strncmp(PQgetvalue(r, i, 1), reasons[i], strlen(reasons[i])) == 0,
		              "request %d: %s", i, PQgetvalue(r, i, 1));
		ck_assert_str_eq(PQgetvalue(r, i, 2), "1");
	}
	PQclear(r);
	free(captured);
	free(authorized);
	free(t_cap);
	free(t_auth);
	world_down(&w);
}
END_TEST

/* Another daemon records a refund of the same order between this one's claim of a
 * refund request and its insert: the refund is not recorded past what remains
 * captured, nothing is sent, and the next claim refuses it with its reason. The race is
 * made deterministic with a trigger: linking a cancel_or_refund request (part of the
 * claim statement) commits a refund elsewhere. */
START_TEST(a_refund_recorded_meanwhile_is_counted)
{
	struct world w;
	world_up(&w, NULL);
	char *t_x, *t_y;
	char *x = add_order(&w, "10.00", "shipped", &t_x);
	char *y = add_order(&w, "10.00", "cancelled", &t_y);
	run_once(&w);
	ck_assert_int_eq(simproc_count_effects(w.sim, t_x, "CAPTURE"), 1);
	ck_assert_int_eq(simproc_count_effects(w.sim, t_y, "CANCELLATION"), 1);
	char *fn = NULL;
	if (asprintf(&fn,
	             "CREATE FUNCTION public.race() RETURNS trigger LANGUAGE plpgsql AS $f$ "
	             "BEGIN IF NEW.kind = 'cancel_or_refund' AND NOT EXISTS (SELECT 1 FROM "
	             "smartpay.modifications WHERE reason = 'elsewhere') THEN INSERT INTO "
	             "smartpay.modifications (modification_id, order_id, transaction_id, kind, "
	             "amount_minor, currency, request_body, state, reason, completed_at) VALUES "
	             "(gen_random_uuid(), '%s', '%s', 'refund', 500, 'EUR', '{}', 'succeeded', "
	             "'elsewhere', now()); END IF; RETURN NULL; END $f$; "
	             "CREATE TRIGGER race AFTER UPDATE ON smartpay.requests FOR EACH ROW "
	             "EXECUTE FUNCTION public.race();",
	             x, t_x) < 0)
		ck_abort();
	pgtest_exec(w.db, fn);
	free(fn);
	const char *p[] = {x, y};
	free(exec_params(&w,
	                 "INSERT INTO smartpay.requests (order_id, kind, amount_minor, currency) "
	                 "VALUES ($1, 'refund', 800, 'EUR'), ($2, 'cancel_or_refund', NULL, NULL)",
	                 2, p));
	run_once(&w);
	run_once(&w);
	ck_assert_int_eq(simproc_count_effects(w.sim, t_x, "REFUND"), 0);
	const char *q[] = {x};
	char *reason = exec_params(&w,
	                           "SELECT m.reason FROM smartpay.requests r JOIN "
	                           "smartpay.modifications m USING (modification_id) WHERE "
	                           "r.order_id = $1 AND m.state = 'refused'",
	                           1, q);
	ck_assert_ptr_nonnull(reason);
	ck_assert_str_eq(reason, "refund of 8.00 EUR exceeds what remains captured: 5.00 of 10.00 "
	                         "already refunded or in progress");
	free(reason);
	free(x);
	free(y);
	free(t_x);
	free(t_y);
	world_down(&w);
}
END_TEST

static Suite *shop_rows_suite(void)
{
	Suite *s = suite_create("shop_rows");
	testutil_tcase(s, "rows", 180,
	               (const TTest *const[]){bad_rows_in_a_view_refuse_only_themselves,
	                                      expiry_alerts_read_past_bad_times,
	                                      capture_never_after_a_cancel,
	                                      cancels_and_refunds_go_to_the_captured_transaction,
	                                      cancel_after_partial_refunds_refunds_the_rest,
	                                      refund_requests_are_rechecked_before_sending,
	                                      a_refund_recorded_meanwhile_is_counted, NULL});
	return s;
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	pgtest_start();
	int status = testutil_run_suite(shop_rows_suite(), CK_NORMAL);
	pgtest_stop();
	curl_global_cleanup();
	return status;
}
