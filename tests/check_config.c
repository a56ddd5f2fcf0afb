#include "autoconfig.h"

#include "config.h"
#include "log.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REQUIRED                                                                                   \
	"[smartpay]\n"                                                                             \
	"base_url = https://smartpay.example/api\n"                                                \
	"merchant_key = 31928de9-1111-2222-3333-444455556666\n"

/* Loads text that must be valid; fails the test with the error text otherwise. */
static struct sp_config *load_ok(const char *text)
{
	struct sp_config *cfg = NULL;
	char *errors = NULL;
	bool ok = config_load_string("t.conf", text, &cfg, &errors);
	ck_assert_msg(ok, "refused:\n%s\n--- text:\n%s", errors ? errors : "(no errors)", text);
	ck_assert_ptr_null(errors);
	ck_assert_ptr_nonnull(cfg);
	return cfg;
}

/* Loads text that must be refused; returns the error text (malloc'd). */
static char *load_bad(const char *text)
{
	struct sp_config *cfg = (struct sp_config *)&cfg; /* must be reset to NULL */
	char *errors = NULL;
	bool ok = config_load_string("t.conf", text, &cfg, &errors);
	if (ok)
		config_free(cfg);
	ck_assert_msg(!ok, "accepted:\n%s", text);
	ck_assert_ptr_null(cfg);
	ck_assert_ptr_nonnull(errors);
	ck_assert_int_eq(errors[strlen(errors) - 1], '\n');
	return errors;
}

/* Asserts that loading `text` fails with exactly the error lines `expect`. */
static void errors_are(const char *text, const char *expect)
{
	char *errors = load_bad(text);
	ck_assert_msg(strcmp(errors, expect) == 0, "got:\n%s\nwant:\n%s", errors, expect);
	free(errors);
}

/* Asserts that REQUIRED plus `extra` fails with exactly one error line, `expect`. */
static void one_error(const char *extra, const char *expect)
{
	char text[4096];
	char want[1024];
	snprintf(text, sizeof(text), "%s%s", REQUIRED, extra);
	snprintf(want, sizeof(want), "%s\n", expect);
	errors_are(text, want);
}

START_TEST(test_minimal_and_defaults)
{
	struct sp_config *cfg = load_ok(REQUIRED);
	char host[HOST_NAME_MAX + 1];
	ck_assert_int_eq(gethostname(host, sizeof(host)), 0);

	ck_assert_str_eq(cfg->path, "t.conf");
	ck_assert_str_eq(cfg->db_conninfo, "");
	ck_assert_str_eq(cfg->orders_relation, "public.orders");
	ck_assert_int_eq(cfg->statement_timeout_ms, 30000);
	ck_assert_str_eq(cfg->base_url, "https://smartpay.example/api");
	ck_assert_str_eq(cfg->merchant_key, "31928de9-1111-2222-3333-444455556666");
	ck_assert_str_eq(cfg->authentication_key_file, "");
	ck_assert_str_eq(cfg->ca_file, "");
	ck_assert_str_eq(cfg->origin, "");
	ck_assert_str_eq(cfg->user_agent, "smartpayd/" PACKAGE_VERSION);
	ck_assert_int_eq(cfg->timeout_ms, 90000);
	ck_assert_int_eq(cfg->connect_timeout_ms, 10000);
	ck_assert(!cfg->allow_insecure_http);
	ck_assert_str_eq(cfg->instance_name, host);
	ck_assert_int_eq(cfg->max_inflight, 64);
	ck_assert_int_eq(cfg->batch_size, 256);
	ck_assert_int_eq(cfg->poll_interval_ms, 10000);
	ck_assert_int_eq(cfg->lease_ms, 300000);
	ck_assert_int_eq(cfg->max_attempts, 50);
	ck_assert_int_eq(cfg->retry_base_ms, 1000);
	ck_assert_int_eq(cfg->retry_max_ms, 600000);
	ck_assert_int_eq(cfg->drain_timeout_ms, 30000);
	ck_assert_int_eq(cfg->log_level, LOG_LVL_INFO);
	ck_assert_uint_eq(cfg->shipped_statuses.count, 1);
	ck_assert_str_eq(cfg->shipped_statuses.items[0], "shipped");
	ck_assert_uint_eq(cfg->cancelled_statuses.count, 1);
	ck_assert_str_eq(cfg->cancelled_statuses.items[0], "cancelled");
	ck_assert_int_eq(cfg->authorization_validity_ms, INT64_C(120) * 3600 * 1000);
	ck_assert_uint_eq(cfg->early_statuses.count, 0);
	ck_assert_int_eq(cfg->early_margin_ms, INT64_C(6) * 3600 * 1000);
	ck_assert(!cfg->early_action_cancel);
	ck_assert_uint_eq(cfg->expiry_threshold_count, 2);
	ck_assert_int_eq(cfg->expiry_thresholds_ms[0], INT64_C(24) * 3600 * 1000);
	ck_assert_int_eq(cfg->expiry_thresholds_ms[1], INT64_C(4) * 3600 * 1000);
	ck_assert_str_eq(cfg->webhook_url, "");
	ck_assert_int_eq(cfg->gateway_unreachable_ms, 300000);
	ck_assert_str_eq(cfg->metrics_listen, "127.0.0.1:9464");
	ck_assert_int_eq(cfg->metrics_max_connections, 16);
	ck_assert_int_eq(cfg->metrics_request_timeout_ms, 5000);
	ck_assert_int_eq(cfg->reconcile_interval_ms, 300000);
	ck_assert_int_eq(cfg->reconcile_lookback_ms, INT64_C(7) * 86400000);
	ck_assert_int_eq(cfg->reconcile_requests_per_second, 5);
	ck_assert_int_eq(cfg->reconcile_unknown_answers, 3);
	/* origin is required by SmartPay but has no sensible default: a warning. */
	ck_assert_str_eq(cfg->warnings, "t.conf:0: smartpay.origin: not set: SmartPay requires an "
	                                "Origin header on every request\n");
	config_free(cfg);
}
END_TEST

