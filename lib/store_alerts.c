#include "autoconfig.h"

#include "store_alerts.h"

#include "config.h"
#include "duration.h"
#include "pgconn.h"
#include "store.h"
#include "store_indexes.h"
#include "store_internal.h"
#include "xmalloc.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the expiry sweep ---- */

/* The sweep statement over the orders relation `relation` (quoted). Parameters:
 * $1 authorization validity (interval), $2 thresholds in ms (bigint[], descending),
 * $3 their labels (text[]), $4 their severities (text[]), $5 lookback for expired
 * authorizations (interval), $6 how far ahead deadlines are read (interval: the largest
 * threshold plus the longest gap between two sweeps), $7 alerts per kind logged and
 * posted one by one (int). Rows: ('alert', id, kind, severity, order, modification,
 * message) per inserted alert that is not summarised (summaries included),
 * ('capture', NULL, NULL, NULL, order, modification, transaction) per pending capture
 * past its deadline with no live lease, made due now for the engine (which asks the
 * transaction's status before it records needs_attention; the sweep never decides it),
 * one ('summarised', count) and one ('next', delay ms).
 * The orders relation is read only inside the window of deadlines, through indexes on
 * authorization_expires_at and authorized_at (store_indexes.h). Every part of the
 * statement sees one snapshot, and `now()` is one instant. */
