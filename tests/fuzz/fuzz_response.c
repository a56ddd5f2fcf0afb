/* libFuzzer harness: one gateway answer through response parsing and classification
 * (outcome_decide), for every modification kind, with invariants on the outcome.
 *
 * Input: a header line, then the body (any bytes, NULs included).
 *   byte 0      kind: 'c' capture, 'x' cancel, 'o' cancelOrRefund, 'r' refund
 *               (any other byte: byte % 4)
 *   bytes 1..3  HTTP status digits ("000": no HTTP answer; other bytes: byte % 10)
 *   byte 4      flags, as byte - '0': bit 0 transport error, bit 1 timed out,
 *               bit 2 capture deadline soon, bit 3 capture deadline passed,
 *               bits 4..7 attempts already made
 *   then        our modificationId, up to a space or the end of the line
 *   then        the Retry-After value, up to the end of the line (empty: none)
 *   "\n"        then the body
 * e.g. "c2000cap-0001 7\n{...}".
 *
 * Invariants: the state, counting and alert agree with the result; a success needs a
 * clean 2xx whose body confirms this modification (the decision table's conditions,
 * checked here with json-c directly); retry delays stay within backoff, Retry-After and
 * deadline bounds; every stored string is well-formed UTF-8 without NUL and bounded,
 * and a well-formed body is kept byte for byte (NULs dropped); deciding twice gives the
 * same outcome; the scan of strict JSON answers (lib/json_scan.c) reads a body it takes
 * exactly as json-c's tree does; nothing leaks. */
#include "autoconfig.h"

#include "classify.h"
#include "fuzz.h"
#include "outcome.h"
#include "response_internal.h"
#include "xmalloc.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#define NOW_MS INT64_C(1764581330000)
#define DAY_MS INT64_C(86400000)

/* The attempt as decoded from the input; strings are owned. */
struct fuzz_case {
	struct claim claim;
	struct outcome_answer answer;
	char *retry_after;
};

/* One header byte as a decimal digit. */
static int digit_of(uint8_t b)
{
	return b >= '0' && b <= '9' ? b - '0' : b % 10;
}

/* The modification kind a header byte names. */
static enum mod_kind kind_of(uint8_t b)
{
	switch (b) {
	case 'c':
		return MOD_CAPTURE;
	case 'x':
		return MOD_CANCEL;
	case 'o':
		return MOD_CANCEL_OR_REFUND;
	case 'r':
		return MOD_REFUND;
	default:
		return (enum mod_kind)(b % 4);
	}
}

/* FNV-1a of the input: the "random" draw of the backoff, reproducible per input. */
static uint64_t input_hash(const uint8_t *data, size_t size)
{
	uint64_t h = UINT64_C(14695981039346656037);
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * UINT64_C(1099511628211);
	return h;
}

/* Copies [p, end) up to the first NUL, or `fallback` when that is empty. */
static char *text_or(const uint8_t *p, const uint8_t *end, const char *fallback)
{
	char *s = xstrndup((const char *)p, (size_t)(end - p));
	if (*s == '\0' && fallback != NULL) {
		free(s);
		s = xstrdup(fallback);
	}
	return s;
}

/* Splits the input into a claim and an answer. */
static void decode(const uint8_t *data, size_t size, struct fuzz_case *fc)
{
	uint8_t head[5] = {'c', '2', '0', '0', '0'};
	memcpy(head, data, size < 5 ? size : 5);
	const uint8_t *end = data + size;
	const uint8_t *p = size < 5 ? end : data + 5;
	const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
	const uint8_t *line_end = nl ? nl : end;
	const uint8_t *sp = memchr(p, ' ', (size_t)(line_end - p));
	const uint8_t *id_end = sp ? sp : line_end;
	unsigned flags = (uint8_t)(head[4] - '0');

	memset(fc, 0, sizeof(*fc));
	struct claim *c = &fc->claim;
	c->modification_id = text_or(p, id_end, "mod-0001");
	c->order_id = xstrdup("42");
	c->transaction_id = xstrdup("tx-1");
	c->body = xstrdup("{}");
	c->kind = kind_of(head[0]);
	c->attempts = (int)(flags >> 4);
	c->generation = 7;
	c->deadline_ms = NOW_MS + 5 * DAY_MS;
	if (flags & 4)
		c->deadline_ms = NOW_MS + 90000;
	if (flags & 8) {
		c->deadline_ms = NOW_MS - 1;
		c->deadline_passed = true;
	}
	fc->retry_after = sp ? text_or(sp + 1, line_end, NULL) : NULL;
	if (fc->retry_after != NULL && *fc->retry_after == '\0') {
		free(fc->retry_after);
		fc->retry_after = NULL;
	}

	struct outcome_answer *a = &fc->answer;
	a->http_status = digit_of(head[1]) * 100 + digit_of(head[2]) * 10 + digit_of(head[3]);
	a->transport_error = flags & 1;
	a->timed_out = flags & 2;
	a->error = a->transport_error ? "Connection reset by peer" : NULL;
	a->body = nl ? (const char *)nl + 1 : "";
	a->body_len = nl ? (size_t)(end - nl - 1) : 0;
	a->retry_after = fc->retry_after;
}

