/* Secrets never reach a log: a full run at log_level debug, with a wrong authentication
 * key first (401, sending paused, an alert), the key file fixed and SIGHUP, then retries
 * through 503s and connection resets until every capture succeeds. The daemon's log,
 * the --check-config output and the ledger are then searched for both keys, any ten
 * characters of them, and the Basic authorization values. */
#include "autoconfig.h"

#include "pgtest.h"
#include "testutil.h"
#include "world.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 30000
#define MERCHANT "7f0c2a55-3b1e-4d8a-9c6f-0e4b5d2a7c91"
#define RIGHT_KEY "Rk7-Q2xv9-Zt4mW8pL-c3Hs"
#define WRONG_KEY "Wz3-Jd8r1-Hn6yB2qT-u5Ne"

/* Looks in `text` for the key, any 10 characters of it, the base64 of merchant:key (the
 * Basic authorization value) or its key-bearing tail, the key in base64, or an
 * Authorization header. Returns what was found (static), or NULL. */
static const char *find_secret(const char *text, const char *key)
{
	static char found[96];
	size_t klen = strlen(key);
	for (size_t i = 0; i + 10 <= klen; i++) {
		char window[11];
		memcpy(window, key + i, 10);
		window[10] = '\0';
		if (strstr(text, window)) {
			snprintf(found, sizeof(found), "'%s' of a key", window);
			return found;
		}
	}
	char *userpass = NULL;
	ck_assert_int_ge(asprintf(&userpass, "%s:%s", MERCHANT, key), 0);
	char *b64 = testutil_base64(userpass);
	char *b64key = testutil_base64(key);
	const char *what = NULL;
	if (strstr(text, b64))
		what = "the Basic authorization value";
	else if (strstr(text, b64 + strlen(b64) - 16))
		what = "the tail of the Basic authorization value";
	else if (strstr(text, b64key))
		what = "the key in base64";
	else if (strcasestr(text, "authorization:"))
		what = "an Authorization header";
	free(b64key);
	free(b64);
	free(userpass);
	return what;
}

static void assert_no_secret(const char *where, const char *text, const char *key)
{
	const char *what = find_secret(text, key);
	ck_assert_msg(what == NULL, "%s contains %s", where, what);
}

/* Runs `smartpayd --check-config -c CONF`, which must succeed, and returns its output
 * (malloc'd). */
static char *check_config_output(const char *conf)
{
	struct testutil_run r = testutil_run_built(
	    "smartpayd", (const char *[]){"--check-config", "-c", conf, NULL}, pgtest_dir());
	ck_assert_int_eq(r.status, 0);
	char *text = NULL;
	ck_assert_int_ge(asprintf(&text, "%s%s", r.out, r.err), 0);
	testutil_run_free(&r);
	return text;
}

