#include "autoconfig.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "config.h"
#include "ctl_common.h"
#include "store.h"
#include "xmalloc.h"

/* Expiring authorizations listed at most (the count covers them all). */
#define STATUS_EXPIRING_SHOWN 50
/* The expiry window when no expiry_thresholds are configured. */
#define STATUS_DEFAULT_WINDOW_MS (24 * 3600 * INT64_C(1000))

static const char *const kinds[] = {"capture", "cancel", "cancel_or_refund", "refund"};
static const char *const states[] = {"pending", "succeeded", "refused", "needs_attention"};
#define NKINDS 4
#define NSTATES 4

/* Everything status reports, as the queries returned it. */
struct status {
	long long counts[NKINDS][NSTATES];
	PGresult *oldest;   /* 0 or 1 row */
	PGresult *requests; /* count, oldest */
	PGresult *expiring; /* orders, with the total in column "total" */
	PGresult *alerts;   /* kind, severity, count */
	int64_t window_ms;
};

/* Position of `value` in `list`, or -1. */
static int index_of(const char *value, const char *const *list, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(value, list[i]) == 0)
			return i;
	return -1;
}

/* Orders whose authorization expires within the window, without a succeeded capture or
 * cancel. */
static PGresult *query_expiring(struct ctl_context *ctx, int64_t window_ms)
{
	char *relation = ctl_quoted_relation(ctx);
	if (relation == NULL) {
		ctl_error("status: orders relation %s: %s", ctx->cfg->orders_relation,
		          PQerrorMessage(ctx->conn));
		return NULL;
	}
	char *sql = xasprintf(
	    "SELECT o.id::text AS order_id, o.status::text AS status, "
	    "o.smartpay_transaction_id::text AS transaction_id, d.deadline, "
	    "floor(extract(epoch FROM d.deadline - now()))::bigint AS expires_in_seconds, "
	    "cap.state AS capture_state, count(*) OVER () AS total "
	    "FROM %s o "
	    "CROSS JOIN LATERAL (SELECT smartpay.order_deadline(o.authorized_at, "
	    "o.authorization_expires_at, $1::interval) AS deadline) d "
	    "LEFT JOIN LATERAL (SELECT m.state FROM smartpay.modifications m "
	    "WHERE m.order_id = o.id::text AND m.kind = 'capture' "
	    "ORDER BY m.state = 'refused', m.created_at DESC LIMIT 1) cap ON true "
	    "WHERE d.deadline > now() AND d.deadline <= now() + $2::interval "
	    "AND " STORE_NOT_HISTORY_SQL " "
	    "AND NOT EXISTS (SELECT 1 FROM smartpay.modifications m WHERE m.order_id = o.id::text "
	    "AND m.state = 'succeeded' AND m.kind IN ('capture', 'cancel', 'cancel_or_refund')) "
	    "ORDER BY d.deadline, o.id::text LIMIT $3",
	    relation);
	char validity[48], window[48], limit[16];
	snprintf(validity, sizeof(validity), "%lld milliseconds",
	         (long long)ctx->cfg->authorization_validity_ms);
	snprintf(window, sizeof(window), "%lld milliseconds", (long long)window_ms);
	snprintf(limit, sizeof(limit), "%d", STATUS_EXPIRING_SHOWN);
	const char *params[3] = {validity, window, limit};
	PGresult *res = ctl_query(ctx, "status: orders relation", sql, 3, params);
	free(sql);
	free(relation);
	return res;
}

/* Runs every query; false after reporting a failure. */
static bool status_load(struct ctl_context *ctx, struct status *st)
{
	PGresult *res = ctl_query(ctx, "status",
	                          "SELECT kind, state, count(*) FROM smartpay.modifications "
	                          "GROUP BY kind, state",
	                          0, NULL);
	if (res == NULL)
		return false;
	for (int row = 0; row < PQntuples(res); row++) {
		int k = index_of(PQgetvalue(res, row, 0), kinds, NKINDS);
		int s = index_of(PQgetvalue(res, row, 1), states, NSTATES);
		if (k >= 0 && s >= 0)
			st->counts[k][s] = strtoll(PQgetvalue(res, row, 2), NULL, 10);
	}
	PQclear(res);

	st->oldest = ctl_query(
	    ctx, "status",
	    "SELECT modification_id::text AS modification_id, order_id, kind, attempts, "
	    "created_at, floor(extract(epoch FROM now() - created_at))::bigint AS age_seconds, "
	    "next_attempt_at FROM smartpay.modifications WHERE state = 'pending' "
	    "ORDER BY created_at LIMIT 1",
	    0, NULL);
	if (st->oldest == NULL)
		return false;
	st->requests =
	    ctl_query(ctx, "status",
	              "SELECT count(*) AS count, min(requested_at) AS oldest_requested_at "
	              "FROM smartpay.requests WHERE modification_id IS NULL",
	              0, NULL);
	if (st->requests == NULL)
		return false;
	st->alerts = ctl_query(ctx, "status",
	                       "SELECT kind, severity, count(*) FROM smartpay.alerts "
	                       "WHERE acknowledged_at IS NULL GROUP BY kind, severity "
	                       "ORDER BY kind, severity",
	                       0, NULL);
	if (st->alerts == NULL)
		return false;
	st->expiring = query_expiring(ctx, st->window_ms);
	return st->expiring != NULL;
}

