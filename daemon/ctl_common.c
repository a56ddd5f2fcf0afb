#include "autoconfig.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "config.h"
#include "ctl_common.h"
#include "money.h"
#include "store_session.h"
#include "uuid.h"
#include "xmalloc.h"

#define CTL_PROGRAM "smartpayctl"

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
	fprintf(stderr, "usage: " CTL_PROGRAM " [-c FILE] [--json] %s%s%s\n", cmd->name,
	        cmd->usage[0] != '\0' ? " " : "", cmd->usage);
	return CTL_EXIT_USAGE;
}

int ctl_load_config(struct ctl_context *ctx)
{
	char *errors = NULL;

	if (ctx->cfg != NULL)
		return CTL_EXIT_OK;
	if (!config_load(ctx->config_path, &ctx->cfg, &errors)) {
		/* one "FILE:LINE: key: reason" per line, as smartpayd --check-config prints */
		fputs(errors ? errors : "configuration error\n", stderr);
		if (errors != NULL && errors[0] != '\0' && errors[strlen(errors) - 1] != '\n')
			fputc('\n', stderr);
		free(errors);
		ctx->cfg = NULL;
		return CTL_EXIT_USAGE;
	}
	return CTL_EXIT_OK;
}

/* Prints the server's NOTICE/WARNING messages on stderr with the program's prefix. */
static void print_notice(void *arg, const char *message)
{
	fprintf(stderr, CTL_PROGRAM ": %s", message);
}

int ctl_connect(struct ctl_context *ctx)
{
	int rc = ctl_load_config(ctx);

	if (rc != CTL_EXIT_OK)
		return rc;
	if (ctx->conn != NULL)
		return CTL_EXIT_OK;

	/* dbname with expand_dbname takes a whole conninfo string or URI; an empty one
	 * leaves libpq's defaults (PGHOST, ...) in force */
	const char *const keywords[] = {"dbname", "fallback_application_name", NULL};
	const char *const values[] = {ctx->cfg->db_conninfo, CTL_PROGRAM, NULL};
	ctx->conn = PQconnectdbParams(keywords, values, 1);
	if (ctx->conn == NULL) {
		ctl_error("database: out of memory");
		return CTL_EXIT_FAILURE;
	}
	if (PQstatus(ctx->conn) != CONNECTION_OK) {
		char *why = PQerrorMessage(ctx->conn);
		size_t len = strlen(why);
		while (len > 0 && why[len - 1] == '\n')
			len--;
		ctl_error("database: %.*s", (int)len, why);
		PQfinish(ctx->conn);
		ctx->conn = NULL;
		return CTL_EXIT_FAILURE;
	}
	PQsetNoticeProcessor(ctx->conn, print_notice, NULL);
	/* the daemon's session settings (durable commits, statement_timeout), and every
	 * timestamp smartpayctl prints is UTC, in one known text form */
	char *setup = store_session_setup_sql(ctx->cfg->statement_timeout_ms);
	char *sql = xasprintf("%s; SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'", setup);
	PGresult *res = PQexec(ctx->conn, sql);
	free(sql);
	free(setup);
	bool ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		ctl_error("database: %s", res ? PQresultErrorMessage(res) : "out of memory");
	PQclear(res);
	return ok ? CTL_EXIT_OK : CTL_EXIT_FAILURE;
}

