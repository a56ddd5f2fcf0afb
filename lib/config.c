#include "autoconfig.h"

#include "config.h"
#include "log.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * How the parsing is split: libinih splits lines into sections and key = value pairs
 * and strips ';' comments. It gets the text through our own reader (config_reader),
 * which counts lines (the Debian build of libinih does not pass line numbers to the
 * handler: INI_HANDLER_LINENO is 0 in its header), removes indentation so that
 * libinih's multi-line continuation never silently glues lines together, and reports
 * every malformed line itself (libinih only returns the first one). The handler only
 * records each value with its line; validation happens after the whole file is read,
 * so that keys may appear in any order (allow_insecure_http after base_url).
 */

#define CONFIG_MAX_FILE_SIZE (1024 * 1024)
#define SECRET_MAX_SIZE 4096
#define MS_PER_S INT64_C(1000)
#define MS_PER_M (60 * MS_PER_S)
#define MS_PER_H (60 * MS_PER_M)
#define MS_PER_D (24 * MS_PER_H)

/* Marks a value that config_reader kept aside because the line was longer than libinih's buffer. */
#define LONG_VALUE_MARK "\x01"

enum key_id {
	K_DB_CONNINFO,
	K_DB_ORDERS_RELATION,
	K_SP_BASE_URL,
	K_SP_MERCHANT_KEY,
	K_SP_AUTH_KEY_FILE,
	K_SP_CA_FILE,
	K_SP_ORIGIN,
	K_SP_USER_AGENT,
	K_SP_TIMEOUT,
	K_SP_CONNECT_TIMEOUT,
	K_SP_ALLOW_INSECURE_HTTP,
	K_D_INSTANCE_NAME,
	K_D_MAX_INFLIGHT,
	K_D_BATCH_SIZE,
	K_D_POLL_INTERVAL,
	K_D_LEASE,
	K_D_MAX_ATTEMPTS,
	K_D_RETRY_BASE,
	K_D_RETRY_MAX,
	K_D_DRAIN_TIMEOUT,
	K_D_LOG_LEVEL,
	K_C_SHIPPED,
	K_C_CANCELLED,
	K_C_AUTH_VALIDITY,
	K_C_EARLY_STATUSES,
	K_C_EARLY_MARGIN,
	K_C_EARLY_ACTION,
	K_A_EXPIRY_THRESHOLDS,
	K_A_WEBHOOK_URL,
	K_A_GATEWAY_UNREACHABLE,
	K_M_LISTEN,
	K_COUNT
};

struct load_state;
struct key_desc;

/* Validates `text` and stores it into the key's field; on failure sets st->why. */
typedef bool (*key_parser)(struct load_state *st, const struct key_desc *k, const char *text);

struct key_desc {
	const char *section;
	const char *name;
	/* default value text, parsed like a value from the file; NULL = required */
	const char *def;
	key_parser parse;
	size_t offset; /* the field in struct sp_config */
	int64_t min, max;
};

struct message {
	int line;
	char *text;
};

struct messages {
	struct message *items;
	size_t count, cap;
};

struct load_state {
	const char *name; /* file name for messages */
	struct sp_config *cfg;

	/* config_reader's position in the text */
	const char *pos, *end;
	int lineno;
	int section; /* index into sections[], -1 none yet, -2 unknown */
	char *long_value;

	/* what the handler recorded per key */
	char *value[K_COUNT];
	int line[K_COUNT];
	bool ok[K_COUNT]; /* parsed and valid (or defaulted) */

	char why[512]; /* the reason of the last failed parse */
	struct messages errors, warnings;
};

static bool p_conninfo(struct load_state *st, const struct key_desc *k, const char *text);
static bool p_relation(struct load_state *st, const struct key_desc *k, const char *text);
static bool p_url(struct load_state *st, const struct key_desc *k, const char *text);
static bool p_merchant_key(struct load_state *st, const struct key_desc *k, const char *text);
static bool p_path(struct load_state *st, const struct key_desc *k, const char *text);
static bool p_origin(struct load_state *st, const struct key_desc *k, const char *text);
static bool p_user_agent(struct load_state *st, const struct key_desc *k, const char *text);
static bool p_duration(struct load_state *st, const struct key_desc *k, const char *text);
static bool p_bool(struct load_state *st, const struct key_desc *k, const char *text);
static bool p_instance_name(struct load_state *st, const struct key_desc *k, const char *text);
static bool p_count(struct load_state *st, const struct key_desc *k, const char *text);
static bool p_log_level(struct load_state *st, const struct key_desc *k, const char *text);
static bool p_statuses(struct load_state *st, const struct key_desc *k, const char *text);
static bool p_early_action(struct load_state *st, const struct key_desc *k, const char *text);
static bool p_thresholds(struct load_state *st, const struct key_desc *k, const char *text);
static bool p_listen(struct load_state *st, const struct key_desc *k, const char *text);

#define F(field) offsetof(struct sp_config, field)

static const char *const sections[] = {"database", "smartpay", "daemon",
                                       "capture",  "alerts",   "metrics"};