/* Releases the query results. */
static void status_free(struct status *st)
{
	PQclear(st->oldest);
	PQclear(st->requests);
	PQclear(st->expiring);
	PQclear(st->alerts);
}

/* The total of the expiring orders (all of them, not only those listed). */
static long long expiring_total(const struct status *st)
{
	return PQntuples(st->expiring) > 0
	           ? strtoll(PQgetvalue(st->expiring, 0, PQfnumber(st->expiring, "total")), NULL,
	                     10)
	           : 0;
}

/* The status as one JSON document. */
static struct json_object *status_json(const struct status *st)
{
	struct json_object *doc = json_object_new_object();
	struct json_object *mods = json_object_new_object();
	struct json_object *by_state = json_object_new_object(),
	                   *by_kind = json_object_new_object();
	long long total = 0;

	for (int s = 0; s < NSTATES; s++) {
		long long n = 0;
		for (int k = 0; k < NKINDS; k++)
			n += st->counts[k][s];
		json_object_object_add(by_state, states[s], json_object_new_int64(n));
		total += n;
	}
	for (int k = 0; k < NKINDS; k++) {
		struct json_object *kind = json_object_new_object();
		long long n = 0;
		for (int s = 0; s < NSTATES; s++) {
			json_object_object_add(kind, states[s],
			                       json_object_new_int64(st->counts[k][s]));
			n += st->counts[k][s];
		}
		json_object_object_add(kind, "total", json_object_new_int64(n));
		json_object_object_add(by_kind, kinds[k], kind);
	}
	json_object_object_add(mods, "total", json_object_new_int64(total));
	json_object_object_add(mods, "by_state", by_state);
	json_object_object_add(mods, "by_kind", by_kind);
	json_object_object_add(doc, "modifications", mods);

	json_object_object_add(doc, "oldest_pending",
	                       PQntuples(st->oldest) > 0 ? ctl_json_row(st->oldest, 0) : NULL);
	json_object_object_add(doc, "open_requests", ctl_json_row(st->requests, 0));

	struct json_object *expiring = json_object_new_object(), *orders = json_object_new_array();
	json_object_object_add(expiring, "window_seconds",
	                       json_object_new_int64(st->window_ms / 1000));
	json_object_object_add(expiring, "count", json_object_new_int64(expiring_total(st)));
	for (int row = 0; row < PQntuples(st->expiring); row++) {
		struct json_object *o = ctl_json_row(st->expiring, row);
		json_object_object_del(o, "total");
		json_object_array_add(orders, o);
	}
	json_object_object_add(expiring, "orders", orders);
	json_object_object_add(doc, "expiring", expiring);

	struct json_object *alerts = json_object_new_object(), *akind = json_object_new_object();
	struct json_object *severity = json_object_new_object();
	long long warning = 0, critical = 0;
	for (int row = 0; row < PQntuples(st->alerts); row++) {
		const char *kind = PQgetvalue(st->alerts, row, 0);
		long long n = strtoll(PQgetvalue(st->alerts, row, 2), NULL, 10);
		struct json_object *prev = NULL;
		if (json_object_object_get_ex(akind, kind, &prev))
			n += json_object_get_int64(prev);
		json_object_object_add(akind, kind, json_object_new_int64(n));
		if (strcmp(PQgetvalue(st->alerts, row, 1), "critical") == 0)
			critical += strtoll(PQgetvalue(st->alerts, row, 2), NULL, 10);
		else
			warning += strtoll(PQgetvalue(st->alerts, row, 2), NULL, 10);
	}
	json_object_object_add(severity, "warning", json_object_new_int64(warning));
	json_object_object_add(severity, "critical", json_object_new_int64(critical));
	json_object_object_add(alerts, "total", json_object_new_int64(warning + critical));
	json_object_object_add(alerts, "by_kind", akind);
	json_object_object_add(alerts, "by_severity", severity);
	json_object_object_add(doc, "open_alerts", alerts);
	return doc;
}

