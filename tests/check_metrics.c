/* The metrics endpoint during a real run: smartpayd, a private PostgreSQL and
 * smartpay-sim. Every scrape is parsed with a strict reader of the Prometheus text
 * format 0.0.4, and the values are compared with what the run did (the ledger, the
 * simulator). /healthz follows the database going away and coming back. Hostile
 * clients (malformed and oversized requests, slowloris, a daemon at its file
 * descriptor limit) must not stop captures, spin the loop or flood the log. */
#include "autoconfig.h"

#include "pgtest.h"
#include "testutil.h"
#include "world.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 30000

/* ---- a strict reader of the text exposition format 0.0.4 ---- */

struct prom_family {
	char *name;
	char *type; /* counter, gauge, histogram, summary, untyped */
	bool help;
	bool closed; /* another family's samples followed: no more samples allowed */
};

struct prom_sample {
	char *series; /* name{k="v",...} in the order written, or just the name */
	char *name;
	char *le; /* the le label of a histogram bucket, else NULL */
	double value;
	size_t family;
};

struct prom {
	struct prom_family *fam;
	size_t nfam;
	struct prom_sample *s;
	size_t n;
	char err[512]; /* the first problem found */
};

/* Records a problem and makes the enclosing parser function return false. */
#define PROM_REQUIRE(p, cond, ...)                                                                 \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			snprintf((p)->err, sizeof((p)->err), __VA_ARGS__);                         \
			return false;                                                              \
		}                                                                                  \
	} while (0)

static bool is_name_start(char c)
{
	return isalpha((unsigned char)c) || c == '_' || c == ':';
}

static bool is_name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == ':';
}

/* Reads a metric (or, with `label`, a label) name at *p into buf and advances. */
static bool read_name(const char **p, bool label, char *buf, size_t size)
{
	const char *s = *p;
	if (!is_name_start(*s) || (label && *s == ':'))
		return false;
	while (is_name_char(*s) && !(label && *s == ':'))
		s++;
	size_t n = (size_t)(s - *p);
	if (n >= size)
		return false;
	memcpy(buf, *p, n);
	buf[n] = '\0';
	*p = s;
	return true;
}

/* Parses a sample value: a float, +Inf, -Inf or NaN. */
static bool read_value(const char *text, size_t len, double *out)
{
	char buf[64];
	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, text, len);
	buf[len] = '\0';
	if (strcmp(buf, "+Inf") == 0) {
		*out = INFINITY;
		return true;
	}
	if (strcmp(buf, "-Inf") == 0) {
		*out = -INFINITY;
		return true;
	}
	if (strcmp(buf, "NaN") == 0) {
		*out = NAN;
		return true;
	}
	char *end = NULL;
	*out = strtod(buf, &end);
	return end == buf + len && !isspace((unsigned char)buf[0]);
}

static size_t prom_family_index(const struct prom *p, const char *name)
{
	for (size_t i = 0; i < p->nfam; i++)
		if (strcmp(p->fam[i].name, name) == 0)
			return i;
	return (size_t)-1;
}

/* The family a sample name belongs to (name itself, or a histogram's or summary's
 * _bucket/_sum/_count series). */
static size_t prom_family_of(const struct prom *p, const char *name)
{
	size_t i = prom_family_index(p, name);
	if (i != (size_t)-1)
		return i;
	static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
	for (size_t k = 0; k < 3; k++) {
		size_t nl = strlen(name), sl = strlen(suffixes[k]);
		if (nl <= sl || strcmp(name + nl - sl, suffixes[k]) != 0)
			continue;
		char base[256];
		snprintf(base, sizeof(base), "%.*s", (int)(nl - sl), name);
		i = prom_family_index(p, base);
		if (i == (size_t)-1 || p->fam[i].type == NULL)
			continue;
		const char *type = p->fam[i].type;
		if (strcmp(type, "histogram") == 0 || (strcmp(type, "summary") == 0 && k > 0))
			return i;
	}
	return (size_t)-1;
}

/* Parses one "# HELP" or "# TYPE" line (other comments are ignored). */
static bool prom_comment(struct prom *p, const char *line, int lineno)
{
	bool help = strncmp(line, "# HELP ", 7) == 0;
	bool type = strncmp(line, "# TYPE ", 7) == 0;
	if (!help && !type)
		return true;
	const char *s = line + 7;
	char name[256];
	PROM_REQUIRE(p, read_name(&s, false, name, sizeof(name)), "line %d: bad metric name: %s",
	             lineno, line);
	PROM_REQUIRE(p, *s == ' ' || (help && *s == '\0'), "line %d: bad line: %s", lineno, line);
	size_t i = prom_family_index(p, name);
	if (i == (size_t)-1) {
		p->fam = xreallocarray(p->fam, p->nfam + 1, sizeof(*p->fam));
		i = p->nfam++;
		memset(&p->fam[i], 0, sizeof(p->fam[i]));
		p->fam[i].name = strdup(name);
	} else {
		/* HELP and TYPE come before the family's first sample */
		for (size_t k = 0; k < p->n; k++)
			PROM_REQUIRE(p, p->s[k].family != i, "line %d: %s after samples of %s",
			             lineno, help ? "HELP" : "TYPE", name);
	}
	if (help) {
		PROM_REQUIRE(p, !p->fam[i].help, "line %d: second HELP for %s", lineno, name);
		p->fam[i].help = true;
		return true;
	}
	PROM_REQUIRE(p, p->fam[i].type == NULL, "line %d: second TYPE for %s", lineno, name);
	const char *t = s + 1;
	PROM_REQUIRE(p,
	             strcmp(t, "counter") == 0 || strcmp(t, "gauge") == 0 ||
	                 strcmp(t, "histogram") == 0 || strcmp(t, "summary") == 0 ||
	                 strcmp(t, "untyped") == 0,
	             "line %d: unknown type '%s'", lineno, t);
	p->fam[i].type = strdup(t);
	return true;
}

