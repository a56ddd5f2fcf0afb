/* Alerts: the pure helpers, then the real smartpayd against a private PostgreSQL (with
 * every statement logged, to count what an idle daemon issues), smartpay-sim for the
 * gateway, and a small webhook receiver (libevent evhttp) driven inside the test. */
#include "autoconfig.h"

#include "alerts.h"
#include "duration.h"
#include "pgtest.h"
#include "store_alerts.h"
#include "store_indexes.h"
#include "testutil.h"
#include "world.h"
#include "xmalloc.h"

#include <check.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 30000

/* ---- pure helpers ---- */

START_TEST(threshold_labels_are_compact)
{
	char out[DURATION_TEXT_SIZE];
	duration_format(INT64_C(24) * 3600 * 1000, DURATION_EXACT_HOURS, out);
	ck_assert_str_eq(out, "24h");
	duration_format(INT64_C(4) * 3600 * 1000, DURATION_EXACT_HOURS, out);
	ck_assert_str_eq(out, "4h");
	duration_format(INT64_C(90) * 60 * 1000, DURATION_EXACT_HOURS, out);
	ck_assert_str_eq(out, "90m");
	duration_format(45000, DURATION_EXACT_HOURS, out);
	ck_assert_str_eq(out, "45s");
	duration_format(1500, DURATION_EXACT_HOURS, out);
	ck_assert_str_eq(out, "1500ms");
}
END_TEST

START_TEST(webhook_url_is_redacted)
{
	static const char *const cases[][2] = {
	    {"https://hooks.example/smartpay?token=abc", "https://hooks.example/smartpay"},
	    {"http://user:pw@127.0.0.1:9000/a/b?x=1#f", "http://127.0.0.1:9000/a/b"},
	    {"https://hooks.example?token=abc", "https://hooks.example"},
	    {"https://hooks.example/p#secret", "https://hooks.example/p"},
	    {"https://hooks.example", "https://hooks.example"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *r = alerts_redact_url(cases[i][0]);
		ck_assert_str_eq(r, cases[i][1]);
		free(r);
	}
}
END_TEST

START_TEST(webhook_body_has_every_field)
{
	struct store_webhook_alert a = {.alert_id = 9000000000LL,
	                                .kind = "authorization_expiring",
	                                .severity = "warning",
	                                .order_id = "42",
	                                .modification_id = NULL,
	                                .message = "authorization of order 42 \"expires\"",
	                                .created_at = "2024-05-01T12:00:00.123Z"};
	char *body = alerts_webhook_body(&a);
	json_object *o = json_tokener_parse(body);
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(json_object_get_int64(json_object_object_get(o, "alert_id")),
	                 9000000000LL);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "kind")),
	                 "authorization_expiring");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "severity")), "warning");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "order_id")), "42");
	json_object *mid = NULL;
	ck_assert(json_object_object_get_ex(o, "modification_id", &mid));
	ck_assert_ptr_null(mid);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "message")),
	                 "authorization of order 42 \"expires\"");
	ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "created_at")),
	                 "2024-05-01T12:00:00.123Z");
	json_object_put(o);
	free(body);
}
END_TEST

START_TEST(orders_index_statements)
{
	PGconn *conn = pgtest_connect(pgtest_conninfo());
	char *err = NULL;
	char *sql = store_index_statement(conn, "shop.Orders", "authorized_at", &err);
	ck_assert_str_eq(sql, "CREATE INDEX CONCURRENTLY \"Orders_authorized_at_idx\" ON "
	                      "\"shop\".\"Orders\" (\"authorized_at\")");
	free(sql);
	sql = store_index_statement(conn, "orders", "authorization_expires_at", &err);
	ck_assert_str_eq(sql, "CREATE INDEX CONCURRENTLY \"orders_authorization_expires_at_idx\" "
	                      "ON \"orders\" (\"authorization_expires_at\")");
	free(sql);
	/* a quote in a name is doubled, not ended */
	sql = store_index_statement(conn, "shop.Or\"ders", "authorized_at", &err);
	ck_assert_str_eq(sql, "CREATE INDEX CONCURRENTLY \"Or\"\"ders_authorized_at_idx\" ON "
	                      "\"shop\".\"Or\"\"ders\" (\"authorized_at\")");
	free(sql);
	/* a malformed relation is refused with the reason */
	ck_assert_ptr_null(store_index_statement(conn, "shop.", "authorized_at", &err));
	ck_assert_ptr_nonnull(strstr(err, "expected NAME or SCHEMA.NAME"));
	free(err);
	PQfinish(conn);
	/* PostgreSQL keeps 63 bytes of a name: the name given is the one it will have */
	char *name = store_index_name("public.a_very_long_shop_orders_table_name_of_forty_bytes",
	                              "authorization_expires_at");
	ck_assert_uint_eq(strlen(name), 63);
	free(name);
	char *cols = store_index_columns_literal();
	ck_assert_str_eq(cols, "{\"authorization_expires_at\",\"authorized_at\"}");
	free(cols);
	ck_assert_ptr_nonnull(store_index_used_by("authorized_at"));
	ck_assert_ptr_null(store_index_used_by("status"));
}
END_TEST

/* ---- the daemon ---- */

/* The worlds of these tests: the gateway a closed port (nothing in most tests needs an
 * answer from it) or a simulator; the daemon must exit 0. */
static const struct world_opts no_gateway = {
    .no_sim = true, .clean_exit = true, .wait_ms = WAIT_MS};
static const struct world_opts with_sim = {.clean_exit = true, .wait_ms = WAIT_MS};

/* Inserts an order (SQL expressions for the timestamps, txn NULL for none) and returns
 * its id as text (static buffer rotation: good for a few calls in one expression). */
static const char *add_order(struct world *w, const char *txn, const char *status,
                             const char *authorized_at, const char *expires_at)
{
	static char ids[8][24];
	static int next;
	const struct world_order o = {.txn = txn,
	                              .no_txn = txn == NULL,
	                              .status = status,
	                              .authorized_at = authorized_at,
	                              .expires_at = expires_at};
	char *slot = ids[next++ % 8];
	snprintf(slot, 24, "%ld", world_add_order(w, &o, NULL));
	return slot;
}

