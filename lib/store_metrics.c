#include "autoconfig.h"

#include "store_metrics.h"

#include "clock.h"
#include "config.h"
#include "pgconn.h"
#include "store.h"
#include "store_alerts.h"
#include "store_internal.h"
#include "xmalloc.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const int64_t store_pending_age_bounds_s[STORE_PENDING_AGE_BUCKETS - 1] = {60, 300, 3600, 86400};
const char *const store_pending_age_names[STORE_PENDING_AGE_BUCKETS] = {
    "under_1m", "1m_5m", "5m_1h", "1h_1d", "over_1d"};

/* How far past the largest threshold the reads keep deadlines: each read reads the
 * open authorizations whose deadline entered this horizon since the previous one. */
#define EXPIRING_LOOKAHEAD_MS (15 * 60 * 1000)
/* The safety net: every this often a read takes the whole window again (a deadline the
 * shop moved without a status change, an order brought in from the history, a capture
 * another daemon made while its notification was not seen). */
#define EXPIRING_FULL_EVERY_MS (30 * 60 * 1000)
/* More ids to read again than this: read the whole window instead. */
#define EXPIRING_RECHECK_MAX 2000

/* An open authorization the reads know of. */
struct expiring_auth {
	char *order_id;
	int64_t deadline_ms; /* unix ms, the database's clock */
};

/* A list of order ids. */
struct id_list {
	char **v;
	size_t n, cap;
};

/* What the gauges reads remember between them (one per housekeeping store): every open
 * authorization whose deadline lies between the last read's now() and `until`, so that
 * a read only has to look at the deadlines that entered since and at the orders that
 * changed, not at every authorization of the window. */
struct store_expiring {
	struct expiring_auth *v; /* sorted by deadline after each read */
	size_t n, cap;
	char *until;            /* timestamptz text of the last read's horizon; NULL: read all */
	int64_t full_mono_ms;   /* when the last whole-window read was asked */
	int64_t validity_ms;    /* the configuration of that read */
	int64_t horizon_ms;     /* its largest threshold */
	bool lost;              /* notifications may have been missed: read all */
	struct id_list noted;   /* orders notified since the last read was asked */
	struct id_list again;   /* orders notified before that: read a second time */
	struct id_list pending; /* orders with a pending capture or cancel at the last read */
	struct id_list sent;    /* the ids the read in flight reads again */
	bool sent_full;
};

/* The gauges query. Parameters: $1 authorization validity (interval), $2 expiry
 * thresholds in ms (bigint[]), $3 pending age bucket bounds in seconds (float8[]), $4 the
 * previous read's horizon (timestamptz, NULL: the whole window), $5 how far past the
 * largest threshold to read (interval), $6 orders to read again (text[]), $7 the id
 * column's type (regtype). Columns: pending counts by bucket index (JSON object),
 * oldest pending age in ms, [order id, deadline ms] of the open authorizations found
 * (JSON array), open alerts by kind (JSON object), the orders with a pending capture,
 * cancel or cancel_or_refund (JSON array), now() in unix ms, the horizon (text).
 * An authorization is open while the order has a transaction id and no succeeded
 * capture, cancel or cancel_or_refund; the orders relation is read through the indexes
 * of the sweep, only for the deadlines between the previous horizon and the new one, and
 * through its id index for the orders to read again. Open alerts by kind come from
 * smartpay.alert_counts, which triggers on smartpay.alerts keep (sql/014). */
