#include "autoconfig.h"

#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "store_migrate.h"
#include "money.h"
#include "pgtest.h"
#include "testutil.h"
#include "xmalloc.h"

/* The seeded ledger's fixed ids. */
#define M_CAPTURE_1 "11111111-1111-4111-8111-111111111111" /* order 1, 100.00 EUR, succeeded */
#define M_CAPTURE_3 "33333333-3333-4333-8333-333333333333" /* order 3, 1000 JPY, succeeded */
#define M_STUCK_3 "44444444-4444-4444-8444-444444444444"   /* order 3 refund, needs_attention */
#define M_PENDING_1 "55555555-5555-4555-8555-555555555555" /* order 1 refund 10.00, pending */
#define M_REFUSED_1 "66666666-6666-4666-8666-666666666666" /* order 1 refund 50.00, refused */
#define STUCK_BODY                                                                                 \
	"{\"transactionId\":\"tx-3\",\"merchantKey\":\"test-merchant\",\"modificationId\":"        \
	"\"44444444-4444-4444-8444-444444444444\",\"modifiedAmount\":{\"amount\":100,"             \
	"\"currencyCode\":\"JPY\"}}"

/* A seeded shop database and a configuration file for it. */
struct shop {
	char *conninfo;
	char *config;
	PGconn *conn;
};

/* Runs smartpayctl -c CONFIG ARGS... and checks the exit status (PGTEST_CTL). */
#define CTL(shop, expect, ...) PGTEST_CTL((shop)->config, (expect), __VA_ARGS__)

/* Runs smartpayctl, which must exit 0, and returns its stdout as JSON (json_object_put
 * it). */
#define CTL_JSON(shop, ...) ctl_json(PGTEST_CTL((shop)->config, 0, __VA_ARGS__))

/* Runs smartpayctl, which must exit 0 and print exactly `out`. */
#define CTL_PRINTS(shop, out, ...) ctl_prints(PGTEST_CTL((shop)->config, 0, __VA_ARGS__), (out))

/* The same, then checks that stderr holds `err_has` (NULL: anything) and frees the run. */
#define CTL_CHECK(shop, expect, err_has, ...)                                                      \
	PGTEST_CTL_CHECK((shop)->config, (expect), (err_has), __VA_ARGS__)

/* The seeded shop: five orders, six modifications, a request, three alerts.
 *   order 1  shipped, 100.00 EUR captured; refund 10.00 pending (oldest pending, 2 h),
 *            refund 50.00 refused
 *   order 2  authorized 100 h ago, nothing captured: expires in 20 h
 *   order 3  shipped, 1000 JPY captured; refund 100 JPY needs_attention (a shop request)
 *   order 4  authorized 130 h ago: expired
 *   order 5  authorized 10 h ago: expires in 110 h
 * Alerts: 1 needs_attention (order 3, open), 2 authorization_expiring (order 2, open),
 * 3 modification_refused (order 1, acknowledged by bob). */
static void seed(PGconn *conn)
{
	pgtest_exec(conn,
	            "INSERT INTO orders (id, status, smartpay_transaction_id, amount, currency, "
	            "authorized_at) VALUES "
	            "(1, 'shipped', 'tx-1', 100.00, 'EUR', now() - interval '30 hours'), "
	            "(2, 'authorized', 'tx-2', 50.00, 'EUR', now() - interval '100 hours'), "
	            "(3, 'shipped', 'tx-3', 1000, 'JPY', now() - interval '30 hours'), "
	            "(4, 'authorized', 'tx-4', 20.00, 'EUR', now() - interval '130 hours'), "
	            "(5, 'packed', 'tx-5', 20.00, 'EUR', now() - interval '10 hours')");
	pgtest_exec(
	    conn,
	    "INSERT INTO smartpay.requests (request_id, order_id, kind, amount_minor, currency, "
	    "reason, requested_by) VALUES (1, '3', 'refund', 100, 'JPY', 'late delivery', 'shop')");
	pgtest_exec(conn, "SELECT setval('smartpay.requests_request_id_seq', 1)");
	pgtest_exec(
	    conn,
	    "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, kind, "
	    "amount_minor, currency, request_body, state, attempts, deadline, http_status, "
	    "response_body, payment_status, reconciliation_reference_id, reason, created_at, "
	    "updated_at, completed_at, lease_owner, lease_generation, lease_expires_at, "
	    "next_attempt_at, request_id) VALUES "
	    "('" M_CAPTURE_1
	    "', '1', 'tx-1', 'capture', 10000, 'EUR', '{\"transactionId\":\"tx-1\"}', "
	    "'succeeded', 1, now() + interval '90 hours', 200, '{\"paymentStatus\":\"CAPTURED\"}', "
	    "'CAPTURED', 'rr-1', NULL, now() - interval '5 hours', now() - interval '5 hours', "
	    "now() - interval '5 hours', NULL, 1, NULL, now() - interval '5 hours', NULL), "
	    "('" M_CAPTURE_3
	    "', '3', 'tx-3', 'capture', 1000, 'JPY', '{\"transactionId\":\"tx-3\"}', "
	    "'succeeded', 1, now() + interval '90 hours', 200, '{}', 'CAPTURED', 'rr-3', NULL, "
	    "now() - interval '4 hours', now() - interval '4 hours', now() - interval '4 hours', "
	    "NULL, 1, NULL, now() - interval '4 hours', NULL), "
	    "('" M_STUCK_3 "', '3', 'tx-3', 'refund', 100, 'JPY', '" STUCK_BODY "', "
	    "'needs_attention', 50, NULL, 503, 'upstream timeout', NULL, NULL, "
	    "'retries exhausted after 50 attempts; last: HTTP 503', now() - interval '3 hours', "
	    "now() - interval '1 hour', now() - interval '1 hour', NULL, 50, NULL, "
	    "now() - interval '1 hour', 1), "
	    "('" M_PENDING_1
	    "', '1', 'tx-1', 'refund', 1000, 'EUR', '{\"transactionId\":\"tx-1\"}', "
	    "'pending', 2, NULL, NULL, NULL, NULL, NULL, 'retrying: HTTP 503', "
	    "now() - interval '2 hours', now() - interval '10 minutes', NULL, 'host-a', 3, "
	    "now() + interval '5 minutes', now() + interval '1 minute', NULL), "
	    "('" M_REFUSED_1
	    "', '1', 'tx-1', 'refund', 5000, 'EUR', '{\"transactionId\":\"tx-1\"}', "
	    "'refused', 1, NULL, 422, '{\"error\":\"amount\"}', NULL, NULL, 'HTTP 422', "
	    "now() - interval '90 minutes', now() - interval '90 minutes', "
	    "now() - interval '90 minutes', NULL, 1, NULL, now() - interval '90 minutes', NULL)");
	pgtest_exec(conn, "UPDATE smartpay.requests SET modification_id = '" M_STUCK_3 "'");
	pgtest_exec(
	    conn,
	    "INSERT INTO smartpay.alerts (alert_id, kind, severity, order_id, "
	    "modification_id, dedup_key, message, created_at, acknowledged_at, "
	    "acknowledged_by) VALUES "
	    "(1, 'needs_attention', 'critical', '3', '" M_STUCK_3 "', '" M_STUCK_3 "', "
	    "'refund for order 3: retries exhausted', now() - interval '1 hour', NULL, NULL), "
	    "(2, 'authorization_expiring', 'warning', '2', NULL, '2:24h', "
	    "'authorization of order 2 expires within 24h', now() - interval '30 minutes', "
	    "NULL, NULL), "
	    "(3, 'modification_refused', 'critical', '1', '" M_REFUSED_1 "', "
	    "'" M_REFUSED_1 "', 'refund for order 1: HTTP 422', now() - interval '80 minutes', "
	    "now() - interval '70 minutes', 'bob')");
	pgtest_exec(conn, "SELECT setval('smartpay.alerts_alert_id_seq', 3)");
}