/* Inserts a modification row for an order. */
static void add_modification(struct world *w, const char *id, const char *order_id, const char *txn,
                             const char *kind, const char *state, const char *deadline,
                             const char *lease_owner, const char *lease_expires,
                             const char *next_attempt)
{
	char sql[1024];
	snprintf(sql, sizeof(sql),
	         "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, "
	         "kind, amount_minor, currency, request_body, state, deadline, lease_owner, "
	         "lease_expires_at, next_attempt_at) VALUES ('%s', '%s', '%s', '%s', 1000, 'EUR', "
	         "'{}', '%s', %s, %s, %s, %s)",
	         id, order_id, txn, kind, state, deadline, lease_owner, lease_expires,
	         next_attempt);
	pgtest_exec(w->db, sql);
}

/* The alert of this kind and dedup key: "severity|order_id|modification_id". */
static char *alert_row(struct world *w, const char *kind, const char *dedup_key)
{
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT severity || '|' || coalesce(order_id, '-') || '|' || "
	         "coalesce(modification_id::text, '-') FROM smartpay.alerts WHERE kind = '%s' AND "
	         "dedup_key = '%s'",
	         kind, dedup_key);
	return pgtest_value(w->db, sql);
}

static void assert_alert(struct world *w, const char *kind, const char *dedup_key, const char *want)
{
	char *row = alert_row(w, kind, dedup_key);
	ck_assert_str_eq(row, want);
	free(row);
}

#define CAP_J "00000000-0000-4000-8000-00000000000a"

START_TEST(expiry_alerts_once_per_order_and_threshold)
{
	struct world w;
	world_up_with(&w, &no_gateway,
	              "[daemon]\npoll_interval = 1h\n[alerts]\nexpiry_thresholds = 24h, 4h\n");
	const char *now = "now()";
	/* inside the 24h window only: a warning */
	char a[24], b[24], c[24], d[24], e[24], f[24], g[24], h[24], i[24], j[24];
	snprintf(a, 24, "%s", add_order(&w, "t-a", "authorized", now, "now() + interval '20h'"));
	/* inside 4h: only the most urgent threshold, critical */
	snprintf(b, 24, "%s", add_order(&w, "t-b", "authorized", now, "now() + interval '2h'"));
	/* expired by authorized_at + the default 120h validity */
	snprintf(c, 24, "%s",
	         add_order(&w, "t-c", "authorized", "now() - interval '121h'", "NULL"));
	/* captured: nothing, whatever the deadline */
	snprintf(d, 24, "%s", add_order(&w, "t-d", "shipped", now, "now() + interval '2h'"));
	add_modification(&w, "00000000-0000-4000-8000-00000000000d", d, "t-d", "capture",
	                 "succeeded", "now() + interval '2h'", "NULL", "NULL", "now()");
	/* cancelled by the shop and at the gateway: nothing */
	snprintf(e, 24, "%s", add_order(&w, "t-e", "cancelled", now, "now() - interval '1h'"));
	add_modification(&w, "00000000-0000-4000-8000-00000000000e", e, "t-e", "cancel",
	                 "succeeded", "NULL", "NULL", "NULL", "now()");
	/* cancelled by the shop, the cancel stuck: the expiry still deserves its alert */
	snprintf(f, 24, "%s", add_order(&w, "t-f", "cancelled", now, "now() - interval '1h'"));
	add_modification(&w, "00000000-0000-4000-8000-00000000000f", f, "t-f", "cancel",
	                 "needs_attention", "NULL", "NULL", "NULL", "now()");
	/* outside every window, no transaction, expired long ago: nothing */
	snprintf(g, 24, "%s", add_order(&w, "t-g", "authorized", now, "now() + interval '30h'"));
	snprintf(h, 24, "%s", add_order(&w, NULL, "authorized", now, "now() + interval '1h'"));
	snprintf(i, 24, "%s",
	         add_order(&w, "t-i", "authorized", now, "now() - interval '30 days'"));
	/* a capture still pending (leased by a live daemon) counts as not captured */
	snprintf(j, 24, "%s", add_order(&w, "t-j", "shipped", now, "now() + interval '3h'"));
	add_modification(&w, CAP_J, j, "t-j", "capture", "pending", "now() + interval '3h'",
	                 "'other'", "now() + interval '1h'", "now() + interval '1 day'");

	daemonproc_start(&w.d, false);
	world_await(&w, "SELECT count(*) FROM smartpay.alerts", 5);
	char key[64], want[96];
	snprintf(key, sizeof(key), "%s:24h", a);
	snprintf(want, sizeof(want), "warning|%s|-", a);
	assert_alert(&w, "authorization_expiring", key, want);
	snprintf(key, sizeof(key), "%s:4h", b);
	snprintf(want, sizeof(want), "critical|%s|-", b);
	assert_alert(&w, "authorization_expiring", key, want);
	snprintf(want, sizeof(want), "critical|%s|-", c);
	assert_alert(&w, "authorization_expired", c, want);
	snprintf(want, sizeof(want), "critical|%s|-", f);
	assert_alert(&w, "authorization_expired", f, want);
	snprintf(key, sizeof(key), "%s:4h", j);
	snprintf(want, sizeof(want), "critical|%s|%s", j, CAP_J);
	assert_alert(&w, "authorization_expiring", key, want);
	char *msg = pgtest_value(w.db, "SELECT message FROM smartpay.alerts WHERE kind = "
	                               "'authorization_expiring' AND dedup_key LIKE '%:24h'");
	ck_assert_msg(strstr(msg, "within 24h") != NULL, "%s", msg);
	free(msg);
	world_await_log(&w, "event=alert_raised", 5);
	char needle[96];
	snprintf(needle, sizeof(needle), "order_id=%s modification_id=%s", j, CAP_J);
	ck_assert_msg(world_log_count(&w, needle) == 1, "no log line with %s", needle);

	/* more sweeps (an orders notification, a reload, a restart) raise nothing new */
	int swept = world_log_count(&w, "event=expiry_swept");
	pgtest_exec(w.db, "SELECT pg_notify('smartpay_orders', '999999')");
	world_await_log(&w, "event=expiry_swept", swept + 1);
	daemonproc_signal(&w.d, SIGHUP);
	world_await_log(&w, "event=expiry_swept", swept + 2);
	ck_assert_int_eq(daemonproc_stop(&w.d), 0);
	daemonproc_start(&w.d, false);
	world_await_log(&w, "event=expiry_swept", swept + 3);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts"), 5);
	ck_assert_int_eq(world_log_count(&w, "event=alert_raised"), 5);
	/* an acknowledged alert is not raised again either */
	pgtest_exec(w.db, "UPDATE smartpay.alerts SET acknowledged_at = now()");
	pgtest_exec(w.db, "SELECT pg_notify('smartpay_orders', '999999')");
	world_await_log(&w, "event=expiry_swept", swept + 4);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts"), 5);
	world_down(&w);
}
END_TEST

