#include "autoconfig.h"

#include "store_ctl.h"

#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "duration.h"
#include "store_alerts.h"
#include "store_internal.h"
#include "store_reconcile.h"
#include "xmalloc.h"

/* Rows a whole-relation read (preview, rescan) may return: all of them. */
#define WHOLE_RELATION_LIMIT "2147483647"

/* The first three order ids of a group, after its count. */
#define SAMPLE_OF_THREE                                                                            \
	"(array_agg(order_id ORDER BY order_id))[1], "                                             \
	"(array_agg(order_id ORDER BY order_id))[2], (array_agg(order_id ORDER BY "                \
	"order_id))[3] "

PGresult *store_ctl_expiring(PGconn *conn, const char *relation, const struct sp_config *cfg,
                             int64_t window_ms, int limit)
{
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
	char validity[STORE_INTERVAL_TEXT], window[STORE_INTERVAL_TEXT], most[STORE_INT_TEXT];
	const char *params[3] = {store_interval_text(cfg->authorization_validity_ms, validity),
	                         store_interval_text(window_ms, window),
	                         store_int_text(limit, most)};
	return store_ctl_exec_built(conn, sql, 3, params);
}

PGresult *store_ctl_shape(PGconn *conn, const char *relation)
{
	return store_ctl_exec1(conn, STORE_SHAPE_SQL, relation);
}

PGresult *store_ctl_adopted(PGconn *conn, const struct store_shape *shape)
{
	/* the daemon's start-up check (lib/store.c, store_prepare) */
	char *sql = xasprintf("SELECT EXISTS (SELECT 1 FROM smartpay.adoption), NOT EXISTS "
	                      "(SELECT 1 FROM %s) OR EXISTS (SELECT 1 FROM smartpay.modifications)",
	                      shape->relation);
	return store_ctl_exec_built(conn, sql, 0, NULL);
}

PGresult *store_ctl_history_count(PGconn *conn)
{
	return store_ctl_exec(conn, "SELECT count(*) FROM smartpay.history", 0, NULL);
}

/* Runs `sql` (malloc'd, freed) with the candidate query's parameters of `cfg`, every row
 * allowed; `rule_only`: only the first three, the history rule's. */
static PGresult *exec_candidate_params(PGconn *conn, const struct sp_config *cfg, char *sql,
                                       bool rule_only)
{
	struct store_candidate_params p;
	store_candidate_params_init(&p, cfg, 0, NULL, 0);
	snprintf(p.limit, sizeof(p.limit), "%s", WHOLE_RELATION_LIMIT);
	PGresult *res = store_ctl_exec_built(conn, sql, rule_only ? 3 : p.count, p.values);
	store_candidate_params_clear(&p);
	return res;
}

PGresult *store_ctl_would_be_history(PGconn *conn, const struct store_shape *shape,
                                     const struct sp_config *cfg)
{
	char *rule = store_history_rule(shape, "now()");
	char *sql = xasprintf("SELECT count(*) FROM %s o WHERE o.id IS NOT NULL AND "
	                      "octet_length(o.id::text) <= 1000 AND %s",
	                      shape->relation, rule);
	free(rule);
	return exec_candidate_params(conn, cfg, sql, true);
}

PGresult *store_ctl_candidates(PGconn *conn, const struct store_shape *shape,
                               const struct sp_config *cfg, bool adopted)
{
	return exec_candidate_params(conn, cfg, store_candidate_query(shape, false, adopted),
	                             false);
}

PGresult *store_ctl_requests(PGconn *conn, const struct store_shape *shape)
{
	char *sql = store_requests_query(shape->relation, true);
	const char *params[1] = {WHOLE_RELATION_LIMIT};
	return store_ctl_exec_built(conn, sql, 1, params);
}

PGresult *store_ctl_pending_by_kind(PGconn *conn)
{
	return store_ctl_exec(conn,
	                      "SELECT kind, count(*), " SAMPLE_OF_THREE
	                      "FROM smartpay.modifications WHERE state = 'pending' GROUP BY kind "
	                      "ORDER BY kind",
	                      0, NULL);
}

