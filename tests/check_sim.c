#include "autoconfig.h"

#include <check.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <curl/curl.h>
#include <openssl/ssl.h>
#include <json-c/json.h>

#include "api.h"
#include "faults.h"
#include "hostile.h"
#include "jsonw.h"
#include "render.h"
#include "request.h"
#include "simproc.h"
#include "state.h"
#include "testutil.h"
#include "timeutil.h"
#include "xmalloc.h"

#define MK SIMPROC_MERCHANT_KEY

/* ---------- pure logic: state.c ---------- */

static struct sim_state *st;

static void state_setup(void)
{
	st = sim_state_new(120LL * 3600 * 1000);
}

static void state_teardown(void)
{
	sim_state_free(st);
	st = NULL;
}

/* Creates an authorized EUR transaction of `minor` cents. */
static struct sim_txn *new_txn(const char *id, int64_t minor)
{
	const char *why = NULL;
	struct sim_txn_spec spec = {
	    .id = id, .amount = minor, .currency = "EUR", .status = SIM_PS_AUTHORIZATION_COMPLETED};
	struct sim_txn *t = sim_state_create(st, &spec, &why);
	ck_assert_msg(t != NULL, "create: %s", why);
	return t;
}

/* Applies one modification and returns the outcome. */
static enum sim_outcome apply(enum sim_op op, const char *txn, const char *mid, int64_t amount,
                              struct sim_result *res)
{
	struct sim_mod_request r = {.op = op,
	                            .transaction_id = txn,
	                            .modification_id = mid,
	                            .has_amount = amount >= 0,
	                            .amount = amount,
	                            .currency = "EUR"};
	sim_state_apply(st, &r, res);
	return res->outcome;
}

START_TEST(state_capture_partial_releases_rest)
{
	struct sim_result res;
	struct sim_txn *t = new_txn("t1", 5000);
	ck_assert_int_eq(apply(SIM_OP_CAPTURE, "t1", "m1", 4000, &res), SIM_APPLIED);
	ck_assert_int_eq(t->status, SIM_PS_CAPTURED);
	ck_assert_int_eq(t->captured, 4000);
	ck_assert_str_eq(sim_mod_type_name(t->mods[res.mod_index].type), "CAPTURE");
	size_t n;
	const struct sim_effect *e = sim_state_effects(st, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(e[0].type, "CAPTURE");
	ck_assert_int_eq(e[0].amount, 4000);
	ck_assert_int_eq(e[0].released, 1000);
	/* once only */
	ck_assert_int_eq(apply(SIM_OP_CAPTURE, "t1", "m2", 100, &res), SIM_REFUSED);
	ck_assert_str_eq(res.error, "invalid_state");
	ck_assert_int_eq(apply(SIM_OP_CAPTURE, "nope", "m3", -1, &res), SIM_NO_TXN);
}
END_TEST

START_TEST(state_capture_amount_rules)
{
	struct sim_result res;
	struct sim_txn *t = new_txn("t1", 5000);
	ck_assert_int_eq(apply(SIM_OP_CAPTURE, "t1", "m1", 5001, &res), SIM_REFUSED);
	ck_assert_str_eq(res.error, "amount_exceeds_authorized");
	ck_assert_ptr_nonnull(strstr(res.details, "50.01"));
	ck_assert_int_eq(apply(SIM_OP_CAPTURE, "t1", "m1", 0, &res), SIM_REFUSED);
	struct sim_mod_request r = {.op = SIM_OP_CAPTURE,
	                            .transaction_id = "t1",
	                            .modification_id = "m1",
	                            .has_amount = true,
	                            .amount = 10,
	                            .currency = "USD"};
	sim_state_apply(st, &r, &res);
	ck_assert_int_eq(res.outcome, SIM_REFUSED);
	ck_assert_str_eq(res.error, "currency_mismatch");
	ck_assert_int_eq(t->status, SIM_PS_AUTHORIZATION_COMPLETED);
	/* omitted amount = full */
	ck_assert_int_eq(apply(SIM_OP_CAPTURE, "t1", "m1", -1, &res), SIM_APPLIED);
	ck_assert_int_eq(t->captured, 5000);
}
END_TEST

START_TEST(state_capture_expired)
{
	struct sim_result res;
	struct sim_txn *t = new_txn("t1", 5000);
	ck_assert_int_eq(t->expires_at - t->authorized_at, 120LL * 3600 * 1000);
	sim_state_advance(st, 119LL * 3600 * 1000);
	struct sim_txn *t2 = new_txn("t2", 100);
	(void)t2;
	sim_state_advance(st, 2LL * 3600 * 1000);
	ck_assert_int_eq(apply(SIM_OP_CAPTURE, "t1", "m1", -1, &res), SIM_REFUSED);
	ck_assert_str_eq(res.error, "authorization_expired");
	ck_assert_int_eq(apply(SIM_OP_CAPTURE, "t2", "m2", -1, &res), SIM_APPLIED);
	/* an expired authorization can still be cancelled */
	ck_assert_int_eq(apply(SIM_OP_CANCEL, "t1", "m3", -1, &res), SIM_APPLIED);
}
END_TEST

START_TEST(state_cancel_only_before_capture)
{
	struct sim_result res;
	struct sim_txn *t = new_txn("t1", 5000);
	new_txn("t2", 5000);
	ck_assert_int_eq(apply(SIM_OP_CANCEL, "t1", "c1", -1, &res), SIM_APPLIED);
	ck_assert_int_eq(t->status, SIM_PS_CANCELLED);
	ck_assert_str_eq(sim_mod_type_name(t->mods[0].type), "CANCELLATION");
	ck_assert_int_eq(apply(SIM_OP_CAPTURE, "t1", "c2", -1, &res), SIM_REFUSED);
	ck_assert_int_eq(apply(SIM_OP_CANCEL, "t1", "c3", -1, &res), SIM_REFUSED);
	ck_assert_int_eq(apply(SIM_OP_CAPTURE, "t2", "c4", -1, &res), SIM_APPLIED);
	ck_assert_int_eq(apply(SIM_OP_CANCEL, "t2", "c5", -1, &res), SIM_REFUSED);
	ck_assert_str_eq(res.error, "invalid_state");
}
END_TEST

START_TEST(state_refunds_up_to_captured)
{
	struct sim_result res;
	struct sim_txn *t = new_txn("t1", 3599);
	ck_assert_int_eq(apply(SIM_OP_REFUND, "t1", "r0", 100, &res), SIM_REFUSED);
	ck_assert_int_eq(apply(SIM_OP_CAPTURE, "t1", "c1", 3000, &res), SIM_APPLIED);
	ck_assert_int_eq(apply(SIM_OP_REFUND, "t1", "r1", 2500, &res), SIM_APPLIED);
	ck_assert_int_eq(t->status, SIM_PS_CAPTURED);
	ck_assert_int_eq(apply(SIM_OP_REFUND, "t1", "r2", 501, &res), SIM_REFUSED);
	ck_assert_str_eq(res.error, "amount_exceeds_refundable");
	ck_assert_int_eq(apply(SIM_OP_REFUND, "t1", "r3", 400, &res), SIM_APPLIED);
	ck_assert_int_eq(t->status, SIM_PS_CAPTURED);
	/* omitted amount = the rest */
	ck_assert_int_eq(apply(SIM_OP_REFUND, "t1", "r4", -1, &res), SIM_APPLIED);
	ck_assert_int_eq(t->mods[res.mod_index].amount, 100);
	ck_assert_int_eq(t->status, SIM_PS_REFUNDED);
	ck_assert_int_eq(t->refunded, 3000);
	ck_assert_int_eq(apply(SIM_OP_REFUND, "t1", "r5", 1, &res), SIM_REFUSED);
}
END_TEST

START_TEST(state_cancel_or_refund)
{
	struct sim_result res;
	struct sim_txn *a = new_txn("a", 1099);
	struct sim_txn *b = new_txn("b", 1099);
	ck_assert_int_eq(apply(SIM_OP_CANCEL_OR_REFUND, "a", "x1", -1, &res), SIM_APPLIED);
	ck_assert_int_eq(a->status, SIM_PS_CANCELED);
	ck_assert_str_eq(sim_pay_status_name(a->status), "CANCELED");
	ck_assert_str_eq(sim_mod_type_name(a->mods[0].type), "CANCELATION");
	ck_assert_str_eq(sim_mod_status_name(a->mods[0].type), "CANCELED");
	ck_assert_int_eq(apply(SIM_OP_CANCEL_OR_REFUND, "a", "x2", -1, &res), SIM_REFUSED);

	ck_assert_int_eq(apply(SIM_OP_CAPTURE, "b", "y1", 1000, &res), SIM_APPLIED);
	ck_assert_int_eq(apply(SIM_OP_REFUND, "b", "y2", 300, &res), SIM_APPLIED);
	ck_assert_int_eq(apply(SIM_OP_CANCEL_OR_REFUND, "b", "y3", -1, &res), SIM_APPLIED);
	ck_assert_int_eq(b->mods[res.mod_index].amount, 700);
	ck_assert_int_eq(b->status, SIM_PS_REFUNDED);
	size_t n;
	const struct sim_effect *e = sim_state_effects(st, &n);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(e[0].type, "CANCELLATION");
	ck_assert_int_eq(e[0].amount, 1099);
	ck_assert_str_eq(e[3].type, "REFUND");
	ck_assert_int_eq(e[3].op, SIM_OP_CANCEL_OR_REFUND);
}
END_TEST

START_TEST(state_create_rules_and_preload)
{
	const char *why;
	struct sim_txn_spec spec = {.amount = 100, .currency = "EUR", .status = SIM_PS_CAPTURED};
	struct sim_txn *t = sim_state_create(st, &spec, &why);
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(strlen(t->id), 36);
	ck_assert_int_eq(t->id[14], '4');
	ck_assert_int_eq(t->captured, 100);
	spec.id = t->id;
	ck_assert_ptr_null(sim_state_create(st, &spec, &why));
	spec.id = NULL;
	spec.currency = "XXQ";
	ck_assert_ptr_null(sim_state_create(st, &spec, &why));
	spec.currency = "EUR";
	spec.amount = 0;
	ck_assert_ptr_null(sim_state_create(st, &spec, &why));

	sim_state_preload(st, 1000, 7);
	char id[SIM_TXN_ID_MAX + 1];
	sim_state_preload_id(7, 999, id);
	ck_assert_str_eq(id, "00000007-0000-4000-8000-0000000003e7");
	ck_assert_ptr_nonnull(sim_state_find(st, id));
	ck_assert_uint_eq(sim_state_txn_count(st), 1001);
}
END_TEST

START_TEST(state_idempotency_records)
{
	struct sim_modrec *r = sim_state_note_request(st, "m1", "{}", 2);
	ck_assert_int_eq(sim_modrec_check(r, SIM_OP_CAPTURE, "{}", 2), SIM_REPLAY_NEW);
	sim_modrec_store(r, SIM_OP_CAPTURE, "{\"a\":1}", 7, 200, "ok", 2);
	ck_assert_ptr_eq(sim_state_note_request(st, "m1", "{}", 2), r);
	ck_assert_uint_eq(r->requests, 2);
	ck_assert_int_eq(sim_modrec_check(r, SIM_OP_CAPTURE, "{\"a\":1}", 7), SIM_REPLAY_SAME);
	ck_assert_int_eq(sim_modrec_check(r, SIM_OP_CAPTURE, "{\"a\": 1}", 8), SIM_REPLAY_CONFLICT);
	ck_assert_int_eq(sim_modrec_check(r, SIM_OP_REFUND, "{\"a\":1}", 7), SIM_REPLAY_CONFLICT);
	ck_assert_ptr_null(sim_state_modrec(st, "m2"));
}
END_TEST

/* ---------- pure logic: request.c ---------- */

/* Validates body for op; returns the HTTP status (0 valid). p is left for the caller. */
static int validate(enum sim_op op, const char *body, struct json_object **root,
                    struct sim_parsed *p)
{
	*root = sim_request_json(NULL, body, strlen(body));
	sim_request_validate(op, *root, MK, p);
	return p->status;
}

/* Validates and releases; returns the status and copies the error code. */
static int check_body(enum sim_op op, const char *body, char *error, size_t errlen)
{
	struct json_object *root;
	struct sim_parsed p;
	int status = validate(op, body, &root, &p);
	snprintf(error, errlen, "%s", p.error ? p.error : "");
	sim_parsed_free(&p);
	json_object_put(root);
	return status;
}

START_TEST(request_fields)
{
	char err[64];
	ck_assert_int_eq(check_body(SIM_OP_CAPTURE, "{", err, sizeof(err)), 400);
	ck_assert_str_eq(err, "invalid_json");
	ck_assert_int_eq(check_body(SIM_OP_CAPTURE, "[]", err, sizeof(err)), 400);
	ck_assert_int_eq(check_body(SIM_OP_CAPTURE, "{\"a\":1} x", err, sizeof(err)), 400);
	ck_assert_int_eq(check_body(SIM_OP_CAPTURE,
	                            "{\"transactionId\":\"t\",\"modificationId\":\"m\"}", err,
	                            sizeof(err)),
	                 400);
	ck_assert_str_eq(err, "missing_field");
	ck_assert_int_eq(check_body(SIM_OP_CAPTURE,
	                            "{\"transactionId\":\"t\",\"merchantKey\":\"other\","
	                            "\"modificationId\":\"m\"}",
	                            err, sizeof(err)),
	                 403);
	ck_assert_int_eq(check_body(SIM_OP_CAPTURE,
	                            "{\"merchantKey\":\"" MK "\",\"modificationId\":\"m\"}", err,
	                            sizeof(err)),
	                 400);
	ck_assert_int_eq(check_body(SIM_OP_CAPTURE,
	                            "{\"merchantKey\":\"" MK "\",\"transactionId\":7,"
	                            "\"modificationId\":\"m\"}",
	                            err, sizeof(err)),
	                 400);
	ck_assert_str_eq(err, "invalid_field");
	/* modificationId: 64 for capture, 36 for refund */
	char id65[66], body[512];
	memset(id65, 'a', 65);
	id65[65] = '\0';
	snprintf(body, sizeof(body),
	         "{\"merchantKey\":\"" MK "\",\"transactionId\":\"t\",\"modificationId\":\"%s\"}",
	         id65);
	ck_assert_int_eq(check_body(SIM_OP_CAPTURE, body, err, sizeof(err)), 400);
	id65[64] = '\0';
	snprintf(body, sizeof(body),
	         "{\"merchantKey\":\"" MK "\",\"transactionId\":\"t\",\"modificationId\":\"%s\"}",
	         id65);
	ck_assert_int_eq(check_body(SIM_OP_CAPTURE, body, err, sizeof(err)), 0);
	ck_assert_int_eq(check_body(SIM_OP_REFUND, body, err, sizeof(err)), 400);
	id65[36] = '\0';
	snprintf(body, sizeof(body),
	         "{\"merchantKey\":\"" MK "\",\"transactionId\":\"t\",\"modificationId\":\"%s\"}",
	         id65);
	ck_assert_int_eq(check_body(SIM_OP_REFUND, body, err, sizeof(err)), 0);
	/* description at most 127 */
	char desc[129];
	memset(desc, 'd', 128);
	desc[128] = '\0';
	snprintf(body, sizeof(body),
	         "{\"merchantKey\":\"" MK "\",\"transactionId\":\"t\",\"modificationId\":\"m\","
	         "\"description\":\"%s\"}",
	         desc);
	ck_assert_int_eq(check_body(SIM_OP_CANCEL, body, err, sizeof(err)), 400);
	ck_assert_int_eq(
	    check_body(SIM_OP_CANCEL,
	               "{\"merchantKey\":\"" MK "\",\"transactionId\":\"t\","
	               "\"modificationId\":\"m\",\"customReferences\":{\"custom1\":5}}",
	               err, sizeof(err)),
	    400);
}
END_TEST

/* Validates a capture with the given modifiedAmount JSON; returns status, sets *minor. */
static int capture_amount(const char *amount_json, int64_t *minor, char *error, size_t errlen)
{
	char *body = xasprintf("{\"merchantKey\":\"" MK "\",\"transactionId\":\"t\","
	                       "\"modificationId\":\"m\",\"modifiedAmount\":%s}",
	                       amount_json);
	struct json_object *root;
	struct sim_parsed p;
	int status = validate(SIM_OP_CAPTURE, body, &root, &p);
	*minor = p.req.amount;
	snprintf(error, errlen, "%s", p.error ? p.error : "");
	sim_parsed_free(&p);
	json_object_put(root);
	free(body);
	return status;
}

START_TEST(request_amounts_exact)
{
	char err[64];
	int64_t m;
	ck_assert_int_eq(capture_amount("{\"amount\":40.00,\"currencyCode\":\"EUR\"}", &m, err, 64),
	                 0);
	ck_assert_int_eq(m, 4000);
	ck_assert_int_eq(capture_amount("{\"amount\":0.29,\"currencyCode\":\"EUR\"}", &m, err, 64),
	                 0);
	ck_assert_int_eq(m, 29); /* (int)(0.29 * 100) would be 28 */
	ck_assert_int_eq(capture_amount("{\"amount\":25,\"currencyCode\":\"EUR\"}", &m, err, 64),
	                 0);
	ck_assert_int_eq(m, 2500);
	ck_assert_int_eq(capture_amount("{\"amount\":1234567890123456.78,\"currencyCode\":\"EUR\"}",
	                                &m, err, 64),
	                 0);
	ck_assert_int_eq(m, 123456789012345678LL);
	ck_assert_int_eq(capture_amount("{\"amount\":500,\"currencyCode\":\"JPY\"}", &m, err, 64),
	                 0);
	ck_assert_int_eq(m, 500);
	ck_assert_int_eq(
	    capture_amount("{\"amount\":40.001,\"currencyCode\":\"EUR\"}", &m, err, 64), 400);
	ck_assert_str_eq(err, "invalid_amount");
	ck_assert_int_eq(
	    capture_amount("{\"amount\":\"40.00\",\"currencyCode\":\"EUR\"}", &m, err, 64), 400);
	ck_assert_int_eq(capture_amount("{\"amount\":-1,\"currencyCode\":\"EUR\"}", &m, err, 64),
	                 400);
	ck_assert_int_eq(capture_amount("{\"amount\":0,\"currencyCode\":\"EUR\"}", &m, err, 64),
	                 400);
	ck_assert_int_eq(capture_amount("{\"amount\":4e1,\"currencyCode\":\"EUR\"}", &m, err, 64),
	                 400);
	ck_assert_int_eq(capture_amount("{\"amount\":1,\"currencyCode\":\"EU\"}", &m, err, 64),
	                 400);
	ck_assert_int_eq(capture_amount("{\"amount\":1,\"currencyCode\":\"QQQ\"}", &m, err, 64),
	                 400);
	ck_assert_int_eq(capture_amount("{\"currencyCode\":\"EUR\"}", &m, err, 64), 400);
	ck_assert_str_eq(err, "missing_field");
	ck_assert_int_eq(capture_amount("5", &m, err, 64), 400);
}
END_TEST

START_TEST(request_ignored_properties)
{
	struct json_object *root;
	struct sim_parsed p;
	int status =
	    validate(SIM_OP_CAPTURE,
	             "{\"merchantKey\":\"" MK "\",\"transactionId\":\"t\",\"modificationID\":"
	             "\"x\",\"modificationId\":\"m\",\"extra\":[1],\"modifiedAmount\":{"
	             "\"amount\":1.50,\"currencyCode\":\"EUR\",\"vat\":1}}",
	             &root, &p);
	ck_assert_int_eq(status, 0);
	ck_assert_int_eq(json_object_array_length(p.ignored), 3);
	ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(p.ignored, 0)),
	                 "modificationID");
	ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(p.ignored, 1)), "extra");
	ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(p.ignored, 2)),
	                 "modifiedAmount.vat");
	ck_assert_str_eq(p.req.modification_id, "m");
	ck_assert_int_eq(p.req.amount, 150);
	sim_parsed_free(&p);
	json_object_put(root);
}
END_TEST