/* A statement that changed many orders notifies once with an empty payload (sql/020):
 * the next sweep reads every order, not only those changed since the last one. */
START_TEST(empty_orders_notification_sweeps_every_order)
{
	struct world w;
	world_up_with(&w, &no_gateway,
	              "[daemon]\npoll_interval = 1h\n[alerts]\nexpiry_thresholds = 24h\n");
	const char *id = add_order(&w, "t-e", "authorized", "now()", "now() + interval '3 days'");
	daemonproc_start(&w.d, false);
	world_await_log(&w, "event=expiry_swept", 1);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts"), 0);
	/* its deadline moves within the threshold, a crossing before the last sweep, and
	 * no notification names it */
	char sql[160];
	snprintf(sql, sizeof(sql),
	         "UPDATE public.orders SET authorization_expires_at = now() + interval '2 hours' "
	         "WHERE id = %s",
	         id);
	pgtest_exec(w.db, sql);
	pgtest_exec(w.db, "SELECT pg_notify('smartpay_orders', '')");
	world_await(
	    &w, "SELECT count(*) FROM smartpay.alerts WHERE kind = 'authorization_expiring'", 1);
	world_down(&w);
}
END_TEST

#define CAP_K "00000000-0000-4000-8000-00000000001a"
#define CAP_L "00000000-0000-4000-8000-00000000001b"
#define CAP_M "00000000-0000-4000-8000-00000000001c"
#define CAP_N "00000000-0000-4000-8000-00000000001d"

START_TEST(pending_capture_past_deadline_needs_attention)
{
	struct world w;
	world_up_with(&w, &no_gateway, "[daemon]\npoll_interval = 1h\n");
	const char *past = "now() - interval '1 minute'";
	const char *later = "now() + interval '1 day'";
	/* free lease: given up */
	const char *k = add_order(&w, "t-k", "shipped", "now()", past);
	add_modification(&w, CAP_K, k, "t-k", "capture", "pending", past, "NULL", "NULL", later);
	/* lease of a daemon that died: given up */
	const char *l = add_order(&w, "t-l", "shipped", "now()", past);
	add_modification(&w, CAP_L, l, "t-l", "capture", "pending", past, "'ghost'", past, later);
	/* lease of a live daemon: its owner decides */
	const char *m = add_order(&w, "t-m", "shipped", "now()", past);
	add_modification(&w, CAP_M, m, "t-m", "capture", "pending", past, "'other'",
	                 "now() + interval '1 hour'", later);
	/* deadline six seconds ahead (well after the first sweep, even on a loaded machine):
	 * the timer, not a poll, gives it up then */
	const char *n = add_order(&w, "t-n", "shipped", "now()", "now() + interval '6s'");
	add_modification(&w, CAP_N, n, "t-n", "capture", "pending", "now() + interval '6s'", "NULL",
	                 "NULL", later);

	daemonproc_start(&w.d, false);
	world_await(
	    &w,
	    "SELECT count(*) FROM smartpay.modifications WHERE state = 'needs_attention' AND "
	    "reason LIKE 'authorization deadline passed%' AND completed_at IS NOT NULL",
	    3);
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE modification_id = '%s' AND "
	         "state = 'pending' AND lease_owner = 'other'",
	         CAP_M);
	ck_assert_int_eq(world_count(&w, sql), 1);
	char want[128];
	snprintf(want, sizeof(want), "critical|%s|%s", k, CAP_K);
	assert_alert(&w, "needs_attention", CAP_K ":0", want);
	snprintf(want, sizeof(want), "critical|%s|%s", l, CAP_L);
	assert_alert(&w, "needs_attention", CAP_L ":0", want);
	snprintf(want, sizeof(want), "critical|%s|%s", n, CAP_N);
	assert_alert(&w, "needs_attention", CAP_N ":0", want);
	/* the expired authorizations themselves: one alert each, the live lease's too */
	world_await(&w, "SELECT count(*) FROM smartpay.alerts WHERE kind = 'authorization_expired'",
	            4);
	char needle[96];
	snprintf(needle, sizeof(needle), "event=modification_needs_attention modification_id=%s",
	         CAP_K);
	ck_assert_int_eq(world_log_count(&w, needle), 1);
	/* no poll (1h) and no notification: a handful of sweeps, not a busy loop */
	int sweeps = world_log_count(&w, "event=expiry_swept");
	ck_assert_msg(sweeps >= 2 && sweeps <= 4, "%d sweeps", sweeps);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts WHERE kind = "
	                                 "'needs_attention'"),
	                 3);
	world_down(&w);
}
END_TEST

