#include "autoconfig.h"

#include "state.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "htab.h"
#include "money.h"
#include "rng.h"
#include "timeutil.h"
#include "xmalloc.h"

struct sim_state {
	int64_t clock_offset;
	int64_t auth_validity_ms;
	uint64_t recon_seq;

	struct sim_htab *txn_index; /* id -> struct sim_txn * */
	struct sim_txn **txns;      /* owned, in creation order */
	size_t ntxns, captxns;

	struct sim_effect *effects; /* the ledger, in order */
	size_t neffects, capeffects;

	struct sim_htab *mod_index;  /* modificationId -> struct sim_modrec * */
	struct sim_modrec **modrecs; /* owned, in order of first request */
	size_t nmodrecs, capmodrecs;

	uint64_t status_calls;      /* every GET /payment/status */
	int64_t *status_call_times; /* real ms of each, in order (the most recent kept) */
	size_t nstatus_times, capstatus_times;
};

/* Status call times kept for the per-second maximum. */
#define SIM_STATUS_TIMES_MAX 1000000

static const char *const pay_status_names[] = {
    [SIM_PS_CREATED] = "CREATED",
    [SIM_PS_AUTORIZATION_INITIALIZED] = "AUTORIZATION_INITIALIZED",
    [SIM_PS_AUTHORIZATION_COMPLETED] = "AUTHORIZATION_COMPLETED",
    [SIM_PS_CAPTURED] = "CAPTURED",
    [SIM_PS_SETTLED] = "SETTLED",
    [SIM_PS_CANCELLED] = "CANCELLED",
    [SIM_PS_CANCELED] = "CANCELED",
    [SIM_PS_REFUNDED] = "REFUNDED",
    [SIM_PS_EXPIRED] = "EXPIRED",
};

const char *sim_pay_status_name(enum sim_pay_status s)
{
	return pay_status_names[s];
}

bool sim_pay_status_parse(const char *name, enum sim_pay_status *out)
{
	for (size_t i = 0; i < sizeof(pay_status_names) / sizeof(pay_status_names[0]); i++) {
		if (strcmp(name, pay_status_names[i]) == 0) {
			*out = (enum sim_pay_status)i;
			return true;
		}
	}
	return false;
}

const char *sim_op_name(enum sim_op op)
{
	switch (op) {
	case SIM_OP_CAPTURE:
		return "capture";
	case SIM_OP_CANCEL:
		return "cancel";
	case SIM_OP_CANCEL_OR_REFUND:
		return "cancelOrRefund";
	case SIM_OP_REFUND:
		return "refund";
	}
	return "?";
}

const char *sim_mod_type_name(enum sim_mod_type t)
{
	static const char *const names[] = {"CAPTURE", "CANCELLATION", "CANCELATION", "REFUND"};
	return names[t];
}

const char *sim_mod_status_name(enum sim_mod_type t)
{
	static const char *const names[] = {"CAPTURED", "CANCELLED", "CANCELED", "REFUNDED"};
	return names[t];
}

const char *sim_mod_pending_name(enum sim_mod_type t)
{
	static const char *const names[] = {"CAPTURE_PENDING", "CANCELLATION_PENDING",
	                                    "CANCELATION_PENDING", "REFUND_PENDING"};
	return names[t];
}

struct sim_state *sim_state_new(int64_t auth_validity_ms)
{
	struct sim_state *st = xcalloc(1, sizeof(*st));
	st->auth_validity_ms = auth_validity_ms;
	st->txn_index = sim_htab_new(1024);
	st->mod_index = sim_htab_new(1024);
	return st;
}

/* Frees one transaction with its modification history. */
static void txn_free(struct sim_txn *t)
{
	for (size_t i = 0; i < t->nmods; i++) {
		free(t->mods[i].modification_id);
		free(t->mods[i].description);
	}
	free(t->mods);
	free(t->description);
	free(t->payment_method);
	free(t);
}

void sim_state_free(struct sim_state *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < st->ntxns; i++)
		txn_free(st->txns[i]);
	free(st->txns);
	for (size_t i = 0; i < st->nmodrecs; i++) {
		struct sim_modrec *r = st->modrecs[i];
		free(r->modification_id);
		free(r->body);
		free(r->response);
		free(r);
	}
	free(st->modrecs);
	free(st->effects);
	free(st->status_call_times);
	sim_htab_free(st->txn_index);
	sim_htab_free(st->mod_index);
	free(st);
}

int64_t sim_state_now(const struct sim_state *st)
{
	return sim_time_real_ms() + st->clock_offset;
}