/* ---------- pure logic: render, faults, time, writer ---------- */

START_TEST(render_model_and_variants)
{
	struct sim_result res;
	new_txn("t1", 5000);
	ck_assert_int_eq(apply(SIM_OP_CAPTURE, "t1", "m1", 4000, &res), SIM_APPLIED);
	struct sim_rng rng;
	sim_rng_seed(&rng, 3);
	struct sim_render_opts o = {.rng = &rng};
	struct sim_jw w;
	sim_jw_init(&w);
	sim_render_txn(&w, res.txn, (long)res.mod_index, NULL, &o);
	ck_assert_ptr_nonnull(strstr(w.buf, "\"modificationAmount\":{\"amount\":40.00,"));
	ck_assert_ptr_nonnull(strstr(w.buf, "\"amount\":50.00,\"currencyCode\":\"EUR\""));
	struct json_object *plain = json_tokener_parse(w.buf), *v;
	ck_assert_ptr_nonnull(plain);
	ck_assert(json_object_object_get_ex(plain, "modification", &v));
	ck_assert(!json_object_object_get_ex(plain, "modifications", &v));
	ck_assert(json_object_object_get_ex(plain, "creationDate", &v));
	ck_assert_int_eq(strlen(json_object_get_string(v)), 24);

	o.array_shape = true;
	sim_jw_reset(&w);
	sim_render_txn(&w, res.txn, (long)res.mod_index, NULL, &o);
	struct json_object *arr = json_tokener_parse(w.buf);
	ck_assert(json_object_object_get_ex(arr, "modifications", &v));
	ck_assert_int_eq(json_object_array_length(v), 1);
	json_object_put(arr);

	o.array_shape = false;
	o.omit_optional = true;
	o.extra_fields = true;
	sim_jw_reset(&w);
	sim_render_txn(&w, res.txn, (long)res.mod_index, NULL, &o);
	struct json_object *varied = json_tokener_parse(w.buf);
	ck_assert_ptr_nonnull(varied);
	ck_assert(!json_object_object_get_ex(varied, "creationDate", &v));
	ck_assert(json_object_object_get_ex(varied, "simExtra", &v));
	ck_assert(json_object_object_get_ex(varied, "paymentStatus", &v));
	ck_assert_str_eq(json_object_get_string(v), "CAPTURED");
	json_object_put(varied);

	/* reordering changes the text, not the content, and keeps "40.00" */
	o.omit_optional = o.extra_fields = false;
	o.reorder_fields = true;
	bool differs = false;
	for (int i = 0; i < 5 && !differs; i++) {
		sim_jw_reset(&w);
		sim_render_txn(&w, res.txn, (long)res.mod_index, NULL, &o);
		sim_render_finish(&w, &o);
		struct json_object *re = json_tokener_parse(w.buf);
		ck_assert(json_object_equal(re, plain));
		ck_assert_ptr_nonnull(strstr(w.buf, "40.00"));
		differs = strncmp(w.buf, "{\"reconciliationReferenceId\"", 28) != 0;
		json_object_put(re);
	}
	ck_assert(differs);
	json_object_put(plain);

	sim_jw_reset(&w);
	sim_render_error(&w, "e", "quote \" and \\ and \x01", NULL, &o);
	ck_assert_str_eq(w.buf,
	                 "{\"error\":\"e\",\"errorDetails\":\"quote \\\" and \\\\ and \\u0001\"}");
	sim_jw_free(&w);
}
END_TEST

/* Parses a faults document; returns success and the reason. */
static bool faults_doc(const char *json, struct sim_faults *f, char *err)
{
	struct json_object *doc = json_tokener_parse(json);
	bool ok = sim_faults_from_json(doc, f, err, 200);
	json_object_put(doc);
	return ok;
}

START_TEST(faults_config_and_plans)
{
	struct sim_faults f;
	char err[200];
	ck_assert(faults_doc("{}", &f, err));
	ck_assert_int_eq(f.status, 503);
	ck_assert(!faults_doc("{\"fail_rate\":1.5}", &f, err));
	ck_assert(!faults_doc("{\"fail_rate\":0.6,\"reset_rate\":0.6}", &f, err));
	ck_assert(!faults_doc("{\"status\":404}", &f, err));
	ck_assert(!faults_doc("{\"bogus\":1}", &f, err));
	ck_assert_ptr_nonnull(strstr(err, "bogus"));
	ck_assert(!faults_doc("{\"shape\":\"list\"}", &f, err));
	ck_assert(
	    faults_doc("{\"shape\":\"modifications\",\"status\":429,\"retry_after\":9}", &f, err));
	ck_assert(f.array_shape);
	ck_assert_int_eq(f.retry_after, 9);
	ck_assert(sim_faults_parse_latency("50:10", &f));
	ck_assert_int_eq(f.latency_ms, 50);
	ck_assert_int_eq(f.jitter_ms, 10);
	ck_assert(!sim_faults_parse_latency("50:", &f));

	/* the same seed gives the same decisions */
	ck_assert(faults_doc("{\"fail_rate\":0.3,\"drop_after_commit_rate\":0.3,\"latency_ms\":20,"
	                     "\"jitter_ms\":10}",
	                     &f, err));
	struct sim_rng a, b;
	sim_rng_seed(&a, 42);
	sim_rng_seed(&b, 42);
	int counts[6] = {0};
	for (int i = 0; i < 1000; i++) {
		struct sim_fault_plan pa, pb;
		sim_faults_plan(&f, &a, &pa);
		sim_faults_plan(&f, &b, &pb);
		ck_assert_int_eq(pa.action, pb.action);
		ck_assert_int_eq(pa.delay_ms, pb.delay_ms);
		ck_assert(pa.delay_ms >= 10 && pa.delay_ms <= 30);
		counts[pa.action]++;
	}
	ck_assert(counts[SIM_FAULT_FAIL] > 200 && counts[SIM_FAULT_FAIL] < 400);
	ck_assert(counts[SIM_FAULT_DROP] > 200 && counts[SIM_FAULT_DROP] < 400);
	ck_assert_int_eq(
	    counts[SIM_FAULT_RESET] + counts[SIM_FAULT_SLOW] + counts[SIM_FAULT_GARBLE], 0);

	/* garbled bodies never parse */
	const char *body = "{\"paymentStatus\":\"CAPTURED\",\"x\":[1,2,{\"y\":\"z\"}]}";
	for (int i = 0; i < 200; i++) {
		size_t n;
		char *g = sim_faults_garble(&a, body, strlen(body), &n);
		struct json_tokener *tok = json_tokener_new();
		struct json_object *o = json_tokener_parse_ex(tok, g, (int)n);
		ck_assert_msg(o == NULL || json_tokener_get_parse_end(tok) < n, "valid: %s", g);
		json_object_put(o);
		json_tokener_free(tok);
		free(g);
	}
}
END_TEST

/* True when n bytes are well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static bool utf8_valid(const char *text, size_t n)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i], cp, min;
		size_t k;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			k = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (k >= n - i)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

/* Parses a faults document that must be valid and returns its first hostile rule. */
static void hostile_doc(const char *json, struct sim_faults *f)
{
	char err[200];
	struct json_object *doc = json_tokener_parse(json);
	ck_assert_msg(doc != NULL, "not JSON: %s", json);
	ck_assert_msg(sim_faults_from_json(doc, f, err, sizeof(err)), "%s: %s", json, err);
	json_object_put(doc);
	ck_assert_uint_ge(f->nhostile, 1);
}

START_TEST(hostile_config_and_picks)
{
	struct sim_faults f;
	char err[200];
	/* processed must be said; unknown modes, members and statuses are refused */
	ck_assert(!faults_doc("{\"hostile\":[{\"mode\":\"error_200\"}]}", &f, err));
	ck_assert_ptr_nonnull(strstr(err, "processed"));
	ck_assert(!faults_doc("{\"hostile\":[{\"mode\":\"nope\",\"processed\":true}]}", &f, err));
	ck_assert(!faults_doc("{\"hostile\":[{\"processed\":true}]}", &f, err));
	ck_assert(!faults_doc(
	    "{\"hostile\":[{\"mode\":\"error_200\",\"processed\":true,\"colour\":1}]}", &f, err));
	ck_assert(!faults_doc(
	    "{\"hostile\":[{\"mode\":\"error_200\",\"processed\":true,\"status\":503}]}", &f, err));
	ck_assert(!faults_doc(
	    "{\"hostile\":[{\"mode\":\"latin1_page\",\"processed\":false,\"status\":404}]}", &f,
	    err));
	ck_assert(
	    !faults_doc("{\"hostile\":{\"mode\":\"error_200\",\"processed\":true}}", &f, err));
	ck_assert(!faults_doc("{\"hostile\":[{\"mode\":\"error_200\",\"processed\":true,"
	                      "\"transactions\":[]}]}",
	                      &f, err));
	ck_assert(!faults_doc("{\"hostile\":[{\"mode\":\"error_200\",\"processed\":true,"
	                      "\"rate\":0.6},{\"mode\":\"html_200\",\"processed\":true,"
	                      "\"rate\":0.6}]}",
	                      &f, err));
	ck_assert_ptr_nonnull(strstr(err, "exceed 1"));
	/* targeted rules may each have rate 1 */
	hostile_doc("{\"hostile\":[{\"mode\":\"error_200\",\"processed\":true,\"transactions\":"
	            "[\"a\"]},{\"mode\":\"latin1_page\",\"processed\":false,\"modifications\":"
	            "[\"m\",\"n\"],\"status\":502},{\"mode\":\"empty_202\",\"processed\":true}]}",
	            &f);
	ck_assert_uint_eq(f.nhostile, 3);
	ck_assert_int_eq(f.hostile[0].status, 200);
	ck_assert(f.hostile[0].processed);
	ck_assert(f.hostile[0].rate == 1.0);
	ck_assert_int_eq(f.hostile[1].status, 502);
	ck_assert(!f.hostile[1].processed);
	ck_assert_uint_eq(f.hostile[1].nmodifications, 2);
	ck_assert_int_eq(f.hostile[2].status, 202);
	/* the document round-trips */
	struct json_object *out = sim_faults_to_json(&f);
	struct sim_faults g;
	ck_assert(sim_faults_from_json(out, &g, err, sizeof(err)));
	struct json_object *again = sim_faults_to_json(&g);
	ck_assert(json_object_equal(out, again));
	json_object_put(out);
	json_object_put(again);
	sim_faults_free(&g);
	sim_faults_free(&f);

	/* picks: rules that match stack their rates; max_per_id limits by request count */
	hostile_doc("{\"hostile\":[{\"mode\":\"other_id\",\"processed\":true,\"rate\":0.5,"
	            "\"transactions\":[\"t1\"]},{\"mode\":\"empty_200\",\"processed\":false,"
	            "\"rate\":0.5,\"max_per_id\":2}]}",
	            &f);
	struct sim_rng a, b;
	sim_rng_seed(&a, 11);
	int first = 0, second = 0, none_t2 = 0;
	for (int i = 0; i < 1000; i++) {
		struct sim_fault_plan p;
		sim_faults_plan(&f, &a, &p);
		sim_faults_pick_hostile(&f, &a, "t1", "m", 1, &p);
		ck_assert_int_eq(p.action, SIM_FAULT_HOSTILE);
		first += p.hostile == &f.hostile[0];
		second += p.hostile == &f.hostile[1];
		sim_faults_plan(&f, &a, &p);
		sim_faults_pick_hostile(&f, &a, "t2", "m", 2, &p);
		none_t2 += p.action == SIM_FAULT_NONE;
		if (p.action == SIM_FAULT_HOSTILE)
			ck_assert_ptr_eq(p.hostile, &f.hostile[1]);
		sim_faults_plan(&f, &a, &p);
		sim_faults_pick_hostile(&f, &a, "t2", "m", 3, &p);
		ck_assert_int_eq(p.action, SIM_FAULT_NONE);
	}
	ck_assert(first > 400 && first < 600);
	ck_assert_int_eq(first + second, 1000);
	ck_assert(none_t2 > 400 && none_t2 < 600);
	/* a draw is taken whether or not a rule matches, and another action wins */
	sim_rng_seed(&a, 5);
	sim_rng_seed(&b, 5);
	struct sim_fault_plan pa = {.action = SIM_FAULT_FAIL}, pb = {.action = SIM_FAULT_NONE};
	sim_faults_pick_hostile(&f, &a, "t1", "m", 1, &pa);
	sim_faults_pick_hostile(&f, &b, "zz", "m", 9, &pb);
	ck_assert_int_eq(pa.action, SIM_FAULT_FAIL);
	ck_assert_int_eq(pb.action, SIM_FAULT_NONE);
	ck_assert_uint_eq(sim_rng_next(&a), sim_rng_next(&b));
	sim_faults_free(&f);
	/* without rules nothing is drawn */
	sim_faults_clear(&f);
	sim_rng_seed(&a, 5);
	sim_rng_seed(&b, 5);
	sim_faults_pick_hostile(&f, &a, "t1", "m", 1, &pa);
	ck_assert_uint_eq(sim_rng_next(&a), sim_rng_next(&b));
}
END_TEST

