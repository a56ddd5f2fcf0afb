#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "config.h"
#include "ctl_orders.h"
#include "intent.h"
#include "store.h"
#include "store_alerts.h"
#include "xmalloc.h"

/* Order ids shown per line. */
#define PREVIEW_SAMPLE 5
/* Rows a preview reads: all of them. */
#define PREVIEW_LIMIT "2147483647"
/* The expiry sweep's look-back for expired authorizations (lib/alerts.c). */
#define PREVIEW_EXPIRED_LOOKBACK "7 days"
/* A well-formed modification id for the intents a preview builds and throws away. */
#define PREVIEW_MODIFICATION_ID "00000000-0000-4000-8000-000000000000"

/* One line of the preview: how many, and the first few order ids. */
struct preview_line {
	const char *group; /* send, refuse_locally, resend, alerts */
	char *key;         /* a kind of modification or of alert */
	long long count;
	char *sample[PREVIEW_SAMPLE];
	size_t nsample;
};

struct preview {
	struct preview_line lines[48];
	size_t nlines;
	bool adopted, recorded;
	long long history; /* recorded, or what adopt would record */
};

/* The line for (group, key), made when missing. */
static struct preview_line *preview_line(struct preview *pv, const char *group, const char *key)
{
	for (size_t i = 0; i < pv->nlines; i++)
		if (strcmp(pv->lines[i].group, group) == 0 && strcmp(pv->lines[i].key, key) == 0)
			return &pv->lines[i];
	if (pv->nlines == sizeof(pv->lines) / sizeof(pv->lines[0]))
		return NULL;
	struct preview_line *l = &pv->lines[pv->nlines++];
	l->group = group;
	l->key = xstrdup(key);
	return l;
}

/* Counts `n` under (group, key) with `order_id` (may be NULL) as a sample. */
static void preview_add(struct preview *pv, const char *group, const char *key, long long n,
                        const char *order_id)
{
	struct preview_line *l = preview_line(pv, group, key);
	if (l == NULL)
		return;
	l->count += n;
	if (order_id && l->nsample < PREVIEW_SAMPLE)
		l->sample[l->nsample++] = xstrdup(order_id);
}

static void preview_free(struct preview *pv)
{
	for (size_t i = 0; i < pv->nlines; i++) {
		free(pv->lines[i].key);
		for (size_t j = 0; j < pv->lines[i].nsample; j++)
			free(pv->lines[i].sample[j]);
	}
}

/* Judges one intent as the engine does: sent, or refused locally with an alert. */
static void preview_intent(struct preview *pv, const struct store_intent *in)
{
	if (in->reason) {
		preview_add(pv, "refuse_locally", mod_kind_name(in->kind), 1, in->order_id);
		preview_add(pv, "alerts", "order_refused", 1, in->order_id);
	} else {
		preview_add(pv, "send", mod_kind_name(in->kind), 1, in->order_id);
	}
}

/* The orders the daemon would turn into modifications, judged by lib/intent.c. */
static bool preview_orders(struct ctl_context *ctx, const struct ctl_orders *o, struct preview *pv)
{
	char *sql = store_candidate_query(&o->shape, false, pv->adopted);
	struct store_candidate_params p;
	store_candidate_params_init(&p, ctx->cfg, 0, NULL, 0);
	snprintf(p.limit, sizeof(p.limit), "%s", PREVIEW_LIMIT);
	PGresult *res = ctl_query(ctx, "preview", sql, p.count, p.values);
	store_candidate_params_clear(&p);
	free(sql);
	if (res == NULL)
		return false;
	size_t n;
	struct store_candidate *rows = store_candidates_read(res, &n);
	PQclear(res);
	for (size_t i = 0; i < n; i++) {
		struct store_intent in;
		char *reason = NULL;
		intent_from_order(ctx->cfg->merchant_key, PREVIEW_MODIFICATION_ID, &rows[i], &in,
		                  &reason);
		preview_intent(pv, &in);
		free(in.body);
		free(reason);
	}
	store_candidates_free(rows, n);
	return true;
}

