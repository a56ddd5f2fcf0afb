/* Shared plumbing of smartpayctl's commands: the command table entry, configuration,
 * the blocking database connection, error messages and --json output.
 *
 * Adding a command: write daemon/ctl_NAME.c defining
 *     const struct ctl_command ctl_cmd_NAME = {"NAME", "ARGS", "one line of help", run};
 * declare it below, list it in the table of daemon/smartpayctl.c and add the file to
 * smartpayctl_SOURCES in daemon/local.mk. A handler parses its own arguments
 * (argv[0] is the command name; ctl_begin and ctl_begin_with_id do the usual ones and
 * connect), calls ctl_connect when it needs the database, prints
 * people's text on stdout or, when ctx->json, exactly one JSON document
 * (ctl_print_json), reports problems with ctl_error (always text on stderr) and
 * returns an enum ctl_exit value. main() frees the context. */
#ifndef SP_CTL_COMMON_H
#define SP_CTL_COMMON_H

#include <stdbool.h>

#include <libpq-fe.h>

struct json_object;
struct sp_config;

/* Exit codes, as for smartpayd: interfaces.md. */
enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_FAILURE = 1, /* runtime failure: database, SQL, a refused request */
	CTL_EXIT_USAGE = 2,   /* bad arguments or configuration */
	CTL_EXIT_DRIFT = 3,   /* reconcile: the ledger and the gateway differ */
};

/* What main() hands to a command. */
struct ctl_context {
	const char *config_path; /* -c FILE, else CONFIG_DEFAULT_PATH */
	bool json;               /* --json */
	struct sp_config *cfg;   /* set by ctl_load_config / ctl_connect; owned here */
	PGconn *conn;            /* set by ctl_connect; owned here */
};

struct ctl_command {
	const char *name;
	const char *usage; /* the arguments after the name, "" when none */
	const char *help;  /* one line for `smartpayctl --help` */
	int (*run)(struct ctl_context *ctx, int argc, char **argv);
};

/* The commands (one definition per daemon/ctl_*.c file or daemon/smartpayctl.c). */
extern const struct ctl_command ctl_cmd_migrate;
extern const struct ctl_command ctl_cmd_preview;
extern const struct ctl_command ctl_cmd_adopt;
extern const struct ctl_command ctl_cmd_rescan;
extern const struct ctl_command ctl_cmd_status;
extern const struct ctl_command ctl_cmd_list;
extern const struct ctl_command ctl_cmd_show;
extern const struct ctl_command ctl_cmd_retry;
extern const struct ctl_command ctl_cmd_dismiss;
extern const struct ctl_command ctl_cmd_refund;
extern const struct ctl_command ctl_cmd_cancel_or_refund;
extern const struct ctl_command ctl_cmd_alerts;
extern const struct ctl_command ctl_cmd_ack;
extern const struct ctl_command ctl_cmd_reconcile;

/* Prints "smartpayctl: MESSAGE" on stderr. */
void ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "smartpayctl: MESSAGE" and the command's usage line on stderr; returns
 * CTL_EXIT_USAGE for `return ctl_usage_error(...)`. */
