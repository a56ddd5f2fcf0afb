#include "autoconfig.h"

#include "store_reconcile.h"

#include "config.h"
#include "money.h"
#include "pgconn.h"
#include "store.h"
#include "store_internal.h"
#include "uuid.h"
#include "xmalloc.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest order id the ledger can hold (as in store.c): longer ones are not looked at. */
#define STORE_RC_ORDER_ID_MAX_BYTES 1000

/* Whether a format_type() name is one of the integer types. */
static bool rc_integer_type(const char *t)
{
	return strcmp(t, "bigint") == 0 || strcmp(t, "integer") == 0 || strcmp(t, "smallint") == 0;
}

/* Whether a format_type() name is text or varchar (compared as text, through the index). */
static bool rc_text_type(const char *t)
{
	return strcmp(t, "text") == 0 || strncmp(t, "character varying", 17) == 0;
}

char *store_rc_id_match(const char *id_type, const char *col, const char *value)
{
	/* CASE: the cast is only evaluated for a text that passes the check (an index
	 * condition would be evaluated before any other condition) */
	if (id_type != NULL && rc_integer_type(id_type))
		return xasprintf("%s = CASE WHEN %s ~ '^-?[0-9]{1,18}$' THEN (%s)::bigint END", col,
		                 value, value);
	if (id_type != NULL && rc_text_type(id_type))
		return xasprintf("%s = (%s)::text", col, value);
	if (id_type != NULL && strcmp(id_type, "uuid") == 0)
		return xasprintf("%s = CASE WHEN %s ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
		                 "[0-9a-f]{4}-[0-9a-f]{12}$' THEN (%s)::uuid END",
		                 col, value, value);
	return xasprintf("%s::text = %s", col, value);
}

/* The lookback condition on authorized_at: a plain comparison (through the relation's
 * index on it) for timestamptz, else through smartpay.shop_time. */
static char *rc_recent_sql(const char *authorized_type, const char *lookback)
{
	if (authorized_type != NULL && strcmp(authorized_type, "timestamp with time zone") == 0)
		return xasprintf("o.authorized_at > now() - %s::bigint * interval '1 millisecond'",
		                 lookback);
	return xasprintf("smartpay.shop_time(o.authorized_at::text) > now() - %s::bigint * "
	                 "interval '1 millisecond'",
	                 lookback);
}

/* The open authorizations of the lookback: transaction_id, order_id, over `o`. */
static char *rc_open_sql(const char *relation, const char *recent, const char *one)
{
	return xasprintf(
	    "SELECT o.smartpay_transaction_id::text AS transaction_id, o.id::text AS order_id "
	    "FROM %s o WHERE %s AND o.smartpay_transaction_id IS NOT NULL "
	    "AND octet_length(o.id::text) <= %d AND %s "
	    "AND NOT EXISTS (SELECT 1 FROM smartpay.modifications m WHERE m.order_id = o.id::text "
	    "AND m.state = 'succeeded' AND m.kind IN ('capture', 'cancel', 'cancel_or_refund'))",
	    relation, recent, STORE_RC_ORDER_ID_MAX_BYTES, one);
}

char *store_rc_snapshot_sql(const char *relation, const char *authorized_type, int64_t lookback_ms)
{
	char lb[STORE_INT_TEXT];
	char *recent = rc_recent_sql(authorized_type, store_int_text(lookback_ms, lb));
	char *open = rc_open_sql(relation, recent, "true");
	/* one implicit transaction; no notice for the first pass of a session */
	char *sql = xasprintf("SET LOCAL client_min_messages = warning; "
	                      "DROP TABLE IF EXISTS pg_temp." STORE_RC_SNAPSHOT "; "
	                      "CREATE TEMP TABLE " STORE_RC_SNAPSHOT " AS SELECT "
	                      "a.transaction_id, min(a.order_id) AS order_id FROM (%s) a "
	                      "WHERE a.transaction_id <> '' GROUP BY a.transaction_id; "
	                      "CREATE UNIQUE INDEX ON pg_temp." STORE_RC_SNAPSHOT
	                      " (transaction_id); ANALYZE pg_temp." STORE_RC_SNAPSHOT,
	                      open);
	free(open);
	free(recent);
	return sql;
}