/* A seeded shop with the configuration written (`tail` appended to it). */
static struct shop shop_open(const char *tail)
{
	struct shop s;
	char *err = NULL;
	const struct migrate_settings settings = {"public.orders", 120 * 3600 * INT64_C(1000)};

	s.conninfo = pgtest_createdb_shop(NULL);
	s.conn = pgtest_connect(s.conninfo);
	ck_assert_msg(migrate_write_settings(s.conn, &settings, &err) == 0, "%s", err);
	seed(s.conn);
	s.config = pgtest_ctl_config(s.conninfo, NULL, NULL, tail);
	return s;
}

static void shop_close(struct shop *s)
{
	PQfinish(s->conn);
	unlink(s->config);
	free(s->config);
	free(s->conninfo);
}

/* Asserts that `haystack` contains `needle`. */
#define assert_contains(haystack, needle)                                                          \
	ck_assert_msg(strstr((haystack), (needle)) != NULL, "expected \"%s\" in:\n%s", (needle),   \
	              (haystack))
#define assert_not_contains(haystack, needle)                                                      \
	ck_assert_msg(strstr((haystack), (needle)) == NULL, "unexpected \"%s\" in:\n%s", (needle), \
	              (haystack))

/* True when some line of `text`, with runs of spaces squeezed to one and leading
 * spaces dropped, equals `line`: column contents checked without their widths. */
static bool has_line(const char *text, const char *line)
{
	char *copy = xstrdup(text);
	bool found = false;

	for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l && !found;
	     l = strtok_r(NULL, "\n", &save)) {
		char squeezed[1024];
		size_t n = 0;
		for (const char *p = l; *p != '\0' && n + 1 < sizeof(squeezed); p++) {
			if (*p == ' ' && (n == 0 || squeezed[n - 1] == ' '))
				continue;
			squeezed[n++] = *p;
		}
		while (n > 0 && squeezed[n - 1] == ' ')
			n--;
		squeezed[n] = '\0';
		found = strcmp(squeezed, line) == 0;
	}
	free(copy);
	return found;
}

#define assert_line(text, line)                                                                    \
	ck_assert_msg(has_line((text), (line)), "expected the line \"%s\" in:\n%s", (line), (text))

/* The member at a dotted path ("a.b.0.c": numbers index arrays), or NULL. */
static struct json_object *jpath(struct json_object *obj, const char *path)
{
	char *copy = xstrdup(path);

	for (char *save = NULL, *key = strtok_r(copy, ".", &save); key && obj;
	     key = strtok_r(NULL, ".", &save)) {
		if (isdigit((unsigned char)key[0]) && json_object_is_type(obj, json_type_array))
			obj = json_object_array_get_idx(obj, (size_t)atoi(key));
		else if (!json_object_object_get_ex(obj, key, &obj))
			obj = NULL;
	}
	free(copy);
	return obj;
}

