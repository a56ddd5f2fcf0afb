#include "autoconfig.h"

#include "json_scan.h"

#include "xmalloc.h"

#include <string.h>

/* Longest number taken: json-c reads every shorter one without an exponent as the
 * number it is (an int64 or a finite double); longer ones it may refuse. */
#define JSON_SCAN_NUMBER_MAX 15

static const char *scan_value(const char *p, const char *end, int depth);

/* Skips the whitespace RFC 8259 allows between tokens. */
static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* True for the characters a backslash may escape in the subset (not 'u'). */
static bool simple_escape(char c)
{
	switch (c) {
	case '"':
	case '\\':
	case '/':
	case 'b':
	case 'f':
	case 'n':
	case 'r':
	case 't':
		return true;
	default:
		return false;
	}
}

/* True for a byte that stands for itself inside a string: not '"', '\\' or a control
 * character. */
static bool plain_byte(unsigned char c)
{
	return c >= 0x20 && c != '"' && c != '\\';
}

/* The end of the string whose opening quote is at p, or NULL when it leaves the
 * subset or the text; *escaped is set when it holds a backslash. */
static const char *scan_string(const char *p, const char *end, bool *escaped)
{
	for (p++; p < end; p++) {
		/* most of an answer's text: runs of plain bytes */
		while (p + 4 <= end && plain_byte((unsigned char)p[0]) &&
		       plain_byte((unsigned char)p[1]) && plain_byte((unsigned char)p[2]) &&
		       plain_byte((unsigned char)p[3]))
			p += 4;
		if (p >= end)
			break;
		unsigned char c = (unsigned char)*p;
		if (plain_byte(c))
			continue;
		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;
		if (c == '\\') {
			if (p + 1 >= end || !simple_escape(p[1]))
				return NULL;
			*escaped = true;
			p++;
		}
	}
	return NULL;
}

/* True for an ASCII digit. */
static bool digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The end of the number at p, or NULL when it is not one in the subset. */
static const char *scan_number(const char *p, const char *end)
{
	const char *start = p;

	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0') {
		p++;
	} else if (p < end && *p >= '1' && *p <= '9') {
		while (p < end && digit(*p))
			p++;
	} else {
		return NULL;
	}
	if (p < end && *p == '.') {
		const char *frac = ++p;
		while (p < end && digit(*p))
			p++;
		if (p == frac)
			return NULL;
	}
	if (p < end && (*p == 'e' || *p == 'E'))
		return NULL;
	return p - start <= JSON_SCAN_NUMBER_MAX ? p : NULL;
}