/* Every key, its default and its bounds. The example configuration mirrors this table. */
static const struct key_desc keys[K_COUNT] = {
    [K_DB_CONNINFO] = {"database", "conninfo", "", p_conninfo, F(db_conninfo), 0, 0},
    [K_DB_ORDERS_RELATION] = {"database", "orders_relation", "public.orders", p_relation,
                              F(orders_relation), 0, 0},
    [K_SP_BASE_URL] = {"smartpay", "base_url", NULL, p_url, F(base_url), 0, 0},
    [K_SP_MERCHANT_KEY] = {"smartpay", "merchant_key", NULL, p_merchant_key, F(merchant_key), 0, 0},
    [K_SP_AUTH_KEY_FILE] = {"smartpay", "authentication_key_file", "", p_path,
                            F(authentication_key_file), 0, 0},
    [K_SP_CA_FILE] = {"smartpay", "ca_file", "", p_path, F(ca_file), 0, 0},
    [K_SP_ORIGIN] = {"smartpay", "origin", "", p_origin, F(origin), 0, 0},
    [K_SP_USER_AGENT] = {"smartpay", "user_agent", PACKAGE_NAME "/" PACKAGE_VERSION, p_user_agent,
                         F(user_agent), 0, 0},
    [K_SP_TIMEOUT] = {"smartpay", "timeout", "90s", p_duration, F(timeout_ms), 1, MS_PER_H},
    [K_SP_CONNECT_TIMEOUT] = {"smartpay", "connect_timeout", "10s", p_duration,
                              F(connect_timeout_ms), 1, MS_PER_H},
    [K_SP_ALLOW_INSECURE_HTTP] = {"smartpay", "allow_insecure_http", "no", p_bool,
                                  F(allow_insecure_http), 0, 0},
    [K_D_INSTANCE_NAME] = {"daemon", "instance_name", "%H", p_instance_name, F(instance_name), 0,
                           0},
    [K_D_MAX_INFLIGHT] = {"daemon", "max_inflight", "64", p_count, F(max_inflight), 1, 10000},
    [K_D_BATCH_SIZE] = {"daemon", "batch_size", "256", p_count, F(batch_size), 1, 10000},
    [K_D_POLL_INTERVAL] = {"daemon", "poll_interval", "10s", p_duration, F(poll_interval_ms), 10,
                           MS_PER_D},
    [K_D_LEASE] = {"daemon", "lease", "5m", p_duration, F(lease_ms), MS_PER_S, MS_PER_D},
    [K_D_MAX_ATTEMPTS] = {"daemon", "max_attempts", "50", p_count, F(max_attempts), 1, 100000},
    [K_D_RETRY_BASE] = {"daemon", "retry_base", "1s", p_duration, F(retry_base_ms), 1, MS_PER_D},
    [K_D_RETRY_MAX] = {"daemon", "retry_max", "10m", p_duration, F(retry_max_ms), 1, MS_PER_D},
    [K_D_DRAIN_TIMEOUT] = {"daemon", "drain_timeout", "30s", p_duration, F(drain_timeout_ms), 0,
                           MS_PER_H},
    [K_D_LOG_LEVEL] = {"daemon", "log_level", "info", p_log_level, F(log_level), 0, 0},
    [K_C_SHIPPED] = {"capture", "shipped_statuses", "shipped", p_statuses, F(shipped_statuses), 1,
                     0},
    [K_C_CANCELLED] = {"capture", "cancelled_statuses", "cancelled", p_statuses,
                       F(cancelled_statuses), 1, 0},
    [K_C_AUTH_VALIDITY] = {"capture", "authorization_validity", "120h", p_duration,
                           F(authorization_validity_ms), MS_PER_M, 366 * MS_PER_D},
    [K_C_EARLY_STATUSES] = {"capture", "early_statuses", "", p_statuses, F(early_statuses), 0, 0},
    [K_C_EARLY_MARGIN] = {"capture", "early_margin", "6h", p_duration, F(early_margin_ms), MS_PER_M,
                          365 * MS_PER_D},
    [K_C_EARLY_ACTION] = {"capture", "early_action", "capture", p_early_action,
                          F(early_action_cancel), 0, 0},
    [K_A_EXPIRY_THRESHOLDS] = {"alerts", "expiry_thresholds", "24h, 4h", p_thresholds,
                               F(expiry_thresholds_ms), MS_PER_M, 366 * MS_PER_D},
    [K_A_WEBHOOK_URL] = {"alerts", "webhook_url", "", p_url, F(webhook_url), 0, 0},
    [K_A_GATEWAY_UNREACHABLE] = {"alerts", "gateway_unreachable", "5m", p_duration,
                                 F(gateway_unreachable_ms), MS_PER_S, MS_PER_D},
    [K_M_LISTEN] = {"metrics", "listen", "127.0.0.1:9464", p_listen, F(metrics_listen), 0, 0},
};

#undef F

/* ---- messages ---------------------------------------------------------------------- */

static void messages_add(struct messages *m, int line, char *text)
{
	if (m->count == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 8;
		m->items = xrealloc(m->items, m->cap * sizeof(*m->items));
	}
	m->items[m->count].line = line;
	m->items[m->count].text = text;
	m->count++;
}

/* Orders messages by line (stable: insertion sort on a short list); line 0 comes first. */
static void messages_sort(struct messages *m)
{
	for (size_t i = 1; i < m->count; i++) {
		struct message cur = m->items[i];
		size_t j = i;
		while (j > 0 && m->items[j - 1].line > cur.line) {
			m->items[j] = m->items[j - 1];
			j--;
		}
		m->items[j] = cur;
	}
}

/* Joins the messages into one malloc'd text, one line each; frees them. NULL if none. */
static char *messages_take(struct messages *m)
{
	char *out = NULL;
	if (m->count > 0) {
		messages_sort(m);
		size_t len = 0;
		for (size_t i = 0; i < m->count; i++)
			len += strlen(m->items[i].text) + 1;
		out = xmalloc(len + 1);
		char *o = out;
		for (size_t i = 0; i < m->count; i++) {
			size_t n = strlen(m->items[i].text);
			memcpy(o, m->items[i].text, n);
			o += n;
			*o++ = '\n';
		}
		*o = '\0';
	}
	for (size_t i = 0; i < m->count; i++)
		free(m->items[i].text);
	free(m->items);
	m->items = NULL;
	m->count = m->cap = 0;
	return out;
}