/* Parses a run's stdout as one JSON document. */
static struct json_object *parse(const struct testutil_run *r)
{
	struct json_object *doc = json_tokener_parse(r->out);
	ck_assert_msg(doc != NULL, "not JSON:\n%s", r->out);
	return doc;
}

/* Asserts that the value at `path` is of JSON type `type` (`what` names the type in the
 * failure), then runs `check`, which sees the value as v_. */
#define assert_jtyped(doc, path, type, what, check)                                                \
	do {                                                                                       \
		struct json_object *v_ = jpath((doc), (path));                                     \
		ck_assert_msg(v_ != NULL && json_object_is_type(v_, (type)), "%s: not %s", (path), \
		              (what));                                                             \
		check;                                                                             \
	} while (0)
#define assert_jstr(doc, path, expected)                                                           \
	assert_jtyped(doc, path, json_type_string, "a string",                                     \
	              ck_assert_str_eq(json_object_get_string(v_), (expected)))
#define assert_jint(doc, path, expected)                                                           \
	assert_jtyped(doc, path, json_type_int, "an integer",                                      \
	              ck_assert_int_eq(json_object_get_int64(v_), (expected)))
#define assert_jbool(doc, path, expected)                                                          \
	assert_jtyped(doc, path, json_type_boolean, "a boolean",                                   \
	              ck_assert_int_eq(json_object_get_boolean(v_), (expected)))
#define assert_jnull(doc, path) ck_assert_msg(jpath((doc), (path)) == NULL, "%s: not null", (path))
#define assert_jlen(doc, path, expected)                                                           \
	assert_jtyped(doc, path, json_type_array, "an array",                                      \
	              ck_assert_uint_eq(json_object_array_length(v_), (expected)))

/* Asserts that a run printed exactly `out`; frees the run. */
static void ctl_prints(struct testutil_run r, const char *out)
{
	ck_assert_str_eq(r.out, out);
	testutil_run_free(&r);
}

/* The JSON document of a run's stdout; frees the run. */
static struct json_object *ctl_json(struct testutil_run r)
{
	struct json_object *doc = parse(&r);
	testutil_run_free(&r);
	return doc;
}

/* A value from the database (must exist); free it. */
static char *db_value(PGconn *conn, const char *sql)
{
	char *v = pgtest_value(conn, sql);
	ck_assert_msg(v != NULL, "NULL from %s", sql);
	return v;
}

START_TEST(test_status)
{
	struct shop s = shop_open("");

	struct testutil_run r = CTL(&s, 0, "status");
	assert_line(r.out, "MODIFICATIONS pending succeeded refused needs_attention total");
	assert_line(r.out, "capture 0 2 0 0 2");
	assert_line(r.out, "cancel 0 0 0 0 0");
	assert_line(r.out, "refund 1 0 1 1 3");
	assert_line(r.out, "total 1 2 1 1 5");
	assert_contains(r.out, "oldest pending: " M_PENDING_1 " (refund of order 1), 2h ");
	assert_contains(r.out, "open shop requests: 0\n");
	assert_contains(
	    r.out, "authorizations expiring within 24h without a succeeded capture or cancel: 1\n");
	assert_contains(r.out, "  ORDER  STATUS      TRANSACTION  DEADLINE");
	assert_contains(r.out, "  2      authorized  tx-2         ");
	assert_contains(r.out, "open alerts: 2\n");
	assert_line(r.out, "authorization_expiring warning 1");
	assert_line(r.out, "needs_attention critical 1");
	ck_assert_str_eq(r.err, "");
	testutil_run_free(&r);

	struct json_object *doc = CTL_JSON(&s, "--json", "status");
	assert_jint(doc, "modifications.total", 5);
	assert_jint(doc, "modifications.by_state.pending", 1);
	assert_jint(doc, "modifications.by_state.succeeded", 2);
	assert_jint(doc, "modifications.by_state.needs_attention", 1);
	assert_jint(doc, "modifications.by_kind.refund.refused", 1);
	assert_jint(doc, "modifications.by_kind.refund.total", 3);
	assert_jint(doc, "modifications.by_kind.cancel_or_refund.total", 0);
	assert_jstr(doc, "oldest_pending.modification_id", M_PENDING_1);
	assert_jstr(doc, "oldest_pending.order_id", "1");
	assert_jstr(doc, "oldest_pending.kind", "refund");
	assert_jint(doc, "oldest_pending.attempts", 2);
	long long age = json_object_get_int64(jpath(doc, "oldest_pending.age_seconds"));
	ck_assert(age >= 7200 && age < 7300);
	assert_jint(doc, "open_requests.count", 0);
	assert_jnull(doc, "open_requests.oldest_requested_at");
	assert_jint(doc, "expiring.window_seconds", 86400);
	assert_jint(doc, "expiring.count", 1);
	assert_jlen(doc, "expiring.orders", 1);
	assert_jstr(doc, "expiring.orders.0.order_id", "2");
	assert_jstr(doc, "expiring.orders.0.status", "authorized");
	assert_jstr(doc, "expiring.orders.0.transaction_id", "tx-2");
	assert_jnull(doc, "expiring.orders.0.capture_state");
	long long left = json_object_get_int64(jpath(doc, "expiring.orders.0.expires_in_seconds"));
	ck_assert(left > 19 * 3600 && left <= 20 * 3600);
	assert_jint(doc, "open_alerts.total", 2);
	assert_jint(doc, "open_alerts.by_kind.needs_attention", 1);
	assert_jint(doc, "open_alerts.by_severity.critical", 1);
	assert_jint(doc, "open_alerts.by_severity.warning", 1);
	json_object_put(doc);
	shop_close(&s);

	/* the window is the largest threshold; captured, cancelled and expired orders are
	 * not listed, a pending capture is, soonest first */
	s = shop_open("[alerts]\nexpiry_thresholds = 4h, 200h\n");
	pgtest_exec(s.conn, "INSERT INTO smartpay.modifications (modification_id, order_id, "
	                    "transaction_id, kind, amount_minor, currency, request_body, state) "
	                    "VALUES (gen_random_uuid(), '5', 'tx-5', 'capture', 2000, 'EUR', '{}', "
	                    "'pending')");
	doc = CTL_JSON(&s, "status", "--json");
	assert_jint(doc, "expiring.window_seconds", 200 * 3600);
	assert_jint(doc, "expiring.count", 2);
	assert_jstr(doc, "expiring.orders.0.order_id", "2");
	assert_jstr(doc, "expiring.orders.1.order_id", "5");
	assert_jstr(doc, "expiring.orders.1.capture_state", "pending");
	json_object_put(doc);

	shop_close(&s);
}
END_TEST