/* The shop's open requests, judged by lib/intent.c. */
static bool preview_requests(struct ctl_context *ctx, const struct ctl_orders *o,
                             struct preview *pv)
{
	char *sql = store_requests_query(o->relation, true);
	const char *params[1] = {PREVIEW_LIMIT};
	PGresult *res = ctl_query(ctx, "preview", sql, 1, params);
	free(sql);
	if (res == NULL)
		return false;
	size_t n;
	struct store_request *rows = store_requests_read(res, &n);
	PQclear(res);
	for (size_t i = 0; i < n; i++) {
		struct store_intent in;
		char *reason = NULL;
		intent_from_request(ctx->cfg->merchant_key, PREVIEW_MODIFICATION_ID, &rows[i], &in,
		                    &reason);
		preview_intent(pv, &in);
		free(in.body);
		free(reason);
	}
	store_requests_free(rows, n);
	return true;
}

/* Adds the rows (group key, key, count, sample text[]) of a grouped query. */
static void preview_add_rows(struct preview *pv, const char *group, PGresult *res)
{
	for (int r = 0; r < PQntuples(res); r++) {
		const char *key = PQgetvalue(res, r, 0);
		long long n = strtoll(PQgetvalue(res, r, 1), NULL, 10);
		preview_add(pv, group, key, n, NULL);
		/* the sample comes as one id per row after the count: ids, in order */
		for (int c = 2; c < PQnfields(res); c++)
			if (!PQgetisnull(res, r, c))
				preview_add(pv, group, key, 0, PQgetvalue(res, r, c));
	}
}

/* Pending modifications: the daemon resends them (at once, or when due). */
static bool preview_resends(struct ctl_context *ctx, struct preview *pv)
{
	PGresult *res = ctl_query(
	    ctx, "preview",
	    "SELECT kind, count(*), (array_agg(order_id ORDER BY order_id))[1], "
	    "(array_agg(order_id ORDER BY order_id))[2], (array_agg(order_id ORDER BY "
	    "order_id))[3] "
	    "FROM smartpay.modifications WHERE state = 'pending' GROUP BY kind ORDER BY kind",
	    0, NULL);
	if (res == NULL)
		return false;
	preview_add_rows(pv, "resend", res);
	PQclear(res);
	return true;
}

/* The expiry sweep's alerts (lib/store_alerts.c) that do not exist yet, read only. */
static bool preview_alerts(struct ctl_context *ctx, const struct ctl_orders *o, struct preview *pv)
{
	const struct sp_config *cfg = ctx->cfg;
	char *dl = store_deadline_sql_for(&o->shape, "$3");
	char *rule = NULL;
	if (pv->adopted) {
		rule = xstrdup(STORE_NOT_HISTORY_SQL);
	} else {
		char *h = store_history_rule(&o->shape, "now()");
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
	    "SELECT kind, count(*), (array_agg(order_id ORDER BY order_id))[1], "
	    "(array_agg(order_id ORDER BY order_id))[2], (array_agg(order_id ORDER BY "
	    "order_id))[3] "
	    "FROM fresh GROUP BY kind ORDER BY kind",
	    dl, o->relation, rule);
	free(dl);
	free(rule);
	/* the thresholds and their labels as the sweep gives them */
	size_t n = cfg->expiry_threshold_count;
	char *ms = xstrdup("{"), *labels = xstrdup("{");
	for (size_t i = 0; i < n; i++) {
		char label[32];
		store_threshold_label(cfg->expiry_thresholds_ms[i], label);
		char *m2 = xasprintf("%s%s%lld", ms, i ? "," : "",
		                     (long long)cfg->expiry_thresholds_ms[i]);
		char *l2 = xasprintf("%s%s%s", labels, i ? "," : "", label);
		free(ms);
		free(labels);
		ms = m2;
		labels = l2;
	}
	char *ms_list = xasprintf("%s}", ms), *label_list = xasprintf("%s}", labels);
	free(ms);
	free(labels);
	struct store_candidate_params p;
	store_candidate_params_init(&p, cfg, 0, NULL, 0);
	const char *params[6] = {p.values[0], p.values[1], p.values[2],
	                         ms_list,     label_list,  PREVIEW_EXPIRED_LOOKBACK};
	PGresult *res = ctl_query(ctx, "preview", sql, 6, params);
	store_candidate_params_clear(&p);
	free(ms_list);
	free(label_list);
	free(sql);
	if (res == NULL)
		return false;
	preview_add_rows(pv, "alerts", res);
	PQclear(res);
	return true;
}