START_TEST(test_every_key_set)
{
	struct sp_config *cfg =
	    load_ok("; all keys, in an unusual order\n"
	            "[metrics]\n"
	            "listen = [::1]:9100\n"
	            "[alerts]\n"
	            "expiry_thresholds = 4h, 48h,30m\n"
	            "webhook_url = https://hooks.example/smartpay?token=abc\n"
	            "gateway_unreachable = 90s\n"
	            "[capture]\n"
	            "shipped_statuses = shipped, delivered ,  partially shipped\n"
	            "cancelled_statuses = cancelled,refused\n"
	            "authorization_validity = 7d\n"
	            "early_statuses = paid\n"
	            "early_margin = 12h\n"
	            "early_action = cancel\n"
	            "[daemon]\n"
	            "instance_name = %H-b\n"
	            "max_inflight = 10000\n"
	            "batch_size = 1\n"
	            "poll_interval = 250ms\n"
	            "lease = 10m\n"
	            "max_attempts = 7\n"
	            "retry_base = 2s\n"
	            "retry_max = 1h\n"
	            "drain_timeout = 0s\n"
	            "log_level = debug\n"
	            "[database]\n"
	            "conninfo = postgresql://shop@db.example:5433/shop?sslmode=verify-full\n"
	            "orders_relation = Shop_1.orders_v2\n"
	            "statement_timeout = 0s\n"
	            "[smartpay]\n"
	            "allow_insecure_http = Yes\n"
	            "base_url = HTTPS://smartpay.example:8443/api/v1///\n"
	            "merchant_key = m\n"
	            "authentication_key_file = /etc/smartpayd/key\n"
	            "ca_file = /etc/ssl/private-ca.pem\n"
	            "origin = https://shop.example\n"
	            "user_agent = shop-fulfilment/2.1 (+https://shop.example)\n"
	            "timeout = 2m\n"
	            "connect_timeout = 2m\n");
	char host[HOST_NAME_MAX + 1], want[HOST_NAME_MAX + 8];
	ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
	snprintf(want, sizeof(want), "%s-b", host);

	ck_assert_str_eq(cfg->metrics_listen, "[::1]:9100");
	ck_assert_uint_eq(cfg->expiry_threshold_count, 3);
	ck_assert_int_eq(cfg->expiry_thresholds_ms[0], INT64_C(48) * 3600 * 1000);
	ck_assert_int_eq(cfg->expiry_thresholds_ms[1], INT64_C(4) * 3600 * 1000);
	ck_assert_int_eq(cfg->expiry_thresholds_ms[2], INT64_C(30) * 60 * 1000);
	ck_assert_str_eq(cfg->webhook_url, "https://hooks.example/smartpay?token=abc");
	ck_assert_int_eq(cfg->gateway_unreachable_ms, 90000);
	ck_assert_uint_eq(cfg->shipped_statuses.count, 3);
	ck_assert_str_eq(cfg->shipped_statuses.items[0], "shipped");
	ck_assert_str_eq(cfg->shipped_statuses.items[1], "delivered");
	ck_assert_str_eq(cfg->shipped_statuses.items[2], "partially shipped");
	ck_assert_uint_eq(cfg->cancelled_statuses.count, 2);
	ck_assert_str_eq(cfg->cancelled_statuses.items[1], "refused");
	ck_assert_int_eq(cfg->authorization_validity_ms, INT64_C(7) * 86400 * 1000);
	ck_assert_uint_eq(cfg->early_statuses.count, 1);
	ck_assert_str_eq(cfg->early_statuses.items[0], "paid");
	ck_assert_int_eq(cfg->early_margin_ms, INT64_C(12) * 3600 * 1000);
	ck_assert(cfg->early_action_cancel);
	ck_assert_str_eq(cfg->instance_name, want);
	ck_assert_int_eq(cfg->max_inflight, 10000);
	ck_assert_int_eq(cfg->batch_size, 1);
	ck_assert_int_eq(cfg->poll_interval_ms, 250);
	ck_assert_int_eq(cfg->lease_ms, 600000);
	ck_assert_int_eq(cfg->max_attempts, 7);
	ck_assert_int_eq(cfg->retry_base_ms, 2000);
	ck_assert_int_eq(cfg->retry_max_ms, 3600000);
	ck_assert_int_eq(cfg->drain_timeout_ms, 0);
	ck_assert_int_eq(cfg->statement_timeout_ms, 0);
	ck_assert_int_eq(cfg->log_level, LOG_LVL_DEBUG);
	ck_assert_str_eq(cfg->db_conninfo,
	                 "postgresql://shop@db.example:5433/shop?sslmode=verify-full");
	ck_assert_str_eq(cfg->orders_relation, "Shop_1.orders_v2");
	ck_assert(cfg->allow_insecure_http);
	ck_assert_str_eq(cfg->base_url, "HTTPS://smartpay.example:8443/api/v1");
	ck_assert_str_eq(cfg->merchant_key, "m");
	ck_assert_str_eq(cfg->authentication_key_file, "/etc/smartpayd/key");
	ck_assert_str_eq(cfg->ca_file, "/etc/ssl/private-ca.pem");
	ck_assert_str_eq(cfg->origin, "https://shop.example");
	ck_assert_str_eq(cfg->user_agent, "shop-fulfilment/2.1 (+https://shop.example)");
	ck_assert_int_eq(cfg->timeout_ms, 120000);
	ck_assert_int_eq(cfg->connect_timeout_ms, 120000);
	ck_assert_ptr_null(cfg->warnings);
	config_free(cfg);
}
END_TEST