char *store_rc_page_sql(const char *relation, const char *id_type, const char *authorized_type,
                        bool snapshot)
{
	char *one = store_rc_id_match(id_type, "o.id", "$2::text");
	char *own = store_rc_id_match(id_type, "o.id", "t.order_id");
	char *recent = rc_recent_sql(authorized_type, "$1");
	char *cond = xasprintf("($2::text IS NULL OR %s)", one);
	char *open =
	    snapshot ? xstrdup("SELECT a.transaction_id, a.order_id FROM pg_temp." STORE_RC_SNAPSHOT
	                       " a WHERE ($2::text IS NULL OR a.order_id = $2)")
	             : rc_open_sql(relation, recent, cond);
	char *sql = xasprintf(
	    /* the ledger's transactions after the cursor, in the order of their index */
	    "WITH l AS (SELECT m.transaction_id, min(m.order_id) AS order_id "
	    "FROM smartpay.modifications m "
	    "WHERE m.transaction_id > $5::text AND ($2::text IS NULL OR m.order_id = $2) "
	    "AND (m.state IN ('pending', 'needs_attention') "
	    "OR m.updated_at > now() - $1::bigint * interval '1 millisecond') "
	    "GROUP BY m.transaction_id ORDER BY m.transaction_id LIMIT $4), "
	    /* the open authorizations of the lookback after the cursor */
	    "a AS (SELECT a.transaction_id, a.order_id FROM (%s) a "
	    "WHERE a.transaction_id > $5::text ORDER BY a.transaction_id LIMIT $4), "
	    "t AS (SELECT u.transaction_id, min(u.order_id) AS order_id "
	    "FROM (SELECT * FROM l UNION ALL SELECT * FROM a) u GROUP BY u.transaction_id "
	    "ORDER BY u.transaction_id LIMIT $4), "
	    "s AS (SELECT ARRAY(SELECT jsonb_array_elements_text($3::jsonb)) AS cancelled) "
	    "SELECT t.transaction_id, t.order_id, "
	    "(NOT EXISTS (SELECT 1 FROM smartpay.modifications m WHERE m.order_id = t.order_id "
	    "AND m.kind IN ('capture', 'cancel', 'cancel_or_refund') "
	    "AND m.state IN ('succeeded', 'pending', 'needs_attention')) "
	    "AND NOT coalesce((SELECT o.status::text FROM %s o WHERE %s LIMIT 1) "
	    "= ANY (s.cancelled), false)) AS order_open "
	    "FROM t, s ORDER BY t.transaction_id",
	    open, relation, own);
	free(open);
	free(cond);
	free(one);
	free(own);
	free(recent);
	return sql;
}

char *store_rc_targets_sql(const char *relation)
{
	return store_rc_page_sql(relation, NULL, NULL, false);
}

const char store_rc_rows_sql[] =
    "SELECT coalesce(m.external_id, m.modification_id::text), m.kind, m.state, "
    "coalesce(m.amount_minor, -1), m.origin = 'external', m.order_id, m.modification_id::text, "
    "m.attempts "
    "FROM smartpay.modifications m WHERE m.transaction_id = $1 ORDER BY m.created_at, "
    "m.modification_id";

/* $1 transaction, $2 order, $3 payment status, $4 external rows (JSON array of
 * {modification_id, id, kind, amount, currency, reason}), $5 alerts (JSON array of
 * {kind, severity, modification_id, external, dedup_key, message}: `external` names the
 * external row the alert is about), $6 findings, $7 the id of a refused capture row that
 * blocks captures (NULL: none), $8 its reason, $9 settlements of needs_attention rows
 * (JSON array of {modification_id, state, reason, payment_status}: succeeded or refused
 * from the history, or pending to be resent). An external row is recorded only when no
 * row of the transaction names its id (by then a row of ours could have been committed
 * and sent); a blocking row only when the order has no capture row; a settlement only
 * while the row is needs_attention, and a resend only when nothing else of the
 * transaction is pending and a capture's deadline has not passed. */
