#include "autoconfig.h"

#include "api.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "hostile.h"
#include "money.h"
#include "render.h"
#include "request.h"
#include "server.h"
#include "timeutil.h"
#include "trim.h"
#include "xmalloc.h"

/* An answer: status and body. */
struct answer {
	int status;
	const char *text; /* into ctx->out, or into a stored record */
	size_t len;
};

/* Value of one base64 character, or -1. */
static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decodes padded or unpadded base64 into out (NUL-terminated); false on bad input. */
static bool b64decode(const char *in, char *out, size_t outlen)
{
	size_t n = strlen(in), o = 0;
	while (n > 0 && in[n - 1] == '=')
		n--;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64val(in[i]);
		if (v < 0)
			return false;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= outlen)
				return false;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	return memchr(out, '\0', o) == NULL;
}

bool sim_api_check_basic(const char *header, const char *merchant_key, const char *auth_key)
{
	if (header == NULL || strncasecmp(header, "Basic ", 6) != 0)
		return false;
	const char *p = header + 6;
	while (*p == ' ')
		p++;
	char decoded[512];
	if (!b64decode(p, decoded, sizeof(decoded)))
		return false;
	char *colon = strchr(decoded, ':');
	if (colon == NULL)
		return false;
	*colon = '\0';
	/* compare everything, so the time taken does not depend on where they differ */
	bool user_ok = strcmp(decoded, merchant_key) == 0;
	size_t a = strlen(colon + 1), b = strlen(auth_key);
	unsigned char diff = (unsigned char)(a != b);
	for (size_t i = 0; i < a && i < b; i++)
		diff |= (unsigned char)(colon[1 + i] ^ auth_key[i]);
	return user_ok && diff == 0;
}

/* True when the media type of a Content-Type value is application/json. */
static bool is_json_type(const char *v)
{
	if (v == NULL)
		return false;
	v += trim_start_len(v, strlen(v), " ");
	size_t n = trim_end_len(v, strcspn(v, ";"), " ");
	return n == 16 && strncasecmp(v, "application/json", 16) == 0;
}

/* True when Accept-Language is en-US (the API accepts nothing else). */
static bool is_en_us(const char *v)
{
	if (v == NULL)
		return false;
	while (*v == ' ')
		v++;
	size_t n = strlen(v);
	while (n > 0 && v[n - 1] == ' ')
		n--;
	return n == 5 && strncasecmp(v, "en-US", 5) == 0;
}

/* The render options that the current faults ask for. */
static void render_opts(struct sim_ctx *ctx, struct sim_render_opts *o)
{
	o->array_shape = ctx->faults.array_shape;
	o->extra_fields = ctx->faults.extra_fields;
	o->reorder_fields = ctx->faults.reorder_fields;
	o->omit_optional = ctx->faults.omit_optional;
	o->rng = &ctx->rng;
}

/* Fills an error answer. */
static void error_answer(struct sim_ctx *ctx, struct answer *a, int status, const char *error,
                         const char *details, struct json_object *ignored)
{
	struct sim_render_opts o;
	render_opts(ctx, &o);
	sim_jw_reset(&ctx->out);
	sim_render_error(&ctx->out, error, details, ignored, &o);
	sim_render_finish(&ctx->out, &o);
	a->status = status;
	a->text = ctx->out.buf;
	a->len = ctx->out.len;
}

/* Authentication and the required headers, common to every endpoint. */
static bool check_envelope(struct sim_ctx *ctx, struct sim_req *req, struct answer *a)
{
	struct evkeyvalq *in = req->in;
	if (!sim_api_check_basic(evhttp_find_header(in, "Authorization"), ctx->merchant_key,
	                         ctx->auth_key)) {
		evhttp_add_header(req->out, "WWW-Authenticate", "Basic realm=\"SmartPay\"");
		error_answer(
		    ctx, a, 401, "unauthorized",
		    "missing or wrong credentials (HTTP Basic merchantKey:authenticationKey)",
		    NULL);
		return false;
	}
	if (!is_json_type(evhttp_find_header(in, "Content-Type"))) {
		error_answer(ctx, a, 400, "invalid_header",
		             "the Content-Type header must be application/json", NULL);
		return false;
	}
	if (!is_en_us(evhttp_find_header(in, "Accept-Language"))) {
		error_answer(ctx, a, 400, "invalid_header",
		             "the Accept-Language header must be en-US", NULL);
		return false;
	}
	return true;
}

