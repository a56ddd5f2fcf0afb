#include "autoconfig.h"

#include "control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "money.h"
#include "request.h"
#include "rng.h"
#include "server.h"
#include "timeutil.h"
#include "tls.h"

/* Sends {"error", "errorDetails"}. */
static void control_error(struct sim_req *req, int status, const char *error, const char *details)
{
	sim_reply_error(req, status, error, details);
}

/* Parses the request body as one JSON object; answers 400 and returns NULL otherwise. */
static struct json_object *body_object(struct sim_req *req)
{
	struct evbuffer *in = req->body;
	size_t len = evbuffer_get_length(in);
	const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
	struct json_object *root = sim_request_json(NULL, body, len);
	if (root == NULL || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		control_error(req, 400, "invalid_json", "the request body must be one JSON object");
		return NULL;
	}
	return root;
}

/* Adds a timestamp member. */
static void add_time(struct json_object *o, const char *key, int64_t ms)
{
	char text[SIM_TIME_TEXT_MAX];
	sim_time_format(ms, text);
	json_object_object_add(o, key, json_object_new_string(text));
}

/* Adds an amount member as exact decimal text. */
static void add_amount(struct json_object *o, const char *key, int64_t minor, const char *currency)
{
	char text[MONEY_TEXT_MAX];
	if (!money_format(minor, currency, text))
		snprintf(text, sizeof(text), "?");
	json_object_object_add(o, key, json_object_new_string(text));
}

/* Reads an optional string member; false (after answering 400) when it has another type. */
static bool opt_string(struct sim_req *req, struct json_object *doc, const char *key,
                       const char **out)
{
	struct json_object *v;
	*out = NULL;
	if (!json_object_object_get_ex(doc, key, &v) || json_object_is_type(v, json_type_null))
		return true;
	if (!json_object_is_type(v, json_type_string)) {
		char d[96];
		snprintf(d, sizeof(d), "%s must be a string", key);
		control_error(req, 400, "invalid_field", d);
		return false;
	}
	*out = json_object_get_string(v);
	return true;
}

/* Reads an optional timestamp member. */
static bool opt_time(struct sim_req *req, struct json_object *doc, const char *key, bool *has,
                     int64_t *ms)
{
	const char *s;
	*has = false;
	if (!opt_string(req, doc, key, &s))
		return false;
	if (s == NULL)
		return true;
	if (!sim_time_parse(s, ms)) {
		char d[128];
		snprintf(d, sizeof(d), "%s must be an ISO-8601 timestamp with a zone", key);
		control_error(req, 400, "invalid_field", d);
		return false;
	}
	*has = true;
	return true;
}

/* The raw state of a transaction, for tests. */
static struct json_object *txn_json(const struct sim_txn *t)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "transactionId", json_object_new_string(t->id));
	json_object_object_add(o, "status", json_object_new_string(sim_pay_status_name(t->status)));
	add_amount(o, "amount", t->amount, t->currency);
	add_amount(o, "captured", t->captured, t->currency);
	add_amount(o, "refunded", t->refunded, t->currency);
	json_object_object_add(o, "currencyCode", json_object_new_string(t->currency));
	add_time(o, "authorizedAt", t->authorized_at);
	add_time(o, "expiresAt", t->expires_at);
	json_object_object_add(o, "modifications", json_object_new_int64((int64_t)t->nmods));
	json_object_object_add(o, "statusCalls", json_object_new_int64((int64_t)t->status_calls));
	return o;
}

