#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ctl_common.h"
#include "xmalloc.h"

#define RETRY_REASON "requeued by operator"

/* Ends the transaction without changes; a failure adds nothing to report. */
static void rollback(struct ctl_context *ctx)
{
	PQclear(ctl_exec(ctx, "ROLLBACK", 0, NULL));
}

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
	const char *params[1] = {transaction};
	PGresult *res = ctl_query(ctx, "retry",
	                          "SELECT modification_id::text, kind FROM smartpay.modifications "
	                          "WHERE transaction_id = $1 AND state = 'pending' LIMIT 1",
	                          1, params);
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
	const char *params[1] = {id};
	PGresult *res = ctl_query(ctx, "retry", "BEGIN", 0, NULL);
	if (res == NULL)
		return CTL_EXIT_FAILURE;
	PQclear(res);

	res = ctl_query(ctx, "retry",
	                "SELECT state, transaction_id FROM smartpay.modifications "
	                "WHERE modification_id = $1::uuid FOR UPDATE",
	                1, params);
	if (res == NULL || PQntuples(res) == 0 ||
	    strcmp(PQgetvalue(res, 0, 0), "needs_attention") != 0) {
		if (res != NULL && PQntuples(res) == 0)
			ctl_error("retry: no modification %s", id);
		else if (res != NULL)
			explain_state(id, PQgetvalue(res, 0, 0));
		PQclear(res);
		rollback(ctx);
		return CTL_EXIT_FAILURE;
	}
	char *transaction = ctl_value(res, 0, 1) ? xstrdup(PQgetvalue(res, 0, 1)) : NULL;
	PQclear(res);

	/* same id, same body, attempts kept: only the schedule and the lease change */
	PGresult *upd =
	    ctl_exec(ctx,
	             "UPDATE smartpay.modifications m SET state = 'pending', "
	             "next_attempt_at = now(), lease_owner = NULL, lease_expires_at = NULL, "
	             "completed_at = NULL, reason = '" RETRY_REASON "', updated_at = now() "
	             "WHERE m.modification_id = $1::uuid RETURNING " CTL_SQL_MODIFICATION_COLUMNS
	             ", (m.deadline <= now()) AS deadline_passed",
	             1, params);
	int rc = CTL_EXIT_OK;
	if (ctl_failed(upd)) {
		if (strcmp(ctl_sqlstate(upd), "23505") == 0 && transaction != NULL) {
			rollback(ctx);
			explain_conflict(ctx, id, transaction);
		} else {
			ctl_report(ctx, "retry", upd);
			rollback(ctx);
		}
		PQclear(upd);
		rc = CTL_EXIT_FAILURE;
	} else if ((res = ctl_query(ctx, "retry", "COMMIT", 0, NULL)) == NULL) {
		PQclear(upd);
		rc = CTL_EXIT_FAILURE;
	} else {
		PQclear(res);
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
		struct json_object *doc = json_object_new_object();
		struct json_object *m = ctl_json_row(row, 0);
		json_object_object_del(m, "deadline_passed");
		ctl_json_add_amount(m);
		json_object_object_add(doc, "modification", m);
		json_object_object_add(doc, "previous_state",
		                       json_object_new_string("needs_attention"));
		ctl_print_json(doc);
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