START_TEST(no_secret_in_logs)
{
	struct simproc_opts opts = {.merchant_key = MERCHANT, .auth_key = RIGHT_KEY};
	struct world w;
	world_up_with(&w, &(struct world_opts){.sim = &opts, .daemon_auth_key = WRONG_KEY}, NULL);
	world_add_orders(&w, 6, &(struct world_order){.amount = "19.99"});

	/* a wrong key first: SmartPay answers 401 and the daemon pauses */
	daemonproc_start(&w.d, false);
	long long alerts = daemonproc_wait_count(&w.d, w.db,
	                                         "SELECT count(*) FROM smartpay.alerts "
	                                         "WHERE kind = 'credentials_rejected'",
	                                         1, WAIT_MS);
	ck_assert_int_ge(alerts, 1);
	ck_assert(daemonproc_log_contains(&w.d, "credentials_rejected"));

	/* the operator fixes the key file and reloads; the gateway fails now and then */
	ck_assert(simproc_set_faults(w.sim, "{\"seed\": 7, \"fail_rate\": 0.3, \"status\": 503, "
	                                    "\"reset_rate\": 0.2}"));
	char key_path[320];
	snprintf(key_path, sizeof(key_path), "%s/authentication-key", w.d.dir);
	testutil_write_file(key_path, RIGHT_KEY "\n", 0600);
	daemonproc_signal(&w.d, SIGHUP);
	long long done = daemonproc_wait_count(&w.d, w.db,
	                                       "SELECT count(*) FROM smartpay.modifications "
	                                       "WHERE state = 'succeeded'",
	                                       6, WAIT_MS);
	ck_assert_int_eq(done, 6);
	ck_assert_int_eq(daemonproc_stop(&w.d), 0);
	ck_assert(daemonproc_log_contains(&w.d, "reloaded"));
	ck_assert(daemonproc_log_contains(&w.d, "modification_retry"));
	ck_assert(daemonproc_log_contains(&w.d, "level=debug") ||
	          daemonproc_log_contains(&w.d, "<7>"));

	/* the whole log, the --check-config output and the ledger are clean */
	char *log = testutil_read_file(w.d.log);
	ck_assert_ptr_nonnull(log);
	ck_assert_uint_gt(strlen(log), 1000);
	assert_no_secret("the log", log, WRONG_KEY);
	assert_no_secret("the log", log, RIGHT_KEY);
	free(log);
	char *checked = check_config_output(w.d.conf);
	assert_no_secret("--check-config", checked, RIGHT_KEY);
	free(checked);
	PGresult *r =
	    pgtest_query(w.db, "SELECT coalesce(string_agg(concat_ws(' ', request_body, "
	                       "response_body, reason), ' '), '') FROM smartpay.modifications");
	assert_no_secret("the ledger", PQgetvalue(r, 0, 0), RIGHT_KEY);
	assert_no_secret("the ledger", PQgetvalue(r, 0, 0), WRONG_KEY);
	PQclear(r);
	r = pgtest_query(w.db,
	                 "SELECT coalesce(string_agg(message, ' '), '') FROM smartpay.alerts");
	assert_no_secret("the alerts", PQgetvalue(r, 0, 0), WRONG_KEY);
	PQclear(r);

	world_down(&w);
}
END_TEST

/* The search itself finds what it looks for (a test that cannot fail is a defect). */
START_TEST(search_finds_leaks)
{
	char *userpass = NULL;
	ck_assert_int_ge(asprintf(&userpass, "%s:%s", MERCHANT, RIGHT_KEY), 0);
	char *b64 = testutil_base64(userpass);
	char *line = NULL;
	ck_assert_int_ge(asprintf(&line, "event=x header=\"Basic %s\"\n", b64), 0);
	ck_assert_str_eq(find_secret(line, RIGHT_KEY), "the Basic authorization value");
	free(line);
	ck_assert_int_ge(asprintf(&line, "event=x auth=%s\n", b64 + 8), 0);
	ck_assert_str_eq(find_secret(line, RIGHT_KEY), "the tail of the Basic authorization value");
	free(line);
	free(b64);
	free(userpass);
	ck_assert_str_eq(find_secret("event=x key_prefix=Zt4mW8pL-c\n", RIGHT_KEY),
	                 "'Zt4mW8pL-c' of a key");
	ck_assert_str_eq(find_secret("> Authorization: Bearer x\n", RIGHT_KEY),
	                 "an Authorization header");
	ck_assert_ptr_null(find_secret("event=x order_id=1 msg=\"all fine\"\n", RIGHT_KEY));
}
END_TEST

START_TEST(base64_known_answer)
{
	char *b = testutil_base64("Aladdin:open sesame");
	ck_assert_str_eq(b, "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
	free(b);
}
END_TEST

int main(void)
{
	pgtest_start();
	Suite *s = suite_create("secrets");
	testutil_tcase(s, "search", 0,
	               (const TTest *const[]){base64_known_answer, search_finds_leaks, NULL});
	testutil_tcase(s, "daemon", 90, (const TTest *const[]){no_secret_in_logs, NULL});
	return testutil_run_suite(s, CK_ENV);
}
