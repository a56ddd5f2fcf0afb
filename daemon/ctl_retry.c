#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ctl_common.h"
#include "store_ctl.h"
#include "xmalloc.h"

/* Explains why a modification in `state` cannot be requeued. */
static void explain_state(const char *id, const char *state)
{
	const char *why = "";

	if (strcmp(state, "pending") == 0)
		why = "it is queued already: the daemon sends it when its next attempt is due";
	else if (strcmp(state, "succeeded") == 0)
		why = "it succeeded: there is nothing to retry";
	else if (strcmp(state, "refused") == 0)
		why = "it was refused, a definitive answer: resending the same request would be "
		      "refused again; fix the cause, then `smartpayctl dismiss` it so the daemon "
		      "creates a new modification";
	ctl_error("retry: modification %s is %s; only a needs_attention modification can be "
	          "requeued (%s)",
	          id, state, why);
}

/* Explains a unique violation: another modification of the transaction is in flight. */
static void explain_conflict(struct ctl_context *ctx, const char *id, const char *transaction)
{
	PGresult *res = ctl_ok(ctx, "retry", store_ctl_pending_of(ctx->conn, transaction));
	const char *other = res && PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "another one";
	const char *kind = res && PQntuples(res) > 0 ? PQgetvalue(res, 0, 1) : "modification";

	ctl_error("retry: cannot requeue %s: %s %s of the same transaction %s is pending, and a "
	          "transaction has one modification in flight at a time; retry once it has "
	          "finished (smartpayctl show %s)",
	          id, kind, other, transaction, other);
	PQclear(res);
}

/* Requeues inside one transaction; returns the exit code and, on success, the row. */
static int requeue(struct ctl_context *ctx, const char *id, PGresult **row)
{
	if (!ctl_run(ctx, "retry", store_ctl_begin(ctx->conn)))
		return CTL_EXIT_FAILURE;

	PGresult *res = ctl_ok(ctx, "retry", store_ctl_retry_lock(ctx->conn, id));
	if (res == NULL || PQntuples(res) == 0 ||
	    strcmp(PQgetvalue(res, 0, 0), "needs_attention") != 0) {
		if (res != NULL && PQntuples(res) == 0)
			ctl_error("retry: no modification %s", id);
		else if (res != NULL)
			explain_state(id, PQgetvalue(res, 0, 0));
		PQclear(res);
		ctl_rollback(ctx);
		return CTL_EXIT_FAILURE;
	}
	char *transaction = ctl_value(res, 0, 1) ? xstrdup(PQgetvalue(res, 0, 1)) : NULL;
	PQclear(res);

	/* same id, same body, attempts kept: only the schedule and the lease change */
	PGresult *upd = ctl_result(ctx, store_ctl_retry_requeue(ctx->conn, id));
	int rc = CTL_EXIT_OK;
	if (ctl_failed(upd)) {
		if (strcmp(ctl_sqlstate(upd), "23505") == 0 && transaction != NULL) {
			ctl_rollback(ctx);
			explain_conflict(ctx, id, transaction);
		} else {
			ctl_report(ctx, "retry", upd);
			ctl_rollback(ctx);
		}
		PQclear(upd);
		rc = CTL_EXIT_FAILURE;
	} else if (!ctl_run(ctx, "retry", store_ctl_commit(ctx->conn))) {
		PQclear(upd);
		rc = CTL_EXIT_FAILURE;
	} else {
		*row = upd;
	}
	free(transaction);
	return rc;
}

/* `retry MODIFICATION_ID`: puts a needs_attention modification back in the queue with the
 * same id and body. */
static int retry_run(struct ctl_context *ctx, int argc, char **argv)
{
	const char *id;
	int rc;
	if (!ctl_begin_with_id(ctx, &ctl_cmd_retry, argc, argv, &id, &rc))
		return rc;

	PGresult *row = NULL;
	if ((rc = requeue(ctx, id, &row)) != CTL_EXIT_OK)
		return rc;

	int passed = PQfnumber(row, "deadline_passed");
	if (ctl_value(row, 0, passed) != NULL && strcmp(PQgetvalue(row, 0, passed), "t") == 0) {
		char at[32];
		ctl_error("warning: the authorization deadline of modification %s passed at %s", id,
		          ctl_time_human(ctl_value(row, 0, PQfnumber(row, "deadline")), at));
	}
	if (ctx->json) {
		ctl_print_modification_json(row, "deadline_passed", "previous_state",
		                            "needs_attention");
	} else {
		printf("requeued modification %s (%s of order %s): pending, next attempt now, "
		       "%s attempts so far\n",
		       id, ctl_value(row, 0, PQfnumber(row, "kind")),
		       ctl_value(row, 0, PQfnumber(row, "order_id")),
		       ctl_value(row, 0, PQfnumber(row, "attempts")));
		printf(
		    "the daemon settles an outcome it cannot read from SmartPay's status history "
		    "itself; `smartpayctl reconcile --order %s` shows what SmartPay has\n",
		    ctl_value(row, 0, PQfnumber(row, "order_id")));
	}
	PQclear(row);
	return CTL_EXIT_OK;
}

const struct ctl_command ctl_cmd_retry = {
    "retry",
    "MODIFICATION_ID",
    "requeue a needs_attention modification: same id, same request body",
    retry_run,
};