void ctl_print_json(struct json_object *doc)
{
	puts(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
	                                             JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(doc);
}

void ctl_context_free(struct ctl_context *ctx)
{
	if (ctx->conn != NULL)
		PQfinish(ctx->conn);
	ctx->conn = NULL;
	if (ctx->cfg != NULL)
		config_free(ctx->cfg);
	ctx->cfg = NULL;
}

/* ---- helpers for the commands' queries and output ---- */

int ctl_parse_options(struct ctl_context *ctx, const struct ctl_command *cmd, int argc, char **argv,
                      const char *shortopts, const struct option *extra,
                      int (*on_option)(struct ctl_context *ctx, int opt, const char *optarg,
                                       void *arg),
                      void *arg, int *optind_out)
{
	size_t n = 0;
	while (extra != NULL && extra[n].name != NULL)
		n++;
	struct option *options = xcalloc(n + 3, sizeof(*options));
	if (n > 0)
		memcpy(options, extra, n * sizeof(*options));
	options[n] = (struct option){"json", no_argument, NULL, 'j'};
	options[n + 1] = (struct option){"help", no_argument, NULL, 'h'};
	/* '+': stop at the first operand; ':': report problems here, not from getopt */
	char *shorts = xasprintf("+:%sjh", shortopts ? shortopts : "");
	int rc = CTL_EXIT_OK, opt;

	optind = 0;
	opterr = 0;
	while (rc == CTL_EXIT_OK && (opt = getopt_long(argc, argv, shorts, options, NULL)) != -1) {
		switch (opt) {
		case 'j':
			ctx->json = true;
			break;
		case 'h':
			printf("usage: " CTL_PROGRAM " [-c FILE] [--json] %s%s%s\n  %s\n",
			       cmd->name, cmd->usage[0] != '\0' ? " " : "", cmd->usage, cmd->help);
			rc = CTL_HELP_SHOWN;
			break;
		case ':':
			rc = ctl_usage_error(cmd, "%s: option '%s' needs a value", cmd->name,
			                     argv[optind - 1]);
			break;
		case '?':
			if (optopt != 0)
				rc = ctl_usage_error(cmd, "%s: unknown option '-%c'", cmd->name,
				                     optopt);
			else
				rc = ctl_usage_error(cmd, "%s: unknown option '%s'", cmd->name,
				                     argv[optind - 1]);
			break;
		default:
			rc = on_option != NULL ? on_option(ctx, opt, optarg, arg) : CTL_EXIT_USAGE;
			break;
		}
	}
	*optind_out = optind;
	free(shorts);
	free(options);
	return rc;
}

bool ctl_begin(struct ctl_context *ctx, const struct ctl_command *cmd, int argc, char **argv,
               const char *shortopts, const struct option *extra,
               int (*on_option)(struct ctl_context *ctx, int opt, const char *optarg, void *arg),
               void *arg, int *rc)
{
	int first;
	*rc = ctl_parse_options(ctx, cmd, argc, argv, shortopts, extra, on_option, arg, &first);
	if (*rc == CTL_EXIT_OK && first < argc)
		*rc = ctl_usage_error(cmd, "%s: unexpected argument '%s'", cmd->name, argv[first]);
	if (*rc == CTL_EXIT_OK)
		*rc = ctl_connect(ctx);
	if (*rc == CTL_HELP_SHOWN)
		*rc = CTL_EXIT_OK;
	else if (*rc == CTL_EXIT_OK)
		return true;
	return false;
}

bool ctl_begin_with_id(struct ctl_context *ctx, const struct ctl_command *cmd, int argc,
                       char **argv, const char **id, int *rc)
{
	int first;
	*rc = ctl_parse_options(ctx, cmd, argc, argv, "", NULL, NULL, NULL, &first);
	if (*rc == CTL_EXIT_OK && argc - first != 1)
		*rc = ctl_usage_error(cmd, "%s: expected one modification id", cmd->name);
	if (*rc == CTL_EXIT_OK && !uuid_valid(argv[first]))
		*rc = ctl_usage_error(cmd, "%s: '%s' is not a modification id (a UUID)", cmd->name,
		                      argv[first]);
	if (*rc == CTL_EXIT_OK)
		*rc = ctl_connect(ctx);
	if (*rc == CTL_HELP_SHOWN)
		*rc = CTL_EXIT_OK;
	else if (*rc == CTL_EXIT_OK) {
		*id = argv[first];
		return true;
	}
	return false;
}

int ctl_parse_limit(const struct ctl_command *cmd, const char *value, long long max,
                    long long *limit)
{
	if (!ctl_parse_int(value, 1, max, limit))
		return ctl_usage_error(cmd, "%s: --limit wants a number from 1 to %lld", cmd->name,
		                       max);
	return CTL_EXIT_OK;
}

void ctl_limit_text(long long limit, char out[32])
{
	snprintf(out, 32, "%lld", limit + 1);
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

PGresult *ctl_exec(struct ctl_context *ctx, const char *sql, int nparams, const char *const *params)
{
	PGresult *res = PQexecParams(ctx->conn, sql, nparams, NULL, params, NULL, NULL, 0);

	if (res == NULL)
		res = PQmakeEmptyPGresult(ctx->conn, PGRES_FATAL_ERROR);
	if (res == NULL) {
		ctl_error("out of memory");
		exit(CTL_EXIT_FAILURE);
	}
	return res;
}

bool ctl_failed(const PGresult *res)
{
	ExecStatusType status = PQresultStatus(res);
	return status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK;
}

const char *ctl_sqlstate(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	return state != NULL ? state : "";
}

/* Prints `text` without its trailing newlines after the prefix. */
static void print_trimmed(const char *prefix, const char *text)
{
	size_t len = strlen(text);

	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
		len--;
	fprintf(stderr, "%s%.*s\n", prefix, (int)len, text);
}

void ctl_report(struct ctl_context *ctx, const char *what, const PGresult *res)
{
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	const char *state = ctl_sqlstate(res);
	char *prefix =
	    what != NULL ? xasprintf(CTL_PROGRAM ": %s: ", what) : xstrdup(CTL_PROGRAM ": ");

	if (primary != NULL)
		print_trimmed(prefix, primary);
	else if (PQresultErrorMessage(res)[0] != '\0')
		print_trimmed(prefix, PQresultErrorMessage(res));
	else if (ctx->conn != NULL && PQerrorMessage(ctx->conn)[0] != '\0')
		print_trimmed(prefix, PQerrorMessage(ctx->conn));
	else
		fprintf(stderr, "%sunexpected result %s\n", prefix,
		        PQresStatus(PQresultStatus(res)));
	if (detail != NULL)
		print_trimmed("  DETAIL: ", detail);
	if (hint != NULL)
		print_trimmed("  HINT: ", hint);
	/* undefined table, column or function: a database that was not migrated (or is older
	 * than this smartpayctl) */
	if (strcmp(state, "42P01") == 0 || strcmp(state, "42703") == 0 ||
	    strcmp(state, "42883") == 0 || strcmp(state, "3F000") == 0)
		fputs("  HINT: is the schema up to date? Run: " CTL_PROGRAM " migrate\n", stderr);
	free(prefix);
}

PGresult *ctl_query(struct ctl_context *ctx, const char *what, const char *sql, int nparams,
                    const char *const *params)
{
	PGresult *res = ctl_exec(ctx, sql, nparams, params);

	if (!ctl_failed(res))
		return res;
	ctl_report(ctx, what, res);
	PQclear(res);
	return NULL;
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

const char *ctl_duration_human(long long seconds, char out[32])
{
	const char *sign = seconds < 0 ? "-" : "";
	unsigned long long s =
	    seconds < 0 ? 0ULL - (unsigned long long)seconds : (unsigned long long)seconds;
	unsigned long long big, small;
	char big_unit, small_unit;

	if (s < 60) {
		snprintf(out, 32, "%s%llus", sign, s);
		return out;
	}
	if (s < 3600) {
		big = s / 60, small = s % 60, big_unit = 'm', small_unit = 's';
	} else if (s < 48 * 3600) {
		big = s / 3600, small = s % 3600 / 60, big_unit = 'h', small_unit = 'm';
	} else {
		big = s / 86400, small = s % 86400 / 3600, big_unit = 'd', small_unit = 'h';
	}
	if (small == 0)
		snprintf(out, 32, "%s%llu%c", sign, big, big_unit);
	else
		snprintf(out, 32, "%s%llu%c %llu%c", sign, big, big_unit, small, small_unit);
	return out;
}

bool ctl_parse_int(const char *text, long long min, long long max, long long *out)
{
	char *end;

	if (text == NULL || text[0] == '\0' || text[0] == ' ' || text[0] == '+')
		return false;
	errno = 0;
	long long value = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0' || value < min || value > max)
		return false;
	*out = value;
	return true;
}

struct ctl_table {
	size_t ncols;
	bool header;  /* the first row holds the headers */
	size_t nrows; /* header row included */
	size_t cap;
	char **cells; /* nrows * ncols */
	bool *right;  /* per column */
};

struct ctl_table *ctl_table_new(size_t ncols, const char *const *headers)
{
	struct ctl_table *t = xcalloc(1, sizeof(*t));

	t->ncols = ncols;
	t->right = xcalloc(ncols, sizeof(*t->right));
	if (headers != NULL) {
		ctl_table_add(t, headers);
		t->header = true;
	}
	return t;
}

void ctl_table_align_right(struct ctl_table *t, size_t col)
{
	if (col < t->ncols)
		t->right[col] = true;
}

void ctl_table_add(struct ctl_table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 8;
		t->cells = xrealloc(t->cells, t->cap * t->ncols * sizeof(*t->cells));
	}
	for (size_t c = 0; c < t->ncols; c++)
		t->cells[t->nrows * t->ncols + c] = xstrdup(cells[c] != NULL ? cells[c] : "-");
	t->nrows++;
}

size_t ctl_table_rows(const struct ctl_table *t)
{
	return t->nrows - (t->header ? 1 : 0);
}

/* Width of UTF-8 text in characters (continuation bytes do not count). */
static size_t text_width(const char *s)
{
	size_t width = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			width++;
	return width;
}

void ctl_table_print(const struct ctl_table *t, const char *indent)
{
	size_t *width = xcalloc(t->ncols, sizeof(*width));

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t w = text_width(t->cells[r * t->ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		fputs(indent != NULL ? indent : "", stdout);
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			size_t pad = width[c] - text_width(cell);
			bool last = c + 1 == t->ncols;
			if (t->right[c])
				printf("%*s%s", (int)pad, "", cell);
			else
				printf("%s%*s", cell, last ? 0 : (int)pad, "");
			fputs(last ? "\n" : "  ", stdout);
		}
	}
	free(width);
}

void ctl_table_free(struct ctl_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->right);
	free(t);
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

void ctl_print_alerts(const PGresult *res, int rows, bool acknowledged, const char *indent)
{
	static const char *const headers[] = {"ID",    "CREATED",      "SEVERITY", "KIND",
	                                      "ORDER", "ACKNOWLEDGED", "BY",       "MESSAGE"};
	const char *const *h = headers;
	struct ctl_table *t;
	const int cols[] = {PQfnumber(res, "alert_id"),        PQfnumber(res, "created_at"),
	                    PQfnumber(res, "severity"),        PQfnumber(res, "kind"),
	                    PQfnumber(res, "order_id"),        PQfnumber(res, "acknowledged_at"),
	                    PQfnumber(res, "acknowledged_by"), PQfnumber(res, "message")};

	if (acknowledged) {
		t = ctl_table_new(8, h);
	} else {
		const char *const short_headers[] = {h[0], h[1], h[2], h[3], h[4], h[7]};
		t = ctl_table_new(6, short_headers);
	}
	ctl_table_align_right(t, 0);
	for (int row = 0; row < rows && row < PQntuples(res); row++) {
		char created[32], acked[32];
		const char *cells[8];
		ctl_time_human(ctl_value(res, row, cols[1]), created);
		ctl_time_human(ctl_value(res, row, cols[5]), acked);
		cells[0] = ctl_value(res, row, cols[0]);
		cells[1] = created;
		cells[2] = ctl_value(res, row, cols[2]);
		cells[3] = ctl_value(res, row, cols[3]);
		cells[4] = ctl_value(res, row, cols[4]);
		if (acknowledged) {
			cells[5] = acked;
			cells[6] = ctl_value(res, row, cols[6]);
			cells[7] = ctl_value(res, row, cols[7]);
		} else {
			cells[5] = ctl_value(res, row, cols[7]);
		}
		ctl_table_add(t, cells);
	}
	ctl_table_print(t, indent);
	ctl_table_free(t);
}

int ctl_request(struct ctl_context *ctx, const char *what, const char *sql, int nparams,
                const char *const *params)
{
	PGresult *res = ctl_exec(ctx, sql, nparams, params);

	if (ctl_failed(res)) {
		/* the functions' own refusals (class SP, and 22001 for the reason) say what and
		 * why already */
		const char *state = ctl_sqlstate(res);
		bool refusal = strncmp(state, "SP", 2) == 0 || strcmp(state, "22001") == 0;
		ctl_report(ctx, refusal ? NULL : what, res);
		PQclear(res);
		return CTL_EXIT_FAILURE;
	}
	char *id = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);

	const char *p[1] = {id};
	res = ctl_query(ctx, what,
	                "SELECT r.request_id, r.order_id, r.kind, r.amount_minor, "
	                "r.currency::text AS currency, r.reason, r.requested_by, r.requested_at "
	                "FROM smartpay.requests r WHERE r.request_id = $1::bigint",
	                1, p);
	if (res == NULL || PQntuples(res) != 1) {
		if (res != NULL)
			ctl_error("%s: request %s was recorded but cannot be read back", what, id);
		PQclear(res);
		free(id);
		return CTL_EXIT_FAILURE;
	}
	if (ctx->json) {
		struct json_object *doc = ctl_json_row(res, 0);
		ctl_json_add_amount(doc);
		ctl_print_json(doc);
	} else {
		char amount[48];
		const char *minor = ctl_value(res, 0, 3);
		printf("%s request %s queued for order %s%s%s\n", PQgetvalue(res, 0, 2), id,
		       PQgetvalue(res, 0, 1), minor != NULL ? ": " : "",
		       minor != NULL ? ctl_amount_human(minor, ctl_value(res, 0, 4), amount) : "");
	}
	PQclear(res);
	free(id);
	return CTL_EXIT_OK;
}

/* The configured orders relation, each part quoted as an identifier. */
char *ctl_quoted_relation(struct ctl_context *ctx)
{
	const char *rel = ctx->cfg->orders_relation;
	const char *dot = strchr(rel, '.');
	char *schema = dot ? PQescapeIdentifier(ctx->conn, rel, (size_t)(dot - rel)) : NULL;
	char *name =
	    PQescapeIdentifier(ctx->conn, dot ? dot + 1 : rel, strlen(dot ? dot + 1 : rel));
	char *quoted = NULL;

	if (name != NULL && (dot == NULL || schema != NULL))
		quoted = dot ? xasprintf("%s.%s", schema, name) : xstrdup(name);
	PQfreemem(schema);
	PQfreemem(name);
	return quoted;
}
