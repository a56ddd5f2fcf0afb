/* The engine's scheduling under hostile conditions, against the real daemon, a private
 * PostgreSQL and smartpay-sim: candidates that cannot move, claim statements that fail,
 * outcomes the database refuses, rejected credentials, leases that run short and
 * outcomes that disagree. Plus the database error text they log
 * (store_error_text). The breaker and the scheduler have their own unit suites
 * (check_breaker.c, check_sched.c). */
#include "autoconfig.h"

#include "daemonproc.h"
#include "pgtest.h"
#include "simproc.h"
#include "store.h"
#include "testutil.h"
#include "world.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Creates an authorized transaction at the simulator and the shop's order for it, with
 * its deadline `hours` from now; returns the order id. */
static long add_order(struct world *w, const char *status, int hours)
{
	char expires[64];
	snprintf(expires, sizeof(expires), "now() + %d * interval '1 hour'", hours);
	return world_add_order(w, &(struct world_order){.status = status, .expires_at = expires},
	                       NULL);
}

/* The world of these tests: the daemon must drain cleanly (under ASan, no leak). */
static const struct world_opts clean = {.clean_exit = true};

/* Waits until the daemon holds its instance lock (connected and prepared). */
static void await_ready(struct world *w)
{
	world_await(w, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted", 1);
}

/* Transactions committed in the test database so far (pg_stat_database). */
static long long commits(struct world *w)
{
	pgtest_exec(w->db, "SELECT pg_stat_clear_snapshot()");
	return world_count(w, "SELECT xact_commit FROM pg_stat_database WHERE datname = "
	                      "current_database()");
}

/* ---- point: blocked candidates neither spin nor starve ---- */

/* Cancelled orders whose transaction has a pending refund another daemon holds (a
 * cancel waits behind it) fill every page of candidates with batch_size = 1: the daemon
 * does not rescan back to back, and a newly shipped order, with a later deadline than
 * all of them, is still captured at once. Once the refunds finish the cancels go. */
START_TEST(blocked_candidates_neither_spin_nor_starve)
{
	struct world w;
	world_up_with(&w, &clean, "[daemon]\nbatch_size = 1\nmax_inflight = 1\n");
	enum { BLOCKED = 60 };
	pgtest_exec(w.db, "BEGIN");
	for (int i = 0; i < BLOCKED; i++)
		add_order(&w, "cancelled", 1);
	pgtest_exec(w.db, "COMMIT");
	pgtest_exec(
	    w.db, "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, "
	          "kind, amount_minor, currency, request_body, state, next_attempt_at, deadline, "
	          "lease_owner, lease_generation, lease_expires_at) SELECT gen_random_uuid(), "
	          "o.id::text, o.smartpay_transaction_id, 'refund', 100, 'EUR', '{}', 'pending', "
	          "now() + interval '1 day', o.authorization_expires_at, 'other', 1, "
	          "now() + interval '1 day' FROM public.orders o");
	long fresh = add_order(&w, "authorized", 100);
	daemonproc_start(&w.d, false);
	await_ready(&w);
	usleep(1500000); /* the first polls have looked at every blocked candidate */

	/* a bounded number of statements: a few per poll, not a scan after every scan */
	long long before = commits(&w);
	usleep(4000000);
	long long per_second = (commits(&w) - before) / 4;
	ck_assert_msg(per_second < 100, "%lld commits per second", per_second);

	char sql[160];
	snprintf(sql, sizeof(sql), "UPDATE public.orders SET status = 'shipped' WHERE id = %ld",
	         fresh);
	pgtest_exec(w.db, sql);
	long long got = wait_for_count(w.db,
	                               "SELECT count(*) FROM smartpay.modifications WHERE "
	                               "kind = 'capture' AND state = 'succeeded'",
	                               1, 3000);
	if (got != 1)
		daemonproc_print_log(&w.d);
	ck_assert_int_eq(got, 1);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.modifications WHERE kind = "
	                                 "'cancel'"),
	                 0);

	/* the refunds finish: every blocked cancel goes out, once */
	pgtest_exec(w.db, "UPDATE smartpay.modifications SET state = 'succeeded', lease_owner = "
	                  "NULL, lease_expires_at = NULL, completed_at = now() WHERE kind = "
	                  "'refund'");
	world_await(&w,
	            "SELECT count(*) FROM smartpay.modifications WHERE kind = 'cancel' AND state = "
	            "'succeeded'",
	            BLOCKED);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "cancel"), BLOCKED);
	world_down(&w);
}
END_TEST

