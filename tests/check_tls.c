/* lib/http.c over TLS against the real smartpay-sim: connections kept across drained
 * windows, TLS sessions resumed on new connections (also from a cache shared between
 * clients), verification always on. */
#include "autoconfig.h"

#include "config.h"
#include "http.h"
#include "simproc.h"
#include "status_call.h"
#include "testutil.h"
#include "xmalloc.h"

#include <check.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Transfers per wave (and the client's connection limit), and waves in the reuse test. */
#define WAVE 32
#define WAVES 10

/* Transfers at once (and connections allowed) in the wide HTTP/2 test: one lane, more
 * than curl's default of 100 streams per connection. */
#define WIDE_WAVE 128

/* One client on its own loop, and the results of the wave being waited for. */
struct tls_ctx {
	struct event_base *base;
	struct http_client *client;
	struct simproc *sim;
	char *url;
	int expected, done, ok, failed;
	char *last_error; /* the last failed transfer's error (malloc'd) */
	long next_txn;
};

/* Starts the simulator over TLS (with one more argument, or NULL) and a client of at most
 * max_conns connections trusting ca_file (NULL: the system's store; "": the simulator's
 * own CA). */
static void ctx_init_args(struct tls_ctx *t, const char *ca_file, const char *arg, long max_conns)
{
	memset(t, 0, sizeof(*t));
	struct simproc_opts opts = {
	    .tls = true,
	    .extra_args = (const char *const[]){"--seed", "7", "--preload", "400", arg, NULL}};
	t->sim = simproc_start(&opts);
	ck_assert_ptr_nonnull(t->sim);
	t->base = event_base_new();
	ck_assert_ptr_nonnull(t->base);
	struct http_options o = {
	    .ca_file = ca_file != NULL && *ca_file == '\0' ? simproc_ca_file(t->sim) : ca_file,
	    .timeout_ms = 20000,
	    .connect_timeout_ms = 5000,
	    .max_host_connections = max_conns};
	t->client = http_client_new(t->base, &o);
	ck_assert_ptr_nonnull(t->client);
	t->url = xasprintf("%s/payment/capture", simproc_base_url(t->sim));
}

/* ctx_init_args without a further argument: the simulator speaks HTTP/1.1 only. */
static void ctx_init(struct tls_ctx *t, const char *ca_file)
{
	ctx_init_args(t, ca_file, NULL, WAVE);
}

/* Frees what ctx_init made and checks the simulator exits cleanly. */
static void ctx_done(struct tls_ctx *t)
{
	http_client_free(t->client);
	event_base_free(t->base);
	free(t->url);
	free(t->last_error);
	ck_assert(simproc_stop(t->sim));
}

/* Counts one finished transfer; a 200 is a success. */
static void on_done(const struct http_result *res, void *arg)
{
	struct tls_ctx *t = arg;
	if (res->http_status == 200) {
		t->ok++;
	} else {
		t->failed++;
		free(t->last_error);
		t->last_error = xstrdup(res->error != NULL ? res->error : "no error text");
	}
	if (++t->done == t->expected)
		event_base_loopbreak(t->base);
}

/* Submits n captures of preloaded transactions at once (with extra_header, or NULL)
 * and runs the loop until all have finished: the window fills, then drains to 0. */
static void wave(struct tls_ctx *t, int n, const char *extra_header)
{
	const char *headers[] = {"Content-Type: application/json", "Accept-Language: en-US",
	                         "Origin: https://shop.example", extra_header, NULL};
	t->expected = t->done + n;
	for (int i = 0; i < n; i++) {
		/* the simulator's preloaded ids (seed 7) */
		long k = t->next_txn++;
		char *body = xasprintf("{\"transactionId\":\"00000007-0000-4000-8000-%012lx\","
		                       "\"merchantKey\":\"%s\",\"modificationId\":\"tls-%ld\"}",
		                       k, simproc_merchant_key(t->sim), k);
		struct http_request req = {.method = "POST",
		                           .url = t->url,
		                           .headers = headers,
		                           .body = body,
		                           .body_len = strlen(body),
		                           .username = simproc_merchant_key(t->sim),
		                           .password = simproc_auth_key(t->sim)};
		ck_assert(http_submit(t->client, &req, on_done, t));
		free(body);
	}
	struct timeval tv = {30, 0};
	event_base_loopexit(t->base, &tv);
	event_base_dispatch(t->base);
	ck_assert_int_eq(t->done, t->expected);
	ck_assert_uint_eq(http_inflight(t->client), 0);
}