/* Builds the answer of a one-rule faults document from template t (len n). */
static void hostile_build_doc(const char *json, const char *t, size_t n,
                              struct sim_hostile_answer *out)
{
	struct sim_faults f;
	struct sim_rng rng;
	sim_rng_seed(&rng, 1);
	hostile_doc(json, &f);
	sim_hostile_build(&f.hostile[0], t, n, "m1", &rng, out);
	sim_faults_free(&f);
}

/* The member at path ("a.b") of a parsed body, or NULL. */
static struct json_object *member_at(struct json_object *o, const char *path)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
		if (!json_object_object_get_ex(o, k, &o))
			return NULL;
	}
	return o;
}

/* True when a string member holds a NUL byte and reads as `prefix` as a C string. */
static bool nul_after(struct json_object *o, const char *path, const char *prefix)
{
	struct json_object *v = member_at(o, path);
	return v != NULL && json_object_is_type(v, json_type_string) &&
	       strcmp(json_object_get_string(v), prefix) == 0 &&
	       (size_t)json_object_get_string_len(v) > strlen(prefix);
}

/* Parses a whole body (which must be one JSON object) or returns NULL. */
static struct json_object *parse_all(const char *body, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o = json_tokener_parse_ex(tok, body, (int)len);
	if (o != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
	                  json_tokener_get_parse_end(tok) != len)) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

START_TEST(hostile_bodies)
{
	struct sim_result res;
	new_txn("t1", 5000);
	ck_assert_int_eq(apply(SIM_OP_CAPTURE, "t1", "m1", 4000, &res), SIM_APPLIED);
	struct sim_render_opts o = {0};
	struct sim_jw w;
	sim_jw_init(&w);
	sim_render_txn(&w, res.txn, (long)res.mod_index, NULL, &o);
	struct sim_hostile_answer a;
	struct json_object *v;

	hostile_build_doc("{\"hostile\":[{\"mode\":\"error_200\",\"processed\":true}]}", w.buf,
	                  w.len, &a);
	v = parse_all(a.body, a.len);
	ck_assert_int_eq(a.status, 200);
	ck_assert_ptr_nonnull(member_at(v, "error"));
	ck_assert_ptr_null(member_at(v, "modification"));
	json_object_put(v);
	sim_hostile_answer_free(&a);

	hostile_build_doc("{\"hostile\":[{\"mode\":\"empty_202\",\"processed\":true}]}", NULL, 0,
	                  &a);
	ck_assert_int_eq(a.status, 202);
	ck_assert_str_eq(a.body, "{}");
	sim_hostile_answer_free(&a);

	hostile_build_doc("{\"hostile\":[{\"mode\":\"empty_200\",\"processed\":false}]}", NULL, 0,
	                  &a);
	ck_assert_int_eq(a.status, 200);
	ck_assert_uint_eq(a.len, 0);
	sim_hostile_answer_free(&a);

	hostile_build_doc("{\"hostile\":[{\"mode\":\"other_id\",\"processed\":true}]}", w.buf,
	                  w.len, &a);
	v = parse_all(a.body, a.len);
	ck_assert_str_eq(json_object_get_string(member_at(v, "paymentStatus")), "CAPTURED");
	const char *other =
	    json_object_get_string(member_at(v, "modification.modificationData.modificationId"));
	ck_assert_uint_eq(strlen(other), 36);
	ck_assert_str_ne(other, "m1");
	json_object_put(v);
	sim_hostile_answer_free(&a);

	hostile_build_doc("{\"hostile\":[{\"mode\":\"failed_status\",\"processed\":false,"
	                  "\"failed_status\":\"REFUSED\"}]}",
	                  w.buf, w.len, &a);
	v = parse_all(a.body, a.len);
	ck_assert_str_eq(
	    json_object_get_string(member_at(v, "modification.modificationData.modificationId")),
	    "m1");
	ck_assert_str_eq(json_object_get_string(member_at(v, "modification.status")), "REFUSED");
	ck_assert_ptr_null(member_at(v, "modification.statusHistory"));
	json_object_put(v);
	sim_hostile_answer_free(&a);

	/* \u0000 tricks: the C-string reading is exactly what a real confirmation says */
	hostile_build_doc("{\"hostile\":[{\"mode\":\"nul_status\",\"processed\":true}]}", w.buf,
	                  w.len, &a);
	ck_assert_ptr_nonnull(strstr(a.body, "\"paymentStatus\":\"CAPTURED\\u0000junk\""));
	v = parse_all(a.body, a.len);
	ck_assert(nul_after(v, "paymentStatus", "CAPTURED"));
	ck_assert(nul_after(v, "modification.status", "CAPTURED"));
	ck_assert_str_eq(
	    json_object_get_string(member_at(v, "modification.modificationData.modificationId")),
	    "m1");
	json_object_put(v);
	sim_hostile_answer_free(&a);

	hostile_build_doc("{\"hostile\":[{\"mode\":\"nul_id\",\"processed\":true}]}", w.buf, w.len,
	                  &a);
	ck_assert_ptr_nonnull(strstr(a.body, "\"modificationId\":\"m1\\u0000other\""));
	v = parse_all(a.body, a.len);
	ck_assert(nul_after(v, "modification.modificationData.modificationId", "m1"));
	ck_assert_str_eq(json_object_get_string(member_at(v, "modification.status")), "CAPTURED");
	json_object_put(v);
	sim_hostile_answer_free(&a);

	hostile_build_doc("{\"hostile\":[{\"mode\":\"html_200\",\"processed\":true}]}", NULL, 0,
	                  &a);
	ck_assert_int_eq(a.status, 200);
	ck_assert_str_eq(a.content_type, "text/html");
	ck_assert_int_eq(strncmp(a.body, "<!DOCTYPE html>", 15), 0);
	ck_assert_ptr_null(parse_all(a.body, a.len));
	sim_hostile_answer_free(&a);

	/* error pages that are not UTF-8 */
	hostile_build_doc("{\"hostile\":[{\"mode\":\"latin1_page\",\"processed\":false}]}", NULL, 0,
	                  &a);
	ck_assert_int_eq(a.status, 503);
	ck_assert_ptr_nonnull(strstr(a.content_type, "windows-1252"));
	ck_assert(!utf8_valid(a.body, a.len));
	ck_assert_ptr_nonnull(strchr(a.body, '\xe9'));
	ck_assert_ptr_null(memchr(a.body, '\0', a.len));
	sim_hostile_answer_free(&a);

	hostile_build_doc(
	    "{\"hostile\":[{\"mode\":\"nul_body\",\"processed\":false,\"status\":502}]}", NULL, 0,
	    &a);
	ck_assert_int_eq(a.status, 502);
	ck_assert_ptr_nonnull(memchr(a.body, '\0', a.len));
	ck_assert_uint_gt(a.len, strlen(a.body));
	sim_hostile_answer_free(&a);

	/* past 64 KiB: byte 65536 is inside a character; cut_utf8 also ends inside one */
	hostile_build_doc("{\"hostile\":[{\"mode\":\"long_utf8\",\"processed\":true}]}", w.buf,
	                  w.len, &a);
	ck_assert_int_eq(a.status, 200);
	ck_assert_uint_gt(a.len, SIM_HOSTILE_CUT_OFFSET + 1000);
	ck_assert(utf8_valid(a.body, a.len));
	ck_assert(!utf8_valid(a.body, SIM_HOSTILE_CUT_OFFSET));
	ck_assert_int_eq((unsigned char)a.body[SIM_HOSTILE_CUT_OFFSET] & 0xc0, 0x80);
	v = parse_all(a.body, a.len);
	ck_assert_ptr_nonnull(v);
	ck_assert_str_eq(json_object_get_string(member_at(v, "paymentStatus")), "CAPTURED");
	ck_assert_str_eq(
	    json_object_get_string(member_at(v, "modification.modificationData.modificationId")),
	    "m1");
	ck_assert_uint_gt(strlen(json_object_get_string(member_at(v, "description"))), 65536);
	json_object_put(v);
	sim_hostile_answer_free(&a);

	hostile_build_doc("{\"hostile\":[{\"mode\":\"cut_utf8\",\"processed\":true,"
	                  "\"status\":200}]}",
	                  w.buf, w.len, &a);
	ck_assert_int_eq(a.status, 200);
	ck_assert_uint_gt(a.len, SIM_HOSTILE_CUT_OFFSET);
	ck_assert(!utf8_valid(a.body, a.len));
	ck_assert(utf8_valid(a.body, a.len - 2));
	ck_assert(!utf8_valid(a.body, SIM_HOSTILE_CUT_OFFSET));
	ck_assert_int_eq((unsigned char)a.body[a.len - 2], 0xe2);
	ck_assert_ptr_null(parse_all(a.body, a.len));
	sim_hostile_answer_free(&a);
	sim_jw_free(&w);
}
END_TEST

START_TEST(time_text)
{
	int64_t ms;
	char text[SIM_TIME_TEXT_MAX];
	sim_time_format(1608106159296LL, text);
	ck_assert_str_eq(text, "2020-12-16T08:09:19.296Z");
	ck_assert(sim_time_parse("2020-12-16T08:09:19.296Z", &ms));
	ck_assert_int_eq(ms, 1608106159296LL);
	ck_assert(sim_time_parse("2020-12-16T09:09:19+01:00", &ms));
	ck_assert_int_eq(ms, 1608106159000LL);
	ck_assert(!sim_time_parse("2020-12-16 08:09:19Z", &ms));
	ck_assert(!sim_time_parse("2020-12-16T08:09:19", &ms));
	ck_assert(sim_duration_parse("96h", &ms));
	ck_assert_int_eq(ms, 96LL * 3600 * 1000);
	ck_assert(sim_duration_parse("250ms", &ms));
	ck_assert_int_eq(ms, 250);
	ck_assert(!sim_duration_parse("96", &ms));
	ck_assert(!sim_duration_parse("-1h", &ms));
}
END_TEST

/* ---------- over HTTP ---------- */

static struct simproc *sim;

static void sim_setup(void)
{
	sim = simproc_start(NULL);
	ck_assert_msg(sim != NULL, "the simulator did not start");
}

static void sim_teardown(void)
{
	if (sim != NULL)
		ck_assert_msg(simproc_stop(sim), "the simulator did not exit cleanly");
	sim = NULL;
}

/* A modification body. amount NULL leaves modifiedAmount out. */
static char *mod_body(const char *txn, const char *mid, const char *amount)
{
	if (amount == NULL)
		return xasprintf("{\"transactionId\":\"%s\",\"merchantKey\":\"" MK
		                 "\",\"modificationId\":\"%s\"}",
		                 txn, mid);
	return xasprintf("{\"transactionId\":\"%s\",\"merchantKey\":\"" MK "\",\"modificationId\":"
	                 "\"%s\",\"modifiedAmount\":{\"amount\":%s,\"currencyCode\":\"EUR\"}}",
	                 txn, mid, amount);
}

/* POSTs a modification and returns the HTTP status; body kept in *r. */
static long post(const char *endpoint, const char *txn, const char *mid, const char *amount,
                 struct simproc_reply *r)
{
	char *body = mod_body(txn, mid, amount);
	ck_assert(simproc_payment(sim, endpoint, body, r));
	free(body);
	return r->status;
}

/* A string member of a JSON body ("a.b" paths), or "" when absent. */
static const char *field(struct json_object *o, const char *path)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", path);
	struct json_object *cur = o;
	for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
		if (!json_object_object_get_ex(cur, k, &cur))
			return "";
	}
	return json_object_get_string(cur);
}

/* Posts and asserts the status; returns the parsed answer (put it). */
static struct json_object *post_expect(const char *endpoint, const char *txn, const char *mid,
                                       const char *amount, long status)
{
	struct simproc_reply r;
	long got = post(endpoint, txn, mid, amount, &r);
	ck_assert_msg(got == status, "%s %s: %ld, expected %ld: %s", endpoint, mid, got, status,
	              r.body);
	struct json_object *o = json_tokener_parse(r.body);
	ck_assert_msg(o != NULL, "not JSON: %s", r.body);
	simproc_reply_free(&r);
	return o;
}

