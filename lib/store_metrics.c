#include "autoconfig.h"

#include "store_metrics.h"

#include "config.h"
#include "pgconn.h"
#include "store.h"
#include "store_alerts.h"
#include "xmalloc.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const int64_t store_pending_age_bounds_s[STORE_PENDING_AGE_BUCKETS - 1] = {60, 300, 3600, 86400};
const char *const store_pending_age_names[STORE_PENDING_AGE_BUCKETS] = {
    "under_1m", "1m_5m", "5m_1h", "1h_1d", "over_1d"};

/* The gauges query. Parameters: $1 authorization validity (interval), $2 expiry
 * thresholds in ms (bigint[]), $3 pending age bucket bounds in seconds (float8[]).
 * Columns: pending counts by bucket index (JSON object), oldest pending age in ms,
 * [threshold_ms, count] pairs (JSON array), open alerts by kind (JSON object).
 * An authorization is open while the order has a transaction id and no succeeded
 * capture, cancel or cancel_or_refund; the orders relation is read only inside the
 * window of deadlines the thresholds cover, through the same indexes as the sweep. */
static char *gauges_sql(const char *relation, const char *deadline, const char *window)
{
	return xasprintf(
	    "WITH pend AS (SELECT created_at, width_bucket(extract(epoch FROM now() - "
	    "created_at)::float8, $3::float8[]) AS b FROM smartpay.modifications "
	    "WHERE state = 'pending'), "
	    "open_auth AS (SELECT d.deadline FROM %s o "
	    "CROSS JOIN LATERAL (SELECT %s AS deadline) d "
	    "WHERE %s AND o.smartpay_transaction_id IS NOT NULL "
	    "AND o.smartpay_transaction_id::text <> '' AND d.deadline > now() "
	    "AND d.deadline <= now() + coalesce((SELECT max(t) FROM unnest($2::bigint[]) t), 0) "
	    "* interval '1 millisecond' AND " STORE_NOT_HISTORY_SQL " "
	    "AND NOT EXISTS (SELECT 1 FROM smartpay.modifications m "
	    "WHERE m.order_id = o.id::text AND m.state = 'succeeded' "
	    "AND m.kind IN ('capture', 'cancel', 'cancel_or_refund'))) "
	    "SELECT (SELECT json_object_agg(b, n) FROM (SELECT b, count(*) AS n FROM pend "
	    "GROUP BY b) c), "
	    "coalesce((SELECT (extract(epoch FROM now() - min(created_at)) * 1000)::bigint "
	    "FROM pend), 0), "
	    "(SELECT json_agg(json_build_array(t.ms, (SELECT count(*) FROM open_auth a "
	    "WHERE a.deadline <= now() + t.ms * interval '1 millisecond')) ORDER BY t.i) "
	    "FROM unnest($2::bigint[]) WITH ORDINALITY AS t(ms, i)), "
	    "(SELECT json_object_agg(kind, n ORDER BY kind) FROM (SELECT kind, count(*) AS n "
	    "FROM smartpay.alerts WHERE acknowledged_at IS NULL GROUP BY kind) a)",
	    relation, deadline, window);
}

void store_gauges_clear(struct store_gauges *g)
{
	free(g->thresholds_ms);
	free(g->expiring);
	for (size_t i = 0; i < g->nalerts; i++)
		free(g->alerts[i].kind);
	free(g->alerts);
	memset(g, 0, sizeof(*g));
}

/* Parses a column that holds JSON (NULL for SQL NULL); returns a new reference or NULL. */
static struct json_object *json_column(PGresult *res, int col)
{
	if (PQgetisnull(res, 0, col))
		return NULL;
	return json_tokener_parse(PQgetvalue(res, 0, col));
}

static int alert_count_cmp(const void *a, const void *b)
{
	return strcmp(((const struct store_alert_count *)a)->kind,
	              ((const struct store_alert_count *)b)->kind);
}