START_TEST(test_list)
{
	struct shop s = shop_open("");

	struct testutil_run r = CTL(&s, 0, "list");
	assert_contains(r.out, "MODIFICATION_ID");
	/* newest first; amounts in the currency's format */
	const char *first = strstr(r.out, M_PENDING_1), *last = strstr(r.out, M_CAPTURE_1);
	ck_assert(first != NULL && last != NULL && first < last);
	assert_contains(r.out, "100.00 EUR");
	assert_contains(r.out, "100 JPY");
	assert_contains(r.out, "retries exhausted after 50 attempts; last: HTTP 503\n");
	testutil_run_free(&r);

	r = CTL(&s, 0, "list", "--state", "needs_attention");
	assert_contains(r.out, M_STUCK_3);
	assert_not_contains(r.out, M_CAPTURE_1);
	assert_not_contains(r.out, M_PENDING_1);
	testutil_run_free(&r);

	struct json_object *doc =
	    CTL_JSON(&s, "--json", "list", "--kind", "refund", "--order", "1");
	assert_jint(doc, "count", 2);
	assert_jbool(doc, "truncated", false);
	assert_jstr(doc, "modifications.0.modification_id", M_REFUSED_1);
	assert_jstr(doc, "modifications.1.modification_id", M_PENDING_1);
	assert_jstr(doc, "modifications.1.state", "pending");
	assert_jstr(doc, "modifications.1.amount", "10.00");
	assert_jint(doc, "modifications.1.amount_minor", 1000);
	assert_jstr(doc, "modifications.1.currency", "EUR");
	assert_jint(doc, "modifications.1.attempts", 2);
	assert_jstr(doc, "modifications.1.transaction_id", "tx-1");
	assert_jnull(doc, "modifications.1.completed_at");
	struct json_object *created = jpath(doc, "modifications.1.created_at");
	ck_assert(created != NULL && strlen(json_object_get_string(created)) == 24 &&
	          json_object_get_string(created)[23] == 'Z');
	json_object_put(doc);

	doc = CTL_JSON(&s, "list", "--limit", "2", "--json");
	assert_jint(doc, "count", 2);
	assert_jbool(doc, "truncated", true);
	json_object_put(doc);
	r = CTL(&s, 0, "list", "--limit", "2");
	assert_contains(r.out, "(the newest 2 shown; more match: raise --limit)");
	testutil_run_free(&r);

	CTL_PRINTS(&s, "no modifications match\n", "list", "--order", "404");
	doc = CTL_JSON(&s, "list", "--json", "--order", "404");
	assert_jlen(doc, "modifications", 0);
	json_object_put(doc);

	/* usage errors */
	shop_close(&s);
}
END_TEST

START_TEST(test_show)
{
	struct shop s = shop_open("");

	struct testutil_run r = CTL(&s, 0, "show", M_STUCK_3);
	assert_contains(r.out, "modification " M_STUCK_3 "\n");
	assert_line(r.out, "state needs_attention");
	assert_line(r.out, "amount 100 JPY");
	assert_line(r.out, "attempts 50");
	assert_line(r.out, "http_status 503");
	assert_line(r.out, "lease_generation 50");
	assert_line(r.out, "request_id 1");
	assert_contains(r.out, "\nrequest body:\n" STUCK_BODY "\n");
	assert_contains(r.out, "\nresponse body:\nupstream timeout\n");
	assert_contains(r.out, "shop request 1: refund 100 JPY, requested by shop at ");
	assert_contains(r.out, "reason \"late delivery\"");
	assert_contains(r.out, "refund for order 3: retries exhausted");
	testutil_run_free(&r);

	struct json_object *doc = CTL_JSON(&s, "show", "--json", M_STUCK_3);
	assert_jstr(doc, "modification.modification_id", M_STUCK_3);
	assert_jstr(doc, "modification.request_body", STUCK_BODY);
	assert_jstr(doc, "modification.response_body", "upstream timeout");
	assert_jint(doc, "modification.http_status", 503);
	assert_jstr(doc, "modification.amount", "100");
	assert_jstr(doc, "modification.state", "needs_attention");
	assert_jnull(doc, "modification.lease_owner");
	assert_jnull(doc, "modification.payment_status");
	assert_jint(doc, "request.request_id", 1);
	assert_jstr(doc, "request.reason", "late delivery");
	assert_jstr(doc, "request.amount", "100");
	assert_jlen(doc, "alerts", 1);
	assert_jint(doc, "alerts.0.alert_id", 1);
	assert_jstr(doc, "alerts.0.kind", "needs_attention");
	assert_jnull(doc, "alerts.0.acknowledged_at");
	json_object_put(doc);

	/* a modification without request or alerts */
	doc = CTL_JSON(&s, "--json", "show", M_CAPTURE_1);
	assert_jstr(doc, "modification.payment_status", "CAPTURED");
	assert_jstr(doc, "modification.reconciliation_reference_id", "rr-1");
	assert_jstr(doc, "modification.amount", "100.00");
	assert_jnull(doc, "request");
	assert_jlen(doc, "alerts", 0);
	json_object_put(doc);
	r = CTL(&s, 0, "show", M_CAPTURE_1);
	assert_contains(r.out, "\nalerts: none\n");
	testutil_run_free(&r);

	r = CTL(&s, 1, "show", "99999999-9999-4999-8999-999999999999");
	assert_contains(r.err, "no modification 99999999-9999-4999-8999-999999999999");
	ck_assert_str_eq(r.out, "");
	testutil_run_free(&r);
	r = CTL(&s, 1, "--json", "show", "99999999-9999-4999-8999-999999999999");
	ck_assert_str_eq(r.out, "");
	testutil_run_free(&r);
	shop_close(&s);
}
END_TEST

