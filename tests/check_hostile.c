/* Hostile gateway answers end to end: the real smartpayd, a private PostgreSQL and
 * smartpay-sim answering with 2xx that confirm nothing, \u0000 tricks, error pages in
 * Windows-1252 or with NUL bytes, and bodies cut inside a UTF-8 character (the
 * simulator's "hostile" fault rules, sim/README.md). Every test checks what a user
 * would see: the gateway's ledger (GET /_sim/ledger), the daemon's ledger rows and
 * alerts, and the number of requests the gateway saw per modificationId. */
#include "autoconfig.h"

#include "pgtest.h"
#include "testutil.h"
#include "world.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An order of the world and its SmartPay transaction. */
struct order {
	long id;
	char txn[64];
};

/* Creates an authorized 10.00 EUR transaction at the simulator and its order. */
static void add_order(struct world *w, const char *status, struct order *o)
{
	char *txn = NULL;
	o->id = world_add_order(w, &(struct world_order){.status = status}, &txn);
	snprintf(o->txn, sizeof(o->txn), "%s", txn);
	free(txn);
}

/* Adds n shipped orders in one transaction. */
static void add_orders(struct world *w, struct order *orders, int n)
{
	pgtest_exec(w->db, "BEGIN");
	for (int i = 0; i < n; i++)
		add_order(w, "shipped", &orders[i]);
	pgtest_exec(w->db, "COMMIT");
}

/* Sets the simulator's faults from a format. */
__attribute__((format(printf, 2, 3))) static void set_faults(struct world *w, const char *fmt, ...)
{
	va_list ap;
	char *doc = NULL;
	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&doc, fmt, ap), 0);
	va_end(ap);
	ck_assert_msg(simproc_set_faults(w->sim, doc), "faults refused: %s", doc);
	free(doc);
}

/* One column of the capture row of a transaction (malloc'd; NULL for SQL NULL). */
static char *capture_field(struct world *w, const char *txn, const char *column)
{
	char *sql = NULL;
	ck_assert_int_ge(asprintf(&sql,
	                          "SELECT %s::text FROM smartpay.modifications WHERE "
	                          "transaction_id = $1 AND kind = 'capture'",
	                          column),
	                 0);
	const char *p[] = {txn};
	PGresult *r = PQexecParams(w->db, sql, 1, NULL, p, NULL, NULL, 0);
	free(sql);
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	ck_assert_int_eq(PQntuples(r), 1);
	char *v = PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/* A counted column of the capture row of a transaction. */
static long capture_int(struct world *w, const char *txn, const char *column)
{
	char *v = capture_field(w, txn, column);
	ck_assert_ptr_nonnull(v);
	long n = strtol(v, NULL, 10);
	free(v);
	return n;
}

/* Effects in a fetched gateway ledger that carry a modificationId. */
static int effects_for(struct json_object *ledger, const char *modification_id)
{
	struct json_object *effects = json_object_object_get(ledger, "effects");
	int n = 0;
	for (size_t i = 0; i < json_object_array_length(effects); i++) {
		struct json_object *e = json_object_array_get_idx(effects, i);
		const char *mid =
		    json_object_get_string(json_object_object_get(e, "modificationId"));
		n += mid != NULL && strcmp(mid, modification_id) == 0;
	}
	return n;
}

/* The ledgers agree: every succeeded row has exactly one effect with its id at the
 * gateway, every gateway effect belongs to a row that is not refused, and no request
 * was resent with other bytes than the first. */
static void assert_ledgers_agree(struct world *w)
{
	struct json_object *ledger = simproc_ledger(w->sim);
	ck_assert_ptr_nonnull(ledger);
	PGresult *r = pgtest_query(w->db, "SELECT modification_id, state FROM "
	                                  "smartpay.modifications");
	int rows_with_effect = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *mid = PQgetvalue(r, i, 0), *state = PQgetvalue(r, i, 1);
		int n = effects_for(ledger, mid);
		if (strcmp(state, "succeeded") == 0)
			ck_assert_msg(n == 1, "%s succeeded with %d effects at the gateway", mid,
			              n);
		else if (strcmp(state, "refused") == 0)
			ck_assert_msg(n == 0, "%s refused with %d effects at the gateway", mid, n);
		else
			ck_assert_msg(n <= 1, "%s is %s with %d effects", mid, state, n);
		rows_with_effect += n;
		ck_assert_int_eq(simproc_ledger_per_id(ledger, "otherBodies", mid), 0);
	}
	PQclear(r);
	ck_assert_int_eq(simproc_ledger_count(ledger, NULL, NULL), rows_with_effect);
	json_object_put(ledger);
}