/* Reads {label="value",...} at *s into the series text; remembers the le label. */
static bool prom_labels(struct prom *p, const char **sp, FILE *ser, char *le, size_t le_size,
                        int lineno)
{
	const char *s = *sp + 1;
	fputc('{', ser);
	bool first = true;
	while (*s != '}') {
		char label[128];
		PROM_REQUIRE(p, read_name(&s, true, label, sizeof(label)),
		             "line %d: bad label name", lineno);
		PROM_REQUIRE(p, strncmp(label, "__", 2) != 0, "line %d: reserved label %s", lineno,
		             label);
		PROM_REQUIRE(p, s[0] == '=' && s[1] == '"', "line %d: expected =\" after %s",
		             lineno, label);
		s += 2;
		char value[512];
		size_t n = 0;
		while (*s != '"') {
			PROM_REQUIRE(p, *s != '\0', "line %d: unterminated label value", lineno);
			char c = *s;
			if (c == '\\') {
				s++;
				PROM_REQUIRE(p, *s == '\\' || *s == '"' || *s == 'n',
				             "line %d: bad escape in a label value", lineno);
				c = *s == 'n' ? '\n' : *s;
			}
			PROM_REQUIRE(p, n + 1 < sizeof(value), "line %d: label value too long",
			             lineno);
			value[n++] = c;
			s++;
		}
		value[n] = '\0';
		s++;
		fprintf(ser, "%s%s=\"%s\"", first ? "" : ",", label, value);
		if (strcmp(label, "le") == 0) {
			PROM_REQUIRE(p, n < le_size, "line %d: le too long", lineno);
			memcpy(le, value, n + 1);
		}
		first = false;
		if (*s == ',')
			s++;
		else
			PROM_REQUIRE(p, *s == '}', "line %d: expected , or } after a label",
			             lineno);
	}
	fputc('}', ser);
	*sp = s + 1;
	return true;
}

/* Parses one sample line: name{labels} value [timestamp]. */
static bool prom_sample_line(struct prom *p, const char *line, int lineno)
{
	const char *s = line;
	char name[256];
	PROM_REQUIRE(p, read_name(&s, false, name, sizeof(name)), "line %d: bad metric name: %s",
	             lineno, line);
	char *series = NULL;
	size_t slen = 0;
	FILE *ser = open_memstream(&series, &slen);
	fputs(name, ser);
	char le[64] = "";
	bool ok = *s != '{' || prom_labels(p, &s, ser, le, sizeof(le), lineno);
	fclose(ser);
	if (!ok) {
		free(series);
		return false;
	}
	size_t fam = prom_family_of(p, name);
	double value = 0;
	const char *sp = *s == ' ' ? strchr(s + 1, ' ') : NULL;
	if (*s != ' ')
		snprintf(p->err, sizeof(p->err), "line %d: no space before the value: %s", lineno,
		         line);
	else if (!read_value(s + 1, sp ? (size_t)(sp - s - 1) : strlen(s + 1), &value))
		snprintf(p->err, sizeof(p->err), "line %d: bad value: %s", lineno, line);
	else if (sp && (strspn(sp + 1, "-0123456789") != strlen(sp + 1) || sp[1] == '\0'))
		snprintf(p->err, sizeof(p->err), "line %d: bad timestamp: %s", lineno, line);
	else if (fam == (size_t)-1)
		snprintf(p->err, sizeof(p->err), "line %d: sample of %s without a TYPE", lineno,
		         name);
	else if (p->fam[fam].closed)
		snprintf(p->err, sizeof(p->err), "line %d: samples of %s not grouped together",
		         lineno, p->fam[fam].name);
	for (size_t i = 0; p->err[0] == '\0' && i < p->n; i++)
		if (strcmp(p->s[i].series, series) == 0)
			snprintf(p->err, sizeof(p->err), "line %d: duplicate series %s", lineno,
			         series);
	if (p->err[0] != '\0') {
		free(series);
		return false;
	}
	if (p->n > 0 && p->s[p->n - 1].family != fam)
		p->fam[p->s[p->n - 1].family].closed = true;
	p->s = xreallocarray(p->s, p->n + 1, sizeof(*p->s));
	p->s[p->n++] = (struct prom_sample){.series = series,
	                                    .name = strdup(name),
	                                    .le = le[0] ? strdup(le) : NULL,
	                                    .value = value,
	                                    .family = fam};
	return true;
}

/* Checks the rules of each family's type and of the project's naming. */
static bool prom_check_families(struct prom *p)
{
	for (size_t f = 0; f < p->nfam; f++) {
		const struct prom_family *fam = &p->fam[f];
		PROM_REQUIRE(p, fam->type && fam->help, "%s lacks HELP or TYPE", fam->name);
		PROM_REQUIRE(p, strncmp(fam->name, "smartpayd_", 10) == 0, "%s lacks the prefix",
		             fam->name);
		size_t nl = strlen(fam->name);
		bool total = nl > 6 && strcmp(fam->name + nl - 6, "_total") == 0;
		PROM_REQUIRE(p, total == (strcmp(fam->type, "counter") == 0),
		             "%s: counters and only counters end in _total", fam->name);
		if (strcmp(fam->type, "histogram") != 0)
			continue;
		double last_le = -INFINITY, last = 0, count = -1;
		bool inf = false;
		for (size_t i = 0; i < p->n; i++) {
			const struct prom_sample *s = &p->s[i];
			size_t sl = strlen(s->name);
			if (s->family != f)
				continue;
			if (sl > 7 && strcmp(s->name + sl - 7, "_bucket") == 0) {
				double le = 0;
				PROM_REQUIRE(p, s->le && read_value(s->le, strlen(s->le), &le),
				             "%s: bad or missing le", s->series);
				PROM_REQUIRE(p, le > last_le, "%s: le not increasing", s->series);
				PROM_REQUIRE(p, s->value >= last, "%s: buckets not cumulative",
				             s->series);
				last_le = le;
				last = s->value;
				inf = isinf(le) && le > 0;
			} else if (sl > 6 && strcmp(s->name + sl - 6, "_count") == 0) {
				count = s->value;
			}
		}
		PROM_REQUIRE(p, inf, "%s: no le=\"+Inf\" bucket", fam->name);
		PROM_REQUIRE(p, count == last, "%s: _count %g != +Inf bucket %g", fam->name, count,
		             last);
	}
	return true;
}