/* POST /_sim/transactions: creates one transaction. */
static void create_transaction(struct sim_ctx *ctx, struct sim_req *req)
{
	static const char *const known[] = {
	    "amount",        "currencyCode", "status",        "authorizedAt", "expiresAt",
	    "transactionId", "description",  "paymentMethod", "mit",          NULL};
	struct json_object *doc = body_object(req);
	if (doc == NULL)
		return;
	json_object_object_foreach(doc, key, val)
	{
		(void)val;
		bool ok = false;
		for (const char *const *k = known; *k; k++)
			ok = ok || strcmp(*k, key) == 0;
		if (!ok) {
			char d[160];
			snprintf(d, sizeof(d), "unknown property \"%.100s\"", key);
			control_error(req, 400, "invalid_field", d);
			json_object_put(doc);
			return;
		}
	}
	struct sim_txn_spec spec = {.status = SIM_PS_AUTHORIZATION_COMPLETED};
	struct json_object *amount, *mit;
	const char *status = NULL, *why = NULL;
	if (!opt_string(req, doc, "currencyCode", &spec.currency) ||
	    !opt_string(req, doc, "status", &status) ||
	    !opt_string(req, doc, "transactionId", &spec.id) ||
	    !opt_string(req, doc, "description", &spec.description) ||
	    !opt_string(req, doc, "paymentMethod", &spec.payment_method) ||
	    !opt_time(req, doc, "authorizedAt", &spec.has_authorized_at, &spec.authorized_at) ||
	    !opt_time(req, doc, "expiresAt", &spec.has_expires_at, &spec.expires_at))
		goto out;
	if (spec.currency == NULL || money_exponent(spec.currency) < 0) {
		control_error(req, 400, "invalid_field",
		              "currencyCode must be a known ISO 4217 code");
		goto out;
	}
	if (!json_object_object_get_ex(doc, "amount", &amount) ||
	    !(json_object_is_type(amount, json_type_string) ||
	      json_object_is_type(amount, json_type_int) ||
	      json_object_is_type(amount, json_type_double))) {
		control_error(req, 400, "invalid_field",
		              "amount is required, as a decimal string or a JSON number");
		goto out;
	}
	/* for numbers too, the source text (json-c keeps it) is converted exactly */
	if (!money_parse(json_object_get_string(amount), spec.currency, &spec.amount, &why)) {
		char d[160];
		snprintf(d, sizeof(d), "amount: %s", why);
		control_error(req, 400, "invalid_amount", d);
		goto out;
	}
	if (status != NULL && !sim_pay_status_parse(status, &spec.status)) {
		control_error(req, 400, "invalid_field",
		              "status must be one of CREATED, AUTORIZATION_INITIALIZED, "
		              "AUTHORIZATION_COMPLETED, CAPTURED, SETTLED, CANCELLED, CANCELED, "
		              "REFUNDED, EXPIRED");
		goto out;
	}
	if (json_object_object_get_ex(doc, "mit", &mit)) {
		if (!json_object_is_type(mit, json_type_boolean)) {
			control_error(req, 400, "invalid_field", "mit must be true or false");
			goto out;
		}
		spec.mit = json_object_get_boolean(mit);
	}
	struct sim_txn *t = sim_state_create(ctx->state, &spec, &why);
	if (t == NULL) {
		bool taken = spec.id != NULL && sim_state_find(ctx->state, spec.id) != NULL;
		control_error(req, taken ? 409 : 400,
		              taken ? "duplicate_transaction" : "invalid_field", why);
		goto out;
	}
	sim_reply_json(req, 201, txn_json(t));
out:
	json_object_put(doc);
}

/* Per transaction with at least one, its GET /payment/status request count. */
static struct json_object *status_calls_json(const struct sim_state *st)
{
	struct json_object *o = json_object_new_object();
	size_t n = sim_state_txn_count(st);
	for (size_t i = 0; i < n; i++) {
		const struct sim_txn *t = sim_state_txn_at(st, i);
		if (t->status_calls > 0)
			json_object_object_add(o, t->id,
			                       json_object_new_int64((int64_t)t->status_calls));
	}
	return o;
}