/* The message of the needs_attention alert of a transaction's capture (malloc'd). */
static char *attention_message(struct world *w, const char *txn)
{
	const char *p[] = {txn};
	PGresult *r = PQexecParams(w->db,
	                           "SELECT a.message FROM smartpay.alerts a JOIN "
	                           "smartpay.modifications m USING (modification_id) WHERE "
	                           "m.transaction_id = $1 AND a.kind = 'needs_attention' "
	                           "ORDER BY a.alert_id DESC LIMIT 1",
	                           1, NULL, p, NULL, NULL, 0);
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	ck_assert_msg(PQntuples(r) == 1, "no needs_attention alert for %s", txn);
	char *m = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return m;
}

/* The 2xx modes that confirm nothing (sim/README.md, "Hostile answers"). */
static const char *const unconfirming[] = {"error_200", "empty_202", "other_id",   "failed_status",
                                           "html_200",  "empty_200", "nul_status", "nul_id"};
#define N_UNCONFIRMING (sizeof(unconfirming) / sizeof(unconfirming[0]))

/* Appends one hostile rule for a transaction to a faults document being built. */
static void add_rule(char *doc, size_t cap, const char *mode, bool processed, const char *txn,
                     const char *more)
{
	size_t n = strlen(doc);
	snprintf(doc + n, cap - n,
	         "%s{\"mode\":\"%s\",\"processed\":%s,\"transactions\":[\"%s\"]%s}",
	         doc[n - 1] == '[' ? "" : ",", mode, processed ? "true" : "false", txn,
	         more ? more : "");
}

/* Every 2xx that does not name this modification with a confirming status, whether the
 * gateway performed the capture or not: resent with the same id and bytes, counted, and
 * never taken for a success. Before it would need attention the gateway's status history
 * settles it: a capture the gateway performed is succeeded (settled_by status) after
 * max_attempts requests; one it never performed is resent while the history shows it can
 * still be made, then needs attention after twice max_attempts with an alert that says
 * why. Orders the rules do not name go through. */
START_TEST(unconfirming_2xx_resent_then_needs_attention)
{
	struct world w;
	world_up(&w, "[daemon]\nmax_attempts = 3\n");
	struct order hostile[2 * N_UNCONFIRMING], good[3];
	add_orders(&w, hostile, (int)(2 * N_UNCONFIRMING));
	add_orders(&w, good, 3);
	char doc[8192] = "{\"retry_after\":0,\"hostile\":[";
	for (size_t i = 0; i < 2 * N_UNCONFIRMING; i++)
		add_rule(doc, sizeof(doc), unconfirming[i % N_UNCONFIRMING], i >= N_UNCONFIRMING,
		         hostile[i].txn, NULL);
	strcat(doc, "]}");
	set_faults(&w, "%s", doc);

	daemonproc_start(&w.d, false);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state <> 'pending'",
	            (long long)(2 * N_UNCONFIRMING + 3));
	struct json_object *ledger = simproc_ledger(w.sim);
	for (size_t i = 0; i < 2 * N_UNCONFIRMING; i++) {
		const char *txn = hostile[i].txn;
		bool processed = i >= N_UNCONFIRMING;
		char *state = capture_field(&w, txn, "state");
		char *mid = capture_field(&w, txn, "modification_id");
		char *settled = capture_field(&w, txn, "settled_by");
		int sends = processed ? 3 : 6;
		ck_assert_msg(strcmp(state, processed ? "succeeded" : "needs_attention") == 0,
		              "%s (processed %d): %s", unconfirming[i % N_UNCONFIRMING], processed,
		              state);
		ck_assert_str_eq(settled, processed ? "status" : "answer");
		ck_assert_int_eq(capture_int(&w, txn, "attempts"), sends);
		ck_assert_int_eq(simproc_ledger_per_id(ledger, "requests", mid), sends);
		ck_assert_int_eq(simproc_ledger_per_id(ledger, "hostileAnswers", mid), sends);
		ck_assert_int_eq(simproc_ledger_count(ledger, txn, "CAPTURE"), processed ? 1 : 0);
		if (!processed) {
			char *why = attention_message(&w, txn);
			ck_assert_msg(strstr(why, "confirm") != NULL &&
			                  strstr(why, "status history: absent") != NULL,
			              "%s: alert says %s", unconfirming[i % N_UNCONFIRMING], why);
			free(why);
		}
		free(settled);
		free(mid);
		free(state);
	}
	for (int i = 0; i < 3; i++) {
		char *state = capture_field(&w, good[i].txn, "state");
		ck_assert_str_eq(state, "succeeded");
		free(state);
		ck_assert_int_eq(simproc_ledger_count(ledger, good[i].txn, "CAPTURE"), 1);
	}
	json_object_put(ledger);
	assert_ledgers_agree(&w);
	world_down(&w);
}
END_TEST