/* Parses a whole exposition into p (free it with prom_free even on failure); false with
 * the reason in p->err when it breaks a rule of the format. */
static bool prom_parse(const char *text, struct prom *p)
{
	memset(p, 0, sizeof(*p));
	PROM_REQUIRE(p, *text != '\0', "empty exposition");
	PROM_REQUIRE(p, text[strlen(text) - 1] == '\n', "the exposition must end with a newline");
	char *copy = strdup(text);
	int lineno = 0;
	char *save = NULL;
	bool ok = true;
	for (char *line = strtok_r(copy, "\n", &save); ok && line;
	     line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		ok = line[0] == '#' ? prom_comment(p, line, lineno)
		                    : prom_sample_line(p, line, lineno);
	}
	free(copy);
	return ok && prom_check_families(p);
}

static void prom_free(struct prom *p)
{
	for (size_t i = 0; i < p->nfam; i++) {
		free(p->fam[i].name);
		free(p->fam[i].type);
	}
	for (size_t i = 0; i < p->n; i++) {
		free(p->s[i].series);
		free(p->s[i].name);
		free(p->s[i].le);
	}
	free(p->fam);
	free(p->s);
}

static const struct prom_sample *prom_find(const struct prom *p, const char *series)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->s[i].series, series) == 0)
			return &p->s[i];
	return NULL;
}

/* The value of one series, which must be present. */
static double prom_get(const struct prom *p, const char *series)
{
	const struct prom_sample *s = prom_find(p, series);
	ck_assert_msg(s != NULL, "series %s missing", series);
	return s->value;
}

/* The sum of every series of a sample name. */
static double prom_sum(const struct prom *p, const char *name)
{
	double sum = 0;
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->s[i].name, name) == 0)
			sum += p->s[i].value;
	return sum;
}

/* Fetches and parses /metrics. */
static void scrape(const char *base, struct prom *p)
{
	char url[128];
	snprintf(url, sizeof(url), "%s/metrics", base);
	char *body = NULL;
	long status = world_http("GET", url, 10000, &body);
	ck_assert_msg(status == 200, "GET /metrics: status %ld", status);
	bool ok = prom_parse(body, p);
	if (!ok || getenv("CHECK_METRICS_DUMP"))
		fprintf(stderr, "---- /metrics ----\n%s---- end ----\n", body);
	free(body);
	ck_assert_msg(ok, "/metrics: %s", p->err);
}

/* Scrapes until the database gauges come from a read made at or after unix time
 * `since` (seconds), i.e. a background read that saw what the test did before. */
static void scrape_fresh(const char *base, struct prom *p, double since)
{
	for (int waited = 0;; waited += 100) {
		scrape(base, p);
		const struct prom_sample *t =
		    prom_find(p, "smartpayd_database_gauges_timestamp_seconds");
		if (t != NULL && t->value >= since)
			return;
		ck_assert_msg(waited < 20000, "the database gauges were never read again");
		prom_free(p);
		testutil_sleep_ms(100);
	}
}

/* The current unix time in seconds. */
static double unix_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the parser itself must reject what Prometheus rejects ---- */

START_TEST(parser_accepts)
{
	struct prom p;
	bool ok = prom_parse(
	    "# HELP smartpayd_a_total A.\n# TYPE smartpayd_a_total counter\n"
	    "smartpayd_a_total{kind=\"x\\\"y\",result=\"ok\"} 3\n"
	    "# a comment\n"
	    "# HELP smartpayd_h_seconds H.\n# TYPE smartpayd_h_seconds histogram\n"
	    "smartpayd_h_seconds_bucket{le=\"0.5\"} 1\nsmartpayd_h_seconds_bucket{le=\"+Inf\"} 2\n"
	    "smartpayd_h_seconds_sum 0.7\nsmartpayd_h_seconds_count 2 1700000000000\n",
	    &p);
	ck_assert_msg(ok, "%s", p.err);
	ck_assert_double_eq(prom_get(&p, "smartpayd_a_total{kind=\"x\"y\",result=\"ok\"}"), 3);
	ck_assert_double_eq(prom_get(&p, "smartpayd_h_seconds_sum"), 0.7);
	prom_free(&p);
}
END_TEST

/* A reader that accepted anything would prove nothing. */
static const char *const bad_expositions[] = {
    "smartpayd_x 1\n",                                                         /* no TYPE */
    "# HELP smartpayd_x X.\n# TYPE smartpayd_x gauge\nsmartpayd_x one\n",      /* value */
    "# HELP smartpayd_x X.\n# TYPE smartpayd_x gauge\nsmartpayd_x{a=\"1} 1\n", /* quote */
    "# HELP smartpayd_x X.\n# TYPE smartpayd_x counter\nsmartpayd_x 1\n",      /* _total */
    "# HELP smartpayd_x X.\n# TYPE smartpayd_x gauge\nsmartpayd_x 1\nsmartpayd_x 2\n",
    "# HELP smartpayd_h H.\n# TYPE smartpayd_h histogram\nsmartpayd_h_bucket{le=\"1\"} 2\n"
    "smartpayd_h_bucket{le=\"+Inf\"} 1\nsmartpayd_h_sum 1\nsmartpayd_h_count 1\n",
    "# HELP smartpayd_x X.\n# TYPE smartpayd_x gauge\nsmartpayd_x 1", /* final newline */
    "# HELP smartpayd_x X.\n# TYPE smartpayd_x gauge\n# HELP smartpayd_y Y.\n"
    "# TYPE smartpayd_y gauge\nsmartpayd_x 1\nsmartpayd_y 1\nsmartpayd_x{a=\"b\"} 1\n",
    "# HELP smartpayd_x X.\n# TYPE smartpayd_x gauge\nsmartpayd_x{a=\"\\t\"} 1\n",
    "# HELP smartpayd_x X.\n# TYPE smartpayd_x gaug\nsmartpayd_x 1\n",
    "# HELP smartpayd_x X.\n# TYPE smartpayd_x gauge\nsmartpayd_x  1\n",
    "# HELP other_x X.\n# TYPE other_x gauge\nother_x 1\n", /* prefix */
};