/* Decides a modification request: validation, idempotency, business rules. */
static void modification(struct sim_ctx *ctx, struct sim_req *req, enum sim_op op,
                         struct json_object *root, const char *body, size_t len, struct answer *a)
{
	if (!check_envelope(ctx, req, a))
		return;
	struct sim_parsed parsed;
	sim_request_validate(op, root, ctx->merchant_key, &parsed);
	if (parsed.status != 0) {
		error_answer(ctx, a, parsed.status, parsed.error, parsed.details, parsed.ignored);
		sim_parsed_free(&parsed);
		return;
	}
	struct sim_modrec *rec = sim_state_modrec(ctx->state, parsed.req.modification_id);
	switch (sim_modrec_check(rec, op, body, len)) {
	case SIM_REPLAY_SAME:
		a->status = rec->status;
		a->text = rec->response;
		a->len = rec->response_len;
		sim_parsed_free(&parsed);
		return;
	case SIM_REPLAY_CONFLICT:
		error_answer(ctx, a, 422, "modification_id_conflict",
		             "this modificationId was already used with a different request",
		             parsed.ignored);
		sim_parsed_free(&parsed);
		return;
	case SIM_REPLAY_NEW:
		break;
	}
	struct sim_result res;
	sim_state_apply(ctx->state, &parsed.req, &res);
	if (res.outcome == SIM_NO_TXN) {
		error_answer(ctx, a, 404, res.error, res.details, parsed.ignored);
	} else if (res.outcome == SIM_REFUSED) {
		error_answer(ctx, a, 422, res.error, res.details, parsed.ignored);
	} else {
		struct sim_render_opts o;
		render_opts(ctx, &o);
		sim_jw_reset(&ctx->out);
		sim_render_txn(&ctx->out, res.txn, (long)res.mod_index, parsed.ignored, &o);
		sim_render_finish(&ctx->out, &o);
		a->status = 200;
		a->text = ctx->out.buf;
		a->len = ctx->out.len;
	}
	if (res.outcome != SIM_NO_TXN && rec != NULL)
		sim_modrec_store(rec, op, body, len, a->status, a->text, a->len);
	sim_parsed_free(&parsed);
}

/* Decides a Get Payment Status request. */
static void status_query(struct sim_ctx *ctx, struct sim_req *req, const char *id, struct answer *a)
{
	if (!check_envelope(ctx, req, a))
		return;
	struct sim_txn *t = sim_state_find(ctx->state, id);
	if (t == NULL) {
		error_answer(ctx, a, 404, "transaction_not_found",
		             "no transaction with this transactionId", NULL);
		return;
	}
	struct sim_render_opts o;
	render_opts(ctx, &o);
	sim_jw_reset(&ctx->out);
	sim_render_txn(&ctx->out, t, -1, NULL, &o);
	sim_render_finish(&ctx->out, &o);
	a->status = 200;
	a->text = ctx->out.buf;
	a->len = ctx->out.len;
}