const char store_rc_record_sql[] =
    "WITH ext AS (INSERT INTO smartpay.modifications (modification_id, order_id, "
    "transaction_id, kind, amount_minor, currency, state, reason, origin, external_id, "
    "settled_by, payment_status, completed_at) "
    "SELECT e.modification_id::uuid, $2, $1, e.kind, e.amount, e.currency, 'succeeded', "
    "e.reason, 'external', e.id, 'status', $3, now() "
    "FROM jsonb_to_recordset($4::jsonb) AS e(modification_id text, id text, kind text, "
    "amount bigint, currency text, reason text) "
    "WHERE NOT EXISTS (SELECT 1 FROM smartpay.modifications m WHERE m.transaction_id = $1 "
    "AND (m.modification_id::text = e.id OR m.external_id = e.id)) "
    "ON CONFLICT DO NOTHING RETURNING modification_id, external_id), "
    "blk AS (INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, "
    "kind, state, reason, settled_by, payment_status, completed_at) "
    "SELECT $7::uuid, $2, $1, 'capture', 'refused', $8, 'status', $3, now() "
    "WHERE $7 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM smartpay.modifications m "
    "WHERE m.order_id = $2 AND m.kind = 'capture' AND m.dismissed_at IS NULL) "
    "ON CONFLICT DO NOTHING RETURNING modification_id), "
    "stl AS (UPDATE smartpay.modifications m SET state = s.state, settled_by = CASE WHEN "
    "s.state = 'pending' THEN m.settled_by ELSE 'status' END, reason = s.reason, "
    "payment_status = coalesce(s.payment_status, m.payment_status), next_attempt_at = "
    "now(), lease_owner = NULL, lease_expires_at = NULL, updated_at = now(), completed_at "
    "= CASE WHEN s.state = 'pending' THEN NULL ELSE now() END "
    "FROM jsonb_to_recordset($9::jsonb) AS s(modification_id text, state text, reason "
    "text, payment_status text) "
    "WHERE m.modification_id = s.modification_id::uuid AND m.transaction_id = $1 "
    "AND m.state = 'needs_attention' AND (s.state <> 'pending' OR (NOT EXISTS (SELECT 1 "
    "FROM smartpay.modifications p WHERE p.transaction_id = $1 AND p.state = 'pending') "
    "AND (m.kind <> 'capture' OR m.deadline IS NULL OR m.deadline > now()))) "
    "RETURNING m.modification_id), "
    "al AS (INSERT INTO smartpay.alerts (kind, severity, order_id, modification_id, "
    "dedup_key, message) "
    "SELECT a.kind, a.severity, $2, CASE WHEN a.external IS NOT NULL THEN (SELECT "
    "x.modification_id FROM ext x WHERE x.external_id = a.external) WHEN a.kind = "
    "'authorization_ended' THEN (SELECT b.modification_id FROM blk b) ELSE "
    "a.modification_id::uuid END, a.dedup_key, a.message "
    "FROM jsonb_to_recordset($5::jsonb) AS a(kind text, severity text, modification_id "
    "text, external text, dedup_key text, message text) "
    "WHERE a.kind <> 'modification_refused' OR a.modification_id::uuid IN (SELECT "
    "modification_id FROM stl) "
    "ON CONFLICT (kind, dedup_key) DO NOTHING "
    "RETURNING alert_id, kind, severity, order_id, modification_id::text, message), "
    "st AS (INSERT INTO smartpay.reconciliations (transaction_id, order_id, reconciled_at, "
    "payment_status, findings) VALUES ($1, $2, now(), $3, $6::integer) "
    "ON CONFLICT (transaction_id) DO UPDATE SET order_id = EXCLUDED.order_id, "
    "reconciled_at = now(), payment_status = EXCLUDED.payment_status, "
    "findings = EXCLUDED.findings) "
    "SELECT * FROM al";

/* Parses a ledger state. */
static bool rows_state(const char *s, enum rc_state *out)
{
	if (strcmp(s, "pending") == 0)
		*out = RC_ROW_PENDING;
	else if (strcmp(s, "needs_attention") == 0)
		*out = RC_ROW_NEEDS_ATTENTION;
	else if (strcmp(s, "succeeded") == 0)
		*out = RC_ROW_SUCCEEDED;
	else if (strcmp(s, "refused") == 0)
		*out = RC_ROW_REFUSED;
	else
		return false;
	return true;
}