static char *sweep_sql(const char *relation, const char *deadline, const char *window,
                       const char *id_type)
{
	return xasprintf(
	    "WITH thr AS (SELECT t.ms, t.label, t.severity FROM unnest($2::bigint[], "
	    "$3::text[], $4::text[]) AS t(ms, label, severity)), "
	    "open_auth AS MATERIALIZED (SELECT o.id::text AS order_id, d.deadline FROM %s o "
	    "CROSS JOIN LATERAL (SELECT %s AS deadline) d "
	    "WHERE (%s OR o.id = ANY(smartpay.castable_ids($9::text[], $10::regtype)::%s[])) "
	    "AND o.smartpay_transaction_id IS NOT NULL "
	    "AND o.smartpay_transaction_id::text <> '' AND d.deadline > now() - $5::interval "
	    "AND d.deadline <= now() + $6::interval "
	    "AND " STORE_NOT_HISTORY_SQL " AND NOT EXISTS (SELECT 1 FROM smartpay.modifications m "
	    "WHERE m.order_id = o.id::text AND m.state = 'succeeded' "
	    "AND m.kind IN ('capture', 'cancel', 'cancel_or_refund'))), "
	    "due AS (SELECT a.order_id, a.deadline, 'authorization_expired'::text AS kind, "
	    "'critical'::text AS severity, a.order_id AS dedup_key, NULL::text AS label "
	    "FROM open_auth a WHERE a.deadline <= now() "
	    "UNION ALL (SELECT DISTINCT ON (a.order_id) a.order_id, a.deadline, "
	    "'authorization_expiring', t.severity, a.order_id || ':' || t.label, t.label "
	    "FROM open_auth a JOIN thr t ON a.deadline <= now() + t.ms * interval '1 millisecond' "
	    "WHERE a.deadline > now() ORDER BY a.order_id, t.ms)), "
	    "fresh AS (SELECT d.* FROM due d WHERE NOT EXISTS (SELECT 1 FROM smartpay.alerts x "
	    "WHERE x.kind = d.kind AND x.dedup_key = d.dedup_key)), "
	    "att AS (UPDATE smartpay.modifications m SET "
	    "next_attempt_at = least(m.next_attempt_at, now()), "
	    "lease_owner = NULL, lease_expires_at = NULL, updated_at = now() "
	    "WHERE m.kind = 'capture' AND m.state = 'pending' AND m.deadline <= now() "
	    "AND (m.lease_owner IS NULL OR coalesce(m.lease_expires_at, m.deadline) < now()) "
	    "RETURNING m.modification_id, m.order_id, m.transaction_id), "
	    "cand AS (SELECT f.kind, f.severity, f.order_id, cap.modification_id, f.dedup_key, "
	    "'authorization of order ' || f.order_id || CASE WHEN f.label IS NULL "
	    "THEN ' expired at ' || to_char(f.deadline AT TIME ZONE 'UTC', "
	    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || ' without a capture' "
	    "ELSE ' expires at ' || to_char(f.deadline AT TIME ZONE 'UTC', "
	    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || ' (within ' || f.label || ') "
	    "and is not captured' END AS message, "
	    "row_number() OVER (PARTITION BY f.kind ORDER BY f.deadline, f.order_id) AS rn "
	    "FROM fresh f LEFT JOIN LATERAL (SELECT m.modification_id "
	    "FROM smartpay.modifications m WHERE m.order_id = f.order_id AND m.kind = 'capture' "
	    "AND m.state <> 'refused' LIMIT 1) cap ON true), "
	    "ins AS (INSERT INTO smartpay.alerts (kind, severity, order_id, modification_id, "
	    "dedup_key, message, summarised, webhook_state) "
	    "SELECT c.kind, c.severity, c.order_id, c.modification_id, c.dedup_key, c.message, "
	    "c.rn > $7::int, CASE WHEN c.rn > $7::int THEN 'none' ELSE 'pending' END FROM cand c "
	    "ON CONFLICT (kind, dedup_key) DO NOTHING "
	    "RETURNING alert_id, kind, severity, order_id, modification_id, message, summarised), "
	    "summ AS (INSERT INTO smartpay.alerts (kind, severity, dedup_key, message) "
	    "SELECT 'alerts_summarised', CASE WHEN bool_or(i.severity = 'critical') "
	    "THEN 'critical' ELSE 'warning' END, i.kind || ':' || min(i.alert_id), "
	    "count(*) || ' more ' || i.kind || ' alerts in one expiry sweep (alert ids ' || "
	    "min(i.alert_id) || ' to ' || max(i.alert_id) || ') are recorded but neither logged "
	    "nor posted one by one; list them with smartpayctl alerts --kind ' || i.kind "
	    "FROM ins i WHERE i.summarised GROUP BY i.kind "
	    "ON CONFLICT (kind, dedup_key) DO NOTHING "
	    "RETURNING alert_id, kind, severity, order_id, modification_id, message), "
	    "nxt AS (SELECT min(s.x) AS at FROM ("
	    "SELECT (SELECT min(a.deadline) FROM open_auth a "
	    "WHERE a.deadline > now() + t.ms * interval '1 millisecond') "
	    "- t.ms * interval '1 millisecond' AS x "
	    "FROM unnest($2::bigint[] || 0::bigint) AS t(ms) "
	    "UNION ALL SELECT min(p.at) FROM (SELECT greatest(m.deadline, CASE WHEN "
	    "m.lease_owner IS NULL THEN m.deadline ELSE coalesce(m.lease_expires_at, m.deadline) "
	    "END) AS at FROM smartpay.modifications m WHERE m.kind = 'capture' "
	    "AND m.state = 'pending' AND m.deadline IS NOT NULL) p WHERE p.at > now()) s) "
	    "SELECT 'alert', alert_id::text, kind, severity, order_id, modification_id::text, "
	    "message FROM ins WHERE NOT summarised "
	    "UNION ALL SELECT 'alert', alert_id::text, kind, severity, order_id, "
	    "modification_id::text, message FROM summ "
	    "UNION ALL SELECT 'capture', NULL, NULL, NULL, order_id, modification_id::text, "
	    "transaction_id FROM att "
	    "UNION ALL SELECT 'summarised', count(*)::text, NULL, NULL, NULL, NULL, NULL "
	    "FROM ins WHERE summarised "
	    "UNION ALL SELECT 'next', ceil(extract(epoch FROM at - now()) * 1000)::bigint::text, "
	    "NULL, NULL, NULL, NULL, NULL FROM nxt "
	    "UNION ALL SELECT 'now', now()::text, NULL, NULL, NULL, NULL, NULL",
	    relation, deadline, window, id_type);
}