START_TEST(threshold_crossing_wakes_the_timer)
{
	struct world w;
	world_up_with(&w, &no_gateway,
	              "[daemon]\npoll_interval = 1h\n[alerts]\nexpiry_thresholds = 24h, 4h\n");
	/* inside 24h now; crosses into 4h in three seconds, expires four hours later */
	const char *o =
	    add_order(&w, "t-o", "authorized", "now()", "now() + interval '4h' + interval '3s'");
	char key24[48], key4[48];
	snprintf(key24, sizeof(key24), "%s:24h", o);
	snprintf(key4, sizeof(key4), "%s:4h", o);
	daemonproc_start(&w.d, false);
	world_await(&w, "SELECT count(*) FROM smartpay.alerts WHERE dedup_key LIKE '%:24h'", 1);
	ck_assert_int_eq(world_count(&w,
	                             "SELECT count(*) FROM smartpay.alerts WHERE dedup_key LIKE "
	                             "'%:4h'"),
	                 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	world_await(&w, "SELECT count(*) FROM smartpay.alerts WHERE dedup_key LIKE '%:4h'", 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
	ck_assert_msg(ms < 6000, "the 4h alert came after %ld ms", ms);
	char want[64];
	snprintf(want, sizeof(want), "critical|%s|-", o);
	assert_alert(&w, "authorization_expiring", key4, want);
	snprintf(want, sizeof(want), "warning|%s|-", o);
	assert_alert(&w, "authorization_expiring", key24, want);
	world_down(&w);
}
END_TEST

/* ---- webhook receiver ---- */

#define MAX_ALERTS 16

struct receiver {
	struct event_base *base;
	struct evhttp *http;
	int port;
	int failures_first; /* answer 500 to this many attempts of each alert */
	int64_t ids[MAX_ALERTS];
	int attempts[MAX_ALERTS];
	int accepted[MAX_ALERTS];
	json_object *bodies[MAX_ALERTS]; /* the accepted document of each alert */
	int bad_requests;                /* wrong method, path, token or content type */
};

static void receiver_cb(struct evhttp_request *req, void *arg)
{
	struct receiver *r = arg;
	const char *uri = evhttp_request_get_uri(req);
	const char *ctype =
	    evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char *body = calloc(1, len + 1);
	evbuffer_remove(in, body, len);
	json_object *doc = json_tokener_parse(body);
	free(body);
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST ||
	    strcmp(uri, "/hook?token=s3cr3t-token") != 0 || ctype == NULL ||
	    strcmp(ctype, "application/json") != 0 || doc == NULL) {
		r->bad_requests++;
		json_object_put(doc);
		evhttp_send_reply(req, 400, "Bad Request", NULL);
		return;
	}
	int64_t id = json_object_get_int64(json_object_object_get(doc, "alert_id"));
	int slot = 0;
	while (slot < MAX_ALERTS && r->ids[slot] != 0 && r->ids[slot] != id)
		slot++;
	ck_assert_int_lt(slot, MAX_ALERTS);
	r->ids[slot] = id;
	r->attempts[slot]++;
	if (r->attempts[slot] <= r->failures_first) {
		json_object_put(doc);
		evhttp_send_reply(req, 500, "Internal Server Error", NULL);
		return;
	}
	r->accepted[slot]++;
	json_object_put(r->bodies[slot]);
	r->bodies[slot] = doc;
	evhttp_send_reply(req, 200, "OK", NULL);
}

static void receiver_start(struct receiver *r, int failures_first)
{
	memset(r, 0, sizeof(*r));
	r->failures_first = failures_first;
	r->base = event_base_new();
	r->http = evhttp_new(r->base);
	struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(r->http, "127.0.0.1", 0);
	ck_assert_ptr_nonnull(s);
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	ck_assert_int_eq(getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&sa, &len),
	                 0);
	r->port = ntohs(sa.sin_port);
	evhttp_set_gencb(r->http, receiver_cb, r);
}

static void receiver_stop(struct receiver *r)
{
	evhttp_free(r->http);
	event_base_free(r->base);
	for (int i = 0; i < MAX_ALERTS; i++)
		json_object_put(r->bodies[i]);
}

/* The slot of an alert id, or -1. */
static int receiver_slot(const struct receiver *r, int64_t id)
{
	for (int i = 0; i < MAX_ALERTS; i++)
		if (r->ids[i] == id)
			return i;
	return -1;
}

/* Serves the receiver while waiting for `sql` to count `want` (then serves `linger_ms`
 * more, so that a duplicate would be seen). */
static void serve_until(struct world *w, struct receiver *r, const char *sql, long long want,
                        int linger_ms)
{
	long long got = -1;
	for (int waited = 0; waited < WAIT_MS; waited += 10) {
		event_base_loop(r->base, EVLOOP_NONBLOCK);
		got = pgtest_int(w->db, sql);
		if (got == want)
			break;
		usleep(10000);
	}
	if (got != want)
		daemonproc_print_log(&w->d);
	ck_assert_msg(got == want, "%s: got %lld, want %lld", sql, got, want);
	for (int waited = 0; waited < linger_ms; waited += 10) {
		event_base_loop(r->base, EVLOOP_NONBLOCK);
		usleep(10000);
	}
}

/* Checks that alert `id` reached the receiver once after `failures` failures, with the
 * document the database holds. */
static void assert_delivered_once(struct world *w, struct receiver *r, const char *id, int failures)
{
	int slot = receiver_slot(r, strtoll(id, NULL, 10));
	ck_assert_msg(slot >= 0, "alert %s never received", id);
	ck_assert_int_eq(r->attempts[slot], failures + 1);
	ck_assert_int_eq(r->accepted[slot], 1);
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT kind || '|' || severity || '|' || coalesce(order_id, '-') || '|' || "
	         "message || '|' || to_char(created_at AT TIME ZONE 'UTC', "
	         "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') || '|' || webhook_state || '|' || "
	         "webhook_attempts || '|' || coalesce(webhook_last_error, '-') || '|' || "
	         "(webhook_delivered_at IS NOT NULL) FROM smartpay.alerts WHERE alert_id = %s",
	         id);
	char *row = pgtest_value(w->db, sql);
	json_object *b = r->bodies[slot];
	const char *order = json_object_get_string(json_object_object_get(b, "order_id"));
	char want[1024];
	snprintf(want, sizeof(want), "%s|%s|%s|%s|%s|delivered|%d|%s|true",
	         json_object_get_string(json_object_object_get(b, "kind")),
	         json_object_get_string(json_object_object_get(b, "severity")), order ? order : "-",
	         json_object_get_string(json_object_object_get(b, "message")),
	         json_object_get_string(json_object_object_get(b, "created_at")), failures + 1,
	         failures ? "http 500" : "-");
	ck_assert_str_eq(row, want);
	free(row);
}