/* Two non-confirming answers, then the real one: one capture at the gateway, recorded
 * succeeded after exactly three requests with the same id and bytes. */
START_TEST(unconfirming_2xx_then_confirmation_succeeds_once)
{
	static const char *const modes[] = {"error_200",  "empty_202", "other_id",
	                                    "nul_status", "nul_id",    "failed_status"};
	enum { N = sizeof(modes) / sizeof(modes[0]) };
	struct world w;
	world_up(&w, "[daemon]\nmax_attempts = 6\n");
	struct order orders[2 * N];
	add_orders(&w, orders, 2 * N);
	char doc[8192] = "{\"hostile\":[";
	for (int i = 0; i < 2 * N; i++)
		add_rule(doc, sizeof(doc), modes[i % N], i >= N, orders[i].txn,
		         ",\"max_per_id\":2");
	strcat(doc, "]}");
	set_faults(&w, "%s", doc);

	daemonproc_start(&w.d, false);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state <> 'pending'",
	            2 * N);
	struct json_object *ledger = simproc_ledger(w.sim);
	for (int i = 0; i < 2 * N; i++) {
		char *state = capture_field(&w, orders[i].txn, "state");
		char *mid = capture_field(&w, orders[i].txn, "modification_id");
		ck_assert_msg(strcmp(state, "succeeded") == 0, "%s: %s", modes[i % N], state);
		ck_assert_msg(simproc_ledger_per_id(ledger, "requests", mid) == 3,
		              "%s: %ld requests", modes[i % N],
		              simproc_ledger_per_id(ledger, "requests", mid));
		ck_assert_int_eq(capture_int(&w, orders[i].txn, "attempts"), 3);
		ck_assert_int_eq(simproc_ledger_count(ledger, orders[i].txn, "CAPTURE"), 1);
		free(mid);
		free(state);
	}
	json_object_put(ledger);
	assert_ledgers_agree(&w);
	world_down(&w);
}
END_TEST

/* json-c decodes \u0000 inside strings: "CAPTURED\u0000junk" and "<ours>\u0000other"
 * must never read as a confirmation, in either answer shape, for captures and refunds. */
START_TEST(nul_escapes_never_confirm)
{
	struct world w;
	world_up(&w, "[daemon]\nmax_attempts = 3\n");
	/* o[4] is captured before the rules are set, then refunded under them */
	struct order o[5];
	add_order(&w, "shipped", &o[4]);
	ck_assert_int_eq(daemonproc_run_once(&w.d), 0);
	ck_assert_int_eq(simproc_count_effects(w.sim, o[4].txn, "CAPTURE"), 1);
	add_orders(&w, o, 4);
	set_faults(&w,
	           "{\"shape\":\"modifications\",\"hostile\":["
	           "{\"mode\":\"nul_status\",\"processed\":false,\"transactions\":[\"%s\",\"%s\"]},"
	           "{\"mode\":\"nul_id\",\"processed\":false,\"transactions\":[\"%s\",\"%s\"]}]}",
	           o[0].txn, o[4].txn, o[1].txn, o[4].txn);
	char sql[160];
	snprintf(sql, sizeof(sql), "SELECT smartpay.request_refund('%ld', 4.00, 'nul')", o[4].id);
	pgtest_exec(w.db, sql);
	daemonproc_start(&w.d, false);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state <> 'pending'", 6);
	for (int i = 0; i < 2; i++) {
		char *state = capture_field(&w, o[i].txn, "state");
		ck_assert_str_eq(state, "needs_attention");
		free(state);
		char *ps = capture_field(&w, o[i].txn, "payment_status");
		ck_assert_msg(ps == NULL || strcmp(ps, "CAPTURED") != 0, "payment_status %s", ps);
		free(ps);
		ck_assert_int_eq(simproc_count_effects(w.sim, o[i].txn, NULL), 0);
	}
	/* the orders the rules do not name are answered and recorded normally */
	for (int i = 2; i < 4; i++) {
		char *state = capture_field(&w, o[i].txn, "state");
		ck_assert_str_eq(state, "succeeded");
		free(state);
	}
	ck_assert_int_eq(pgtest_int(w.db, "SELECT count(*) FROM smartpay.modifications WHERE "
	                                  "kind = 'refund' AND state = 'needs_attention'"),
	                 1);
	ck_assert_int_eq(simproc_count_effects(w.sim, o[4].txn, "REFUND"), 0);
	assert_ledgers_agree(&w);
	world_down(&w);
}
END_TEST