/* Completion of the sweep: its rows as a struct store_sweep_result for fn.sweep. */
static void sweep_done(PGresult *res, const char *error, void *arg)
{
	struct store_call *call = arg;
	struct store_sweep_result r = {.next_delay_ms = -1};
	if (error) {
		call->fn.sweep(NULL, error, call->arg);
		store_call_free(call);
		return;
	}
	int n = PQntuples(res);
	struct store_new_alert *alerts = xcalloc((size_t)n + 1, sizeof(*alerts));
	struct store_expired_capture *caps = xcalloc((size_t)n + 1, sizeof(*caps));
	for (int i = 0; i < n; i++) {
		const char *what = PQgetvalue(res, i, 0);
		if (strcmp(what, "alert") == 0) {
			struct store_new_alert *a = &alerts[r.nalerts++];
			a->alert_id = store_field_int(res, i, 1);
			a->kind = PQgetvalue(res, i, 2);
			a->severity = PQgetvalue(res, i, 3);
			a->order_id = store_field_value(res, i, 4);
			a->modification_id = store_field_value(res, i, 5);
			a->message = PQgetvalue(res, i, 6);
		} else if (strcmp(what, "capture") == 0) {
			struct store_expired_capture *c = &caps[r.ncaptures++];
			c->order_id = store_field_value(res, i, 4);
			c->modification_id = store_field_value(res, i, 5);
			c->transaction_id = store_field_value(res, i, 6);
		} else if (strcmp(what, "summarised") == 0) {
			r.nsummarised = (size_t)store_field_int(res, i, 1);
		} else if (strcmp(what, "now") == 0) {
			r.db_now = store_field_value(res, i, 1);
		} else if (!PQgetisnull(res, i, 1)) {
			r.next_delay_ms = store_field_int(res, i, 1);
			if (r.next_delay_ms < 0)
				r.next_delay_ms = 0;
		}
	}
	r.alerts = alerts;
	r.captures = caps;
	call->fn.sweep(&r, NULL, call->arg);
	free(alerts);
	free(caps);
	store_call_free(call);
}

/* The deadlines a sweep reads: for the deadline itself and each threshold, those that
 * crossed it since the previous sweep ($8, its now()) or will within $11 (for the next
 * crossing); without a previous sweep ($8 NULL) every deadline from the lookback ($5)
 * on. Through the indexes on the deadline columns, one range per threshold. */
static char *sweep_window(const struct store *st, size_t nthresholds)
{
	char *w = xstrdup("false");
	for (size_t i = 0; i <= nthresholds; i++) {
		char *t = i < nthresholds
		              ? xasprintf("($2::bigint[])[%zu] * interval '1 millisecond'", i + 1)
		              : xstrdup("interval '0'");
		char *after = xasprintf("coalesce($8::timestamptz + %s, now() - $5::interval)", t);
		char *until = xasprintf("now() + %s + $11::interval", t);
		char *range = store_deadline_window(st, "$1::interval", after, until);
		char *next = xasprintf("%s OR %s", w, range);
		free(w);
		w = next;
		free(range);
		free(after);
		free(until);
		free(t);
	}
	return w;
}

bool store_sweep_expiry(struct store *st, int64_t lookback_ms, int64_t horizon_ms,
                        const struct store_sweep_since *since, store_sweep_fn done, void *arg)
{
	if (!pg_conn_is_up(store_conn(st)) || store_id_type(st) == NULL)
		return false;
	const struct sp_config *cfg = store_config(st);
	size_t n = cfg->expiry_threshold_count;
	char(*labels)[32] = xcalloc(n + 1, sizeof(*labels));
	char **label_v = xcalloc(n + 1, sizeof(*label_v));
	char **severity_v = xcalloc(n + 1, sizeof(*severity_v));
	for (size_t i = 0; i < n; i++) {
		duration_format(cfg->expiry_thresholds_ms[i], DURATION_EXACT_HOURS, labels[i]);
		label_v[i] = labels[i];
		/* thresholds are sorted descending: the last one is the most urgent */
		severity_v[i] = i + 1 == n ? "critical" : "warning";
	}
	char *thresholds = store_int_array(cfg->expiry_thresholds_ms, n);
	char *label_list = store_text_array(label_v, n);
	char *severity_list = store_text_array(severity_v, n);
	char validity[STORE_INTERVAL_TEXT], lookback[STORE_INTERVAL_TEXT],
	    ahead[STORE_INTERVAL_TEXT];
	char step[STORE_INTERVAL_TEXT], each[STORE_INT_TEXT];
	store_interval_text(cfg->authorization_validity_ms, validity);
	store_interval_text(lookback_ms, lookback);
	/* thresholds are sorted descending: the first one reaches furthest */
	store_interval_text((n ? cfg->expiry_thresholds_ms[0] : 0) + horizon_ms, ahead);
	store_interval_text(horizon_ms, step);
	store_int_text(cfg->summary_after, each);
	char *deadline = store_deadline_sql(st, "$1");
	char *window = sweep_window(st, n);
	char *sql = sweep_sql(store_orders_relation(st), deadline, window, store_id_type(st));
	free(deadline);
	free(window);
	char *ids =
	    store_text_array(since ? (char *const *)since->ids : NULL, since ? since->nids : 0);
	const char *p[] = {validity,   thresholds,
	                   label_list, severity_list,
	                   lookback,   ahead,
	                   each,       since ? since->since : NULL,
	                   ids,        store_id_type(st),
	                   step};
	struct store_call *c = store_call_new(st, arg);
	c->fn.sweep = done;
	bool ok = store_call_query(c, sql, 11, p, sweep_done);
	free(ids);
	free(sql);
	free(thresholds);
	free(label_list);
	free(severity_list);
	free(labels);
	free(label_v);
	free(severity_v);
	return ok;
}