/* The baseline, or how many orders `smartpayctl adopt` would record as history now. */
static bool preview_baseline(struct ctl_context *ctx, const struct ctl_orders *o,
                             struct preview *pv)
{
	if (!ctl_orders_adopted(ctx, "preview", o, &pv->adopted, &pv->recorded))
		return false;
	PGresult *res;
	if (pv->adopted) {
		res = ctl_query(ctx, "preview", "SELECT count(*) FROM smartpay.history", 0, NULL);
	} else {
		char *rule = store_history_rule(&o->shape, "now()");
		char *sql = xasprintf("SELECT count(*) FROM %s o WHERE o.id IS NOT NULL AND "
		                      "octet_length(o.id::text) <= 1000 AND %s",
		                      o->relation, rule);
		struct store_candidate_params p;
		store_candidate_params_init(&p, ctx->cfg, 0, NULL, 0);
		res = ctl_query(ctx, "preview", sql, 3, p.values);
		store_candidate_params_clear(&p);
		free(sql);
		free(rule);
	}
	if (res == NULL)
		return false;
	pv->history = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return true;
}

/* The line's sample as "1, 2, 3". */
static char *sample_text(const struct preview_line *l)
{
	char *s = xstrdup("");
	for (size_t i = 0; i < l->nsample; i++) {
		char *t = xasprintf("%s%s%s", s, i ? ", " : "", l->sample[i]);
		free(s);
		s = t;
	}
	return s;
}

/* Prints one group as a table (every kind in `keys` first, then the others seen). */
static void print_group(const struct preview *pv, const char *group, const char *title,
                        const char *const *keys)
{
	printf("%s\n", title);
	struct ctl_table *t = ctl_table_new(3, NULL);
	ctl_table_align_right(t, 1);
	for (size_t k = 0; keys[k]; k++) {
		bool seen = false;
		for (size_t i = 0; i < pv->nlines; i++)
			if (strcmp(pv->lines[i].group, group) == 0 &&
			    strcmp(pv->lines[i].key, keys[k]) == 0)
				seen = true;
		if (!seen) {
			const char *cells[3] = {keys[k], "0", ""};
			ctl_table_add(t, cells);
		}
		for (size_t i = 0; i < pv->nlines; i++) {
			const struct preview_line *l = &pv->lines[i];
			if (strcmp(l->group, group) != 0 || strcmp(l->key, keys[k]) != 0)
				continue;
			char count[24];
			snprintf(count, sizeof(count), "%lld", l->count);
			char *s = sample_text(l);
			char *e = l->nsample ? xasprintf("e.g. %s", s) : xstrdup("");
			const char *cells[3] = {l->key, count, e};
			ctl_table_add(t, cells);
			free(s);
			free(e);
		}
	}
	ctl_table_print(t, "  ");
	ctl_table_free(t);
}

static const char *const mod_kinds[] = {"capture", "cancel", "cancel_or_refund", "refund", NULL};
static const char *const alert_kinds[] = {"order_refused", "authorization_expiring",
                                          "authorization_expired", "needs_attention", NULL};

