/* smartpay-sim --http2: HTTP/2 over TLS (ALPN h2) beside HTTP/1.1 on the same
 * listener, through the same handlers, ledger, faults and latency. Real simulator
 * (tests/simproc.h), libcurl clients verifying the throwaway CA. */
#include "autoconfig.h"
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include "simproc.h"
#include "testutil.h"
#include "xmalloc.h"

/* Requests sent at once over one connection. */
#define H2_BATCH 8

/* One request of a batch and what came back. */
struct h2x {
	CURL *c;
	struct curl_slist *hl;
	char *url;
	char *post;
	char *body; /* the answer body, NUL-terminated */
	size_t len;
	bool www_authenticate; /* the answer had WWW-Authenticate */
};

/* libcurl write callback: appends to the answer body. */
static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct h2x *x = arg;
	x->body = xrealloc(x->body, x->len + size * n + 1);
	memcpy(x->body + x->len, data, size * n);
	x->len += size * n;
	x->body[x->len] = '\0';
	return size * n;
}

/* libcurl header callback: notes WWW-Authenticate (any case, as HTTP/2 lower-cases). */
static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	struct h2x *x = arg;
	if (size * n >= 17 && strncasecmp(data, "WWW-Authenticate:", 17) == 0)
		x->www_authenticate = true;
	return size * n;
}

/* Sets up a POST (body non-NULL) or GET of path with the API headers (or without
 * Authorization when `auth` is false), for HTTP version `version`. */