/* Records "FILE:LINE: what: reason" as an error. */
static void __attribute__((format(printf, 4, 5)))
error_at(struct load_state *st, int line, const char *what, const char *fmt, ...)
{
	char reason[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	messages_add(&st->errors, line, xasprintf("%s:%d: %s: %s", st->name, line, what, reason));
}

static void __attribute__((format(printf, 4, 5)))
warning_at(struct load_state *st, int line, const char *what, const char *fmt, ...)
{
	char reason[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	messages_add(&st->warnings, line, xasprintf("%s:%d: %s: %s", st->name, line, what, reason));
}

/* The section-qualified name of a key, "smartpay.timeout", in a caller's buffer. */
static const char *qname(const struct key_desc *k, char *buf, size_t len)
{
	snprintf(buf, len, "%s.%s", k->section, k->name);
	return buf;
}

/* Records an error about key `id` at the line it was set on (0 when defaulted). */
static void __attribute__((format(printf, 3, 4)))
key_error(struct load_state *st, enum key_id id, const char *fmt, ...)
{
	char reason[768], q[96];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	error_at(st, st->line[id], qname(&keys[id], q, sizeof(q)), "%s", reason);
}

/* Sets the reason of a failed parse and returns false. */
static bool __attribute__((format(printf, 2, 3))) fail(struct load_state *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->why, sizeof(st->why), fmt, ap);
	va_end(ap);
	return false;
}

/* ---- small text helpers --------------------------------------------------------------- */

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Returns a malloc'd copy of [s, s+n) without surrounding blanks. */
static char *trimmed_dup(const char *s, size_t n)
{
	while (n > 0 && is_blank(*s)) {
		s++;
		n--;
	}
	while (n > 0 && is_blank(s[n - 1]))
		n--;
	return xstrndup(s, n);
}

/* Cuts an inline comment (';' or '#' after a blank) off a value and trims it, in place. */
static void strip_inline_comment(char *v)
{
	for (char *p = v; *p; p++) {
		if ((*p == ';' || *p == '#') && p > v && is_blank(p[-1])) {
			*p = '\0';
			break;
		}
	}
	size_t n = strlen(v);
	while (n > 0 && is_blank(v[n - 1]))
		v[--n] = '\0';
	size_t lead = 0;
	while (is_blank(v[lead]))
		lead++;
	if (lead > 0)
		memmove(v, v + lead, n - lead + 1);
}

static bool is_ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/* Formats a duration with the largest unit that divides it exactly ("5m", "1500ms"). */
static const char *duration_text(int64_t ms, char *buf, size_t len)
{
	static const struct {
		int64_t mult;
		const char *unit;
	} units[] = {{MS_PER_D, "d"}, {MS_PER_H, "h"}, {MS_PER_M, "m"}, {MS_PER_S, "s"}};
	if (ms == 0) {
		snprintf(buf, len, "0s");
		return buf;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms % units[i].mult == 0) {
			snprintf(buf, len, "%lld%s", (long long)(ms / units[i].mult),
			         units[i].unit);
			return buf;
		}
	}
	snprintf(buf, len, "%lldms", (long long)ms);
	return buf;
}

/* Levenshtein distance of two short names, capped: used to suggest a misspelled key. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 63 || lb > 63)
		return SIZE_MAX;
	size_t row[64];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t best = diag + cost;
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* ---- value parsers ------------------------------------------------------------------ */

static void *field(struct load_state *st, const struct key_desc *k)
{
	return (char *)st->cfg + k->offset;
}

static void set_string(struct load_state *st, const struct key_desc *k, const char *text)
{
	char **f = field(st, k);
	free(*f);
	*f = xstrdup(text);
}

bool config_parse_duration(const char *text, int64_t *ms, const char **why)
{
	static const struct {
		const char *unit;
		int64_t mult;
	} units[] = {{"ms", 1}, {"s", MS_PER_S}, {"m", MS_PER_M}, {"h", MS_PER_H}, {"d", MS_PER_D}};
	const char *reason = NULL;
	if (text == NULL || *text == '\0') {
		reason = "empty duration";
	} else if (*text == '-') {
		reason = "negative duration";
	} else if (*text < '0' || *text > '9') {
		reason = "not a duration: expected a whole number and a unit, e.g. 90s";
	}
	if (reason) {
		if (why)
			*why = reason;
		return false;
	}
	int64_t value = 0;
	const char *p = text;
	for (; *p >= '0' && *p <= '9'; p++) {
		int d = *p - '0';
		if (value > (INT64_MAX - d) / 10) {
			if (why)
				*why = "duration too large";
			return false;
		}
		value = value * 10 + d;
	}
	if (*p == '.' || *p == ',')
		reason = "fractions are not allowed: use a smaller unit (90m, not 1.5h)";
	else if (*p == '\0')
		reason = "missing unit: add ms, s, m, h or d (e.g. 90s)";
	else if (is_blank(*p))
		reason = "no space allowed between the number and the unit";
	if (reason) {
		if (why)
			*why = reason;
		return false;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].unit) == 0) {
			if (value > INT64_MAX / units[i].mult) {
				if (why)
					*why = "duration too large";
				return false;
			}
			*ms = value * units[i].mult;
			return true;
		}
	}
	if (why)
		*why = "unknown unit: use ms, s, m, h or d";
	return false;
}

/* Parses a duration and checks it against the key's bounds. */
static bool duration_in_range(struct load_state *st, const struct key_desc *k, const char *text,
                              int64_t *ms)
{
	const char *why;
	if (!config_parse_duration(text, ms, &why))
		return fail(st, "%s", why);
	if (*ms < k->min || *ms > k->max) {
		char lo[32], hi[32];
		if (k->min == 0)
			return fail(st, "must be at most %s",
			            duration_text(k->max, hi, sizeof(hi)));
		if (k->min == 1)
			return fail(st, "must be more than 0 and at most %s",
			            duration_text(k->max, hi, sizeof(hi)));
		return fail(st, "must be between %s and %s", duration_text(k->min, lo, sizeof(lo)),
		            duration_text(k->max, hi, sizeof(hi)));
	}
	return true;
}

static bool p_duration(struct load_state *st, const struct key_desc *k, const char *text)
{
	int64_t ms;
	if (!duration_in_range(st, k, text, &ms))
		return false;
	*(int64_t *)field(st, k) = ms;
	return true;
}

static bool p_count(struct load_state *st, const struct key_desc *k, const char *text)
{
	int64_t v = 0;
	if (*text == '\0')
		return fail(st, "empty value: expected a number");
	for (const char *p = text; *p; p++) {
		if (*p < '0' || *p > '9')
			return fail(st, "not a whole number");
	}
	/* Stop accumulating once past the maximum: no overflow on long digit strings. */
	for (const char *p = text; *p && v <= k->max; p++)
		v = v * 10 + (*p - '0');
	if (v < k->min || v > k->max)
		return fail(st, "must be between %lld and %lld", (long long)k->min,
		            (long long)k->max);
	*(int *)field(st, k) = (int)v;
	return true;
}

