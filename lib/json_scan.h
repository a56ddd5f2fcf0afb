/* A read-only scan of strict JSON text for the few members an answer is read for: no
 * tree, and a string is copied only when it is asked for and holds an escape. It takes
 * a strict subset of what json-c's lenient parser takes, on which both read the same
 * values; the caller parses anything else with json-c. Pure. */
#ifndef SP_JSON_SCAN_H
#define SP_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>

/* Deepest nesting the scan takes (json-c's limit for answers is 32). */
#define JSON_SCAN_MAX_DEPTH 16

/* One JSON value's text inside a scanned document; p is NULL when absent. */
struct json_span {
	const char *p;
	size_t len;
};

/* What a value is, from its first character. */
enum json_scan_kind {
	JSON_SCAN_ABSENT,
	JSON_SCAN_NULL,
	JSON_SCAN_STRING,
	JSON_SCAN_OBJECT,
	JSON_SCAN_ARRAY,
	JSON_SCAN_OTHER /* a number, true or false */
};

/* Checks that the text is one object with only spaces, tabs and line breaks around it,
 * all of it in the subset, and finds the values of the n keys among its members
 * (out[i].p NULL for a key that is absent; a key written with an escape matches none).
 * False when the text is not in the subset (RFC 8259 JSON without \u escapes or control
 * characters in strings, without numbers that have an exponent or more than 15
 * characters, nested at most JSON_SCAN_MAX_DEPTH deep) or names one of the keys twice
 * (which of the two json-c keeps is not the scan's to decide). */
bool json_scan_document(const char *text, size_t len, const char *const *keys, size_t n,
                        struct json_span *out) __attribute__((warn_unused_result));

/* The kind of a value found by the scan. */
enum json_scan_kind json_scan_kind(struct json_span v);

/* json_scan_document's search for keys, in an object value found by the scan. False
 * when one of the keys appears twice. */
bool json_scan_members(struct json_span object, const char *const *keys, size_t n,
                       struct json_span *out) __attribute__((warn_unused_result));

/* Steps through an array value found by the scan: *pos starts NULL; each call gives
 * the next element and true, false after the last. */
bool json_scan_next(struct json_span array, const char **pos, struct json_span *element);

/* The bytes of a string value found by the scan: pointing into the text when it has no
 * escape (*owned NULL), else decoded into *owned (malloc'd, the caller frees it). */
const char *json_scan_string(struct json_span v, size_t *len, char **owned);

#endif