START_TEST(http_authentication_and_headers)
{
	char *id = simproc_create_txn(sim, "10.00", "EUR");
	ck_assert_ptr_nonnull(id);
	char *body = mod_body(id, "m1", NULL);
	struct simproc_reply r;
	const char *no_auth[] = {"Content-Type: application/json", "Accept-Language: en-US", NULL};
	ck_assert(simproc_call(sim, "POST", "/payment/capture", no_auth, body, 0, NULL, &r));
	ck_assert_int_eq(r.status, 401);
	ck_assert_ptr_nonnull(strstr(r.body, "\"error\""));
	ck_assert_ptr_nonnull(strstr(r.body, "\"errorDetails\""));
	simproc_reply_free(&r);
	/* wrong user and password ("wrong:wrong"), right user with a wrong password */
	const char *wrong[] = {"Authorization: Basic d3Jvbmc6d3Jvbmc=",
	                       "Content-Type: application/json", "Accept-Language: en-US", NULL};
	ck_assert(simproc_call(sim, "POST", "/payment/capture", wrong, body, 0, NULL, &r));
	ck_assert_int_eq(r.status, 401);
	simproc_reply_free(&r);
	ck_assert(sim_api_check_basic("Basic "
	                              "MzE5MjhkZTktNWM1ZS00ZjQxLTlhM2UtNmE1YjJjMWQwZTBmOnNpbS1hdXRo"
	                              "ZW50aWNhdGlvbi1rZXktMDEyMzQ1Njc4OQ==",
	                              MK, SIMPROC_AUTH_KEY));
	ck_assert(!sim_api_check_basic("Basic "
	                               "MzE5MjhkZTktNWM1ZS00ZjQxLTlhM2UtNmE1YjJjMWQwZTBmOnNpbS1hdXR"
	                               "oZW50aWNhdGlvbi1rZXktMDEyMzQ1Njc4OA==",
	                               MK, SIMPROC_AUTH_KEY));
	const char *garbage[] = {"Authorization: Basic !!!", "Content-Type: application/json",
	                         "Accept-Language: en-US", NULL};
	ck_assert(simproc_call(sim, "POST", "/payment/capture", garbage, body, 0, NULL, &r));
	ck_assert_int_eq(r.status, 401);
	simproc_reply_free(&r);

	/* required headers */
	const char *const *api = simproc_api_headers(sim);
	const char *no_type[] = {api[0], "Accept-Language: en-US", NULL};
	ck_assert(simproc_call(sim, "POST", "/payment/capture", no_type, body, 0, NULL, &r));
	ck_assert_int_eq(r.status, 400);
	ck_assert_ptr_nonnull(strstr(r.body, "Content-Type"));
	simproc_reply_free(&r);
	const char *no_lang[] = {api[0], "Content-Type: application/json", NULL};
	ck_assert(simproc_call(sim, "POST", "/payment/capture", no_lang, body, 0, NULL, &r));
	ck_assert_int_eq(r.status, 400);
	simproc_reply_free(&r);
	const char *de[] = {api[0], "Content-Type: application/json; charset=utf-8",
	                    "Accept-Language: de-DE", NULL};
	ck_assert(simproc_call(sim, "POST", "/payment/capture", de, body, 0, NULL, &r));
	ck_assert_int_eq(r.status, 400);
	simproc_reply_free(&r);
	const char *ok[] = {api[0], "Content-Type: application/json; charset=utf-8",
	                    "Accept-Language: en-US", NULL};
	ck_assert(simproc_call(sim, "POST", "/payment/capture", ok, body, 0, NULL, &r));
	ck_assert_int_eq(r.status, 200);
	simproc_reply_free(&r);
	/* GET status needs them too */
	char *path = xasprintf("/payment/status/%s", id);
	ck_assert(simproc_call(sim, "GET", path, no_auth, NULL, 0, NULL, &r));
	ck_assert_int_eq(r.status, 401);
	simproc_reply_free(&r);
	ck_assert(simproc_call(sim, "GET", path, api, NULL, 0, NULL, &r));
	ck_assert_int_eq(r.status, 200);
	simproc_reply_free(&r);
	ck_assert(simproc_call(sim, "GET", "/payment/capture", api, NULL, 0, NULL, &r));
	ck_assert_int_eq(r.status, 405);
	simproc_reply_free(&r);
	free(path);
	free(body);
	free(id);
	ck_assert_int_eq(simproc_count_effects(sim, NULL, NULL), 1);
}
END_TEST

START_TEST(http_validation_errors)
{
	char *id = simproc_create_txn(sim, "10.00", "EUR");
	struct simproc_reply r;
	ck_assert(simproc_payment(sim, "capture", "{not json", &r));
	ck_assert_int_eq(r.status, 400);
	simproc_reply_free(&r);
	char *other = xasprintf("{\"transactionId\":\"%s\",\"merchantKey\":\"someone-else\","
	                        "\"modificationId\":\"m\"}",
	                        id);
	ck_assert(simproc_payment(sim, "capture", other, &r));
	ck_assert_int_eq(r.status, 403);
	simproc_reply_free(&r);
	free(other);
	ck_assert(simproc_payment(sim, "capture", "{\"merchantKey\":\"" MK "\",\"bogus\":1}", &r));
	ck_assert_int_eq(r.status, 400);
	struct json_object *o = json_tokener_parse(r.body);
	ck_assert_str_eq(field(o, "error"), "missing_field");
	ck_assert_str_eq(field(o, "ignoredProperties"), "[ \"bogus\" ]");
	json_object_put(o);
	simproc_reply_free(&r);
	o = post_expect("capture", "00000000-0000-4000-8000-000000000000", "m", NULL, 404);
	ck_assert_str_eq(field(o, "error"), "transaction_not_found");
	json_object_put(o);
	o = post_expect("capture", id, "m", "10.001", 400);
	ck_assert_str_eq(field(o, "error"), "invalid_amount");
	json_object_put(o);
	o = post_expect("capture", id, "m", "0", 400);
	json_object_put(o);
	o = post_expect("capture", id, "m", "-1.00", 400);
	json_object_put(o);
	o = post_expect("capture", id, "m", "\"5.00\"", 400);
	json_object_put(o);
	ck_assert(simproc_status(sim, "no-such-transaction", &r));
	ck_assert_int_eq(r.status, 404);
	simproc_reply_free(&r);
	ck_assert_int_eq(simproc_count_effects(sim, NULL, NULL), 0);
	free(id);
}
END_TEST

START_TEST(http_capture_refund_flow)
{
	char *id = simproc_create_txn(sim, "50.00", "EUR");
	struct json_object *o = post_expect("capture", id, "cap-1", "40.00", 200);
	ck_assert_str_eq(field(o, "paymentStatus"), "CAPTURED");
	ck_assert_str_eq(field(o, "modification.modificationData.type"), "CAPTURE");
	ck_assert_str_eq(field(o, "modification.modificationData.modificationId"), "cap-1");
	ck_assert_str_eq(field(o, "modification.modificationAmount.amount"), "40.00");
	ck_assert_str_eq(field(o, "transactionOverview.amount"), "50.00");
	ck_assert_str_eq(field(o, "transactionOverview.transactionId"), id);
	ck_assert_str_eq(field(o, "transactionOverview.currencyCode"), "EUR");
	ck_assert_str_eq(field(o, "transactionOverview.mit"), "false");
	ck_assert_int_eq(strlen(field(o, "reconciliationReferenceId")), 16);
	ck_assert_int_eq(strlen(field(o, "lastStatusDate")), 24);
	json_object_put(o);
	/* capture once only; cancel only before capture */
	json_object_put(post_expect("capture", id, "cap-2", "1.00", 422));
	o = post_expect("cancel", id, "cnl-1", NULL, 422);
	ck_assert_str_eq(field(o, "error"), "invalid_state");
	json_object_put(o);
	o = post_expect("refund", id, "ref-1", "25", 200);
	ck_assert_str_eq(field(o, "paymentStatus"), "CAPTURED");
	ck_assert_str_eq(field(o, "modification.modificationAmount.amount"), "25.00");
	json_object_put(o);
	json_object_put(post_expect("refund", id, "ref-2", "15.01", 422));
	o = post_expect("refund", id, "ref-3", "15.00", 200);
	ck_assert_str_eq(field(o, "paymentStatus"), "REFUNDED");
	ck_assert_str_eq(field(o, "modification.status"), "REFUNDED");
	json_object_put(o);
	json_object_put(post_expect("refund", id, "ref-4", "0.01", 422));

	struct simproc_reply r;
	ck_assert(simproc_status(sim, id, &r));
	ck_assert_int_eq(r.status, 200);
	o = json_tokener_parse(r.body);
	struct json_object *mods;
	ck_assert(json_object_object_get_ex(o, "modifications", &mods));
	ck_assert_int_eq(json_object_array_length(mods), 3);
	ck_assert_str_eq(field(o, "paymentStatus"), "REFUNDED");
	json_object_put(o);
	simproc_reply_free(&r);

	struct json_object *ledger = simproc_ledger(sim);
	ck_assert_int_eq(simproc_ledger_count(ledger, id, "CAPTURE"), 1);
	ck_assert_int_eq(simproc_ledger_count(ledger, id, "REFUND"), 2);
	ck_assert_int_eq(simproc_ledger_count(ledger, id, "refund"), 2);
	ck_assert_int_eq(simproc_ledger_count(ledger, id, "cancel"), 0);
	ck_assert_int_eq(simproc_ledger_count(ledger, NULL, NULL), 3);
	struct json_object *effects, *e;
	ck_assert(json_object_object_get_ex(ledger, "effects", &effects));
	e = json_object_array_get_idx(effects, 0);
	ck_assert_str_eq(field(e, "amount"), "40.00");
	ck_assert_str_eq(field(e, "released"), "10.00");
	ck_assert_str_eq(field(e, "currencyCode"), "EUR");
	ck_assert_str_eq(field(e, "modificationId"), "cap-1");
	json_object_put(ledger);
	free(id);
}
END_TEST

START_TEST(http_cancel_and_cancel_or_refund)
{
	char *a = simproc_create_txn(sim, "10.99", "EUR");
	char *b = simproc_create_txn(sim, "10.99", "EUR");
	char *c = simproc_create_txn(sim, "10.99", "EUR");
	struct json_object *o = post_expect("cancel", a, "a-1", NULL, 200);
	ck_assert_str_eq(field(o, "paymentStatus"), "CANCELLED");
	ck_assert_str_eq(field(o, "modification.modificationData.type"), "CANCELLATION");
	ck_assert_str_eq(field(o, "modification.modificationAmount.amount"), "10.99");
	json_object_put(o);
	json_object_put(post_expect("capture", a, "a-2", NULL, 422));
	json_object_put(post_expect("refund", a, "a-3", NULL, 422));

	o = post_expect("cancelOrRefund", b, "b-1", NULL, 200);
	ck_assert_str_eq(field(o, "paymentStatus"), "CANCELED");
	ck_assert_str_eq(field(o, "modification.modificationData.type"), "CANCELATION");
	ck_assert_str_eq(field(o, "modification.status"), "CANCELED");
	json_object_put(o);

	json_object_put(post_expect("capture", c, "c-1", NULL, 200));
	json_object_put(post_expect("refund", c, "c-2", "0.99", 200));
	o = post_expect("cancelOrRefund", c, "c-3", NULL, 200);
	ck_assert_str_eq(field(o, "paymentStatus"), "REFUNDED");
	ck_assert_str_eq(field(o, "modification.modificationData.type"), "REFUND");
	ck_assert_str_eq(field(o, "modification.modificationAmount.amount"), "10.00");
	json_object_put(o);
	json_object_put(post_expect("cancelOrRefund", c, "c-4", NULL, 422));
	ck_assert_int_eq(simproc_count_effects(sim, a, "CANCELLATION"), 1);
	ck_assert_int_eq(simproc_count_effects(sim, b, "CANCELLATION"), 1);
	ck_assert_int_eq(simproc_count_effects(sim, b, "cancel"), 1);
	ck_assert_int_eq(simproc_count_effects(sim, c, "REFUND"), 2);
	free(a);
	free(b);
	free(c);
}
END_TEST

START_TEST(http_expiry_by_clock)
{
	char *a = simproc_create_txn(sim, "20.00", "EUR");
	char *b = simproc_create_txn_json(
	    sim, "{\"amount\":20.00,\"currencyCode\":\"EUR\",\"authorizedAt\":"
	         "\"2020-01-01T00:00:00Z\",\"expiresAt\":\"2020-01-02T00:00:00.000Z\"}");
	ck_assert_ptr_nonnull(b);
	struct json_object *o = post_expect("capture", b, "b-1", NULL, 422);
	ck_assert_str_eq(field(o, "error"), "authorization_expired");
	json_object_put(o);
	ck_assert(simproc_advance_clock(sim, "119h"));
	json_object_put(post_expect("capture", a, "a-0", "0.01", 200));
	char *a2 = simproc_create_txn(sim, "20.00", "EUR");
	ck_assert(simproc_advance_clock(sim, "2h"));
	o = post_expect("capture", a2, "a2-1", NULL, 200);
	json_object_put(o);
	ck_assert(simproc_advance_clock(sim, "119h"));
	o = post_expect("capture", a2, "a2-2", NULL, 422);
	json_object_put(o);
	char *a3 = simproc_create_txn(sim, "20.00", "EUR");
	ck_assert(simproc_advance_clock(sim, "120h"));
	o = post_expect("capture", a3, "a3-1", NULL, 422);
	ck_assert_str_eq(field(o, "error"), "authorization_expired");
	json_object_put(o);
	/* the clock reads back */
	struct simproc_reply r;
	ck_assert(simproc_call(sim, "GET", "/_sim/clock", NULL, NULL, 0, NULL, &r));
	ck_assert_int_eq(r.status, 200);
	o = json_tokener_parse(r.body);
	ck_assert_str_eq(field(o, "offsetMs"), "1296000000"); /* 119h + 2h + 119h + 120h */
	json_object_put(o);
	simproc_reply_free(&r);
	free(a);
	free(a2);
	free(a3);
	free(b);
}
END_TEST

START_TEST(http_auth_validity_option)
{
	const char *args[] = {"--auth-validity", "1h", NULL};
	struct simproc_opts opts = {.extra_args = args};
	struct simproc *s2 = simproc_start(&opts);
	ck_assert_ptr_nonnull(s2);
	char *id = simproc_create_txn(s2, "5.00", "EUR");
	ck_assert(simproc_advance_clock(s2, "61m"));
	char *body = mod_body(id, "m", NULL);
	struct simproc_reply r;
	ck_assert(simproc_payment(s2, "capture", body, &r));
	ck_assert_int_eq(r.status, 422);
	simproc_reply_free(&r);
	free(body);
	free(id);
	ck_assert(simproc_stop(s2));
}
END_TEST

START_TEST(http_idempotent_replay)
{
	char *id = simproc_create_txn(sim, "30.00", "EUR");
	char *body = mod_body(id, "idem-1", "12.34");
	struct simproc_reply r1, r2, r3;
	ck_assert(simproc_payment(sim, "capture", body, &r1));
	ck_assert_int_eq(r1.status, 200);
	ck_assert(simproc_payment(sim, "capture", body, &r2));
	ck_assert_int_eq(r2.status, 200);
	ck_assert_str_eq(r1.body, r2.body);
	/* later state changes do not alter the stored answer */
	json_object_put(post_expect("refund", id, "idem-r", "1.00", 200));
	ck_assert(simproc_payment(sim, "capture", body, &r3));
	ck_assert_str_eq(r1.body, r3.body);
	simproc_reply_free(&r1);
	simproc_reply_free(&r2);
	simproc_reply_free(&r3);
	ck_assert_int_eq(simproc_count_effects(sim, id, "CAPTURE"), 1);
	ck_assert_int_eq(simproc_request_count(sim, "idem-1"), 3);
	ck_assert_int_eq(simproc_request_count(sim, "never-sent"), 0);

	/* same id, different bytes: refused, no effect */
	struct json_object *o = post_expect("capture", id, "idem-1", "12.35", 422);
	ck_assert_str_eq(field(o, "error"), "modification_id_conflict");
	json_object_put(o);
	o = post_expect("refund", id, "idem-1", "12.34", 422);
	ck_assert_str_eq(field(o, "error"), "modification_id_conflict");
	json_object_put(o);
	/* a refused request is answered the same way on replay */
	char *refused = mod_body(id, "idem-2", "99.00");
	ck_assert(simproc_payment(sim, "refund", refused, &r1));
	ck_assert(simproc_payment(sim, "refund", refused, &r2));
	ck_assert_int_eq(r1.status, 422);
	ck_assert_int_eq(r2.status, 422);
	ck_assert_str_eq(r1.body, r2.body);
	simproc_reply_free(&r1);
	simproc_reply_free(&r2);
	ck_assert_int_eq(simproc_request_count(sim, "idem-1"), 5);
	ck_assert_int_eq(simproc_count_effects(sim, id, NULL), 2);
	free(refused);
	free(body);
	free(id);
}
END_TEST