/* The modification counts as a kind x state table. */
static void print_counts(const struct status *st)
{
	const char *headers[NSTATES + 2] = {"MODIFICATIONS"};
	for (int s = 0; s < NSTATES; s++)
		headers[s + 1] = states[s];
	headers[NSTATES + 1] = "total";
	struct ctl_table *t = ctl_table_new(NSTATES + 2, headers);
	long long column[NSTATES + 1] = {0};

	for (int c = 1; c < NSTATES + 2; c++)
		ctl_table_align_right(t, (size_t)c);
	for (int k = 0; k <= NKINDS; k++) {
		char cells[NSTATES + 1][24];
		const char *row[NSTATES + 2] = {k < NKINDS ? kinds[k] : "total"};
		long long sum = 0;
		for (int s = 0; s < NSTATES; s++) {
			long long n = k < NKINDS ? st->counts[k][s] : column[s];
			if (k < NKINDS)
				column[s] += n;
			sum += n;
			snprintf(cells[s], sizeof(cells[s]), "%lld", n);
			row[s + 1] = cells[s];
		}
		snprintf(cells[NSTATES], sizeof(cells[NSTATES]), "%lld", sum);
		row[NSTATES + 1] = cells[NSTATES];
		ctl_table_add(t, row);
	}
	ctl_table_print(t, NULL);
	ctl_table_free(t);
}

/* The status for people. */
static void status_print(const struct status *st)
{
	char a[32], b[32];

	print_counts(st);
	if (PQntuples(st->oldest) > 0) {
		const PGresult *o = st->oldest;
		printf(
		    "\noldest pending: %s (%s of order %s), %s old, %s attempts, next attempt %s\n",
		    PQgetvalue(o, 0, 0), PQgetvalue(o, 0, 2), PQgetvalue(o, 0, 1),
		    ctl_duration_human(strtoll(PQgetvalue(o, 0, 5), NULL, 10), a),
		    PQgetvalue(o, 0, 3), ctl_time_human(ctl_value(o, 0, 6), b));
	} else {
		printf("\noldest pending: none\n");
	}
	printf("open shop requests: %s", PQgetvalue(st->requests, 0, 0));
	if (ctl_value(st->requests, 0, 1) != NULL)
		printf(" (oldest %s)", ctl_time_human(ctl_value(st->requests, 0, 1), a));
	printf("\n");

	printf("\nauthorizations expiring within %s without a succeeded capture or cancel: %lld\n",
	       ctl_duration_human(st->window_ms / 1000, a), expiring_total(st));
	if (PQntuples(st->expiring) > 0) {
		static const char *const headers[] = {"ORDER",    "STATUS",     "TRANSACTION",
		                                      "DEADLINE", "EXPIRES IN", "CAPTURE"};
		struct ctl_table *t = ctl_table_new(6, headers);
		ctl_table_align_right(t, 4);
		for (int row = 0; row < PQntuples(st->expiring); row++) {
			const PGresult *e = st->expiring;
			const char *cells[6] = {
			    ctl_value(e, row, 0),
			    ctl_value(e, row, 1),
			    ctl_value(e, row, 2),
			    ctl_time_human(ctl_value(e, row, 3), a),
			    ctl_duration_human(strtoll(PQgetvalue(e, row, 4), NULL, 10), b),
			    ctl_value(e, row, 5)};
			ctl_table_add(t, cells);
		}
		ctl_table_print(t, "  ");
		ctl_table_free(t);
		if (expiring_total(st) > PQntuples(st->expiring))
			printf("  (the %d most urgent shown)\n", PQntuples(st->expiring));
	}

	long long open = 0;
	for (int row = 0; row < PQntuples(st->alerts); row++)
		open += strtoll(PQgetvalue(st->alerts, row, 2), NULL, 10);
	printf("\nopen alerts: %lld\n", open);
	if (open > 0) {
		static const char *const headers[] = {"KIND", "SEVERITY", "COUNT"};
		struct ctl_table *t = ctl_table_new(3, headers);
		ctl_table_align_right(t, 2);
		for (int row = 0; row < PQntuples(st->alerts); row++)
			ctl_table_add(t, (const char *const[]){PQgetvalue(st->alerts, row, 0),
			                                       PQgetvalue(st->alerts, row, 1),
			                                       PQgetvalue(st->alerts, row, 2)});
		ctl_table_print(t, "  ");
		ctl_table_free(t);
	}
}

/* `status`: modification counts, the oldest pending one, open requests, authorizations
 * about to expire and open alerts. */
static int status_run(struct ctl_context *ctx, int argc, char **argv)
{
	int rc;
	if (!ctl_begin(ctx, &ctl_cmd_status, argc, argv, "", NULL, NULL, NULL, &rc))
		return rc;

	/* the largest configured expiry threshold */
	struct status st = {
	    .window_ms = ctx->cfg->expiry_threshold_count > 0 ? 0 : STATUS_DEFAULT_WINDOW_MS};
	for (size_t i = 0; i < ctx->cfg->expiry_threshold_count; i++)
		if (ctx->cfg->expiry_thresholds_ms[i] > st.window_ms)
			st.window_ms = ctx->cfg->expiry_thresholds_ms[i];
	if (!status_load(ctx, &st)) {
		status_free(&st);
		return CTL_EXIT_FAILURE;
	}
	if (ctx->json)
		ctl_print_json(status_json(&st));
	else
		status_print(&st);
	status_free(&st);
	return CTL_EXIT_OK;
}

const struct ctl_command ctl_cmd_status = {
    "status",
    "",
    "counts by state and kind, oldest pending, authorizations expiring soon, open alerts",
    status_run,
};
