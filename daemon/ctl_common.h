/* Shared plumbing of smartpayctl's commands: the command table entry, configuration,
 * the blocking database connection, error messages and --json output.
 *
 * Adding a command: write daemon/ctl_NAME.c defining
 *     const struct ctl_command ctl_cmd_NAME = {"NAME", "ARGS", "one line of help", run};
 * declare it below, list it in the table of daemon/smartpayctl.c and add the file to
 * smartpayctl_SOURCES in daemon/local.mk. A handler parses its own arguments
 * (argv[0] is the command name), calls ctl_connect when it needs the database, prints
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

/* Prints "smartpayctl: MESSAGE" on stderr. */
void ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "smartpayctl: MESSAGE" and the command's usage line on stderr; returns
 * CTL_EXIT_USAGE for `return ctl_usage_error(...)`. */
int ctl_usage_error(const struct ctl_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* For commands without arguments: CTL_EXIT_OK, or a usage error naming the extra one. */
int ctl_no_arguments(const struct ctl_command *cmd, int argc, char **argv);

/* Loads ctx->config_path into ctx->cfg (once). Returns CTL_EXIT_OK, or CTL_EXIT_USAGE
 * after printing every problem as "FILE:LINE: key: reason". */
int ctl_load_config(struct ctl_context *ctx);

/* Loads the configuration when needed and opens ctx->conn (blocking libpq) with
 * cfg->db_conninfo, application_name smartpayctl, server notices printed on stderr.
 * Returns CTL_EXIT_OK, CTL_EXIT_USAGE (configuration) or CTL_EXIT_FAILURE (connection,
 * after printing why). */
int ctl_connect(struct ctl_context *ctx);

/* Prints `doc` on stdout as indented JSON followed by a newline, then releases it. */
void ctl_print_json(struct json_object *doc);

/* Closes the connection and frees the configuration. */
void ctl_context_free(struct ctl_context *ctx);

#endif