START_TEST(http_control_api)
{
	struct simproc_reply r;
	char *id = simproc_create_txn_json(sim, "{\"amount\":35.99,\"currencyCode\":\"EUR\","
	                                        "\"transactionId\":\"my-own-id\",\"description\":"
	                                        "\"Order 4711\",\"mit\":true}");
	ck_assert_str_eq(id, "my-own-id");
	free(id);
	const char *json[] = {"Content-Type: application/json", NULL};
	ck_assert(simproc_call(sim, "POST", "/_sim/transactions", json,
	                       "{\"amount\":\"1.00\",\"currencyCode\":\"EUR\",\"transactionId\":"
	                       "\"my-own-id\"}",
	                       0, NULL, &r));
	ck_assert_int_eq(r.status, 409);
	simproc_reply_free(&r);
	ck_assert(simproc_call(sim, "POST", "/_sim/transactions", json,
	                       "{\"amount\":\"1.001\",\"currencyCode\":\"EUR\"}", 0, NULL, &r));
	ck_assert_int_eq(r.status, 400);
	simproc_reply_free(&r);
	ck_assert(simproc_call(sim, "POST", "/_sim/transactions", json,
	                       "{\"amount\":\"1\",\"currencyCode\":\"EUR\",\"colour\":1}", 0, NULL,
	                       &r));
	ck_assert_int_eq(r.status, 400);
	simproc_reply_free(&r);
	ck_assert(simproc_call(sim, "POST", "/_sim/transactions", json,
	                       "{\"amount\":\"1\",\"currencyCode\":\"EUR\",\"status\":\"NOPE\"}", 0,
	                       NULL, &r));
	ck_assert_int_eq(r.status, 400);
	simproc_reply_free(&r);
	char *cap = simproc_create_txn_json(
	    sim, "{\"amount\":\"8.00\",\"currencyCode\":\"EUR\",\"status\":\"CAPTURED\"}");
	json_object_put(post_expect("refund", cap, "cr-1", "8.00", 200));
	free(cap);

	ck_assert(simproc_status(sim, "my-own-id", &r));
	struct json_object *o = json_tokener_parse(r.body);
	ck_assert_str_eq(field(o, "description"), "Order 4711");
	ck_assert_str_eq(field(o, "transactionOverview.amount"), "35.99");
	ck_assert_str_eq(field(o, "transactionOverview.mit"), "true");
	ck_assert_ptr_nonnull(strstr(r.body, "\"amount\":35.99,"));
	json_object_put(o);
	simproc_reply_free(&r);
	ck_assert(
	    simproc_call(sim, "GET", "/_sim/transactions/my-own-id", NULL, NULL, 0, NULL, &r));
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "\"amount\":\"35.99\""));
	simproc_reply_free(&r);
	ck_assert(
	    simproc_call(sim, "POST", "/_sim/clock", json, "{\"advance\":\"soon\"}", 0, NULL, &r));
	ck_assert_int_eq(r.status, 400);
	simproc_reply_free(&r);
	ck_assert(
	    simproc_call(sim, "POST", "/_sim/faults", json, "{\"fail_rate\":2}", 0, NULL, &r));
	ck_assert_int_eq(r.status, 400);
	simproc_reply_free(&r);
	ck_assert(simproc_call(sim, "GET", "/_sim/nothing", NULL, NULL, 0, NULL, &r));
	ck_assert_int_eq(r.status, 404);
	simproc_reply_free(&r);
}
END_TEST

START_TEST(http_fault_fail_status)
{
	char *id = simproc_create_txn(sim, "10.00", "EUR");
	struct simproc_reply r;
	ck_assert(simproc_set_faults(sim, "{\"fail_rate\":1,\"status\":503,\"retry_after\":7}"));
	ck_assert_int_eq(post("capture", id, "f-1", NULL, &r), 503);
	ck_assert_str_eq(r.retry_after, "7");
	ck_assert_ptr_nonnull(strstr(r.body, "\"error\""));
	simproc_reply_free(&r);
	ck_assert(simproc_set_faults(sim, "{\"fail_rate\":1,\"status\":429,\"retry_after\":3}"));
	ck_assert_int_eq(post("capture", id, "f-1", NULL, &r), 429);
	ck_assert_str_eq(r.retry_after, "3");
	simproc_reply_free(&r);
	ck_assert(simproc_set_faults(sim, "{\"fail_rate\":1,\"status\":408}"));
	ck_assert_int_eq(post("capture", id, "f-1", NULL, &r), 408);
	ck_assert_ptr_null(r.retry_after);
	simproc_reply_free(&r);
	ck_assert(simproc_set_faults(sim, "{\"fail_rate\":1,\"status\":502}"));
	ck_assert_int_eq(post("capture", id, "f-1", NULL, &r), 502);
	simproc_reply_free(&r);
	/* the control API is never faulted; nothing was processed */
	ck_assert_int_eq(simproc_count_effects(sim, id, NULL), 0);
	ck_assert(simproc_set_faults(sim, "{\"fail_rate\":1,\"status\":500}"));
	ck_assert_int_eq(post("capture", id, "f-1", NULL, &r), 500);
	simproc_reply_free(&r);
	ck_assert(simproc_clear_faults(sim));
	ck_assert_int_eq(post("capture", id, "f-1", NULL, &r), 200);
	simproc_reply_free(&r);
	ck_assert_int_eq(simproc_count_effects(sim, id, "CAPTURE"), 1);
	ck_assert_int_eq(simproc_request_count(sim, "f-1"), 6);
	free(id);
}
END_TEST

START_TEST(http_fault_reset)
{
	char *id = simproc_create_txn(sim, "10.00", "EUR");
	struct simproc_reply r;
	ck_assert(simproc_set_faults(sim, "{\"reset_rate\":1}"));
	ck_assert_int_eq(post("capture", id, "x-1", NULL, &r), 0);
	ck_assert_msg(r.curl_code == CURLE_RECV_ERROR || r.curl_code == CURLE_GOT_NOTHING ||
	                  r.curl_code == CURLE_SEND_ERROR,
	              "curl %d", r.curl_code);
	simproc_reply_free(&r);
	ck_assert_int_eq(simproc_count_effects(sim, id, NULL), 0);
	ck_assert_int_eq(simproc_request_count(sim, "x-1"), 1);
	ck_assert(simproc_clear_faults(sim));
	ck_assert_int_eq(post("capture", id, "x-1", NULL, &r), 200);
	simproc_reply_free(&r);
	ck_assert_int_eq(simproc_count_effects(sim, id, "CAPTURE"), 1);
	free(id);
}
END_TEST

START_TEST(http_fault_drop_after_commit)
{
	char *id = simproc_create_txn(sim, "10.00", "EUR");
	char *body = mod_body(id, "d-1", "4.00");
	struct simproc_reply r, replay;
	ck_assert(simproc_set_faults(sim, "{\"drop_after_commit_rate\":1}"));
	ck_assert(simproc_payment(sim, "capture", body, &r));
	ck_assert_int_eq(r.status, 0);
	ck_assert_int_eq(r.curl_code, CURLE_GOT_NOTHING);
	simproc_reply_free(&r);
	/* the effect happened although nobody heard of it */
	ck_assert_int_eq(simproc_count_effects(sim, id, "CAPTURE"), 1);
	ck_assert(simproc_clear_faults(sim));
	ck_assert(simproc_payment(sim, "capture", body, &replay));
	ck_assert_int_eq(replay.status, 200);
	struct json_object *o = json_tokener_parse(replay.body);
	ck_assert_str_eq(field(o, "paymentStatus"), "CAPTURED");
	ck_assert_str_eq(field(o, "modification.modificationId"), "");
	ck_assert_str_eq(field(o, "modification.modificationData.modificationId"), "d-1");
	json_object_put(o);
	simproc_reply_free(&replay);
	ck_assert_int_eq(simproc_count_effects(sim, id, "CAPTURE"), 1);
	ck_assert_int_eq(simproc_request_count(sim, "d-1"), 2);
	free(body);
	free(id);
}
END_TEST

START_TEST(http_fault_slow)
{
	char *id = simproc_create_txn(sim, "10.00", "EUR");
	char *body = mod_body(id, "s-1", NULL);
	struct simproc_reply r;
	ck_assert(simproc_set_faults(sim, "{\"slow_rate\":1,\"slow_ms\":1500}"));
	ck_assert(simproc_call(sim, "POST", "/payment/capture", simproc_api_headers(sim), body, 300,
	                       NULL, &r));
	ck_assert_int_eq(r.curl_code, CURLE_OPERATION_TIMEDOUT);
	simproc_reply_free(&r);
	/* processed at once, answered late */
	ck_assert_int_eq(simproc_count_effects(sim, id, "CAPTURE"), 1);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert(simproc_call(sim, "POST", "/payment/capture", simproc_api_headers(sim), body,
	                       5000, NULL, &r));
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_ge(testutil_elapsed_ms(&t0), 1400);
	simproc_reply_free(&r);
	ck_assert_int_eq(simproc_count_effects(sim, id, "CAPTURE"), 1);
	free(body);
	free(id);
}
END_TEST

START_TEST(http_fault_garble)
{
	char *id = simproc_create_txn(sim, "10.00", "EUR");
	char *body = mod_body(id, "g-1", NULL);
	struct simproc_reply r;
	ck_assert(simproc_set_faults(sim, "{\"garble_rate\":1,\"seed\":5}"));
	for (int i = 0; i < 5; i++) {
		ck_assert(simproc_payment(sim, "capture", body, &r));
		ck_assert_int_eq(r.status, 200);
		struct json_tokener *tok = json_tokener_new();
		struct json_object *o = json_tokener_parse_ex(tok, r.body, (int)r.len);
		ck_assert_msg(o == NULL || json_tokener_get_parse_end(tok) < r.len, "parsed: %s",
		              r.body);
		json_object_put(o);
		json_tokener_free(tok);
		simproc_reply_free(&r);
	}
	ck_assert(simproc_clear_faults(sim));
	ck_assert(simproc_payment(sim, "capture", body, &r));
	struct json_object *o = json_tokener_parse(r.body);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(field(o, "paymentStatus"), "CAPTURED");
	json_object_put(o);
	simproc_reply_free(&r);
	ck_assert_int_eq(simproc_count_effects(sim, id, "CAPTURE"), 1);
	ck_assert_int_eq(simproc_request_count(sim, "g-1"), 6);
	free(body);
	free(id);
}
END_TEST

/* Sets a faults document built from a format. */
__attribute__((format(printf, 1, 2))) static void set_faults_for(const char *fmt, ...)
{
	va_list ap;
	char *doc = NULL;
	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&doc, fmt, ap), 0);
	va_end(ap);
	ck_assert_msg(simproc_set_faults(sim, doc), "refused: %s", doc);
	free(doc);
}

/* A per-id count of a freshly fetched ledger. */
static long ledger_per_id(const char *key, const char *mid)
{
	struct json_object *ledger = simproc_ledger(sim);
	long n = simproc_ledger_per_id(ledger, key, mid);
	json_object_put(ledger);
	return n;
}

START_TEST(http_hostile_processed_or_not)
{
	char *id = simproc_create_txn(sim, "10.00", "EUR");
	char *bystander = simproc_create_txn(sim, "10.00", "EUR");
	char *body = mod_body(id, "h-1", NULL);
	struct simproc_reply r;
	set_faults_for("{\"hostile\":[{\"mode\":\"error_200\",\"processed\":false,"
	               "\"transactions\":[\"%s\"]}]}",
	               id);
	ck_assert(simproc_payment(sim, "capture", body, &r));
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "\"error\""));
	simproc_reply_free(&r);
	ck_assert_int_eq(simproc_count_effects(sim, id, "CAPTURE"), 0);
	/* a transaction the rule does not name is answered normally */
	json_object_put(post_expect("capture", bystander, "h-other", NULL, 200));
	ck_assert_int_eq(simproc_count_effects(sim, bystander, "CAPTURE"), 1);

	/* processed: the capture happens, the answer still says nothing */
	set_faults_for("{\"hostile\":[{\"mode\":\"empty_202\",\"processed\":true,"
	               "\"transactions\":[\"%s\"]}]}",
	               id);
	ck_assert(simproc_payment(sim, "capture", body, &r));
	ck_assert_int_eq(r.status, 202);
	ck_assert_str_eq(r.body, "{}");
	simproc_reply_free(&r);
	ck_assert_int_eq(simproc_count_effects(sim, id, "CAPTURE"), 1);
	/* the stored answer of a replay is the real one */
	ck_assert(simproc_clear_faults(sim));
	ck_assert(simproc_payment(sim, "capture", body, &r));
	ck_assert_int_eq(r.status, 200);
	struct json_object *o = json_tokener_parse(r.body);
	ck_assert_str_eq(field(o, "modification.modificationData.modificationId"), "h-1");
	ck_assert_str_eq(field(o, "modification.status"), "CAPTURED");
	json_object_put(o);
	simproc_reply_free(&r);
	ck_assert_int_eq(simproc_count_effects(sim, id, "CAPTURE"), 1);
	ck_assert_int_eq(simproc_request_count(sim, "h-1"), 3);
	ck_assert_int_eq(ledger_per_id("hostileAnswers", "h-1"), 2);
	ck_assert_int_eq(ledger_per_id("hostileAnswers", "h-other"), 0);
	ck_assert_int_eq(ledger_per_id("otherBodies", "h-1"), 0);
	/* the same id with other bytes is counted (and refused as a conflict) */
	char *changed = mod_body(id, "h-1", "5.00");
	ck_assert(simproc_payment(sim, "capture", changed, &r));
	ck_assert_int_eq(r.status, 422);
	simproc_reply_free(&r);
	ck_assert_int_eq(ledger_per_id("otherBodies", "h-1"), 1);
	free(changed);
	free(body);
	free(bystander);
	free(id);
}
END_TEST

