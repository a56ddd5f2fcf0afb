#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "config.h"
#include "ctl_orders.h"
#include "store.h"
#include "xmalloc.h"

/* Orders the whole-relation candidate query may return in one rescan. */
#define RESCAN_LIMIT "2147483647"

/* Prints how many orders were queued, with the first few ids. */
static void rescan_report(struct ctl_context *ctx, PGresult *res)
{
	if (ctx->json) {
		ctl_print_json(ctl_json_row(res, 0));
		return;
	}
	printf("queued %s order(s) that need a modification for the daemon", PQgetvalue(res, 0, 0));
	if (!PQgetisnull(res, 0, 1))
		printf(" (e.g. %s)", PQgetvalue(res, 0, 1));
	printf("\n");
}

/* `rescan`: the operator's full scan. Runs the daemon's candidate query over the whole
 * orders relation (history left out) and queues what it finds in smartpay.order_changes,
 * where the daemon takes it as it takes the trigger's rows. */
static int rescan_run(struct ctl_context *ctx, int argc, char **argv)
{
	int rc;
	if (!ctl_begin(ctx, &ctl_cmd_rescan, argc, argv, "", NULL, NULL, NULL, &rc))
		return rc;
	struct ctl_orders o;
	if (!ctl_orders_load(ctx, "rescan", &o))
		return CTL_EXIT_FAILURE;
	bool adopted = false, recorded = false;
	if (!ctl_orders_adopted(ctx, "rescan", &o, &adopted, &recorded)) {
		ctl_orders_free(&o);
		return CTL_EXIT_FAILURE;
	}
	if (!adopted) {
		ctl_error("rescan: %s", STORE_NO_BASELINE_MESSAGE);
		ctl_orders_free(&o);
		return CTL_EXIT_FAILURE;
	}
	char *candidates = store_candidate_query(&o.shape, false, true);
	char *sql = xasprintf("WITH q AS (INSERT INTO smartpay.order_changes (order_id) "
	                      "SELECT DISTINCT c.id FROM (%s) c RETURNING order_id) "
	                      "SELECT count(*) AS queued, string_agg(order_id, ', ') FILTER "
	                      "(WHERE n <= 5) AS sample FROM (SELECT order_id, row_number() OVER "
	                      "(ORDER BY order_id) AS n FROM q) s",
	                      candidates);
	struct store_candidate_params p;
	store_candidate_params_init(&p, ctx->cfg, 0, NULL, 0);
	snprintf(p.limit, sizeof(p.limit), "%s", RESCAN_LIMIT);
	rc = CTL_EXIT_FAILURE;
	PGresult *res = ctl_query(ctx, "rescan", "SET statement_timeout = 0", 0, NULL);
	if (res != NULL) {
		PQclear(res);
		res = ctl_query(ctx, "rescan", sql, p.count, p.values);
	}
	/* wakes the daemon (the rows are its news, whatever the payload) */
	PGresult *woken = res ? ctl_query(ctx, "rescan", "NOTIFY smartpay_orders", 0, NULL) : NULL;
	PQclear(woken);
	if (res != NULL) {
		rescan_report(ctx, res);
		PQclear(res);
		rc = CTL_EXIT_OK;
	}
	store_candidate_params_clear(&p);
	free(sql);
	free(candidates);
	ctl_orders_free(&o);
	return rc;
}

const struct ctl_command ctl_cmd_rescan = {
    "rescan",
    "",
    "look at the whole orders relation once: queue every order that needs a "
    "modification for the daemon",
    rescan_run,
};