static bool p_bool(struct load_state *st, const struct key_desc *k, const char *text)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*(bool *)field(st, k) = true;
			return true;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*(bool *)field(st, k) = false;
			return true;
		}
	}
	return fail(st, "not a boolean: use yes or no (also true/false, on/off, 1/0)");
}

static bool p_log_level(struct load_state *st, const struct key_desc *k, const char *text)
{
	enum log_level level;
	if (!log_level_parse(text, &level))
		return fail(st, "unknown level: use debug, info, notice, warning or error");
	*(int *)field(st, k) = (int)level;
	return true;
}

static bool p_early_action(struct load_state *st, const struct key_desc *k, const char *text)
{
	if (strcmp(text, "capture") == 0)
		*(bool *)field(st, k) = false;
	else if (strcmp(text, "cancel") == 0)
		*(bool *)field(st, k) = true;
	else
		return fail(st, "must be capture or cancel");
	return true;
}

static bool p_conninfo(struct load_state *st, const struct key_desc *k, const char *text)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(text, &err);
	if (opts == NULL) {
		/* libpq quotes pieces of the text; keep them out when a password may be among them.
		 */
		if (err != NULL && strcasestr(text, "password") == NULL &&
		    strchr(text, '@') == NULL) {
			size_t n = strlen(err);
			while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
				err[--n] = '\0';
			fail(st, "not a valid libpq connection string: %s", err);
		} else {
			fail(st, "not a valid libpq connection string (details withheld: it may "
			         "contain a password)");
		}
		PQfreemem(err);
		return false;
	}
	PQconninfoFree(opts);
	set_string(st, k, text);
	return true;
}

static bool p_relation(struct load_state *st, const struct key_desc *k, const char *text)
{
	const char *dot = strchr(text, '.');
	if (*text == '\0')
		return fail(st, "empty: expected name or schema.name");
	if (dot != NULL && strchr(dot + 1, '.') != NULL)
		return fail(st, "too many dots: expected name or schema.name");
	size_t partlen = 0;
	for (const char *p = text;; p++) {
		if (*p == '.' || *p == '\0') {
			if (partlen == 0)
				return fail(st, "empty identifier: expected name or schema.name");
			if (partlen > 63)
				return fail(st, "identifier longer than 63 characters");
			if (*p == '\0')
				break;
			partlen = 0;
			continue;
		}
		if (!is_ident_char(*p))
			return fail(st, "identifiers may only contain letters, digits and '_'");
		partlen++;
	}
	set_string(st, k, text);
	return true;
}

static bool p_merchant_key(struct load_state *st, const struct key_desc *k, const char *text)
{
	size_t n = strlen(text);
	if (n == 0)
		return fail(st, "must not be empty");
	if (n > 36)
		return fail(st, "longer than 36 characters");
	for (const char *p = text; *p; p++) {
		if (*p == ':' || is_blank(*p) || (unsigned char)*p < 0x20 || *p == 0x7f ||
		    *p == '"' || *p == '\\')
			return fail(st, "may not contain spaces, ':', '\"' or '\\'");
	}
	set_string(st, k, text);
	return true;
}

static bool p_path(struct load_state *st, const struct key_desc *k, const char *text)
{
	if (*text != '\0' && *text != '/')
		return fail(st, "must be an absolute path");
	set_string(st, k, text);
	return true;
}

static bool p_user_agent(struct load_state *st, const struct key_desc *k, const char *text)
{
	if (*text == '\0')
		return fail(st, "must not be empty (SmartPay requires a User-Agent)");
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p < 0x20 || *p >= 0x7f)
			return fail(st, "only printable ASCII characters are allowed");
	}
	set_string(st, k, text);
	return true;
}

/* The parts of an http(s) URL that the checks need. */
struct url_info {
	bool https;
	bool loopback;
	const char *rest; /* path, query and fragment, after the authority */
};

/* True when a host (without brackets) is a loopback name or address. */
static bool host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

/* Checks "host[:port]" or "[v6]:port"; `need_port` for listen addresses. Sets *loopback. */
static bool check_host_port(struct load_state *st, const char *hp, size_t len, bool need_port,
                            bool *loopback)
{
	char host[256];
	const char *port = NULL;
	size_t port_len = 0;
	if (len > 0 && hp[0] == '[') {
		const char *close = memchr(hp, ']', len);
		if (close == NULL)
			return fail(st, "missing ']' after the IPv6 address");
		size_t hlen = (size_t)(close - hp - 1);
		if (hlen == 0 || hlen >= sizeof(host))
			return fail(st, "bad IPv6 address");
		memcpy(host, hp + 1, hlen);
		host[hlen] = '\0';
		struct in6_addr a6;
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return fail(st, "bad IPv6 address [%s]", host);
		const char *after = close + 1;
		size_t alen = len - (size_t)(after - hp);
		if (alen > 0) {
			if (*after != ':')
				return fail(st, "unexpected text after ']'");
			port = after + 1;
			port_len = alen - 1;
		}
	} else {
		const char *colon = memchr(hp, ':', len);
		size_t hlen = colon ? (size_t)(colon - hp) : len;
		if (colon != NULL && memchr(colon + 1, ':', len - hlen - 1) != NULL)
			return fail(st, "IPv6 addresses need brackets, e.g. [::1]");
		if (hlen == 0)
			return fail(st, "missing host");
		if (hlen >= sizeof(host))
			return fail(st, "host name too long");
		for (size_t i = 0; i < hlen; i++) {
			char c = hp[i];
			if (!is_ident_char(c) && c != '.' && c != '-')
				return fail(st, "bad character '%c' in host name", c);
		}
		memcpy(host, hp, hlen);
		host[hlen] = '\0';
		if (colon) {
			port = colon + 1;
			port_len = len - hlen - 1;
		}
	}
	if (port == NULL && need_port)
		return fail(st, "missing port: expected host:port");
	if (port != NULL) {
		long v = 0;
		if (port_len == 0 || port_len > 5)
			return fail(st, "bad port");
		for (size_t i = 0; i < port_len; i++) {
			if (port[i] < '0' || port[i] > '9')
				return fail(st, "bad port");
			v = v * 10 + (port[i] - '0');
		}
		if (v < 1 || v > 65535)
			return fail(st, "port must be between 1 and 65535");
	}
	*loopback = host_is_loopback(host);
	return true;
}