int ctl_usage_error(const struct ctl_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Loads ctx->config_path into ctx->cfg (once). Returns CTL_EXIT_OK, or CTL_EXIT_USAGE
 * after printing every problem as "FILE:LINE: key: reason". */
int ctl_load_config(struct ctl_context *ctx);

/* Loads the configuration when needed and opens ctx->conn (blocking libpq) with
 * cfg->db_conninfo, application_name smartpayctl, server notices printed on stderr,
 * the daemon's session settings (store_session_setup_sql: synchronous_commit on, the
 * configured statement_timeout), and the session's TimeZone UTC and DateStyle ISO (what
 * ctl_json_value and ctl_time_human expect of timestamps).
 * Returns CTL_EXIT_OK, CTL_EXIT_USAGE (configuration) or CTL_EXIT_FAILURE (connection,
 * after printing why). */
int ctl_connect(struct ctl_context *ctx);

/* Prints `doc` on stdout as indented JSON followed by a newline, then releases it. */
void ctl_print_json(struct json_object *doc);

/* Closes the connection and frees the configuration. */
void ctl_context_free(struct ctl_context *ctx);

/* ---- helpers for the commands' queries and output ---- */

/* The columns every command shows of a modification `m`, named as in the JSON output
 * (amount is added from amount_minor and currency, see ctl_json_add_amount). */
#define CTL_SQL_MODIFICATION_COLUMNS                                                               \
	"m.modification_id::text AS modification_id, m.order_id, m.transaction_id, m.kind, "       \
	"m.state, m.amount_minor, m.currency::text AS currency, m.attempts, m.reason, "            \
	"m.request_id, m.next_attempt_at, m.deadline, m.created_at, m.updated_at, "                \
	"m.completed_at"

/* The columns every command shows of an alert `a`, named as in the JSON output. */
#define CTL_SQL_ALERT_COLUMNS                                                                      \
	"a.alert_id, a.kind, a.severity, a.order_id, a.modification_id::text AS modification_id, " \
	"a.message, a.created_at, a.acknowledged_at, a.acknowledged_by, a.webhook_state"

/* The usual options of a command: --json (same as the global one) and --help. Returns
 * CTL_EXIT_OK with *optind_out at the first operand, CTL_HELP_SHOWN after printing the
 * usage for --help, or a usage error (CTL_EXIT_USAGE). `extra` lists
 * the command's own options (may be NULL): for each one it calls `on_option(ctx, opt,
 * optarg, arg)`, which returns CTL_EXIT_OK or an exit code. */
struct option;
#define CTL_HELP_SHOWN (-1) /* ctl_parse_options printed --help: exit 0 */
int ctl_parse_options(struct ctl_context *ctx, const struct ctl_command *cmd, int argc, char **argv,
                      const char *shortopts, const struct option *extra,
                      int (*on_option)(struct ctl_context *ctx, int opt, const char *optarg,
                                       void *arg),
                      void *arg, int *optind_out);

/* The start of a command without operands: its options (as ctl_parse_options), no
 * operand, then ctl_connect. Returns true to go on; else false with *rc the command's
 * exit code (CTL_EXIT_OK after --help, or a usage or connection error). */
bool ctl_begin(struct ctl_context *ctx, const struct ctl_command *cmd, int argc, char **argv,
               const char *shortopts, const struct option *extra,
               int (*on_option)(struct ctl_context *ctx, int opt, const char *optarg, void *arg),
               void *arg, int *rc);

/* Same for a command whose one operand is a modification id (a UUID), set in *id; the
 * command has only the usual options. */
bool ctl_begin_with_id(struct ctl_context *ctx, const struct ctl_command *cmd, int argc,
                       char **argv, const char **id, int *rc);

/* ---- listings capped by --limit: the query asks for one row more than the limit (the
 * LIMIT parameter from ctl_limit_text) to tell whether more rows match ---- */

/* Parses the value of --limit, from 1 to max; CTL_EXIT_OK or a usage error. */
int ctl_parse_limit(const struct ctl_command *cmd, const char *value, long long max,
                    long long *limit);

/* The LIMIT parameter of a listing query: limit + 1. */
void ctl_limit_text(long long limit, char out[32]);

/* How many of the result's rows to show; *truncated tells whether more matched. */
int ctl_rows_shown(const PGresult *res, long long limit, bool *truncated);

/* Prints the first `shown` rows as one JSON document {"KEY": [rows], "count": N,
 * "truncated": B}; `amounts` adds "amount" to each row (ctl_json_add_amount). */
void ctl_print_json_list(const PGresult *res, const char *key, int shown, bool truncated,
                         bool amounts);

/* Tells people that the listing stops at `limit` rows and more match. */
void ctl_print_truncated(long long limit);

/* Runs a parameterised statement (text parameters and results). Returns the result
 * when it succeeded (PQclear it), else prints why as "smartpayctl: WHAT: message" with
 * the server's DETAIL and HINT, and returns NULL. */
PGresult *ctl_query(struct ctl_context *ctx, const char *what, const char *sql, int nparams,
                    const char *const *params);

/* Same, but returns the result whatever its status (never NULL) for callers that look
 * at the SQLSTATE themselves; ctl_failed tells whether it failed. */
PGresult *ctl_exec(struct ctl_context *ctx, const char *sql, int nparams,
                   const char *const *params);
bool ctl_failed(const PGresult *res);

/* The SQLSTATE of a failed result, or "" */
const char *ctl_sqlstate(const PGresult *res);

/* Prints a failed result: "smartpayctl: WHAT: message" (just "smartpayctl: message"
 * when `what` is NULL), then "  DETAIL: ..." and "  HINT: ..." lines; suggests
 * `smartpayctl migrate` when the schema is missing or old. */
void ctl_report(struct ctl_context *ctx, const char *what, const PGresult *res);

/* The value of a column, or NULL when it is SQL NULL. */
const char *ctl_value(const PGresult *res, int row, int col);

/* The value of a column as JSON by its type: NULL for SQL NULL, an integer for
 * int2/int4/int8, a boolean for bool, parsed JSON for json/jsonb, RFC 3339 text in UTC
 * with milliseconds ("2025-01-31T12:00:00.123Z") for timestamptz, else a string (money
 * is never a JSON number). */
struct json_object *ctl_json_value(const PGresult *res, int row, int col);

/* One row as a JSON object, keyed by the column names, in column order. */
struct json_object *ctl_json_row(const PGresult *res, int row);

/* Major-unit text of an amount given as minor-unit text and a currency ("4000", "EUR"
 * -> "40.00"). False (out "") when either is NULL or unusable. */
bool ctl_money_text(const char *minor, const char *currency, char out[32]);

/* Adds "amount" (major-unit text or null) to `obj` from its "amount_minor" and
 * "currency" members. */
void ctl_json_add_amount(struct json_object *obj);

/* People's form of an amount: "40.00 EUR"; "-" when there is none. */
const char *ctl_amount_human(const char *minor, const char *currency, char out[48]);

/* Calls a request function (smartpay.request_refund or request_cancel_or_refund) with
 * `sql` and `params`, then prints the new request: its row as a JSON object, or one
 * line for people. A refusal by the function is printed as the database worded it.
 * Returns the exit code. */
int ctl_request(struct ctl_context *ctx, const char *what, const char *sql, int nparams,
                const char *const *params);

/* Prints the first `rows` alerts selected with CTL_SQL_ALERT_COLUMNS as a table (with
 * who acknowledged them when `acknowledged` is true), each line starting with `indent`. */
void ctl_print_alerts(const PGresult *res, int rows, bool acknowledged, const char *indent);

/* The configured orders relation, each part quoted as an identifier (malloc'd), or NULL
 * when the connection cannot quote it. */
char *ctl_quoted_relation(struct ctl_context *ctx);

/* People's form of a timestamptz value (UTC, ISO): "2025-01-31 12:00:00Z"; "-" for
 * NULL. */
const char *ctl_time_human(const char *value, char out[32]);

/* People's form of a duration in seconds: "45s", "12m 5s", "3h 20m", "24h", "2d 4h". */
const char *ctl_duration_human(long long seconds, char out[32]);

/* Parses a whole decimal integer within [min, max]. */
bool ctl_parse_int(const char *text, long long min, long long max, long long *out);

/* A table printed with aligned columns (widths counted in UTF-8 characters); the last
 * column is not padded. Cells are copied; NULL prints as "-". `headers` NULL: no
 * header row. */
struct ctl_table;
struct ctl_table *ctl_table_new(size_t ncols, const char *const *headers);
/* Aligns column `col` to the right (numbers). */
void ctl_table_align_right(struct ctl_table *t, size_t col);
void ctl_table_add(struct ctl_table *t, const char *const *cells);
size_t ctl_table_rows(const struct ctl_table *t);
void ctl_table_print(const struct ctl_table *t, const char *indent);
void ctl_table_free(struct ctl_table *t);

#endif