/* A number of the simulator's ledger document ("connections", "tlsResumed"). */
static long ledger_number(struct tls_ctx *t, const char *key)
{
	struct json_object *l = simproc_ledger(t->sim);
	ck_assert_ptr_nonnull(l);
	struct json_object *v;
	ck_assert_msg(json_object_object_get_ex(l, key, &v), "no %s in the ledger", key);
	long n = (long)json_object_get_int64(v);
	json_object_put(l);
	return n;
}

/* The window fills and drains again and again, as the engine's does between claims:
 * the connections of the first wave serve every later one (curl's default cache size
 * closed idle connections each time the window drained, and every later wave paid for
 * new handshakes). */
START_TEST(connections_survive_a_drained_window)
{
	struct tls_ctx t;
	ctx_init(&t, "");
	for (int w = 0; w < WAVES; w++)
		wave(&t, WAVE, NULL);
	ck_assert_msg(t.failed == 0, "%d failed: %s", t.failed, t.last_error);
	ck_assert_int_eq(t.ok, WAVES * WAVE);
	/* the ledger is read on a connection of its own */
	long conns = ledger_number(&t, "connections") - 1;
	ck_assert_msg(conns <= WAVE, "%ld connections for %d transfers at most %d at once", conns,
	              WAVES * WAVE, WAVE);
	ctx_done(&t);
}
END_TEST

/* A new connection resumes the TLS session of an earlier one instead of a full
 * handshake (the transfers share one session cache). */
START_TEST(new_connections_resume_the_session)
{
	struct tls_ctx t;
	ctx_init(&t, "");
	/* one at a time, each closing its connection: four connections in turn */
	for (int i = 0; i < 4; i++)
		wave(&t, 1, "Connection: close");
	ck_assert_msg(t.failed == 0, "%d failed: %s", t.failed, t.last_error);
	ck_assert_int_eq(ledger_number(&t, "connections") - 1, 4);
	ck_assert_int_ge(ledger_number(&t, "tlsResumed"), 3);
	ctx_done(&t);
}
END_TEST

/* Verification stays on: the system's store does not trust the throwaway CA, another
 * CA does not either, and a resumed session is no way around it. */
START_TEST(untrusted_certificate_refused)
{
	struct tls_ctx t;
	ctx_init(&t, NULL);
	wave(&t, 2, NULL);
	ck_assert_int_eq(t.ok, 0);
	ck_assert_int_eq(t.failed, 2);
	ck_assert_ptr_nonnull(t.last_error);
	ck_assert(simproc_make_tls(simproc_dir(t.sim), "other"));
	char *other = xasprintf("%s/other-ca.pem", simproc_dir(t.sim));
	struct http_options o = {.ca_file = other, .timeout_ms = 20000, .max_host_connections = 2};
	http_client_free(t.client);
	t.client = http_client_new(t.base, &o);
	ck_assert_ptr_nonnull(t.client);
	wave(&t, 2, NULL);
	ck_assert_int_eq(t.ok, 0);
	ck_assert_int_eq(t.failed, 4);
	free(other);
	ctx_done(&t);
}
END_TEST

/* A second client on t's loop trusting ca_file, at most WAVE connections. */
static struct http_client *second_client(struct tls_ctx *t, const char *ca_file)
{
	struct http_options o = {.ca_file = ca_file,
	                         .timeout_ms = 20000,
	                         .connect_timeout_ms = 5000,
	                         .max_host_connections = WAVE};
	struct http_client *c = http_client_new(t->base, &o);
	ck_assert_ptr_nonnull(c);
	return c;
}

/* A client sharing another's session cache (http_client_share_tls) resumes, on its very
 * first connection, the session the other holds (on its own cache that connection would
 * be a full handshake), and the cache outlives the client that filled it. One new
 * connection at a time: OpenSSL's client takes a TLS 1.3 ticket out of use once a
 * handshake that resumed it has finished, and each handshake brings the next tickets. */
