#include "autoconfig.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "config.h"
#include "ctl_orders.h"
#include "store_ctl.h"

struct adopt_args {
	const char *from;  /* --from TIME, else NULL: now */
	const char *order; /* --order ID */
};

/* Takes adopt's own options. */
static int adopt_option(struct ctl_context *ctx, int opt, const char *value, void *arg)
{
	struct adopt_args *a = arg;
	(void)ctx;
	if (opt == 'f')
		a->from = value;
	else if (opt == 'o')
		a->order = value;
	else
		return CTL_EXIT_USAGE;
	return CTL_EXIT_OK;
}

/* `adopt --order ID`: the order is no longer history; it is queued for the daemon. */
static int adopt_order(struct ctl_context *ctx, const char *order)
{
	PGresult *res = ctl_ok(ctx, "adopt", store_ctl_adopt_order(ctx->conn, order));
	if (res == NULL)
		return CTL_EXIT_FAILURE;
	bool brought = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
	PQclear(res);
	if (ctx->json) {
		json_object *doc = json_object_new_object();
		json_object_object_add(doc, "order_id", json_object_new_string(order));
		json_object_object_add(doc, "brought_in", json_object_new_boolean(brought));
		ctl_print_json(doc);
	} else if (brought) {
		printf("order %s is no longer history: the daemon looks at it now\n", order);
	} else {
		printf("order %s is not history: nothing to do\n", order);
	}
	return CTL_EXIT_OK;
}

/* Prints the recorded baseline. */
static void adopt_report(struct ctl_context *ctx, PGresult *res)
{
	if (ctx->json) {
		ctl_print_json(ctl_json_row(res, 0));
		return;
	}
	char cut[32];
	printf("adopted: %s orders recorded as history (shipped, cancelled or expired, "
	       "authorized before %s); they are never acted on or alerted\n",
	       PQgetvalue(res, 0, 1), ctl_time_human(PQgetvalue(res, 0, 0), cut));
	printf("`smartpayctl preview` shows what the daemon does with the rest\n");
}

/* Records the baseline in one transaction: the history rows and the adoption row. */
static int adopt_shop(struct ctl_context *ctx, const char *from)
{
	struct ctl_orders o;
	if (!ctl_orders_load(ctx, "adopt", &o))
		return CTL_EXIT_FAILURE;
	int rc = CTL_EXIT_FAILURE;
	/* one pass over the whole relation: no statement_timeout */
	if (!ctl_run(ctx, "adopt", store_ctl_begin(ctx->conn)) ||
	    !ctl_run(ctx, "adopt", store_ctl_no_timeout(ctx->conn, true)))
		goto out;
	PGresult *res = ctl_ok(ctx, "adopt", store_ctl_adopt(ctx->conn, &o.shape, ctx->cfg, from));
	if (res == NULL)
		goto out;
	if (PQntuples(res) == 0) {
		PQclear(res);
		ctl_rollback(ctx);
		res = ctl_ok(ctx, "adopt", store_ctl_adopted_at(ctx->conn));
		char at[32];
		ctl_error("adopt: the shop was adopted at %s already; `adopt --order ID` brings "
		          "one order in",
		          res ? ctl_time_human(ctl_value(res, 0, 0), at) : "-");
		PQclear(res);
		goto out;
	}
	if (!ctl_run(ctx, "adopt", store_ctl_commit(ctx->conn))) {
		PQclear(res);
		goto out;
	}
	adopt_report(ctx, res);
	PQclear(res);
	rc = CTL_EXIT_OK;
out:
	ctl_rollback(ctx);
	ctl_orders_free(&o);
	return rc;
}

/* `adopt [--from TIME] | adopt --order ID`: records the baseline of a shop with history,
 * or brings one order of its history back in. */
static int adopt_run(struct ctl_context *ctx, int argc, char **argv)
{
	static const struct option options[] = {
	    {"from", required_argument, NULL, 'f'},
	    {"order", required_argument, NULL, 'o'},
	    {NULL, 0, NULL, 0},
	};
	struct adopt_args a = {0};
	int rc;
	if (!ctl_begin(ctx, &ctl_cmd_adopt, argc, argv, "f:o:", options, adopt_option, &a, &rc))
		return rc;
	if (a.from && a.order)
		return ctl_usage_error(&ctl_cmd_adopt,
		                       "adopt: --from and --order do not go together");
	return a.order ? adopt_order(ctx, a.order) : adopt_shop(ctx, a.from);
}

const struct ctl_command ctl_cmd_adopt = {
    "adopt",
    "[--from TIME] | --order ID",
    "record the baseline: orders shipped, cancelled or expired (authorized before TIME, "
    "default now) are history; --order brings one back in",
    adopt_run,
};