/* People's text. */
static void preview_print(const struct preview *pv)
{
	if (pv->recorded)
		printf("baseline: recorded, %lld orders of history left alone\n", pv->history);
	else if (pv->adopted)
		printf("baseline: none needed (empty orders relation, or a ledger with rows)\n");
	else
		printf("baseline: none; the daemon does not start on these orders until "
		       "`smartpayctl adopt`,\n  which would record %lld orders as history now. "
		       "After it, the daemon would:\n",
		       pv->history);
	print_group(pv, "send", "send:", mod_kinds);
	print_group(pv, "refuse_locally",
	            "refuse locally (bad order rows: nothing sent):", mod_kinds);
	print_group(pv, "resend", "resend (pending modifications):", mod_kinds);
	print_group(pv, "alerts", "alerts:", alert_kinds);
}

/* One JSON document: {"adopted", "baseline_recorded", "history", GROUP: {KIND: {count,
 * sample}}}. */
static void preview_json(const struct preview *pv)
{
	json_object *doc = json_object_new_object();
	json_object_object_add(doc, "adopted", json_object_new_boolean(pv->adopted));
	json_object_object_add(doc, "baseline_recorded", json_object_new_boolean(pv->recorded));
	json_object_object_add(doc, "history", json_object_new_int64(pv->history));
	static const char *const groups[] = {"send", "refuse_locally", "resend", "alerts"};
	for (size_t g = 0; g < 4; g++) {
		const char *const *keys = g == 3 ? alert_kinds : mod_kinds;
		json_object *grp = json_object_new_object();
		for (size_t k = 0; keys[k]; k++) {
			json_object *e = json_object_new_object();
			json_object_object_add(e, "count", json_object_new_int64(0));
			json_object_object_add(e, "sample", json_object_new_array());
			json_object_object_add(grp, keys[k], e);
		}
		for (size_t i = 0; i < pv->nlines; i++) {
			const struct preview_line *l = &pv->lines[i];
			if (strcmp(l->group, groups[g]) != 0)
				continue;
			json_object *e = json_object_new_object();
			json_object *s = json_object_new_array();
			for (size_t j = 0; j < l->nsample; j++)
				json_object_array_add(s, json_object_new_string(l->sample[j]));
			json_object_object_add(e, "count", json_object_new_int64(l->count));
			json_object_object_add(e, "sample", s);
			json_object_object_add(grp, l->key, e);
		}
		json_object_object_add(doc, groups[g], grp);
	}
	ctl_print_json(doc);
}

/* `preview`: what the daemon would do now, read in one READ ONLY transaction with the
 * daemon's own statements and lib/intent.c; nothing is written or sent. */
static int preview_run(struct ctl_context *ctx, int argc, char **argv)
{
	int rc;
	if (!ctl_begin(ctx, &ctl_cmd_preview, argc, argv, "", NULL, NULL, NULL, &rc))
		return rc;
	PGresult *res =
	    ctl_query(ctx, "preview", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL);
	if (res == NULL)
		return CTL_EXIT_FAILURE;
	PQclear(res);
	struct ctl_orders o;
	struct preview pv = {0};
	rc = CTL_EXIT_FAILURE;
	res = ctl_query(ctx, "preview", "SET LOCAL statement_timeout = 0", 0, NULL);
	bool ok = res != NULL && ctl_orders_load(ctx, "preview", &o);
	PQclear(res);
	if (!ok)
		goto out;
	if (preview_baseline(ctx, &o, &pv) && preview_orders(ctx, &o, &pv) &&
	    preview_requests(ctx, &o, &pv) && preview_resends(ctx, &pv) &&
	    preview_alerts(ctx, &o, &pv)) {
		if (ctx->json)
			preview_json(&pv);
		else
			preview_print(&pv);
		rc = CTL_EXIT_OK;
	}
	ctl_orders_free(&o);
out:
	preview_free(&pv);
	PQclear(PQexec(ctx->conn, "ROLLBACK"));
	return rc;
}

const struct ctl_command ctl_cmd_preview = {
    "preview",
    "",
    "show what the daemon would do now (captures, cancels, refunds, local refusals, "
    "alerts), without writing or sending anything",
    preview_run,
};