static char *gauges_sql(const char *relation, const char *deadline, const char *window,
                        const char *id_type)
{
	return xasprintf(
	    "WITH pend AS (SELECT order_id, kind, created_at, width_bucket(extract(epoch FROM "
	    "now() - created_at)::float8, $3::float8[]) AS b FROM smartpay.modifications "
	    "WHERE state = 'pending'), "
	    "lim AS MATERIALIZED (SELECT now() + coalesce((SELECT max(t) FROM unnest($2::bigint[]) "
	    "t), 0) * interval '1 millisecond' + $5::interval AS until), "
	    "open_auth AS MATERIALIZED (SELECT o.id::text AS order_id, d.deadline FROM %s o "
	    "CROSS JOIN LATERAL (SELECT %s AS deadline) d "
	    "WHERE (%s OR o.id = ANY(smartpay.castable_ids($6::text[], $7::regtype)::%s[])) "
	    "AND o.smartpay_transaction_id IS NOT NULL "
	    "AND o.smartpay_transaction_id::text <> '' AND d.deadline > now() "
	    "AND d.deadline <= (SELECT until FROM lim) AND " STORE_NOT_HISTORY_SQL " "
	    "AND NOT EXISTS (SELECT 1 FROM smartpay.modifications m "
	    "WHERE m.order_id = o.id::text AND m.state = 'succeeded' "
	    "AND m.kind IN ('capture', 'cancel', 'cancel_or_refund'))) "
	    "SELECT (SELECT json_object_agg(b, n) FROM (SELECT b, count(*) AS n FROM pend "
	    "GROUP BY b) c), "
	    "coalesce((SELECT (extract(epoch FROM now() - min(created_at)) * 1000)::bigint "
	    "FROM pend), 0), "
	    "(SELECT json_agg(json_build_array(a.order_id, "
	    "floor(extract(epoch FROM a.deadline) * 1000)::bigint)) FROM open_auth a), "
	    "(SELECT json_object_agg(c.kind, c.open ORDER BY c.kind) FROM smartpay.alert_counts c "
	    "WHERE c.open > 0), "
	    "(SELECT json_agg(DISTINCT p.order_id) FROM pend p "
	    "WHERE p.kind IN ('capture', 'cancel', 'cancel_or_refund')), "
	    "floor(extract(epoch FROM now()) * 1000)::bigint, (SELECT until::text FROM lim)",
	    relation, deadline, window, id_type);
}