/* ---- simple statements ---- */

bool store_alert_gateway(struct store *st, const char *dedup_key, const char *message,
                         store_done_fn done, void *arg)
{
	static const char sql[] =
	    "INSERT INTO smartpay.alerts (kind, severity, dedup_key, message) "
	    "VALUES ('gateway_unreachable', 'critical', $1, $2) "
	    "ON CONFLICT (kind, dedup_key) DO NOTHING";
	if (!pg_conn_is_up(store_conn(st)))
		return false;
	const char *p[] = {dedup_key, message};
	struct store_call *c = store_call_new(st, arg);
	c->fn.done = done;
	return store_call_query(c, sql, 2, p, store_call_done);
}

bool store_listen_alerts(struct store *st, store_done_fn done, void *arg)
{
	if (!pg_conn_is_up(store_conn(st)))
		return false;
	struct store_call *c = store_call_new(st, arg);
	c->fn.done = done;
	return store_call_exec(c, "LISTEN smartpay_alerts; LISTEN smartpay_orders",
	                       store_call_done);
}

/* Completion of the index check: the columns without an index for fn.indexes. */
static void indexes_done(PGresult *res, const char *error, void *arg)
{
	struct store_call *call = arg;
	if (error) {
		call->fn.indexes(NULL, 0, error, call->arg);
		store_call_free(call);
		return;
	}
	int n = PQntuples(res);
	const char **cols = xcalloc((size_t)n + 1, sizeof(*cols));
	for (int i = 0; i < n; i++)
		cols[i] = PQgetvalue(res, i, 0);
	call->fn.indexes(cols, (size_t)n, NULL, call->arg);
	free(cols);
	store_call_free(call);
}

bool store_check_indexes(struct store *st, store_indexes_fn done, void *arg)
{
	if (!pg_conn_is_up(store_conn(st)))
		return false;
	char *columns = store_index_columns_literal();
	const char *p[] = {store_config(st)->orders_relation, columns};
	struct store_call *c = store_call_new(st, arg);
	c->fn.indexes = done;
	bool ok = store_call_query(c, store_index_check_sql, 2, p, indexes_done);
	free(columns);
	return ok;
}

/* ---- webhook delivery ---- */

/* Completion of the webhook claim: the claimed alerts and the next delay for
 * fn.webhook_claim. */
static void webhook_claim_done(PGresult *res, const char *error, void *arg)
{
	struct store_call *call = arg;
	if (error) {
		call->fn.webhook_claim(NULL, 0, -1, error, call->arg);
		store_call_free(call);
		return;
	}
	int n = PQntuples(res);
	struct store_webhook_alert *rows = xcalloc((size_t)n + 1, sizeof(*rows));
	size_t count = 0;
	int64_t next = -1;
	for (int i = 0; i < n; i++) {
		if (PQgetisnull(res, i, 0)) {
			if (!PQgetisnull(res, i, 8))
				next = store_field_int(res, i, 8);
			continue;
		}
		struct store_webhook_alert *a = &rows[count++];
		a->alert_id = store_field_int(res, i, 0);
		a->kind = PQgetvalue(res, i, 1);
		a->severity = PQgetvalue(res, i, 2);
		a->order_id = store_field_value(res, i, 3);
		a->modification_id = store_field_value(res, i, 4);
		a->message = PQgetvalue(res, i, 5);
		a->created_at = PQgetvalue(res, i, 6);
		a->attempts = (int)store_field_int(res, i, 7);
	}
	call->fn.webhook_claim(rows, count, next, NULL, call->arg);
	free(rows);
	store_call_free(call);
}

