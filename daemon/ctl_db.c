#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctl_common.h"
#include "store_ctl.h"
#include "store_relation.h"
#include "trim.h"
#include "xmalloc.h"

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

/* Prints `text` without its trailing newlines after the prefix. */
static void print_trimmed(const char *prefix, const char *text)
{
	size_t len = trim_end_len(text, strlen(text), "\n ");
	fprintf(stderr, "%s%.*s\n", prefix, (int)len, text);
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
		print_trimmed(CTL_PROGRAM ": database: ", PQerrorMessage(ctx->conn));
		PQfinish(ctx->conn);
		ctx->conn = NULL;
		return CTL_EXIT_FAILURE;
	}
	PQsetNoticeProcessor(ctx->conn, print_notice, NULL);
	/* the daemon's session settings (durable commits, statement_timeout), and every
	 * timestamp smartpayctl prints is UTC, in one known text form */
	PGresult *res = store_ctl_session(ctx->conn, ctx->cfg->statement_timeout_ms);
	bool ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		ctl_error("database: %s", res ? PQresultErrorMessage(res) : "out of memory");
	PQclear(res);
	return ok ? CTL_EXIT_OK : CTL_EXIT_FAILURE;
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

PGresult *ctl_result(struct ctl_context *ctx, PGresult *res)
{
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

PGresult *ctl_ok(struct ctl_context *ctx, const char *what, PGresult *res)
{
	res = ctl_result(ctx, res);
	if (!ctl_failed(res))
		return res;
	ctl_report(ctx, what, res);
	PQclear(res);
	return NULL;
}

bool ctl_run(struct ctl_context *ctx, const char *what, PGresult *res)
{
	res = ctl_ok(ctx, what, res);
	bool ok = res != NULL;
	PQclear(res);
	return ok;
}

void ctl_rollback(struct ctl_context *ctx)
{
	if (PQtransactionStatus(ctx->conn) != PQTRANS_IDLE)
		PQclear(store_ctl_rollback(ctx->conn));
}

char *ctl_relation(struct ctl_context *ctx, const char *what)
{
	char *err = NULL;
	char *quoted = store_relation_quote(ctx->conn, ctx->cfg->orders_relation, &err);
	if (quoted == NULL) {
		ctl_error("%s: %s", what, err);
		free(err);
	}
	return quoted;
}