START_TEST(http_hostile_confirmations_that_are_not)
{
	struct simproc_reply r;
	char *id = simproc_create_txn(sim, "10.00", "EUR");
	char *body = mod_body(id, "n-1", NULL);
	/* not processed, yet the answer reads CAPTURED as a C string */
	ck_assert(simproc_set_faults(sim, "{\"hostile\":[{\"mode\":\"nul_status\",\"processed\":"
	                                  "false}],\"shape\":\"modifications\"}"));
	ck_assert(simproc_payment(sim, "capture", body, &r));
	ck_assert_int_eq(r.status, 200);
	struct json_object *o = json_tokener_parse(r.body);
	ck_assert_ptr_nonnull(o);
	ck_assert(nul_after(o, "paymentStatus", "CAPTURED"));
	struct json_object *mods = member_at(o, "modifications");
	ck_assert_uint_eq(json_object_array_length(mods), 1);
	ck_assert(nul_after(json_object_array_get_idx(mods, 0), "status", "CAPTURED"));
	json_object_put(o);
	simproc_reply_free(&r);
	ck_assert_int_eq(simproc_count_effects(sim, id, "CAPTURE"), 0);

	ck_assert(simproc_set_faults(sim, "{\"hostile\":[{\"mode\":\"nul_id\",\"processed\":"
	                                  "false}]}"));
	ck_assert(simproc_payment(sim, "capture", body, &r));
	o = json_tokener_parse(r.body);
	ck_assert(nul_after(o, "modification.modificationData.modificationId", "n-1"));
	ck_assert_str_eq(field(o, "modification.status"), "CAPTURED");
	ck_assert_str_eq(field(o, "transactionOverview.transactionId"), id);
	json_object_put(o);
	simproc_reply_free(&r);

	ck_assert(simproc_set_faults(sim, "{\"hostile\":[{\"mode\":\"other_id\",\"processed\":"
	                                  "true}]}"));
	ck_assert(simproc_payment(sim, "capture", body, &r));
	o = json_tokener_parse(r.body);
	ck_assert_str_ne(field(o, "modification.modificationData.modificationId"), "n-1");
	ck_assert_str_eq(field(o, "paymentStatus"), "CAPTURED");
	json_object_put(o);
	simproc_reply_free(&r);
	ck_assert_int_eq(simproc_count_effects(sim, id, "CAPTURE"), 1);

	/* a refund of an unknown transaction, not processed: a made-up confirmation */
	ck_assert(simproc_set_faults(sim, "{\"hostile\":[{\"mode\":\"failed_status\","
	                                  "\"processed\":false}]}"));
	json_object_put(post_expect("refund", "no-such-txn", "n-2", "3.00", 200));
	ck_assert(simproc_status(sim, id, &r));
	ck_assert_int_eq(r.status, 200); /* status queries are never replaced */
	o = json_tokener_parse(r.body);
	ck_assert_str_eq(field(o, "paymentStatus"), "CAPTURED");
	json_object_put(o);
	simproc_reply_free(&r);
	ck_assert_int_eq(simproc_count_effects(sim, NULL, NULL), 1);
	free(body);
	free(id);
}
END_TEST

START_TEST(http_hostile_pages_and_cut_bodies)
{
	struct simproc_reply r;
	char *id = simproc_create_txn(sim, "10.00", "EUR");
	char *body = mod_body(id, "p-1", NULL);
	/* two Windows-1252 pages (through the latency timer), then the real answer */
	ck_assert(simproc_set_faults(sim, "{\"latency_ms\":20,\"retry_after\":0,\"hostile\":[{"
	                                  "\"mode\":\"latin1_page\",\"processed\":false,"
	                                  "\"max_per_id\":2}]}"));
	for (int i = 0; i < 2; i++) {
		ck_assert(simproc_payment(sim, "capture", body, &r));
		ck_assert_int_eq(r.status, 503);
		ck_assert_str_eq(r.retry_after, "0");
		ck_assert_ptr_nonnull(strstr(r.content_type, "windows-1252"));
		ck_assert(!utf8_valid(r.body, r.len));
		simproc_reply_free(&r);
	}
	ck_assert_int_eq(simproc_count_effects(sim, id, "CAPTURE"), 0);
	json_object_put(post_expect("capture", id, "p-1", NULL, 200));
	ck_assert_int_eq(simproc_count_effects(sim, id, "CAPTURE"), 1);

	char *other = simproc_create_txn(sim, "10.00", "EUR");
	char *body2 = mod_body(other, "p-2", NULL);
	ck_assert(simproc_set_faults(sim, "{\"hostile\":[{\"mode\":\"cut_utf8\",\"processed\":"
	                                  "true,\"status\":200}]}"));
	ck_assert(simproc_payment(sim, "capture", body2, &r));
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_gt(r.len, 65536);
	ck_assert(!utf8_valid(r.body, r.len));
	ck_assert_ptr_null(parse_all(r.body, r.len));
	simproc_reply_free(&r);
	ck_assert_int_eq(simproc_count_effects(sim, other, "CAPTURE"), 1);

	ck_assert(simproc_set_faults(sim, "{\"hostile\":[{\"mode\":\"nul_body\",\"processed\":"
	                                  "false},{\"mode\":\"html_200\",\"processed\":false,"
	                                  "\"modifications\":[\"p-3\"]}]}"));
	ck_assert(simproc_payment(sim, "capture", body2, &r));
	ck_assert_int_eq(r.status, 503);
	ck_assert_ptr_nonnull(memchr(r.body, '\0', r.len));
	simproc_reply_free(&r);
	struct simproc_reply g;
	ck_assert(simproc_call(sim, "GET", "/_sim/faults", NULL, NULL, 0, NULL, &g));
	struct json_object *o = json_tokener_parse(g.body);
	struct json_object *rules = member_at(o, "hostile");
	ck_assert_uint_eq(json_object_array_length(rules), 2);
	ck_assert_str_eq(field(json_object_array_get_idx(rules, 1), "mode"), "html_200");
	ck_assert_str_eq(field(json_object_array_get_idx(rules, 1), "processed"), "false");
	json_object_put(o);
	simproc_reply_free(&g);
	free(body2);
	free(other);
	free(body);
	free(id);
}
END_TEST

START_TEST(http_fault_latency_and_seed)
{
	char *id = simproc_create_txn(sim, "10.00", "EUR");
	struct simproc_reply r;
	ck_assert(simproc_set_faults(sim, "{\"latency_ms\":300,\"jitter_ms\":50}"));
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert(simproc_status(sim, id, &r));
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_ge(testutil_elapsed_ms(&t0), 240);
	simproc_reply_free(&r);

	/* a seeded fail_rate gives the same sequence twice */
	char seq[2][41];
	for (int round = 0; round < 2; round++) {
		ck_assert(simproc_set_faults(sim, "{\"fail_rate\":0.5,\"seed\":42}"));
		for (int i = 0; i < 40; i++) {
			ck_assert(simproc_status(sim, id, &r));
			seq[round][i] = r.status == 200 ? 'o' : 'x';
			ck_assert(r.status == 200 || r.status == 503);
			simproc_reply_free(&r);
		}
		seq[round][40] = '\0';
	}
	ck_assert_str_eq(seq[0], seq[1]);
	ck_assert_ptr_nonnull(strchr(seq[0], 'o'));
	ck_assert_ptr_nonnull(strchr(seq[0], 'x'));
	/* control calls are never faulted */
	ck_assert(simproc_set_faults(sim, "{\"fail_rate\":1,\"reset_rate\":0}"));
	struct json_object *ledger = simproc_ledger(sim);
	ck_assert_ptr_nonnull(ledger);
	json_object_put(ledger);
	free(id);
}
END_TEST

/* A number of a freshly fetched ledger; -1 when the ledger or the member is missing. */
static int64_t ledger_number(const struct simproc *s, const char *key)
{
	struct json_object *ledger = simproc_ledger(s);
	if (ledger == NULL)
		return -1;
	struct json_object *v;
	int64_t n = json_object_object_get_ex(ledger, key, &v) ? json_object_get_int64(v) : -1;
	json_object_put(ledger);
	return n;
}

/* Reads one HTTP answer (headers and a Content-Length body) from fd into buf; its
 * status, or 0 when none arrives within 5 s. */
static int read_answer(int fd, char *buf, size_t cap, size_t *have)
{
	for (;;) {
		buf[*have] = '\0';
		char *end = strstr(buf, "\r\n\r\n");
		const char *cl = strstr(buf, "Content-Length: ");
		if (end != NULL && cl != NULL && cl < end) {
			size_t total = (size_t)(end + 4 - buf) + (size_t)strtoul(cl + 16, NULL, 10);
			if (*have >= total) {
				int status = 0;
				sscanf(buf, "HTTP/1.1 %d", &status);
				memmove(buf, buf + total, *have - total);
				*have -= total;
				return status;
			}
		}
		struct timeval tv = {.tv_sec = 5};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		ssize_t n = *have < cap - 1 ? read(fd, buf + *have, cap - 1 - *have) : -1;
		if (n <= 0)
			return 0;
		*have += (size_t)n;
	}
}

/* Delayed answers on one kept-alive connection (each written from its timer, the
 * arrival of the next request peeked meanwhile): the connection goes on reading, the
 * peek leaves every request whole, also one sent before the last answer, and the
 * answers come in order. */
START_TEST(http_latency_keep_alive)
{
	char *id = simproc_create_txn(sim, "10.00", "EUR");
	ck_assert(simproc_set_faults(sim, "{\"latency_ms\":30}"));
	char req[1024];
	int rl = snprintf(req, sizeof(req),
	                  "GET /payment/status/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n", id);
	for (const char *const *h = simproc_api_headers(sim); *h != NULL; h++)
		rl += snprintf(req + rl, sizeof(req) - (size_t)rl, "%s\r\n", *h);
	rl += snprintf(req + rl, sizeof(req) - (size_t)rl, "\r\n");
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)simproc_port(sim))};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	char buf[16384];
	size_t have = 0;
	/* one at a time, then two sent together */
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(write(fd, req, (size_t)rl), rl);
		ck_assert_int_eq(read_answer(fd, buf, sizeof(buf), &have), 200);
	}
	ck_assert_int_eq(write(fd, req, (size_t)rl), rl);
	ck_assert_int_eq(write(fd, req, (size_t)rl), rl);
	ck_assert_int_eq(read_answer(fd, buf, sizeof(buf), &have), 200);
	ck_assert_int_eq(read_answer(fd, buf, sizeof(buf), &have), 200);
	ck_assert_uint_eq(have, 0);
	close(fd);
	/* all five went out from their timers */
	ck_assert_int_eq(ledger_number(sim, "answersFromTimer"), 5);
	ck_assert(simproc_clear_faults(sim));
	free(id);
}
END_TEST

/* One client connection of a burst: its answer being read and when its request left. */
struct burst_conn {
	int fd;
	char buf[4096];
	size_t have;
	int64_t sent_us; /* monotonic, taken before the request's write */
};

/* Monotonic µs. */
static int64_t mono_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* The length of the whole HTTP answer at the start of buf (with its status), 0 while
 * it is incomplete. */
static size_t answer_length(char *buf, size_t have, int *status)
{
	buf[have] = '\0';
	char *end = strstr(buf, "\r\n\r\n");
	const char *cl = strstr(buf, "Content-Length: ");
	if (end == NULL || cl == NULL || cl > end)
		return 0;
	size_t total = (size_t)(end + 4 - buf) + (size_t)strtoul(cl + 16, NULL, 10);
	if (have < total)
		return 0;
	*status = 0;
	sscanf(buf, "HTTP/1.1 %d", status);
	return total;
}

/* Opens a connection to the simulator and sends req on it. */
static void burst_open(struct burst_conn *c, int port, const char *req, int rl)
{
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(c->fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	c->have = 0;
	c->sent_us = mono_us();
	ck_assert_int_eq(write(c->fd, req, (size_t)rl), rl);
}

/* Reads answers on all connections until `want` have come (or 60 s pass): each one
 * a 200 that came no sooner than latency_ms after its request was sent; after each
 * answer the connection sends the next request while `again` answers are still to be
 * asked for. Returns the answers read. */
static int burst_collect(struct burst_conn *c, int n, int want, int again, int64_t latency_ms,
                         const char *req, int rl)
{
	struct pollfd *p = xcalloc((size_t)n, sizeof(*p));
	int got = 0;
	int64_t give_up = mono_us() + 60 * 1000000;
	while (got < want && mono_us() < give_up) {
		for (int i = 0; i < n; i++)
			p[i] = (struct pollfd){.fd = c[i].fd, .events = POLLIN};
		if (poll(p, (nfds_t)n, 1000) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t r =
			    read(c[i].fd, c[i].buf + c[i].have, sizeof(c[i].buf) - 1 - c[i].have);
			ck_assert_msg(r > 0, "connection %d closed before its answer", i);
			c[i].have += (size_t)r;
			int status;
			size_t len = answer_length(c[i].buf, c[i].have, &status);
			if (len == 0)
				continue;
			int64_t took = mono_us() - c[i].sent_us;
			ck_assert_int_eq(status, 200);
			ck_assert_msg(took >= latency_ms * 1000,
			              "an answer came %" PRId64
			              " µs after its request, before the latency",
			              took);
			memmove(c[i].buf, c[i].buf + len, c[i].have - len);
			c[i].have -= len;
			got++;
			if (again > 0) {
				again--;
				c[i].sent_us = mono_us();
				ck_assert_int_eq(write(c[i].fd, req, (size_t)rl), rl);
			}
		}
	}
	free(p);
	return got;
}

/* A storm of new connections and requests beside answers falling due: the loop runs
 * due answers before it accepts and reads (sim.h), and every answer still comes, none
 * before the latency has passed since its request was sent. Then the simulator is
 * stopped until the answers waiting on it are overdue while more connections and
 * requests queue in the kernel: on its return every one of them is answered, the
 * late-read requests still no sooner than their latency. */
START_TEST(http_latency_burst_of_connections)
{
	enum { FIRST = 200, MORE = 100, LATENCY = 150 };
	char *id = simproc_create_txn(sim, "10.00", "EUR");
	char *faults = xasprintf("{\"latency_ms\":%d}", LATENCY);
	ck_assert(simproc_set_faults(sim, faults));
	char req[1024];
	int rl = snprintf(req, sizeof(req),
	                  "GET /payment/status/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n", id);
	for (const char *const *h = simproc_api_headers(sim); *h != NULL; h++)
		rl += snprintf(req + rl, sizeof(req) - (size_t)rl, "%s\r\n", *h);
	rl += snprintf(req + rl, sizeof(req) - (size_t)rl, "\r\n");
	long calls0 = simproc_status_calls(sim, id);
	struct burst_conn *c = xcalloc(FIRST + MORE, sizeof(*c));
	/* the burst: 200 new connections, then two more requests on each as answers come */
	for (int i = 0; i < FIRST; i++)
		burst_open(&c[i], simproc_port(sim), req, rl);
	ck_assert_int_eq(burst_collect(c, FIRST, 3 * FIRST, 2 * FIRST, LATENCY, req, rl),
	                 3 * FIRST);
	/* answers overdue while the simulator is stopped, and new work queued behind them */
	for (int i = 0; i < FIRST; i++) {
		c[i].sent_us = mono_us();
		ck_assert_int_eq(write(c[i].fd, req, (size_t)rl), rl);
	}
	ck_assert_int_eq(kill(simproc_pid(sim), SIGSTOP), 0);
	for (int i = FIRST; i < FIRST + MORE; i++)
		burst_open(&c[i], simproc_port(sim), req, rl);
	struct timespec pause = {.tv_sec = 0, .tv_nsec = 2 * LATENCY * 1000000L};
	nanosleep(&pause, NULL);
	ck_assert_int_eq(kill(simproc_pid(sim), SIGCONT), 0);
	ck_assert_int_eq(burst_collect(c, FIRST + MORE, FIRST + MORE, 0, LATENCY, req, rl),
	                 FIRST + MORE);
	for (int i = 0; i < FIRST + MORE; i++)
		close(c[i].fd);
	ck_assert_int_eq(simproc_status_calls(sim, id) - calls0, 4 * FIRST + MORE);
	free(c);
	ck_assert(simproc_clear_faults(sim));
	free(faults);
	free(id);
}
END_TEST

START_TEST(http_fault_formats)
{
	char *id = simproc_create_txn(sim, "10.00", "EUR");
	json_object_put(post_expect("capture", id, "fm-1", "5.00", 200));
	struct simproc_reply r;
	ck_assert(simproc_status(sim, id, &r));
	struct json_object *plain = json_tokener_parse(r.body);
	simproc_reply_free(&r);

	ck_assert(simproc_set_faults(sim, "{\"reorder_fields\":true,\"seed\":9}"));
	ck_assert(simproc_status(sim, id, &r));
	struct json_object *re = json_tokener_parse(r.body);
	ck_assert(json_object_equal(plain, re));
	ck_assert_ptr_nonnull(strstr(r.body, "5.00"));
	json_object_put(re);
	simproc_reply_free(&r);

	ck_assert(simproc_set_faults(sim, "{\"extra_fields\":true,\"omit_optional\":true}"));
	ck_assert(simproc_status(sim, id, &r));
	struct json_object *x = json_tokener_parse(r.body), *v;
	ck_assert(json_object_object_get_ex(x, "simExtra", &v));
	ck_assert(!json_object_object_get_ex(x, "creationDate", &v));
	ck_assert_str_eq(field(x, "paymentStatus"), "CAPTURED");
	json_object_put(x);
	simproc_reply_free(&r);

	ck_assert(simproc_set_faults(sim, "{\"shape\":\"modifications\"}"));
	char *id2 = simproc_create_txn(sim, "10.00", "EUR");
	struct json_object *o = post_expect("capture", id2, "fm-2", NULL, 200);
	ck_assert(json_object_object_get_ex(o, "modifications", &v));
	ck_assert(!json_object_object_get_ex(o, "modification", &v));
	json_object_put(o);
	json_object_put(plain);
	free(id);
	free(id2);
}
END_TEST

START_TEST(http_shape_option)
{
	const char *args[] = {"--shape", "modifications", "--latency", "1:1", "--preload",
	                      "3",       "--seed",        "9",         NULL};
	struct simproc_opts opts = {.extra_args = args};
	struct simproc *s2 = simproc_start(&opts);
	ck_assert_ptr_nonnull(s2);
	char *id = simproc_create_txn(s2, "5.00", "EUR");
	char *body = mod_body(id, "m", NULL);
	struct simproc_reply r;
	ck_assert(simproc_payment(s2, "capture", body, &r));
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "\"modifications\":["));
	simproc_reply_free(&r);
	/* preloaded transactions, ids derived from the seed */
	ck_assert(simproc_status(s2, "00000009-0000-4000-8000-000000000002", &r));
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "\"paymentStatus\":\"AUTHORIZATION_COMPLETED\""));
	simproc_reply_free(&r);
	ck_assert(simproc_status(s2, "00000009-0000-4000-8000-000000000003", &r));
	ck_assert_int_eq(r.status, 404);
	simproc_reply_free(&r);
	free(body);
	free(id);
	ck_assert(simproc_stop(s2));
	/* non-loopback addresses are refused */
	const char *bad[] = {"--listen", "0.0.0.0:0", NULL};
	opts.extra_args = bad;
	ck_assert_ptr_null(simproc_start(&opts));
}
END_TEST