/* Splits and checks an http:// or https:// URL. Credentials in it are refused. */
static bool check_url(struct load_state *st, const char *text, struct url_info *u)
{
	const char *p;
	if (strncasecmp(text, "https://", 8) == 0) {
		u->https = true;
		p = text + 8;
	} else if (strncasecmp(text, "http://", 7) == 0) {
		u->https = false;
		p = text + 7;
	} else {
		return fail(st, "must start with https:// (or http:// for a loopback host)");
	}
	for (const char *q = text; *q; q++) {
		if (is_blank(*q))
			return fail(st, "spaces are not allowed in a URL (encode them as %%20)");
	}
	size_t alen = strcspn(p, "/?#");
	if (memchr(p, '@', alen) != NULL)
		return fail(st, "credentials in the URL are not allowed");
	if (!check_host_port(st, p, alen, false, &u->loopback))
		return false;
	u->rest = p + alen;
	return true;
}

static bool p_url(struct load_state *st, const struct key_desc *k, const char *text)
{
	struct url_info u;
	bool is_base = k == &keys[K_SP_BASE_URL];
	if (*text == '\0') {
		if (is_base)
			return fail(st, "must not be empty");
		set_string(st, k, text);
		return true;
	}
	if (!check_url(st, text, &u))
		return false;
	if (strchr(u.rest, '#') != NULL)
		return fail(st, "a URL fragment ('#...') is not allowed");
	if (is_base && strchr(u.rest, '?') != NULL)
		return fail(st, "a query ('?...') is not allowed in the base URL");
	char *copy = xstrdup(text);
	if (is_base) {
		/* The paths are appended to it: "/payment/capture". */
		size_t n = strlen(copy);
		size_t min = (size_t)(u.rest - text);
		while (n > min && copy[n - 1] == '/')
			copy[--n] = '\0';
	}
	char **f = field(st, k);
	free(*f);
	*f = copy;
	return true;
}

static bool p_origin(struct load_state *st, const struct key_desc *k, const char *text)
{
	struct url_info u;
	if (*text != '\0') {
		if (!check_url(st, text, &u))
			return false;
		if (*u.rest != '\0')
			return fail(st, "an origin is scheme://host[:port], without a path");
	}
	set_string(st, k, text);
	return true;
}

static bool p_listen(struct load_state *st, const struct key_desc *k, const char *text)
{
	bool loopback;
	if (*text != '\0' && !check_host_port(st, text, strlen(text), true, &loopback))
		return false;
	set_string(st, k, text);
	return true;
}

static bool p_instance_name(struct load_state *st, const struct key_desc *k, const char *text)
{
	char host[HOST_NAME_MAX + 1];
	bool have_host = false;
	char out[256];
	size_t n = 0;
	const char *src = *text == '\0' ? "%H" : text;
	for (const char *p = src; *p; p++) {
		const char *piece;
		char one[2] = {*p, '\0'};
		if (*p == '%') {
			if (p[1] == 'H') {
				if (!have_host) {
					if (gethostname(host, sizeof(host)) != 0)
						return fail(st,
						            "cannot determine the host name: %s",
						            strerror(errno));
					host[sizeof(host) - 1] = '\0';
					have_host = true;
				}
				piece = host;
			} else {
				return fail(st, "unknown specifier: only %%H (the host name) is "
				                "expanded");
			}
			p++;
		} else {
			piece = one;
		}
		size_t plen = strlen(piece);
		if (n + plen >= sizeof(out) || n + plen > 128)
			return fail(st, "longer than 128 characters");
		memcpy(out + n, piece, plen);
		n += plen;
	}
	out[n] = '\0';
	if (n == 0)
		return fail(st, "the host name is empty");
	for (const char *p = out; *p; p++) {
		if (!is_ident_char(*p) && strchr(".-:@", *p) == NULL)
			return fail(st, "'%s' may only contain letters, digits and . - _ : @", out);
	}
	set_string(st, k, out);
	return true;
}

/* Splits a comma-separated value into trimmed items; empty items are refused. */
static bool split_list(struct load_state *st, const char *text, struct sp_strlist *list)
{
	list->items = NULL;
	list->count = 0;
	if (*text == '\0')
		return true;
	size_t cap = 0;
	const char *p = text;
	for (;;) {
		size_t n = strcspn(p, ",");
		char *item = trimmed_dup(p, n);
		if (*item == '\0') {
			free(item);
			for (size_t i = 0; i < list->count; i++)
				free(list->items[i]);
			free(list->items);
			list->items = NULL;
			list->count = 0;
			return fail(st, "empty item in the list (a stray comma?)");
		}
		if (list->count == cap) {
			cap = cap ? cap * 2 : 4;
			list->items = xrealloc(list->items, cap * sizeof(*list->items));
		}
		list->items[list->count++] = item;
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	return true;
}

static void strlist_free(struct sp_strlist *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i]);
	free(list->items);
	list->items = NULL;
	list->count = 0;
}

static bool strlist_has(const struct sp_strlist *list, const char *s)
{
	for (size_t i = 0; i < list->count; i++) {
		if (strcmp(list->items[i], s) == 0)
			return true;
	}
	return false;
}

static bool p_statuses(struct load_state *st, const struct key_desc *k, const char *text)
{
	struct sp_strlist list;
	if (!split_list(st, text, &list))
		return false;
	if ((int64_t)list.count < k->min) {
		strlist_free(&list);
		return fail(st, "needs at least one status");
	}
	for (size_t i = 1; i < list.count; i++) {
		for (size_t j = 0; j < i; j++) {
			if (strcmp(list.items[i], list.items[j]) == 0) {
				fail(st, "status '%s' is listed twice", list.items[i]);
				strlist_free(&list);
				return false;
			}
		}
	}
	struct sp_strlist *f = field(st, k);
	strlist_free(f);
	*f = list;
	return true;
}