START_TEST(test_interfaces_sample)
{
	/* The block from interfaces.md, with real values where it has "...". */
	struct sp_config *cfg = load_ok(
	    "[database]\n"
	    "conninfo = host=/run/postgresql dbname=shop      ; any libpq conninfo or URI\n"
	    "orders_relation = public.orders                   ; table or view, see design.md\n"
	    "\n"
	    "[smartpay]\n"
	    "base_url = https://smartpay.example/api           ; no default: SmartPay's URL is "
	    "per merchant\n"
	    "merchant_key = 31928de9-0000-0000-0000-000000000000\n"
	    "authentication_key_file = /run/credentials/smartpayd.service/authentication-key\n"
	    "ca_file =                                         ; extra CA bundle, e.g. for a "
	    "private CA\n"
	    "origin = https://shop.example\n"
	    "timeout = 90s\n"
	    "\n"
	    "[daemon]\n"
	    "instance_name = %H                                ; lease owner; defaults to the "
	    "host name\n"
	    "max_inflight = 64\n"
	    "poll_interval = 10s\n"
	    "\n"
	    "[capture]\n"
	    "shipped_statuses = shipped\n"
	    "cancelled_statuses = cancelled\n"
	    "authorization_validity = 120h\n"
	    "\n"
	    "[alerts]\n"
	    "expiry_thresholds = 24h, 4h\n"
	    "webhook_url =\n"
	    "\n"
	    "[metrics]\n"
	    "listen = 127.0.0.1:9464                           ; empty disables\n");
	ck_assert_str_eq(cfg->db_conninfo, "host=/run/postgresql dbname=shop");
	ck_assert_str_eq(cfg->orders_relation, "public.orders");
	ck_assert_str_eq(cfg->base_url, "https://smartpay.example/api");
	ck_assert_str_eq(cfg->ca_file, "");
	ck_assert_str_eq(cfg->metrics_listen, "127.0.0.1:9464");
	ck_assert_str_eq(cfg->authentication_key_file,
	                 "/run/credentials/smartpayd.service/authentication-key");
	config_free(cfg);
}
END_TEST

START_TEST(test_inline_comments_and_layout)
{
	struct sp_config *cfg =
	    load_ok("\xEF\xBB\xBF# BOM, CRLF, indentation, comments\r\n"
	            "  [smartpay]   ; section comment\r\n"
	            "\tbase_url = https://smartpay.example/api # hash comment\r\n"
	            "    merchant_key = k;not-a-comment\r\n"
	            "  ; an indented comment after a key is still a comment\r\n"
	            "\t# and so is this\r\n"
	            "    timeout = 30s ; semicolon comment\r\n"
	            "user_agent = shop#1\r\n"
	            "origin = https://shop.example\t;tab before the comment\r\n"
	            "[daemon]\r\n"
	            "poll_interval=5s\r\n"
	            "instance_name = node-1 # name\r\n");
	ck_assert_str_eq(cfg->base_url, "https://smartpay.example/api");
	ck_assert_str_eq(cfg->merchant_key, "k;not-a-comment");
	ck_assert_int_eq(cfg->timeout_ms, 30000);
	ck_assert_str_eq(cfg->user_agent, "shop#1");
	ck_assert_str_eq(cfg->origin, "https://shop.example");
	ck_assert_int_eq(cfg->poll_interval_ms, 5000);
	ck_assert_str_eq(cfg->instance_name, "node-1");
	config_free(cfg);
}
END_TEST

START_TEST(test_long_line)
{
	/* Longer than libinih's 200-byte line buffer: read whole, not split. */
	char value[1200], text[2048];
	int n =
	    snprintf(value, sizeof(value), "host=/run/postgresql dbname=shop application_name=");
	memset(value + n, 'a', 1000);
	value[n + 1000] = '\0';
	snprintf(text, sizeof(text), "%s[database]\nconninfo = %s   ; comment\nsslmode_key = x\n",
	         REQUIRED, value);
	char *errors = load_bad(text);
	ck_assert_str_eq(errors, "t.conf:6: database.sslmode_key: unknown key\n");
	free(errors);

	snprintf(text, sizeof(text), "%s[database]\nconninfo = %s   ; comment\n", REQUIRED, value);
	struct sp_config *cfg = load_ok(text);
	ck_assert_str_eq(cfg->db_conninfo, value);
	config_free(cfg);
}
END_TEST

START_TEST(test_error_lines)
{
	errors_are("[smartpay]\n"                              /* 1 */
	           "base_url = https://smartpay.example/api\n" /* 2 */
	           "merchant_key = k\n"                        /* 3 */
	           "timeout = 90\n"                            /* 4 */
	           "\n"                                        /* 5 */
	           "[daemon]\n"                                /* 6 */
	           "bogus = 1\n"                               /* 7 */
	           "max_inflight = 0\n"                        /* 8 */
	           "poll_interval = 1.5m\n"                    /* 9 */
	           "[nonsense]\n"                              /* 10 */
	           "anything = at all\n"                       /* 11 */
	           "[capture]\n"                               /* 12 */
	           "shipped_statuses = shipped,,delivered\n"   /* 13 */
	           "this line has no equals sign\n"            /* 14 */
	           "early_action = refund\n"                   /* 15 */
	           "[smartpay]\n"                              /* 16 */
	           "merchant_key = again\n"                    /* 17 */
	           "allow_insecure_http = maybe\n",            /* 18 */
	           "t.conf:4: smartpay.timeout: missing unit: add ms, s, m, h or d (e.g. 90s)\n"
	           "t.conf:7: daemon.bogus: unknown key\n"
	           "t.conf:8: daemon.max_inflight: must be between 1 and 10000\n"
	           "t.conf:9: daemon.poll_interval: fractions are not allowed: use a smaller unit "
	           "(90m, not 1.5h)\n"
	           "t.conf:10: [nonsense]: unknown section (known: database, smartpay, daemon, "
	           "capture, alerts, metrics, reconcile)\n"
	           "t.conf:13: capture.shipped_statuses: empty item in the list (a stray comma?)\n"
	           "t.conf:14: syntax: expected 'key = value', '[section]' or a comment\n"
	           "t.conf:15: capture.early_action: must be capture or cancel\n"
	           "t.conf:17: smartpay.merchant_key: duplicate key (first set on line 3)\n"
	           "t.conf:18: smartpay.allow_insecure_http: not a boolean: use yes or no (also "
	           "true/false, on/off, 1/0)\n");
}
END_TEST