START_TEST(test_retry)
{
	struct shop s = shop_open("");
	long long before = pgtest_int(s.conn, "SELECT count(*) FROM smartpay.modifications");

	struct testutil_run r = CTL(&s, 0, "retry", M_STUCK_3);
	assert_contains(r.out, "requeued modification " M_STUCK_3 " (refund of order 3)");
	testutil_run_free(&r);
	/* same row, same body, attempts kept; pending, due now, lease cleared */
	char *row =
	    db_value(s.conn, "SELECT concat_ws('|', state, attempts, request_body, "
	                     "coalesce(lease_owner, '-'), coalesce(lease_expires_at::text, '-'), "
	                     "reason, next_attempt_at <= now(), completed_at IS NULL, "
	                     "lease_generation) FROM smartpay.modifications WHERE "
	                     "modification_id = '" M_STUCK_3 "'");
	ck_assert_str_eq(row, "pending|50|" STUCK_BODY "|-|-|requeued by operator|t|t|50");
	free(row);
	ck_assert_int_eq(pgtest_int(s.conn, "SELECT count(*) FROM smartpay.modifications"), before);
	ck_assert_int_eq(pgtest_int(s.conn, "SELECT count(*) FROM smartpay.requests WHERE "
	                                    "modification_id = '" M_STUCK_3 "'"),
	                 1);

	/* only needs_attention rows */
	CTL_CHECK(&s, 1, "is pending; only a needs_attention modification can be requeued", "retry",
	          M_STUCK_3);
	CTL_CHECK(&s, 1, "is succeeded", "retry", M_CAPTURE_1);
	CTL_CHECK(&s, 1, "is refused", "retry", M_REFUSED_1);
	CTL_CHECK(&s, 1, "no modification 99999999-9999-4999-8999-999999999999", "retry",
	          "99999999-9999-4999-8999-999999999999");

	/* another modification of the transaction is in flight: the unique index refuses,
	 * and the message says which one */
	pgtest_exec(s.conn,
	            "INSERT INTO smartpay.modifications (modification_id, order_id, "
	            "transaction_id, kind, amount_minor, currency, request_body, state, "
	            "attempts) VALUES ('77777777-7777-4777-8777-777777777777', '1', 'tx-1', "
	            "'refund', 500, 'EUR', '{\"x\":1}', 'needs_attention', 9)");
	r = CTL(&s, 1, "retry", "77777777-7777-4777-8777-777777777777");
	assert_contains(r.err, "refund " M_PENDING_1 " of the same transaction tx-1 is pending");
	testutil_run_free(&r);
	row = db_value(s.conn, "SELECT state FROM smartpay.modifications WHERE modification_id = "
	                       "'77777777-7777-4777-8777-777777777777'");
	ck_assert_str_eq(row, "needs_attention");
	free(row);

	/* once that one is done, it goes; --json shows the requeued row */
	pgtest_exec(s.conn, "UPDATE smartpay.modifications SET state = 'succeeded' WHERE "
	                    "modification_id = '" M_PENDING_1 "'");
	struct json_object *doc =
	    CTL_JSON(&s, "--json", "retry", "77777777-7777-4777-8777-777777777777");
	assert_jstr(doc, "modification.modification_id", "77777777-7777-4777-8777-777777777777");
	assert_jstr(doc, "modification.state", "pending");
	assert_jstr(doc, "modification.reason", "requeued by operator");
	assert_jint(doc, "modification.attempts", 9);
	assert_jstr(doc, "modification.amount", "5.00");
	assert_jstr(doc, "previous_state", "needs_attention");
	ck_assert_ptr_null(jpath(doc, "modification.deadline_passed"));
	json_object_put(doc);
	row = db_value(s.conn, "SELECT request_body FROM smartpay.modifications WHERE "
	                       "modification_id = '77777777-7777-4777-8777-777777777777'");
	ck_assert_str_eq(row, "{\"x\":1}");
	free(row);

	/* a capture whose deadline passed: requeued, with a warning */
	pgtest_exec(s.conn,
	            "INSERT INTO smartpay.modifications (modification_id, order_id, "
	            "transaction_id, kind, amount_minor, currency, request_body, state, "
	            "deadline) VALUES ('88888888-8888-4888-8888-888888888888', '4', 'tx-4', "
	            "'capture', 2000, 'EUR', '{}', 'needs_attention', now() - interval "
	            "'1 hour')");
	CTL_CHECK(&s, 0, "warning: the authorization deadline", "retry",
	          "88888888-8888-4888-8888-888888888888");
	shop_close(&s);
}
END_TEST

