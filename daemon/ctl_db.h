/* smartpayctl's configuration and blocking database connection, and what the commands
 * do with the results of lib/store_ctl.h: failures reported alike, transactions ended,
 * the orders relation read as the daemon reads it. */
#ifndef SP_CTL_DB_H
#define SP_CTL_DB_H

#include <stdbool.h>

#include <libpq-fe.h>

struct ctl_context;

/* Loads ctx->config_path into ctx->cfg (once). Returns CTL_EXIT_OK, or CTL_EXIT_USAGE
 * after printing every problem as "FILE:LINE: key: reason". */
int ctl_load_config(struct ctl_context *ctx);

/* Loads the configuration when needed and opens ctx->conn (blocking libpq) with
 * cfg->db_conninfo, application_name smartpayctl, server notices printed on stderr,
 * and the session of store_ctl_session (the daemon's settings, TimeZone UTC, DateStyle
 * ISO: what ctl_json_value and ctl_time_human expect of timestamps).
 * Returns CTL_EXIT_OK, CTL_EXIT_USAGE (configuration) or CTL_EXIT_FAILURE (connection,
 * after printing why). */
int ctl_connect(struct ctl_context *ctx);

/* Closes the connection and frees the configuration. */
void ctl_context_free(struct ctl_context *ctx);

/* The result of a lib/store_ctl.h call as it is, never NULL (out of memory exits), for
 * callers that look at the SQLSTATE themselves; ctl_failed tells whether it failed. */
PGresult *ctl_result(struct ctl_context *ctx, PGresult *res);
bool ctl_failed(const PGresult *res);

/* The result of a lib/store_ctl.h call when it succeeded (PQclear it), else NULL after
 * printing why (ctl_report). */
PGresult *ctl_ok(struct ctl_context *ctx, const char *what, PGresult *res);

/* Runs a store_ctl call whose rows do not matter; false after reporting a failure. */
bool ctl_run(struct ctl_context *ctx, const char *what, PGresult *res);

/* Ends the transaction without changes, if one is open; a failure adds nothing to
 * report. */
void ctl_rollback(struct ctl_context *ctx);

/* The SQLSTATE of a failed result, or "" */
const char *ctl_sqlstate(const PGresult *res);

/* Prints a failed result: "smartpayctl: WHAT: message" (just "smartpayctl: message"
 * when `what` is NULL), then "  DETAIL: ..." and "  HINT: ..." lines; suggests
 * `smartpayctl migrate` when the schema is missing or old. */
void ctl_report(struct ctl_context *ctx, const char *what, const PGresult *res);

/* The configured orders relation quoted (store_relation_quote), malloc'd; NULL after
 * reporting "WHAT: why". */
char *ctl_relation(struct ctl_context *ctx, const char *what);

#endif
