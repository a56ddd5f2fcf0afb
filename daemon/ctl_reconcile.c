#include "autoconfig.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "config.h"
#include "ctl_common.h"
#include "reconcile.h"
#include "status_call.h"
#include "store_ctl.h"
#include "store_reconcile.h"
#include "xmalloc.h"

/* Transactions one run looks at, at most. */
#define RECONCILE_LIMIT "100000"

/* Options of `reconcile`. */
struct reconcile_args {
	const char *order;
	bool has_since;
	int64_t since_ms;
};

/* What one run found, for the report. */
struct reconcile_run {
	struct ctl_context *ctx;
	struct event_base *base;
	struct status_client *status;
	size_t transactions, compared, failed, findings, alerts;
	struct json_object *jfindings, *jsettlements, *jfailed;
};

/* One status call, waited for on the command's own loop. */
struct status_wait {
	bool done;
	enum status_result result;
	struct gw_history history;
	char error[256];
	struct event_base *base;
};

/* Takes reconcile's own options. */
static int reconcile_option(struct ctl_context *ctx, int opt, const char *value, void *arg)
{
	(void)ctx;
	struct reconcile_args *a = arg;
	const char *why = NULL;
	switch (opt) {
	case 'o':
		a->order = value;
		return CTL_EXIT_OK;
	case 's':
		if (!config_parse_duration(value, &a->since_ms, &why) || a->since_ms <= 0)
			return ctl_usage_error(&ctl_cmd_reconcile,
			                       "reconcile: --since %s: %s (e.g. 90m, 24h, 7d)",
			                       value, why ? why : "must be greater than 0");
		a->has_since = true;
		return CTL_EXIT_OK;
	}
	return CTL_EXIT_USAGE;
}

/* The status call's end: keeps the history, stops the loop. */
static void on_status(enum status_result result, struct gw_history *history, int http_status,
                      const char *error, void *arg)
{
	struct status_wait *w = arg;
	w->done = true;
	w->result = result;
	if (history != NULL) {
		w->history = *history;
		memset(history, 0, sizeof(*history));
	}
	if (error != NULL)
		snprintf(w->error, sizeof(w->error), "%s (http %d)", error, http_status);
	event_base_loopbreak(w->base);
}

/* Adds the settlement of a row whose outcome is unknown to the report. */
static void report_settlement(struct reconcile_run *run, const char *transaction,
                              const struct store_rc_rows *rows, const struct rc_settlement *s)
{
	const struct rc_row *row = &rows->rows[s->row];
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "transaction_id", json_object_new_string(transaction));
	json_object_object_add(o, "modification_id", json_object_new_string(rows->uuids[s->row]));
	json_object_object_add(o, "kind", json_object_new_string(mod_kind_name(row->kind)));
	json_object_object_add(o, "gateway",
	                       json_object_new_string(reconcile_settle_name(s->settle)));
	json_object_object_add(o, "gateway_status",
	                       s->gateway_status ? json_object_new_string(s->gateway_status)
	                                         : NULL);
	json_object_object_add(o, "resend_safe", json_object_new_boolean(s->resend));
	json_object_array_add(run->jsettlements, o);
	if (!run->ctx->json)
		printf("unknown outcome %s %s (transaction %s): at the gateway %s%s%s%s\n",
		       mod_kind_name(row->kind), rows->uuids[s->row], transaction,
		       reconcile_settle_name(s->settle), s->gateway_status ? " with status " : "",
		       s->gateway_status ? s->gateway_status : "",
		       s->resend ? "; it can still be made: resending is safe" : "");
}

