/* One integration test's world: shop database, smartpay-sim, daemon configuration, and
 * the helpers the end-to-end suites share (see world.h). */
#include "autoconfig.h"

#include "world.h"

#include "pgtest.h"
#include "testutil.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A loopback port that nothing listens on (bound, then closed). */
static int world_closed_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	socklen_t len = sizeof(sa);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* A daemon's configuration against the world's gateway: the simulator's URL and keys,
 * or a closed port and the default keys without one. */
static void world_daemon_init(const struct world *w, struct daemonproc *d, const char *conninfo,
                              const char *extra)
{
	char base[64];
	if (w->sim)
		snprintf(base, sizeof(base), "%s", simproc_base_url(w->sim));
	else
		snprintf(base, sizeof(base), "http://127.0.0.1:%d", world_closed_port());
	const char *merchant = w->sim ? simproc_merchant_key(w->sim) : SIMPROC_MERCHANT_KEY;
	const char *key = w->opts.daemon_auth_key ? w->opts.daemon_auth_key
	                  : w->sim                ? simproc_auth_key(w->sim)
	                                          : SIMPROC_AUTH_KEY;
	daemonproc_init(d, conninfo, base, merchant, key, extra);
}

void world_up(struct world *w, const char *extra)
{
	world_up_with(w, NULL, extra);
}

void world_up_with(struct world *w, const struct world_opts *opts, const char *extra)
{
	memset(w, 0, sizeof(*w));
	if (opts)
		w->opts = *opts;
	w->conninfo = w->opts.unmigrated ? pgtest_createdb(w->opts.dbname)
	                                 : pgtest_createdb_shop(w->opts.dbname);
	w->db = pgtest_connect(w->conninfo);
	if (w->opts.unmigrated)
		pgtest_exec_file(w->db, "sql/example-orders.sql");
	w->dbname = pgtest_value(w->db, "SELECT current_database()");
	if (!w->opts.no_sim) {
		w->sim = simproc_start(w->opts.sim);
		ck_assert_ptr_nonnull(w->sim);
	}
	char *conf = NULL;
	if (w->opts.metrics) {
		w->metrics_port = testutil_free_port();
		ck_assert_int_gt(w->metrics_port, 0);
		snprintf(w->metrics_base, sizeof(w->metrics_base), "http://127.0.0.1:%d",
		         w->metrics_port);
		ck_assert_int_ge(asprintf(&conf, "[metrics]\nlisten = 127.0.0.1:%d\n%s",
		                          w->metrics_port, extra ? extra : ""),
		                 0);
	}
	world_daemon_init(w, &w->d, w->conninfo, conf ? conf : extra);
	free(conf);
}

void world_down(struct world *w)
{
	if (w->d.pid) {
		int code = daemonproc_stop(&w->d);
		/* a clean drain, and under ASan no leak report */
		if (w->opts.clean_exit)
			ck_assert_int_eq(code, 0);
	}
	daemonproc_cleanup(&w->d);
	if (w->sim)
		ck_assert(simproc_stop(w->sim));
	PQfinish(w->db);
	free(w->dbname);
	free(w->conninfo);
}

void world_daemon(struct world *w, const char *conninfo, const char *extra)
{
	ck_assert_int_eq(w->d.pid, 0);
	daemonproc_cleanup(&w->d);
	world_daemon_init(w, &w->d, conninfo, extra);
}

void world_daemon_other(const struct world *w, struct daemonproc *d, const char *extra)
{
	world_daemon_init(w, d, w->conninfo, extra);
}

/* Appends ", NAME" to the column list and ", VALUE" to the values of an INSERT. */
static void world_column(char *cols, char *vals, size_t cap, const char *name, const char *value)
{
	size_t c = strlen(cols), v = strlen(vals);
	snprintf(cols + c, cap - c, ", %s", name);
	snprintf(vals + v, cap - v, ", %s", value);
}