/* The expiry thresholds as a bigint[] literal and their labels as a text[] one, as the
 * sweep gives them (malloc'd). */
static void threshold_arrays(const struct sp_config *cfg, char **ms_list, char **label_list)
{
	size_t n = cfg->expiry_threshold_count;
	char(*labels)[DURATION_TEXT_SIZE] = xcalloc(n + 1, sizeof(*labels));
	char **items = xcalloc(n + 1, sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		duration_format(cfg->expiry_thresholds_ms[i], DURATION_EXACT_HOURS, labels[i]);
		items[i] = labels[i];
	}
	*ms_list = store_int_array(cfg->expiry_thresholds_ms, n);
	*label_list = store_text_array(items, n);
	free(items);
	free(labels);
}

/* The statement of store_ctl_due_alerts over `shape`; `adopted` false applies the
 * history rule with the cut now() instead of the baseline's rows. Malloc'd. */
static char *due_alerts_sql(const struct store_shape *shape, bool adopted)
{
	char *dl = store_deadline_sql_for(shape, "$3");
	char *rule = NULL;
	if (adopted) {
		rule = xstrdup(STORE_NOT_HISTORY_SQL);
	} else {
		char *h = store_history_rule(shape, "now()");
		rule = xasprintf("NOT %s", h);
		free(h);
	}
	char *sql = xasprintf(
	    "WITH thr AS (SELECT t.ms, t.label FROM unnest($4::bigint[], $5::text[]) "
	    "AS t(ms, label)), "
	    "open_auth AS (SELECT o.id::text AS order_id, %s AS deadline FROM %s o "
	    "WHERE o.smartpay_transaction_id IS NOT NULL "
	    "AND o.smartpay_transaction_id::text <> '' AND %s "
	    /* typed even when the baseline's rows, not the history rule, use none of them */
	    "AND ($1::text[], $2::text[]) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
	    "smartpay.modifications m "
	    "WHERE m.order_id = o.id::text AND m.state = 'succeeded' "
	    "AND m.kind IN ('capture', 'cancel', 'cancel_or_refund'))), "
	    "due AS (SELECT a.order_id, 'authorization_expired'::text AS kind, "
	    "a.order_id AS dedup_key FROM open_auth a WHERE a.deadline <= now() "
	    "AND a.deadline > now() - $6::interval "
	    "UNION ALL (SELECT DISTINCT ON (a.order_id) a.order_id, 'authorization_expiring', "
	    "a.order_id || ':' || t.label FROM open_auth a JOIN thr t "
	    "ON a.deadline <= now() + t.ms * interval '1 millisecond' "
	    "WHERE a.deadline > now() ORDER BY a.order_id, t.ms) "
	    "UNION ALL SELECT m.order_id, 'needs_attention', NULL FROM smartpay.modifications m "
	    "WHERE m.kind = 'capture' AND m.state = 'pending' AND m.deadline <= now() "
	    "AND (m.lease_owner IS NULL OR coalesce(m.lease_expires_at, m.deadline) < now())), "
	    "fresh AS (SELECT d.* FROM due d WHERE d.dedup_key IS NULL OR NOT EXISTS "
	    "(SELECT 1 FROM smartpay.alerts x WHERE x.kind = d.kind AND x.dedup_key = "
	    "d.dedup_key)) "
	    "SELECT kind, count(*), " SAMPLE_OF_THREE "FROM fresh GROUP BY kind ORDER BY kind",
	    dl, shape->relation, rule);
	free(dl);
	free(rule);
	return sql;
}

PGresult *store_ctl_due_alerts(PGconn *conn, const struct store_shape *shape,
                               const struct sp_config *cfg, bool adopted)
{
	char *sql = due_alerts_sql(shape, adopted);
	char *ms_list, *label_list, lookback[STORE_INTERVAL_TEXT];
	threshold_arrays(cfg, &ms_list, &label_list);
	/* the look-back of lib/alerts.c's sweep */
	store_interval_text(cfg->expired_lookback_ms, lookback);
	struct store_candidate_params p;
	store_candidate_params_init(&p, cfg, 0, NULL, 0);
	const char *params[6] = {p.values[0], p.values[1], p.values[2],
	                         ms_list,     label_list,  lookback};
	PGresult *res = store_ctl_exec(conn, sql, 6, params);
	store_candidate_params_clear(&p);
	free(ms_list);
	free(label_list);
	free(sql);
	return res;
}