/* Empties a list of ids. */
static void ids_clear(struct id_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Appends a copy of `id`. */
static void ids_add(struct id_list *l, const char *id)
{
	l->v = xgrow(l->v, &l->cap, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = xstrdup(id);
}

/* qsort/bsearch order of order ids (pointers to strings). */
static int str_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts the ids and drops repeats. */
static void ids_unique(struct id_list *l)
{
	if (l->n < 2)
		return;
	qsort(l->v, l->n, sizeof(*l->v), str_ptr_cmp);
	size_t k = 1;
	for (size_t i = 1; i < l->n; i++) {
		if (strcmp(l->v[i], l->v[k - 1]) == 0)
			free(l->v[i]);
		else
			l->v[k++] = l->v[i];
	}
	l->n = k;
}

/* True when sorted `l` holds `id`. */
static bool ids_has(const struct id_list *l, const char *id)
{
	return l->n > 0 && bsearch(&id, l->v, l->n, sizeof(*l->v), str_ptr_cmp) != NULL;
}

/* Formats the ids as a PostgreSQL text[] literal, every element quoted. */
static char *ids_literal(const struct id_list *l)
{
	size_t cap = 3;
	for (size_t i = 0; i < l->n; i++)
		cap += 2 * strlen(l->v[i]) + 3;
	char *out = xmalloc(cap);
	char *p = out;
	*p++ = '{';
	for (size_t i = 0; i < l->n; i++) {
		if (i)
			*p++ = ',';
		*p++ = '"';
		for (const char *c = l->v[i]; *c; c++) {
			if (*c == '"' || *c == '\\')
				*p++ = '\\';
			*p++ = *c;
		}
		*p++ = '"';
	}
	*p++ = '}';
	*p = '\0';
	return out;
}

void store_expiring_free(struct store_expiring *x)
{
	if (x == NULL)
		return;
	for (size_t i = 0; i < x->n; i++)
		free(x->v[i].order_id);
	free(x->v);
	free(x->until);
	ids_clear(&x->noted);
	ids_clear(&x->again);
	ids_clear(&x->pending);
	ids_clear(&x->sent);
	free(x);
}

void store_gauges_order_changed(struct store *st, const char *order_id)
{
	struct store_expiring *x = *store_expiring_slot(st);
	if (x == NULL)
		return;
	if (order_id == NULL)
		x->lost = true;
	else if (!x->lost && x->noted.n <= EXPIRING_RECHECK_MAX)
		ids_add(&x->noted, order_id);
}

/* Forgets what the reads knew: the next one reads the whole window. */
static void expiring_reset(struct store_expiring *x)
{
	for (size_t i = 0; i < x->n; i++)
		free(x->v[i].order_id);
	x->n = 0;
	free(x->until);
	x->until = NULL;
	ids_clear(&x->again);
	ids_clear(&x->pending);
}

/* Chooses what the next read reads again, or the whole window; fills x->sent. */
static void expiring_plan(struct store_expiring *x, const struct sp_config *cfg, int64_t now)
{
	int64_t horizon = cfg->expiry_threshold_count ? cfg->expiry_thresholds_ms[0] : 0;
	ids_clear(&x->sent);
	bool full = x->until == NULL || x->lost ||
	            x->validity_ms != cfg->authorization_validity_ms || x->horizon_ms != horizon ||
	            now - x->full_mono_ms >= EXPIRING_FULL_EVERY_MS ||
	            x->noted.n + x->again.n + x->pending.n > EXPIRING_RECHECK_MAX;
	if (full) {
		expiring_reset(x);
		x->lost = false;
		x->full_mono_ms = now;
		x->validity_ms = cfg->authorization_validity_ms;
		x->horizon_ms = horizon;
	} else {
		for (size_t i = 0; i < x->again.n; i++)
			ids_add(&x->sent, x->again.v[i]);
		for (size_t i = 0; i < x->pending.n; i++)
			ids_add(&x->sent, x->pending.v[i]);
	}
	/* notified orders are read now and once more at the next read: a capture the
	 * engine records just after this read's snapshot still shows */
	ids_clear(&x->again);
	x->again = x->noted;
	memset(&x->noted, 0, sizeof(x->noted));
	for (size_t i = 0; i < x->again.n; i++)
		ids_add(&x->sent, x->again.v[i]);
	ids_unique(&x->sent);
	x->sent_full = full;
}

/* qsort order of known authorizations: by deadline. */
static int auth_deadline_cmp(const void *a, const void *b)
{
	const struct expiring_auth *x = a, *y = b;
	return x->deadline_ms < y->deadline_ms ? -1 : x->deadline_ms > y->deadline_ms;
}

/* Merges one read's findings: the orders read again and those found leave, those found
 * (re)enter, deadlines that passed leave; then counts each threshold. */
static bool expiring_merge(struct store_expiring *x, struct json_object *found,
                           struct json_object *pending, int64_t now_ms, const char *until,
                           const struct sp_config *cfg, struct store_gauges *g)
{
	if (found && !json_object_is_type(found, json_type_array))
		return false;
	if (pending && !json_object_is_type(pending, json_type_array))
		return false;
	struct id_list gone = x->sent;
	memset(&x->sent, 0, sizeof(x->sent));
	size_t nfound = found ? json_object_array_length(found) : 0;
	for (size_t i = 0; i < nfound; i++) {
		struct json_object *pair = json_object_array_get_idx(found, i);
		if (!json_object_is_type(pair, json_type_array) ||
		    json_object_array_length(pair) != 2)
			goto bad;
		ids_add(&gone, json_object_get_string(json_object_array_get_idx(pair, 0)));
	}
	ids_unique(&gone);
	size_t k = 0;
	for (size_t i = 0; i < x->n; i++) {
		if (x->v[i].deadline_ms <= now_ms || ids_has(&gone, x->v[i].order_id))
			free(x->v[i].order_id);
		else
			x->v[k++] = x->v[i];
	}
	x->n = k;
	ids_clear(&gone);
	for (size_t i = 0; i < nfound; i++) {
		struct json_object *pair = json_object_array_get_idx(found, i);
		x->v = xgrow(x->v, &x->cap, x->n + 1, sizeof(*x->v));
		x->v[x->n].order_id =
		    xstrdup(json_object_get_string(json_object_array_get_idx(pair, 0)));
		x->v[x->n].deadline_ms = json_object_get_int64(json_object_array_get_idx(pair, 1));
		x->n++;
	}
	if (x->n > 1)
		qsort(x->v, x->n, sizeof(*x->v), auth_deadline_cmp);
	free(x->until);
	x->until = xstrdup(until);
	ids_clear(&x->pending);
	size_t np = pending ? json_object_array_length(pending) : 0;
	for (size_t i = 0; i < np; i++)
		ids_add(&x->pending, json_object_get_string(json_object_array_get_idx(pending, i)));

	size_t nt = cfg->expiry_threshold_count;
	g->thresholds_ms = xcalloc(nt ? nt : 1, sizeof(*g->thresholds_ms));
	g->expiring = xcalloc(nt ? nt : 1, sizeof(*g->expiring));
	for (size_t t = 0; t < nt; t++) {
		int64_t limit = now_ms + cfg->expiry_thresholds_ms[t];
		/* deadlines are sorted and all after now: count those up to the limit */
		size_t lo = 0, hi = x->n;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (x->v[mid].deadline_ms <= limit)
				lo = mid + 1;
			else
				hi = mid;
		}
		g->thresholds_ms[t] = cfg->expiry_thresholds_ms[t];
		g->expiring[t] = lo;
	}
	g->nthresholds = nt;
	return true;
bad:
	ids_clear(&gone);
	return false;
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

/* Fills `g` from the query's single row, merging what it found of expiring
 * authorizations into `x`; false when the row is not what was asked for. */
static bool gauges_parse(PGresult *res, struct store_expiring *x, const struct sp_config *cfg,
                         struct store_gauges *g)
{
	if (PQntuples(res) != 1 || PQnfields(res) != 7 || PQgetisnull(res, 0, 5) ||
	    PQgetisnull(res, 0, 6))
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
	g->oldest_pending_age_ms = store_field_int(res, 0, 1);

	struct json_object *found = json_column(res, 2);
	struct json_object *closing = json_column(res, 4);
	ok = expiring_merge(x, found, closing, store_field_int(res, 0, 5), PQgetvalue(res, 0, 6),
	                    cfg, g);
	json_object_put(found);
	json_object_put(closing);

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

/* The answer to the gauges query: merged and handed over, or the memory dropped. */
static void gauges_done(PGresult *res, const char *error, void *arg)
{
	struct store_call *c = arg;
	struct store_expiring *x = *store_expiring_slot(c->st);
	if (error || res == NULL) {
		/* what changed meanwhile is not known: the next read takes the whole window */
		expiring_reset(x);
		c->fn.gauges(NULL, error ? error : "no result", c->arg);
		store_call_free(c);
		return;
	}
	struct store_gauges g;
	memset(&g, 0, sizeof(g));
	if (!gauges_parse(res, x, store_config(c->st), &g)) {
		store_gauges_clear(&g);
		expiring_reset(x);
		c->fn.gauges(NULL, "unexpected answer to the gauges query", c->arg);
		store_call_free(c);
		return;
	}
	c->fn.gauges(&g, NULL, c->arg);
	store_gauges_clear(&g);
	store_call_free(c);
}

bool store_read_gauges(struct store *st, store_gauges_fn done, void *arg)
{
	if (!pg_conn_is_up(store_conn(st)) || store_id_type(st) == NULL)
		return false;
	const struct sp_config *cfg = store_config(st);
	struct store_expiring **slot = store_expiring_slot(st);
	if (*slot == NULL)
		*slot = xcalloc(1, sizeof(**slot));
	struct store_expiring *x = *slot;
	expiring_plan(x, cfg, clock_mono_ms());
	char validity[STORE_INTERVAL_TEXT], lookahead[STORE_INTERVAL_TEXT];
	store_interval_text(cfg->authorization_validity_ms, validity);
	store_interval_text(EXPIRING_LOOKAHEAD_MS, lookahead);
	char *thresholds = store_int_array(cfg->expiry_thresholds_ms, cfg->expiry_threshold_count);
	char *bounds = store_int_array(store_pending_age_bounds_s, STORE_PENDING_AGE_BUCKETS - 1);
	char *ids = ids_literal(&x->sent);
	char *deadline = store_deadline_sql(st, "$1");
	char *window = store_deadline_window(st, "$1::interval", "coalesce($4::timestamptz, now())",
	                                     "(SELECT until FROM lim)");
	char *sql = gauges_sql(store_orders_relation(st), deadline, window, store_id_type(st));
	free(deadline);
	free(window);
	const char *params[7] = {validity,  thresholds, bounds,           x->until,
	                         lookahead, ids,        store_id_type(st)};
	struct store_call *c = store_call_new(st, arg);
	c->fn.gauges = done;
	bool ok = store_call_query(c, sql, 7, params, gauges_done);
	free(sql);
	free(ids);
	free(bounds);
	free(thresholds);
	if (!ok)
		expiring_reset(x);
	return ok;
}