START_TEST(webhook_delivers_each_alert_once_despite_failures)
{
	struct receiver r;
	receiver_start(&r, 2);
	char extra[256];
	snprintf(extra, sizeof(extra),
	         "[daemon]\npoll_interval = 1h\n[alerts]\nexpiry_thresholds = 24h, 4h\n"
	         "webhook_url = http://127.0.0.1:%d/hook?token=s3cr3t-token\n",
	         r.port);
	struct world w;
	world_up_with(&w, &no_gateway, extra);
	add_order(&w, "t-a", "authorized", "now()", "now() + interval '20h'");
	add_order(&w, "t-b", "authorized", "now() - interval '121h'", "NULL");
	/* acknowledged before anyone sent it: never sent */
	pgtest_exec(w.db,
	            "INSERT INTO smartpay.alerts (kind, severity, dedup_key, message, "
	            "acknowledged_at) VALUES ('test', 'warning', 'acked', 'seen already', now())");

	daemonproc_start(&w.d, false);
	serve_until(&w, &r,
	            "SELECT count(*) FROM smartpay.alerts WHERE webhook_state = 'delivered'", 2,
	            1000);
	/* a new alert from anyone wakes the daemon by NOTIFY (no poll: 1h) */
	pgtest_exec(w.db, "INSERT INTO smartpay.alerts (kind, severity, order_id, dedup_key, "
	                  "message) VALUES ('test', 'critical', '77', 'late', 'raised later')");
	serve_until(&w, &r,
	            "SELECT count(*) FROM smartpay.alerts WHERE webhook_state = 'delivered'", 3,
	            1500);

	PGresult *res = pgtest_query(w.db, "SELECT alert_id FROM smartpay.alerts WHERE "
	                                   "acknowledged_at IS NULL ORDER BY alert_id");
	ck_assert_int_eq(PQntuples(res), 3);
	for (int i = 0; i < PQntuples(res); i++)
		assert_delivered_once(&w, &r, PQgetvalue(res, i, 0), 2);
	PQclear(res);
	char *acked = pgtest_value(w.db, "SELECT alert_id FROM smartpay.alerts WHERE "
	                                 "dedup_key = 'acked'");
	ck_assert_int_eq(receiver_slot(&r, strtoll(acked, NULL, 10)), -1);
	free(acked);
	ck_assert_int_eq(r.bad_requests, 0);

	/* PostgreSQL restarts: the daemon reconnects and LISTENs again */
	pgtest_restart(false);
	PQreset(w.db);
	ck_assert_int_eq(PQstatus(w.db), CONNECTION_OK);
	/* both connections, the engine's and the housekeeping one, twice */
	world_await_log(&w, "event=db_connected", 4);
	world_await_log(&w, "event=expiry_swept", 2);
	usleep(300000); /* the webhook round after the reconnect is over */
	pgtest_exec(w.db, "INSERT INTO smartpay.alerts (kind, severity, dedup_key, message) "
	                  "VALUES ('test', 'warning', 'after-restart', 'raised after a restart')");
	serve_until(&w, &r,
	            "SELECT count(*) FROM smartpay.alerts WHERE webhook_state = 'delivered'", 4,
	            1000);
	char *late = pgtest_value(w.db, "SELECT alert_id FROM smartpay.alerts WHERE "
	                                "dedup_key = 'after-restart'");
	assert_delivered_once(&w, &r, late, 2);
	free(late);
	ck_assert_int_eq(world_log_count(&w, "event=webhook_failed"), 8);
	ck_assert_int_eq(world_log_count(&w, "event=webhook_delivered"), 4);
	char url[96];
	snprintf(url, sizeof(url), "url=http://127.0.0.1:%d/hook ", r.port);
	ck_assert_int_eq(world_log_count(&w, url), 8);
	ck_assert_int_eq(daemonproc_stop(&w.d), 0);
	/* the token in the query string never reaches the log */
	ck_assert_int_eq(world_log_count(&w, "s3cr3t"), 0);
	world_down(&w);
	receiver_stop(&r);
}
END_TEST

START_TEST(gateway_unreachable_once_per_episode)
{
	struct world w;
	world_up_with(&w, &with_sim,
	              "[daemon]\nmax_attempts = 100000\n[alerts]\ngateway_unreachable = 1s\n");
	/* every request is reset before an answer: SmartPay is unreachable */
	ck_assert(simproc_set_faults(w.sim, "{\"reset_rate\": 1.0}"));
	char *txn = simproc_create_txn(w.sim, "10.00", "EUR");
	ck_assert_ptr_nonnull(txn);
	add_order(&w, txn, "shipped", "now()", "NULL");
	free(txn);
	daemonproc_start(&w.d, false);
	world_await(&w,
	            "SELECT count(*) FROM smartpay.alerts WHERE kind = 'gateway_unreachable' AND "
	            "severity = 'critical'",
	            1);
	/* the same episode goes on: still one alert */
	usleep(2500000);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts WHERE kind = "
	                                 "'gateway_unreachable'"),
	                 1);
	ck_assert_int_eq(world_log_count(&w, "event=gateway_unreachable"), 1);
	/* recovery: the retried capture gets its answer */
	ck_assert(simproc_clear_faults(w.sim));
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'", 1);
	/* a new episode: a new alert */
	ck_assert(simproc_set_faults(w.sim, "{\"reset_rate\": 1.0}"));
	txn = simproc_create_txn(w.sim, "20.00", "EUR");
	ck_assert_ptr_nonnull(txn);
	add_order(&w, txn, "shipped", "now()", "NULL");
	free(txn);
	world_await(&w, "SELECT count(*) FROM smartpay.alerts WHERE kind = 'gateway_unreachable'",
	            2);
	ck_assert_int_eq(world_count(&w,
	                             "SELECT count(DISTINCT dedup_key) FROM smartpay.alerts WHERE "
	                             "kind = 'gateway_unreachable'"),
	                 2);
	char *msg = pgtest_value(w.db, "SELECT message FROM smartpay.alerts WHERE kind = "
	                               "'gateway_unreachable' ORDER BY alert_id LIMIT 1");
	ck_assert_msg(strstr(msg, "longer than 1s") != NULL, "%s", msg);
	free(msg);
	ck_assert(simproc_clear_faults(w.sim));
	world_down(&w);
}
END_TEST

/* Statements the server logged for database `db` from byte `from` of its log: all of
 * them, and those of the alerts module (the sweep and the webhook claim). */
static void count_statements(const char *db, long from, int *all, int *sweeps, int *claims)
{
	FILE *f = fopen(pgtest_log_path(), "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, from, SEEK_SET), 0);
	char tag[96];
	snprintf(tag, sizeof(tag), " db=%s ", db);
	*all = *sweeps = *claims = 0;
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		if (strstr(line, tag) == NULL)
			continue;
		if (strstr(line, "LOG:  statement: ") == NULL &&
		    strstr(line, "LOG:  execute ") == NULL)
			continue;
		(*all)++;
		if (strstr(line, "'authorization_expiring'"))
			(*sweeps)++;
		if (strstr(line, "webhook_next_attempt_at <= now()"))
			(*claims)++;
	}
	free(line);
	fclose(f);
}

static long log_size(void)
{
	FILE *f = fopen(pgtest_log_path(), "r");
	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fclose(f);
	return n;
}

