#include "autoconfig.h"

#include "response.h"

#include "json_scan.h"
#include "money.h"
#include "response_internal.h"
#include "text.h"
#include "trim.h"
#include "xmalloc.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Deepest nesting accepted in a body, and in the search for our modification. */
#define RESPONSE_MAX_DEPTH 32

/* Spellings seen in SmartPay's examples, mapped word by word (words split on '_'). */
static const struct {
	const char *seen;
	const char *canonical;
} status_words[] = {
    {"CANCELED", "CANCELLED"},
    {"CANCELATION", "CANCELLATION"},
    {"AUTORIZATION", "AUTHORIZATION"},
};

/* The longest a spelling can grow: each word by one letter at most. */
static size_t normalised_cap(size_t len)
{
	return 2 * len + 1;
}

/* Writes the normalised spelling of status into out (normalised_cap of its length
 * bytes at least). */
static void normalise_into(const char *status, char *out)
{
	size_t o = 0;
	const char *p = status;

	for (;;) {
		size_t wlen = strcspn(p, "_");
		const char *word = p;
		size_t word_len = wlen;
		for (size_t i = 0; i < sizeof(status_words) / sizeof(status_words[0]); i++) {
			if (strlen(status_words[i].seen) == wlen &&
			    memcmp(p, status_words[i].seen, wlen) == 0) {
				word = status_words[i].canonical;
				word_len = strlen(word);
				break;
			}
		}
		memcpy(out + o, word, word_len);
		o += word_len;
		p += wlen;
		if (*p == '\0')
			break;
		out[o++] = *p++;
	}
	out[o] = '\0';
}

char *response_normalise_status(const char *status)
{
	char *out = xmalloc(normalised_cap(strlen(status)));

	normalise_into(status, out);
	return out;
}

bool response_normalise_status_into(const char *status, char *out, size_t cap)
{
	if (normalised_cap(strlen(status)) > cap)
		return false;
	normalise_into(status, out);
	return true;
}

/* Returns a member of an object, or NULL when v is not an object or lacks the key. */
static struct json_object *member(struct json_object *v, const char *key)
{
	struct json_object *m = NULL;

	if (v == NULL || !json_object_is_type(v, json_type_object))
		return NULL;
	if (!json_object_object_get_ex(v, key, &m))
		return NULL;
	return m;
}

/* Returns a string member's bytes and length (they may hold NULs), or NULL when absent
 * or not a string. */
static const char *raw_member(struct json_object *v, const char *key, size_t *len)
{
	struct json_object *m = member(v, key);
	int n;

	if (m == NULL || !json_object_is_type(m, json_type_string))
		return NULL;
	n = json_object_get_string_len(m);
	*len = n > 0 ? (size_t)n : 0;
	return json_object_get_string(m);
}

/* Returns a string member as text (NUL and ill-formed UTF-8 read as U+FFFD), or NULL
 * when absent or not a string. */
static char *text_member(struct json_object *v, const char *key)
{
	size_t len;
	const char *raw = raw_member(v, key, &len);

	return raw != NULL ? text_storable(raw, len, TEXT_UNLIMITED, TEXT_NUL_REPLACE) : NULL;
}

/* Returns a status member in its normalised spelling, or NULL. */
static char *status_member(struct json_object *v, const char *key)
{
	char *text = text_member(v, key);
	char *status;

	if (text == NULL)
		return NULL;
	status = response_normalise_status(text);
	free(text);
	return status;
}

/* True when two optional texts are equal ignoring ASCII case (both NULL counts). */
static bool same_text(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcasecmp(a, b) == 0;
}

/* The entries naming our modification id, as either reading counts them. */
struct entry_tally {
	const char *id;
	size_t id_len;
	char *status, *type; /* of the first entry */
	size_t entries;
	bool disagree;
};

/* Counts one entry that names our id (status and type taken): true for the first, whose
 * spellings are kept; a later one is compared with it. */