/* A candidate query that fails on every scan (one order row that cannot be read) is
 * alerted once, retried with backoff rather than at every poll, and the orders queued
 * meanwhile are captured, even beside the bad one (which is taken off the queue); once
 * the row can be read the scan recovers. */
START_TEST(failing_candidate_query_is_alerted_and_backs_off)
{
	struct world w;
	/* the polls scan the relation: the expiry policy is on (its orders become due with
	 * time, not through the queue of changed orders) */
	world_up_with(&w, &clean,
	              "[database]\norders_relation = public.orders_v\n"
	              "[capture]\nearly_statuses = on_hold\n");
	pgtest_exec(w.db,
	            "CREATE TABLE public.poison (id bigint PRIMARY KEY); "
	            "CREATE FUNCTION public.checked_amount(a numeric, i bigint) RETURNS numeric "
	            "LANGUAGE plpgsql STABLE AS $$BEGIN IF EXISTS (SELECT 1 FROM public.poison p "
	            "WHERE p.id = i) THEN RAISE EXCEPTION 'amount of order % unreadable', i; END "
	            "IF; RETURN a; END$$; "
	            "CREATE VIEW public.orders_v AS SELECT id, status, smartpay_transaction_id, "
	            "public.checked_amount(amount, id) AS amount, currency, capture_amount, "
	            "authorized_at, authorization_expires_at FROM public.orders");
	long bad = add_order(&w, "shipped", 10);
	char sql[160];
	snprintf(sql, sizeof(sql), "INSERT INTO public.poison VALUES (%ld)", bad);
	pgtest_exec(w.db, sql);
	long good = add_order(&w, "authorized", 20);
	daemonproc_start(&w.d, false);
	await_ready(&w);
	world_await(&w, "SELECT count(*) FROM smartpay.alerts WHERE kind = 'claim_failed'", 1);

	/* the other orders go on, also when notified together with the bad one */
	snprintf(sql, sizeof(sql),
	         "BEGIN; UPDATE public.orders SET status = 'packed' WHERE id = %ld; "
	         "UPDATE public.orders SET status = 'shipped' WHERE id IN (%ld, %ld); COMMIT",
	         bad, bad, good);
	pgtest_exec(w.db, sql);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'", 1);
	ck_assert(daemonproc_log_contains(&w.d, "event=order_skipped"));

	/* retried with backoff: at 500 ms polls, six seconds would see a dozen failures */
	int before = world_log_count(&w, "event=claim_failed claim=scan");
	usleep(6000000);
	int failures = world_log_count(&w, "event=claim_failed claim=scan") - before;
	ck_assert_msg(failures <= 4, "%d failed scans in 6 s", failures);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts WHERE kind = "
	                                 "'claim_failed'"),
	                 1);

	pgtest_exec(w.db, "DELETE FROM public.poison");
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'", 2);
	ck_assert(daemonproc_log_contains(&w.d, "event=claim_recovered claim=scan"));
	world_down(&w);
}
END_TEST

/* ---- point: outcomes the database refuses ---- */

/* The database refuses one order's outcome (a constraint standing in for any error):
 * the batch is split, the other outcomes are written, that one is recorded without the
 * gateway's answer, with the reason, and its attempt counted. A second order whose every
 * outcome is refused stays pending, the others are not held back. */