START_TEST(idle_daemon_query_rate)
{
	struct receiver r;
	receiver_start(&r, 0);
	char extra[256];
	snprintf(extra, sizeof(extra),
	         "[daemon]\npoll_interval = 2s\n[alerts]\n"
	         "webhook_url = http://127.0.0.1:%d/hook?token=s3cr3t-token\n",
	         r.port);
	struct world w;
	world_up_with(&w, &no_gateway, extra);
	/* an authorization far from any threshold: the next crossing is hours away */
	add_order(&w, "t-z", "authorized", "now()", "now() + interval '100h'");
	daemonproc_start(&w.d, false);
	world_await_log(&w, "event=expiry_swept", 1);
	usleep(500000);
	long from = log_size();
	const int window_s = 10;
	sleep(window_s);
	int all, sweeps, claims;
	count_statements(w.dbname, from, &all, &sweeps, &claims);
	fprintf(stderr,
	        "idle daemon, poll_interval 2s: %d statements in %d s (%d per minute); "
	        "alerts sweeps %d, webhook claims %d\n",
	        all, window_s, all * 60 / window_s, sweeps, claims);
	/* the engine's poll: claim due, open requests, candidates (3 per poll) */
	ck_assert_msg(all >= 3 && all <= 3 * (window_s / 2 + 1), "%d statements", all);
	ck_assert_int_eq(sweeps, 0);
	ck_assert_int_eq(claims, 0);
	ck_assert_int_eq(world_log_count(&w, "event=expiry_swept"), 1);
	world_down(&w);
	receiver_stop(&r);
}
END_TEST

/* ---- a shop with history: indexes, summaries, the housekeeping connection ---- */

/* How many server log lines from byte `from` on, for database `db`, contain `needle`
 * (printed on stderr with `show`). */
static int server_log_count(const char *db, long from, const char *needle, bool show)
{
	char *text = testutil_read_file(pgtest_log_path());
	ck_assert_ptr_nonnull(text);
	char tag[96];
	snprintf(tag, sizeof(tag), " db=%s ", db);
	int n = 0;
	for (char *line = text + from; line && *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = '\0';
		if (strstr(line, tag) && strstr(line, needle)) {
			n++;
			if (show)
				fprintf(stderr, "%.300s\n", line);
		}
		line = end ? end + 1 : NULL;
	}
	free(text);
	return n;
}

/* The plan auto_explain logged for the last statement of database `db` whose text starts
 * with `query_start`, from byte `from` of the server log on (malloc'd; NULL if none). */
static char *logged_plan(const char *db, long from, const char *query_start)
{
	char *text = testutil_read_file(pgtest_log_path());
	ck_assert_ptr_nonnull(text);
	char tag[96], query[256];
	snprintf(tag, sizeof(tag), " db=%s LOG:  duration:", db);
	snprintf(query, sizeof(query), "Query Text: %s", query_start);
	char *plan = NULL;
	for (char *p = text + from; (p = strstr(p, tag)) != NULL; p++) {
		/* the plan runs until the next line with the log line prefix */
		char *end = strstr(p + 1, "\n20");
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char *entry = xstrndup(p, len);
		if (strstr(entry, query)) {
			free(plan);
			plan = entry;
		} else {
			free(entry);
		}
	}
	free(text);
	return plan;
}

/* Fills public.orders with `n` orders of years of history: delivered and captured long
 * ago (authorized 10 to 400 days ago, deadlines from authorized_at), and every 200th one
 * authorized recently with a deadline the shop set a few hours ahead. */
static void add_history(struct world *w, int n)
{
	char sql[1024];
	snprintf(sql, sizeof(sql),
	         "INSERT INTO public.orders (smartpay_transaction_id, amount, status, "
	         "authorized_at, authorization_expires_at) SELECT 'h-' || g, 10.00, "
	         "CASE WHEN g %% 200 = 0 THEN 'authorized' ELSE 'delivered' END, "
	         "CASE WHEN g %% 200 = 0 THEN now() - interval '1 hour' "
	         "ELSE now() - interval '10 days' - (g %% 390) * interval '1 day' END, "
	         "CASE WHEN g %% 200 = 0 THEN now() + interval '30 hours' END "
	         "FROM generate_series(1, %d) g",
	         n);
	pgtest_exec(w->db, sql);
	pgtest_exec(w->db, "ANALYZE public.orders");
}

START_TEST(sweep_reads_the_window_through_the_indexes)
{
	struct world w;
	world_up_with(&w, &no_gateway,
	              "[daemon]\npoll_interval = 1h\n[alerts]\nexpiry_thresholds = 24h, 4h\n");
	pgtest_exec(w.db, "DROP INDEX public.orders_authorized_at_idx");
	pgtest_exec(w.db, "DROP INDEX public.orders_authorization_expires_at_idx");
	add_history(&w, 200000);

	/* without the indexes: the start says which ones to create */
	daemonproc_start(&w.d, false);
	world_await_log(&w, "event=orders_index_missing", 2);
	world_await_log(&w, "event=expiry_swept", 1);
	ck_assert_int_eq(daemonproc_stop(&w.d), 0);
	for (size_t i = 0; i < store_index_need_count; i++) {
		const char *column = store_index_needs[i].column;
		char *err = NULL;
		char *create = store_index_statement(w.db, "public.orders", column, &err);
		ck_assert_ptr_nonnull(create);
		char *needle = xasprintf("event=orders_index_missing relation=public.orders "
		                         "column=%s ",
		                         column);
		ck_assert_msg(world_log_count(&w, needle) == 1, "no log line with %s", needle);
		free(needle);
		char *name = store_index_name("public.orders", column);
		ck_assert_msg(world_log_count(&w, name) >= 1, "the log never names %s", name);
		free(name);
		/* the shop creates them as the warning says */
		pgtest_exec(w.db, create);
		free(create);
	}
	pgtest_exec(w.db, "ANALYZE public.orders");

	/* the next sweep's plan, as the server ran it, reads orders through both indexes */
	char sql[256];
	snprintf(sql, sizeof(sql), "ALTER DATABASE \"%s\" SET auto_explain.log_min_duration = 0",
	         w.dbname);
	pgtest_exec(w.db, sql);
	long from = log_size();
	int missing = world_log_count(&w, "event=orders_index_missing");
	int swept = world_log_count(&w, "event=expiry_swept");
	daemonproc_start(&w.d, false);
	world_await_log(&w, "event=expiry_swept", swept + 1);
	ck_assert_int_eq(world_log_count(&w, "event=orders_index_missing"), missing);
	char *plan = logged_plan(w.dbname, from, "WITH thr AS");
	ck_assert_msg(plan != NULL, "no plan of the sweep in the server log");
	for (size_t i = 0; i < store_index_need_count; i++) {
		char *name = store_index_name("public.orders", store_index_needs[i].column);
		char *bitmap = xasprintf("Bitmap Index Scan on %s", name);
		char *scan = xasprintf("Index Scan using %s on orders", name);
		ck_assert_msg(strstr(plan, bitmap) || strstr(plan, scan), "%s not used:\n%s", name,
		              plan);
		free(bitmap);
		free(scan);
		free(name);
	}
	ck_assert_msg(strstr(plan, "Seq Scan on orders") == NULL, "%s", plan);
	free(plan);
	/* nothing in the history is alerted: the recent ones expire in 30h (beyond 24h), the
	 * old ones expired more than [alerts] expired_lookback (24h) ago */
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts"), 0);
	snprintf(sql, sizeof(sql), "ALTER DATABASE \"%s\" RESET auto_explain.log_min_duration",
	         w.dbname);
	pgtest_exec(w.db, sql);
	world_down(&w);
}
END_TEST