static bool tally_entry(struct entry_tally *t, char *status, char *type)
{
	if (t->entries++ == 0) {
		t->status = status;
		t->type = type;
		return true;
	}
	if (!same_text(t->status, status) || !same_text(t->type, type))
		t->disagree = true;
	free(status);
	free(type);
	return false;
}

/* Starts a tally for the modification id (NULL or empty: none is searched for); false
 * when there is nothing to search for. */
static bool tally_start(struct entry_tally *t, const char *modification_id)
{
	memset(t, 0, sizeof(*t));
	if (modification_id == NULL || modification_id[0] == '\0')
		return false;
	t->id = modification_id;
	t->id_len = strlen(modification_id);
	return true;
}

/* Hands the tally's counts and spellings to the answer read. */
static void tally_into(const struct entry_tally *t, struct gw_response *out)
{
	out->modification_entries = t->entries;
	out->entries_disagree = t->disagree;
	out->modification_status = t->status;
	out->modification_type = t->type;
}

/* What the search for our modification has found so far. */
struct mod_search {
	struct entry_tally t;
	struct json_object *first; /* the first entry naming our id */
};

/* Notes one entry that names our id: the first is kept, later ones compared with it. */
static void note_entry(struct mod_search *ms, struct json_object *entry)
{
	if (tally_entry(&ms->t, status_member(entry, "status"),
	                status_member(member(entry, "modificationData"), "type")))
		ms->first = entry;
}

/* Visits every modification entry in an entry object or an array of entries (arrays
 * may nest) and notes those whose modificationData.modificationId is exactly ours. */
static void find_modifications(struct json_object *v, struct mod_search *ms, int depth)
{
	if (v == NULL || depth > RESPONSE_MAX_DEPTH)
		return;
	if (json_object_is_type(v, json_type_object)) {
		size_t len;
		const char *mid = raw_member(member(v, "modificationData"), "modificationId", &len);
		if (mid != NULL && len == ms->t.id_len && memcmp(mid, ms->t.id, len) == 0)
			note_entry(ms, v);
		return;
	}
	if (json_object_is_type(v, json_type_array)) {
		size_t n = json_object_array_length(v);
		for (size_t i = 0; i < n; i++)
			find_modifications(json_object_array_get_idx(v, i), ms, depth + 1);
	}
}

/* Appends text (taken; NULL and "" add nothing) to *acc, joined with "; ". */
static void join_text(char **acc, char *text)
{
	char *joined;

	if (text == NULL || text[0] == '\0') {
		free(text);
		return;
	}
	if (*acc == NULL) {
		*acc = text;
		return;
	}
	joined = xasprintf("%s; %s", *acc, text);
	free(*acc);
	free(text);
	*acc = joined;
}

/* Appends the text of an error-ish member to *acc, joined with "; ". */
static void join_error(char **acc, struct json_object *v)
{
	char *text;

	if (v == NULL || json_object_is_type(v, json_type_null))
		return;
	if (json_object_is_type(v, json_type_string)) {
		int n = json_object_get_string_len(v);
		text = text_storable(json_object_get_string(v), n > 0 ? (size_t)n : 0,
		                     TEXT_UNLIMITED, TEXT_NUL_REPLACE);
	} else {
		const char *json = json_object_to_json_string_ext(
		    v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		text = json != NULL
		           ? text_storable(json, strlen(json), TEXT_UNLIMITED, TEXT_NUL_REPLACE)
		           : NULL;
	}
	join_text(acc, text);
}

/* True when v is present and not JSON null. */
static bool present(struct json_object *v)
{
	return v != NULL && !json_object_is_type(v, json_type_null);
}

/* Parses the body into a json-c object; NULL unless it is exactly one JSON object
 * (surrounding whitespace allowed). */
static struct json_object *parse_object(const char *body, size_t len)
{
	struct json_tokener *tok;
	struct json_object *obj;
	size_t end;

	if (body == NULL || len == 0 || len > INT_MAX)
		return NULL;
	tok = json_tokener_new_ex(RESPONSE_MAX_DEPTH);
	if (tok == NULL)
		return NULL;
	obj = json_tokener_parse_ex(tok, body, (int)len);
	if (obj == NULL || json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(obj);
		json_tokener_free(tok);
		return NULL;
	}
#if defined(JSON_C_VERSION_NUM) && JSON_C_VERSION_NUM >= ((0 << 16) | (15 << 8))
	end = json_tokener_get_parse_end(tok);
#else
	end = (size_t)tok->char_offset;
#endif
	json_tokener_free(tok);
	if (end < len && trim_start_len(body + end, len - end, " \t\r\n") != len - end) {
		json_object_put(obj);
		return NULL;
	}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return NULL;
	}
	return obj;
}

