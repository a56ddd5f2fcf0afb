#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "config.h"
#include "ctl_orders.h"
#include "intent.h"
#include "store_ctl.h"
#include "xmalloc.h"

/* Order ids shown per line. */
#define PREVIEW_SAMPLE 5
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
	long long history;            /* recorded, or what adopt would record */
	long long expired_lookback_s; /* [alerts] expired_lookback, as the sweep uses it */
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
static void preview_intent(struct preview *pv, const struct intent *in)
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
	PGresult *res = ctl_ok(ctx, "preview",
	                       store_ctl_candidates(ctx->conn, &o->shape, ctx->cfg, pv->adopted));
	if (res == NULL)
		return false;
	size_t n;
	struct candidate *rows = store_candidates_read(res, &n);
	PQclear(res);
	for (size_t i = 0; i < n; i++) {
		struct intent in;
		char *reason = NULL;
		intent_from_order(ctx->cfg->merchant_key, PREVIEW_MODIFICATION_ID, &rows[i], &in,
		                  &reason);
		preview_intent(pv, &in);
		free(in.body);
		free(reason);
	}
	candidates_free(rows, n);
	return true;
}

/* The shop's open requests, judged by lib/intent.c. */
static bool preview_requests(struct ctl_context *ctx, const struct ctl_orders *o,
                             struct preview *pv)
{
	PGresult *res = ctl_ok(ctx, "preview", store_ctl_requests(ctx->conn, &o->shape));
	if (res == NULL)
		return false;
	size_t n;
	struct shop_request *rows = store_requests_read(res, &n);
	PQclear(res);
	for (size_t i = 0; i < n; i++) {
		struct intent in;
		char *reason = NULL;
		intent_from_request(ctx->cfg->merchant_key, PREVIEW_MODIFICATION_ID, &rows[i], &in,
		                    &reason);
		preview_intent(pv, &in);
		free(in.body);
		free(reason);
	}
	shop_requests_free(rows, n);
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
	PGresult *res = ctl_ok(ctx, "preview", store_ctl_pending_by_kind(ctx->conn));
	if (res == NULL)
		return false;
	preview_add_rows(pv, "resend", res);
	PQclear(res);
	return true;
}

/* The expiry sweep's alerts (lib/store_alerts.c) that do not exist yet, read only. */
static bool preview_alerts(struct ctl_context *ctx, const struct ctl_orders *o, struct preview *pv)
{
	PGresult *res = ctl_ok(ctx, "preview",
	                       store_ctl_due_alerts(ctx->conn, &o->shape, ctx->cfg, pv->adopted));
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
	PGresult *res =
	    ctl_ok(ctx, "preview",
	           pv->adopted ? store_ctl_history_count(ctx->conn)
	                       : store_ctl_would_be_history(ctx->conn, &o->shape, ctx->cfg));
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
	char lookback[32], *title = xasprintf("alerts (authorizations expired within %s, [alerts] "
	                                      "expired_lookback):",
	                                      ctl_duration_human(pv->expired_lookback_s, lookback));
	print_group(pv, "alerts", title, alert_kinds);
	free(title);
}

/* One JSON document: {"adopted", "baseline_recorded", "history",
 * "expired_lookback_seconds", GROUP: {KIND: {count, sample}}}. */
static void preview_json(const struct preview *pv)
{
	json_object *doc = json_object_new_object();
	json_object_object_add(doc, "adopted", json_object_new_boolean(pv->adopted));
	json_object_object_add(doc, "baseline_recorded", json_object_new_boolean(pv->recorded));
	json_object_object_add(doc, "history", json_object_new_int64(pv->history));
	json_object_object_add(doc, "expired_lookback_seconds",
	                       json_object_new_int64(pv->expired_lookback_s));
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
	if (!ctl_run(ctx, "preview", store_ctl_begin_read_only(ctx->conn)))
		return CTL_EXIT_FAILURE;
	struct ctl_orders o;
	struct preview pv = {.expired_lookback_s = ctx->cfg->expired_lookback_ms / 1000};
	rc = CTL_EXIT_FAILURE;
	if (!ctl_run(ctx, "preview", store_ctl_no_timeout(ctx->conn, true)) ||
	    !ctl_orders_load(ctx, "preview", &o))
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
	ctl_rollback(ctx);
	return rc;
}

const struct ctl_command ctl_cmd_preview = {
    "preview",
    "",
    "show what the daemon would do now (captures, cancels, refunds, local refusals, "
    "alerts), without writing or sending anything",
    preview_run,
};