START_TEST(refused_outcome_does_not_hold_back_the_batch)
{
	struct world w;
	world_up_with(&w, &clean, NULL);
	ck_assert(simproc_set_faults(w.sim, "{\"latency_ms\": 300}"));
	enum { ORDERS = 20 };
	long ids[ORDERS];
	pgtest_exec(w.db, "BEGIN");
	for (int i = 0; i < ORDERS; i++)
		ids[i] = add_order(&w, "authorized", 50 + i);
	pgtest_exec(w.db, "COMMIT");
	char sql[600];
	snprintf(sql, sizeof(sql),
	         "ALTER TABLE smartpay.modifications ADD CONSTRAINT test_bad_answer CHECK "
	         "(response_body IS NULL OR order_id <> '%ld'); "
	         "CREATE FUNCTION public.refuse_outcome() RETURNS trigger LANGUAGE plpgsql AS "
	         "$$BEGIN IF NEW.state <> 'pending' OR NEW.attempts > 0 THEN RAISE EXCEPTION "
	         "'outcome of order %% refused', NEW.order_id; END IF; RETURN NEW; END$$; "
	         "CREATE TRIGGER refuse_outcome BEFORE UPDATE ON smartpay.modifications FOR EACH "
	         "ROW WHEN (OLD.order_id = '%ld') EXECUTE FUNCTION public.refuse_outcome()",
	         ids[3], ids[7]);
	pgtest_exec(w.db, sql);
	daemonproc_start(&w.d, false);
	await_ready(&w);
	pgtest_exec(w.db, "UPDATE public.orders SET status = 'shipped'");
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'",
	            ORDERS - 1);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE order_id = '%ld' AND state = "
	         "'succeeded' AND response_body IS NULL AND attempts = 1 AND reason LIKE 'the "
	         "gateway''s answer could not be stored: %%check constraint%%'",
	         ids[3]);
	ck_assert_int_eq(world_count(&w, sql), 1);
	ck_assert_int_eq(world_count(&w,
	                             "SELECT count(*) FROM smartpay.modifications WHERE state = "
	                             "'succeeded' AND response_body IS NOT NULL"),
	                 ORDERS - 2);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE order_id = '%ld' AND state = "
	         "'pending'",
	         ids[7]);
	ck_assert_int_eq(world_count(&w, sql), 1);
	ck_assert(daemonproc_log_contains(&w.d, "event=outcome_rejected"));
	ck_assert(daemonproc_log_contains(&w.d, "event=outcome_unstorable"));
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.alerts a JOIN smartpay.modifications m ON "
	         "a.dedup_key = m.modification_id::text WHERE a.kind = 'outcome_unstorable' AND "
	         "m.order_id = '%ld'",
	         ids[7]);
	world_await(&w, sql, 1);
	world_down(&w);
}
END_TEST

/* While outcomes cannot be written (a transient failure, here a serialization failure
 * raised by a trigger) nothing more is claimed: new orders wait instead of piling up
 * intents and outcomes in memory; once writes pass, everything completes. */
START_TEST(no_claims_while_outcomes_cannot_be_written)
{
	struct world w;
	world_up_with(&w, &clean, NULL);
	pgtest_exec(
	    w.db, "CREATE TABLE public.write_blocked (on_ boolean); INSERT INTO "
	          "public.write_blocked VALUES (true); "
	          "CREATE FUNCTION public.block_write() RETURNS trigger LANGUAGE plpgsql AS "
	          "$$BEGIN IF EXISTS (SELECT 1 FROM public.write_blocked) THEN RAISE EXCEPTION "
	          "'outcome writes blocked' USING ERRCODE = '40001'; END IF; RETURN NEW; END$$; "
	          "CREATE TRIGGER block_write BEFORE UPDATE ON smartpay.modifications FOR EACH ROW "
	          "WHEN (OLD.lease_owner IS NOT NULL AND NEW.lease_owner IS NULL) "
	          "EXECUTE FUNCTION public.block_write()");
	long first = add_order(&w, "authorized", 10);
	enum { LATER = 20 };
	pgtest_exec(w.db, "BEGIN");
	for (int i = 0; i < LATER; i++)
		add_order(&w, "authorized", 20);
	pgtest_exec(w.db, "COMMIT");
	daemonproc_start(&w.d, false);
	await_ready(&w);
	char sql[160];
	snprintf(sql, sizeof(sql), "UPDATE public.orders SET status = 'shipped' WHERE id = %ld",
	         first);
	pgtest_exec(w.db, sql);
	world_await_effects(&w, NULL, 1);
	for (int i = 0; i < 250 && !daemonproc_log_contains(&w.d, "event=outcome_write_failed");
	     i++)
		usleep(20000);
	ck_assert(daemonproc_log_contains(&w.d, "event=outcome_write_failed"));
	pgtest_exec(w.db, "UPDATE public.orders SET status = 'shipped'");
	usleep(2000000);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.modifications"), 1);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "capture"), 1);

	pgtest_exec(w.db, "DELETE FROM public.write_blocked");
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'",
	            LATER + 1);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "capture"), LATER + 1);
	world_down(&w);
}
END_TEST