START_TEST(shared_cache_resumes_the_other_clients_session)
{
	struct tls_ctx t;
	ctx_init(&t, "");
	wave(&t, 1, NULL);
	struct http_client *first = t.client;
	t.client = second_client(&t, simproc_ca_file(t.sim));
	ck_assert(http_client_share_tls(t.client, first));
	long conns0 = ledger_number(&t, "connections");
	long resumed0 = ledger_number(&t, "tlsResumed");
	wave(&t, 1, "Connection: close");
	wave(&t, 1, "Connection: close");
	http_client_free(first);
	wave(&t, 1, NULL);
	ck_assert_msg(t.failed == 0, "%d failed: %s", t.failed, t.last_error);
	/* each ledger read after the first came on a connection of its own, a full handshake */
	ck_assert_int_eq(ledger_number(&t, "connections") - conns0 - 2, 3);
	ck_assert_int_eq(ledger_number(&t, "tlsResumed") - resumed0, 3);
	ctx_done(&t);
}
END_TEST

/* Counts a status call's answer and stops the loop. */
static void on_status(enum status_result result, struct gw_history *history, int http_status,
                      const char *error, void *arg)
{
	(void)history;
	(void)http_status;
	(void)error;
	struct tls_ctx *t = arg;
	if (result == STATUS_OK)
		t->ok++;
	else
		t->failed++;
	event_base_loopbreak(t->base);
}

/* The daemon's status calls (lib/status_call.c) keep their sessions in the engine's
 * cache: after one status call, the engine's client's first connection resumes. */
START_TEST(status_calls_share_the_engines_sessions)
{
	struct tls_ctx t;
	ctx_init(&t, "");
	char *text =
	    xasprintf("[smartpay]\nbase_url = %s\nmerchant_key = %s\nca_file = %s\n",
	              simproc_base_url(t.sim), simproc_merchant_key(t.sim), simproc_ca_file(t.sim));
	struct sp_config *cfg = NULL;
	char *errors = NULL;
	ck_assert_msg(config_load_string("t.conf", text, &cfg, &errors), "%s", errors);
	struct status_client *sc = status_client_new(t.base, cfg, simproc_auth_key(t.sim));
	ck_assert_ptr_nonnull(sc);
	ck_assert(status_client_share_tls(sc, t.client));
	status_client_get(sc, "00000007-0000-4000-8000-000000000000", on_status, &t);
	struct timeval tv = {30, 0};
	event_base_loopexit(t.base, &tv);
	event_base_dispatch(t.base);
	ck_assert_int_eq(t.ok, 1);
	long conns0 = ledger_number(&t, "connections");
	long resumed0 = ledger_number(&t, "tlsResumed");
	wave(&t, 1, NULL);
	ck_assert_msg(t.failed == 0, "%d failed: %s", t.failed, t.last_error);
	ck_assert_int_eq(ledger_number(&t, "connections") - conns0 - 2, 1);
	ck_assert_int_eq(ledger_number(&t, "tlsResumed") - resumed0, 1);
	status_client_free(sc);
	config_free(cfg);
	free(text);
	ctx_done(&t);
}
END_TEST

/* A client that trusts another CA finds no session in the cache it shares with one that
 * trusts the simulator's: its handshakes are full ones, and they are refused. */
START_TEST(shared_cache_keeps_verification)
{
	struct tls_ctx t;
	ctx_init(&t, "");
	wave(&t, 1, NULL);
	ck_assert_int_eq(t.ok, 1);
	ck_assert(simproc_make_tls(simproc_dir(t.sim), "other"));
	char *other = xasprintf("%s/other-ca.pem", simproc_dir(t.sim));
	struct http_client *first = t.client;
	t.client = second_client(&t, other);
	ck_assert(http_client_share_tls(t.client, first));
	long resumed0 = ledger_number(&t, "tlsResumed");
	wave(&t, 2, NULL);
	ck_assert_int_eq(t.ok, 1);
	ck_assert_int_eq(t.failed, 2);
	ck_assert_int_eq(ledger_number(&t, "tlsResumed"), resumed0);
	http_client_free(first);
	free(other);
	ctx_done(&t);
}
END_TEST

/* Joining another client's cache is refused while a transfer is running, and the
 * transfer still finishes. */