static void h2x_init(struct h2x *x, const struct simproc *sim, const char *path, const char *body,
                     bool auth, long version)
{
	memset(x, 0, sizeof(*x));
	x->body = xstrdup("");
	x->c = curl_easy_init();
	ck_assert_ptr_nonnull(x->c);
	for (const char *const *h = simproc_api_headers(sim); *h; h++) {
		if (auth || strncasecmp(*h, "Authorization:", 14) != 0)
			x->hl = curl_slist_append(x->hl, *h);
	}
	x->hl = curl_slist_append(x->hl, "Expect:");
	x->url = xasprintf("%s%s", simproc_base_url(sim), path);
	curl_easy_setopt(x->c, CURLOPT_URL, x->url);
	curl_easy_setopt(x->c, CURLOPT_HTTPHEADER, x->hl);
	curl_easy_setopt(x->c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->c, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(x->c, CURLOPT_HTTP_VERSION, version);
	curl_easy_setopt(x->c, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(x->c, CURLOPT_CAINFO, simproc_ca_file(sim));
	curl_easy_setopt(x->c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(x->c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(x->c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(x->c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(x->c, CURLOPT_HEADERDATA, x);
	if (body != NULL) {
		x->post = xstrdup(body);
		curl_easy_setopt(x->c, CURLOPT_POSTFIELDS, x->post);
		curl_easy_setopt(x->c, CURLOPT_POSTFIELDSIZE, (long)strlen(x->post));
	}
}

static void h2x_free(struct h2x *x)
{
	curl_easy_cleanup(x->c);
	curl_slist_free_all(x->hl);
	free(x->url);
	free(x->post);
	free(x->body);
}

/* The HTTP status of a finished request, 0 when none came. */
static long h2x_status(struct h2x *x)
{
	long status = 0;
	curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

/* The HTTP version a finished request used (CURL_HTTP_VERSION_*). */
static long h2x_version(struct h2x *x)
{
	long v = 0;
	curl_easy_getinfo(x->c, CURLINFO_HTTP_VERSION, &v);
	return v;
}

/* Runs n requests at once on one multi handle (multiplexing on); returns the sum of
 * the connections they opened (CURLINFO_NUM_CONNECTS). Asserts each finished
 * without a transport error. */
static long run_batch(struct h2x *xs, int n)
{
	CURLM *m = curl_multi_init();
	ck_assert_ptr_nonnull(m);
	curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(curl_multi_add_handle(m, xs[i].c), CURLM_OK);
	int running = n;
	while (running > 0) {
		ck_assert_int_eq(curl_multi_perform(m, &running), CURLM_OK);
		if (running > 0)
			ck_assert_int_eq(curl_multi_poll(m, NULL, 0, 1000, NULL), CURLM_OK);
	}
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(m, &left)) != NULL) {
		if (msg->msg == CURLMSG_DONE)
			ck_assert_msg(msg->data.result == CURLE_OK, "transfer failed: %s",
			              curl_easy_strerror(msg->data.result));
	}
	long connects = 0;
	for (int i = 0; i < n; i++) {
		long k = 0;
		curl_easy_getinfo(xs[i].c, CURLINFO_NUM_CONNECTS, &k);
		connects += k;
		curl_multi_remove_handle(m, xs[i].c);
	}
	curl_multi_cleanup(m);
	return connects;
}

/* The integer member `key` of a fetched ledger, or -1. */
static long ledger_int(struct json_object *l, const char *key)
{
	struct json_object *v;
	if (l == NULL || !json_object_object_get_ex(l, key, &v))
		return -1;
	return (long)json_object_get_int64(v);
}

/* One ledger call (itself one connection, over HTTP/2): the connections counted and
 * those of them that chose HTTP/2. */
static void ledger_connections(const struct simproc *sim, long *all, long *h2)
{
	struct json_object *l = simproc_ledger(sim);
	ck_assert_ptr_nonnull(l);
	*all = ledger_int(l, "connections");
	*h2 = ledger_int(l, "http2Connections");
	json_object_put(l);
}

/* A capture body. */
static char *capture_body(const char *txn, const char *mid)
{
	return xasprintf("{\"transactionId\":\"%s\",\"merchantKey\":\"" SIMPROC_MERCHANT_KEY
	                 "\",\"modificationId\":\"%s\"}",
	                 txn, mid);
}

/* Starts the simulator over TLS with --http2 and the extra arguments given. */
static struct simproc *start_h2(const char *latency)
{
	const char *args[] = {"--http2", latency ? "--latency" : NULL, latency, NULL};
	struct simproc_opts opts = {.tls = true, .extra_args = args};
	struct simproc *sim = simproc_start(&opts);
	ck_assert_ptr_nonnull(sim);
	return sim;
}

/* Several captures and one unauthenticated request at once over one connection:
 * HTTP/2 was used, each got its own right answer after the latency, every capture
 * was applied once, and the sim counted one (HTTP/2) connection for them. */
START_TEST(h2_multiplexed_one_connection)
{
	struct simproc *sim = start_h2("200");
	char *txns[H2_BATCH];
	for (int i = 0; i < H2_BATCH; i++) {
		txns[i] = simproc_create_txn(sim, "5.00", "EUR");
		ck_assert_ptr_nonnull(txns[i]);
	}
	long conns0, h20, conns1, h21;
	ledger_connections(sim, &conns0, &h20);
	ck_assert_int_ge(conns0, 1);
	struct h2x xs[H2_BATCH + 1];
	for (int i = 0; i < H2_BATCH; i++) {
		char mid[32];
		snprintf(mid, sizeof(mid), "h2-%d", i);
		char *body = capture_body(txns[i], mid);
		h2x_init(&xs[i], sim, "/payment/capture", body, true, CURL_HTTP_VERSION_2TLS);
		free(body);
	}
	char *unauth = capture_body(txns[0], "h2-unauth");
	h2x_init(&xs[H2_BATCH], sim, "/payment/capture", unauth, false, CURL_HTTP_VERSION_2TLS);
	free(unauth);
	ck_assert_int_eq(run_batch(xs, H2_BATCH + 1), 1);
	/* the batch's connection and this ledger call's own, both HTTP/2 */
	ledger_connections(sim, &conns1, &h21);
	ck_assert_int_eq(conns1, conns0 + 2);
	ck_assert_int_eq(h21, h20 + 2);
	for (int i = 0; i < H2_BATCH; i++) {
		ck_assert_int_eq(h2x_version(&xs[i]), CURL_HTTP_VERSION_2_0);
		ck_assert_msg(h2x_status(&xs[i]) == 200, "capture %d: %ld %s", i,
		              h2x_status(&xs[i]), xs[i].body);
		struct json_object *o = json_tokener_parse(xs[i].body);
		ck_assert_ptr_nonnull(o);
		char mid[32];
		snprintf(mid, sizeof(mid), "h2-%d", i);
		ck_assert_msg(strstr(xs[i].body, mid) != NULL, "answer %d is not its own: %s", i,
		              xs[i].body);
		json_object_put(o);
		ck_assert_int_eq(simproc_count_effects(sim, txns[i], "CAPTURE"), 1);
		ck_assert_int_eq(simproc_request_count(sim, mid), 1);
	}
	ck_assert_int_eq(h2x_version(&xs[H2_BATCH]), CURL_HTTP_VERSION_2_0);
	ck_assert_int_eq(h2x_status(&xs[H2_BATCH]), 401);
	ck_assert(xs[H2_BATCH].www_authenticate);
	for (int i = 0; i <= H2_BATCH; i++)
		h2x_free(&xs[i]);
	for (int i = 0; i < H2_BATCH; i++)
		free(txns[i]);
	ck_assert(simproc_stop(sim));
}
END_TEST

/* On the same listener, a client asking for HTTP/1.1, and one offering no ALPN at
 * all, are served HTTP/1.1 (evhttp) as without --http2. */
START_TEST(h2_listener_still_serves_http1)
{
	struct simproc *sim = start_h2(NULL);
	char *txn = simproc_create_txn(sim, "5.00", "EUR");
	char *txn2 = simproc_create_txn(sim, "5.00", "EUR");
	ck_assert_ptr_nonnull(txn);
	ck_assert_ptr_nonnull(txn2);
	long conns0, h20, conns1, h21;
	ledger_connections(sim, &conns0, &h20);
	struct h2x x;
	char *body = capture_body(txn, "h1-1");
	h2x_init(&x, sim, "/payment/capture", body, true, CURL_HTTP_VERSION_1_1);
	ck_assert_int_eq(run_batch(&x, 1), 1);
	ck_assert_int_eq(h2x_version(&x), CURL_HTTP_VERSION_1_1);
	ck_assert_int_eq(h2x_status(&x), 200);
	ck_assert_ptr_nonnull(strstr(x.body, "h1-1"));
	h2x_free(&x);
	free(body);
	body = capture_body(txn2, "h1-2");
	h2x_init(&x, sim, "/payment/capture", body, true, CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(x.c, CURLOPT_SSL_ENABLE_ALPN, 0L);
	ck_assert_int_eq(run_batch(&x, 1), 1);
	ck_assert_int_eq(h2x_version(&x), CURL_HTTP_VERSION_1_1);
	ck_assert_int_eq(h2x_status(&x), 200);
	h2x_free(&x);
	free(body);
	/* three connections: two HTTP/1.1, and only this ledger call's own chose h2 */
	ledger_connections(sim, &conns1, &h21);
	ck_assert_int_eq(conns1, conns0 + 3);
	ck_assert_int_eq(h21, h20 + 1);
	ck_assert_int_eq(simproc_request_count(sim, "h1-1"), 1);
	ck_assert_int_eq(simproc_request_count(sim, "h1-2"), 1);
	free(txn);
	free(txn2);
	ck_assert(simproc_stop(sim));
}
END_TEST

/* Faults apply over HTTP/2 as over HTTP/1.1: a drop after commit and a reset end the
 * stream without an answer (the first applied, the second not), and a stream whose
 * client gave up before its delayed answer leaves the simulator serving and exiting
 * cleanly. (simproc's helpers use libcurl's default, HTTP/2 over TLS.) */
START_TEST(h2_faults_and_abandoned_streams)
{
	struct simproc *sim = start_h2(NULL);
	char *txn = simproc_create_txn(sim, "9.00", "EUR");
	ck_assert_ptr_nonnull(txn);
	struct simproc_reply r;
	ck_assert(simproc_set_faults(sim, "{\"drop_after_commit_rate\":1}"));
	char *b1 = xasprintf("{\"transactionId\":\"%s\",\"merchantKey\":\"" SIMPROC_MERCHANT_KEY
	                     "\",\"modificationId\":\"f-1\",\"modifiedAmount\":{\"amount\":1.00,"
	                     "\"currencyCode\":\"EUR\"}}",
	                     txn);
	ck_assert(simproc_payment(sim, "capture", b1, &r));
	ck_assert_int_eq(r.status, 0);
	ck_assert_int_ne(r.curl_code, CURLE_OK);
	simproc_reply_free(&r);
	ck_assert_int_eq(simproc_count_effects(sim, txn, "CAPTURE"), 1);
	ck_assert(simproc_set_faults(sim, "{\"reset_rate\":1}"));
	char *b2 = capture_body(txn, "f-2");
	ck_assert(simproc_payment(sim, "capture", b2, &r));
	ck_assert_int_eq(r.status, 0);
	simproc_reply_free(&r);
	ck_assert_int_eq(simproc_count_effects(sim, txn, "CAPTURE"), 1);
	/* a 2 s latency, a client that waits 200 ms */
	ck_assert(simproc_set_faults(sim, "{\"latency_ms\":2000}"));
	struct h2x x;
	h2x_init(&x, sim, "/payment/status/none", NULL, true, CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(x.c, CURLOPT_TIMEOUT_MS, 200L);
	ck_assert_int_eq(curl_easy_perform(x.c), CURLE_OPERATION_TIMEDOUT);
	h2x_free(&x);
	ck_assert(simproc_clear_faults(sim));
	ck_assert(simproc_status(sim, txn, &r));
	ck_assert_int_eq(r.status, 200);
	simproc_reply_free(&r);
	free(b1);
	free(b2);
	free(txn);
	/* the abandoned answer's timer is still armed: the stop must free it cleanly */
	ck_assert(simproc_stop(sim));
}
END_TEST

/* --http2 without TLS is refused at start. */
START_TEST(h2_needs_tls)
{
	const char *args[] = {"--http2", NULL};
	struct simproc_opts opts = {.extra_args = args};
	ck_assert_ptr_null(simproc_start(&opts));
}
END_TEST

static Suite *sim_h2_suite(void)
{
	Suite *s = suite_create("sim_h2");
	TCase *tc = tcase_create("http2");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, h2_multiplexed_one_connection);
	tcase_add_test(tc, h2_listener_still_serves_http1);
	tcase_add_test(tc, h2_faults_and_abandoned_streams);
	tcase_add_test(tc, h2_needs_tls);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int status = testutil_run_suite(sim_h2_suite(), CK_NORMAL);
	curl_global_cleanup();
	return status;
}