void store_rc_rows_read(PGresult *res, struct store_rc_rows *out)
{
	int n = PQntuples(res);
	memset(out, 0, sizeof(*out));
	out->rows = xcalloc((size_t)n + 1, sizeof(*out->rows));
	out->ids = xcalloc((size_t)n + 1, sizeof(*out->ids));
	out->uuids = xcalloc((size_t)n + 1, sizeof(*out->uuids));
	out->attempts = xcalloc((size_t)n + 1, sizeof(*out->attempts));
	for (int i = 0; i < n; i++) {
		struct rc_row *r = &out->rows[out->n];
		if (!mod_kind_parse(PQgetvalue(res, i, 1), &r->kind) ||
		    !rows_state(PQgetvalue(res, i, 2), &r->state))
			continue;
		out->ids[out->n] = store_field_text(res, i, 0);
		out->uuids[out->n] = store_field_text(res, i, 6);
		out->attempts[out->n] = (int)store_field_int(res, i, 7);
		r->modification_id = out->ids[out->n];
		r->amount_minor = store_field_int(res, i, 3);
		r->external = store_field_bool(res, i, 4);
		if (out->order_id == NULL)
			out->order_id = store_field_text(res, i, 5);
		out->n++;
	}
}

void store_rc_rows_free(struct store_rc_rows *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->ids[i]);
		free(r->uuids[i]);
	}
	free(r->ids);
	free(r->uuids);
	free(r->attempts);
	free(r->rows);
	free(r->order_id);
	memset(r, 0, sizeof(*r));
}

/* An amount as "40.00 EUR", or "an unknown amount". */
static void amount_text(bool has, int64_t minor, const char *currency, char out[64])
{
	char m[MONEY_TEXT_MAX];
	if (has && currency != NULL && money_format(minor, currency, m))
		snprintf(out, 64, "%s %s", m, currency);
	else
		snprintf(out, 64, "an unknown amount");
}

/* The verb of an external effect. */
static const char *kind_verb(enum mod_kind k)
{
	return k == MOD_CAPTURE ? "captured" : k == MOD_REFUND ? "refunded" : "cancelled";
}

char *store_rc_finding_text(const struct rc_finding *f, const struct gw_history *h,
                            const struct store_rc_rows *rows)
{
	char amount[64];
	switch (f->drift) {
	case RC_DRIFT_EXTERNAL: {
		const struct gw_entry *e = &h->entries[f->entry];
		amount_text(e->has_amount, e->amount_minor, e->currency, amount);
		return xasprintf("%s %s outside the daemon (gateway modificationId %s, status %s)",
		                 kind_verb(f->kind), amount,
		                 e->modification_id ? e->modification_id : "none",
		                 e->status ? e->status : "none");
	}
	case RC_DRIFT_LEDGER: {
		const struct rc_row *r = &rows->rows[f->row];
		return xasprintf("the ledger has %s %s as %s, but %s (payment status %s)",
		                 mod_kind_name(r->kind), rows->uuids[f->row],
		                 r->state == RC_ROW_REFUSED ? "refused" : "succeeded", f->what,
		                 h->payment_status ? h->payment_status : "none");
	}
	case RC_DRIFT_AUTH_ENDED:
		return xasprintf("%s (payment status %s) while the order is open: no capture "
		                 "will be sent",
		                 f->what, h->payment_status ? h->payment_status : "none");
	}
	return xstrdup("drift");
}

/* The gateway's id of an external effect, or a stand-in for an entry without one. */
static char *external_id(const struct gw_entry *e, size_t index)
{
	if (e->modification_id != NULL && e->modification_id[0] != '\0')
		return xstrndup(e->modification_id, 256);
	return xasprintf("unnamed:%s:%zu", e->type ? e->type : "", index);
}

