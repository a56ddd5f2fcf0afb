#include "autoconfig.h"

#include "hostile.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "xmalloc.h"

/* A proxy's error page, sent with 200 (html_200). */
static const char html_page[] =
    "<!DOCTYPE html>\n<html>\n<head><title>502 Bad Gateway</title></head>\n"
    "<body>\n<center><h1>502 Bad Gateway</h1></center>\n"
    "<hr><center>nginx</center>\n</body>\n</html>\n";

/* A proxy's error page in Windows-1252: bytes 0x80..0xff that are not UTF-8
 * (the strings are split where a hex escape is followed by a hex digit). */
static const char latin1_page[] =
    "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\">\n<html><head>"
    "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\">\n"
    "<title>Service indisponible</title></head>\n<body><h1>Service temporairement "
    "indisponible</h1>\n<p>Le serveur mandataire n\x92"
    "a pas pu joindre la passerelle de paiement \x96 r\xe9"
    "essayez plus tard.</p>\n<p>\x84"
    "Dienst vor\xfc"
    "bergehend nicht verf\xfc"
    "gbar\x93 \x80 Geb\xfc"
    "hr \xa9 2026 Proxy</p>\n</body></html>\n";

/* An error body holding NUL bytes (nul_body); its length is sizeof - 1. */
static const char nul_body[] =
    "{\"error\":\"upstream\0timeout\",\"errorDetails\":\"proxy\0\0error\"}\0";

/* 200 with an error and no modification (error_200). */
static const char error_body[] =
    "{\"error\":\"internal_error\",\"errorDetails\":\"the request could not be processed\"}";

/* The text that starts the padded modes' description, before the three-byte characters. */
static const char pad_intro[] = "{\"description\":\"Zahlung f\xc3\xbcr Bestellung ";

/* The Euro sign in UTF-8: the padding character. */
static const char euro[] = "\xe2\x82\xac";

bool sim_hostile_needs_template(enum sim_hostile_mode mode)
{
	switch (mode) {
	case SIM_HOSTILE_OTHER_ID:
	case SIM_HOSTILE_FAILED_STATUS:
	case SIM_HOSTILE_NUL_STATUS:
	case SIM_HOSTILE_NUL_ID:
	case SIM_HOSTILE_CUT_UTF8:
	case SIM_HOSTILE_LONG_UTF8:
		return true;
	default:
		return false;
	}
}

/* Fills *out with a copy of len bytes. */
static void set_body(struct sim_hostile_answer *out, const char *body, size_t len)
{
	out->body = xmalloc(len + 1);
	memcpy(out->body, body, len);
	out->body[len] = '\0';
	out->len = len;
}

/* Parses the template; an unreadable or missing one becomes an empty object. */
static struct json_object *parse_template(const char *template, size_t len)
{
	struct json_object *tree = NULL;
	if (template != NULL && len > 0) {
		struct json_tokener *tok = json_tokener_new();
		tree = json_tokener_parse_ex(tok, template, (int)len);
		json_tokener_free(tok);
	}
	if (tree != NULL && json_object_is_type(tree, json_type_object))
		return tree;
	json_object_put(tree);
	return json_object_new_object();
}

/* The modificationData of an entry, or NULL. */
static struct json_object *entry_data(struct json_object *entry)
{
	struct json_object *d;
	if (!json_object_is_type(entry, json_type_object) ||
	    !json_object_object_get_ex(entry, "modificationData", &d) ||
	    !json_object_is_type(d, json_type_object))
		return NULL;
	return d;
}

/* True when the entry names our_id (every entry does when our_id is NULL). */
static bool entry_is_ours(struct json_object *entry, const char *our_id)
{
	struct json_object *d = entry_data(entry), *id;
	if (d == NULL)
		return false;
	if (our_id == NULL)
		return true;
	return json_object_object_get_ex(d, "modificationId", &id) &&
	       json_object_is_type(id, json_type_string) &&
	       strcmp(json_object_get_string(id), our_id) == 0;
}