START_TEST(share_refused_while_a_transfer_runs)
{
	struct tls_ctx t;
	ctx_init(&t, "");
	struct http_client *other = second_client(&t, simproc_ca_file(t.sim));
	const char *headers[] = {"Content-Type: application/json", "Accept-Language: en-US",
	                         "Origin: https://shop.example", NULL};
	char *body = xasprintf("{\"transactionId\":\"00000007-0000-4000-8000-%012lx\","
	                       "\"merchantKey\":\"%s\",\"modificationId\":\"tls-share\"}",
	                       0L, simproc_merchant_key(t.sim));
	struct http_request req = {.method = "POST",
	                           .url = t.url,
	                           .headers = headers,
	                           .body = body,
	                           .body_len = strlen(body),
	                           .username = simproc_merchant_key(t.sim),
	                           .password = simproc_auth_key(t.sim)};
	t.expected = 1;
	ck_assert(http_submit(t.client, &req, on_done, &t));
	ck_assert(!http_client_share_tls(t.client, other));
	ck_assert(!http_client_share_tls(NULL, other));
	ck_assert(!http_client_share_tls(other, NULL));
	struct timeval tv = {30, 0};
	event_base_loopexit(t.base, &tv);
	event_base_dispatch(t.base);
	ck_assert_msg(t.ok == 1, "failed: %s", t.last_error);
	ck_assert(http_client_share_tls(t.client, other));
	ck_assert(http_client_share_tls(t.client, other));
	http_client_free(other);
	free(body);
	ctx_done(&t);
}
END_TEST

/* The suite. */
/* Against a gateway that speaks HTTP/2 the client multiplexes its transfers on few
 * connections, and every transfer of every wave succeeds: the handles finished on an
 * HTTP/2 connection are not reused (curl 7.88 refuses the receive buffer size on them,
 * which failed most later transfers with "request setup failed"). */
START_TEST(waves_over_http2)
{
	struct tls_ctx t;
	ctx_init_args(&t, "", "--http2", WAVE);
	for (int w = 0; w < WAVES; w++)
		wave(&t, WAVE, NULL);
	ck_assert_msg(t.failed == 0, "%d failed: %s", t.failed, t.last_error);
	ck_assert_int_eq(t.ok, WAVES * WAVE);
	struct json_object *l = simproc_ledger(t.sim), *effects;
	ck_assert(json_object_object_get_ex(l, "effects", &effects));
	ck_assert_int_eq(json_object_array_length(effects), WAVES * WAVE);
	json_object_put(l);
	ck_assert_int_ge(ledger_number(&t, "http2Connections"), 1);
	long conns = ledger_number(&t, "connections") - 1;
	ck_assert_msg(conns < WAVE, "%ld connections for %d transfers over HTTP/2", conns,
	              WAVES * WAVE);
	ctx_done(&t);
}
END_TEST

/* A window wider than curl's default of 100 streams per connection started at once
 * over HTTP/2 shares one connection (with curl's default limit, transfers past 100
 * opened connections of their own: 8 for 128 transfers, each a TLS handshake). One
 * transfer goes first: until the gateway's SETTINGS have arrived curl counts 100
 * streams whatever the limit, so a wide wave started on a connection still in its
 * handshake puts the 28 past 100 on connections of their own (29 in all, seen under
 * load). */
START_TEST(a_wide_window_shares_one_http2_connection)
{
	struct tls_ctx t;
	ctx_init_args(&t, "", "--http2", WIDE_WAVE);
	wave(&t, 1, NULL);
	wave(&t, WIDE_WAVE, NULL);
	wave(&t, WIDE_WAVE, NULL);
	ck_assert_msg(t.failed == 0, "%d failed: %s", t.failed, t.last_error);
	ck_assert_int_eq(t.ok, 1 + 2 * WIDE_WAVE);
	long conns = ledger_number(&t, "connections") - 1;
	ck_assert_msg(conns == 1, "%ld connections for %d transfers at once over HTTP/2", conns,
	              WIDE_WAVE);
	ctx_done(&t);
}
END_TEST

static Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("tls");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, connections_survive_a_drained_window);
	tcase_add_test(tc, new_connections_resume_the_session);
	tcase_add_test(tc, untrusted_certificate_refused);
	tcase_add_test(tc, shared_cache_resumes_the_other_clients_session);
	tcase_add_test(tc, shared_cache_keeps_verification);
	tcase_add_test(tc, share_refused_while_a_transfer_runs);
	tcase_add_test(tc, status_calls_share_the_engines_sessions);
	tcase_add_test(tc, waves_over_http2);
	tcase_add_test(tc, a_wide_window_shares_one_http2_connection);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = testutil_run_suite(tls_suite(), CK_NORMAL);
	curl_global_cleanup();
	return rc;
}