/* Frees what decode allocated. */
static void fuzz_case_free(struct fuzz_case *fc)
{
	claim_clear(&fc->claim);
	free(fc->retry_after);
}

/* True when two optional strings are equal (both NULL counts). */
static bool same_text(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* True when s[0..len) is well-formed UTF-8 (no overlong forms, surrogates or code
 * points above U+10FFFF), with NUL bytes only when nul_ok. */
static bool utf8_clean(const unsigned char *s, size_t len, bool nul_ok)
{
	size_t i = 0;
	while (i < len) {
		unsigned c = s[i];
		size_t n = c < 0x80                 ? 1
		           : c >= 0xc2 && c <= 0xdf ? 2
		           : (c & 0xf0) == 0xe0     ? 3
		           : c >= 0xf0 && c <= 0xf4 ? 4
		                                    : 0;
		if ((c == 0 && !nul_ok) || n == 0 || i + n > len)
			return false;
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
		}
		if ((c == 0xe0 && s[i + 1] < 0xa0) || (c == 0xed && s[i + 1] > 0x9f) ||
		    (c == 0xf0 && s[i + 1] < 0x90) || (c == 0xf4 && s[i + 1] > 0x8f))
			return false;
		i += n;
	}
	return true;
}

/* Checks that an optional stored string is storable text of at most max bytes. */
static void check_storable(const char *s, size_t max)
{
	if (s == NULL)
		return;
	size_t len = strlen(s);
	FUZZ_CHECK(len <= max);
	FUZZ_CHECK(utf8_clean((const unsigned char *)s, len, false));
}

/* True when `text` is one of the NULL-terminated `names`, ignoring case. */
static bool one_of(const char *text, const char *const *names)
{
	for (; *names != NULL; names++) {
		if (strcasecmp(text, *names) == 0)
			return true;
	}
	return false;
}

/* The decision table's confirming types and statuses of a modification kind
 * (README, "Decision table"), in both spellings. */
static void confirming(enum mod_kind kind, const char *const **types,
                       const char *const **capture_like, const char *const **cancel_like,
                       const char *const **refund_like)
{
	static const char *const capture_types[] = {"CAPTURE", NULL};
	static const char *const cancel_types[] = {"CANCELLATION", "CANCELATION", NULL};
	static const char *const refund_types[] = {"REFUND", NULL};
	static const char *const both_types[] = {"CANCELLATION", "CANCELATION", "REFUND", NULL};
	static const char *const captured[] = {"CAPTURED", "CAPTURE_PENDING", "SETTLED", NULL};
	static const char *const cancelled[] = {"CANCELLED", "CANCELED", "CANCELLATION_PENDING",
	                                        "CANCELATION_PENDING", NULL};
	static const char *const refunded[] = {"REFUNDED", "REFUND_PENDING", NULL};
	*capture_like = kind == MOD_CAPTURE ? captured : NULL;
	*cancel_like = kind == MOD_CANCEL || kind == MOD_CANCEL_OR_REFUND ? cancelled : NULL;
	*refund_like = kind == MOD_REFUND || kind == MOD_CANCEL_OR_REFUND ? refunded : NULL;
	*types = kind == MOD_CAPTURE  ? capture_types
	         : kind == MOD_CANCEL ? cancel_types
	         : kind == MOD_REFUND ? refund_types
	                              : both_types;
}

/* True when entry `e` (a modification object) confirms a modification of `kind`: a
 * confirming status that belongs to its type when it gives one. */