bool response_parse_tree(const char *body, size_t len, const char *modification_id,
                         struct gw_response *out)
{
	struct json_object *root;
	struct mod_search ms;
	char *rrid = NULL;

	memset(out, 0, sizeof(*out));
	root = parse_object(body, len);
	if (root == NULL)
		return false;

	out->payment_status = status_member(root, "paymentStatus");
	ms.first = NULL;
	if (tally_start(&ms.t, modification_id)) {
		find_modifications(member(root, "modification"), &ms, 0);
		find_modifications(member(root, "modifications"), &ms, 0);
	}
	tally_into(&ms.t, out);
	if (ms.first != NULL)
		rrid =
		    text_member(member(ms.first, "modificationData"), "reconciliationReferenceId");
	if (rrid == NULL || rrid[0] == '\0') {
		free(rrid);
		rrid = text_member(root, "reconciliationReferenceId");
	}
	if (rrid != NULL && rrid[0] == '\0') {
		free(rrid);
		rrid = NULL;
	}
	out->reconciliation_reference_id = rrid;
	out->has_error = present(member(root, "error")) || present(member(root, "errorDetails"));
	join_error(&out->error, member(root, "error"));
	join_error(&out->error, member(root, "errorDetails"));
	join_error(&out->error, member(root, "message"));
	json_object_put(root);
	return true;
}

/* ---- the scan: the same reading of strict JSON answers, without a tree ---- */

/* The members of an answer's top level that are read. */
enum {
	TOP_PAYMENT_STATUS,
	TOP_MODIFICATION,
	TOP_MODIFICATIONS,
	TOP_REFERENCE,
	TOP_ERROR,
	TOP_ERROR_DETAILS,
	TOP_MESSAGE,
	TOP_KEYS
};
static const char *const top_keys[TOP_KEYS] = {
    "paymentStatus", "modification", "modifications", "reconciliationReferenceId",
    "error",         "errorDetails", "message"};

/* The members of an entry that are read, and of its modificationData. */
enum { ENTRY_DATA, ENTRY_STATUS, ENTRY_KEYS };
static const char *const entry_keys[ENTRY_KEYS] = {"modificationData", "status"};
enum { DATA_ID, DATA_TYPE, DATA_REFERENCE, DATA_KEYS };
static const char *const data_keys[DATA_KEYS] = {"modificationId", "type",
                                                 "reconciliationReferenceId"};

/* A string value as text (NUL and ill-formed UTF-8 read as U+FFFD, as text_member), or
 * NULL when v is absent or not a string. */
static char *span_text(struct json_span v)
{
	size_t len;
	char *owned, *text;
	const char *s;

	if (json_scan_kind(v) != JSON_SCAN_STRING)
		return NULL;
	s = json_scan_string(v, &len, &owned);
	text = text_storable(s, len, TEXT_UNLIMITED, TEXT_NUL_REPLACE);
	free(owned);
	return text;
}

/* A status value in its normalised spelling (as status_member), or NULL. */
static char *span_status(struct json_span v)
{
	char *text = span_text(v);
	char *status;

	if (text == NULL)
		return NULL;
	status = response_normalise_status(text);
	free(text);
	return status;
}

/* True when v is a string of exactly the id's bytes. */
static bool span_is(struct json_span v, const char *id, size_t id_len)
{
	size_t len;
	char *owned;
	const char *s;
	bool same;

	if (json_scan_kind(v) != JSON_SCAN_STRING)
		return false;
	s = json_scan_string(v, &len, &owned);
	same = len == id_len && memcmp(s, id, len) == 0;
	free(owned);
	return same;
}

