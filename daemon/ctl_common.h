/* What every smartpayctl command shares: the command table entry, the context main()
 * hands it and the exit codes; the helpers are in ctl_args.h (options and operands),
 * ctl_db.h (configuration, the connection, failed statements), ctl_output.h (messages,
 * JSON and people's formats) and ctl_table.h (aligned tables).
 *
 * Adding a command: write daemon/ctl_NAME.c defining
 *     const struct ctl_command ctl_cmd_NAME = {"NAME", "ARGS", "one line of help", run};
 * declare it below, list it in the table of daemon/smartpayctl.c and add the file to
 * smartpayctl_SOURCES in daemon/local.mk. A handler parses its own arguments
 * (argv[0] is the command name; ctl_begin and ctl_begin_with_id do the usual ones and
 * connect), calls ctl_connect when it needs the database, runs its statements through
 * lib/store_ctl.h (no SQL in daemon/), prints people's text on stdout or, when
 * ctx->json, exactly one JSON document (ctl_print_json), reports problems with ctl_error
 * (always text on stderr) and returns an enum ctl_exit value. main() frees the
 * context. */
#ifndef SP_CTL_COMMON_H
#define SP_CTL_COMMON_H

#include <stdbool.h>

#include <libpq-fe.h>

struct sp_config;

#define CTL_PROGRAM "smartpayctl"

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

#include "ctl_args.h"
#include "ctl_db.h"
#include "ctl_output.h"
#include "ctl_table.h"

#endif
