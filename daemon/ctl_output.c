#include "autoconfig.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ctl_common.h"
#include "money.h"

/* Writes "smartpayctl: " + the formatted message + newline on stderr. */
static void verror(const char *fmt, va_list ap)
{
	fputs(CTL_PROGRAM ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void ctl_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror(fmt, ap);
	va_end(ap);
}

int ctl_usage_error(const struct ctl_command *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror(fmt, ap);
	va_end(ap);
	ctl_print_usage(stderr, cmd, false);
	return CTL_EXIT_USAGE;
}

void ctl_print_usage(FILE *out, const struct ctl_command *cmd, bool help)
{
	fprintf(out, "usage: " CTL_PROGRAM " [-c FILE] [--json] %s%s%s\n", cmd->name,
	        cmd->usage[0] != '\0' ? " " : "", cmd->usage);
	if (help)
		fprintf(out, "  %s\n", cmd->help);
}

void ctl_print_json(struct json_object *doc)
{
	puts(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
	                                             JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(doc);
}

int ctl_rows_shown(const PGresult *res, long long limit, bool *truncated)
{
	*truncated = PQntuples(res) > limit;
	return *truncated ? (int)limit : PQntuples(res);
}

void ctl_print_json_list(const PGresult *res, const char *key, int shown, bool truncated,
                         bool amounts)
{
	struct json_object *doc = json_object_new_object();
	struct json_object *list = json_object_new_array();
	for (int row = 0; row < shown; row++) {
		struct json_object *obj = ctl_json_row(res, row);
		if (amounts)
			ctl_json_add_amount(obj);
		json_object_array_add(list, obj);
	}
	json_object_object_add(doc, key, list);
	json_object_object_add(doc, "count", json_object_new_int(shown));
	json_object_object_add(doc, "truncated", json_object_new_boolean(truncated));
	ctl_print_json(doc);
}

void ctl_print_truncated(long long limit)
{
	printf("(the newest %lld shown; more match: raise --limit)\n", limit);
}

const char *ctl_value(const PGresult *res, int row, int col)
{
	if (col < 0 || PQgetisnull(res, row, col))
		return NULL;
	return PQgetvalue(res, row, col);
}

/* Type OIDs of the built-in types (fixed in PostgreSQL's catalog, pg_type.dat). */
enum {
	OID_BOOL = 16,
	OID_INT8 = 20,
	OID_INT2 = 21,
	OID_INT4 = 23,
	OID_JSON = 114,
	OID_JSONB = 3802,
	OID_TIMESTAMPTZ = 1184,
};

/* RFC 3339 text with milliseconds of a timestamptz in the session's ISO form at UTC
 * ("2025-01-31 12:00:00.123456+00" -> "2025-01-31T12:00:00.123Z"); other forms
 * (infinity, years past 9999) are kept as they are. */
static struct json_object *json_time(const char *value)
{
	char ms[4] = "000";
	const char *p = value + 19;

	if (strlen(value) < 22 || value[10] != ' ')
		return json_object_new_string(value);
	if (*p == '.') {
		for (int i = 0; i < 3 && p[1 + i] >= '0' && p[1 + i] <= '9'; i++)
			ms[i] = p[1 + i];
		p += 1 + strspn(p + 1, "0123456789");
	}
	if (strcmp(p, "+00") != 0)
		return json_object_new_string(value);
	char text[32];
	snprintf(text, sizeof(text), "%.10sT%.8s.%sZ", value, value + 11, ms);
	return json_object_new_string(text);
}

struct json_object *ctl_json_value(const PGresult *res, int row, int col)
{
	const char *value = ctl_value(res, row, col);

	if (value == NULL)
		return NULL;
	switch (PQftype(res, col)) {
	case OID_BOOL:
		return json_object_new_boolean(strcmp(value, "t") == 0);
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
		return json_object_new_int64(strtoll(value, NULL, 10));
	case OID_TIMESTAMPTZ:
		return json_time(value);
	case OID_JSON:
	case OID_JSONB: {
		struct json_object *parsed = json_tokener_parse(value);
		return parsed != NULL ? parsed : json_object_new_string(value);
	}
	default:
		return json_object_new_string(value);
	}
}

struct json_object *ctl_json_row(const PGresult *res, int row)
{
	struct json_object *obj = json_object_new_object();

	for (int col = 0; col < PQnfields(res); col++)
		json_object_object_add(obj, PQfname(res, col), ctl_json_value(res, row, col));
	return obj;
}

bool ctl_money_text(const char *minor, const char *currency, char out[32])
{
	long long value;

	out[0] = '\0';
	if (minor == NULL || currency == NULL ||
	    !ctl_parse_int(minor, INT64_MIN, INT64_MAX, &value))
		return false;
	char text[MONEY_TEXT_MAX];
	if (!money_format(value, currency, text))
		return false;
	snprintf(out, 32, "%s", text);
	return true;
}

void ctl_json_add_amount(struct json_object *obj)
{
	struct json_object *minor = NULL, *currency = NULL;
	char text[32];

	if (json_object_object_get_ex(obj, "amount_minor", &minor) && minor != NULL &&
	    json_object_object_get_ex(obj, "currency", &currency) && currency != NULL) {
		char digits[32];
		snprintf(digits, sizeof(digits), "%lld", (long long)json_object_get_int64(minor));
		if (ctl_money_text(digits, json_object_get_string(currency), text)) {
			json_object_object_add(obj, "amount", json_object_new_string(text));
			return;
		}
	}
	json_object_object_add(obj, "amount", NULL);
}

void ctl_print_modification_json(const PGresult *res, const char *drop, const char *key,
                                 const char *value)
{
	struct json_object *doc = json_object_new_object();
	struct json_object *m = ctl_json_row(res, 0);
	if (drop != NULL)
		json_object_object_del(m, drop);
	ctl_json_add_amount(m);
	json_object_object_add(doc, "modification", m);
	if (key != NULL)
		json_object_object_add(doc, key, json_object_new_string(value));
	ctl_print_json(doc);
}

const char *ctl_time_human(const char *value, char out[32])
{
	if (value == NULL)
		snprintf(out, 32, "-");
	else if (strlen(value) >= 22 && value[10] == ' ' && strstr(value + 19, "+00") != NULL)
		snprintf(out, 32, "%.19sZ", value); /* "2025-01-31 12:00:00.123+00" */
	else
		snprintf(out, 32, "%s", value);
	return out;
}

const char *ctl_duration_human(long long seconds, char out[DURATION_TEXT_SIZE])
{
	int64_t ms = seconds > INT64_MAX / 1000   ? INT64_MAX
	             : seconds < INT64_MIN / 1000 ? INT64_MIN
	                                          : (int64_t)seconds * 1000;

	return duration_format(ms, DURATION_HUMAN, out);
}

const char *ctl_amount_human(const char *minor, const char *currency, char out[48])
{
	char text[32];

	if (ctl_money_text(minor, currency, text))
		snprintf(out, 48, "%s %s", text, currency);
	else if (minor != NULL)
		snprintf(out, 48, "%s minor units %s", minor, currency ? currency : "");
	else
		snprintf(out, 48, "-");
	return out;
}

/* The alerts table's cell of `field` (`flag`: the summarised flag as yes or no). */
static const char *alert_cell(const PGresult *res, int row, int field, bool flag, char out[32])
{
	const char *value = ctl_value(res, row, field);
	if (value == NULL)
		return NULL;
	if (flag)
		return strcmp(value, "t") == 0 ? "yes" : "no";
	if (strcmp(PQfname(res, field), "created_at") == 0 ||
	    strcmp(PQfname(res, field), "acknowledged_at") == 0)
		return ctl_time_human(value, out);
	return value;
}

void ctl_print_alerts(const PGresult *res, int rows, bool acknowledged, const char *indent)
{
	static const struct {
		const char *header, *field;
		bool acknowledged; /* shown only with `acknowledged` */
	} all[] = {
	    {"ID", "alert_id", false},       {"CREATED", "created_at", false},
	    {"SEVERITY", "severity", false}, {"KIND", "kind", false},
	    {"ORDER", "order_id", false},    {"ACKNOWLEDGED", "acknowledged_at", true},
	    {"BY", "acknowledged_by", true}, {"SUMMARISED", "summarised", false},
	    {"MESSAGE", "message", false},
	};
	enum { NALL = sizeof(all) / sizeof(all[0]) };
	const char *headers[NALL];
	int fields[NALL];
	size_t n = 0;

	for (size_t i = 0; i < NALL; i++) {
		int field = PQfnumber(res, all[i].field);
		/* summarised only where the query has it (the alerts listing) */
		if ((all[i].acknowledged && !acknowledged) ||
		    (field < 0 && strcmp(all[i].field, "summarised") == 0))
			continue;
		headers[n] = all[i].header;
		fields[n++] = field;
	}
	struct ctl_table *t = ctl_table_new(n, headers);
	ctl_table_align_right(t, 0);
	for (int row = 0; row < rows && row < PQntuples(res); row++) {
		char text[NALL][32];
		const char *cells[NALL];
		for (size_t c = 0; c < n; c++)
			cells[c] = alert_cell(res, row, fields[c],
			                      strcmp(headers[c], "SUMMARISED") == 0, text[c]);
		ctl_table_add(t, cells);
	}
	ctl_table_print(t, indent);
	ctl_table_free(t);
}