/* ---- point: the breaker ---- */

/* --once with rejected credentials ends (non-zero) instead of waiting for a probe that
 * never comes; nothing counts as an attempt, one alert. */
START_TEST(once_with_rejected_credentials_exits)
{
	struct world w;
	world_up_with(&w, &clean, NULL);
	daemonproc_cleanup(&w.d);
	daemonproc_init(&w.d, w.conninfo, simproc_base_url(w.sim), simproc_merchant_key(w.sim),
	                "wrong-key", NULL);
	for (int i = 0; i < 3; i++)
		add_order(&w, "shipped", 10);
	ck_assert_int_eq(daemonproc_run_once(&w.d), 1);
	ck_assert_int_eq(world_count(&w,
	                             "SELECT count(*) FROM smartpay.modifications WHERE state = "
	                             "'pending' AND attempts = 0 AND lease_owner IS NULL"),
	                 3);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts WHERE kind = "
	                                 "'credentials_rejected'"),
	                 1);
	ck_assert(daemonproc_log_contains(&w.d, "HTTP 401"));
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, NULL), 0);
	world_down(&w);
}
END_TEST

/* Database error text as a reason (store_error_text). */
START_TEST(error_text_is_one_printable_line)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {NULL, "unknown error"},
	    {"", "unknown error"},
	    {"ERROR:  new row violates check constraint \"x\"\nDETAIL:  Failing row contains",
	     "new row violates check constraint \"x\""},
	    {"ERROR:  invalid byte sequence for encoding \"UTF8\": 0xe9 0x20\n",
	     "invalid byte sequence for encoding \"UTF8\": 0xe9 0x20"},
	    {"bad \xe9\x01 bytes  ", "bad ?? bytes"},
	    {"ERROR:\n", "unknown error"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *t = store_error_text(cases[i].in);
		ck_assert_str_eq(t, cases[i].out);
		free(t);
	}
	char long_text[400];
	memset(long_text, 'a', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	char *t = store_error_text(long_text);
	ck_assert_uint_eq(strlen(t), 200);
	free(t);
}
END_TEST

/* ---- point: leases ---- */

/* One request at a time, each answered after 2 s, a batch of 8 and a 10 s lease: the
 * tail of the queue would be sent after its lease ran out (and claimed and sent again
 * meanwhile). Rows whose lease no longer covers a request are given back and claimed
 * afresh instead: every id reaches the gateway exactly once. */
START_TEST(queued_rows_never_outlive_their_lease)
{
	struct world w;
	world_up_with(&w, &clean, "[daemon]\nmax_inflight = 1\nbatch_size = 8\n");
	ck_assert(simproc_set_faults(w.sim, "{\"latency_ms\": 2000}"));
	pgtest_exec(w.db, "BEGIN");
	for (int i = 0; i < 8; i++)
		add_order(&w, "authorized", 10 + i);
	pgtest_exec(w.db, "COMMIT");
	daemonproc_start(&w.d, false);
	await_ready(&w);
	pgtest_exec(w.db, "UPDATE public.orders SET status = 'shipped'");
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'", 8);
	PGresult *r = pgtest_query(w.db, "SELECT modification_id FROM smartpay.modifications");
	for (int i = 0; i < PQntuples(r); i++)
		ck_assert_int_eq(simproc_request_count(w.sim, PQgetvalue(r, i, 0)), 1);
	PQclear(r);
	ck_assert(daemonproc_log_contains(&w.d, "event=lease_too_short"));
	ck_assert(!daemonproc_log_contains(&w.d, "event=outcome_fenced"));
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "capture"), 8);
	world_down(&w);
}
END_TEST

/* The lease moves on while the answer is on its way and the new owner records another
 * final state: the late outcome is fenced, and because it disagrees, alerted. */