START_TEST(parser_rejects)
{
	struct prom p;
	bool ok = prom_parse(bad_expositions[_i], &p);
	prom_free(&p);
	ck_assert_msg(!ok, "accepted: %s", bad_expositions[_i]);
}
END_TEST

/* ---- the daemon ---- */

/* The world with a metrics listener (w->metrics_base); `more` (may be NULL) is appended
 * to the configuration's [metrics] section and may open other sections. */
static void metrics_up(struct world *w, const char *more)
{
	static const struct world_opts opts = {.metrics = true, .wait_ms = WAIT_MS};
	char extra[512];
	snprintf(extra, sizeof(extra),
	         "[alerts]\nexpiry_thresholds = 24h, 4h\ngateway_unreachable = 1s\n"
	         "[metrics]\ngauges_interval = 500ms\n%s",
	         more ? more : "");
	world_up_with(w, &opts, extra);
}

/* Creates a transaction at the simulator and the shop's order for it. */
static void add_order(struct world *w, const char *status, const char *expires_sql)
{
	world_add_order(w, &(struct world_order){.status = status, .expires_at = expires_sql},
	                NULL);
}

START_TEST(scrape_during_run)
{
	struct world w;
	metrics_up(&w, NULL);
	/* every request fails with 503 at first: each capture is retried */
	ck_assert(simproc_set_faults(w.sim, "{\"fail_rate\": 1.0, \"status\": 503}"));
	for (int i = 0; i < 4; i++)
		add_order(&w, "shipped", "NULL");
	add_order(&w, "shipped", "now() + interval '3 hours'"); /* captured: no longer expiring */
	/* open authorizations: within 4h and 24h; 24h only; expired; via the validity */
	add_order(&w, "authorized", "now() + interval '2 hours'");
	add_order(&w, "authorized", "now() + interval '10 hours'");
	add_order(&w, "authorized", "now() - interval '1 hour'");
	pgtest_exec(w.db, "INSERT INTO public.orders (smartpay_transaction_id, amount, status, "
	                  "authorized_at) VALUES ('t-validity', 10.00, 'authorized', "
	                  "now() - interval '119 hours')");
	/* a pending refund due tomorrow, recorded two hours ago, and an open alert */
	pgtest_exec(
	    w.db, "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, "
	          "kind, amount_minor, currency, request_body, created_at, next_attempt_at) VALUES "
	          "(gen_random_uuid(), 'o-pending', 't-pending', 'refund', 100, 'EUR', '{}', "
	          "now() - interval '2 hours', now() + interval '1 day')");
	pgtest_exec(w.db, "INSERT INTO smartpay.alerts (kind, severity, dedup_key, message) "
	                  "VALUES ('test_kind', 'warning', 'k1', 'a test alert')");

	daemonproc_start(&w.d, false);
	ck_assert_int_eq(world_wait_status(w.metrics_base, 404, 10000), 404); /* listening */
	char health[128];
	snprintf(health, sizeof(health), "%s/healthz", w.metrics_base);
	ck_assert_int_eq(world_wait_status(health, 200, 10000), 200);

	/* every capture failed at least once; then the gateway recovers */
	world_await_at_least(&w,
	                     "SELECT count(*) FROM smartpay.modifications WHERE kind = 'capture' "
	                     "AND attempts >= 1",
	                     5);
	ck_assert(simproc_clear_faults(w.sim));
	world_await_at_least(&w,
	                     "SELECT count(*) FROM smartpay.modifications WHERE kind = 'capture' "
	                     "AND state = 'succeeded'",
	                     5);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "capture"), 5);
	/* the outcome writes are done once the counters settle: wait for nothing in flight */
	long long attempts = pgtest_int(w.db, "SELECT sum(attempts) FROM smartpay.modifications "
	                                      "WHERE kind = 'capture'");

	struct prom p;
	scrape_fresh(w.metrics_base, &p, unix_now());
	ck_assert_double_eq(
	    prom_get(&p,
	             "smartpayd_modification_results_total{kind=\"capture\",result=\"succeeded\"}"),
	    5);
	ck_assert_double_eq(
	    prom_get(&p,
	             "smartpayd_modification_results_total{kind=\"refund\",result=\"succeeded\"}"),
	    0);
	double retries = prom_get(&p, "smartpayd_retries_total");
	ck_assert_double_ge(retries, 5);
	ck_assert_double_eq(
	    prom_get(&p, "smartpayd_modification_results_total{kind=\"capture\",result=\"retry\"}"),
	    retries);
	/* each attempt of the ledger was one request, answered, and is in the histogram */
	ck_assert_double_eq(retries + 5, (double)attempts);
	ck_assert_double_eq(prom_get(&p, "smartpayd_gateway_requests_total"), (double)attempts);
	ck_assert_double_eq(prom_get(&p, "smartpayd_gateway_latency_seconds_count"),
	                    (double)attempts);
	ck_assert_double_eq(prom_get(&p, "smartpayd_gateway_latency_seconds_bucket{le=\"+Inf\"}"),
	                    (double)attempts);
	ck_assert_double_gt(prom_get(&p, "smartpayd_gateway_latency_seconds_sum"), 0);
	ck_assert_double_lt(prom_get(&p, "smartpayd_gateway_latency_seconds_sum"), 5.0 * attempts);
	ck_assert_double_eq(prom_get(&p, "smartpayd_requests_in_flight"), 0);
	ck_assert_double_eq(prom_get(&p, "smartpayd_database_up"), 1);
	ck_assert_double_eq(prom_get(&p, "smartpayd_gateway_up"), 1);
	ck_assert_double_eq(prom_get(&p, "smartpayd_credentials_paused"), 0);
	ck_assert_double_gt(prom_get(&p, "smartpayd_gateway_last_answer_timestamp_seconds"), 1.6e9);
	ck_assert_ptr_nonnull(prom_find(&p, "smartpayd_build_info{version=\"" PACKAGE_VERSION
	                                    "\",instance=\"test\"}"));
	/* the database gauges */
	ck_assert_double_eq(prom_get(&p, "smartpayd_pending_modifications{age=\"1h_1d\"}"), 1);
	ck_assert_double_eq(prom_sum(&p, "smartpayd_pending_modifications"), 1);
	double oldest = prom_get(&p, "smartpayd_oldest_pending_modification_age_seconds");
	ck_assert_double_gt(oldest, 7190);
	ck_assert_double_lt(oldest, 7400);
	ck_assert_double_eq(prom_get(&p, "smartpayd_authorizations_expiring{within=\"4h\"}"), 2);
	ck_assert_double_eq(prom_get(&p, "smartpayd_authorizations_expiring{within=\"24h\"}"), 3);
	ck_assert_double_eq(prom_get(&p, "smartpayd_alerts_open{kind=\"test_kind\"}"), 1);
	ck_assert_double_gt(prom_get(&p, "smartpayd_database_gauges_timestamp_seconds"), 1.6e9);
	ck_assert_double_ge(prom_get(&p, "smartpayd_database_gauges_age_seconds"), 0);
	ck_assert_double_lt(prom_get(&p, "smartpayd_database_gauges_age_seconds"), 30);
	prom_free(&p);

	/* acknowledging the alert shows at the next background read */
	pgtest_exec(w.db, "UPDATE smartpay.alerts SET acknowledged_at = now() WHERE kind = "
	                  "'test_kind'");
	scrape_fresh(w.metrics_base, &p, unix_now());
	ck_assert_ptr_null(prom_find(&p, "smartpayd_alerts_open{kind=\"test_kind\"}"));
	prom_free(&p);

	/* other paths and methods */
	char url[160];
	snprintf(url, sizeof(url), "%s/nope", w.metrics_base);
	ck_assert_int_eq(world_http("GET", url, 5000, NULL), 404);
	snprintf(url, sizeof(url), "%s/metrics", w.metrics_base);
	ck_assert_int_eq(world_http("POST", url, 5000, NULL), 405);
	ck_assert_int_eq(world_http("HEAD", url, 5000, NULL), 200);
	char *body = NULL;
	ck_assert_int_eq(world_http("GET", health, 5000, &body), 200);
	ck_assert_str_eq(body, "ok\n");
	free(body);

	/* connections are reset for longer than gateway_unreachable: the gateway is down */
	ck_assert(simproc_set_faults(w.sim, "{\"reset_rate\": 1.0}"));
	add_order(&w, "shipped", "NULL");
	world_await_at_least(&w,
	                     "SELECT count(*) FROM smartpay.modifications WHERE kind = 'capture' "
	                     "AND state = 'pending' AND attempts >= 2",
	                     1);
	testutil_sleep_ms(1200);
	scrape(w.metrics_base, &p);
	ck_assert_double_eq(prom_get(&p, "smartpayd_gateway_up"), 0);
	/* requests without an answer count as sent, not in the latency histogram */
	ck_assert_double_gt(prom_get(&p, "smartpayd_gateway_requests_total"),
	                    prom_get(&p, "smartpayd_gateway_latency_seconds_count"));
	prom_free(&p);
	ck_assert(simproc_clear_faults(w.sim));
	world_await_at_least(&w,
	                     "SELECT count(*) FROM smartpay.modifications WHERE kind = 'capture' "
	                     "AND state = 'succeeded'",
	                     6);
	scrape(w.metrics_base, &p);
	ck_assert_double_eq(prom_get(&p, "smartpayd_gateway_up"), 1);
	prom_free(&p);

	/* the database goes away: unhealthy, metrics still served with database_up 0 */
	pgtest_server_stop(false);
	ck_assert_int_eq(world_wait_status(health, 503, 10000), 503);
	ck_assert_int_eq(world_http("GET", health, 5000, &body), 503);
	ck_assert_str_eq(body, "database down\n");
	free(body);
	scrape(w.metrics_base, &p);
	ck_assert_double_eq(prom_get(&p, "smartpayd_database_up"), 0);
	/* the last database read is still served */
	ck_assert_double_eq(prom_get(&p, "smartpayd_authorizations_expiring{within=\"4h\"}"), 2);
	prom_free(&p);

	/* and comes back */
	pgtest_server_start();
	long back = world_wait_status(health, 200, 20000);
	if (back != 200)
		daemonproc_print_log(&w.d);
	ck_assert_int_eq(back, 200);
	scrape(w.metrics_base, &p);
	ck_assert_double_eq(prom_get(&p, "smartpayd_database_up"), 1);
	prom_free(&p);

	ck_assert_int_eq(daemonproc_stop(&w.d), 0);
	world_down(&w);
}
END_TEST

