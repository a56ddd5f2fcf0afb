#include "autoconfig.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "config.h"
#include "ctl_common.h"

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

int ctl_no_arguments(const struct ctl_command *cmd, int argc, char **argv)
{
	if (argc > 1)
		return ctl_usage_error(cmd, "%s: unexpected argument '%s'", cmd->name, argv[1]);
	return CTL_EXIT_OK;
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
	return CTL_EXIT_OK;
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
