#include "autoconfig.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_common.h"
#include "store_ctl.h"

#define LIST_DEFAULT_LIMIT 50
#define LIST_MAX_LIMIT 100000

struct list_args {
	const char *state;
	const char *kind;
	const char *order;
	long long limit;
};

static const char *const states[] = {"pending", "succeeded", "refused", "needs_attention", NULL};
static const char *const kinds[] = {"capture", "cancel", "cancel_or_refund", "refund", NULL};

/* True when `value` is one of the NULL-terminated `allowed`. */
static bool one_of(const char *value, const char *const *allowed)
{
	for (; *allowed != NULL; allowed++)
		if (strcmp(value, *allowed) == 0)
			return true;
	return false;
}

/* Takes list's own options. */
static int list_option(struct ctl_context *ctx, int opt, const char *value, void *arg)
{
	struct list_args *a = arg;

	switch (opt) {
	case 's':
		if (!one_of(value, states))
			return ctl_usage_error(
			    &ctl_cmd_list,
			    "list: unknown state '%s' (pending, succeeded, refused, "
			    "needs_attention)",
			    value);
		a->state = value;
		return CTL_EXIT_OK;
	case 'k':
		if (!one_of(value, kinds))
			return ctl_usage_error(&ctl_cmd_list,
			                       "list: unknown kind '%s' (capture, cancel, "
			                       "cancel_or_refund, refund)",
			                       value);
		a->kind = value;
		return CTL_EXIT_OK;
	case 'o':
		a->order = value;
		return CTL_EXIT_OK;
	case 'n':
		return ctl_parse_limit(&ctl_cmd_list, value, LIST_MAX_LIMIT, &a->limit);
	default:
		return CTL_EXIT_USAGE;
	}
}

/* Prints the rows (at most `shown`) as a table. */
static void list_print(const PGresult *res, int shown, bool truncated, long long limit)
{
	static const char *const headers[] = {"MODIFICATION_ID", "ORDER",    "KIND",    "STATE",
	                                      "AMOUNT",          "ATTEMPTS", "UPDATED", "REASON"};
	if (shown == 0) {
		printf("no modifications match\n");
		return;
	}
	struct ctl_table *t = ctl_table_new(8, headers);
	ctl_table_align_right(t, 4);
	ctl_table_align_right(t, 5);
	for (int row = 0; row < shown; row++) {
		char amount[48], updated[32];
		const char *cells[8] = {
		    ctl_value(res, row, PQfnumber(res, "modification_id")),
		    ctl_value(res, row, PQfnumber(res, "order_id")),
		    ctl_value(res, row, PQfnumber(res, "kind")),
		    ctl_value(res, row, PQfnumber(res, "state")),
		    ctl_amount_human(ctl_value(res, row, PQfnumber(res, "amount_minor")),
		                     ctl_value(res, row, PQfnumber(res, "currency")), amount),
		    ctl_value(res, row, PQfnumber(res, "attempts")),
		    ctl_time_human(ctl_value(res, row, PQfnumber(res, "updated_at")), updated),
		    ctl_value(res, row, PQfnumber(res, "reason")),
		};
		ctl_table_add(t, cells);
	}
	ctl_table_print(t, NULL);
	ctl_table_free(t);
	if (truncated)
		ctl_print_truncated(limit);
}

/* `list [--state S] [--kind K] [--order ID] [--limit N]`: modifications, newest first. */
static int list_run(struct ctl_context *ctx, int argc, char **argv)
{
	static const struct option options[] = {
	    {"state", required_argument, NULL, 's'},
	    {"kind", required_argument, NULL, 'k'},
	    {"order", required_argument, NULL, 'o'},
	    {"limit", required_argument, NULL, 'n'},
	    {NULL, 0, NULL, 0},
	};
	struct list_args a = {.limit = LIST_DEFAULT_LIMIT};
	int rc;
	if (!ctl_begin(ctx, &ctl_cmd_list, argc, argv, "s:k:o:n:", options, list_option, &a, &rc))
		return rc;

	char limit[32];
	ctl_limit_text(a.limit, limit);
	PGresult *res =
	    ctl_ok(ctx, "list", store_ctl_list(ctx->conn, a.state, a.kind, a.order, limit));
	if (res == NULL)
		return CTL_EXIT_FAILURE;

	bool truncated;
	int shown = ctl_rows_shown(res, a.limit, &truncated);
	if (ctx->json) {
		ctl_print_json_list(res, "modifications", shown, truncated, true);
	} else {
		list_print(res, shown, truncated, a.limit);
	}
	PQclear(res);
	return CTL_EXIT_OK;
}

const struct ctl_command ctl_cmd_list = {
    "list",
    "[--state S] [--kind K] [--order ID] [--limit N]",
    "list modifications, newest first (default limit 50)",
    list_run,
};