static bool entry_confirms(struct json_object *e, enum mod_kind kind)
{
	static const char *const cancel_types[] = {"CANCELLATION", "CANCELATION", NULL};
	static const char *const refund_types[] = {"REFUND", NULL};
	const char *const *types, *const *cap, *const *can, *const *ref;
	confirming(kind, &types, &cap, &can, &ref);
	struct json_object *status = NULL, *data = NULL, *type = NULL;
	if (!json_object_object_get_ex(e, "status", &status) ||
	    !json_object_is_type(status, json_type_string))
		return false;
	const char *st = json_object_get_string(status);
	if ((size_t)json_object_get_string_len(status) != strlen(st))
		return false;
	const char *ty = NULL;
	if (json_object_object_get_ex(e, "modificationData", &data) &&
	    json_object_object_get_ex(data, "type", &type) &&
	    json_object_is_type(type, json_type_string))
		ty = json_object_get_string(type);
	if (ty != NULL && !one_of(ty, types))
		return false;
	if (cap != NULL && one_of(st, cap))
		return true;
	if (can != NULL && one_of(st, can) && (ty == NULL || one_of(ty, cancel_types)))
		return true;
	return ref != NULL && one_of(st, ref) && (ty == NULL || one_of(ty, refund_types));
}

/* True when object v's modificationData.modificationId is exactly `id`. */
static bool names_id(struct json_object *v, const char *id)
{
	struct json_object *data = NULL, *mid = NULL;
	return json_object_object_get_ex(v, "modificationData", &data) &&
	       json_object_is_type(data, json_type_object) &&
	       json_object_object_get_ex(data, "modificationId", &mid) &&
	       json_object_is_type(mid, json_type_string) &&
	       (size_t)json_object_get_string_len(mid) == strlen(id) &&
	       strcmp(json_object_get_string(mid), id) == 0;
}

/* What the entries naming our modificationId say, over all of them. */
struct entries_seen {
	size_t count;
	bool all_confirm;
	struct json_object *first; /* the first of them */
	bool disagree;
};

/* A status or type in one spelling: upper case, CANCELED -> CANCELLED and
 * CANCELATION -> CANCELLATION, into buf. */
static const char *one_spelling(const char *s, char *buf, size_t cap)
{
	size_t o = 0;
	for (const char *p = s; *p != '\0' && o + 2 < cap; p++) {
		char c = *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
		buf[o++] = c;
		if (o >= 5 && strncmp(buf + o - 5, "CANCE", 5) == 0 &&
		    (p[1] == 'l' || p[1] == 'L') && p[2] != 'l' && p[2] != 'L')
			buf[o++] = 'L';
	}
	buf[o] = '\0';
	return buf;
}