START_TEST(test_required_keys)
{
	errors_are("", "t.conf:0: smartpay.base_url: required key is missing\n"
	               "t.conf:0: smartpay.merchant_key: required key is missing\n");
	errors_are("[smartpay]\nbase_url =\nmerchant_key = k\n",
	           "t.conf:2: smartpay.base_url: must not be empty\n");
	errors_are("[smartpay]\nbase_url = https://x.example\nmerchant_key =\n",
	           "t.conf:3: smartpay.merchant_key: must not be empty\n");
	errors_are("[smartpay]\nbase_url = https://x.example\n"
	           "merchant_key = 0123456789012345678901234567890123456\n",
	           "t.conf:3: smartpay.merchant_key: longer than 36 characters\n");
	errors_are("[smartpay]\nbase_url = https://x.example\nmerchant_key = a:b\n",
	           "t.conf:3: smartpay.merchant_key: may not contain spaces, ':', '\"' or '\\'\n");
}
END_TEST

START_TEST(test_syntax_errors)
{
	one_error("[daemon\n", "t.conf:4: syntax: missing ']' in section header");
	one_error("[daemon] extra\n", "t.conf:4: syntax: unexpected text after ']'");
	one_error("= 5\n", "t.conf:4: syntax: missing key name before '='");
	one_error("timeout ; = 5s\n",
	          "t.conf:4: syntax: expected 'key = value', '[section]' or a comment");
	one_error("user_agent = a\x01z\n",
	          "t.conf:4: syntax: control character (byte 0x01) in line");
	errors_are("timeout = 5s\n" REQUIRED,
	           "t.conf:1: timeout: key outside of any section (add a [section] line above)\n");
	/* Keys in an unknown section are not reported one by one. */
	one_error("[Smartpay]\na = 1\nb = 2\n",
	          "t.conf:4: [Smartpay]: unknown section (known: database, smartpay, daemon, "
	          "capture, alerts, metrics, reconcile)");
}
END_TEST

START_TEST(test_unknown_key_hints)
{
	one_error("timout = 5s\n",
	          "t.conf:4: smartpay.timout: unknown key (did you mean timeout?)");
	one_error("[daemon]\ntimeout = 5s\n",
	          "t.conf:5: daemon.timeout: unknown key (timeout belongs in [smartpay])");
	one_error("[daemon]\nwhatever = 5s\n", "t.conf:5: daemon.whatever: unknown key");
	one_error("BASE_URL = https://x.example\n",
	          "t.conf:4: smartpay.BASE_URL: unknown key (did you mean base_url?)");
}
END_TEST

START_TEST(test_durations_in_file)
{
	one_error("timeout = 0s\n",
	          "t.conf:4: smartpay.timeout: must be more than 0 and at most 1h");
	one_error("timeout = 2h\n",
	          "t.conf:4: smartpay.timeout: must be more than 0 and at most 1h");
	one_error("timeout = -5s\n", "t.conf:4: smartpay.timeout: negative duration");
	one_error("timeout = 90 s\n",
	          "t.conf:4: smartpay.timeout: no space allowed between the number and the unit");
	one_error("timeout = 5w\n",
	          "t.conf:4: smartpay.timeout: unknown unit: use ms, s, m, h or d");
	one_error("timeout =\n", "t.conf:4: smartpay.timeout: empty duration");
	one_error("[daemon]\nlease = 500ms\n", "t.conf:5: daemon.lease: must be between 1s and 1d");
	one_error("[daemon]\ndrain_timeout = 2h\n", "t.conf:5: daemon.drain_timeout: must be at "
	                                            "most 1h");
	one_error("[database]\nstatement_timeout = 2h\n",
	          "t.conf:5: database.statement_timeout: must be at most 1h");
	one_error("[alerts]\nexpiry_thresholds = 24h, 0s\n",
	          "t.conf:5: alerts.expiry_thresholds: '0s': must be between 1m and 366d");
	one_error("[alerts]\nexpiry_thresholds = 24h, 1d\n",
	          "t.conf:5: alerts.expiry_thresholds: '1d' is listed twice");
	one_error("[alerts]\nexpiry_thresholds = 24h,\n",
	          "t.conf:5: alerts.expiry_thresholds: empty item in the list (a stray comma?)");
	one_error("[alerts]\nexpiry_thresholds = 24\n",
	          "t.conf:5: alerts.expiry_thresholds: '24': missing unit: add ms, s, m, h or d "
	          "(e.g. 90s)");

	/* An empty threshold list turns the early warnings off. */
	struct sp_config *cfg = load_ok(REQUIRED "[alerts]\nexpiry_thresholds =\n");
	ck_assert_uint_eq(cfg->expiry_threshold_count, 0);
	config_free(cfg);
}
END_TEST

