#include "autoconfig.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "config.h"
#include "ctl_common.h"
#include "store_migrate.h"
#include "store_ctl.h"
#include "store_indexes.h"
#include "xmalloc.h"

static const struct ctl_command ctl_cmd_help;

/* Every command, in the order --help lists them. */
static const struct ctl_command *const commands[] = {
    &ctl_cmd_migrate,
    &ctl_cmd_preview,
    &ctl_cmd_adopt,
    &ctl_cmd_rescan,
    &ctl_cmd_status,
    &ctl_cmd_list,
    &ctl_cmd_show,
    &ctl_cmd_retry,
    &ctl_cmd_dismiss,
    &ctl_cmd_refund,
    &ctl_cmd_cancel_or_refund,
    &ctl_cmd_alerts,
    &ctl_cmd_ack,
    &ctl_cmd_reconcile,
    &ctl_cmd_help,
};
#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

/* The command called `name`, or NULL. */
static const struct ctl_command *find_command(const char *name)
{
	for (size_t i = 0; i < COMMAND_COUNT; i++)
		if (strcmp(commands[i]->name, name) == 0)
			return commands[i];
	return NULL;
}

/* Prints the synopsis, the options and the command list. */
static void usage(FILE *out)
{
	fprintf(out, "usage: smartpayctl [-c FILE] [--json] COMMAND [ARGS]\n"
	             "       smartpayctl --help | --version\n"
	             "\n"
	             "Options:\n"
	             "  -c, --config FILE  configuration file (default " CONFIG_DEFAULT_PATH ")\n"
	             "  -j, --json         print the result as JSON on stdout\n"
	             "  -h, --help         show this help\n"
	             "  -V, --version      show the version\n"
	             "\n"
	             "Commands:\n");
	for (size_t i = 0; i < COMMAND_COUNT; i++) {
		char *synopsis =
		    xasprintf("%s%s%s", commands[i]->name, commands[i]->usage[0] != '\0' ? " " : "",
		              commands[i]->usage);
		if (strlen(synopsis) > 28)
			fprintf(out, "  %s\n  %-28s %s\n", synopsis, "", commands[i]->help);
		else
			fprintf(out, "  %-28s %s\n", synopsis, commands[i]->help);
		free(synopsis);
	}
	fprintf(out, "\nExit status: 0 success, 1 runtime failure, 2 usage or configuration "
	             "error.\n");
}

/* `help [COMMAND]`: the overview, or one command's synopsis. */
static int help_run(struct ctl_context *ctx, int argc, char **argv)
{
	if (argc > 2)
		return ctl_usage_error(&ctl_cmd_help, "help: unexpected argument '%s'", argv[2]);
	if (argc == 1) {
		usage(stdout);
		return CTL_EXIT_OK;
	}
	const struct ctl_command *cmd = find_command(argv[1]);
	if (cmd == NULL) {
		ctl_error("unknown command '%s' (see smartpayctl --help)", argv[1]);
		return CTL_EXIT_USAGE;
	}
	ctl_print_usage(stdout, cmd, true);
	return CTL_EXIT_OK;
}

static const struct ctl_command ctl_cmd_help = {
    "help",
    "[COMMAND]",
    "show the commands, or how to call one",
    help_run,
};

/* Prints migrate's result: people's text or one JSON document. */
static void migrate_report(const struct ctl_context *ctx, const bool *applied_mask, int applied,
                           int version, size_t currencies, enum migrate_trigger_result trigger)
{
	if (ctx->json) {
		struct json_object *doc = json_object_new_object();
		struct json_object *list = json_object_new_array();
		for (size_t i = 0; i < sp_builtin_migration_count; i++)
			if (applied_mask[i])
				json_object_array_add(
				    list, json_object_new_string(sp_builtin_migrations[i].name));
		json_object_object_add(doc, "applied", list);
		json_object_object_add(doc, "version", json_object_new_int(version));
		json_object_object_add(doc, "up_to_date", json_object_new_boolean(applied == 0));
		json_object_object_add(doc, "orders_relation",
		                       json_object_new_string(ctx->cfg->orders_relation));
		json_object_object_add(doc, "orders_trigger",
		                       json_object_new_string(trigger == MIGRATE_TRIGGER_ATTACHED
		                                                  ? "attached"
		                                                  : "view"));
		json_object_object_add(doc, "currencies",
		                       json_object_new_int64((int64_t)currencies));
		ctl_print_json(doc);
		return;
	}
	for (size_t i = 0; i < sp_builtin_migration_count; i++)
		if (applied_mask[i])
			printf("applied %s\n", sp_builtin_migrations[i].name);
	if (applied == 0)
		printf("schema is up to date (version %d)\n", version);
	else
		printf("schema is now at version %d\n", version);
	printf("settings: orders relation %s, %zu currencies\n", ctx->cfg->orders_relation,
	       currencies);
	if (trigger == MIGRATE_TRIGGER_ATTACHED)
		printf("orders trigger " MIGRATE_ORDERS_TRIGGER " is on %s\n",
		       ctx->cfg->orders_relation);
}