/* The string member `key` of entry e (of its modificationData when `data`), or NULL. */
static const char *entry_text(struct json_object *e, bool data, const char *key)
{
	struct json_object *m = NULL, *v = NULL;
	if (data && !json_object_object_get_ex(e, "modificationData", &m))
		return NULL;
	if (!json_object_object_get_ex(data ? m : e, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* True when two optional texts name the same status or type (NULL matches anything). */
static bool same_spelling(const char *a, const char *b)
{
	char x[128], y[128];
	if (a == NULL || b == NULL)
		return true;
	return strcmp(one_spelling(a, x, sizeof(x)), one_spelling(b, y, sizeof(y))) == 0;
}

/* Collects the entries naming `id` in v, an entry or an array of them (arrays may nest),
 * as the decision table reads `modification` and `modifications`. */
static void collect_entries(struct json_object *v, const char *id, enum mod_kind kind, int depth,
                            struct entries_seen *seen)
{
	if (v == NULL || depth > 64)
		return;
	if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++)
			collect_entries(json_object_array_get_idx(v, i), id, kind, depth + 1, seen);
		return;
	}
	if (!json_object_is_type(v, json_type_object) || !names_id(v, id))
		return;
	if (!entry_confirms(v, kind))
		seen->all_confirm = false;
	if (seen->count++ == 0) {
		seen->first = v;
		return;
	}
	if (!same_spelling(entry_text(v, false, "status"),
	                   entry_text(seen->first, false, "status")) ||
	    !same_spelling(entry_text(v, true, "type"), entry_text(seen->first, true, "type")))
		seen->disagree = true;
}

/* The decision table's conditions for a success, checked on the body with json-c
 * directly: one JSON object, no non-null error or errorDetails member, and in its
 * `modification` / `modifications` at least one entry naming our modificationId
 * exactly, all of them agreeing and with a status that confirms the kind. */
static bool body_confirms(const char *body, size_t len, const char *id, enum mod_kind kind)
{
	struct json_tokener *tok = json_tokener_new_ex(64);
	FUZZ_CHECK(tok != NULL);
	struct json_object *v = json_tokener_parse_ex(tok, body, (int)len);
	bool yes = v != NULL && json_tokener_get_error(tok) == json_tokener_success &&
	           json_object_is_type(v, json_type_object);
	struct json_object *err = NULL;
	if (yes && json_object_object_get_ex(v, "error", &err) && err != NULL)
		yes = false;
	if (yes && json_object_object_get_ex(v, "errorDetails", &err) && err != NULL)
		yes = false;
	struct entries_seen seen = {.all_confirm = true};
	struct json_object *m = NULL;
	if (yes && json_object_object_get_ex(v, "modification", &m))
		collect_entries(m, id, kind, 0, &seen);
	if (yes && json_object_object_get_ex(v, "modifications", &m))
		collect_entries(m, id, kind, 0, &seen);
	yes = yes && seen.count > 0 && seen.all_confirm && !seen.disagree;
	json_object_put(v);
	json_tokener_free(tok);
	return yes;
}

/* Checks that the state, alert and counting agree with the result. */
static void check_result_fields(enum outcome_result r, const struct outcome *o)
{
	static const char *const states[OUTCOME_RESULT_COUNT] = {
	    "succeeded", "refused", "pending", "needs_attention", "pending", NULL};
	FUZZ_CHECK((unsigned)r < OUTCOME_RESULT_COUNT && r != OUTCOME_REFUSED_LOCALLY);
	FUZZ_CHECK(o->state != NULL && strcmp(o->state, states[r]) == 0);
	FUZZ_CHECK(o->counted == (r != OUTCOME_AUTH_REJECTED));
	bool alerted = r == OUTCOME_REFUSED || r == OUTCOME_NEEDS_ATTENTION;
	FUZZ_CHECK((o->alert_kind != NULL) == alerted);
	FUZZ_CHECK((o->alert_severity != NULL) == alerted);
	FUZZ_CHECK(r == OUTCOME_SUCCEEDED || o->reason != NULL);
}

/* Checks the result against what the transport saw. */
static void check_result_cause(enum outcome_result r, const struct fuzz_case *fc,
                               const struct outcome_policy *pol, const struct outcome *o)
{
	const struct outcome_answer *a = &fc->answer;
	bool clean = !a->transport_error && !a->timed_out;
	if (r == OUTCOME_SUCCEEDED)
		FUZZ_CHECK(
		    clean && a->http_status >= 200 && a->http_status <= 299 &&
		    body_confirms(a->body, a->body_len, fc->claim.modification_id, fc->claim.kind));
	if (r == OUTCOME_REFUSED)
		FUZZ_CHECK(clean && a->http_status >= 400 && a->http_status <= 499);
	if (r == OUTCOME_AUTH_REJECTED)
		FUZZ_CHECK(clean && (a->http_status == 401 || a->http_status == 407));
	bool has_deadline = fc->claim.kind == MOD_CAPTURE;
	if (r == OUTCOME_NEEDS_ATTENTION)
		FUZZ_CHECK(fc->claim.attempts + 1 >= pol->max_attempts ||
		           (has_deadline && fc->claim.deadline_ms <= NOW_MS));
	if (r == OUTCOME_RETRY) {
		int64_t cap = pol->retry_max_ms > CLASSIFY_RETRY_AFTER_MAX_MS
		                  ? pol->retry_max_ms
		                  : CLASSIFY_RETRY_AFTER_MAX_MS;
		FUZZ_CHECK(o->retry_delay_ms >= 0 && o->retry_delay_ms <= cap);
		int64_t latest = fc->claim.deadline_ms - OUTCOME_DEADLINE_MARGIN_MS - NOW_MS;
		if (has_deadline)
			FUZZ_CHECK(o->retry_delay_ms <= (latest > 0 ? latest : 0));
	}
	if (r != OUTCOME_RETRY)
		FUZZ_CHECK(o->retry_delay_ms == 0);
}

/* Checks that a body that is well-formed UTF-8 (NUL bytes allowed, as characters of
 * their own) is kept as it came without its NULs, whole or cut between characters at
 * the size limit. */
static void check_kept_body(const struct outcome_answer *a, const char *kept)
{
	FUZZ_CHECK(kept != NULL);
	if (!utf8_clean((const unsigned char *)a->body, a->body_len, true))
		return;
	char *bare = xmalloc(a->body_len + 1);
	size_t n = 0;
	for (size_t i = 0; i < a->body_len; i++) {
		if (a->body[i] != '\0')
			bare[n++] = a->body[i];
	}
	size_t k = strlen(kept);
	if (n <= OUTCOME_MAX_STORED_RESPONSE)
		FUZZ_CHECK(k == n);
	else
		FUZZ_CHECK(k > OUTCOME_MAX_STORED_RESPONSE - 4);
	FUZZ_CHECK(memcmp(kept, bare, k) == 0);
	free(bare);
}

/* Checks what the outcome stores: the claim's identity and storable gateway text. */
static void check_stored(const struct fuzz_case *fc, const struct outcome *o)
{
	const struct claim *c = &fc->claim;
	const struct outcome_answer *a = &fc->answer;
	FUZZ_CHECK(strcmp(o->modification_id, c->modification_id) == 0);
	FUZZ_CHECK(strcmp(o->order_id, c->order_id) == 0);
	FUZZ_CHECK(o->kind == c->kind && o->generation == c->generation);
	FUZZ_CHECK(o->http_status == a->http_status);
	if (a->http_status == 0 || a->body_len == 0)
		FUZZ_CHECK(o->response_body == NULL);
	check_storable(o->response_body, OUTCOME_MAX_STORED_RESPONSE);
	check_storable(o->reason, OUTCOME_MAX_STORED_REASON);
	check_storable(o->payment_status, OUTCOME_MAX_STORED_FIELD);
	check_storable(o->reconciliation_reference_id, OUTCOME_MAX_STORED_FIELD);
	if (a->http_status > 0 && a->body_len > 0)
		check_kept_body(a, o->response_body);
}

/* Checks that deciding the same answer again gives the same outcome. */
static void check_repeatable(const struct outcome_policy *pol, const struct fuzz_case *fc,
                             uint64_t random, enum outcome_result r, const struct outcome *o)
{
	struct outcome again;
	enum outcome_result r2 =
	    outcome_decide(pol, &fc->claim, &fc->answer, NOW_MS, random, &again);
	FUZZ_CHECK(r2 == r && strcmp(again.state, o->state) == 0);
	FUZZ_CHECK(same_text(again.reason, o->reason));
	FUZZ_CHECK(same_text(again.response_body, o->response_body));
	FUZZ_CHECK(same_text(again.payment_status, o->payment_status));
	FUZZ_CHECK(same_text(again.reconciliation_reference_id, o->reconciliation_reference_id));
	FUZZ_CHECK(again.retry_delay_ms == o->retry_delay_ms && again.counted == o->counted);
	outcome_clear(&again);
}

/* True when two optional texts are equal (both NULL counts). */
static bool same_or_null(const char *a, const char *b)
{
	return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

/* Checks that a body the scan takes is one json-c's tree takes and reads the same. */
static void check_scan_agrees(const struct fuzz_case *fc)
{
	struct gw_response scan, tree;
	const struct outcome_answer *a = &fc->answer;
	const char *id = fc->claim.modification_id;
	bool by_scan = response_parse_scan(a->body, a->body_len, id, &scan);
	bool by_tree = response_parse_tree(a->body, a->body_len, id, &tree);
	if (by_scan) {
		FUZZ_CHECK(by_tree);
		FUZZ_CHECK(same_or_null(scan.payment_status, tree.payment_status));
		FUZZ_CHECK(same_or_null(scan.reconciliation_reference_id,
		                        tree.reconciliation_reference_id));
		FUZZ_CHECK(same_or_null(scan.modification_status, tree.modification_status));
		FUZZ_CHECK(same_or_null(scan.modification_type, tree.modification_type));
		FUZZ_CHECK(same_or_null(scan.error, tree.error));
		FUZZ_CHECK(scan.has_error == tree.has_error);
		FUZZ_CHECK(scan.modification_entries == tree.modification_entries);
		FUZZ_CHECK(scan.entries_disagree == tree.entries_disagree);
	}
	response_free(&scan);
	response_free(&tree);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct outcome_policy pol = {
	    .retry_base_ms = 1000, .retry_max_ms = 600000, .max_attempts = 10};
	struct fuzz_case fc;
	decode(data, size, &fc);
	uint64_t random = input_hash(data, size);

	struct outcome o;
	enum outcome_result r = outcome_decide(&pol, &fc.claim, &fc.answer, NOW_MS, random, &o);
	check_result_fields(r, &o);
	check_result_cause(r, &fc, &pol, &o);
	check_stored(&fc, &o);
	check_repeatable(&pol, &fc, random, r, &o);
	check_scan_agrees(&fc);

	outcome_clear(&o);
	fuzz_case_free(&fc);
	return 0;
}