/* Collects the entries of `modification` and `modifications` that name our_id. */
static size_t our_entries(struct json_object *root, const char *our_id, struct json_object **out,
                          size_t cap)
{
	size_t n = 0;
	struct json_object *v;
	if (json_object_object_get_ex(root, "modification", &v) && entry_is_ours(v, our_id) &&
	    n < cap)
		out[n++] = v;
	if (json_object_object_get_ex(root, "modifications", &v) &&
	    json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v) && n < cap; i++) {
			struct json_object *e = json_object_array_get_idx(v, i);
			if (entry_is_ours(e, our_id))
				out[n++] = e;
		}
	}
	return n;
}

/* Replaces a string member by text + "\0" + tail (a string holding a NUL byte). */
static void add_nul_tail(struct json_object *obj, const char *key, const char *tail)
{
	struct json_object *v;
	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return;
	size_t a = (size_t)json_object_get_string_len(v), b = strlen(tail);
	char *s = xmalloc(a + 1 + b);
	memcpy(s, json_object_get_string(v), a);
	s[a] = '\0';
	memcpy(s + a + 1, tail, b);
	json_object_object_add(obj, key, json_object_new_string_len(s, (int)(a + 1 + b)));
	free(s);
}

/* A version-4-shaped UUID drawn from rng (never one the daemon sent). */
static void rng_uuid(struct sim_rng *rng, char out[37])
{
	uint64_t a = sim_rng_next(rng), b = sim_rng_next(rng);
	snprintf(out, 37, "%08" PRIx32 "-%04" PRIx32 "-4%03" PRIx32 "-%04" PRIx32 "-%012" PRIx64,
	         (uint32_t)(a >> 32), (uint32_t)(a >> 16) & 0xffff, (uint32_t)a & 0xfff,
	         (uint32_t)(0x8000 | ((b >> 48) & 0x3fff)), b & UINT64_C(0xffffffffffff));
}

/* Applies a confirming-looking mode to one entry of our modification. */
static void mutate_entry(const struct sim_hostile *h, struct json_object *entry,
                         struct sim_rng *rng)
{
	struct json_object *data = entry_data(entry), *hist;
	char other[37];
	switch (h->mode) {
	case SIM_HOSTILE_OTHER_ID:
		rng_uuid(rng, other);
		json_object_object_add(data, "modificationId", json_object_new_string(other));
		break;
	case SIM_HOSTILE_FAILED_STATUS:
		json_object_object_add(entry, "status", json_object_new_string(h->failed_status));
		json_object_object_del(entry, "statusHistory");
		break;
	case SIM_HOSTILE_NUL_ID:
		add_nul_tail(data, "modificationId", "other");
		break;
	case SIM_HOSTILE_NUL_STATUS:
		add_nul_tail(entry, "status", "junk");
		if (json_object_object_get_ex(entry, "statusHistory", &hist) &&
		    json_object_is_type(hist, json_type_array)) {
			for (size_t i = 0; i < json_object_array_length(hist); i++) {
				struct json_object *e = json_object_array_get_idx(hist, i);
				if (json_object_is_type(e, json_type_object))
					add_nul_tail(e, "status", "junk");
			}
		}
		break;
	default:
		break;
	}
}