static int cmp_desc(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

static bool p_thresholds(struct load_state *st, const struct key_desc *k, const char *text)
{
	struct sp_strlist list;
	if (!split_list(st, text, &list))
		return false;
	int64_t *ms = xcalloc(list.count ? list.count : 1, sizeof(*ms));
	bool ok = true;
	for (size_t i = 0; i < list.count && ok; i++) {
		if (!duration_in_range(st, k, list.items[i], &ms[i])) {
			char reason[sizeof(st->why)];
			snprintf(reason, sizeof(reason), "%s", st->why);
			fail(st, "'%s': %s", list.items[i], reason);
			ok = false;
			break;
		}
		for (size_t j = 0; j < i; j++) {
			if (ms[j] == ms[i]) {
				fail(st, "'%s' is listed twice", list.items[i]);
				ok = false;
				break;
			}
		}
	}
	size_t count = list.count;
	strlist_free(&list);
	if (!ok) {
		free(ms);
		return false;
	}
	qsort(ms, count, sizeof(*ms), cmp_desc);
	free(st->cfg->expiry_thresholds_ms);
	st->cfg->expiry_thresholds_ms = ms;
	st->cfg->expiry_threshold_count = count;
	return true;
}

/* ---- reading the file through libinih --------------------------------------------------- */

static int section_index(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		if (strlen(sections[i]) == len && strncmp(sections[i], name, len) == 0)
			return (int)i;
	}
	return -1;
}

/* Hands libinih the next line, normalised (see the comment at the top), or NULL at the end. */
static char *config_reader(char *str, int num, void *stream)
{
	struct load_state *st = stream;
	if (st->pos >= st->end)
		return NULL;
	const char *line = st->pos;
	const char *eol = memchr(line, '\n', (size_t)(st->end - line));
	if (eol == NULL)
		eol = st->end;
	st->pos = eol < st->end ? eol + 1 : eol;
	st->lineno++;
	int ln = st->lineno;
	if (eol > line && eol[-1] == '\r')
		eol--;
	if (ln == 1 && eol - line >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
		line += 3;
	while (line < eol && is_blank(*line))
		line++;
	size_t len = (size_t)(eol - line);
	strcpy(str, "\n");

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			error_at(st, ln, "syntax", "control character (byte 0x%02x) in line", c);
			return str;
		}
	}
	if (len == 0 || line[0] == ';' || line[0] == '#')
		return str;

	if (line[0] == '[') {
		const char *close = memchr(line, ']', len);
		if (close == NULL) {
			error_at(st, ln, "syntax", "missing ']' in section header");
			st->section = -2;
			return str;
		}
		const char *after = close + 1;
		while (after < eol && is_blank(*after))
			after++;
		if (after < eol && *after != ';' && *after != '#')
			error_at(st, ln, "syntax", "unexpected text after ']'");
		const char *name = line + 1;
		size_t nlen = (size_t)(close - name);
		while (nlen > 0 && is_blank(*name)) {
			name++;
			nlen--;
		}
		while (nlen > 0 && is_blank(name[nlen - 1]))
			nlen--;
		st->section = section_index(name, nlen);
		if (st->section < 0) {
			char shown[80];
			snprintf(shown, sizeof(shown), "[%.*s]", (int)(nlen > 64 ? 64 : nlen),
			         name);
			error_at(st, ln, shown,
			         "unknown section (known: database, smartpay, daemon, capture, "
			         "alerts, metrics)");
			st->section = -2;
			return str;
		}
		snprintf(str, (size_t)num, "[%s]\n", sections[st->section]);
		return str;
	}

	size_t sep = strcspn(line, "=:");
	for (size_t i = 1; i < sep && i < len; i++) {
		if (line[i] == ';' && is_blank(line[i - 1]))
			sep = len; /* libinih reads the rest as a comment: no '=' on this line */
	}
	if (sep >= len) {
		error_at(st, ln, "syntax", "expected 'key = value', '[section]' or a comment");
		return str;
	}
	size_t nlen = sep;
	while (nlen > 0 && is_blank(line[nlen - 1]))
		nlen--;
	if (nlen == 0) {
		error_at(st, ln, "syntax", "missing key name before '%c'", line[sep]);
		return str;
	}
	if (st->section == -1) {
		char shown[80];
		snprintf(shown, sizeof(shown), "%.*s", (int)(nlen > 64 ? 64 : nlen), line);
		error_at(st, ln, shown, "key outside of any section (add a [section] line above)");
		return str;
	}
	if (st->section == -2)
		return str; /* the section was reported already */
	if (len + 2 <= (size_t)num) {
		memcpy(str, line, len);
		memcpy(str + len, "\n", 2);
		return str;
	}
	/* Longer than libinih's line buffer: keep the value aside, pass a marker instead. */
	if (nlen + sizeof(LONG_VALUE_MARK) + 2 > (size_t)num) {
		error_at(st, ln, "syntax", "key name too long");
		return str;
	}
	free(st->long_value);
	st->long_value = xstrndup(line + sep + 1, len - sep - 1);
	snprintf(str, (size_t)num, "%.*s=%s\n", (int)nlen, line, LONG_VALUE_MARK);
	return str;
}

/* libinih's callback: remembers each value and its line; validation comes later. */
static int config_handler(void *user, const char *section, const char *name, const char *value)
{
	struct load_state *st = user;
	int ln = st->lineno;
	if (st->section < 0)
		return 1;
	char *v;
	if (strcmp(value, LONG_VALUE_MARK) == 0 && st->long_value != NULL) {
		v = st->long_value;
		st->long_value = NULL;
	} else {
		v = xstrdup(value);
	}
	strip_inline_comment(v);

	int id = -1;
	for (int i = 0; i < K_COUNT; i++) {
		if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0) {
			id = i;
			break;
		}
	}
	char q[160];
	snprintf(q, sizeof(q), "%s.%.64s", section, name);
	if (id < 0) {
		/* Suggest the right section, or a close spelling in this one. */
		const struct key_desc *elsewhere = NULL, *close = NULL;
		size_t best = 3;
		for (int i = 0; i < K_COUNT; i++) {
			if (strcmp(keys[i].name, name) == 0)
				elsewhere = &keys[i];
			if (strcmp(keys[i].section, section) == 0) {
				size_t d = strcasecmp(keys[i].name, name) == 0
				               ? 0
				               : edit_distance(keys[i].name, name);
				if (d < best) {
					best = d;
					close = &keys[i];
				}
			}
		}
		if (elsewhere)
			error_at(st, ln, q, "unknown key (%s belongs in [%s])", name,
			         elsewhere->section);
		else if (close)
			error_at(st, ln, q, "unknown key (did you mean %s?)", close->name);
		else
			error_at(st, ln, q, "unknown key");
		free(v);
		return 1;
	}
	if (st->value[id] != NULL) {
		error_at(st, ln, q, "duplicate key (first set on line %d)", st->line[id]);
		free(v);
		return 1;
	}
	st->value[id] = v;
	st->line[id] = ln;
	return 1;
}