long world_add_order(struct world *w, const struct world_order *o, char **txn_out)
{
	static const struct world_order defaults = {0};
	if (o == NULL)
		o = &defaults;
	const char *amount = o->amount ? o->amount : "10.00";
	char *txn = o->no_txn ? NULL
	            : o->txn  ? strdup(o->txn)
	                      : simproc_create_txn(w->sim, amount, "EUR");
	ck_assert(o->no_txn || txn != NULL);
	const char *p[] = {txn, amount, o->status ? o->status : "shipped", o->capture_amount};
	char cols[256] = "smartpay_transaction_id, amount, status", vals[1024] = "$1, $2, $3";
	if (o->capture_amount)
		world_column(cols, vals, sizeof(vals), "capture_amount", "$4");
	if (o->authorized_at)
		world_column(cols, vals, sizeof(vals), "authorized_at", o->authorized_at);
	if (o->expires_at)
		world_column(cols, vals, sizeof(vals), "authorization_expires_at", o->expires_at);
	char sql[1400];
	snprintf(sql, sizeof(sql), "INSERT INTO public.orders (%s) VALUES (%s) RETURNING id", cols,
	         vals);
	PGresult *r = PQexecParams(w->db, sql, o->capture_amount ? 4 : 3, NULL, p, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
	long id = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	if (txn_out)
		*txn_out = txn;
	else
		free(txn);
	return id;
}

void world_add_orders(struct world *w, int n, const struct world_order *o)
{
	pgtest_exec(w->db, "BEGIN");
	for (int i = 0; i < n; i++)
		world_add_order(w, o, NULL);
	pgtest_exec(w->db, "COMMIT");
}

long long world_count(struct world *w, const char *sql)
{
	return pgtest_int(w->db, sql);
}

/* How long world_await polls. */
static int world_wait_ms(const struct world *w)
{
	return w->opts.wait_ms > 0 ? w->opts.wait_ms : 60000;
}

void world_await(struct world *w, const char *sql, long long want)
{
	long long got = wait_for_count(w->db, sql, want, world_wait_ms(w));
	if (got != want)
		daemonproc_print_log(&w->d);
	ck_assert_msg(got == want, "%s: got %lld, want %lld", sql, got, want);
}

void world_await_at_least(struct world *w, const char *sql, long long want)
{
	long long got = daemonproc_wait_count(&w->d, w->db, sql, want, world_wait_ms(w));
	ck_assert_msg(got >= want, "%s: got %lld, want %lld", sql, got, want);
}

void world_await_effects(struct world *w, const char *type, int want)
{
	for (int i = 0; i < 500 && simproc_count_effects(w->sim, NULL, type) < want; i++)
		usleep(20000);
	ck_assert_int_eq(simproc_count_effects(w->sim, NULL, type), want);
}

int world_log_count(const struct world *w, const char *needle)
{
	char *text = testutil_read_file(w->d.log);
	int n = 0;
	for (const char *p = text; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	free(text);
	return n;
}

void world_await_log(struct world *w, const char *needle, int want)
{
	for (int waited = 0; waited < world_wait_ms(w); waited += 20) {
		if (world_log_count(w, needle) >= want)
			return;
		usleep(20000);
	}
	daemonproc_print_log(&w->d);
	ck_abort_msg("log never held %d x %s", want, needle);
}

/* Collects an answer body. */
struct world_body {
	char *data;
	size_t len, cap;
};

/* libcurl's write callback: appends to a world_body. */
static size_t world_body_write(char *ptr, size_t size, size_t n, void *arg)
{
	struct world_body *b = arg;
	size_t add = size * n;
	xappend(&b->data, &b->len, &b->cap, ptr, add);
	return add;
}

long world_http(const char *method, const char *url, long timeout_ms, char **body)
{
	CURL *c = curl_easy_init();
	ck_assert_ptr_nonnull(c);
	struct world_body b = {xcalloc(1, 1), 0, 1};
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, world_body_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "POST") == 0)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	long status = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (body)
		*body = b.data;
	else
		free(b.data);
	return status;
}

long world_wait_status(const char *url, long want, long timeout_ms)
{
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		long status = world_http("GET", url, 2000, NULL);
		if (status == want || testutil_elapsed_ms(&start) >= timeout_ms)
			return status;
		testutil_sleep_ms(100);
	}
}

void world_conf_replace(const struct daemonproc *d, const char *from, const char *to)
{
	char *text = testutil_read_file(d->conf);
	ck_assert_ptr_nonnull(text);
	char *at = strstr(text, from);
	ck_assert_msg(at != NULL, "'%s' not in %s", from, d->conf);
	char *out = NULL;
	ck_assert_int_ge(asprintf(&out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from)),
	                 0);
	testutil_write_file(d->conf, out, 0600);
	free(out);
	free(text);
}