START_TEST(test_relations_between_keys)
{
	/* lease must cover timeout and the outcome's write: blamed on the key that was set. */
	one_error("[daemon]\nlease = 90s\n",
	          "t.conf:5: daemon.lease: must be at least 5s longer than smartpay.timeout (90s)");
	one_error("[daemon]\nlease = 94s\n",
	          "t.conf:5: daemon.lease: must be at least 5s longer than smartpay.timeout (90s)");
	struct sp_config *edge = load_ok(REQUIRED "[daemon]\nlease = 95s\n");
	ck_assert_int_eq(edge->lease_ms, 95000);
	config_free(edge);
	one_error("timeout = 10m\n",
	          "t.conf:4: smartpay.timeout: must be at least 5s shorter than daemon.lease (5m)");
	/* A defaulted connect_timeout (10s) follows a shorter explicit timeout. */
	struct sp_config *cfg = load_ok(REQUIRED "timeout = 3s\n[daemon]\nlease = 1m\n");
	ck_assert_int_eq(cfg->connect_timeout_ms, 3000);
	config_free(cfg);
	/* The early margin is checked only when the early policy is on or it was set. */
	cfg = load_ok(REQUIRED "[capture]\nauthorization_validity = 1h\n");
	config_free(cfg);
	one_error("[capture]\nauthorization_validity = 1h\nearly_statuses = paid\n",
	          "t.conf:5: capture.authorization_validity: must be longer than "
	          "capture.early_margin (6h)");
	one_error("connect_timeout = 2m\n",
	          "t.conf:4: smartpay.connect_timeout: must not be longer than smartpay.timeout "
	          "(90s)");
	one_error("[daemon]\nretry_max = 500ms\n",
	          "t.conf:5: daemon.retry_max: must not be shorter than daemon.retry_base (1s)");
	one_error("[capture]\nearly_margin = 5d\n",
	          "t.conf:5: capture.early_margin: must be shorter than "
	          "capture.authorization_validity (5d)");
	one_error("[capture]\ncancelled_statuses = cancelled, shipped\n",
	          "t.conf:5: capture.cancelled_statuses: status 'shipped' is also in "
	          "capture.shipped_statuses");
	one_error("[capture]\nshipped_statuses = shipped, cancelled\n",
	          "t.conf:5: capture.shipped_statuses: status 'cancelled' is also in "
	          "capture.cancelled_statuses");
	one_error("[capture]\nearly_statuses = paid, cancelled\n",
	          "t.conf:5: capture.early_statuses: status 'cancelled' is also in "
	          "capture.cancelled_statuses");
	one_error("[capture]\nshipped_statuses =\n",
	          "t.conf:5: capture.shipped_statuses: needs at least one status");
	one_error("[capture]\nshipped_statuses = a, b, a\n",
	          "t.conf:5: capture.shipped_statuses: status 'a' is listed twice");
	/* With both lease and timeout wrong on their own, no cascade. */
	one_error("timeout = x\n[daemon]\nlease = 1s\n",
	          "t.conf:4: smartpay.timeout: not a duration: expected a whole number and a unit, "
	          "e.g. 90s");
}
END_TEST

/* Loads a config with the given base_url line and optional extra lines. */
static char *try_base_url(const char *url, const char *extra, struct sp_config **cfg)
{
	char text[1024];
	char *errors = NULL;
	snprintf(text, sizeof(text), "[smartpay]\nbase_url = %s\nmerchant_key = k\n%s", url,
	         extra ? extra : "");
	if (!config_load_string("t.conf", text, cfg, &errors))
		return errors;
	return NULL;
}

static void base_url_ok(const char *url, const char *extra, const char *stored)
{
	struct sp_config *cfg = NULL;
	char *errors = try_base_url(url, extra, &cfg);
	ck_assert_msg(errors == NULL, "%s refused: %s", url, errors);
	ck_assert_str_eq(cfg->base_url, stored);
	config_free(cfg);
}

static void base_url_bad(const char *url, const char *extra, const char *reason)
{
	struct sp_config *cfg = NULL;
	char *errors = try_base_url(url, extra, &cfg);
	ck_assert_msg(errors != NULL, "%s accepted", url);
	char want[512];
	snprintf(want, sizeof(want), "t.conf:2: smartpay.base_url: %s\n", reason);
	ck_assert_msg(strcmp(errors, want) == 0, "%s: got %swant %s", url, errors, want);
	free(errors);
}

START_TEST(test_base_url_rules)
{
	const char *insecure = "plain http:// is refused for a host that is not loopback; use "
	                       "https:// or set smartpay.allow_insecure_http = yes";
	base_url_ok("https://smartpay.example/api/", NULL, "https://smartpay.example/api");
	base_url_ok("https://smartpay.example/", NULL, "https://smartpay.example");
	base_url_ok("https://smartpay.example:443", NULL, "https://smartpay.example:443");
	base_url_ok("https://[2001:db8::1]:8443/x", NULL, "https://[2001:db8::1]:8443/x");
	base_url_bad("http://smartpay.example/api", NULL, insecure);
	base_url_bad("http://10.0.0.5:8080", NULL, insecure);
	base_url_bad("http://[2001:db8::1]/", NULL, insecure);
	base_url_bad("http://127.example", NULL, insecure);
	/* Loopback hosts may use http:// (the simulator). */
	base_url_ok("http://127.0.0.1:8080", NULL, "http://127.0.0.1:8080");
	base_url_ok("http://127.1.2.3:8080/sim/", NULL, "http://127.1.2.3:8080/sim");
	base_url_ok("http://[::1]:8080", NULL, "http://[::1]:8080");
	base_url_ok("http://localhost:8080", NULL, "http://localhost:8080");
	base_url_ok("http://LocalHost", NULL, "http://LocalHost");
	/* allow_insecure_http may come after base_url in the file. */
	base_url_ok("http://smartpay.example/api", "allow_insecure_http = yes\n",
	            "http://smartpay.example/api");
	base_url_bad("http://smartpay.example/api", "allow_insecure_http = no\n", insecure);

	base_url_bad("ftp://smartpay.example", NULL,
	             "must start with https:// (or http:// for a loopback host)");
	base_url_bad("smartpay.example", NULL,
	             "must start with https:// (or http:// for a loopback host)");
	base_url_bad("https://", NULL, "missing host");
	base_url_bad("https:///api", NULL, "missing host");
	base_url_bad("https://user:pw@smartpay.example", NULL,
	             "credentials in the URL are not allowed");
	base_url_bad("https://smartpay.example/api?x=1", NULL,
	             "a query ('?...') is not allowed in the base URL");
	base_url_bad("https://smartpay.example/#x", NULL, "a URL fragment ('#...') is not allowed");
	base_url_bad("https://smartpay.example:0", NULL, "port must be between 1 and 65535");
	base_url_bad("https://smartpay.example:99999", NULL, "port must be between 1 and 65535");
	base_url_bad("https://smartpay.example:", NULL, "bad port");
	base_url_bad("https://smart pay.example", NULL,
	             "spaces are not allowed in a URL (encode them as %20)");
	base_url_bad("https://smart_pay!.example", NULL, "bad character '!' in host name");
	base_url_bad("https://[::1", NULL, "missing ']' after the IPv6 address");
	base_url_bad("https://[zz::1]", NULL, "bad IPv6 address [zz::1]");
}
END_TEST