/* A 503 with a Windows-1252 page and a 502 whose body holds NUL bytes, among good
 * answers: the other orders' outcomes are written, also those shipped later; the
 * affected orders count their attempts, store a valid UTF-8 answer and, the status
 * history lacking them, need attention after twice max_attempts. */
START_TEST(foreign_error_pages_do_not_block_other_outcomes)
{
	struct world w;
	world_up(&w, "[daemon]\nmax_attempts = 3\n");
	struct order bad[2], good[10], later[5];
	add_orders(&w, bad, 2);
	add_orders(&w, good, 10);
	set_faults(&w,
	           "{\"latency_ms\":200,\"retry_after\":0,\"hostile\":["
	           "{\"mode\":\"latin1_page\",\"processed\":false,\"transactions\":[\"%s\"]},"
	           "{\"mode\":\"nul_body\",\"processed\":false,\"status\":502,"
	           "\"transactions\":[\"%s\"]}]}",
	           bad[0].txn, bad[1].txn);
	daemonproc_start(&w.d, false);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'",
	            10);
	add_orders(&w, later, 5);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'",
	            15);
	world_await(
	    &w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'needs_attention'", 2);
	for (int i = 0; i < 2; i++) {
		char *mid = capture_field(&w, bad[i].txn, "modification_id");
		/* the status history lacks them: resent up to twice max_attempts */
		ck_assert_int_eq(capture_int(&w, bad[i].txn, "attempts"), 6);
		ck_assert_int_eq(simproc_request_count(w.sim, mid), 6);
		ck_assert_int_eq(capture_int(&w, bad[i].txn, "http_status"), i == 0 ? 503 : 502);
		free(mid);
		free(attention_message(&w, bad[i].txn));
	}
	/* stored, as valid UTF-8 (the database takes nothing else), without NUL bytes */
	char *page = capture_field(&w, bad[0].txn, "response_body");
	ck_assert_ptr_nonnull(page);
	ck_assert_ptr_nonnull(strstr(page, "Dienst vor"));
	ck_assert_ptr_nonnull(strstr(page, "Proxy</p>"));
	free(page);
	char *nul = capture_field(&w, bad[1].txn, "response_body");
	ck_assert_ptr_nonnull(nul);
	ck_assert_ptr_nonnull(strstr(nul, "errorDetails"));
	free(nul);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "CAPTURE"), 15);
	assert_ledgers_agree(&w);
	world_down(&w);
}
END_TEST

/* Answers past 64 KiB with byte 65536 inside a character: cut there (200 and 503, the
 * real answer on the third request) and whole (a real confirmation). Each affected
 * capture happens once and is recorded after its attempts; the stored answer is valid
 * UTF-8 of at most 64 KiB; the other orders' outcomes are written meanwhile. */
START_TEST(bodies_cut_inside_a_character)
{
	struct world w;
	world_up(&w, "[daemon]\nmax_attempts = 5\n");
	struct order cut[3], good[10], later[5];
	add_orders(&w, cut, 3);
	add_orders(&w, good, 10);
	set_faults(&w,
	           "{\"latency_ms\":200,\"retry_after\":0,\"hostile\":["
	           "{\"mode\":\"cut_utf8\",\"processed\":true,\"status\":200,\"max_per_id\":2,"
	           "\"transactions\":[\"%s\"]},"
	           "{\"mode\":\"cut_utf8\",\"processed\":false,\"status\":503,\"max_per_id\":2,"
	           "\"transactions\":[\"%s\"]},"
	           "{\"mode\":\"long_utf8\",\"processed\":true,\"transactions\":[\"%s\"]}]}",
	           cut[0].txn, cut[1].txn, cut[2].txn);
	daemonproc_start(&w.d, false);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'",
	            13);
	add_orders(&w, later, 5);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'",
	            18);
	static const long requests[] = {3, 3, 1};
	for (int i = 0; i < 3; i++) {
		char *mid = capture_field(&w, cut[i].txn, "modification_id");
		ck_assert_int_eq(simproc_request_count(w.sim, mid), requests[i]);
		ck_assert_int_eq(capture_int(&w, cut[i].txn, "attempts"), requests[i]);
		ck_assert_int_eq(simproc_count_effects(w.sim, cut[i].txn, "CAPTURE"), 1);
		free(mid);
	}
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "SELECT octet_length(response_body) FROM smartpay.modifications WHERE "
	         "transaction_id = '%s'",
	         cut[2].txn);
	long long stored = pgtest_int(w.db, sql);
	ck_assert_int_le(stored, 65536);
	ck_assert_int_gt(stored, 65000);
	char *body = capture_field(&w, cut[2].txn, "response_body");
	ck_assert_int_eq(strncmp(body, "{\"description\":\"Zahlung f\xc3\xbcr", 28), 0);
	free(body);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "CAPTURE"), 18);
	assert_ledgers_agree(&w);
	world_down(&w);
}
END_TEST