START_TEST(http_stop_with_answers_pending)
{
	/* answers still waiting on their timers are dropped cleanly at SIGTERM */
	char *id = simproc_create_txn(sim, "10.00", "EUR");
	char *body = mod_body(id, "p-1", NULL);
	struct simproc_reply r;
	ck_assert(simproc_set_faults(sim, "{\"slow_rate\":1,\"slow_ms\":60000}"));
	ck_assert(simproc_call(sim, "POST", "/payment/capture", simproc_api_headers(sim), body, 200,
	                       NULL, &r));
	ck_assert_int_eq(r.curl_code, CURLE_OPERATION_TIMEDOUT);
	simproc_reply_free(&r);
	ck_assert(simproc_set_faults(sim, "{\"latency_ms\":60000}"));
	ck_assert(simproc_call(sim, "GET", "/payment/status/x", simproc_api_headers(sim), NULL, 200,
	                       NULL, &r));
	ck_assert_int_eq(r.curl_code, CURLE_OPERATION_TIMEDOUT);
	simproc_reply_free(&r);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert(simproc_stop(sim));
	sim = NULL;
	ck_assert_int_lt(testutil_elapsed_ms(&t0), 10000);
	free(body);
	free(id);
}
END_TEST

START_TEST(http_tls)
{
	struct simproc_opts opts = {.tls = true};
	struct simproc *s2 = simproc_start(&opts);
	ck_assert_ptr_nonnull(s2);
	ck_assert_int_eq(strncmp(simproc_base_url(s2), "https://", 8), 0);
	char *id = simproc_create_txn(s2, "5.00", "EUR");
	ck_assert_ptr_nonnull(id);
	char *body = mod_body(id, "t-1", NULL);
	struct simproc_reply r;
	ck_assert(simproc_payment(s2, "capture", body, &r));
	ck_assert_int_eq(r.status, 200);
	simproc_reply_free(&r);
	/* a client trusting another CA refuses the server */
	ck_assert(simproc_make_tls(simproc_dir(s2), "other"));
	char *other = xasprintf("%s/other-ca.pem", simproc_dir(s2));
	ck_assert(simproc_call(s2, "POST", "/payment/capture", simproc_api_headers(s2), body, 0,
	                       other, &r));
	ck_assert_int_eq(r.status, 0);
	ck_assert_int_eq(r.curl_code, CURLE_PEER_FAILED_VERIFICATION);
	simproc_reply_free(&r);
	ck_assert_int_eq(simproc_request_count(s2, "t-1"), 1);
	/* faults work over TLS too */
	ck_assert(simproc_set_faults(s2, "{\"drop_after_commit_rate\":1}"));
	char *body2 = mod_body(id, "t-2", "1.00");
	ck_assert(simproc_payment(s2, "refund", body2, &r));
	ck_assert_int_eq(r.status, 0);
	simproc_reply_free(&r);
	ck_assert(simproc_set_faults(s2, "{\"reset_rate\":1}"));
	ck_assert(simproc_payment(s2, "refund", body2, &r));
	ck_assert_int_eq(r.status, 0);
	simproc_reply_free(&r);
	ck_assert(simproc_clear_faults(s2));
	ck_assert_int_eq(simproc_count_effects(s2, id, "REFUND"), 1);
	free(other);
	free(body);
	free(body2);
	free(id);
	ck_assert(simproc_stop(s2));
}
END_TEST

/* The "origin" of the index-th effect of a fetched ledger for a transaction. */
static const char *effect_origin(struct json_object *ledger, const char *txn, int index,
                                 const char **type)
{
	struct json_object *effects;
	ck_assert(json_object_object_get_ex(ledger, "effects", &effects));
	int seen = 0;
	for (size_t i = 0; i < json_object_array_length(effects); i++) {
		struct json_object *e = json_object_array_get_idx(effects, i);
		if (strcmp(field(e, "transactionId"), txn) != 0)
			continue;
		if (seen++ == index) {
			*type = field(e, "type");
			return field(e, "origin");
		}
	}
	return NULL;
}

START_TEST(http_external_effects)
{
	char *a = simproc_create_txn(sim, "50.00", "EUR");
	char *b = simproc_create_txn(sim, "20.00", "EUR");
	char *c = simproc_create_txn(sim, "30.00", "EUR");
	/* a portal capture, then a support refund of part of it */
	char *cap = simproc_external(sim, a, "{\"operation\":\"capture\",\"amount\":\"40.00\"}");
	ck_assert_ptr_nonnull(cap);
	ck_assert_uint_eq(strlen(cap), 36);
	char *ref = simproc_external(
	    sim, a,
	    "{\"operation\":\"refund\",\"amount\":\"5.00\",\"modificationId\":\"support-1\"}");
	ck_assert_str_eq(ref, "support-1");
	/* the daemon's own capture is refused now: the transaction is captured */
	struct simproc_reply r;
	ck_assert_int_eq(post("capture", a, "api-cap-a", NULL, &r), 422);
	simproc_reply_free(&r);
	/* the status answer shows both outside effects in the history */
	ck_assert(simproc_status(sim, a, &r));
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, cap));
	ck_assert_ptr_nonnull(strstr(r.body, "support-1"));
	ck_assert_ptr_nonnull(strstr(r.body, "\"paymentStatus\":\"CAPTURED\""));
	simproc_reply_free(&r);
	/* a support cancel and an early expiry */
	char *cnl = simproc_external(sim, b, "{\"operation\":\"cancel\"}");
	ck_assert_ptr_nonnull(cnl);
	char *exp = simproc_external(sim, c, "{\"operation\":\"expire\"}");
	ck_assert_str_eq(exp, "");
	ck_assert(simproc_status(sim, c, &r));
	ck_assert_ptr_nonnull(strstr(r.body, "\"paymentStatus\":\"EXPIRED\""));
	simproc_reply_free(&r);
	ck_assert_int_eq(post("capture", c, "api-cap-c", NULL, &r), 422);
	ck_assert_ptr_nonnull(strstr(r.body, "authorization_expired"));
	simproc_reply_free(&r);
	/* refused outside effects change nothing */
	ck_assert_ptr_null(simproc_external(sim, b, "{\"operation\":\"capture\"}"));
	ck_assert_ptr_null(simproc_external(sim, c, "{\"operation\":\"expire\"}"));
	ck_assert_ptr_null(simproc_external(sim, c, "{\"operation\":\"teleport\"}"));
	ck_assert_ptr_null(simproc_external(
	    sim, a, "{\"operation\":\"refund\",\"modificationId\":\"support-1\"}"));
	ck_assert_ptr_null(simproc_external(sim, "no-such", "{\"operation\":\"cancel\"}"));
	/* the ledger marks every one as external */
	struct json_object *ledger = simproc_ledger(sim);
	const char *type;
	ck_assert_str_eq(effect_origin(ledger, a, 0, &type), "external");
	ck_assert_str_eq(type, "CAPTURE");
	ck_assert_str_eq(effect_origin(ledger, a, 1, &type), "external");
	ck_assert_str_eq(type, "REFUND");
	ck_assert_ptr_null(effect_origin(ledger, a, 2, &type));
	ck_assert_str_eq(effect_origin(ledger, b, 0, &type), "external");
	ck_assert_str_eq(type, "CANCELLATION");
	ck_assert_str_eq(effect_origin(ledger, c, 0, &type), "external");
	ck_assert_str_eq(type, "EXPIRY");
	ck_assert_int_eq(simproc_ledger_per_id(ledger, "requests", cap), 0);
	json_object_put(ledger);
	/* an effect through the API is marked as such */
	char *d = simproc_create_txn(sim, "10.00", "EUR");
	ck_assert_int_eq(post("capture", d, "api-cap-d", NULL, &r), 200);
	simproc_reply_free(&r);
	ledger = simproc_ledger(sim);
	ck_assert_str_eq(effect_origin(ledger, d, 0, &type), "api");
	json_object_put(ledger);
	free(a), free(b), free(c), free(d), free(cap), free(ref), free(cnl), free(exp);
}
END_TEST

START_TEST(http_status_call_faults_and_counts)
{
	char *id = simproc_create_txn(sim, "10.00", "EUR");
	char *other = simproc_create_txn(sim, "10.00", "EUR");
	struct simproc_reply r;
	ck_assert_int_eq(simproc_status_calls(sim, NULL), 0);
	/* status_call faults affect the status call only; modification calls go through */
	ck_assert(simproc_set_faults(sim, "{\"status_call\":{\"fail_rate\":1,\"status\":500}}"));
	ck_assert(simproc_status(sim, id, &r));
	ck_assert_int_eq(r.status, 500);
	ck_assert_ptr_nonnull(strstr(r.body, "\"error\""));
	simproc_reply_free(&r);
	ck_assert_int_eq(post("capture", id, "sc-1", NULL, &r), 200);
	simproc_reply_free(&r);
	/* garbage */
	ck_assert(simproc_set_faults(sim, "{\"status_call\":{\"garble_rate\":1}}"));
	ck_assert(simproc_status(sim, id, &r));
	ck_assert_int_eq(r.status, 200);
	struct json_object *o = json_tokener_parse(r.body);
	ck_assert_ptr_null(o);
	simproc_reply_free(&r);
	/* a hang: no answer within the client's timeout */
	ck_assert(simproc_set_faults(sim, "{\"status_call\":{\"hang_rate\":1,\"hang_ms\":3000}}"));
	ck_assert(simproc_call(sim, "GET", "/payment/status/x", simproc_api_headers(sim), NULL, 500,
	                       NULL, &r));
	ck_assert_int_eq(r.status, 0);
	simproc_reply_free(&r);
	/* modification-call faults leave a configured status call alone */
	ck_assert(simproc_set_faults(sim, "{\"fail_rate\":1,\"status_call\":{}}"));
	ck_assert(simproc_status(sim, other, &r));
	ck_assert_int_eq(r.status, 200);
	simproc_reply_free(&r);
	ck_assert_int_eq(post("capture", other, "sc-2", NULL, &r), 503);
	simproc_reply_free(&r);
	/* without status_call, the status call has the general faults as before */
	ck_assert(simproc_set_faults(sim, "{\"fail_rate\":1,\"status\":502}"));
	ck_assert(simproc_status(sim, other, &r));
	ck_assert_int_eq(r.status, 502);
	simproc_reply_free(&r);
	ck_assert(simproc_clear_faults(sim));
	/* counts: faulted calls included, per transaction and in total */
	ck_assert_int_eq(simproc_status_calls(sim, id), 2);
	ck_assert_int_eq(simproc_status_calls(sim, other), 2);
	ck_assert_int_eq(simproc_status_calls(sim, NULL), 5);
	struct json_object *ledger = simproc_ledger(sim), *v;
	ck_assert(json_object_object_get_ex(ledger, "statusCallsMaxPerSecond", &v));
	ck_assert_int_ge(json_object_get_int64(v), 1);
	ck_assert_int_le(json_object_get_int64(v), 5);
	json_object_put(ledger);
	/* bad status_call documents are refused */
	ck_assert(simproc_call(sim, "POST", "/_sim/faults", NULL,
	                       "{\"status_call\":{\"fail_rate\":0.7,\"hang_rate\":0.7}}", 0, NULL,
	                       &r));
	ck_assert_int_eq(r.status, 400);
	simproc_reply_free(&r);
	ck_assert(simproc_call(sim, "POST", "/_sim/faults", NULL,
	                       "{\"status_call\":{\"status\":200}}", 0, NULL, &r));
	ck_assert_int_eq(r.status, 400);
	simproc_reply_free(&r);
	ck_assert(simproc_call(sim, "POST", "/_sim/faults", NULL, "{\"status_call\":{\"x\":1}}", 0,
	                       NULL, &r));
	ck_assert_int_eq(r.status, 400);
	simproc_reply_free(&r);
	free(id);
	free(other);
}
END_TEST

START_TEST(state_status_call_rate)
{
	struct sim_txn *t = new_txn("rate-1", 1000);
	for (int i = 0; i < 10; i++)
		sim_state_note_status_call(st, "rate-1", 1000 + i * 250);
	sim_state_note_status_call(st, "unknown", 5000);
	ck_assert_uint_eq(t->status_calls, 10);
	ck_assert_uint_eq(sim_state_status_calls(st), 11);
	/* 1000, 1250, 1500, 1750 fall within one second; 2000 does not */
	ck_assert_uint_eq(sim_state_status_calls_max_per_second(st), 4);
	sim_state_note_status_call(st, "rate-1", 5000);
	sim_state_note_status_call(st, "rate-1", 5000);
	sim_state_note_status_call(st, "rate-1", 5001);
	sim_state_note_status_call(st, "rate-1", 5999);
	ck_assert_uint_eq(sim_state_status_calls_max_per_second(st), 5);
}
END_TEST