/* Adds one finding to the report. */
static void report_finding(struct reconcile_run *run, const char *transaction, const char *order,
                           const struct gw_history *h, const struct store_rc_rows *rows,
                           const struct rc_finding *f)
{
	char *text = store_rc_finding_text(f, h, rows);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "transaction_id", json_object_new_string(transaction));
	json_object_object_add(o, "order_id", json_object_new_string(order));
	json_object_object_add(o, "kind", json_object_new_string(reconcile_drift_name(f->drift)));
	json_object_object_add(
	    o, "modification_id",
	    f->drift == RC_DRIFT_LEDGER ? json_object_new_string(rows->uuids[f->row]) : NULL);
	json_object_object_add(o, "gateway_modification_id",
	                       f->drift == RC_DRIFT_EXTERNAL && h->entries[f->entry].modification_id
	                           ? json_object_new_string(h->entries[f->entry].modification_id)
	                           : NULL);
	json_object_object_add(o, "message", json_object_new_string(text));
	json_object_array_add(run->jfindings, o);
	if (!run->ctx->json)
		printf("%s: order %s, transaction %s: %s\n", reconcile_drift_name(f->drift), order,
		       transaction, text);
	free(text);
}

/* Compares one transaction and records what differs; false on a database failure. */
static bool reconcile_one(struct reconcile_run *run, const char *transaction, const char *order,
                          bool order_open)
{
	struct status_wait w = {.base = run->base};
	status_client_get(run->status, transaction, on_status, &w);
	while (!w.done)
		event_base_loop(run->base, EVLOOP_ONCE);
	if (w.result != STATUS_OK) {
		run->failed++;
		json_object_array_add(run->jfailed, json_object_new_string(transaction));
		ctl_error("reconcile: transaction %s (order %s): the status call failed, nothing "
		          "decided: %s: %s",
		          transaction, order, status_result_name(w.result), w.error);
		return true;
	}
	PGresult *res =
	    ctl_ok(run->ctx, "reconcile", store_ctl_rc_rows(run->ctx->conn, transaction));
	if (res == NULL) {
		response_history_free(&w.history);
		return false;
	}
	struct store_rc_rows rows;
	store_rc_rows_read(res, &rows);
	PQclear(res);
	struct rc_report rep;
	reconcile_compare(rows.rows, rows.n, &w.history, order_open, &rep);
	run->compared++;
	run->findings += rep.nfindings;
	const char *owner = rows.order_id ? rows.order_id : order;
	for (size_t i = 0; i < rep.nsettlements; i++)
		report_settlement(run, transaction, &rows, &rep.settlements[i]);
	for (size_t i = 0; i < rep.nfindings; i++)
		report_finding(run, transaction, owner, &w.history, &rows, &rep.findings[i]);
	struct store_rc_record rec;
	store_rc_record_build(transaction, owner, &w.history, &rows, &rep,
	                      run->ctx->cfg->max_attempts, &rec);
	res = ctl_ok(run->ctx, "reconcile", store_ctl_rc_record(run->ctx->conn, &rec));
	bool ok = res != NULL;
	if (ok)
		run->alerts += (size_t)PQntuples(res);
	PQclear(res);
	store_rc_record_free(&rec);
	reconcile_report_free(&rep);
	store_rc_rows_free(&rows);
	response_history_free(&w.history);
	return ok;
}

/* Prints the summary; returns the exit code. */
static int reconcile_summary(struct reconcile_run *run)
{
	int rc = run->findings > 0 ? CTL_EXIT_DRIFT
	         : run->failed > 0 ? CTL_EXIT_FAILURE
	                           : CTL_EXIT_OK;
	if (run->ctx->json) {
		struct json_object *doc = json_object_new_object();
		json_object_object_add(doc, "transactions",
		                       json_object_new_int64((int64_t)run->transactions));
		json_object_object_add(doc, "compared",
		                       json_object_new_int64((int64_t)run->compared));
		json_object_object_add(doc, "agree", json_object_new_boolean(rc == CTL_EXIT_OK));
		json_object_object_add(doc, "findings", json_object_get(run->jfindings));
		json_object_object_add(doc, "unknown_outcomes", json_object_get(run->jsettlements));
		json_object_object_add(doc, "status_failed", json_object_get(run->jfailed));
		json_object_object_add(doc, "alerts_raised",
		                       json_object_new_int64((int64_t)run->alerts));
		ctl_print_json(doc);
	} else {
		printf("%zu transaction(s) compared with SmartPay, %zu difference(s), %zu status "
		       "call(s) failed, %zu new alert(s): %s\n",
		       run->compared, run->findings, run->failed, run->alerts,
		       rc == CTL_EXIT_OK      ? "ledger and gateway agree"
		       : rc == CTL_EXIT_DRIFT ? "ledger and gateway differ"
		                              : "not every transaction could be compared");
	}
	return rc;
}