/* Serialises a tree into *out and puts it. */
static void set_tree(struct sim_hostile_answer *out, struct json_object *tree)
{
	size_t len;
	const char *text = json_object_to_json_string_length(
	    tree, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	set_body(out, text, len);
	json_object_put(tree);
}

/* other_id, failed_status, nul_status, nul_id: the template with our entries changed. */
static void mutated_answer(const struct sim_hostile *h, const char *template, size_t len,
                           const char *our_id, struct sim_rng *rng, struct sim_hostile_answer *out)
{
	struct json_object *tree = parse_template(template, len);
	struct json_object *entries[64];
	size_t n = our_entries(tree, our_id, entries, sizeof(entries) / sizeof(entries[0]));
	for (size_t i = 0; i < n; i++)
		mutate_entry(h, entries[i], rng);
	if (h->mode == SIM_HOSTILE_NUL_STATUS)
		add_nul_tail(tree, "paymentStatus", "junk");
	set_tree(out, tree);
}

/* cut_utf8, long_utf8: the template with a description of Euro signs in front, so
 * that byte SIM_HOSTILE_CUT_OFFSET is the second byte of one; cut_utf8 then ends
 * after the first two bytes of a later one. */
static void padded_answer(const struct sim_hostile *h, const char *template, size_t len,
                          struct sim_hostile_answer *out)
{
	struct json_object *tree = parse_template(template, len);
	json_object_object_del(tree, "description");
	size_t rest_len;
	const char *rest = json_object_to_json_string_length(
	    tree, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &rest_len);
	size_t intro = sizeof(pad_intro) - 1;
	/* ASCII filler so that a Euro sign starts at CUT_OFFSET - 1 */
	size_t filler = (SIM_HOSTILE_CUT_OFFSET - 1 - intro) % 3;
	size_t first = intro + filler;
	size_t count = (SIM_HOSTILE_CUT_OFFSET + 3 * 1024 - first) / 3;
	size_t cap = first + 3 * count + 2 + rest_len + 1;
	char *b = xmalloc(cap);
	size_t n = 0;
	memcpy(b, pad_intro, intro);
	n = intro;
	memset(b + n, 'x', filler);
	n += filler;
	for (size_t i = 0; i < count; i++, n += 3)
		memcpy(b + n, euro, 3);
	b[n++] = '"';
	if (rest_len > 2) {
		b[n++] = ',';
		memcpy(b + n, rest + 1, rest_len - 1);
		n += rest_len - 1;
	} else {
		b[n++] = '}';
	}
	b[n] = '\0';
	json_object_put(tree);
	if (h->mode == SIM_HOSTILE_CUT_UTF8) {
		/* inside the Euro sign that starts 512 characters after the one at the offset */
		n = SIM_HOSTILE_CUT_OFFSET - 1 + 3 * 512 + 2;
		b[n] = '\0';
	}
	out->body = b;
	out->len = n;
}

void sim_hostile_build(const struct sim_hostile *h, const char *template, size_t len,
                       const char *our_id, struct sim_rng *rng, struct sim_hostile_answer *out)
{
	memset(out, 0, sizeof(*out));
	out->status = h->status;
	out->content_type = "application/json";
	switch (h->mode) {
	case SIM_HOSTILE_ERROR_200:
		set_body(out, error_body, sizeof(error_body) - 1);
		break;
	case SIM_HOSTILE_EMPTY_202:
		set_body(out, "{}", 2);
		break;
	case SIM_HOSTILE_EMPTY_200:
		set_body(out, "", 0);
		break;
	case SIM_HOSTILE_HTML_200:
		out->content_type = "text/html";
		set_body(out, html_page, sizeof(html_page) - 1);
		break;
	case SIM_HOSTILE_LATIN1:
		out->content_type = "text/html; charset=windows-1252";
		set_body(out, latin1_page, sizeof(latin1_page) - 1);
		break;
	case SIM_HOSTILE_NUL_BODY:
		set_body(out, nul_body, sizeof(nul_body) - 1);
		break;
	case SIM_HOSTILE_CUT_UTF8:
	case SIM_HOSTILE_LONG_UTF8:
		padded_answer(h, template, len, out);
		break;
	case SIM_HOSTILE_OTHER_ID:
	case SIM_HOSTILE_FAILED_STATUS:
	case SIM_HOSTILE_NUL_STATUS:
	case SIM_HOSTILE_NUL_ID:
	case SIM_HOSTILE_MODE_COUNT:
		mutated_answer(h, template, len, our_id, rng, out);
		break;
	}
}

void sim_hostile_answer_free(struct sim_hostile_answer *a)
{
	free(a->body);
	a->body = NULL;
	a->len = 0;
}