/* Reads the optional amount of an outside effect into r (the transaction's currency). */
static bool external_amount(struct sim_req *req, struct json_object *doc, const struct sim_txn *t,
                            struct sim_mod_request *r)
{
	struct json_object *amount;
	const char *why;
	if (!json_object_object_get_ex(doc, "amount", &amount) ||
	    json_object_is_type(amount, json_type_null))
		return true;
	if (!(json_object_is_type(amount, json_type_string) ||
	      json_object_is_type(amount, json_type_int) ||
	      json_object_is_type(amount, json_type_double)) ||
	    !money_parse(json_object_get_string(amount), t->currency, &r->amount, &why)) {
		control_error(req, 400, "invalid_amount",
		              "amount must be a decimal string or number in the transaction's "
		              "currency");
		return false;
	}
	r->has_amount = true;
	r->currency = t->currency;
	return true;
}

/* The operation of an outside effect. */
static bool external_op(const char *name, enum sim_op *op)
{
	static const enum sim_op ops[] = {SIM_OP_CAPTURE, SIM_OP_CANCEL, SIM_OP_CANCEL_OR_REFUND,
	                                  SIM_OP_REFUND};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (strcmp(name, sim_op_name(ops[i])) == 0) {
			*op = ops[i];
			return true;
		}
	}
	return false;
}

/* POST /_sim/transactions/{id}/external {"operation", "amount"?, "modificationId"?,
 * "description"?}: an effect made outside the API (portal capture, support cancel or
 * refund, "expire" for an early expiry). */
static void external_effect(struct sim_ctx *ctx, struct sim_req *req, const char *id)
{
	struct sim_txn *t = sim_state_find(ctx->state, id);
	if (t == NULL) {
		control_error(req, 404, "transaction_not_found", "no such transaction");
		return;
	}
	struct json_object *doc = body_object(req);
	if (doc == NULL)
		return;
	const char *opname = NULL, *mid = NULL, *description = NULL;
	char generated[SIM_TXN_ID_MAX + 1];
	struct sim_mod_request r = {.transaction_id = t->id};
	if (!opt_string(req, doc, "operation", &opname) ||
	    !opt_string(req, doc, "modificationId", &mid) ||
	    !opt_string(req, doc, "description", &description))
		goto out;
	if (opname != NULL && strcmp(opname, "expire") == 0) {
		if (!sim_state_expire(ctx->state, t))
			control_error(req, 422, "invalid_state",
			              "only an authorized, uncaptured transaction can expire");
		else
			sim_reply_json(req, 200, txn_json(t));
		goto out;
	}
	if (opname == NULL || !external_op(opname, &r.op)) {
		control_error(req, 400, "invalid_field",
		              "operation must be capture, cancel, cancelOrRefund, refund or "
		              "expire");
		goto out;
	}
	if (mid != NULL && (mid[0] == '\0' || strlen(mid) > 64 ||
	                    sim_state_modification_id_used(ctx->state, mid))) {
		control_error(req, 400, "invalid_field",
		              "modificationId must be 1 to 64 characters and not used before");
		goto out;
	}
	if (mid == NULL) {
		sim_uuid_random(generated);
		mid = generated;
	}
	r.modification_id = mid;
	r.description = description;
	if (!external_amount(req, doc, t, &r))
		goto out;
	struct sim_result res;
	sim_state_apply_external(ctx->state, &r, &res);
	if (res.outcome != SIM_APPLIED) {
		control_error(req, 422, res.error, res.details);
		goto out;
	}
	struct json_object *o = txn_json(t);
	json_object_object_add(o, "modificationId", json_object_new_string(mid));
	sim_reply_json(req, 200, o);
out:
	json_object_put(doc);
}

/* GET /_sim/ledger: every effect, and per modificationId the request count, the
 * requests whose body differed from the first one's and the hostile answers. */