/* What the scan's search for our modification has found so far (as struct mod_search). */
struct scan_search {
	struct entry_tally t;
	bool found;
	struct json_span
	    reference; /* the first entry's modificationData.reconciliationReferenceId */
};

/* Notes one entry that names our id, as note_entry does. */
static void scan_note(struct scan_search *ss, struct json_span status_v, struct json_span type_v,
                      struct json_span reference)
{
	if (tally_entry(&ss->t, span_status(status_v), span_status(type_v))) {
		ss->found = true;
		ss->reference = reference;
	}
}

/* Visits the entries of v as find_modifications does; false when an entry or its
 * modificationData names a member that is read twice. */
static bool scan_modifications(struct json_span v, struct scan_search *ss)
{
	struct json_span entry[ENTRY_KEYS], data[DATA_KEYS], element;
	const char *pos = NULL;

	switch (json_scan_kind(v)) {
	case JSON_SCAN_OBJECT:
		if (!json_scan_members(v, entry_keys, ENTRY_KEYS, entry) ||
		    !json_scan_members(entry[ENTRY_DATA], data_keys, DATA_KEYS, data))
			return false;
		if (span_is(data[DATA_ID], ss->t.id, ss->t.id_len))
			scan_note(ss, entry[ENTRY_STATUS], data[DATA_TYPE], data[DATA_REFERENCE]);
		return true;
	case JSON_SCAN_ARRAY:
		while (json_scan_next(v, &pos, &element)) {
			if (!scan_modifications(element, ss))
				return false;
		}
		return true;
	default:
		return true;
	}
}

/* True when the error-ish members are absent, null or strings: json-c writes any other
 * value back as JSON text, which only the tree path does. */
static bool scan_errors_plain(const struct json_span *top)
{
	for (int k = TOP_ERROR; k <= TOP_MESSAGE; k++) {
		enum json_scan_kind kind = json_scan_kind(top[k]);
		if (kind != JSON_SCAN_ABSENT && kind != JSON_SCAN_NULL && kind != JSON_SCAN_STRING)
			return false;
	}
	return true;
}

bool response_parse_scan(const char *body, size_t len, const char *modification_id,
                         struct gw_response *out)
{
	struct json_span top[TOP_KEYS];
	struct scan_search ss;
	char *rrid = NULL;

	memset(out, 0, sizeof(*out));
	memset(&ss, 0, sizeof(ss));
	if (body == NULL || len == 0 || len > INT_MAX ||
	    !json_scan_document(body, len, top_keys, TOP_KEYS, top) || !scan_errors_plain(top))
		return false;
	if (tally_start(&ss.t, modification_id) &&
	    (!scan_modifications(top[TOP_MODIFICATION], &ss) ||
	     !scan_modifications(top[TOP_MODIFICATIONS], &ss))) {
		free(ss.t.status);
		free(ss.t.type);
		return false;
	}
	out->payment_status = span_status(top[TOP_PAYMENT_STATUS]);
	tally_into(&ss.t, out);
	if (ss.found)
		rrid = span_text(ss.reference);
	if (rrid == NULL || rrid[0] == '\0') {
		free(rrid);
		rrid = span_text(top[TOP_REFERENCE]);
	}
	if (rrid != NULL && rrid[0] == '\0') {
		free(rrid);
		rrid = NULL;
	}
	out->reconciliation_reference_id = rrid;
	out->has_error = json_scan_kind(top[TOP_ERROR]) == JSON_SCAN_STRING ||
	                 json_scan_kind(top[TOP_ERROR_DETAILS]) == JSON_SCAN_STRING;
	join_text(&out->error, span_text(top[TOP_ERROR]));
	join_text(&out->error, span_text(top[TOP_ERROR_DETAILS]));
	join_text(&out->error, span_text(top[TOP_MESSAGE]));
	return true;
}