START_TEST(state_external_and_expiry)
{
	struct sim_txn *t = new_txn("ext-1", 5000);
	struct sim_mod_request req = {
	    .op = SIM_OP_CAPTURE, .transaction_id = "ext-1", .modification_id = "portal-1"};
	struct sim_result res;
	sim_state_apply_external(st, &req, &res);
	ck_assert_int_eq(res.outcome, SIM_APPLIED);
	ck_assert(t->mods[0].external);
	size_t n;
	const struct sim_effect *e = sim_state_effects(st, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert(e[0].external);
	ck_assert_ptr_null(sim_state_modrec(st, "portal-1"));
	ck_assert(!sim_state_expire(st, t)); /* captured: cannot expire */
	struct sim_txn *u = new_txn("ext-2", 5000);
	ck_assert(sim_state_expire(st, u));
	ck_assert_int_eq(u->status, SIM_PS_EXPIRED);
	e = sim_state_effects(st, &n);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(e[1].type, "EXPIRY");
	ck_assert_ptr_null(e[1].modification_id);
	ck_assert(e[1].external);
	ck_assert_int_eq(apply(SIM_OP_CAPTURE, "ext-2", "late", -1, &res), SIM_REFUSED);
	ck_assert_str_eq(res.error, "authorization_expired");
}
END_TEST

/* Connects a TLS client of context c to the simulator; nothing is verified. rcvbuf,
 * when not 0, is the socket's SO_RCVBUF. (With TLS 1.3 the session tickets after the
 * handshake are read by the first SSL_read, which then goes on to the answer's record.) */
static SSL *tls_connect(SSL_CTX *c, int port, int rcvbuf, int *fd)
{
	*fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(*fd, 0);
	if (rcvbuf != 0)
		ck_assert_int_eq(setsockopt(*fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)),
		                 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
	SSL *ssl = SSL_new(c);
	ck_assert_ptr_nonnull(ssl);
	ck_assert_int_eq(SSL_set_fd(ssl, *fd), 1);
	ck_assert_int_eq(SSL_connect(ssl), 1);
	return ssl;
}

/* Reads one answer over TLS with one SSL_read, i.e. one record, and checks that the
 * record holds the headers and the whole body; its status. */
static int tls_read_answer(SSL *ssl)
{
	char buf[16385];
	int n = SSL_read(ssl, buf, (int)sizeof(buf) - 1);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	const char *end = strstr(buf, "\r\n\r\n");
	ck_assert_ptr_nonnull(end);
	const char *cl = strcasestr(buf, "\r\nContent-Length:");
	ck_assert_ptr_nonnull(cl);
	long len = strtol(cl + strlen("\r\nContent-Length:"), NULL, 10);
	ck_assert_int_gt(len, 0);
	ck_assert_int_eq(n, (end + 4 - buf) + len);
	int status = 0;
	ck_assert_int_eq(sscanf(buf, "HTTP/1.1 %d", &status), 1);
	return status;
}

/* Creates a 1.00 EUR transaction whose description is `len` (at most 6,000) 'd's, so that
 * its status answer is about len + 1 KiB; its id (owned). */
static char *create_long_txn(const struct simproc *s, size_t len)
{
	char json[6200], desc[6001];
	ck_assert_uint_le(len, 6000);
	memset(desc, 'd', len);
	desc[len] = '\0';
	snprintf(json, sizeof(json),
	         "{\"amount\":\"1.00\",\"currencyCode\":\"EUR\",\"description\":\"%s\"}", desc);
	char *id = simproc_create_txn_json(s, json);
	ck_assert_ptr_nonnull(id);
	return id;
}

/* Writes a status request for transaction id with the API's headers into req; its length. */
static int status_request(const struct simproc *s, const char *id, char *req, size_t size)
{
	int rl = snprintf(req, size, "GET /payment/status/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n", id);
	for (const char *const *h = simproc_api_headers(s); *h != NULL; h++)
		rl += snprintf(req + rl, size - (size_t)rl, "%s\r\n", *h);
	rl += snprintf(req + rl, size - (size_t)rl, "\r\n");
	ck_assert_int_lt(rl, (int)size);
	return rl;
}

/* An answer over TLS is one record: SSL_read returns at most one record, and the first
 * one holds the headers and the whole body (two records stall on Nagle's algorithm),
 * also answers of about 3 and 7 KiB (descriptions of 2,000 and 6,000 characters), twice
 * each on one connection. */
START_TEST(http_tls_answer_is_one_record)
{
	struct simproc_opts opts = {.tls = true};
	struct simproc *s2 = simproc_start(&opts);
	ck_assert_ptr_nonnull(s2);
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION), 1);
	int fd;
	SSL *ssl = tls_connect(c, simproc_port(s2), 0, &fd);
	for (int i = 0; i < 3; i++) {
		const char *req = "GET /_sim/ledger HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
		ck_assert_int_eq(SSL_write(ssl, req, (int)strlen(req)), (int)strlen(req));
		ck_assert_int_eq(tls_read_answer(ssl), 200);
	}
	char *ids[2];
	const size_t lengths[2] = {2000, 6000};
	for (size_t i = 0; i < 2; i++)
		ids[i] = create_long_txn(s2, lengths[i]);
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < 2; i++) {
			char req[2048];
			int rl = status_request(s2, ids[i], req, sizeof(req));
			ck_assert_int_eq(SSL_write(ssl, req, rl), rl);
			ck_assert_int_eq(tls_read_answer(ssl), 200);
		}
	}
	free(ids[0]);
	free(ids[1]);
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(c);
	ck_assert(simproc_stop(s2));
}
END_TEST

/* A simulator over TLS with one transaction (*id), whose answers wait latency_ms. */
static struct simproc *tls_sim_delayed(int latency_ms, char **id)
{
	struct simproc_opts opts = {.tls = true};
	struct simproc *s = simproc_start(&opts);
	ck_assert_ptr_nonnull(s);
	*id = simproc_create_txn(s, "10.00", "EUR");
	ck_assert_ptr_nonnull(*id);
	char faults[64];
	snprintf(faults, sizeof(faults), "{\"latency_ms\":%d}", latency_ms);
	ck_assert(simproc_set_faults(s, faults));
	return s;
}

/* Delayed answers over TLS (1.2 and 1.3) on one kept-alive connection are written
 * from their timers as plain ones are: each one record, none before the latency has
 * passed since its request was sent, the connection goes on reading, also two
 * requests sent together, and every answer counted as written from its timer. */
START_TEST(http_tls_latency_keep_alive)
{
	char *id;
	struct simproc *s2 = tls_sim_delayed(30, &id);
	char req[2048];
	int rl = status_request(s2, id, req, sizeof(req) / 2);
	memcpy(req + rl, req, (size_t)rl); /* the same request twice, for one write */
	const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
	for (size_t v = 0; v < sizeof(versions) / sizeof(versions[0]); v++) {
		SSL_CTX *c = SSL_CTX_new(TLS_client_method());
		ck_assert_ptr_nonnull(c);
		ck_assert_int_eq(SSL_CTX_set_min_proto_version(c, versions[v]), 1);
		ck_assert_int_eq(SSL_CTX_set_max_proto_version(c, versions[v]), 1);
		int fd;
		SSL *ssl = tls_connect(c, simproc_port(s2), 0, &fd);
		ck_assert_int_eq(SSL_version(ssl), versions[v]);
		for (int i = 0; i < 3; i++) {
			struct timespec t0;
			clock_gettime(CLOCK_MONOTONIC, &t0);
			ck_assert_int_eq(SSL_write(ssl, req, rl), rl);
			ck_assert_int_eq(tls_read_answer(ssl), 200);
			ck_assert_int_ge(testutil_elapsed_ms(&t0), 30);
		}
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		ck_assert_int_eq(SSL_write(ssl, req, 2 * rl), 2 * rl);
		ck_assert_int_eq(tls_read_answer(ssl), 200);
		ck_assert_int_eq(tls_read_answer(ssl), 200);
		ck_assert_int_ge(testutil_elapsed_ms(&t0), 30);
		ck_assert_int_eq(SSL_pending(ssl), 0);
		SSL_free(ssl);
		close(fd);
		SSL_CTX_free(c);
		ck_assert_int_eq(ledger_number(s2, "answersFromTimer"), (int64_t)(5 * (v + 1)));
	}
	free(id);
	ck_assert(simproc_stop(s2));
}
END_TEST

/* A request that arrives over TLS while the one before waits for its delayed answer is
 * read and answered after it (the connection reads its socket with its own event). */
START_TEST(http_tls_request_during_delayed_answer)
{
	char *id;
	struct simproc *s2 = tls_sim_delayed(100, &id);
	char req[2048];
	int rl = status_request(s2, id, req, sizeof(req));
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	ck_assert_ptr_nonnull(c);
	int fd;
	SSL *ssl = tls_connect(c, simproc_port(s2), 0, &fd);
	/* an answer that does not come fails the read instead of hanging the test */
	struct timeval tv = {.tv_sec = 5};
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(SSL_write(ssl, req, rl), rl);
	usleep(40 * 1000);
	ck_assert_int_eq(SSL_write(ssl, req, rl), rl);
	ck_assert_int_eq(tls_read_answer(ssl), 200);
	ck_assert_int_eq(tls_read_answer(ssl), 200);
	ck_assert_int_ge(testutil_elapsed_ms(&t0), 200);
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(c);
	ck_assert_int_eq(ledger_number(s2, "answersFromTimer"), 2);
	free(id);
	ck_assert(simproc_stop(s2));
}
END_TEST

/* A client that sends many requests at once and reads nothing for a while fills the
 * simulator's socket: the answers wait for room (counted as tlsWritesWaited) and
 * then all come, each whole and in order, the last one (Connection: close) before the
 * connection's end. */
START_TEST(http_tls_answers_wait_for_room)
{
	enum { N = 1000 }; /* 7 MB of answers: more than the kernel buffers (4 MB at most) */
	struct simproc_opts opts = {.tls = true};
	struct simproc *s2 = simproc_start(&opts);
	ck_assert_ptr_nonnull(s2);
	char *id = create_long_txn(s2, 6000);
	char one[2048];
	int rl = status_request(s2, id, one, sizeof(one));
	/* the last request asks for the connection's end: put it before the blank line */
	char last[2100];
	int ll = snprintf(last, sizeof(last), "%.*sConnection: close\r\n\r\n", rl - 2, one);
	size_t total = (size_t)rl * (N - 1) + (size_t)ll;
	char *reqs = xmalloc(total);
	for (int i = 0; i < N - 1; i++)
		memcpy(reqs + (size_t)rl * (size_t)i, one, (size_t)rl);
	memcpy(reqs + (size_t)rl * (N - 1), last, (size_t)ll);
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	ck_assert_ptr_nonnull(c);
	int fd;
	SSL *ssl = tls_connect(c, simproc_port(s2), 4096, &fd);
	ck_assert_int_eq(SSL_write(ssl, reqs, (int)total), (int)total);
	usleep(300 * 1000);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(tls_read_answer(ssl), 200);
	char byte;
	ck_assert_int_le(SSL_read(ssl, &byte, 1), 0);
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(c);
	free(reqs);
	free(id);
	ck_assert_int_gt(ledger_number(s2, "tlsWritesWaited"), 0);
	ck_assert(simproc_stop(s2));
}
END_TEST

/* A TLS 1.2 client cannot renegotiate (its new handshake fails), and the simulator
 * goes on serving. */
START_TEST(http_tls_refuses_renegotiation)
{
	struct simproc_opts opts = {.tls = true};
	struct simproc *s2 = simproc_start(&opts);
	ck_assert_ptr_nonnull(s2);
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION), 1);
	int fd;
	SSL *ssl = tls_connect(c, simproc_port(s2), 0, &fd);
	ck_assert_int_eq(SSL_renegotiate(ssl), 1);
	ck_assert_int_le(SSL_do_handshake(ssl), 0);
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(c);
	ck_assert_int_eq(ledger_number(s2, "connections"), 2);
	ck_assert(simproc_stop(s2));
}
END_TEST

static Suite *sim_suite(void)
{
	Suite *s = suite_create("smartpay-sim");
	TCase *tc = tcase_create("state");
	tcase_add_checked_fixture(tc, state_setup, state_teardown);
	tcase_add_test(tc, state_capture_partial_releases_rest);
	tcase_add_test(tc, state_capture_amount_rules);
	tcase_add_test(tc, state_capture_expired);
	tcase_add_test(tc, state_cancel_only_before_capture);
	tcase_add_test(tc, state_refunds_up_to_captured);
	tcase_add_test(tc, state_cancel_or_refund);
	tcase_add_test(tc, state_create_rules_and_preload);
	tcase_add_test(tc, state_idempotency_records);
	tcase_add_test(tc, state_status_call_rate);
	tcase_add_test(tc, state_external_and_expiry);
	tcase_add_test(tc, render_model_and_variants);
	tcase_add_test(tc, hostile_bodies);
	suite_add_tcase(s, tc);

	tc = tcase_create("pure");
	tcase_add_test(tc, request_fields);
	tcase_add_test(tc, request_amounts_exact);
	tcase_add_test(tc, request_ignored_properties);
	tcase_add_test(tc, faults_config_and_plans);
	tcase_add_test(tc, hostile_config_and_picks);
	tcase_add_test(tc, time_text);
	suite_add_tcase(s, tc);

	tc = tcase_create("http");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, sim_setup, sim_teardown);
	tcase_add_test(tc, http_authentication_and_headers);
	tcase_add_test(tc, http_validation_errors);
	tcase_add_test(tc, http_capture_refund_flow);
	tcase_add_test(tc, http_cancel_and_cancel_or_refund);
	tcase_add_test(tc, http_expiry_by_clock);
	tcase_add_test(tc, http_auth_validity_option);
	tcase_add_test(tc, http_idempotent_replay);
	tcase_add_test(tc, http_control_api);
	tcase_add_test(tc, http_fault_fail_status);
	tcase_add_test(tc, http_fault_reset);
	tcase_add_test(tc, http_fault_drop_after_commit);
	tcase_add_test(tc, http_fault_slow);
	tcase_add_test(tc, http_fault_garble);
	tcase_add_test(tc, http_hostile_processed_or_not);
	tcase_add_test(tc, http_hostile_confirmations_that_are_not);
	tcase_add_test(tc, http_hostile_pages_and_cut_bodies);
	tcase_add_test(tc, http_fault_latency_and_seed);
	tcase_add_test(tc, http_latency_keep_alive);
	tcase_add_test(tc, http_latency_burst_of_connections);
	tcase_add_test(tc, http_fault_formats);
	tcase_add_test(tc, http_shape_option);
	tcase_add_test(tc, http_stop_with_answers_pending);
	tcase_add_test(tc, http_tls);
	tcase_add_test(tc, http_external_effects);
	tcase_add_test(tc, http_status_call_faults_and_counts);
	tcase_add_test(tc, http_tls_answer_is_one_record);
	tcase_add_test(tc, http_tls_latency_keep_alive);
	tcase_add_test(tc, http_tls_answers_wait_for_room);
	tcase_add_test(tc, http_tls_request_during_delayed_answer);
	tcase_add_test(tc, http_tls_refuses_renegotiation);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int status = testutil_run_suite(sim_suite(), CK_NORMAL);
	curl_global_cleanup();
	return status;
}
