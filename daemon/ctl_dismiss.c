#include "autoconfig.h"

#include <stdio.h>
#include <string.h>

#include "ctl_common.h"
#include "store_ctl.h"

/* `dismiss MODIFICATION_ID`: sets a refused modification aside so the daemon looks at
 * its order again. A refusal is final for its modificationId (the gateway answers a
 * resend from its record), so what follows is a new modification with a new id: for a
 * bad order row the shop has corrected, or a refusal whose cause was fixed. */
static int dismiss_run(struct ctl_context *ctx, int argc, char **argv)
{
	const char *id;
	int rc;
	if (!ctl_begin_with_id(ctx, &ctl_cmd_dismiss, argc, argv, &id, &rc))
		return rc;
	/* one statement: the row changes, its order is queued and the daemon woken for it */
	PGresult *row = ctl_ok(ctx, "dismiss", store_ctl_dismiss(ctx->conn, id, ctl_user()));
	if (row == NULL)
		return CTL_EXIT_FAILURE;
	if (PQntuples(row) == 0) {
		PQclear(row);
		PGresult *cur = ctl_ok(ctx, "dismiss", store_ctl_state(ctx->conn, id));
		if (cur == NULL)
			return CTL_EXIT_FAILURE;
		if (PQntuples(cur) == 0)
			ctl_error("dismiss: no modification %s", id);
		else if (strcmp(PQgetvalue(cur, 0, 1), "t") == 0)
			ctl_error("dismiss: modification %s is dismissed already", id);
		else
			ctl_error(
			    "dismiss: modification %s is %s; only a refused modification can be "
			    "dismissed (a needs_attention one is requeued with `smartpayctl "
			    "retry`)",
			    id, PQgetvalue(cur, 0, 0));
		PQclear(cur);
		return CTL_EXIT_FAILURE;
	}
	if (ctx->json) {
		ctl_print_modification_json(row, "notified", NULL, NULL);
	} else {
		printf("dismissed modification %s (%s of order %s); the daemon looks at the order "
		       "again and creates a new modification if it still needs one\n",
		       id, ctl_value(row, 0, PQfnumber(row, "kind")),
		       ctl_value(row, 0, PQfnumber(row, "order_id")));
	}
	PQclear(row);
	return CTL_EXIT_OK;
}

const struct ctl_command ctl_cmd_dismiss = {
    "dismiss",
    "MODIFICATION_ID",
    "set a refused modification aside so the daemon looks at its order again",
    dismiss_run,
};