START_TEST(bind_failure_is_fatal)
{
	/* the port is taken: the daemon refuses to start and names the address */
	int port;
	int fd = testutil_bind_loopback(&port);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(listen(fd, 1), 0);

	char extra[64], needle[64];
	snprintf(extra, sizeof(extra), "[metrics]\nlisten = 127.0.0.1:%d\n", port);
	snprintf(needle, sizeof(needle), "cannot listen on 127.0.0.1:%d", port);
	struct world w;
	world_up_with(&w, &(struct world_opts){.no_sim = true}, extra);
	struct daemonproc *d = &w.d;
	daemonproc_start(d, false);
	int status = -1;
	for (int i = 0; i < 200 && d->pid; i++) { /* it exits on its own */
		int st = 0;
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->pid = 0;
			status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		} else {
			testutil_sleep_ms(50);
		}
	}
	if (!daemonproc_log_contains(d, needle))
		daemonproc_print_log(d);
	ck_assert_int_eq(status, 1);
	ck_assert(daemonproc_log_contains(d, needle));
	ck_assert(daemonproc_log_contains(d, "startup_failed"));
	world_down(&w);
	close(fd);
}
END_TEST

/* ---- hostile clients ---- */

/* Starts the daemon and waits until it is healthy. */
static void world_start(struct world *w)
{
	daemonproc_start(&w->d, false);
	char health[128];
	snprintf(health, sizeof(health), "%s/healthz", w->metrics_base);
	long status = world_wait_status(health, 200, 20000);
	if (status != 200)
		daemonproc_print_log(&w->d);
	ck_assert_int_eq(status, 200);
}