/* Warns about each index the daemon's queries need that the orders relation lacks,
 * naming the statement that creates it (the shop's table: migrate never creates it). */
static void warn_missing_indexes(const struct ctl_context *ctx)
{
	char **missing = NULL;
	size_t n = 0;
	char *err = NULL;
	if (migrate_missing_order_indexes(ctx->conn, ctx->cfg->orders_relation, &missing, &n,
	                                  &err) != 0) {
		ctl_error("warning: could not check the indexes of %s: %s",
		          ctx->cfg->orders_relation, err);
		free(err);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char *why = NULL;
		char *create =
		    store_index_statement(ctx->conn, ctx->cfg->orders_relation, missing[i], &why);
		if (create == NULL)
			create = why;
		ctl_error("warning: %s has no index on %s, so %s read the whole table; create it "
		          "with: %s;",
		          ctx->cfg->orders_relation, missing[i], store_index_used_by(missing[i]),
		          create);
		free(create);
		free(missing[i]);
	}
	free(missing);
}

/* `migrate`: applies the built-in migrations and attaches the orders trigger. */
static int migrate_run(struct ctl_context *ctx, int argc, char **argv)
{
	int rc;
	if (!ctl_begin(ctx, &ctl_cmd_migrate, argc, argv, "", NULL, NULL, NULL, &rc))
		return rc;
	/* DDL on a large ledger may outlast statement_timeout; migrate bounds its lock
	 * waits with lock_timeout instead */
	PGresult *res = store_ctl_no_timeout(ctx->conn, false);
	bool set = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!set)
		ctl_error("migrate: %s", res ? PQresultErrorMessage(res) : "out of memory");
	PQclear(res);
	if (!set)
		return CTL_EXIT_FAILURE;

	bool *applied_mask = xcalloc(sp_builtin_migration_count, sizeof(*applied_mask));
	int applied = 0, version = 0;
	size_t currencies = 0;
	char *err = NULL;
	const struct migrate_settings settings = {
	    .orders_relation = ctx->cfg->orders_relation,
	    .authorization_validity_ms = ctx->cfg->authorization_validity_ms,
	};
	if (migrate_apply_configured(ctx->conn, sp_builtin_migrations, sp_builtin_migration_count,
	                             &settings, applied_mask, &applied, &currencies, &err) != 0 ||
	    migrate_current_version(ctx->conn, &version, &err) != 0) {
		ctl_error("migrate: %s", err);
		free(err);
		free(applied_mask);
		return CTL_EXIT_FAILURE;
	}

	enum migrate_trigger_result trigger =
	    migrate_attach_orders_trigger(ctx->conn, ctx->cfg->orders_relation, &err);
	if (trigger == MIGRATE_TRIGGER_ERROR) {
		ctl_error("migrate: %d migration(s) applied, schema at version %d, but the orders "
		          "trigger failed: %s",
		          applied, version, err);
		free(err);
		free(applied_mask);
		return CTL_EXIT_FAILURE;
	}

	migrate_report(ctx, applied_mask, applied, version, currencies, trigger);
	free(applied_mask);

	int newest = sp_builtin_migrations[sp_builtin_migration_count - 1].version;
	if (version > newest)
		ctl_error("warning: the database is at version %d, newer than this smartpayctl "
		          "knows (%d)",
		          version, newest);
	warn_missing_indexes(ctx);
	if (trigger == MIGRATE_TRIGGER_VIEW)
		ctl_error(
		    "notice: %s is a view, so no trigger was attached; attach it to the "
		    "shop's table behind the view: CREATE TRIGGER " MIGRATE_ORDERS_TRIGGER
		    " AFTER INSERT OR UPDATE OF status ON <table> FOR EACH ROW EXECUTE FUNCTION "
		    "smartpay.orders_notify()",
		    ctx->cfg->orders_relation);
	return CTL_EXIT_OK;
}

const struct ctl_command ctl_cmd_migrate = {
    "migrate",
    "",
    "apply the database migrations and attach the orders trigger",
    migrate_run,
};

int main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct ctl_context ctx = {.config_path = CONFIG_DEFAULT_PATH};
	int opt;

	/* '+': options end at the command name; what follows belongs to the command */
	while ((opt = getopt_long(argc, argv, "+c:jhV", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			ctx.config_path = optarg;
			break;
		case 'j':
			ctx.json = true;
			break;
		case 'h':
			usage(stdout);
			return CTL_EXIT_OK;
		case 'V':
			printf("smartpayctl (" PACKAGE_NAME ") " PACKAGE_VERSION "\n");
			return CTL_EXIT_OK;
		default:
			usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		ctl_error("no command given");
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	const struct ctl_command *cmd = find_command(argv[optind]);
	if (cmd == NULL) {
		ctl_error("unknown command '%s' (see smartpayctl --help)", argv[optind]);
		return CTL_EXIT_USAGE;
	}

	int first = optind;
	optind = 0; /* a handler may run getopt_long again on its own arguments */
	int rc = cmd->run(&ctx, argc - first, argv + first);
	ctl_context_free(&ctx);
	return rc;
}