PGresult *store_ctl_adopt(PGconn *conn, const struct store_shape *shape,
                          const struct sp_config *cfg, const char *from)
{
	char *rule = store_history_rule(shape, "coalesce($4::timestamptz, now())");
	char *sql = xasprintf(
	    "WITH h AS (INSERT INTO smartpay.history (order_id) SELECT o.id::text FROM %s o "
	    "WHERE o.id IS NOT NULL AND octet_length(o.id::text) <= 1000 AND %s "
	    /* an order the ledger knows is the daemon's already */
	    "AND NOT EXISTS (SELECT 1 FROM smartpay.modifications m "
	    "WHERE m.order_id = o.id::text) ON CONFLICT DO NOTHING RETURNING 1) "
	    "INSERT INTO smartpay.adoption (cut, history_orders) "
	    "SELECT coalesce($4::timestamptz, now()), (SELECT count(*) FROM h) "
	    "ON CONFLICT DO NOTHING RETURNING cut, history_orders, adopted_at, adopted_by",
	    shape->relation, rule);
	free(rule);
	struct store_candidate_params p;
	store_candidate_params_init(&p, cfg, 1, NULL, 0);
	const char *params[4] = {p.values[0], p.values[1], p.values[2], from};
	PGresult *res = store_ctl_exec(conn, sql, 4, params);
	store_candidate_params_clear(&p);
	free(sql);
	return res;
}

PGresult *store_ctl_adopted_at(PGconn *conn)
{
	return store_ctl_exec(conn, "SELECT adopted_at FROM smartpay.adoption", 0, NULL);
}

PGresult *store_ctl_adopt_order(PGconn *conn, const char *order)
{
	return store_ctl_exec1(
	    conn,
	    "WITH d AS (DELETE FROM smartpay.history WHERE order_id = $1 RETURNING order_id), "
	    "q AS (INSERT INTO smartpay.order_changes (order_id) SELECT order_id FROM d "
	    "RETURNING order_id) "
	    "SELECT count(*), pg_notify('smartpay_orders', $1) FROM q",
	    order);
}

PGresult *store_ctl_rescan(PGconn *conn, const struct store_shape *shape,
                           const struct sp_config *cfg)
{
	char *candidates = store_candidate_query(shape, false, true);
	char *sql = xasprintf("WITH q AS (INSERT INTO smartpay.order_changes (order_id) "
	                      "SELECT DISTINCT c.id FROM (%s) c RETURNING order_id) "
	                      "SELECT count(*) AS queued, string_agg(order_id, ', ') FILTER "
	                      "(WHERE n <= 5) AS sample FROM (SELECT order_id, row_number() OVER "
	                      "(ORDER BY order_id) AS n FROM q) s",
	                      candidates);
	free(candidates);
	return exec_candidate_params(conn, cfg, sql, false);
}

PGresult *store_ctl_notify_orders(PGconn *conn)
{
	return store_ctl_exec(conn, "NOTIFY smartpay_orders", 0, NULL);
}

PGresult *store_ctl_rc_targets(PGconn *conn, const char *relation, const char *lookback_ms,
                               const char *order, const char *statuses, const char *limit)
{
	char *sql = store_rc_targets_sql(relation);
	const char *params[5] = {lookback_ms, order, statuses, limit, ""};
	return store_ctl_exec_built(conn, sql, 5, params);
}

PGresult *store_ctl_rc_rows(PGconn *conn, const char *transaction)
{
	return store_ctl_exec1(conn, store_rc_rows_sql, transaction);
}

PGresult *store_ctl_rc_record(PGconn *conn, const struct store_rc_record *rec)
{
	return store_ctl_exec(conn, store_rc_record_sql, 9, (const char *const *)rec->params);
}