START_TEST(test_insecure_warning_and_webhook)
{
	struct sp_config *cfg = NULL;
	char *errors =
	    try_base_url("http://smartpay.example/api",
	                 "allow_insecure_http = yes\norigin = https://shop.example\n", &cfg);
	ck_assert_ptr_null(errors);
	ck_assert_str_eq(cfg->warnings,
	                 "t.conf:2: smartpay.base_url: plain http:// to a host that is not "
	                 "loopback: requests travel unencrypted (allow_insecure_http = yes)\n");
	config_free(cfg);

	one_error("[alerts]\nwebhook_url = http://hooks.example/a\n",
	          "t.conf:5: alerts.webhook_url: plain http:// is refused for a host that is not "
	          "loopback; use https:// or set smartpay.allow_insecure_http = yes");
	cfg = load_ok(REQUIRED "[alerts]\nwebhook_url = http://127.0.0.1:9000/hook\n");
	ck_assert_str_eq(cfg->webhook_url, "http://127.0.0.1:9000/hook");
	config_free(cfg);
	cfg = load_ok(REQUIRED "allow_insecure_http = on\n[alerts]\nwebhook_url = "
	                       "http://hooks.example/a?b=c\n");
	ck_assert_str_eq(cfg->webhook_url, "http://hooks.example/a?b=c");
	config_free(cfg);
}
END_TEST

START_TEST(test_other_values)
{
	one_error("[database]\norders_relation = public.orders;drop\n",
	          "t.conf:5: database.orders_relation: identifiers may only contain letters, "
	          "digits and '_'");
	one_error("[database]\norders_relation = a.b.c\n",
	          "t.conf:5: database.orders_relation: too many dots: expected name or "
	          "schema.name");
	one_error("[database]\norders_relation = .orders\n",
	          "t.conf:5: database.orders_relation: empty identifier: expected name or "
	          "schema.name");
	one_error("[database]\nconninfo = host\n",
	          "t.conf:5: database.conninfo: not a valid libpq connection string: missing "
	          "\"=\" after \"host\" in connection info string");
	one_error("[database]\nconninfo = password=Zq9-SECRET bogus\n",
	          "t.conf:5: database.conninfo: not a valid libpq connection string (details "
	          "withheld: it may contain a password)");
	one_error("[metrics]\nlisten = 9464\n", "t.conf:5: metrics.listen: missing port: expected "
	                                        "host:port");
	one_error("[metrics]\nlisten = ::1:9464\n",
	          "t.conf:5: metrics.listen: IPv6 addresses need brackets, e.g. [::1]");
	one_error("[metrics]\nlisten = :9464\n", "t.conf:5: metrics.listen: missing host");
	one_error("[metrics]\nmax_connections = 0\n",
	          "t.conf:5: metrics.max_connections: must be between 1 and 10000");
	one_error("[metrics]\nrequest_timeout = 10ms\n",
	          "t.conf:5: metrics.request_timeout: must be between 100ms and 5m");
	one_error("[reconcile]\nrequests_per_second = 0\n",
	          "t.conf:5: reconcile.requests_per_second: must be between 1 and 1000");
	one_error("[reconcile]\nlookback = 30s\n",
	          "t.conf:5: reconcile.lookback: must be between 1m and 366d");
	one_error("[reconcile]\ninterval = 2d\n",
	          "t.conf:5: reconcile.interval: must be at most 1d");
	one_error("[reconcile]\nunknown_answers = 0\n",
	          "t.conf:5: reconcile.unknown_answers: must be between 1 and 100000");
	one_error("[daemon]\ninstance_name = node 1\n",
	          "t.conf:5: daemon.instance_name: 'node 1' may only contain letters, digits and "
	          ". - _ : @");
	one_error("[daemon]\ninstance_name = %x\n",
	          "t.conf:5: daemon.instance_name: unknown specifier: only %H (the host name) is "
	          "expanded");
	one_error("[daemon]\nlog_level = verbose\n",
	          "t.conf:5: daemon.log_level: unknown level: use debug, info, notice, warning or "
	          "error");
	one_error("[daemon]\nmax_attempts = -1\n", "t.conf:5: daemon.max_attempts: not a whole "
	                                           "number");
	one_error("[daemon]\nbatch_size = 99999999999999999999999\n",
	          "t.conf:5: daemon.batch_size: must be between 1 and 10000");
	one_error("ca_file = certs/ca.pem\n",
	          "t.conf:4: smartpay.ca_file: must be an absolute path");
	one_error("origin = https://shop.example/\n",
	          "t.conf:4: smartpay.origin: an origin is scheme://host[:port], without a path");

	struct sp_config *cfg = load_ok(REQUIRED "[metrics]\nlisten =\n[daemon]\ninstance_name = "
	                                         "a-%H\n");
	char host[HOST_NAME_MAX + 1], want[HOST_NAME_MAX + 16];
	ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
	snprintf(want, sizeof(want), "a-%s", host);
	ck_assert_str_eq(cfg->metrics_listen, "");
	ck_assert_str_eq(cfg->instance_name, want);
	config_free(cfg);

	cfg = load_ok(REQUIRED "[daemon]\ninstance_name =\nlog_level = warning\n");
	ck_assert_str_eq(cfg->instance_name, host);
	ck_assert_int_eq(cfg->log_level, LOG_LVL_WARNING);
	config_free(cfg);
}
END_TEST