/* ---- validation across keys ------------------------------------------------------------- */

/* The line to blame for a relation between two keys: the first that was set explicitly. */
static enum key_id blame(const struct load_state *st, enum key_id a, enum key_id b)
{
	return st->line[a] != 0 || st->line[b] == 0 ? a : b;
}

static void check_http_url(struct load_state *st, enum key_id id)
{
	const char *url = *(char **)field(st, &keys[id]);
	struct url_info u;
	char q[96];
	if (!st->ok[id] || !st->ok[K_SP_ALLOW_INSECURE_HTTP] || *url == '\0')
		return;
	if (!check_url(st, url, &u) || u.https || u.loopback)
		return;
	if (!st->cfg->allow_insecure_http) {
		key_error(st, id,
		          "plain http:// is refused for a host that is not loopback; use https:// "
		          "or set smartpay.allow_insecure_http = yes");
		st->ok[id] = false;
	} else {
		warning_at(st, st->line[id], qname(&keys[id], q, sizeof(q)),
		           "plain http:// to a host that is not loopback: requests travel "
		           "unencrypted (allow_insecure_http = yes)");
	}
}

/* Two status lists must not share a status; blamed on the list that was set explicitly. */
static void check_disjoint(struct load_state *st, enum key_id a, enum key_id b)
{
	if (!st->ok[a] || !st->ok[b])
		return;
	enum key_id id = blame(st, a, b);
	enum key_id other = id == a ? b : a;
	const struct sp_strlist *mine = field(st, &keys[id]), *theirs = field(st, &keys[other]);
	char q[96];
	for (size_t i = 0; i < mine->count; i++) {
		if (strlist_has(theirs, mine->items[i])) {
			key_error(st, id, "status '%s' is also in %s", mine->items[i],
			          qname(&keys[other], q, sizeof(q)));
			st->ok[id] = false;
			return;
		}
	}
}

static void check_relations(struct load_state *st)
{
	struct sp_config *cfg = st->cfg;
	char t1[32], q[96];

	check_http_url(st, K_SP_BASE_URL);
	check_http_url(st, K_A_WEBHOOK_URL);

	if (st->ok[K_D_LEASE] && st->ok[K_SP_TIMEOUT] && cfg->lease_ms <= cfg->timeout_ms) {
		enum key_id id = blame(st, K_D_LEASE, K_SP_TIMEOUT);
		if (id == K_D_LEASE)
			key_error(st, id, "must be longer than smartpay.timeout (%s)",
			          duration_text(cfg->timeout_ms, t1, sizeof(t1)));
		else
			key_error(st, id, "must be shorter than daemon.lease (%s)",
			          duration_text(cfg->lease_ms, t1, sizeof(t1)));
	}
	/* A defaulted connect_timeout follows a shorter explicit timeout. */
	if (st->ok[K_SP_CONNECT_TIMEOUT] && st->ok[K_SP_TIMEOUT] &&
	    st->line[K_SP_CONNECT_TIMEOUT] == 0 && cfg->connect_timeout_ms > cfg->timeout_ms)
		cfg->connect_timeout_ms = cfg->timeout_ms;
	if (st->ok[K_SP_CONNECT_TIMEOUT] && st->ok[K_SP_TIMEOUT] &&
	    cfg->connect_timeout_ms > cfg->timeout_ms) {
		enum key_id id = blame(st, K_SP_CONNECT_TIMEOUT, K_SP_TIMEOUT);
		if (id == K_SP_CONNECT_TIMEOUT)
			key_error(st, id, "must not be longer than smartpay.timeout (%s)",
			          duration_text(cfg->timeout_ms, t1, sizeof(t1)));
		else
			key_error(st, id, "must not be shorter than smartpay.connect_timeout (%s)",
			          duration_text(cfg->connect_timeout_ms, t1, sizeof(t1)));
	}
	if (st->ok[K_D_RETRY_BASE] && st->ok[K_D_RETRY_MAX] &&
	    cfg->retry_max_ms < cfg->retry_base_ms) {
		enum key_id id = blame(st, K_D_RETRY_MAX, K_D_RETRY_BASE);
		if (id == K_D_RETRY_MAX)
			key_error(st, id, "must not be shorter than daemon.retry_base (%s)",
			          duration_text(cfg->retry_base_ms, t1, sizeof(t1)));
		else
			key_error(st, id, "must not be longer than daemon.retry_max (%s)",
			          duration_text(cfg->retry_max_ms, t1, sizeof(t1)));
	}
	/* The margin matters only when the early policy is on or the margin was set. */
	bool early_used = st->ok[K_C_EARLY_STATUSES] &&
	                  (cfg->early_statuses.count > 0 || st->line[K_C_EARLY_MARGIN] != 0);
	if (early_used && st->ok[K_C_EARLY_MARGIN] && st->ok[K_C_AUTH_VALIDITY] &&
	    cfg->early_margin_ms >= cfg->authorization_validity_ms) {
		enum key_id id = blame(st, K_C_EARLY_MARGIN, K_C_AUTH_VALIDITY);
		if (id == K_C_EARLY_MARGIN)
			key_error(st, id,
			          "must be shorter than capture.authorization_validity (%s)",
			          duration_text(cfg->authorization_validity_ms, t1, sizeof(t1)));
		else
			key_error(st, id, "must be longer than capture.early_margin (%s)",
			          duration_text(cfg->early_margin_ms, t1, sizeof(t1)));
	}
	check_disjoint(st, K_C_CANCELLED, K_C_SHIPPED);
	check_disjoint(st, K_C_EARLY_STATUSES, K_C_SHIPPED);
	check_disjoint(st, K_C_EARLY_STATUSES, K_C_CANCELLED);

	if (st->ok[K_SP_ORIGIN] && *cfg->origin == '\0')
		warning_at(st, st->line[K_SP_ORIGIN], qname(&keys[K_SP_ORIGIN], q, sizeof(q)),
		           "not set: SmartPay requires an Origin header on every request");
}