/* The end of the literal `word` at p, or NULL when another text is there. */
static const char *scan_literal(const char *p, const char *end, const char *word)
{
	size_t n = strlen(word);

	return (size_t)(end - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

/* The end of the object whose '{' is at p, or NULL; `keys` (n of them, may be 0) are
 * looked for among its members as json_scan_members says; *twice is set when one of
 * them appears again. */
static const char *scan_object(const char *p, const char *end, int depth, const char *const *keys,
                               size_t n, struct json_span *out, bool *twice)
{
	if (depth > JSON_SCAN_MAX_DEPTH)
		return NULL;
	p = skip_ws(p + 1, end);
	if (p < end && *p == '}')
		return p + 1;
	for (;;) {
		bool escaped = false;
		const char *key = p + 1;
		if (p >= end || *p != '"' || (p = scan_string(p, end, &escaped)) == NULL)
			return NULL;
		size_t key_len = (size_t)(p - 1 - key);
		p = skip_ws(p, end);
		if (p >= end || *p != ':')
			return NULL;
		const char *value = skip_ws(p + 1, end);
		if ((p = scan_value(value, end, depth)) == NULL)
			return NULL;
		for (size_t i = 0; i < n && !escaped; i++) {
			if (keys[i][0] != key[0] || strncmp(keys[i], key, key_len) != 0 ||
			    keys[i][key_len] != '\0')
				continue;
			if (out[i].p != NULL)
				*twice = true;
			out[i] = (struct json_span){value, (size_t)(p - value)};
			break;
		}
		p = skip_ws(p, end);
		if (p < end && *p == '}')
			return p + 1;
		if (p >= end || *p != ',')
			return NULL;
		p = skip_ws(p + 1, end);
	}
}

/* The end of the array whose '[' is at p, or NULL. */
static const char *scan_array(const char *p, const char *end, int depth)
{
	if (depth > JSON_SCAN_MAX_DEPTH)
		return NULL;
	p = skip_ws(p + 1, end);
	if (p < end && *p == ']')
		return p + 1;
	for (;;) {
		if ((p = scan_value(p, end, depth)) == NULL)
			return NULL;
		p = skip_ws(p, end);
		if (p < end && *p == ']')
			return p + 1;
		if (p >= end || *p != ',')
			return NULL;
		p = skip_ws(p + 1, end);
	}
}

/* The end of the value at p inside a container `depth` deep, or NULL when it is not
 * one in the subset. */
static const char *scan_value(const char *p, const char *end, int depth)
{
	bool escaped = false, twice = false;

	if (p >= end)
		return NULL;
	switch (*p) {
	case '{':
		return scan_object(p, end, depth + 1, NULL, 0, NULL, &twice);
	case '[':
		return scan_array(p, end, depth + 1);
	case '"':
		return scan_string(p, end, &escaped);
	case 't':
		return scan_literal(p, end, "true");
	case 'f':
		return scan_literal(p, end, "false");
	case 'n':
		return scan_literal(p, end, "null");
	default:
		return scan_number(p, end);
	}
}

bool json_scan_document(const char *text, size_t len, const char *const *keys, size_t n,
                        struct json_span *out)
{
	const char *end = text + len, *p;
	bool twice = false;

	for (size_t i = 0; i < n; i++)
		out[i] = (struct json_span){NULL, 0};
	if (text == NULL)
		return false;
	p = skip_ws(text, end);
	if (p >= end || *p != '{')
		return false;
	p = scan_object(p, end, 1, keys, n, out, &twice);
	return p != NULL && !twice && skip_ws(p, end) == end;
}

enum json_scan_kind json_scan_kind(struct json_span v)
{
	if (v.p == NULL || v.len == 0)
		return JSON_SCAN_ABSENT;
	switch (v.p[0]) {
	case 'n':
		return JSON_SCAN_NULL;
	case '"':
		return JSON_SCAN_STRING;
	case '{':
		return JSON_SCAN_OBJECT;
	case '[':
		return JSON_SCAN_ARRAY;
	default:
		return JSON_SCAN_OTHER;
	}
}

bool json_scan_members(struct json_span object, const char *const *keys, size_t n,
                       struct json_span *out)
{
	bool twice = false;

	for (size_t i = 0; i < n; i++)
		out[i] = (struct json_span){NULL, 0};
	if (json_scan_kind(object) != JSON_SCAN_OBJECT)
		return true;
	return scan_object(object.p, object.p + object.len, 1, keys, n, out, &twice) != NULL &&
	       !twice;
}

bool json_scan_next(struct json_span array, const char **pos, struct json_span *element)
{
	const char *end = array.p + array.len, *p, *value;

	if (json_scan_kind(array) != JSON_SCAN_ARRAY)
		return false;
	p = *pos != NULL ? *pos : skip_ws(array.p + 1, end);
	if (p >= end || *p == ']')
		return false;
	value = p;
	if ((p = scan_value(value, end, 1)) == NULL)
		return false;
	*element = (struct json_span){value, (size_t)(p - value)};
	p = skip_ws(p, end);
	if (p < end && *p == ',')
		p = skip_ws(p + 1, end);
	*pos = p;
	return true;
}

/* The byte a simple escape's letter stands for. */
static char unescape(char c)
{
	switch (c) {
	case 'b':
		return '\b';
	case 'f':
		return '\f';
	case 'n':
		return '\n';
	case 'r':
		return '\r';
	case 't':
		return '\t';
	default:
		return c; /* '"', '\\' and '/' stand for themselves */
	}
}

const char *json_scan_string(struct json_span v, size_t *len, char **owned)
{
	const char *s = v.p + 1;
	size_t n = v.len - 2, o = 0;
	char *out;

	*owned = NULL;
	if (memchr(s, '\\', n) == NULL) {
		*len = n;
		return s;
	}
	out = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++)
		out[o++] = s[i] == '\\' ? unescape(s[++i]) : s[i];
	out[o] = '\0';
	*len = o;
	*owned = out;
	return out;
}