START_TEST(test_parse_duration)
{
	static const struct {
		const char *text;
		int64_t ms;
	} good[] = {{"0s", 0},
	            {"100ms", 100},
	            {"90s", 90000},
	            {"5m", 300000},
	            {"120h", INT64_C(432000000)},
	            {"5d", INT64_C(432000000)},
	            {"007s", 7000},
	            {"9223372036854775807ms", INT64_MAX}};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int64_t ms = -1;
		const char *why = NULL;
		ck_assert_msg(config_parse_duration(good[i].text, &ms, &why), "%s: %s",
		              good[i].text, why);
		ck_assert_int_eq(ms, good[i].ms);
	}
	static const struct {
		const char *text, *why;
	} bad[] = {
	    {"", "empty duration"},
	    {"90", "missing unit: add ms, s, m, h or d (e.g. 90s)"},
	    {"-1s", "negative duration"},
	    {"+1s", "not a duration: expected a whole number and a unit, e.g. 90s"},
	    {"s", "not a duration: expected a whole number and a unit, e.g. 90s"},
	    {" 1s", "not a duration: expected a whole number and a unit, e.g. 90s"},
	    {"1.5h", "fractions are not allowed: use a smaller unit (90m, not 1.5h)"},
	    {"90 s", "no space allowed between the number and the unit"},
	    {"5w", "unknown unit: use ms, s, m, h or d"},
	    {"5S", "unknown unit: use ms, s, m, h or d"},
	    {"1h30m", "unknown unit: use ms, s, m, h or d"},
	    {"9223372036854775807s", "duration too large"},
	    {"99999999999999999999ms", "duration too large"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ms = -1;
		const char *why = NULL;
		ck_assert_msg(!config_parse_duration(bad[i].text, &ms, &why), "'%s' accepted",
		              bad[i].text);
		ck_assert_int_eq(ms, -1);
		ck_assert_msg(why && strcmp(why, bad[i].why) == 0, "'%s': got '%s'", bad[i].text,
		              why);
	}
	int64_t ms;
	ck_assert(!config_parse_duration(NULL, &ms, NULL));
}
END_TEST