static void ledger(struct sim_ctx *ctx, struct sim_req *req)
{
	size_t n;
	const struct sim_effect *e = sim_state_effects(ctx->state, &n);
	struct json_object *effects = json_object_new_array_ext((int)n);
	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "transactionId", json_object_new_string(e[i].txn->id));
		json_object_object_add(
		    o, "modificationId",
		    e[i].modification_id ? json_object_new_string(e[i].modification_id) : NULL);
		json_object_object_add(o, "type", json_object_new_string(e[i].type));
		add_amount(o, "amount", e[i].amount, e[i].txn->currency);
		json_object_object_add(o, "currencyCode",
		                       json_object_new_string(e[i].txn->currency));
		add_time(o, "at", e[i].at);
		json_object_object_add(o, "operation",
		                       json_object_new_string(sim_op_name(e[i].op)));
		if (strcmp(e[i].type, "CAPTURE") == 0)
			add_amount(o, "released", e[i].released, e[i].txn->currency);
		json_object_object_add(o, "origin",
		                       json_object_new_string(e[i].external ? "external" : "api"));
		json_object_array_add(effects, o);
	}
	struct sim_modrec *const *recs = sim_state_modrecs(ctx->state, &n);
	struct json_object *requests = json_object_new_object();
	struct json_object *other = json_object_new_object();
	struct json_object *hostile = json_object_new_object();
	for (size_t i = 0; i < n; i++) {
		json_object_object_add(requests, recs[i]->modification_id,
		                       json_object_new_int64((int64_t)recs[i]->requests));
		if (recs[i]->other_bodies > 0)
			json_object_object_add(
			    other, recs[i]->modification_id,
			    json_object_new_int64((int64_t)recs[i]->other_bodies));
		if (recs[i]->hostile > 0)
			json_object_object_add(hostile, recs[i]->modification_id,
			                       json_object_new_int64((int64_t)recs[i]->hostile));
	}
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "effects", effects);
	json_object_object_add(o, "requests", requests);
	json_object_object_add(o, "otherBodies", other);
	json_object_object_add(o, "hostileAnswers", hostile);
	json_object_object_add(o, "statusCalls", status_calls_json(ctx->state));
	json_object_object_add(o, "statusCallsTotal",
	                       json_object_new_int64((int64_t)sim_state_status_calls(ctx->state)));
	json_object_object_add(
	    o, "statusCallsMaxPerSecond",
	    json_object_new_int64((int64_t)sim_state_status_calls_max_per_second(ctx->state)));
	json_object_object_add(o, "connections", json_object_new_int64((int64_t)ctx->connections));
	json_object_object_add(o, "http2Connections",
	                       json_object_new_int64((int64_t)ctx->h2_connections));
	json_object_object_add(o, "answersFromTimer",
	                       json_object_new_int64((int64_t)ctx->timer_writes));
	if (ctx->tls != NULL) {
		json_object_object_add(o, "tlsResumed",
		                       json_object_new_int64((int64_t)sim_tls_resumed(ctx->tls)));
		json_object_object_add(o, "tlsWritesWaited",
		                       json_object_new_int64((int64_t)sim_tls_stalls(ctx->tls)));
	}
	sim_reply_json(req, 200, o);
}

void sim_control_set_faults(struct sim_ctx *ctx, struct sim_faults *f)
{
	sim_faults_free(&ctx->faults);
	ctx->faults = *f;
	sim_rng_seed(&ctx->rng, f->has_seed ? f->seed : ctx->seed);
	sim_faults_clear(f);
}

/* /_sim/faults: GET reads, POST replaces, DELETE clears. */
static void faults(struct sim_ctx *ctx, struct sim_req *req, enum evhttp_cmd_type method)
{
	if (method == EVHTTP_REQ_POST) {
		struct json_object *doc = body_object(req);
		if (doc == NULL)
			return;
		struct sim_faults f;
		char err[200];
		bool ok = sim_faults_from_json(doc, &f, err, sizeof(err));
		json_object_put(doc);
		if (!ok) {
			control_error(req, 400, "invalid_faults", err);
			return;
		}
		sim_control_set_faults(ctx, &f);
	} else if (method == EVHTTP_REQ_DELETE) {
		struct sim_faults f;
		sim_faults_clear(&f);
		sim_control_set_faults(ctx, &f);
	}
	sim_reply_json(req, 200, sim_faults_to_json(&ctx->faults));
}