START_TEST(test_refund)
{
	struct shop s = shop_open("");

	/* captured 100.00, 10.00 pending, the refused 50.00 does not count */
	struct testutil_run r;
	CTL_PRINTS(&s, "refund request 2 queued for order 1: 30.00 EUR\n", "refund", "1", "30");
	struct json_object *doc = CTL_JSON(&s, "--json", "refund", "1", "20.5", "box damaged");
	assert_jint(doc, "request_id", 3);
	assert_jstr(doc, "order_id", "1");
	assert_jstr(doc, "kind", "refund");
	assert_jstr(doc, "amount", "20.50");
	assert_jint(doc, "amount_minor", 2050);
	assert_jstr(doc, "currency", "EUR");
	assert_jstr(doc, "reason", "box damaged");
	ck_assert(jpath(doc, "requested_by") != NULL && jpath(doc, "requested_at") != NULL);
	json_object_put(doc);

	/* refused by the database: exit 1, its words */
	r = CTL(&s, 1, "refund", "1", "39.51");
	assert_contains(r.err, "refund refused: 39.51 EUR for order 1 exceeds the refundable "
	                       "amount 39.50 EUR");
	assert_contains(r.err, "DETAIL: Captured 100.00 EUR; refunded 0.00, in progress 10.00, "
	                       "requested 50.50.");
	ck_assert_str_eq(r.out, "");
	testutil_run_free(&r);
	CTL_CHECK(&s, 1, "unknown order 404", "refund", "404", "5");
	CTL_CHECK(&s, 1, "order 2 has not been captured", "refund", "2", "5");
	r = CTL(&s, 1, "--json", "refund", "2", "5");
	ck_assert_str_eq(r.out, "");
	testutil_run_free(&r);

	/* bad amounts: usage errors, nothing asked */

	/* the last of it: exactly the refundable amount, then nothing */
	CTL_CHECK(&s, 0, NULL, "refund", "1", "39.50");
	CTL_CHECK(&s, 1, NULL, "refund", "1", "0.01");
	char *sum = db_value(s.conn, "SELECT sum(amount_minor) || ' ' || count(*) FROM "
	                             "smartpay.requests WHERE order_id = '1'");
	ck_assert_str_eq(sum, "9000 3");
	free(sum);

	/* JPY, whole units */
	CTL_PRINTS(&s, "refund request 5 queued for order 3: 250 JPY\n", "refund", "3", "250");
	shop_close(&s);
}
END_TEST

START_TEST(test_cancel_or_refund)
{
	struct shop s = shop_open("");

	CTL_PRINTS(&s, "cancel_or_refund request 2 queued for order 2\n", "cancel-or-refund", "2",
	           "customer changed their mind");
	CTL_CHECK(&s, 1, "order 2 has an open cancel_or_refund request 2", "cancel-or-refund", "2");
	struct json_object *doc = CTL_JSON(&s, "--json", "cancel-or-refund", "1");
	assert_jint(doc, "request_id", 3);
	assert_jstr(doc, "kind", "cancel_or_refund");
	assert_jnull(doc, "amount");
	assert_jnull(doc, "amount_minor");
	assert_jnull(doc, "reason");
	json_object_put(doc);
	/* and then no refund of order 1 */
	CTL_CHECK(&s, 1, "open cancel_or_refund request 3", "refund", "1", "1");
	CTL_CHECK(&s, 1, "unknown order 404", "cancel-or-refund", "404");
	char *reason =
	    db_value(s.conn, "SELECT reason FROM smartpay.requests WHERE request_id = 2");
	ck_assert_str_eq(reason, "customer changed their mind");
	free(reason);
	shop_close(&s);
}
END_TEST

START_TEST(test_alerts)
{
	struct shop s = shop_open("");

	struct testutil_run r = CTL(&s, 0, "alerts");
	assert_contains(r.out, "refund for order 3: retries exhausted\n");
	assert_contains(r.out, "authorization of order 2 expires within 24h\n");
	assert_not_contains(r.out, "HTTP 422");
	assert_not_contains(r.out, "bob");
	/* newest first */
	ck_assert(strstr(r.out, "order 2 expires") < strstr(r.out, "retries exhausted"));
	testutil_run_free(&r);

	r = CTL(&s, 0, "alerts", "--all");
	assert_contains(r.out, "refund for order 1: HTTP 422\n");
	assert_contains(r.out, "bob");
	testutil_run_free(&r);

	struct json_object *doc = CTL_JSON(&s, "--json", "alerts", "--kind", "needs_attention");
	assert_jint(doc, "count", 1);
	assert_jbool(doc, "truncated", false);
	assert_jint(doc, "alerts.0.alert_id", 1);
	assert_jstr(doc, "alerts.0.severity", "critical");
	assert_jstr(doc, "alerts.0.order_id", "3");
	assert_jstr(doc, "alerts.0.modification_id", M_STUCK_3);
	assert_jstr(doc, "alerts.0.message", "refund for order 3: retries exhausted");
	assert_jnull(doc, "alerts.0.acknowledged_by");
	assert_jstr(doc, "alerts.0.webhook_state", "pending");
	json_object_put(doc);

	doc = CTL_JSON(&s, "alerts", "--all", "--json", "--limit", "2");
	assert_jint(doc, "count", 2);
	assert_jbool(doc, "truncated", true);
	assert_jint(doc, "alerts.0.alert_id", 3);
	assert_jstr(doc, "alerts.0.acknowledged_by", "bob");
	json_object_put(doc);

	CTL_PRINTS(&s, "no open alerts\n", "alerts", "--kind", "gateway_unreachable");
	shop_close(&s);
}
END_TEST