#define SQL_CAPTURED                                                                               \
	"SELECT count(*) FROM smartpay.modifications WHERE kind = 'capture' AND state = "          \
	"'succeeded'"
#define SQL_ATTENTION "SELECT count(*) FROM smartpay.modifications WHERE state = 'needs_attention'"

/* A TCP connection to 127.0.0.1:port, non-blocking unless `blocking`; -1 on failure. */
static int tcp_connect(int port, bool blocking)
{
	int fd = socket(AF_INET, SOCK_STREAM | (blocking ? 0 : SOCK_NONBLOCK), 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends one raw request on a new connection and reads until the server closes; returns
 * the status of the answer (0 when none) with the whole answer in *answer (malloc'd). */
static int raw_request(int port, const char *request, size_t len, char **answer)
{
	int fd = tcp_connect(port, true);
	ck_assert_int_ge(fd, 0);
	struct timeval tv = {.tv_sec = 15};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (size_t off = 0; off < len;) {
		ssize_t n = send(fd, request + off, len - off, MSG_NOSIGNAL);
		if (n <= 0)
			break; /* answered and closed before the end: read the answer */
		off += (size_t)n;
	}
	size_t size = 0, cap = 4096;
	char *buf = xmalloc(cap + 1);
	ssize_t n;
	while ((n = recv(fd, buf + size, cap - size, 0)) > 0) {
		size += (size_t)n;
		if (size == cap)
			buf = xreallocarray(buf, (cap *= 2) + 1, 1);
	}
	buf[size] = '\0';
	close(fd);
	ck_assert_msg(n == 0, "no orderly close after the answer: %s", strerror(errno));
	int status = 0;
	if (sscanf(buf, "HTTP/1.1 %d ", &status) != 1)
		status = 0;
	*answer = buf;
	return status;
}

/* One request and the status it must get. */
struct raw_case {
	const char *request; /* NULL: an oversized header built by the test */
	size_t len;          /* 0: strlen(request) */
	int status;
};

#define RAW(text, status)                                                                          \
	{                                                                                          \
		text, sizeof(text) - 1, status                                                     \
	}

static const struct raw_case raw_cases[] = {
    RAW("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 200),
    RAW("GET /metrics?name[]=x HTTP/1.0\r\n\r\n", 200),
    RAW("GET /metrics HTTP/1.1\nHost: lf-only\n\n", 200),
    RAW("\r\nGET /healthz HTTP/1.1\r\n\r\n", 200),
    RAW("HEAD /metrics HTTP/1.1\r\n\r\n", 200),
    RAW("GET /nope HTTP/1.1\r\n\r\n", 404),
    RAW("DELETE /metrics HTTP/1.1\r\n\r\n", 405),
    RAW("POST /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 405),
    RAW("POST /metrics HTTP/1.1\r\nContent-Length: 4097\r\n\r\n", 413),
    RAW("POST /metrics HTTP/1.1\r\ncontent-length: 99999999999999999999999\r\n\r\n", 413),
    RAW("POST /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
    RAW("GET /metrics HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    RAW("GET /metrics HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    RAW("GET /metrics HTTP/2.0\r\n\r\n", 505),
    RAW("GET /metrics\r\n\r\n", 400),
    RAW("GET  /metrics HTTP/1.1\r\n\r\n", 400),
    RAW("GET /metrics HTTP/1.1 x\r\n\r\n", 400),
    RAW("G(T /metrics HTTP/1.1\r\n\r\n", 400),
    RAW("GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", 400),
    RAW("GET /metrics HTTP/1.1\r\nHost: a\r\n folded: b\r\n\r\n", 400),
    RAW("GET /metrics HTTP/1.1\r\nX-Nul: a\0b\r\n\r\n", 400),
    {NULL, 0, 431},
};

START_TEST(request_limits)
{
	struct world w;
	metrics_up(&w, NULL);
	world_start(&w);
	for (size_t i = 0; i < sizeof(raw_cases) / sizeof(raw_cases[0]); i++) {
		const struct raw_case *rc = &raw_cases[i];
		char *big = NULL;
		const char *req = rc->request;
		size_t len = rc->len;
		if (req == NULL) { /* one header line longer than the 8 KiB the head may have */
			size_t n = 9000;
			big = malloc(n + 64);
			int k = snprintf(big, 64, "GET /metrics HTTP/1.1\r\nX-Big: ");
			memset(big + k, 'a', n);
			memcpy(big + k + n, "\r\n\r\n", 4);
			req = big;
			len = (size_t)k + n + 4;
		}
		char *answer = NULL;
		int status = raw_request(w.metrics_port, req, len, &answer);
		ck_assert_msg(status == rc->status, "case %zu: status %d, want %d; answer:\n%s", i,
		              status, rc->status, answer);
		ck_assert_msg(strstr(answer, "\r\nConnection: close\r\n") != NULL,
		              "case %zu: no Connection: close", i);
		const char *body = strstr(answer, "\r\n\r\n");
		ck_assert_ptr_nonnull(body);
		body += 4;
		long clen = -1;
		const char *cl = strstr(answer, "\r\nContent-Length: ");
		ck_assert_ptr_nonnull(cl);
		clen = strtol(cl + 18, NULL, 10);
		if (strncmp(req, "HEAD", 4) == 0) {
			ck_assert_str_eq(body, "");
			ck_assert_int_gt(clen, 100);
		} else {
			ck_assert_int_eq(clen, (long)strlen(body));
		}
		if (status == 200 && strstr(req, "/metrics") && strncmp(req, "GET", 3) == 0) {
			struct prom p;
			bool ok = prom_parse(body, &p);
			ck_assert_msg(ok, "case %zu: %s", i, p.err);
			prom_free(&p);
		}
		if (status == 405)
			ck_assert_ptr_nonnull(strstr(answer, "\r\nAllow: GET, HEAD\r\n"));
		free(answer);
		free(big);
	}
	ck_assert_int_eq(daemonproc_stop(&w.d), 0);
	world_down(&w);
}
END_TEST

/* A hostile connection that sends its request a byte at a time. */
struct slow {
	int fd;       /* -1: closed, to be opened again */
	int trickled; /* bytes sent since it was opened */
	long reopen_at_ms;
};

/* True when the server has closed the connection (end of file or a reset). */
static bool slow_closed_by_server(int fd)
{
	char buf[4096];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n == 0)
			return true;
		return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		       errno != ENOTCONN;
	}
}

/* Opens connections that are due, notes the ones the server closed, and sends one more
 * byte on each of the others. Returns how many the server closed. Fails when one got
 * `max_trickle` bytes through without being closed. */
static int slow_pump(struct slow *s, size_t n, int port, long now_ms, bool reopen, int max_trickle)
{
	static const char start[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
	int closed = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i].fd < 0) {
			if (!reopen || now_ms < s[i].reopen_at_ms)
				continue;
			s[i].fd = tcp_connect(port, false);
			s[i].trickled = 0;
			continue;
		}
		if (slow_closed_by_server(s[i].fd)) {
			close(s[i].fd);
			s[i].fd = -1;
			s[i].reopen_at_ms = now_ms + 200;
			closed++;
			continue;
		}
		ck_assert_msg(s[i].trickled < max_trickle,
		              "a slow connection sent %d bytes and is still open", s[i].trickled);
		int k = s[i].trickled;
		const char *byte = k < (int)sizeof(start) - 1 ? start + k : "a";
		if (send(s[i].fd, byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
			s[i].trickled++;
	}
	return closed;
}

static void slow_close_all(struct slow *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i].fd >= 0) {
			close(s[i].fd);
			s[i].fd = -1;
		}
}

static long ms_since(const struct timespec *t0)
{
	return testutil_elapsed_ms(t0);
}

START_TEST(slowloris)
{
	/* more slow clients than the cap, each trickling its headers for far longer than the
	 * deadline, while orders are shipped */
	enum { NSLOW = 24, NORDERS = 10, TICK_MS = 50, MAX_TRICKLE = 400 };
	struct world w;
	metrics_up(&w, "max_connections = 4\nrequest_timeout = 1s\n");
	world_start(&w);
	struct slow s[NSLOW];
	for (size_t i = 0; i < NSLOW; i++)
		s[i] = (struct slow){.fd = -1};
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	slow_pump(s, NSLOW, w.metrics_port, 0, true, MAX_TRICKLE);
	for (int i = 0; i < NORDERS; i++)
		add_order(&w, "shipped", "NULL");

	/* the attack goes on until every order is captured and for at least 4 deadlines */
	long closed = 0;
	bool attacking = true;
	for (int tick = 0;; tick++) {
		ck_assert_msg(ms_since(&t0) < 90000, "captures: %lld of %d",
		              world_count(&w, SQL_CAPTURED), NORDERS);
		closed +=
		    slow_pump(s, NSLOW, w.metrics_port, ms_since(&t0), attacking, MAX_TRICKLE);
		if (attacking && tick % 10 == 0 && ms_since(&t0) > 4000 &&
		    world_count(&w, SQL_CAPTURED) >= NORDERS)
			attacking = false;
		bool open = false;
		for (size_t i = 0; i < NSLOW; i++)
			open = open || s[i].fd >= 0;
		if (!attacking && !open)
			break; /* the server closed every slow connection */
		testutil_sleep_ms(TICK_MS);
	}
	ck_assert_int_ge(closed, NSLOW);

	ck_assert_int_eq(world_count(&w, SQL_CAPTURED), NORDERS);
	ck_assert_int_eq(world_count(&w, SQL_ATTENTION), 0);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "capture"), NORDERS);

	/* and the listener answers again, with nothing left open but the scrape itself */
	struct prom p;
	scrape(w.metrics_base, &p);
	ck_assert_double_eq(prom_get(&p, "smartpayd_metrics_connections_open"), 1);
	ck_assert_double_ge(prom_get(&p, "smartpayd_metrics_requests_timed_out_total"), 4);
	ck_assert_double_ge(
	    prom_get(&p, "smartpayd_metrics_connections_refused_total{reason=\"max_connections\"}"),
	    1);
	prom_free(&p);
	/* a few rate-limited lines for hundreds of refusals and timeouts */
	char *log = testutil_read_file(w.d.log);
	int lines = 0;
	for (const char *q = log; (q = strstr(q, "event=metrics_")) != NULL; q++)
		lines++;
	free(log);
	ck_assert_int_ge(lines, 1);
	ck_assert_int_le(lines, 30);
	ck_assert_int_eq(daemonproc_stop(&w.d), 0);
	world_down(&w);
}
END_TEST

/* CPU time (user + system) the process has used, in milliseconds. */
static long proc_cpu_ms(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	char *text = testutil_read_file(path);
	ck_assert_ptr_nonnull(text);
	const char *p = strrchr(text, ')');
	ck_assert_ptr_nonnull(p);
	unsigned long long ut = 0, st = 0;
	int n = sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st);
	free(text);
	ck_assert_int_eq(n, 2);
	return (long)((ut + st) * 1000 / (unsigned long long)sysconf(_SC_CLK_TCK));
}