/* The clock document. */
static struct json_object *clock_json(struct sim_ctx *ctx)
{
	struct json_object *o = json_object_new_object();
	add_time(o, "now", sim_state_now(ctx->state));
	json_object_object_add(o, "offsetMs",
	                       json_object_new_int64(sim_state_clock_offset(ctx->state)));
	return o;
}

/* /_sim/clock: GET reads; POST {"advance": "96h"} or {"set": "ISO-8601"}. */
static void clock_handler(struct sim_ctx *ctx, struct sim_req *req, enum evhttp_cmd_type method)
{
	if (method == EVHTTP_REQ_POST) {
		struct json_object *doc = body_object(req);
		if (doc == NULL)
			return;
		struct json_object *adv, *set;
		int64_t ms;
		bool has_adv = json_object_object_get_ex(doc, "advance", &adv);
		bool has_set = json_object_object_get_ex(doc, "set", &set);
		bool ok = json_object_object_length(doc) == (has_adv ? 1 : 0) + (has_set ? 1 : 0) &&
		          has_adv != has_set;
		if (ok && has_adv)
			ok = json_object_is_type(adv, json_type_string) &&
			     sim_duration_parse(json_object_get_string(adv), &ms);
		if (ok && has_set)
			ok = json_object_is_type(set, json_type_string) &&
			     sim_time_parse(json_object_get_string(set), &ms);
		json_object_put(doc);
		if (!ok) {
			control_error(req, 400, "invalid_clock",
			              "expected {\"advance\": \"96h\"} (ms, s, m, h, d) or "
			              "{\"set\": \"2024-03-01T10:00:00.000Z\"}");
			return;
		}
		if (has_adv)
			sim_state_advance(ctx->state, ms);
		else
			sim_state_set_now(ctx->state, ms);
	}
	sim_reply_json(req, 200, clock_json(ctx));
}

/* Reads ID out of "ID/external". */
static bool external_path(const char *rest, char *id, size_t idlen)
{
	const char *slash = strchr(rest, '/');
	if (slash == NULL || strcmp(slash, "/external") != 0 || slash == rest ||
	    (size_t)(slash - rest) >= idlen)
		return false;
	memcpy(id, rest, (size_t)(slash - rest));
	id[slash - rest] = '\0';
	return true;
}

void sim_control_handle(struct sim_ctx *ctx, struct sim_req *req, const char *path)
{
	enum evhttp_cmd_type m = req->method;
	const char *sub = path + 6;
	char id[SIM_TXN_ID_MAX + 1];
	if (strcmp(sub, "transactions") == 0 && m == EVHTTP_REQ_POST) {
		create_transaction(ctx, req);
	} else if (strncmp(sub, "transactions/", 13) == 0 && m == EVHTTP_REQ_POST &&
	           external_path(sub + 13, id, sizeof(id))) {
		external_effect(ctx, req, id);
	} else if (strncmp(sub, "transactions/", 13) == 0 && m == EVHTTP_REQ_GET) {
		const struct sim_txn *t = sim_state_find(ctx->state, sub + 13);
		if (t == NULL)
			control_error(req, 404, "transaction_not_found", "no such transaction");
		else
			sim_reply_json(req, 200, txn_json(t));
	} else if (strcmp(sub, "ledger") == 0 && m == EVHTTP_REQ_GET) {
		ledger(ctx, req);
	} else if (strcmp(sub, "faults") == 0 &&
	           (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_POST || m == EVHTTP_REQ_DELETE)) {
		faults(ctx, req, m);
	} else if (strcmp(sub, "clock") == 0 && (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_POST)) {
		clock_handler(ctx, req, m);
	} else {
		control_error(req, 404, "not_found", "unknown control path or method");
	}
}
