#include "autoconfig.h"

#include "classify.h"

#include "trim.h"
#include "xmalloc.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Static reason strings for every status 100..599 ("http 503"), and for the refused
 * 4xx ("refused: http 422"), built by the preprocessor so reasons need no storage. */
#define CL_HTTP(n) "http " #n
#define CL_REFUSED(n) "refused: http " #n
#define CL_D10(M, p)                                                                               \
	M(p##0), M(p##1), M(p##2), M(p##3), M(p##4), M(p##5), M(p##6), M(p##7), M(p##8), M(p##9)
#define CL_D100(M, p)                                                                              \
	CL_D10(M, p##0), CL_D10(M, p##1), CL_D10(M, p##2), CL_D10(M, p##3), CL_D10(M, p##4),       \
	    CL_D10(M, p##5), CL_D10(M, p##6), CL_D10(M, p##7), CL_D10(M, p##8), CL_D10(M, p##9)

static const char *const http_text[] = {CL_D100(CL_HTTP, 1), CL_D100(CL_HTTP, 2),
                                        CL_D100(CL_HTTP, 3), CL_D100(CL_HTTP, 4),
                                        CL_D100(CL_HTTP, 5)};
static const char *const refused_text[] = {CL_D100(CL_REFUSED, 4)};

const char *verdict_name(enum verdict o)
{
	switch (o) {
	case VERDICT_ACCEPTED:
		return "accepted";
	case VERDICT_REFUSED:
		return "refused";
	case VERDICT_UNKNOWN:
		return "unknown";
	case VERDICT_AUTH_REJECTED:
		return "auth_rejected";
	}
	return "invalid";
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Reads exactly n digits into *v; advances *p. */
static bool read_digits(const char **p, int n, int *v)
{
	int x = 0;

	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return false;
		x = x * 10 + (c - '0');
	}
	*p += n;
	*v = x;
	return true;
}

/* Consumes the literal text lit; false when it is not next. */
static bool read_lit(const char **p, const char *lit)
{
	size_t n = strlen(lit);

	if (strncmp(*p, lit, n) != 0)
		return false;
	*p += n;
	return true;
}

/* Reads a three-letter English month abbreviation into 1..12. */
static bool read_month(const char **p, int *month)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

	for (int i = 0; i < 12; i++) {
		if (strncmp(*p, months + 3 * i, 3) == 0) {
			*p += 3;
			*month = i + 1;
			return true;
		}
	}
	return false;
}

/* Reads "HH:MM:SS" into seconds of the day. */
static bool read_time(const char **p, int *secs)
{
	int h, m, s;

	if (!read_digits(p, 2, &h) || !read_lit(p, ":") || !read_digits(p, 2, &m) ||
	    !read_lit(p, ":") || !read_digits(p, 2, &s))
		return false;
	if (h > 23 || m > 59 || s > 60)
		return false;
	*secs = h * 3600 + m * 60 + s;
	return true;
}

/* Reads a weekday name, short ("Sun") or long ("Sunday"). */
static bool read_weekday(const char **p, bool *is_long)
{
	static const char *const days[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
	                                   "Friday", "Saturday", "Sunday"};

	for (int i = 0; i < 7; i++) {
		if (strncmp(*p, days[i], strlen(days[i])) == 0) {
			*p += strlen(days[i]);
			*is_long = true;
			return true;
		}
	}
	for (int i = 0; i < 7; i++) {
		if (strncmp(*p, days[i], 3) == 0) {
			*p += 3;
			*is_long = false;
			return true;
		}
	}
	return false;
}

/* Parses an HTTP-date (RFC 9110 section 5.6.7) into unix seconds. */
static bool parse_http_date(const char *s, int64_t *unix_s)
{
	const char *p = s;
	bool is_long;
	int day, month, year, secs;

	if (!read_weekday(&p, &is_long))
		return false;
	if (!is_long && read_lit(&p, ", ")) {
		/* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
		if (!read_digits(&p, 2, &day) || !read_lit(&p, " ") || !read_month(&p, &month) ||
		    !read_lit(&p, " ") || !read_digits(&p, 4, &year) || !read_lit(&p, " ") ||
		    !read_time(&p, &secs) || !read_lit(&p, " GMT"))
			return false;
	} else if (is_long && read_lit(&p, ", ")) {
		/* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
		if (!read_digits(&p, 2, &day) || !read_lit(&p, "-") || !read_month(&p, &month) ||
		    !read_lit(&p, "-") || !read_digits(&p, 2, &year) || !read_lit(&p, " ") ||
		    !read_time(&p, &secs) || !read_lit(&p, " GMT"))
			return false;
		year += year < 70 ? 2000 : 1900;
	} else if (!is_long && read_lit(&p, " ")) {
		/* asctime: Sun Nov  6 08:49:37 1994 */
		if (!read_month(&p, &month) || !read_lit(&p, " "))
			return false;
		if (*p == ' ') {
			p++;
			if (!read_digits(&p, 1, &day))
				return false;
		} else if (!read_digits(&p, 2, &day)) {
			return false;
		}
		if (!read_lit(&p, " ") || !read_time(&p, &secs) || !read_lit(&p, " ") ||
		    !read_digits(&p, 4, &year))
			return false;
	} else {
		return false;
	}
	if (*p != '\0' || day < 1 || day > 31)
		return false;
	*unix_s = days_from_civil(year, month, day) * 86400 + secs;
	return true;
}

int64_t classify_retry_after(const char *value, int64_t now_ms)
{
	char buf[64];
	size_t start, end;
	int64_t ms;

	if (value == NULL)
		return -1;
	end = strlen(value);
	start = trim_start_len(value, end, " \t");
	end = start + trim_end_len(value + start, end - start, " \t\r\n");
	if (end == start || end - start >= sizeof(buf))
		return -1;
	memcpy(buf, value + start, end - start);
	buf[end - start] = '\0';

	if (strspn(buf, "0123456789") == end - start) {
		int64_t secs = 0;
		for (const char *p = buf; *p != '\0'; p++) {
			secs = secs * 10 + (*p - '0');
			if (secs > CLASSIFY_RETRY_AFTER_MAX_MS / 1000)
				return CLASSIFY_RETRY_AFTER_MAX_MS;
		}
		return secs * 1000;
	}
	{
		int64_t at_s;
		if (!parse_http_date(buf, &at_s))
			return -1;
		if (at_s > (INT64_MAX - 999) / 1000)
			return CLASSIFY_RETRY_AFTER_MAX_MS;
		ms = at_s * 1000 - now_ms;
	}
	if (ms < 0)
		return 0;
	if (ms > CLASSIFY_RETRY_AFTER_MAX_MS)
		return CLASSIFY_RETRY_AFTER_MAX_MS;
	return ms;
}

/* Statuses whose 4xx meaning is "try again later" rather than "this request is wrong". */
static bool is_transient_4xx(int status)
{
	switch (status) {
	case 408: /* Request Timeout */
	case 409: /* Conflict: e.g. the same modificationId still being processed */
	case 421: /* Misdirected Request: retry on another connection */
	case 425: /* Too Early */
	case 429: /* Too Many Requests */
		return true;
	default:
		return false;
	}
}

/* The modification a type or a status belongs to. */
enum family { FAM_NONE, FAM_CAPTURE, FAM_CANCEL, FAM_REFUND };

/* Spellings this long or longer are compared from the heap; shorter ones (every one the
 * tables hold) from the stack, without an allocation per answer. */
#define CLASSIFY_SPELLING_STACK 64

/* Looks a spelling up in a table of canonical {text, family} (ASCII upper case,
 * CANCELED -> CANCELLED ...); FAM_NONE when absent. */
static enum family lookup(const char *s, const char *const *texts, const enum family *families,
                          size_t n)
{
	char upper_stack[CLASSIFY_SPELLING_STACK], canon_stack[2 * CLASSIFY_SPELLING_STACK + 1];
	size_t len = strlen(s);
	bool small = len < sizeof(upper_stack);
	char *upper = small ? upper_stack : xmalloc(len + 1);
	char *canon = canon_stack;
	enum family f = FAM_NONE;

	for (size_t i = 0; i <= len; i++)
		upper[i] = s[i] >= 'a' && s[i] <= 'z' ? (char)(s[i] - 'a' + 'A') : s[i];
	if (!response_normalise_status_into(upper, canon_stack, sizeof(canon_stack)))
		canon = response_normalise_status(upper);
	for (size_t i = 0; i < n && f == FAM_NONE; i++)
		if (strcmp(canon, texts[i]) == 0)
			f = families[i];
	if (canon != canon_stack)
		free(canon);
	if (!small)
		free(upper);
	return f;
}

/* The modification a modificationData.type names. */
static enum family type_family(const char *type)
{
	static const char *const texts[] = {"CAPTURE", "CANCELLATION", "REFUND"};
	static const enum family families[] = {FAM_CAPTURE, FAM_CANCEL, FAM_REFUND};

	return lookup(type, texts, families, sizeof(texts) / sizeof(texts[0]));
}

/* The modification a status confirms, FAM_NONE when it confirms none. */
static enum family status_family(const char *status)
{
	static const char *const texts[] = {"CAPTURED",      "CAPTURE_PENDING",      "SETTLED",
	                                    "CANCELLED",     "CANCELLATION_PENDING", "REFUNDED",
	                                    "REFUND_PENDING"};
	static const enum family families[] = {FAM_CAPTURE, FAM_CAPTURE, FAM_CAPTURE, FAM_CANCEL,
	                                       FAM_CANCEL,  FAM_REFUND,  FAM_REFUND};

	return lookup(status, texts, families, sizeof(texts) / sizeof(texts[0]));
}

/* Whether a modification of `kind` can be one of family f. */
static bool kind_allows(enum mod_kind kind, enum family f)
{
	switch (kind) {
	case MOD_CAPTURE:
		return f == FAM_CAPTURE;
	case MOD_CANCEL:
		return f == FAM_CANCEL;
	case MOD_REFUND:
		return f == FAM_REFUND;
	case MOD_CANCEL_OR_REFUND:
		return f == FAM_CANCEL || f == FAM_REFUND;
	}
	return false;
}

const char *classify_confirms(enum mod_kind kind, const char *type, const char *status)
{
	enum family tf = FAM_NONE, sf;

	if (type != NULL) {
		tf = type_family(type);
		if (!kind_allows(kind, tf))
			return CLASSIFY_UNCONFIRMED_WRONG_TYPE;
	}
	if (status == NULL)
		return CLASSIFY_UNCONFIRMED_NO_STATUS;
	sf = status_family(status);
	if (!kind_allows(kind, sf) || (type != NULL && sf != tf))
		return CLASSIFY_UNCONFIRMED_STATUS;
	return NULL;
}

/* Why a 2xx body does not confirm a modification of `kind`, or NULL when it does. */
static const char *unconfirmed_why(const struct gw_response *body, enum mod_kind kind)
{
	if (body == NULL)
		return CLASSIFY_UNCONFIRMED_NOT_JSON;
	if (body->has_error)
		return CLASSIFY_UNCONFIRMED_ERROR;
	if (body->modification_entries == 0)
		return CLASSIFY_UNCONFIRMED_NO_ENTRY;
	if (body->entries_disagree)
		return CLASSIFY_UNCONFIRMED_DISAGREE;
	return classify_confirms(kind, body->modification_type, body->modification_status);
}

void classify_answer(int http_status, bool transport_error, bool timed_out,
                     const struct gw_response *body, enum mod_kind kind, const char *retry_after,
                     int64_t now_ms, struct classification *out)
{
	out->retry_after_ms = classify_retry_after(retry_after, now_ms);
	out->verdict = VERDICT_UNKNOWN;
	out->unconfirmed = NULL;
	if (timed_out) {
		out->reason = "timeout";
	} else if (transport_error) {
		out->reason = "connection error";
	} else if (http_status == 0) {
		out->reason = "no answer";
	} else if (http_status < 100 || http_status > 599) {
		out->reason = "invalid http status";
	} else if (http_status >= 200 && http_status <= 299) {
		out->reason = http_text[http_status - 100];
		out->unconfirmed = unconfirmed_why(body, kind);
		if (out->unconfirmed == NULL)
			out->verdict = VERDICT_ACCEPTED;
	} else if (http_status == 401 || http_status == 407) {
		out->verdict = VERDICT_AUTH_REJECTED;
		out->reason = http_status == 401 ? "credentials rejected: http 401"
		                                 : "credentials rejected: http 407";
	} else if (http_status >= 400 && http_status <= 499 && !is_transient_4xx(http_status)) {
		out->verdict = VERDICT_REFUSED;
		out->reason = refused_text[http_status - 400];
	} else {
		out->reason = http_text[http_status - 100];
	}
}