/* Adds one alert to the JSON array. */
static void add_alert(struct json_object *alerts, const char *kind, const char *severity,
                      const char *modification_id, const char *external, const char *dedup,
                      const char *message)
{
	struct json_object *a = json_object_new_object();
	json_object_object_add(a, "kind", json_object_new_string(kind));
	json_object_object_add(a, "severity", json_object_new_string(severity));
	json_object_object_add(a, "modification_id",
	                       modification_id ? json_object_new_string(modification_id) : NULL);
	json_object_object_add(a, "external", external ? json_object_new_string(external) : NULL);
	json_object_object_add(a, "dedup_key", json_object_new_string(dedup));
	json_object_object_add(a, "message", json_object_new_string(message));
	json_object_array_add(alerts, a);
}

/* The JSON text of an array, malloc'd; releases it. */
static char *json_take(struct json_object *o)
{
	char *s = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

/* Records an external effect: its row and its alert. */
static void build_external(const char *transaction_id, const struct gw_history *h,
                           const struct store_rc_rows *rows, const struct rc_finding *f,
                           struct json_object *exts, struct json_object *alerts)
{
	const struct gw_entry *e = &h->entries[f->entry];
	char id[37];
	uuid_v4(id);
	char *eid = external_id(e, f->entry);
	char *text = store_rc_finding_text(f, h, rows);
	char *reason = xasprintf("recorded from the gateway's history: %s", text);
	struct json_object *x = json_object_new_object();
	json_object_object_add(x, "modification_id", json_object_new_string(id));
	json_object_object_add(x, "id", json_object_new_string(eid));
	json_object_object_add(x, "kind", json_object_new_string(mod_kind_name(f->kind)));
	json_object_object_add(x, "amount",
	                       e->has_amount ? json_object_new_int64(e->amount_minor) : NULL);
	json_object_object_add(
	    x, "currency",
	    e->currency && strlen(e->currency) == 3 ? json_object_new_string(e->currency) : NULL);
	json_object_object_add(x, "reason", json_object_new_string(reason));
	json_object_array_add(exts, x);
	char *dedup = xasprintf("%s:%s", transaction_id, eid);
	add_alert(alerts, "external_modification", "warning", NULL, eid, dedup, text);
	free(dedup);
	free(reason);
	free(text);
	free(eid);
}

/* Settles a needs_attention row from the history: succeeded or refused, or pending to be
 * resent when the history lacks it and it can still be made (the engine's own pending
 * rows are its business). */
static void build_settlement(const struct gw_history *h, const struct store_rc_rows *rows,
                             const struct rc_settlement *s, int max_attempts,
                             struct json_object *stl, struct json_object *alerts)
{
	const struct rc_row *row = &rows->rows[s->row];
	bool resend =
	    s->settle == RC_SETTLE_ABSENT && s->resend && rows->attempts[s->row] < 2 * max_attempts;
	const char *state = s->settle == RC_SETTLE_SUCCEEDED ? "succeeded"
	                    : s->settle == RC_SETTLE_REFUSED ? "refused"
	                    : resend                         ? "pending"
	                                                     : NULL;
	if (row->state != RC_ROW_NEEDS_ATTENTION || row->external || state == NULL)
		return;
	const char *ps = h->payment_status ? h->payment_status : "none";
	const char *gs = s->gateway_status ? s->gateway_status : "none";
	char *reason =
	    s->settle == RC_SETTLE_SUCCEEDED
	        ? xasprintf("settled from the gateway's status history: its entry for this "
	                    "modificationId has status %s",
	                    gs)
	    : s->settle == RC_SETTLE_REFUSED
	        ? xasprintf("refused at the gateway: its status history has status %s for this "
	                    "modificationId",
	                    gs)
	        : xasprintf("resending the same request: the gateway's status history does not "
	                    "have this modificationId and its payment status %s shows it can "
	                    "still be made",
	                    ps);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "modification_id", json_object_new_string(rows->uuids[s->row]));
	json_object_object_add(o, "state", json_object_new_string(state));
	json_object_object_add(o, "reason", json_object_new_string(reason));
	json_object_object_add(o, "payment_status",
	                       h->payment_status ? json_object_new_string(h->payment_status)
	                                         : NULL);
	json_object_array_add(stl, o);
	if (s->settle == RC_SETTLE_REFUSED) {
		char *dedup = xasprintf("%s:status", rows->uuids[s->row]);
		char *text = xasprintf("%s for order %s: %s", mod_kind_name(row->kind),
		                       rows->order_id ? rows->order_id : "?", reason);
		add_alert(alerts, "modification_refused", "critical", rows->uuids[s->row], NULL,
		          dedup, text);
		free(text);
		free(dedup);
	}
	free(reason);
}