void sim_state_advance(struct sim_state *st, int64_t ms)
{
	st->clock_offset += ms;
}

void sim_state_set_now(struct sim_state *st, int64_t ms)
{
	st->clock_offset = ms - sim_time_real_ms();
}

int64_t sim_state_clock_offset(const struct sim_state *st)
{
	return st->clock_offset;
}

int64_t sim_state_auth_validity(const struct sim_state *st)
{
	return st->auth_validity_ms;
}

/* A fresh reconciliation reference id: unique within this simulator run. */
static void next_recon_id(struct sim_state *st, char out[SIM_RECON_ID_LEN + 1])
{
	snprintf(out, SIM_RECON_ID_LEN + 1, "SR%014" PRIX64, ++st->recon_seq);
}

/* True for characters allowed in an id chosen through the control API. */
static bool id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > SIM_TXN_ID_MAX)
		return false;
	for (const char *p = id; *p; p++) {
		if (*p <= ' ' || *p == '/' || *p == '?' || *p == '#' || *p == '%' || *p == '"' ||
		    *p == '\\' || (unsigned char)*p >= 0x7f)
			return false;
	}
	return true;
}

struct sim_txn *sim_state_create(struct sim_state *st, const struct sim_txn_spec *spec,
                                 const char **why)
{
	if (spec->amount <= 0) {
		*why = "amount must be greater than 0";
		return NULL;
	}
	if (spec->currency == NULL || strlen(spec->currency) != 3 ||
	    money_exponent(spec->currency) < 0) {
		*why = "currencyCode must be a known ISO 4217 code";
		return NULL;
	}
	if (spec->id != NULL && !id_ok(spec->id)) {
		*why = "transactionId must be 1 to 36 printable characters without / ? # % \" \\";
		return NULL;
	}
	struct sim_txn *t = xcalloc(1, sizeof(*t));
	if (spec->id != NULL)
		memcpy(t->id, spec->id, strlen(spec->id) + 1);
	else
		sim_uuid_random(t->id);
	if (sim_htab_get(st->txn_index, t->id) != NULL) {
		free(t);
		*why = "a transaction with this transactionId exists";
		return NULL;
	}
	int64_t now = sim_state_now(st);
	memcpy(t->currency, spec->currency, 4);
	next_recon_id(st, t->recon_id);
	t->status = spec->status;
	t->amount = spec->amount;
	if (spec->status == SIM_PS_CAPTURED || spec->status == SIM_PS_SETTLED)
		t->captured = spec->amount;
	if (spec->status == SIM_PS_REFUNDED)
		t->captured = t->refunded = spec->amount;
	t->authorized_at = spec->has_authorized_at ? spec->authorized_at : now;
	t->created_at = t->authorized_at < now ? t->authorized_at : now;
	t->expires_at =
	    spec->has_expires_at ? spec->expires_at : t->authorized_at + st->auth_validity_ms;
	t->last_status_at = t->authorized_at;
	t->description = spec->description ? xstrdup(spec->description) : NULL;
	t->payment_method = xstrdup(spec->payment_method ? spec->payment_method : "CARDS");
	t->mit = spec->mit;

	st->txns = xgrow(st->txns, &st->captxns, st->ntxns + 1, sizeof(*st->txns));
	st->txns[st->ntxns++] = t;
	sim_htab_put(st->txn_index, t->id, t);
	return t;
}

void sim_state_preload_id(uint64_t seed, uint64_t i, char out[SIM_TXN_ID_MAX + 1])
{
	snprintf(out, SIM_TXN_ID_MAX + 1, "%08" PRIx32 "-0000-4000-8000-%012" PRIx64,
	         (uint32_t)seed, (uint64_t)(i & 0xffffffffffffULL));
}

void sim_state_preload(struct sim_state *st, uint64_t n, uint64_t seed)
{
	char id[SIM_TXN_ID_MAX + 1];
	struct sim_txn_spec spec = {
	    .id = id,
	    .amount = 10000,
	    .currency = "EUR",
	    .status = SIM_PS_AUTHORIZATION_COMPLETED,
	    .description = "preloaded",
	};
	const char *why;
	for (uint64_t i = 0; i < n; i++) {
		sim_state_preload_id(seed, i, id);
		(void)sim_state_create(st, &spec, &why); /* an id already taken stays as it is */
	}
}

struct sim_txn *sim_state_find(const struct sim_state *st, const char *id)
{
	return sim_htab_get(st->txn_index, id);
}