/* Writes a temporary file and returns its malloc'd path. */
static char *write_temp(const char *content, size_t len)
{
	const char *dir = getenv("TMPDIR");
	char *path = malloc(4096);
	snprintf(path, 4096, "%s/check_config.XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

START_TEST(test_load_file)
{
	const char *text = REQUIRED "timeout = 5s\n[daemon]\nlease = 3s\n";
	char *path = write_temp(text, strlen(text));
	struct sp_config *cfg = NULL;
	char *errors = NULL;
	ck_assert(!config_load(path, &cfg, &errors));
	char want[4200];
	snprintf(want, sizeof(want),
	         "%s:6: daemon.lease: must be at least 5s longer than smartpay.timeout (5s)\n",
	         path);
	ck_assert_str_eq(errors, want);
	free(errors);
	unlink(path);

	ck_assert(!config_load(path, &cfg, &errors));
	ck_assert_ptr_null(cfg);
	snprintf(want, sizeof(want), "%s:0: file: cannot read: %s\n", path, strerror(ENOENT));
	ck_assert_str_eq(errors, want);
	free(errors);
	free(path);

	ck_assert(!config_load("/", &cfg, &errors));
	snprintf(want, sizeof(want), "/:0: file: cannot read: %s\n", strerror(EISDIR));
	ck_assert_str_eq(errors, want);
	free(errors);

	/* A NUL byte in the file is a control character on its line. */
	static const char nul[] = REQUIRED "origin = https://a.example\0x\n";
	path = write_temp(nul, sizeof(nul) - 1);
	ck_assert(!config_load(path, &cfg, &errors));
	snprintf(want, sizeof(want), "%s:4: syntax: control character (byte 0x00) in line\n", path);
	ck_assert_str_eq(errors, want);
	free(errors);
	unlink(path);
	free(path);
}
END_TEST

/* The shipped example configuration loads, and it documents every key. */
START_TEST(test_example_config)
{
	static const char *const key_names[] = {
	    "conninfo",
	    "orders_relation",
	    "statement_timeout",
	    "base_url",
	    "merchant_key",
	    "authentication_key_file",
	    "ca_file",
	    "origin",
	    "user_agent",
	    "timeout",
	    "connect_timeout",
	    "allow_insecure_http",
	    "instance_name",
	    "max_inflight",
	    "batch_size",
	    "poll_interval",
	    "lease",
	    "max_attempts",
	    "retry_base",
	    "retry_max",
	    "drain_timeout",
	    "log_level",
	    "shipped_statuses",
	    "cancelled_statuses",
	    "authorization_validity",
	    "early_statuses",
	    "early_margin",
	    "early_action",
	    "expiry_thresholds",
	    "webhook_url",
	    "gateway_unreachable",
	    "expired_lookback",
	    "summary_after",
	    "listen",
	    "max_connections",
	    "request_timeout",
	    "gauges_interval",
	    "interval",
	    "lookback",
	    "requests_per_second",
	    "unknown_answers",
	};
	const char *top = getenv("SP_TOP_SRCDIR");
	ck_assert_msg(top != NULL, "SP_TOP_SRCDIR is not set (run through make check)");
	char path[4096];
	snprintf(path, sizeof(path), "%s/daemon/smartpayd.conf", top);

	struct sp_config *cfg = NULL;
	char *errors = NULL;
	ck_assert_msg(config_load(path, &cfg, &errors), "%s", errors);
	ck_assert_str_eq(cfg->base_url, "https://smartpay.example/api");
	ck_assert_int_eq(cfg->timeout_ms, 90000);
	ck_assert_int_eq(cfg->lease_ms, 300000);
	ck_assert_uint_eq(cfg->expiry_threshold_count, 2);
	ck_assert_str_eq(cfg->metrics_listen, "127.0.0.1:9464");
	ck_assert_ptr_nonnull(strstr(cfg->warnings, "smartpay.origin: not set"));
	config_free(cfg);

	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	char *text = calloc(1, 65536);
	size_t n = fread(text, 1, 65535, f);
	fclose(f);
	text[n] = '\0';
	for (size_t i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++) {
		char set[64], commented[64];
		snprintf(set, sizeof(set), "\n%s = ", key_names[i]);
		snprintf(commented, sizeof(commented), "\n#%s = ", key_names[i]);
		bool found = strstr(text, set) != NULL || strstr(text, commented) != NULL;
		if (!found) {
			snprintf(set, sizeof(set), "\n%s =\n", key_names[i]);
			found = strstr(text, set) != NULL;
		}
		ck_assert_msg(found, "key %s is not in the example configuration", key_names[i]);
	}
	free(text);
}
END_TEST

/* Writes `content` to dir/name. */
static void put_file(const char *dir, const char *name, const char *content)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(content, f);
	fclose(f);
}

static char *make_temp_dir(void)
{
	const char *dir = getenv("TMPDIR");
	char *path = malloc(4096);
	snprintf(path, 4096, "%s/check_config.XXXXXX", dir && *dir ? dir : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(path));
	return path;
}

START_TEST(test_read_secret)
{
	const char *secret_word = "Zq9-s3cr3t-Vw7";
	char *dir = make_temp_dir();
	char keyfile[4200], text[8400];
	snprintf(keyfile, sizeof(keyfile), "%s/key", dir);
	snprintf(text, sizeof(text), REQUIRED "authentication_key_file = %s\n", keyfile);
	struct sp_config *cfg = load_ok(text);
	char *why = NULL;

	/* From the configured file, trailing newlines stripped. */
	put_file(dir, "key", "Zq9-s3cr3t-Vw7\n");
	char *secret = config_read_secret(cfg, &why);
	ck_assert_ptr_nonnull(secret);
	ck_assert_str_eq(secret, secret_word);
	free(secret);
	put_file(dir, "key", "Zq9-s3cr3t-Vw7\r\n\n\n");
	secret = config_read_secret(cfg, &why);
	ck_assert_str_eq(secret, secret_word);
	free(secret);
	put_file(dir, "key", "Zq9-s3cr3t-Vw7");
	secret = config_read_secret(cfg, &why);
	ck_assert_str_eq(secret, secret_word);
	free(secret);

	/* Problems name the file, never the secret. */
	put_file(dir, "key", "Zq9-s3cr3t-Vw7\nsecond line\n");
	ck_assert_ptr_null(config_read_secret(cfg, &why));
	ck_assert_ptr_nonnull(why);
	ck_assert_ptr_nonnull(strstr(why, keyfile));
	ck_assert_ptr_nonnull(strstr(why, "line break or control character"));
	ck_assert_ptr_null(strstr(why, "Zq9"));
	free(why);
	put_file(dir, "key", "\n");
	ck_assert_ptr_null(config_read_secret(cfg, &why));
	ck_assert_ptr_nonnull(strstr(why, "the file is empty"));
	free(why);
	unlink(keyfile);
	ck_assert_ptr_null(config_read_secret(cfg, &why));
	ck_assert_ptr_nonnull(strstr(why, keyfile));
	ck_assert_ptr_nonnull(strstr(why, strerror(ENOENT)));
	free(why);
	config_free(cfg);

	/* From $CREDENTIALS_DIRECTORY when no file is configured. */
	cfg = load_ok(REQUIRED);
	put_file(dir, CONFIG_CREDENTIAL_NAME, "Zq9-s3cr3t-Vw7\n");
	setenv("CREDENTIALS_DIRECTORY", dir, 1);
	secret = config_read_secret(cfg, &why);
	ck_assert_ptr_nonnull(secret);
	ck_assert_str_eq(secret, secret_word);
	free(secret);
	snprintf(keyfile, sizeof(keyfile), "%s/%s", dir, CONFIG_CREDENTIAL_NAME);
	unlink(keyfile);
	ck_assert_ptr_null(config_read_secret(cfg, &why));
	ck_assert_ptr_nonnull(strstr(why, keyfile));
	free(why);
	unsetenv("CREDENTIALS_DIRECTORY");
	ck_assert_ptr_null(config_read_secret(cfg, &why));
	ck_assert_ptr_nonnull(strstr(why, "CREDENTIALS_DIRECTORY is not set"));
	free(why);
	config_free(cfg);

	rmdir(dir);
	free(dir);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	testutil_tcase(s, "core", 0,
	               (const TTest *const[]){
	                   test_minimal_and_defaults, test_every_key_set, test_interfaces_sample,
	                   test_inline_comments_and_layout, test_long_line, test_error_lines,
	                   test_required_keys, test_syntax_errors, test_unknown_key_hints,
	                   test_durations_in_file, test_relations_between_keys, test_base_url_rules,
	                   test_insecure_warning_and_webhook, test_other_values,
	                   test_parse_duration, test_load_file, test_example_config,
	                   test_read_secret, NULL});
	return s;
}

int main(void)
{
	return testutil_run_suite(config_suite(), CK_NORMAL);
}