/* A long run mixing every hostile kind with lost answers and 503s, processed or not:
 * every order ends captured exactly once, the ledgers agree row by row (same id, same
 * bytes on every resend), and every attempt the daemon counted reached the gateway. */
START_TEST(mixed_hostile_run)
{
	struct world w;
	world_up(&w, "[daemon]\nmax_attempts = 100\n");
	struct order orders[200];
	pgtest_exec(w.db, "BEGIN");
	for (int i = 0; i < 200; i++)
		add_order(&w, "authorized", &orders[i]);
	pgtest_exec(w.db, "COMMIT");
	set_faults(&w, "{\"seed\":21,\"retry_after\":0,\"latency_ms\":5,\"jitter_ms\":5,"
	               "\"drop_after_commit_rate\":0.1,\"fail_rate\":0.1,\"hostile\":["
	               "{\"mode\":\"error_200\",\"processed\":true,\"rate\":0.05},"
	               "{\"mode\":\"empty_202\",\"processed\":false,\"rate\":0.05},"
	               "{\"mode\":\"other_id\",\"processed\":false,\"rate\":0.05},"
	               "{\"mode\":\"failed_status\",\"processed\":true,\"rate\":0.05},"
	               "{\"mode\":\"nul_status\",\"processed\":false,\"rate\":0.05},"
	               "{\"mode\":\"nul_id\",\"processed\":true,\"rate\":0.05},"
	               "{\"mode\":\"html_200\",\"processed\":false,\"rate\":0.05},"
	               "{\"mode\":\"latin1_page\",\"processed\":false,\"rate\":0.05},"
	               "{\"mode\":\"nul_body\",\"processed\":true,\"rate\":0.03},"
	               "{\"mode\":\"cut_utf8\",\"processed\":true,\"status\":200,\"rate\":0.04},"
	               "{\"mode\":\"long_utf8\",\"processed\":true,\"rate\":0.03}]}");
	daemonproc_start(&w.d, false);
	pgtest_exec(w.db, "UPDATE public.orders SET status = 'shipped'");
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'",
	            200);
	ck_assert_int_eq(daemonproc_stop(&w.d), 0);
	assert_ledgers_agree(&w);
	struct json_object *ledger = simproc_ledger(w.sim);
	ck_assert_int_eq(simproc_ledger_count(ledger, NULL, "CAPTURE"), 200);
	PGresult *r = pgtest_query(w.db, "SELECT modification_id, attempts FROM "
	                                 "smartpay.modifications");
	long hostile = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		/* every counted attempt reached the gateway; libcurl itself resends the same
		 * bytes on a fresh connection, up to 5 times a transfer (CONN_MAX_RETRIES),
		 * when a reused connection closes before any answer */
		const char *mid = PQgetvalue(r, i, 0);
		long attempts = strtol(PQgetvalue(r, i, 1), NULL, 10);
		long requests = simproc_ledger_per_id(ledger, "requests", mid);
		ck_assert_msg(requests >= attempts && requests <= 6 * attempts,
		              "%s: %ld requests for %ld attempts", mid, requests, attempts);
		hostile += simproc_ledger_per_id(ledger, "hostileAnswers", mid);
	}
	PQclear(r);
	json_object_put(ledger);
	ck_assert_int_gt(hostile, 50); /* the mix did reach the daemon */
	world_down(&w);
}
END_TEST

static Suite *hostile_suite(void)
{
	Suite *s = suite_create("hostile");
	testutil_tcase(s, "confirmation", 150,
	               (const TTest *const[]){unconfirming_2xx_resent_then_needs_attention,
	                                      unconfirming_2xx_then_confirmation_succeeds_once,
	                                      nul_escapes_never_confirm, NULL});
	testutil_tcase(s, "bytes", 150,
	               (const TTest *const[]){foreign_error_pages_do_not_block_other_outcomes,
	                                      bodies_cut_inside_a_character, mixed_hostile_run,
	                                      NULL});
	return s;
}

int main(void)
{
	pgtest_start();
	int status = testutil_run_suite(hostile_suite(), CK_NORMAL);
	pgtest_stop();
	return status;
}