/* Fills a refusal into res. */
__attribute__((format(printf, 4, 5))) static void
refuse(struct sim_result *res, enum sim_outcome outcome, const char *error, const char *fmt, ...)
{
	va_list ap;
	res->outcome = outcome;
	res->error = error;
	va_start(ap, fmt);
	vsnprintf(res->details, sizeof(res->details), fmt, ap);
	va_end(ap);
}

/* Appends a modification to the transaction's history and its effect to the ledger. */
static void record(struct sim_state *st, struct sim_txn *t, const struct sim_mod_request *req,
                   enum sim_mod_type type, int64_t amount, int64_t released, int64_t now,
                   struct sim_result *res)
{
	t->mods = xgrow(t->mods, &t->capmods, t->nmods + 1, sizeof(*t->mods));
	struct sim_mod *m = &t->mods[t->nmods];
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->op = req->op;
	m->modification_id = xstrdup(req->modification_id);
	next_recon_id(st, m->recon_id);
	m->amount = amount;
	m->description = req->description ? xstrdup(req->description) : NULL;
	m->at = now;
	res->outcome = SIM_APPLIED;
	res->mod_index = t->nmods++;
	t->last_status_at = now;

	st->effects = xgrow(st->effects, &st->capeffects, st->neffects + 1, sizeof(*st->effects));
	struct sim_effect *e = &st->effects[st->neffects++];
	e->txn = t;
	e->modification_id = m->modification_id;
	e->type = type == SIM_MOD_CAPTURE  ? "CAPTURE"
	          : type == SIM_MOD_REFUND ? "REFUND"
	                                   : "CANCELLATION";
	e->op = req->op;
	e->amount = amount;
	e->released = released;
	e->at = now;
	e->external = false;
}

/* Checks the currency and the positivity of a request's modifiedAmount. */
static bool amount_ok(const struct sim_txn *t, const struct sim_mod_request *req,
                      struct sim_result *res)
{
	if (strcmp(req->currency, t->currency) != 0) {
		refuse(res, SIM_REFUSED, "currency_mismatch",
		       "modifiedAmount.currencyCode %s does not match the transaction's %s",
		       req->currency, t->currency);
		return false;
	}
	if (req->amount <= 0) {
		refuse(res, SIM_REFUSED, "invalid_amount", "amount must be greater than 0");
		return false;
	}
	return true;
}

/* Capture: once, for an authorized and unexpired transaction, 0 < amount <= authorized. */
static void apply_capture(struct sim_state *st, struct sim_txn *t,
                          const struct sim_mod_request *req, int64_t now, struct sim_result *res)
{
	char a[MONEY_TEXT_MAX], b[MONEY_TEXT_MAX];
	if (t->status == SIM_PS_EXPIRED) {
		refuse(res, SIM_REFUSED, "authorization_expired",
		       "the authorization expired and can no longer be captured");
		return;
	}
	if (t->status != SIM_PS_AUTHORIZATION_COMPLETED) {
		refuse(res, SIM_REFUSED, "invalid_state",
		       "capture is not allowed: the transaction is %s (captures only from "
		       "AUTHORIZATION_COMPLETED, once)",
		       sim_pay_status_name(t->status));
		return;
	}
	if (now >= t->expires_at) {
		char when[SIM_TIME_TEXT_MAX];
		sim_time_format(t->expires_at, when);
		refuse(res, SIM_REFUSED, "authorization_expired",
		       "the authorization expired at %s and can no longer be captured", when);
		return;
	}
	int64_t amount = t->amount;
	if (req->has_amount) {
		if (!amount_ok(t, req, res))
			return;
		if (req->amount > t->amount) {
			money_format(req->amount, t->currency, a);
			money_format(t->amount, t->currency, b);
			refuse(res, SIM_REFUSED, "amount_exceeds_authorized",
			       "capture amount %s exceeds the authorized amount %s", a, b);
			return;
		}
		amount = req->amount;
	}
	t->captured = amount;
	t->status = SIM_PS_CAPTURED;
	record(st, t, req, SIM_MOD_CAPTURE, amount, t->amount - amount, now, res);
}

/* Cancel: only before capture; releases the whole authorization. */
static void apply_cancel(struct sim_state *st, struct sim_txn *t, const struct sim_mod_request *req,
                         int64_t now, struct sim_result *res)
{
	if (t->status != SIM_PS_AUTHORIZATION_COMPLETED) {
		refuse(res, SIM_REFUSED, "invalid_state",
		       "cancel is not allowed: the transaction is %s (cancel only before capture; "
		       "use refund or cancelOrRefund)",
		       sim_pay_status_name(t->status));
		return;
	}
	t->status = SIM_PS_CANCELLED;
	record(st, t, req, SIM_MOD_CANCELLATION, t->amount, 0, now, res);
}