/* `alerts` tells which alerts were folded into an alerts_summarised alert (column
 * summarised, sql/008_alert_summaries.sql): yes or no for people, a boolean in JSON. */
START_TEST(test_alerts_summarised)
{
	struct shop s = shop_open("");
	pgtest_exec(s.conn,
	            "INSERT INTO smartpay.alerts (alert_id, kind, severity, order_id, dedup_key, "
	            "message, summarised, webhook_state, created_at) VALUES "
	            "(4, 'authorization_expired', 'critical', '4', '4', "
	            "'authorization of order 4 expired', true, 'none', '2026-01-02 03:04:05+00'), "
	            "(5, 'alerts_summarised', 'critical', NULL, 'authorization_expired:4', "
	            "'1 authorization_expired alert summarised', false, 'pending', "
	            "'2026-01-02 03:04:06+00')");

	struct testutil_run r = CTL(&s, 0, "alerts");
	assert_line(r.out, "ID CREATED SEVERITY KIND ORDER SUMMARISED MESSAGE");
	assert_line(r.out, "4 2026-01-02 03:04:05Z critical authorization_expired 4 yes "
	                   "authorization of order 4 expired");
	assert_line(r.out, "5 2026-01-02 03:04:06Z critical alerts_summarised - no "
	                   "1 authorization_expired alert summarised");
	testutil_run_free(&r);
	r = CTL(&s, 0, "alerts", "--all");
	assert_line(r.out, "ID CREATED SEVERITY KIND ORDER ACKNOWLEDGED BY SUMMARISED MESSAGE");
	testutil_run_free(&r);

	r = CTL(&s, 0, "--json", "alerts");
	struct json_object *doc = parse(&r);
	assert_jint(doc, "alerts.0.alert_id", 5);
	assert_jbool(doc, "alerts.0.summarised", false);
	assert_jint(doc, "alerts.1.alert_id", 4);
	assert_jbool(doc, "alerts.1.summarised", true);
	json_object_put(doc);
	testutil_run_free(&r);
	shop_close(&s);
}
END_TEST

START_TEST(test_ack)
{
	struct shop s = shop_open("");

	setenv("USER", "alice", 1);
	struct testutil_run r = CTL(&s, 0, "ack", "1", "2");
	assert_contains(r.out, "acknowledged alert 1 as alice\n");
	assert_contains(r.out, "acknowledged alert 2 as alice\n");
	testutil_run_free(&r);
	ck_assert_int_eq(pgtest_int(s.conn,
	                            "SELECT count(*) FROM smartpay.alerts WHERE "
	                            "acknowledged_by = 'alice' AND acknowledged_at > now() - "
	                            "interval '1 minute'"),
	                 2);

	/* again, with one acknowledged by someone else long ago: nothing changes */
	setenv("USER", "carol", 1);
	struct json_object *doc = CTL_JSON(&s, "--json", "ack", "2", "3");
	assert_jlen(doc, "acknowledged", 0);
	assert_jlen(doc, "already_acknowledged", 2);
	assert_jint(doc, "already_acknowledged.0.alert_id", 2);
	assert_jstr(doc, "already_acknowledged.0.acknowledged_by", "alice");
	assert_jstr(doc, "already_acknowledged.1.acknowledged_by", "bob");
	assert_jstr(doc, "acknowledged_by", "carol");
	json_object_put(doc);

	/* an unknown id: nothing acknowledged at all */
	pgtest_exec(s.conn, "INSERT INTO smartpay.alerts (alert_id, kind, severity, dedup_key, "
	                    "message) VALUES (4, 'gateway_unreachable', 'critical', 'gw', 'down')");
	CTL_CHECK(&s, 1, "no alert 999; nothing acknowledged", "ack", "4", "999");
	ck_assert_int_eq(pgtest_int(s.conn, "SELECT count(*) FROM smartpay.alerts WHERE "
	                                    "acknowledged_at IS NULL"),
	                 1);

	/* without $USER: the database user */
	unsetenv("USER");
	doc = CTL_JSON(&s, "--json", "ack", "4");
	assert_jint(doc, "acknowledged.0", 4);
	assert_jstr(doc, "acknowledged_by", "postgres");
	json_object_put(doc);

	shop_close(&s);
}
END_TEST

