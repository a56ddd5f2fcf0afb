#include "autoconfig.h"

#include "response.h"

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

char *response_normalise_status(const char *status)
{
	size_t len = strlen(status);
	/* each word can grow by one letter at most */
	char *out = xmalloc(2 * len + 1);
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
	return out;
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

/* Returns a string member, or NULL when absent or not a string. */
static const char *string_member(struct json_object *v, const char *key)
{
	struct json_object *m = member(v, key);

	if (m == NULL || !json_object_is_type(m, json_type_string))
		return NULL;
	return json_object_get_string(m);
}

/* Finds the modification entry whose modificationData.modificationId is id, in an
 * entry object or an array of entries (arrays may nest). */
static struct json_object *find_modification(struct json_object *v, const char *id, int depth)
{
	if (v == NULL || depth > RESPONSE_MAX_DEPTH)
		return NULL;
	if (json_object_is_type(v, json_type_object)) {
		const char *mid = string_member(member(v, "modificationData"), "modificationId");
		if (mid != NULL && strcasecmp(mid, id) == 0)
			return v;
		return NULL;
	}
	if (json_object_is_type(v, json_type_array)) {
		size_t n = json_object_array_length(v);
		for (size_t i = 0; i < n; i++) {
			struct json_object *hit =
			    find_modification(json_object_array_get_idx(v, i), id, depth + 1);
			if (hit != NULL)
				return hit;
		}
	}
	return NULL;
}

/* Copies a status string in its normalised spelling; NULL stays NULL. */
static char *dup_status(const char *s)
{
	return s != NULL ? response_normalise_status(s) : NULL;
}

/* Appends the text of an error-ish member to *acc, joined with "; ". */
static void join_error(char **acc, struct json_object *v)
{
	const char *text;
	char *joined;

	if (v == NULL || json_object_is_type(v, json_type_null))
		return;
	if (json_object_is_type(v, json_type_string))
		text = json_object_get_string(v);
	else
		text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
		                                             JSON_C_TO_STRING_NOSLASHESCAPE);
	if (text == NULL || text[0] == '\0')
		return;
	if (*acc == NULL) {
		*acc = xstrdup(text);
		return;
	}
	joined = xasprintf("%s; %s", *acc, text);
	free(*acc);
	*acc = joined;
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
	for (; end < len; end++) {
		char c = body[end];
		if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			json_object_put(obj);
			return NULL;
		}
	}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return NULL;
	}
	return obj;
}

bool response_parse(const char *body, size_t len, const char *modification_id,
                    struct gw_response *out)
{
	struct json_object *root;
	struct json_object *mod = NULL;
	struct json_object *data;
	const char *rrid = NULL;

	memset(out, 0, sizeof(*out));
	root = parse_object(body, len);
	if (root == NULL)
		return false;

	out->payment_status = dup_status(string_member(root, "paymentStatus"));
	if (modification_id != NULL && modification_id[0] != '\0') {
		mod = find_modification(member(root, "modification"), modification_id, 0);
		if (mod == NULL)
			mod = find_modification(member(root, "modifications"), modification_id, 0);
	}
	if (mod != NULL) {
		data = member(mod, "modificationData");
		out->modification_status = dup_status(string_member(mod, "status"));
		out->modification_type = dup_status(string_member(data, "type"));
		rrid = string_member(data, "reconciliationReferenceId");
	}
	if (rrid == NULL || rrid[0] == '\0')
		rrid = string_member(root, "reconciliationReferenceId");
	if (rrid != NULL && rrid[0] != '\0')
		out->reconciliation_reference_id = xstrdup(rrid);
	join_error(&out->error, member(root, "error"));
	join_error(&out->error, member(root, "errorDetails"));
	join_error(&out->error, member(root, "message"));
	json_object_put(root);
	return true;
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