/* A string member of a request body, or NULL. */
static const char *body_string(struct json_object *root, const char *key)
{
	struct json_object *v;
	if (root == NULL || !json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* A transaction standing in for an unknown one in a made-up answer (its strings are
 * borrowed: it is only rendered, never freed). */
static void stand_in_txn(struct sim_txn *t, const char *id, const struct sim_mod_request *r,
                         int64_t now)
{
	static char cards[] = "CARDS";
	memset(t, 0, sizeof(*t));
	snprintf(t->id, sizeof(t->id), "%s", id ? id : "unknown");
	snprintf(t->currency, sizeof(t->currency), "%s",
	         r->currency && money_exponent(r->currency) >= 0 ? r->currency : "EUR");
	snprintf(t->recon_id, sizeof(t->recon_id), "SR00000000000000");
	t->status = SIM_PS_AUTHORIZATION_COMPLETED;
	t->amount = r->has_amount ? r->amount : 0;
	t->created_at = t->authorized_at = t->last_status_at = now;
	t->expires_at = now;
	t->payment_method = cards;
}

/* Turns t into the state a successful `op` of the request leaves, with m as the one
 * modification entry (the amount the gateway would have moved). */
static void would_be_effect(struct sim_txn *t, struct sim_mod *m, const struct sim_mod_request *r)
{
	int64_t left = t->captured - t->refunded;
	bool captured = t->status == SIM_PS_CAPTURED || t->status == SIM_PS_SETTLED;
	switch (r->op) {
	case SIM_OP_CAPTURE:
		m->type = SIM_MOD_CAPTURE;
		m->amount = r->has_amount ? r->amount : t->amount;
		t->captured = m->amount;
		t->status = SIM_PS_CAPTURED;
		break;
	case SIM_OP_CANCEL:
		m->type = SIM_MOD_CANCELLATION;
		m->amount = t->amount;
		t->status = SIM_PS_CANCELLED;
		break;
	case SIM_OP_CANCEL_OR_REFUND:
		m->type = captured ? SIM_MOD_REFUND : SIM_MOD_CANCELATION;
		m->amount = captured ? left : t->amount;
		t->status = captured ? SIM_PS_REFUNDED : SIM_PS_CANCELED;
		break;
	case SIM_OP_REFUND:
		m->type = SIM_MOD_REFUND;
		m->amount = r->has_amount ? r->amount : left;
		t->refunded += m->amount;
		t->status = t->refunded >= t->captured ? SIM_PS_REFUNDED : SIM_PS_CAPTURED;
		break;
	}
}

/* Writes into ctx->out the answer that would confirm a modification request, without
 * performing it: its transaction (or a stand-in) in the state a success leaves, with
 * one modification entry for the request's modificationId. */
static void would_be_answer(struct sim_ctx *ctx, enum sim_op op, struct json_object *root)
{
	struct sim_parsed parsed;
	sim_request_validate(op, root, ctx->merchant_key, &parsed);
	struct sim_mod_request r = {.op = op};
	if (parsed.status == 0)
		r = parsed.req;
	if (r.transaction_id == NULL)
		r.transaction_id = body_string(root, "transactionId");
	if (r.modification_id == NULL)
		r.modification_id = sim_request_modification_id(root);
	int64_t now = sim_state_now(ctx->state);
	struct sim_txn t;
	const struct sim_txn *found =
	    r.transaction_id ? sim_state_find(ctx->state, r.transaction_id) : NULL;
	if (found != NULL)
		t = *found;
	else
		stand_in_txn(&t, r.transaction_id, &r, now);
	/* a copy of the transaction and one entry, only rendered: their strings are borrowed */
	struct sim_mod m = {.op = op, .at = now, .description = (char *)r.description};
	m.modification_id = (char *)(r.modification_id ? r.modification_id : "");
	snprintf(m.recon_id, sizeof(m.recon_id), "SH%014" PRIX64,
	         sim_rng_next(&ctx->rng) & UINT64_C(0xffffffffffffff));
	would_be_effect(&t, &m, &r);
	t.mods = &m;
	t.nmods = 1;
	t.last_status_at = now;
	struct sim_render_opts o;
	render_opts(ctx, &o);
	sim_jw_reset(&ctx->out);
	sim_render_txn(&ctx->out, &t, 0, parsed.ignored, &o);
	sim_render_finish(&ctx->out, &o);
	sim_parsed_free(&parsed);
}

/* Replaces the answer by the plan's hostile one (kept in *ha), built from the answer
 * that confirms the request: the real one when it was processed and succeeded, else
 * a made-up one. */
static void hostile_answer(struct sim_ctx *ctx, enum sim_op op, struct json_object *root,
                           struct sim_modrec *rec, struct sim_fault_plan *plan, struct answer *a,
                           struct sim_hostile_answer *ha)
{
	const struct sim_hostile *h = plan->hostile;
	const char *tmpl = NULL;
	size_t tlen = 0;
	if (sim_hostile_needs_template(h->mode)) {
		if (!(h->processed && a->status == 200))
			would_be_answer(ctx, op, root);
		tmpl = h->processed && a->status == 200 ? a->text : ctx->out.buf;
		tlen = h->processed && a->status == 200 ? a->len : ctx->out.len;
	}
	sim_hostile_build(h, tmpl, tlen, sim_request_modification_id(root), &ctx->rng, ha);
	a->status = ha->status;
	a->text = ha->body;
	a->len = ha->len;
	plan->content_type = ha->content_type;
	if (rec != NULL)
		rec->hostile++;
}

/* Maps a path to a modification endpoint. */
static bool op_for_path(const char *path, enum sim_op *op)
{
	static const struct {
		const char *path;
		enum sim_op op;
	} routes[] = {
	    {"/payment/capture", SIM_OP_CAPTURE},
	    {"/payment/cancel", SIM_OP_CANCEL},
	    {"/payment/cancelOrRefund", SIM_OP_CANCEL_OR_REFUND},
	    {"/payment/refund", SIM_OP_REFUND},
	};
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(path, routes[i].path) == 0) {
			*op = routes[i].op;
			return true;
		}
	}
	return false;
}