/* Refund: only after capture, repeatable while the refunded total stays <= captured. */
static void apply_refund(struct sim_state *st, struct sim_txn *t, const struct sim_mod_request *req,
                         int64_t now, struct sim_result *res)
{
	char a[MONEY_TEXT_MAX], b[MONEY_TEXT_MAX];
	if (t->status != SIM_PS_CAPTURED && t->status != SIM_PS_SETTLED) {
		refuse(res, SIM_REFUSED, "invalid_state",
		       "refund is not allowed: the transaction is %s (refunds only for CAPTURED "
		       "or SETTLED transactions with an amount left to refund)",
		       sim_pay_status_name(t->status));
		return;
	}
	int64_t left = t->captured - t->refunded;
	int64_t amount = left;
	if (req->has_amount) {
		if (!amount_ok(t, req, res))
			return;
		if (req->amount > left) {
			money_format(req->amount, t->currency, a);
			money_format(left, t->currency, b);
			refuse(res, SIM_REFUSED, "amount_exceeds_refundable",
			       "refund amount %s exceeds the amount left to refund %s", a, b);
			return;
		}
		amount = req->amount;
	}
	t->refunded += amount;
	if (t->refunded == t->captured)
		t->status = SIM_PS_REFUNDED;
	record(st, t, req, SIM_MOD_REFUND, amount, 0, now, res);
}

/* cancelOrRefund: cancels before capture, else refunds everything not yet refunded. */
static void apply_cancel_or_refund(struct sim_state *st, struct sim_txn *t,
                                   const struct sim_mod_request *req, int64_t now,
                                   struct sim_result *res)
{
	if (t->status == SIM_PS_AUTHORIZATION_COMPLETED) {
		t->status = SIM_PS_CANCELED;
		record(st, t, req, SIM_MOD_CANCELATION, t->amount, 0, now, res);
		return;
	}
	if ((t->status == SIM_PS_CAPTURED || t->status == SIM_PS_SETTLED) &&
	    t->captured > t->refunded) {
		int64_t amount = t->captured - t->refunded;
		t->refunded = t->captured;
		t->status = SIM_PS_REFUNDED;
		record(st, t, req, SIM_MOD_REFUND, amount, 0, now, res);
		return;
	}
	refuse(res, SIM_REFUSED, "invalid_state",
	       "cancelOrRefund is not possible: the transaction is %s with nothing to cancel or "
	       "refund",
	       sim_pay_status_name(t->status));
}

void sim_state_apply(struct sim_state *st, const struct sim_mod_request *req,
                     struct sim_result *res)
{
	memset(res, 0, sizeof(*res));
	struct sim_txn *t = sim_state_find(st, req->transaction_id);
	if (t == NULL) {
		refuse(res, SIM_NO_TXN, "transaction_not_found",
		       "no transaction with this transactionId");
		return;
	}
	res->txn = t;
	int64_t now = sim_state_now(st);
	switch (req->op) {
	case SIM_OP_CAPTURE:
		apply_capture(st, t, req, now, res);
		break;
	case SIM_OP_CANCEL:
		apply_cancel(st, t, req, now, res);
		break;
	case SIM_OP_REFUND:
		apply_refund(st, t, req, now, res);
		break;
	case SIM_OP_CANCEL_OR_REFUND:
		apply_cancel_or_refund(st, t, req, now, res);
		break;
	}
}

void sim_state_apply_external(struct sim_state *st, const struct sim_mod_request *req,
                              struct sim_result *res)
{
	sim_state_apply(st, req, res);
	if (res->outcome != SIM_APPLIED)
		return;
	res->txn->mods[res->mod_index].external = true;
	st->effects[st->neffects - 1].external = true;
}

bool sim_state_modification_id_used(const struct sim_state *st, const char *modification_id)
{
	if (sim_htab_get(st->mod_index, modification_id) != NULL)
		return true;
	for (size_t i = 0; i < st->ntxns; i++)
		for (size_t j = 0; j < st->txns[i]->nmods; j++)
			if (strcmp(st->txns[i]->mods[j].modification_id, modification_id) == 0)
				return true;
	return false;
}