void store_rc_record_build(const char *transaction_id, const char *order_id,
                           const struct gw_history *h, const struct store_rc_rows *rows,
                           const struct rc_report *rep, int max_attempts,
                           struct store_rc_record *out)
{
	struct json_object *exts = json_object_new_array();
	struct json_object *alerts = json_object_new_array();
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < rep->nfindings; i++) {
		const struct rc_finding *f = &rep->findings[i];
		char *text = NULL;
		switch (f->drift) {
		case RC_DRIFT_EXTERNAL:
			build_external(transaction_id, h, rows, f, exts, alerts);
			break;
		case RC_DRIFT_LEDGER:
			text = store_rc_finding_text(f, h, rows);
			add_alert(alerts, "ledger_drift", "critical", rows->uuids[f->row], NULL,
			          rows->uuids[f->row], text);
			break;
		case RC_DRIFT_AUTH_ENDED: {
			char id[37];
			uuid_v4(id);
			text = store_rc_finding_text(f, h, rows);
			out->params[6] = xstrdup(id);
			out->params[7] = xstrdup(text);
			add_alert(alerts, "authorization_ended", "critical", NULL, NULL, order_id,
			          text);
			break;
		}
		}
		free(text);
	}
	struct json_object *stl = json_object_new_array();
	for (size_t i = 0; i < rep->nsettlements; i++)
		build_settlement(h, rows, &rep->settlements[i], max_attempts, stl, alerts);
	out->nalerts = json_object_array_length(alerts);
	out->params[0] = xstrdup(transaction_id);
	out->params[1] = xstrdup(order_id);
	out->params[2] = h->payment_status ? xstrdup(h->payment_status) : NULL;
	out->params[3] = json_take(exts);
	out->params[4] = json_take(alerts);
	out->params[5] = xasprintf("%zu", rep->nfindings);
	out->params[8] = json_take(stl);
}

void store_rc_record_free(struct store_rc_record *r)
{
	for (size_t i = 0; i < sizeof(r->params) / sizeof(r->params[0]); i++)
		free(r->params[i]);
	memset(r, 0, sizeof(*r));
}

char *store_rc_statuses_json(const struct sp_config *cfg)
{
	struct json_object *a = json_object_new_array();
	for (size_t i = 0; i < cfg->cancelled_statuses.count; i++)
		json_object_array_add(a, json_object_new_string(cfg->cancelled_statuses.items[i]));
	return json_take(a);
}

/* Completion of the shape statement: the column types for fn.rc_shape. */
static void rc_shape_done(PGresult *res, const char *error, void *arg)
{
	struct store_call *c = arg;
	if (error == NULL && PQntuples(res) != 1)
		error = "orders relation not found or has no id column";
	if (error != NULL)
		c->fn.rc_shape(NULL, NULL, error, c->arg);
	else
		c->fn.rc_shape(PQgetvalue(res, 0, 0), store_field_value(res, 0, 1), NULL, c->arg);
	store_call_free(c);
}

bool store_rc_shape(struct store *st, store_rc_shape_fn done, void *arg)
{
	if (!pg_conn_is_up(store_conn(st)))
		return false;
	const char *p[] = {store_config(st)->orders_relation};
	struct store_call *c = store_call_new(st, arg);
	c->fn.rc_shape = done;
	return store_call_query(c, STORE_SHAPE_SQL, 1, p, rc_shape_done);
}

bool store_rc_snapshot(struct store *st, const char *authorized_type, int64_t lookback_ms,
                       store_done_fn done, void *arg)
{
	if (!pg_conn_is_up(store_conn(st)))
		return false;
	char *sql = store_rc_snapshot_sql(store_orders_relation(st), authorized_type, lookback_ms);
	struct store_call *c = store_call_new(st, arg);
	c->fn.done = done;
	bool ok = store_call_exec(c, sql, store_call_done);
	free(sql);
	return ok;
}

