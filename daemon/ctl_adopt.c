#include "autoconfig.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "config.h"
#include "ctl_orders.h"
#include "store.h"
#include "xmalloc.h"

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

/* Runs one statement that returns nothing; false after reporting. */
static bool adopt_exec(struct ctl_context *ctx, const char *sql)
{
	PGresult *res = ctl_query(ctx, "adopt", sql, 0, NULL);
	PQclear(res);
	return res != NULL;
}

/* Ends the transaction when a step failed. */
static void adopt_rollback(struct ctl_context *ctx)
{
	if (PQtransactionStatus(ctx->conn) != PQTRANS_IDLE)
		PQclear(PQexec(ctx->conn, "ROLLBACK"));
}

/* `adopt --order ID`: the order is no longer history; it is queued for the daemon. */
static int adopt_order(struct ctl_context *ctx, const char *order)
{
	const char *params[1] = {order};
	PGresult *res = ctl_query(
	    ctx, "adopt",
	    "WITH d AS (DELETE FROM smartpay.history WHERE order_id = $1 RETURNING order_id), "
	    "q AS (INSERT INTO smartpay.order_changes (order_id) SELECT order_id FROM d "
	    "RETURNING order_id) "
	    "SELECT count(*), pg_notify('smartpay_orders', $1) FROM q",
	    1, params);
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
	char *rule = store_history_rule(&o.shape, "coalesce($4::timestamptz, now())");
	char *sql = xasprintf(
	    "WITH h AS (INSERT INTO smartpay.history (order_id) SELECT o.id::text FROM %s o "
	    "WHERE o.id IS NOT NULL AND octet_length(o.id::text) <= 1000 AND %s "
	    /* an order the ledger knows is the daemon's already */
	    "AND NOT EXISTS (SELECT 1 FROM smartpay.modifications m "
	    "WHERE m.order_id = o.id::text) ON CONFLICT DO NOTHING RETURNING 1) "
	    "INSERT INTO smartpay.adoption (cut, history_orders) "
	    "SELECT coalesce($4::timestamptz, now()), (SELECT count(*) FROM h) "
	    "ON CONFLICT DO NOTHING RETURNING cut, history_orders, adopted_at, adopted_by",
	    o.relation, rule);
	free(rule);
	struct store_candidate_params p;
	store_candidate_params_init(&p, ctx->cfg, 1, NULL, 0);
	const char *params[4] = {p.values[0], p.values[1], p.values[2], from};
	int rc = CTL_EXIT_FAILURE;
	/* one pass over the whole relation: no statement_timeout */
	if (!adopt_exec(ctx, "BEGIN") || !adopt_exec(ctx, "SET LOCAL statement_timeout = 0"))
		goto out;
	PGresult *res = ctl_query(ctx, "adopt", sql, 4, params);
	if (res == NULL)
		goto out;
	if (PQntuples(res) == 0) {
		PQclear(res);
		adopt_rollback(ctx);
		res = ctl_query(ctx, "adopt", "SELECT adopted_at FROM smartpay.adoption", 0, NULL);
		char at[32];
		ctl_error("adopt: the shop was adopted at %s already; `adopt --order ID` brings "
		          "one order in",
		          res ? ctl_time_human(ctl_value(res, 0, 0), at) : "-");
		PQclear(res);
		goto out;
	}
	if (!adopt_exec(ctx, "COMMIT")) {
		PQclear(res);
		goto out;
	}
	adopt_report(ctx, res);
	PQclear(res);
	rc = CTL_EXIT_OK;
out:
	adopt_rollback(ctx);
	store_candidate_params_clear(&p);
	free(sql);
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