START_TEST(test_migrate_settings)
{
	char *conninfo = pgtest_createdb(NULL);
	PGconn *conn = pgtest_connect(conninfo);
	pgtest_exec_file(conn, "sql/example-orders.sql");
	struct shop s = {.conninfo = conninfo,
	                 .conn = conn,
	                 .config = pgtest_ctl_config(conninfo, NULL, NULL,
	                                             "[capture]\nauthorization_validity = 7d\n")};

	/* before migrate: a clear hint */
	struct testutil_run r = CTL(&s, 1, "status");
	assert_contains(r.err, "smartpayctl migrate");
	testutil_run_free(&r);

	struct json_object *doc = CTL_JSON(&s, "--json", "migrate");
	assert_jint(doc, "currencies", (long long)money_currency_count());
	json_object_put(doc);
	ck_assert_int_eq(pgtest_int(conn, "SELECT count(*) FROM smartpay.currencies"),
	                 (long long)money_currency_count());
	char *settings = db_value(conn, "SELECT orders_relation || ' ' || authorization_validity "
	                                "FROM smartpay.settings");
	ck_assert_str_eq(settings, "\"public\".\"orders\" 168:00:00");
	free(settings);
	r = CTL(&s, 0, "migrate");
	assert_contains(r.out, "currencies");
	testutil_run_free(&r);

	/* the help of each command */
	r = CTL(&s, 0, "refund", "--help");
	assert_contains(r.out,
	                "usage: smartpayctl [-c FILE] [--json] refund ORDER AMOUNT [REASON]");
	testutil_run_free(&r);
	r = CTL(&s, 0, "help", "ack");
	assert_contains(r.out, "ack ALERT_ID...");
	testutil_run_free(&r);
	r = CTL(&s, 0, "--help");
	const char *commands[] = {"status",           "list",   "show", "retry", "refund",
	                          "cancel-or-refund", "alerts", "ack"};
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		assert_contains(r.out, commands[i]);
	testutil_run_free(&r);
	shop_close(&s);
}
END_TEST

/* Usage errors: exit 2 and (where given) the words on stderr, whatever the database,
 * and nothing in it changed. */
static const struct usage_case {
	const char *name;
	const char *err_has; /* NULL: any message */
	const char *args[6];
} usage_errors[] = {
    {"status takes no argument", "unexpected argument 'now'", {"status", "now"}},
    {"list: an unknown state", "unknown state 'stuck'", {"list", "--state", "stuck"}},
    {"list: an unknown kind", NULL, {"list", "--kind", "void"}},
    {"list: a limit of zero", NULL, {"list", "--limit", "0"}},
    {"list: --limit without its value", "needs a value", {"list", "--limit"}},
    {"list: an unknown option", "unknown option '--frobnicate'", {"list", "--frobnicate"}},
    {"list takes no argument", NULL, {"list", "extra"}},
    {"show: not a modification id", "not a modification id", {"show", "not-a-uuid"}},
    {"show without its id", NULL, {"show"}},
    {"retry: not a modification id", NULL, {"retry", "12345"}},
    {"refund: more decimals than EUR has",
     "invalid amount '10.001' for EUR",
     {"refund", "1", "10.001"}},
    {"refund: decimals for JPY", "for JPY (0 decimals)", {"refund", "3", "1.5"}},
    {"refund: not an amount", "invalid amount 'abc'", {"refund", "1", "abc"}},
    {"refund: zero", "greater than zero", {"refund", "1", "0"}},
    {"refund: a negative amount", "negative amount", {"refund", "1", "-1"}},
    {"refund: a decimal comma", NULL, {"refund", "1", "1,50"}},
    {"refund without an amount", NULL, {"refund", "1"}},
    {"refund: one argument too many", NULL, {"refund", "1", "1", "why", "extra"}},
    {"cancel-or-refund without an order", NULL, {"cancel-or-refund"}},
    {"alerts: a limit that is not a number", NULL, {"alerts", "--limit", "x"}},
    {"ack without an id", NULL, {"ack"}},
    {"ack: alert id zero", NULL, {"ack", "0"}},
    {"ack: an id that is not a number", "'two' is not an alert id", {"ack", "1", "two"}},
};

START_TEST(test_usage_error)
{
	const struct usage_case *c = &usage_errors[_i];
	struct shop s = shop_open("");
	const char *state = "SELECT concat_ws('|', (SELECT count(*) FROM smartpay.requests), "
	                    "(SELECT string_agg(state || attempts, ',' ORDER BY modification_id) "
	                    "FROM smartpay.modifications), (SELECT count(*) FROM smartpay.alerts "
	                    "WHERE acknowledged_at IS NULL))";
	char *before = db_value(s.conn, state);
	struct testutil_run r = pgtest_ctl_at(c->name, _i, s.config, 2, c->args);
	if (c->err_has)
		ck_assert_msg(strstr(r.err, c->err_has) != NULL, "%s: expected \"%s\" in:\n%s",
		              c->name, c->err_has, r.err);
	testutil_run_free(&r);
	char *after = db_value(s.conn, state);
	ck_assert_msg(strcmp(before, after) == 0, "%s changed the database: %s -> %s", c->name,
	              before, after);
	free(before);
	free(after);
	shop_close(&s);
}
END_TEST

static Suite *ctl_suite(void)
{
	Suite *s = suite_create("smartpayctl");
	TCase *tc = tcase_create("commands");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_status);
	tcase_add_test(tc, test_list);
	tcase_add_test(tc, test_show);
	tcase_add_test(tc, test_retry);
	tcase_add_test(tc, test_refund);
	tcase_add_test(tc, test_cancel_or_refund);
	tcase_add_test(tc, test_alerts);
	tcase_add_test(tc, test_alerts_summarised);
	tcase_add_test(tc, test_ack);
	tcase_add_test(tc, test_migrate_settings);
	tcase_add_loop_test(tc, test_usage_error, 0,
	                    (int)(sizeof(usage_errors) / sizeof(usage_errors[0])));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	pgtest_start();
	int status = testutil_run_suite(ctl_suite(), CK_ENV);
	pgtest_stop();
	return status;
}