void store_rc_targets_free(struct store_rc_target *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i].transaction_id);
		free(rows[i].order_id);
	}
	free(rows);
}

/* Completion of a page: its targets for fn.rc_targets. */
static void rc_page_done(PGresult *res, const char *error, void *arg)
{
	struct store_call *c = arg;
	if (error != NULL) {
		c->fn.rc_targets(NULL, 0, error, c->arg);
		store_call_free(c);
		return;
	}
	int n = PQntuples(res);
	struct store_rc_target *rows = xcalloc((size_t)n + 1, sizeof(*rows));
	for (int i = 0; i < n; i++) {
		rows[i].transaction_id = store_field_text(res, i, 0);
		rows[i].order_id = store_field_text(res, i, 1);
		rows[i].order_open = store_field_bool(res, i, 2);
	}
	c->fn.rc_targets(rows, (size_t)n, NULL, c->arg);
	store_call_free(c);
}

bool store_rc_page(struct store *st, const char *id_type, const char *authorized_type,
                   bool snapshot, int64_t lookback_ms, int limit, const char *after,
                   store_rc_targets_fn done, void *arg)
{
	if (!pg_conn_is_up(store_conn(st)))
		return false;
	char lb[STORE_INT_TEXT], lim[STORE_INT_TEXT];
	char *statuses = store_rc_statuses_json(store_config(st));
	char *sql =
	    store_rc_page_sql(store_orders_relation(st), id_type, authorized_type, snapshot);
	const char *p[] = {store_int_text(lookback_ms, lb), NULL, statuses,
	                   store_int_text(limit, lim), after};
	struct store_call *c = store_call_new(st, arg);
	c->fn.rc_targets = done;
	bool ok = store_call_query(c, sql, 5, p, rc_page_done);
	free(sql);
	free(statuses);
	return ok;
}

/* Completion of the rows statement: the rows for fn.rc_rows. */
static void rc_rows_done(PGresult *res, const char *error, void *arg)
{
	struct store_call *c = arg;
	if (error != NULL) {
		c->fn.rc_rows(NULL, error, c->arg);
	} else {
		struct store_rc_rows rows;
		store_rc_rows_read(res, &rows);
		c->fn.rc_rows(&rows, NULL, c->arg);
	}
	store_call_free(c);
}

bool store_rc_rows(struct store *st, const char *transaction_id, store_rc_rows_fn done, void *arg)
{
	if (!pg_conn_is_up(store_conn(st)))
		return false;
	const char *p[] = {transaction_id};
	struct store_call *c = store_call_new(st, arg);
	c->fn.rc_rows = done;
	return store_call_query(c, store_rc_rows_sql, 1, p, rc_rows_done);
}

/* Completion of the record statement: the alerts it inserted for fn.rc_recorded. */
static void rc_record_done(PGresult *res, const char *error, void *arg)
{
	struct store_call *c = arg;
	if (error != NULL) {
		c->fn.rc_recorded(NULL, 0, error, c->arg);
		store_call_free(c);
		return;
	}
	int n = PQntuples(res);
	struct store_new_alert *alerts = xcalloc((size_t)n + 1, sizeof(*alerts));
	for (int i = 0; i < n; i++) {
		alerts[i].alert_id = store_field_int(res, i, 0);
		alerts[i].kind = PQgetvalue(res, i, 1);
		alerts[i].severity = PQgetvalue(res, i, 2);
		alerts[i].order_id = PQgetvalue(res, i, 3);
		alerts[i].modification_id = store_field_value(res, i, 4);
		alerts[i].message = PQgetvalue(res, i, 5);
	}
	c->fn.rc_recorded(alerts, (size_t)n, NULL, c->arg);
	free(alerts);
	store_call_free(c);
}

bool store_rc_record(struct store *st, const struct store_rc_record *rec, store_rc_recorded_fn done,
                     void *arg)
{
	if (!pg_conn_is_up(store_conn(st)))
		return false;
	struct store_call *c = store_call_new(st, arg);
	c->fn.rc_recorded = done;
	return store_call_query(c, store_rc_record_sql, 9, (const char *const *)rec->params,
	                        rc_record_done);
}
