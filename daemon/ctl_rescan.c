#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "config.h"
#include "ctl_orders.h"
#include "store.h"
#include "store_ctl.h"

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
	PGresult *res = NULL;
	if (ctl_run(ctx, "rescan", store_ctl_no_timeout(ctx->conn, false)))
		res = ctl_ok(ctx, "rescan", store_ctl_rescan(ctx->conn, &o.shape, ctx->cfg));
	ctl_orders_free(&o);
	if (res == NULL)
		return CTL_EXIT_FAILURE;
	/* wakes the daemon (the rows are its news, whatever the payload) */
	ctl_run(ctx, "rescan", store_ctl_notify_orders(ctx->conn));
	rescan_report(ctx, res);
	PQclear(res);
	return CTL_EXIT_OK;
}

const struct ctl_command ctl_cmd_rescan = {
    "rescan",
    "",
    "look at the whole orders relation once: queue every order that needs a "
    "modification for the daemon",
    rescan_run,
};