/* Lines in the daemon's log. */
static long log_lines(const struct daemonproc *d)
{
	char *text = testutil_read_file(d->log);
	ck_assert_ptr_nonnull(text);
	long n = 0;
	for (const char *q = text; *q; q++)
		n += *q == '\n';
	free(text);
	return n;
}

/* The lowest descriptor number the process does not use: with its RLIMIT_NOFILE set
 * to it, the next descriptor it asks for fails with EMFILE. */
static int lowest_free_fd(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	bool used[4096] = {false};
	DIR *dir = opendir(path);
	ck_assert_ptr_nonnull(dir);
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] != '.' && fd >= 0 && fd < 4096)
			used[fd] = true;
	}
	closedir(dir);
	int fd = 0;
	while (fd < 4096 && used[fd])
		fd++;
	return fd;
}

static void set_fd_limit(pid_t pid, rlim_t soft)
{
	struct rlimit old;
	ck_assert_int_eq(prlimit(pid, RLIMIT_NOFILE, NULL, &old), 0);
	struct rlimit rl = {.rlim_cur = soft, .rlim_max = old.rlim_max};
	ck_assert_int_eq(prlimit(pid, RLIMIT_NOFILE, &rl, NULL), 0);
}

/* Keeps the connections busy for `ms` and returns the daemon's CPU time meanwhile; the
 * log may grow by at most `max_lines` meanwhile. */