bool store_webhook_claim(struct store *st, int limit, int64_t lease_ms, store_webhook_claim_fn done,
                         void *arg)
{
	static const char sql[] =
	    "WITH due AS (SELECT alert_id FROM smartpay.alerts WHERE webhook_state = 'pending' "
	    "AND acknowledged_at IS NULL AND webhook_next_attempt_at <= now() "
	    "ORDER BY webhook_next_attempt_at, alert_id LIMIT $1 FOR UPDATE SKIP LOCKED), "
	    "claimed AS (UPDATE smartpay.alerts a SET webhook_next_attempt_at = now() + "
	    "$2::interval FROM due WHERE a.alert_id = due.alert_id RETURNING a.alert_id, a.kind, "
	    "a.severity, a.order_id, a.modification_id, a.message, a.created_at, "
	    "a.webhook_attempts), "
	    "nxt AS (SELECT min(webhook_next_attempt_at) AS at FROM smartpay.alerts "
	    "WHERE webhook_state = 'pending' AND acknowledged_at IS NULL "
	    "AND alert_id NOT IN (SELECT alert_id FROM due)) "
	    "SELECT c.alert_id, c.kind, c.severity, c.order_id, c.modification_id::text, "
	    "c.message, to_char(c.created_at AT TIME ZONE 'UTC', "
	    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), c.webhook_attempts, NULL::bigint "
	    "FROM claimed c UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
	    "CASE WHEN nxt.at IS NOT NULL THEN greatest(0, ceil(extract(epoch FROM nxt.at - now()) "
	    "* 1000))::bigint END FROM nxt";
	if (!pg_conn_is_up(store_conn(st)))
		return false;
	char lim[STORE_INT_TEXT], lease[STORE_INTERVAL_TEXT];
	const char *p[] = {store_int_text(limit, lim), store_interval_text(lease_ms, lease)};
	struct store_call *c = store_call_new(st, arg);
	c->fn.webhook_claim = done;
	return store_call_query(c, sql, 2, p, webhook_claim_done);
}

bool store_webhook_record(struct store *st, const struct store_webhook_result *results, size_t n,
                          store_done_fn done, void *arg)
{
	static const char sql[] =
	    "WITH u AS (SELECT * FROM json_to_recordset($1::json) AS u(id bigint, ok bool, "
	    "error text, delay_ms bigint)) "
	    "UPDATE smartpay.alerts a SET webhook_attempts = a.webhook_attempts + 1, "
	    "webhook_state = CASE WHEN u.ok THEN 'delivered' ELSE a.webhook_state END, "
	    "webhook_delivered_at = CASE WHEN u.ok THEN now() ELSE a.webhook_delivered_at END, "
	    "webhook_last_error = CASE WHEN u.ok THEN a.webhook_last_error ELSE u.error END, "
	    "webhook_next_attempt_at = CASE WHEN u.ok THEN a.webhook_next_attempt_at "
	    "ELSE now() + u.delay_ms * interval '1 millisecond' END "
	    "FROM u WHERE a.alert_id = u.id AND a.webhook_state = 'pending'";
	if (!pg_conn_is_up(store_conn(st)))
		return false;
	json_object *arr = json_object_new_array_ext((int)n);
	for (size_t i = 0; i < n; i++) {
		const struct store_webhook_result *r = &results[i];
		json_object *o = json_object_new_object();
		json_object_object_add(o, "id", json_object_new_int64(r->alert_id));
		json_object_object_add(o, "ok", json_object_new_boolean(r->delivered));
		json_object_object_add(o, "error",
		                       r->error ? json_object_new_string(r->error) : NULL);
		json_object_object_add(o, "delay_ms", json_object_new_int64(r->retry_delay_ms));
		json_object_array_add(arr, o);
	}
	const char *p[] = {json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN)};
	struct store_call *c = store_call_new(st, arg);
	c->fn.done = done;
	bool ok = store_call_query(c, sql, 1, p, store_call_done);
	json_object_put(arr);
	return ok;
}
