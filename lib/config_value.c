#include "autoconfig.h"

#include "config_internal.h"
#include "duration.h"
#include "log.h"
#include "trim.h"
#include "url.h"
#include "xmalloc.h"

#include <errno.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* The value parsers of the key table: each validates one value's text, stores it into
 * its field of struct sp_config, or explains the refusal in st->why. */

/* Sets the reason of a failed parse and returns false. */
static bool __attribute__((format(printf, 2, 3))) fail(struct load_state *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->why, sizeof(st->why), fmt, ap);
	va_end(ap);
	return false;
}

/* Returns a malloc'd copy of [s, s+n) without surrounding blanks. */
static char *trimmed_dup(const char *s, size_t n)
{
	size_t lead = trim_start_len(s, n, CONFIG_BLANKS);
	return xstrndup(s + lead, trim_end_len(s + lead, n - lead, CONFIG_BLANKS));
}

static bool is_ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/* Replaces the key's string field with a copy of text. */
static void set_string(struct load_state *st, const struct key_desc *k, const char *text)
{
	char **f = config_field(st, k);
	free(*f);
	*f = xstrdup(text);
}

/* Hands the reason of a refused duration to a caller that asked for it; returns false. */
static bool duration_refused(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return false;
}

bool config_parse_duration(const char *text, int64_t *ms, const char **why)
{
	static const struct {
		const char *unit;
		int64_t mult;
	} units[] = {{"ms", 1}, {"s", MS_PER_S}, {"m", MS_PER_M}, {"h", MS_PER_H}, {"d", MS_PER_D}};
	if (text == NULL || *text == '\0')
		return duration_refused(why, "empty duration");
	if (*text == '-')
		return duration_refused(why, "negative duration");
	if (*text < '0' || *text > '9')
		return duration_refused(
		    why, "not a duration: expected a whole number and a unit, e.g. 90s");
	int64_t value = 0;
	const char *p = text;
	for (; *p >= '0' && *p <= '9'; p++) {
		int d = *p - '0';
		if (value > (INT64_MAX - d) / 10)
			return duration_refused(why, "duration too large");
		value = value * 10 + d;
	}
	if (*p == '.' || *p == ',')
		return duration_refused(
		    why, "fractions are not allowed: use a smaller unit (90m, not 1.5h)");
	if (*p == '\0')
		return duration_refused(why, "missing unit: add ms, s, m, h or d (e.g. 90s)");
	if (config_is_blank(*p))
		return duration_refused(why, "no space allowed between the number and the unit");
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].unit) == 0) {
			if (value > INT64_MAX / units[i].mult)
				return duration_refused(why, "duration too large");
			*ms = value * units[i].mult;
			return true;
		}
	}
	return duration_refused(why, "unknown unit: use ms, s, m, h or d");
}

/* Parses a duration and checks it against the key's bounds. */
static bool duration_in_range(struct load_state *st, const struct key_desc *k, const char *text,
                              int64_t *ms)
{
	const char *why;
	if (!config_parse_duration(text, ms, &why))
		return fail(st, "%s", why);
	if (*ms < k->min || *ms > k->max) {
		char lo[DURATION_TEXT_SIZE], hi[DURATION_TEXT_SIZE];
		if (k->min == 0)
			return fail(st, "must be at most %s",
			            duration_format(k->max, DURATION_EXACT, hi));
		if (k->min == 1)
			return fail(st, "must be more than 0 and at most %s",
			            duration_format(k->max, DURATION_EXACT, hi));
		return fail(st, "must be between %s and %s",
		            duration_format(k->min, DURATION_EXACT, lo),
		            duration_format(k->max, DURATION_EXACT, hi));
	}
	return true;
}

/* A duration within the key's bounds. */
bool config_value_duration(struct load_state *st, const struct key_desc *k, const char *text)
{
	int64_t ms;
	if (!duration_in_range(st, k, text, &ms))
		return false;
	*(int64_t *)config_field(st, k) = ms;
	return true;
}

/* A whole number within the key's bounds. */
bool config_value_count(struct load_state *st, const struct key_desc *k, const char *text)
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
	*(int *)config_field(st, k) = (int)v;
	return true;
}

/* yes/no, true/false, on/off or 1/0. */
bool config_value_bool(struct load_state *st, const struct key_desc *k, const char *text)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*(bool *)config_field(st, k) = true;
			return true;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*(bool *)config_field(st, k) = false;
			return true;
		}
	}
	return fail(st, "not a boolean: use yes or no (also true/false, on/off, 1/0)");
}

/* A log level name (debug, info, notice, warning, error). */
bool config_value_log_level(struct load_state *st, const struct key_desc *k, const char *text)
{
	enum log_level level;
	if (!log_level_parse(text, &level))
		return fail(st, "unknown level: use debug, info, notice, warning or error");
	*(int *)config_field(st, k) = (int)level;
	return true;
}

/* What the early policy does: capture (false) or cancel (true). */
bool config_value_early_action(struct load_state *st, const struct key_desc *k, const char *text)
{
	if (strcmp(text, "capture") == 0)
		*(bool *)config_field(st, k) = false;
	else if (strcmp(text, "cancel") == 0)
		*(bool *)config_field(st, k) = true;
	else
		return fail(st, "must be capture or cancel");
	return true;
}