START_TEST(disagreeing_fenced_outcome_is_alerted)
{
	struct world w;
	world_up_with(&w, &clean, NULL);
	ck_assert(simproc_set_faults(w.sim, "{\"latency_ms\": 3000}"));
	add_order(&w, "shipped", 10);
	daemonproc_start(&w.d, false);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE lease_owner = 'test'",
	            1);
	/* another owner took the row over and found it refused */
	pgtest_exec(w.db, "UPDATE smartpay.modifications SET state = 'refused', reason = "
	                  "'refused at the other owner', http_status = 422, lease_owner = NULL, "
	                  "lease_expires_at = NULL, lease_generation = lease_generation + 1, "
	                  "completed_at = now()");
	world_await(&w, "SELECT count(*) FROM smartpay.alerts WHERE kind = 'outcome_disagrees'", 1);
	char *msg = pgtest_value(w.db, "SELECT message FROM smartpay.alerts WHERE kind = "
	                               "'outcome_disagrees'");
	ck_assert_ptr_nonnull(strstr(msg, "saw succeeded"));
	ck_assert_ptr_nonnull(strstr(msg, "records refused"));
	free(msg);
	ck_assert_int_eq(world_count(&w,
	                             "SELECT count(*) FROM smartpay.modifications WHERE state = "
	                             "'refused'"),
	                 1);
	/* the daemon logs after its write commits: the alert row can be seen first */
	world_await_log(&w, "event=outcome_disagrees", 1);
	world_down(&w);
}
END_TEST

/* A SIGHUP with another instance_name keeps the running one (the instance lock is held
 * under it) and says a restart is needed; new leases keep the old name. */
START_TEST(reload_keeps_instance_name)
{
	struct world w;
	world_up_with(&w, &clean, NULL);
	ck_assert(simproc_set_faults(w.sim, "{\"latency_ms\": 2000}"));
	daemonproc_start(&w.d, false);
	await_ready(&w);
	char *conf = testutil_read_file(w.d.conf);
	ck_assert_ptr_nonnull(conf);
	char *name = strstr(conf, "instance_name = test\n");
	ck_assert_ptr_nonnull(name);
	*name = '\0';
	char *renamed = NULL;
	ck_assert_int_ge(asprintf(&renamed, "%sinstance_name = renamed\n%s", conf,
	                          name + strlen("instance_name = test\n")),
	                 0);
	testutil_write_file(w.d.conf, renamed, 0644);
	free(renamed);
	free(conf);
	daemonproc_signal(&w.d, SIGHUP);
	for (int i = 0; i < 250 && !daemonproc_log_contains(&w.d, "event=reloaded"); i++)
		usleep(20000);
	ck_assert(daemonproc_log_contains(&w.d, "event=reloaded"));
	ck_assert(daemonproc_log_contains(&w.d, "key=daemon.instance_name"));
	add_order(&w, "shipped", 10);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE lease_owner = 'test'",
	            1);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.modifications WHERE "
	                                 "lease_owner = 'renamed'"),
	                 0);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'", 1);
	world_down(&w);
}
END_TEST

static Suite *schedule_suite(void)
{
	Suite *s = suite_create("schedule");
	TCase *units = tcase_create("units");
	tcase_add_test(units, error_text_is_one_printable_line);
	suite_add_tcase(s, units);
	TCase *claims = tcase_create("claims");
	tcase_set_timeout(claims, 180);
	tcase_add_test(claims, blocked_candidates_neither_spin_nor_starve);
	tcase_add_test(claims, failing_candidate_query_is_alerted_and_backs_off);
	suite_add_tcase(s, claims);
	TCase *outcomes = tcase_create("outcomes");
	tcase_set_timeout(outcomes, 120);
	tcase_add_test(outcomes, refused_outcome_does_not_hold_back_the_batch);
	tcase_add_test(outcomes, no_claims_while_outcomes_cannot_be_written);
	tcase_add_test(outcomes, once_with_rejected_credentials_exits);
	suite_add_tcase(s, outcomes);
	TCase *leases = tcase_create("leases");
	tcase_set_timeout(leases, 120);
	tcase_add_test(leases, queued_rows_never_outlive_their_lease);
	tcase_add_test(leases, disagreeing_fenced_outcome_is_alerted);
	tcase_add_test(leases, reload_keeps_instance_name);
	suite_add_tcase(s, leases);
	return s;
}

int main(void)
{
	pgtest_start();
	int status = testutil_run_suite(schedule_suite(), CK_NORMAL);
	pgtest_stop();
	return status;
}