/* ---- loading ------------------------------------------------------------------------------ */

static bool load_text(const char *name, const char *text, size_t len, struct sp_config **out,
                      char **errors)
{
	struct load_state st;
	memset(&st, 0, sizeof(st));
	st.name = name;
	st.cfg = xcalloc(1, sizeof(*st.cfg));
	st.cfg->path = xstrdup(name);
	st.pos = text;
	st.end = text + len;
	st.section = -1;

	int r = ini_parse_stream(config_reader, &st, config_handler, &st);
	free(st.long_value);
	if (r == -2)
		error_at(&st, 0, "file", "out of memory while parsing");
	else if (r > 0) {
		/* libinih refused a line that config_reader let through: never accept it silently.
		 */
		bool reported = false;
		for (size_t i = 0; i < st.errors.count; i++)
			reported |= st.errors.items[i].line == r;
		if (!reported)
			error_at(&st, r, "syntax", "cannot parse this line");
	}

	char q[96];
	for (int i = 0; i < K_COUNT; i++) {
		const struct key_desc *k = &keys[i];
		const char *text_value = st.value[i] ? st.value[i] : k->def;
		if (text_value == NULL) {
			error_at(&st, 0, qname(k, q, sizeof(q)), "required key is missing");
			continue;
		}
		st.why[0] = '\0';
		if (k->parse(&st, k, text_value))
			st.ok[i] = true;
		else
			error_at(&st, st.line[i], qname(k, q, sizeof(q)), "%s", st.why);
	}
	check_relations(&st);
	for (int i = 0; i < K_COUNT; i++)
		free(st.value[i]);

	if (st.errors.count > 0) {
		*errors = messages_take(&st.errors);
		free(messages_take(&st.warnings));
		config_free(st.cfg);
		*out = NULL;
		return false;
	}
	st.cfg->warnings = messages_take(&st.warnings);
	*errors = NULL;
	*out = st.cfg;
	return true;
}

bool config_load_string(const char *name, const char *text, struct sp_config **out, char **errors)
{
	return load_text(name, text, strlen(text), out, errors);
}

/* Reads a whole regular file of at most `max` bytes; returns false with errno set. */
static bool read_file(const char *path, size_t max, char **data, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return false;
	struct stat sb;
	if (fstat(fd, &sb) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return false;
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		errno = S_ISDIR(sb.st_mode) ? EISDIR : EINVAL;
		return false;
	}
	if ((uintmax_t)sb.st_size > max) {
		close(fd);
		errno = EFBIG;
		return false;
	}
	char *buf = xmalloc(max + 1);
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, max + 1 - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			explicit_bzero(buf, n);
			free(buf);
			close(fd);
			errno = e;
			return false;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			explicit_bzero(buf, n);
			free(buf);
			close(fd);
			errno = EFBIG;
			return false;
		}
	}
	close(fd);
	buf[n] = '\0';
	*data = buf;
	*len = n;
	return true;
}

bool config_load(const char *path, struct sp_config **out, char **errors)
{
	char *data;
	size_t len;
	if (!read_file(path, CONFIG_MAX_FILE_SIZE, &data, &len)) {
		const char *reason = errno == EFBIG ? "larger than 1 MiB" : strerror(errno);
		*errors = xasprintf("%s:0: file: cannot read: %s\n", path, reason);
		*out = NULL;
		return false;
	}
	bool ok = load_text(path, data, len, out, errors);
	free(data);
	return ok;
}

void config_free(struct sp_config *cfg)
{
	if (cfg == NULL)
		return;
	for (int i = 0; i < K_COUNT; i++) {
		const struct key_desc *k = &keys[i];
		void *f = (char *)cfg + k->offset;
		if (k->parse == p_statuses)
			strlist_free(f);
		else if (k->parse == p_conninfo || k->parse == p_relation || k->parse == p_url ||
		         k->parse == p_merchant_key || k->parse == p_path || k->parse == p_origin ||
		         k->parse == p_user_agent || k->parse == p_instance_name ||
		         k->parse == p_listen)
			free(*(char **)f);
	}
	free(cfg->expiry_thresholds_ms);
	free(cfg->warnings);
	free(cfg->path);
	free(cfg);
}

char *config_read_secret(const struct sp_config *cfg, char **why)
{
	char *path;
	if (cfg->authentication_key_file != NULL && *cfg->authentication_key_file != '\0') {
		path = xstrdup(cfg->authentication_key_file);
	} else {
		const char *dir = getenv("CREDENTIALS_DIRECTORY");
		if (dir == NULL || *dir == '\0') {
			*why =
			    xstrdup("no authentication key: set smartpay.authentication_key_file, "
			            "or pass the credential " CONFIG_CREDENTIAL_NAME
			            " with LoadCredential= ($CREDENTIALS_DIRECTORY is not set)");
			return NULL;
		}
		path = xasprintf("%s/%s", dir, CONFIG_CREDENTIAL_NAME);
	}
	char *data;
	size_t len;
	if (!read_file(path, SECRET_MAX_SIZE, &data, &len)) {
		const char *reason = errno == EFBIG ? "larger than 4096 bytes" : strerror(errno);
		*why = xasprintf("authentication key %s: cannot read: %s", path, reason);
		free(path);
		return NULL;
	}
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		data[--len] = '\0';
	const char *problem = NULL;
	if (len == 0)
		problem = "the file is empty";
	for (size_t i = 0; i < len && problem == NULL; i++) {
		unsigned char c = (unsigned char)data[i];
		if (c < 0x20 || c == 0x7f)
			problem = "the key contains a line break or control character";
	}
	if (problem != NULL) {
		*why = xasprintf("authentication key %s: %s", path, problem);
		explicit_bzero(data, len);
		free(data);
		free(path);
		return NULL;
	}
	free(path);
	*why = NULL;
	return data;
}