/* A libpq connection string; libpq's own complaint is shown unless it may hold a password. */
bool config_value_conninfo(struct load_state *st, const struct key_desc *k, const char *text)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(text, &err);
	if (opts == NULL) {
		/* libpq quotes pieces of the text; keep them out when a password may be among them.
		 */
		if (err != NULL && strcasestr(text, "password") == NULL &&
		    strchr(text, '@') == NULL) {
			fail(st, "not a valid libpq connection string: %s", trim_end(err, "\n "));
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

/* A relation name, "name" or "schema.name", of plain identifiers. */
bool config_value_relation(struct load_state *st, const struct key_desc *k, const char *text)
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

/* The merchant key: 1 to 36 characters that can stand before the ":" of Basic auth. */
bool config_value_merchant_key(struct load_state *st, const struct key_desc *k, const char *text)
{
	size_t n = strlen(text);
	if (n == 0)
		return fail(st, "must not be empty");
	if (n > 36)
		return fail(st, "longer than 36 characters");
	for (const char *p = text; *p; p++) {
		if (*p == ':' || config_is_blank(*p) || (unsigned char)*p < 0x20 || *p == 0x7f ||
		    *p == '"' || *p == '\\')
			return fail(st, "may not contain spaces, ':', '\"' or '\\'");
	}
	set_string(st, k, text);
	return true;
}

/* An absolute path, or "" for none. */
bool config_value_path(struct load_state *st, const struct key_desc *k, const char *text)
{
	if (*text != '\0' && *text != '/')
		return fail(st, "must be an absolute path");
	set_string(st, k, text);
	return true;
}

/* A non-empty User-Agent of printable ASCII. */
bool config_value_user_agent(struct load_state *st, const struct key_desc *k, const char *text)
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

/* An http(s) URL without a fragment; the base URL also without a query or trailing slash. */
bool config_value_url(struct load_state *st, const struct key_desc *k, const char *text)
{
	struct url_parts u;
	bool is_base = k->offset == offsetof(struct sp_config, base_url);
	if (*text == '\0') {
		if (is_base)
			return fail(st, "must not be empty");
		set_string(st, k, text);
		return true;
	}
	if (!url_check(text, &u, st->why, sizeof(st->why)))
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
	char **f = config_field(st, k);
	free(*f);
	*f = copy;
	return true;
}

/* An origin, scheme://host[:port], or "" for none. */
bool config_value_origin(struct load_state *st, const struct key_desc *k, const char *text)
{
	struct url_parts u;
	if (*text != '\0') {
		if (!url_check(text, &u, st->why, sizeof(st->why)))
			return false;
		if (*u.rest != '\0')
			return fail(st, "an origin is scheme://host[:port], without a path");
	}
	set_string(st, k, text);
	return true;
}

/* A host:port to listen on, or "" for none. */
bool config_value_listen(struct load_state *st, const struct key_desc *k, const char *text)
{
	bool loopback;
	if (*text != '\0' &&
	    !url_check_host_port(text, strlen(text), true, &loopback, st->why, sizeof(st->why)))
		return false;
	set_string(st, k, text);
	return true;
}

/* The instance name, "%H" expanded to the host name. */
bool config_value_instance_name(struct load_state *st, const struct key_desc *k, const char *text)
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

/* Frees a list's items and empties it. */
static void strlist_free(struct sp_strlist *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i]);
	free(list->items);
	list->items = NULL;
	list->count = 0;
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
			strlist_free(list);
			return fail(st, "empty item in the list (a stray comma?)");
		}
		list->items = xgrow(list->items, &cap, list->count + 1, sizeof(*list->items));
		list->items[list->count++] = item;
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	return true;
}

bool config_strlist_has(const struct sp_strlist *list, const char *s)
{
	for (size_t i = 0; i < list->count; i++) {
		if (strcmp(list->items[i], s) == 0)
			return true;
	}
	return false;
}

/* A list of distinct order statuses (at least `min` of them). */
bool config_value_statuses(struct load_state *st, const struct key_desc *k, const char *text)
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
	struct sp_strlist *f = config_field(st, k);
	strlist_free(f);
	*f = list;
	return true;
}

/* qsort order of durations: the longest first. */
static int cmp_desc(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* Distinct durations within the key's bounds, stored sorted from the longest. */
bool config_value_thresholds(struct load_state *st, const struct key_desc *k, const char *text)
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

void config_value_free(const struct key_desc *k, struct sp_config *cfg)
{
	void *f = (char *)cfg + k->offset;
	if (k->parse == config_value_statuses)
		strlist_free(f);
	else if (k->parse == config_value_conninfo || k->parse == config_value_relation ||
	         k->parse == config_value_url || k->parse == config_value_merchant_key ||
	         k->parse == config_value_path || k->parse == config_value_origin ||
	         k->parse == config_value_user_agent || k->parse == config_value_instance_name ||
	         k->parse == config_value_listen)
		free(*(char **)f);
}