bool response_parse(const char *body, size_t len, const char *modification_id,
                    struct gw_response *out)
{
	/* a gateway's usual answer is strict JSON, read by the scan (json-c's tree, its
	 * objects, hash tables and strings, was about 13% of the daemon's CPU per capture);
	 * json-c reads whatever the scan does not take */
	return response_parse_scan(body, len, modification_id, out) ||
	       response_parse_tree(body, len, modification_id, out);
}

void response_free(struct gw_response *r)
{
	if (r == NULL)
		return;
	free(r->payment_status);
	free(r->reconciliation_reference_id);
	free(r->modification_status);
	free(r->modification_type);
	free(r->error);
	memset(r, 0, sizeof(*r));
}

/* A growing list of history entries. */
struct entry_list {
	struct gw_entry *items;
	size_t n, cap;
	const char *currency; /* the transaction's, for entries without their own */
};

/* Reads an entry's modificationAmount exactly (its source text through money_parse). */
static void entry_amount(struct json_object *amount_obj, struct gw_entry *e)
{
	struct json_object *a = member(amount_obj, "amount");
	const char *why;

	if (e->currency == NULL || a == NULL ||
	    !(json_object_is_type(a, json_type_double) || json_object_is_type(a, json_type_int) ||
	      json_object_is_type(a, json_type_string)))
		return;
	e->has_amount = money_parse(json_object_get_string(a), e->currency, &e->amount_minor, &why);
}

/* Appends one entry object (one with modificationData) to the list. */
static void add_entry(struct entry_list *l, struct json_object *v)
{
	struct json_object *data = member(v, "modificationData");
	struct json_object *amount = member(v, "modificationAmount");
	struct gw_entry *e;

	if (data == NULL || !json_object_is_type(data, json_type_object))
		return;
	l->items = xgrow(l->items, &l->cap, l->n + 1, sizeof(*l->items));
	e = &l->items[l->n++];
	memset(e, 0, sizeof(*e));
	e->modification_id = text_member(data, "modificationId");
	e->type = status_member(data, "type");
	e->status = status_member(v, "status");
	e->currency = text_member(amount, "currencyCode");
	if (e->currency == NULL && l->currency != NULL)
		e->currency = xstrdup(l->currency);
	entry_amount(amount, e);
}

/* Collects every entry of an entry object or an array of entries (arrays may nest). */
static void collect_entries(struct json_object *v, struct entry_list *l, int depth)
{
	if (v == NULL || depth > RESPONSE_MAX_DEPTH)
		return;
	if (json_object_is_type(v, json_type_object)) {
		add_entry(l, v);
		return;
	}
	if (json_object_is_type(v, json_type_array)) {
		size_t n = json_object_array_length(v);
		for (size_t i = 0; i < n; i++)
			collect_entries(json_object_array_get_idx(v, i), l, depth + 1);
	}
}

bool response_parse_history(const char *body, size_t len, struct gw_history *out)
{
	struct json_object *root, *overview;
	struct entry_list l;

	memset(out, 0, sizeof(*out));
	root = parse_object(body, len);
	if (root == NULL)
		return false;
	overview = member(root, "transactionOverview");
	out->payment_status = status_member(root, "paymentStatus");
	out->transaction_id = text_member(overview, "transactionId");
	out->currency = text_member(overview, "currencyCode");
	out->has_error = present(member(root, "error")) || present(member(root, "errorDetails"));
	memset(&l, 0, sizeof(l));
	l.currency = out->currency;
	collect_entries(member(root, "modification"), &l, 0);
	collect_entries(member(root, "modifications"), &l, 0);
	out->entries = l.items;
	out->nentries = l.n;
	json_object_put(root);
	return true;
}

void response_history_free(struct gw_history *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->nentries; i++) {
		free(h->entries[i].modification_id);
		free(h->entries[i].type);
		free(h->entries[i].status);
		free(h->entries[i].currency);
	}
	free(h->entries);
	free(h->payment_status);
	free(h->transaction_id);
	free(h->currency);
	memset(h, 0, sizeof(*h));
}