/* Fills `g` from the query's single row; false when the row is not what was asked for. */
static bool gauges_parse(PGresult *res, struct store_gauges *g)
{
	if (PQntuples(res) != 1 || PQnfields(res) != 4)
		return false;
	bool ok = true;
	struct json_object *pending = json_column(res, 0);
	if (pending) {
		json_object_object_foreach(pending, key, val)
		{
			long b = strtol(key, NULL, 10);
			if (b >= 0 && b < STORE_PENDING_AGE_BUCKETS)
				g->pending[b] = (uint64_t)json_object_get_int64(val);
		}
		json_object_put(pending);
	}
	g->oldest_pending_age_ms = strtoll(PQgetvalue(res, 0, 1), NULL, 10);

	struct json_object *expiring = json_column(res, 2);
	if (expiring && json_object_is_type(expiring, json_type_array)) {
		size_t n = json_object_array_length(expiring);
		g->thresholds_ms = xcalloc(n ? n : 1, sizeof(*g->thresholds_ms));
		g->expiring = xcalloc(n ? n : 1, sizeof(*g->expiring));
		for (size_t i = 0; i < n; i++) {
			struct json_object *pair = json_object_array_get_idx(expiring, i);
			if (!json_object_is_type(pair, json_type_array) ||
			    json_object_array_length(pair) != 2) {
				ok = false;
				break;
			}
			g->thresholds_ms[i] =
			    json_object_get_int64(json_object_array_get_idx(pair, 0));
			g->expiring[i] =
			    (uint64_t)json_object_get_int64(json_object_array_get_idx(pair, 1));
			g->nthresholds = i + 1;
		}
	} else if (expiring) {
		ok = false;
	}
	json_object_put(expiring);

	struct json_object *alerts = json_column(res, 3);
	if (alerts && json_object_is_type(alerts, json_type_object)) {
		size_t n = (size_t)json_object_object_length(alerts);
		g->alerts = xcalloc(n ? n : 1, sizeof(*g->alerts));
		json_object_object_foreach(alerts, key, val)
		{
			g->alerts[g->nalerts].kind = xstrdup(key);
			g->alerts[g->nalerts].count = (uint64_t)json_object_get_int64(val);
			g->nalerts++;
		}
		qsort(g->alerts, g->nalerts, sizeof(*g->alerts), alert_count_cmp);
	} else if (alerts) {
		ok = false;
	}
	json_object_put(alerts);
	return ok;
}

static void gauges_done(PGresult *res, const char *error, void *arg)
{
	struct store_gauges_read *rd = arg;
	if (error || res == NULL) {
		rd->done(NULL, error ? error : "no result", rd->arg);
		return;
	}
	struct store_gauges g;
	memset(&g, 0, sizeof(g));
	if (!gauges_parse(res, &g)) {
		store_gauges_clear(&g);
		rd->done(NULL, "unexpected answer to the gauges query", rd->arg);
		return;
	}
	rd->done(&g, NULL, rd->arg);
	store_gauges_clear(&g);
}

/* Formats integers as a PostgreSQL array literal, e.g. {86400000,14400000}. */
static char *int_array_literal(const int64_t *v, size_t n)
{
	char *out = xmalloc(2 + n * 21 + 1);
	char *p = out;
	*p++ = '{';
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s%lld", i ? "," : "", (long long)v[i]);
	*p++ = '}';
	*p = '\0';
	return out;
}

bool store_read_gauges(struct store *st, struct store_gauges_read *rd)
{
	struct pg_conn *pc = store_conn(st);
	if (!pg_conn_is_up(pc))
		return false;
	const struct sp_config *cfg = store_config(st);
	char validity[40];
	snprintf(validity, sizeof(validity), "%lld milliseconds",
	         (long long)cfg->authorization_validity_ms);
	char *thresholds =
	    int_array_literal(cfg->expiry_thresholds_ms, cfg->expiry_threshold_count);
	char *bounds = int_array_literal(store_pending_age_bounds_s, STORE_PENDING_AGE_BUCKETS - 1);
	char *deadline = store_deadline_sql(st, "$1");
	char *window = store_deadline_window(
	    st, "$1::interval", "now()",
	    "now() + coalesce((SELECT max(t) FROM unnest($2::bigint[]) t), 0) "
	    "* interval '1 millisecond'");
	char *sql = gauges_sql(store_orders_relation(st), deadline, window);
	free(deadline);
	free(window);
	const char *params[3] = {validity, thresholds, bounds};
	bool ok = pg_conn_query(pc, sql, 3, params, gauges_done, rd);
	free(sql);
	free(bounds);
	free(thresholds);
	return ok;
}