/* The number of alerts `smartpayctl alerts --all --json` lists. */
static int ctl_alert_count(struct world *w)
{
	struct testutil_run r =
	    testutil_run_built("smartpayctl",
	                       (const char *[]){"-c", w->d.conf, "--json", "alerts", "--all",
	                                        "--limit", "100000", NULL},
	                       w->d.dir);
	ck_assert_msg(r.status == 0, "smartpayctl alerts: %d\n%s%s", r.status, r.out, r.err);
	json_object *doc = json_tokener_parse(r.out);
	ck_assert_ptr_nonnull(doc);
	json_object *list = json_object_object_get(doc, "alerts");
	ck_assert(json_object_is_type(list, json_type_array));
	int n = (int)json_object_array_length(list);
	json_object_put(doc);
	testutil_run_free(&r);
	return n;
}

START_TEST(large_first_batch_is_summarised)
{
	struct receiver r;
	receiver_start(&r, 0);
	char extra[320];
	snprintf(extra, sizeof(extra),
	         "[daemon]\npoll_interval = 1h\n[alerts]\nexpiry_thresholds = 24h, 4h\n"
	         "summary_after = 5\nexpired_lookback = 2d\n"
	         "webhook_url = http://127.0.0.1:%d/hook?token=s3cr3t-token\n",
	         r.port);
	struct world w;
	world_up_with(&w, &no_gateway, extra);
	/* 500 authorizations about to expire, 40 expired yesterday, 10 expired a week ago
	 * (beyond expired_lookback: history, never alerted) */
	pgtest_exec(w.db, "INSERT INTO public.orders (smartpay_transaction_id, amount, status, "
	                  "authorized_at, authorization_expires_at) SELECT 'x-' || g, 10.00, "
	                  "'authorized', now(), now() + interval '2 hours' + g * interval '1s' "
	                  "FROM generate_series(1, 500) g");
	pgtest_exec(w.db, "INSERT INTO public.orders (smartpay_transaction_id, amount, status, "
	                  "authorized_at) SELECT 'y-' || g, 10.00, 'authorized', "
	                  "now() - interval '144 hours' - g * interval '1 minute' "
	                  "FROM generate_series(1, 40) g");
	pgtest_exec(w.db, "INSERT INTO public.orders (smartpay_transaction_id, amount, status, "
	                  "authorized_at) SELECT 'z-' || g, 10.00, 'authorized', "
	                  "now() - interval '12 days' FROM generate_series(1, 10) g");

	daemonproc_start(&w.d, false);
	/* 5 of each kind one by one, and one summary each */
	serve_until(&w, &r,
	            "SELECT count(*) FROM smartpay.alerts WHERE webhook_state = 'delivered'", 12,
	            2000);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts"), 542);
	ck_assert_int_eq(world_count(&w,
	                             "SELECT count(*) FROM smartpay.alerts WHERE summarised AND "
	                             "webhook_state = 'none'"),
	                 530);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts WHERE kind = "
	                                 "'authorization_expiring'"),
	                 500);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts WHERE kind = "
	                                 "'authorization_expired'"),
	                 40);
	char *summaries = pgtest_value(
	    w.db, "SELECT string_agg(severity || '|' || split_part(dedup_key, ':', 1) || '|' || "
	          "split_part(message, ' alerts in', 1), ',' ORDER BY dedup_key) "
	          "FROM smartpay.alerts WHERE kind = 'alerts_summarised'");
	ck_assert_str_eq(summaries, "critical|authorization_expired|35 more authorization_expired,"
	                            "critical|authorization_expiring|495 more "
	                            "authorization_expiring");
	free(summaries);
	/* the most urgent ones are the ones sent one by one */
	ck_assert_int_eq(world_count(&w,
	                             "SELECT count(*) FROM smartpay.alerts a JOIN public.orders o "
	                             "ON o.id::text = a.order_id WHERE a.kind = "
	                             "'authorization_expiring' AND NOT a.summarised AND "
	                             "o.smartpay_transaction_id IN ('x-1', 'x-2', 'x-3', 'x-4', "
	                             "'x-5')"),
	                 5);
	ck_assert_int_eq(world_log_count(&w, "event=alert_raised"), 12);
	ck_assert_int_eq(world_log_count(&w, "event=alert_raised alert_id="), 12);
	ck_assert_int_eq(world_log_count(&w, "kind=alerts_summarised"), 2);
	int posts = 0, received = 0;
	for (int i = 0; i < MAX_ALERTS; i++) {
		posts += r.attempts[i];
		received += r.ids[i] != 0;
	}
	ck_assert_int_eq(posts, 12);
	ck_assert_int_eq(received, 12);
	ck_assert_int_eq(r.bad_requests, 0);
	/* every row stays queryable */
	ck_assert_int_eq(ctl_alert_count(&w), 542);

	/* the next sweep raises nothing again */
	int swept = world_log_count(&w, "event=expiry_swept");
	pgtest_exec(w.db, "SELECT pg_notify('smartpay_orders', '999999')");
	world_await_log(&w, "event=expiry_swept", swept + 1);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts"), 542);
	ck_assert_int_eq(world_log_count(&w, "event=alert_raised"), 12);
	world_down(&w);
	receiver_stop(&r);
}
END_TEST