bool sim_state_expire(struct sim_state *st, struct sim_txn *t)
{
	if (t->status != SIM_PS_AUTHORIZATION_COMPLETED)
		return false;
	int64_t now = sim_state_now(st);
	t->status = SIM_PS_EXPIRED;
	t->expires_at = now;
	t->last_status_at = now;
	st->effects = xgrow(st->effects, &st->capeffects, st->neffects + 1, sizeof(*st->effects));
	struct sim_effect *e = &st->effects[st->neffects++];
	memset(e, 0, sizeof(*e));
	e->txn = t;
	e->type = "EXPIRY";
	e->op = SIM_OP_CANCEL;
	e->amount = t->amount;
	e->at = now;
	e->external = true;
	return true;
}

void sim_state_note_status_call(struct sim_state *st, const char *id, int64_t real_ms)
{
	struct sim_txn *t = sim_state_find(st, id);
	if (t != NULL)
		t->status_calls++;
	st->status_calls++;
	if (st->nstatus_times == SIM_STATUS_TIMES_MAX) {
		memmove(st->status_call_times, st->status_call_times + 1,
		        (st->nstatus_times - 1) * sizeof(*st->status_call_times));
		st->nstatus_times--;
	}
	st->status_call_times = xgrow(st->status_call_times, &st->capstatus_times,
	                              st->nstatus_times + 1, sizeof(*st->status_call_times));
	st->status_call_times[st->nstatus_times++] = real_ms;
}

uint64_t sim_state_status_calls(const struct sim_state *st)
{
	return st->status_calls;
}

uint64_t sim_state_status_calls_max_per_second(const struct sim_state *st)
{
	size_t best = 0, lo = 0;
	for (size_t hi = 0; hi < st->nstatus_times; hi++) {
		while (st->status_call_times[hi] - st->status_call_times[lo] >= 1000)
			lo++;
		if (hi - lo + 1 > best)
			best = hi - lo + 1;
	}
	return best;
}

/* 64-bit FNV-1a of len bytes. */
static uint64_t fnv1a(const char *p, size_t len)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

struct sim_modrec *sim_state_note_request(struct sim_state *st, const char *modification_id,
                                          const char *body, size_t len)
{
	struct sim_modrec *r = sim_htab_get(st->mod_index, modification_id);
	uint64_t h = fnv1a(body, len);
	if (r != NULL && h != r->body_hash)
		r->other_bodies++;
	if (r == NULL) {
		r = xcalloc(1, sizeof(*r));
		r->modification_id = xstrdup(modification_id);
		st->modrecs =
		    xgrow(st->modrecs, &st->capmodrecs, st->nmodrecs + 1, sizeof(*st->modrecs));
		st->modrecs[st->nmodrecs++] = r;
		sim_htab_put(st->mod_index, r->modification_id, r);
		r->body_hash = h;
	}
	r->requests++;
	return r;
}

struct sim_modrec *sim_state_modrec(const struct sim_state *st, const char *modification_id)
{
	return sim_htab_get(st->mod_index, modification_id);
}

enum sim_replay sim_modrec_check(const struct sim_modrec *rec, enum sim_op op, const char *body,
                                 size_t body_len)
{
	if (rec == NULL || !rec->answered)
		return SIM_REPLAY_NEW;
	if (rec->op == op && rec->body_len == body_len && memcmp(rec->body, body, body_len) == 0)
		return SIM_REPLAY_SAME;
	return SIM_REPLAY_CONFLICT;
}

void sim_modrec_store(struct sim_modrec *rec, enum sim_op op, const char *body, size_t body_len,
                      int status, const char *response, size_t response_len)
{
	free(rec->body);
	free(rec->response);
	rec->answered = true;
	rec->op = op;
	rec->body = xmalloc(body_len + 1);
	memcpy(rec->body, body, body_len);
	rec->body[body_len] = '\0';
	rec->body_len = body_len;
	rec->status = status;
	rec->response = xmalloc(response_len + 1);
	memcpy(rec->response, response, response_len);
	rec->response[response_len] = '\0';
	rec->response_len = response_len;
}

const struct sim_effect *sim_state_effects(const struct sim_state *st, size_t *n)
{
	*n = st->neffects;
	return st->effects;
}

struct sim_modrec *const *sim_state_modrecs(const struct sim_state *st, size_t *n)
{
	*n = st->nmodrecs;
	return st->modrecs;
}

size_t sim_state_txn_count(const struct sim_state *st)
{
	return st->ntxns;
}

const struct sim_txn *sim_state_txn_at(const struct sim_state *st, size_t i)
{
	return st->txns[i];
}