/* Runs the comparison over the targets; returns the exit code. */
static int reconcile_targets(struct reconcile_run *run, const struct reconcile_args *a)
{
	struct ctl_context *ctx = run->ctx;
	char *relation = ctl_relation(ctx, "reconcile");
	if (relation == NULL)
		return CTL_EXIT_FAILURE;
	char *statuses = store_rc_statuses_json(ctx->cfg);
	char lookback[24];
	/* one order: whatever its age */
	int64_t lb = a->has_since ? a->since_ms
	             : a->order   ? INT64_C(100) * 366 * 86400000
	                          : ctx->cfg->reconcile_lookback_ms;
	snprintf(lookback, sizeof(lookback), "%lld", (long long)lb);
	PGresult *res = ctl_ok(ctx, "reconcile",
	                       store_ctl_rc_targets(ctx->conn, relation, lookback, a->order,
	                                            statuses, RECONCILE_LIMIT));
	free(statuses);
	free(relation);
	if (res == NULL)
		return CTL_EXIT_FAILURE;
	run->transactions = (size_t)PQntuples(res);
	bool ok = true;
	for (int i = 0; ok && i < PQntuples(res); i++)
		ok = reconcile_one(run, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		                   strcmp(PQgetvalue(res, i, 2), "t") == 0);
	PQclear(res);
	if (!ok)
		return CTL_EXIT_FAILURE;
	if (a->order != NULL && run->transactions == 0) {
		ctl_error("reconcile: order %s has no SmartPay transaction to compare", a->order);
		return CTL_EXIT_FAILURE;
	}
	return reconcile_summary(run);
}

/* `reconcile [--order ID | --since DURATION]`: compares the ledger with SmartPay. */
static int reconcile_run(struct ctl_context *ctx, int argc, char **argv)
{
	static const struct option options[] = {
	    {"order", required_argument, NULL, 'o'},
	    {"since", required_argument, NULL, 's'},
	    {NULL, 0, NULL, 0},
	};
	struct reconcile_args a = {0};
	int rc;
	if (!ctl_begin(ctx, &ctl_cmd_reconcile, argc, argv, "o:s:", options, reconcile_option, &a,
	               &rc))
		return rc;
	if (a.order != NULL && a.has_since)
		return ctl_usage_error(&ctl_cmd_reconcile,
		                       "reconcile: --order and --since exclude each other");
	char *why = NULL;
	char *secret = config_read_secret(ctx->cfg, &why);
	if (secret == NULL) {
		ctl_error("reconcile: %s", why);
		free(why);
		return CTL_EXIT_USAGE;
	}
	struct reconcile_run run = {.ctx = ctx,
	                            .jfindings = json_object_new_array(),
	                            .jsettlements = json_object_new_array(),
	                            .jfailed = json_object_new_array()};
	run.base = event_base_new();
	run.status = run.base ? status_client_new(run.base, ctx->cfg, secret) : NULL;
	if (run.status == NULL) {
		ctl_error("reconcile: the HTTP client could not be set up");
		rc = CTL_EXIT_FAILURE;
	} else {
		rc = reconcile_targets(&run, &a);
	}
	status_client_free(run.status);
	if (run.base)
		event_base_free(run.base);
	json_object_put(run.jfindings);
	json_object_put(run.jsettlements);
	json_object_put(run.jfailed);
	explicit_bzero(secret, strlen(secret));
	free(secret);
	return rc;
}

const struct ctl_command ctl_cmd_reconcile = {
    "reconcile", "[--order ID | --since DURATION]",
    "compare the ledger with SmartPay's record; exit 3 when they differ", reconcile_run};