/* The value of a series without labels in a /metrics body, or -1 when absent. */
static double metric_value(const char *body, const char *name)
{
	char needle[128];
	snprintf(needle, sizeof(needle), "\n%s ", name);
	const char *p = strstr(body, needle);
	return p ? strtod(p + strlen(needle), NULL) : -1;
}

START_TEST(metrics_scrapes_never_query_the_database)
{
	int port = testutil_free_port();
	ck_assert_int_gt(port, 0);
	char extra[256];
	snprintf(extra, sizeof(extra),
	         "[daemon]\npoll_interval = 1h\n[metrics]\nlisten = 127.0.0.1:%d\n"
	         "gauges_interval = 1h\n",
	         port);
	struct world w;
	world_up_with(&w, &no_gateway, extra);
	add_order(&w, "t-g", "authorized", "now()", "now() + interval '2h'");
	long from = log_size();
	daemonproc_start(&w.d, false);
	char url[96];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port);
	ck_assert_int_eq(world_wait_status(url, 200, WAIT_MS), 200);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	double first_age = -1, last_age = -1;
	for (int i = 0; i < 50; i++) {
		char *body = NULL;
		ck_assert_int_eq(world_http("GET", url, 10000, &body), 200);
		double age = metric_value(body, "smartpayd_database_gauges_age_seconds");
		free(body);
		/* the scrapes before the first read answer without the gauges */
		if (age >= 0 && first_age < 0)
			first_age = age;
		last_age = age;
		testutil_sleep_ms(150);
	}
	ck_assert_msg(first_age >= 0, "the gauges were never read");
	/* one background read since the start, whatever the scrapes; they saw it age */
	int reads = server_log_count(w.dbname, from, "width_bucket(", false);
	if (reads != 1)
		server_log_count(w.dbname, from, "width_bucket(", true);
	ck_assert_msg(reads == 1, "%d gauge queries for 50 scrapes", reads);
	ck_assert_msg(last_age >= first_age + 5, "gauges age %.3f then %.3f", first_age, last_age);
	world_down(&w);
}
END_TEST

/* A trigger that holds every insert of an 'authorization_expiring' alert for 20 s: a
 * sweep that raises one runs that long. */
static void slow_down_sweeps(struct world *w)
{
	pgtest_exec(w->db, "CREATE FUNCTION public.slow_alert() RETURNS trigger LANGUAGE plpgsql "
	                   "AS $$ BEGIN PERFORM pg_sleep(20); RETURN NEW; END $$");
	pgtest_exec(w->db,
	            "CREATE TRIGGER slow_alert BEFORE INSERT ON smartpay.alerts FOR EACH ROW "
	            "WHEN (NEW.kind = 'authorization_expiring') "
	            "EXECUTE FUNCTION public.slow_alert()");
}

#define SWEEP_RUNNING                                                                              \
	"SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "            \
	"state = 'active' AND query LIKE 'WITH thr AS%'"

START_TEST(capture_does_not_wait_for_a_sweep)
{
	struct world w;
	world_up_with(&w, &with_sim,
	              "[daemon]\npoll_interval = 1h\n[alerts]\nexpiry_thresholds = 24h, 4h\n");
	slow_down_sweeps(&w);
	add_order(&w, "t-slow", "authorized", "now()", "now() + interval '2h'");
	daemonproc_start(&w.d, false);
	world_await(&w, SWEEP_RUNNING, 1);

	/* an order shipped while the sweep runs is captured before the sweep ends */
	char *txn = simproc_create_txn(w.sim, "10.00", "EUR");
	ck_assert_ptr_nonnull(txn);
	const char *shipped = add_order(&w, txn, "shipped", "now()", "NULL");
	free(txn);
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE order_id = '%s' AND "
	         "kind = 'capture' AND state = 'succeeded'",
	         shipped);
	world_await(&w, sql, 1);
	ck_assert_msg(world_count(&w, SWEEP_RUNNING) == 1,
	              "the capture was recorded after the sweep");
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts"), 0);
	/* the sweep ends in its own time and raises its alert */
	world_await(
	    &w, "SELECT count(*) FROM smartpay.alerts WHERE kind = 'authorization_expiring'", 1);
	world_down(&w);
}
END_TEST

static Suite *alerts_suite(void)
{
	Suite *s = suite_create("alerts");
	TCase *pure = tcase_create("pure");
	tcase_add_test(pure, threshold_labels_are_compact);
	tcase_add_test(pure, webhook_url_is_redacted);
	tcase_add_test(pure, webhook_body_has_every_field);
	tcase_add_test(pure, orders_index_statements);
	suite_add_tcase(s, pure);
	TCase *daemon = tcase_create("daemon");
	tcase_set_timeout(daemon, 90);
	tcase_add_test(daemon, expiry_alerts_once_per_order_and_threshold);
	tcase_add_test(daemon, pending_capture_past_deadline_needs_attention);
	tcase_add_test(daemon, threshold_crossing_wakes_the_timer);
	tcase_add_test(daemon, webhook_delivers_each_alert_once_despite_failures);
	tcase_add_test(daemon, gateway_unreachable_once_per_episode);
	tcase_add_test(daemon, idle_daemon_query_rate);
	tcase_add_test(daemon, sweep_reads_the_window_through_the_indexes);
	tcase_add_test(daemon, large_first_batch_is_summarised);
	tcase_add_test(daemon, metrics_scrapes_never_query_the_database);
	tcase_add_test(daemon, capture_does_not_wait_for_a_sweep);
	tcase_add_test(daemon, empty_orders_notification_sweeps_every_order);
	suite_add_tcase(s, daemon);
	return s;
}

int main(void)
{
	/* every statement in the server log, with its database, for the idle query count */
	struct pgtest_options opts = {.extra_conf = "log_statement = all\n"
	                                            "log_line_prefix = '%m [%p] db=%d '\n"
	                                            "shared_preload_libraries = 'auto_explain'\n"
	                                            "auto_explain.log_min_duration = -1"};
	pgtest_start_with(&opts);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int status = testutil_run_suite(alerts_suite(), CK_NORMAL);
	curl_global_cleanup();
	pgtest_stop();
	return status;
}