void sim_api_handle(struct sim_ctx *ctx, struct sim_req *req, const char *path)
{
	enum evhttp_cmd_type method = req->method;
	struct answer a = {0};
	enum sim_op op = SIM_OP_CAPTURE;
	bool is_mod = op_for_path(path, &op);
	const char *status_id = NULL;
	if (!is_mod && strncmp(path, "/payment/status/", 16) == 0 && path[16] != '\0' &&
	    strchr(path + 16, '/') == NULL)
		status_id = path + 16;
	if (!is_mod && status_id == NULL) {
		sim_reply_error(req, 404, "not_found", "unknown path");
		return;
	}
	if ((is_mod && method != EVHTTP_REQ_POST) || (!is_mod && method != EVHTTP_REQ_GET)) {
		evhttp_add_header(req->out, "Allow", is_mod ? "POST" : "GET");
		sim_reply_error(req, 405, "method_not_allowed", "method not allowed");
		return;
	}

	struct evbuffer *in = req->body;
	size_t len = evbuffer_get_length(in);
	const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
	struct json_object *root = NULL;
	struct sim_modrec *rec = NULL;
	if (is_mod) {
		root = sim_request_json(ctx->tok, body, len);
		const char *mid = sim_request_modification_id(root);
		if (mid != NULL)
			rec = sim_state_note_request(ctx->state, mid, body, len);
	}

	struct sim_fault_plan plan;
	if (is_mod) {
		sim_faults_plan(&ctx->faults, &ctx->rng, &plan);
	} else {
		sim_state_note_status_call(ctx->state, status_id, sim_time_real_ms());
		sim_faults_plan_status(&ctx->faults, &ctx->rng, &plan);
	}
	if (is_mod && ctx->faults.nhostile > 0)
		sim_faults_pick_hostile(&ctx->faults, &ctx->rng, body_string(root, "transactionId"),
		                        sim_request_modification_id(root), rec ? rec->requests : 0,
		                        &plan);
	bool unprocessed = plan.action == SIM_FAULT_RESET || plan.action == SIM_FAULT_FAIL ||
	                   (plan.action == SIM_FAULT_HOSTILE && !plan.hostile->processed);
	if (!unprocessed) {
		if (is_mod)
			modification(ctx, req, op, root, body, len, &a);
		else
			status_query(ctx, req, status_id, &a);
	}
	struct sim_hostile_answer ha = {0};
	if (plan.action == SIM_FAULT_HOSTILE)
		hostile_answer(ctx, op, root, rec, &plan, &a, &ha);
	if (ctx->verbose) {
		const char *mid = sim_request_modification_id(root);
		fprintf(stderr,
		        "smartpay-sim: event=request method=%s path=%s status=%d fault=%d "
		        "modification_id=%s\n",
		        method == EVHTTP_REQ_GET ? "GET" : "POST", path, a.status, (int)plan.action,
		        mid ? mid : "-");
	}
	sim_answer(ctx, req, &plan, a.status, a.text, a.len);
	sim_hostile_answer_free(&ha);
	json_object_put(root);
}
