/* What smartpayctl's commands print: messages on stderr, one JSON document on stdout
 * (a PGresult's values by their types), people's forms of times, durations and amounts,
 * listings capped by --limit and the alerts table. */
#ifndef SP_CTL_OUTPUT_H
#define SP_CTL_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "duration.h"

struct ctl_command;
struct json_object;

/* Prints "smartpayctl: MESSAGE" on stderr. */
void ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "smartpayctl: MESSAGE" and the command's usage line on stderr; returns
 * CTL_EXIT_USAGE for `return ctl_usage_error(...)`. */
int ctl_usage_error(const struct ctl_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "usage: smartpayctl [-c FILE] [--json] NAME ARGS" on `out`, then, with
 * `help`, the command's line of help indented. */
void ctl_print_usage(FILE *out, const struct ctl_command *cmd, bool help);

/* Prints `doc` on stdout as indented JSON followed by a newline, then releases it. */
void ctl_print_json(struct json_object *doc);

/* How many of the result's rows to show; *truncated tells whether more matched. */
int ctl_rows_shown(const PGresult *res, long long limit, bool *truncated);

/* Prints the first `shown` rows as one JSON document {"KEY": [rows], "count": N,
 * "truncated": B}; `amounts` adds "amount" to each row (ctl_json_add_amount). */
void ctl_print_json_list(const PGresult *res, const char *key, int shown, bool truncated,
                         bool amounts);

/* Tells people that the listing stops at `limit` rows and more match. */
void ctl_print_truncated(long long limit);

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

/* Prints the first row of `res` (a modification with store_ctl_list's columns) as
 * {"modification": {..., "amount"}} without the column `drop` (NULL: none), followed by
 * "KEY": "VALUE" when `key` is not NULL. */
void ctl_print_modification_json(const PGresult *res, const char *drop, const char *key,
                                 const char *value);

/* People's form of an amount: "40.00 EUR"; "-" when there is none. */
const char *ctl_amount_human(const char *minor, const char *currency, char out[48]);

/* People's form of a timestamptz value (UTC, ISO): "2025-01-31 12:00:00Z"; "-" for
 * NULL. */
const char *ctl_time_human(const char *value, char out[32]);

/* People's form of a duration in seconds: "45s", "12m 5s", "3h 20m", "24h", "2d 4h". */
const char *ctl_duration_human(long long seconds, char out[DURATION_TEXT_SIZE]);

/* Prints the first `rows` alerts (store_ctl_alerts or store_ctl_show_alerts) as a table
 * (with who acknowledged them when `acknowledged` is true, and whether each was folded
 * into a summary when the result has "summarised"), each line starting with
 * `indent`. */
void ctl_print_alerts(const PGresult *res, int rows, bool acknowledged, const char *indent);

#endif