static long pressure_window(struct world *w, struct slow *s, size_t n, const struct timespec *t0,
                            long ms, long max_lines)
{
	long cpu0 = proc_cpu_ms(w->d.pid), lines0 = log_lines(&w->d);
	long end = ms_since(t0) + ms;
	while (ms_since(t0) < end) {
		slow_pump(s, n, w->metrics_port, ms_since(t0), true, 1 << 30);
		testutil_sleep_ms(50);
	}
	long cpu = proc_cpu_ms(w->d.pid) - cpu0, lines = log_lines(&w->d) - lines0;
	ck_assert_msg(lines <= max_lines, "the log grew by %ld lines in %ld ms", lines, ms);
	return cpu;
}

START_TEST(low_fd_limit)
{
	/* 64 descriptors: the metrics listener may use what max_inflight + 32 leave */
	enum { LIMIT = 64, NHOLD = 120, NORDERS = 10, WINDOW_MS = 3000 };
	struct world w;
	metrics_up(&w, "max_connections = 1000\nrequest_timeout = 2m\n"
	               "[daemon]\nmax_inflight = 4\nlog_level = info\n");
	daemonproc_start(&w.d, false);
	set_fd_limit(w.d.pid, LIMIT);
	char health[128];
	snprintf(health, sizeof(health), "%s/healthz", w.metrics_base);
	ck_assert_int_eq(world_wait_status(health, 200, 20000), 200);

	/* far more connections than descriptors, held open, reopened when refused */
	struct slow s[NHOLD];
	for (size_t i = 0; i < NHOLD; i++)
		s[i] = (struct slow){.fd = -1};
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	slow_pump(s, NHOLD, w.metrics_port, 0, true, 1 << 30);
	for (int i = 0; i < NORDERS; i++)
		add_order(&w, "shipped", "NULL");
	while (world_count(&w, SQL_CAPTURED) < NORDERS) {
		ck_assert_msg(ms_since(&t0) < 60000, "captures: %lld of %d",
		              world_count(&w, SQL_CAPTURED), NORDERS);
		slow_pump(s, NHOLD, w.metrics_port, ms_since(&t0), true, 1 << 30);
		testutil_sleep_ms(50);
	}
	ck_assert_int_eq(world_count(&w, SQL_ATTENTION), 0);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "capture"), NORDERS);
	/* the daemon holds some of them and refuses the rest, quietly, without spinning */
	long cpu = pressure_window(&w, s, NHOLD, &t0, WINDOW_MS, 50);
	ck_assert_msg(cpu < WINDOW_MS / 2, "the daemon used %ld ms of CPU in %d ms", cpu,
	              WINDOW_MS);
	int held = 0;
	for (size_t i = 0; i < NHOLD; i++)
		held += s[i].fd >= 0 && s[i].trickled >= 20; /* a refused one closes at once */
	ck_assert_int_ge(held, 1);
	ck_assert(daemonproc_log_contains(&w.d, "metrics_connection_refused"));

	/* out of descriptors altogether: accept() fails with EMFILE, and the listener rests */
	for (int i = 0; i < 20 && !daemonproc_log_contains(&w.d, "metrics_accept_failed"); i++) {
		/* the refused connections, opened again, wait for accept() */
		set_fd_limit(w.d.pid, (rlim_t)lowest_free_fd(w.d.pid));
		pressure_window(&w, s, NHOLD, &t0, 500, 50);
	}
	if (!daemonproc_log_contains(&w.d, "metrics_accept_failed"))
		daemonproc_print_log(&w.d);
	ck_assert(daemonproc_log_contains(&w.d, "metrics_accept_failed"));
	cpu = pressure_window(&w, s, NHOLD, &t0, WINDOW_MS, 20);
	ck_assert_msg(cpu < WINDOW_MS / 2, "the daemon used %ld ms of CPU in %d ms at EMFILE", cpu,
	              WINDOW_MS);

	/* descriptors come back: the listener serves again, captures go on */
	set_fd_limit(w.d.pid, LIMIT);
	slow_close_all(s, NHOLD);
	char url[128];
	snprintf(url, sizeof(url), "%s/metrics", w.metrics_base);
	ck_assert_int_eq(world_wait_status(url, 200, 20000), 200);
	struct prom p;
	scrape(w.metrics_base, &p);
	ck_assert_double_ge(prom_get(&p, "smartpayd_metrics_accept_errors_total"), 1);
	ck_assert_double_ge(
	    prom_get(&p, "smartpayd_metrics_connections_refused_total{reason=\"fd_reserve\"}"), 1);
	prom_free(&p);
	for (int i = 0; i < NORDERS; i++)
		add_order(&w, "shipped", "NULL");
	world_await_at_least(&w, SQL_CAPTURED, 2 * NORDERS);
	ck_assert_int_eq(world_count(&w, SQL_ATTENTION), 0);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "capture"), 2 * NORDERS);
	ck_assert_int_eq(daemonproc_stop(&w.d), 0);
	world_down(&w);
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("parser");
	tcase_add_test(tc, parser_accepts);
	tcase_add_loop_test(tc, parser_rejects, 0,
	                    (int)(sizeof(bad_expositions) / sizeof(bad_expositions[0])));
	suite_add_tcase(s, tc);
	tc = tcase_create("daemon");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, scrape_during_run);
	tcase_add_test(tc, bind_failure_is_fatal);
	suite_add_tcase(s, tc);
	tc = tcase_create("hostile");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, request_limits);
	tcase_add_test(tc, slowloris);
	tcase_add_test(tc, low_fd_limit);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	pgtest_start();
	return testutil_run_suite(metrics_suite(), CK_ENV);
}
