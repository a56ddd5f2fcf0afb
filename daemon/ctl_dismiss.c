#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ctl_common.h"

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
	const char *user = getenv("USER");
	const char *params[2] = {id, user && *user ? user : NULL};
	/* one statement: the row changes, its order is queued and the daemon woken for it */
	PGresult *row = ctl_query(
	    ctx, "dismiss",
	    "WITH d AS (UPDATE smartpay.modifications m SET dismissed_at = now(), "
	    "dismissed_by = coalesce($2, current_user), updated_at = now() "
	    "WHERE m.modification_id = $1::uuid AND m.state = 'refused' AND m.dismissed_at IS NULL "
	    "RETURNING m.*), q AS (INSERT INTO smartpay.order_changes (order_id) "
	    "SELECT order_id FROM d), n AS (SELECT pg_notify('smartpay_orders', order_id) FROM d) "
	    "SELECT " CTL_SQL_MODIFICATION_COLUMNS ", (SELECT count(*) FROM n) AS notified "
	    "FROM d m",
	    2, params);
	if (row == NULL)
		return CTL_EXIT_FAILURE;
	if (PQntuples(row) == 0) {
		PQclear(row);
		const char *p1[1] = {id};
		PGresult *cur = ctl_query(ctx, "dismiss",
		                          "SELECT state, dismissed_at IS NOT NULL FROM "
		                          "smartpay.modifications WHERE modification_id = $1::uuid",
		                          1, p1);
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
		struct json_object *m = ctl_json_row(row, 0);
		json_object_object_del(m, "notified");
		ctl_json_add_amount(m);
		struct json_object *doc = json_object_new_object();
		json_object_object_add(doc, "modification", m);
		ctl_print_json(doc);
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
