#include "autoconfig.h"

#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

/* A context for one asynchronous call. */
struct store_call *store_call_new(struct store *st, void *arg)
{
	struct store_call *c = xcalloc(1, sizeof(*c));
	c->st = st;
	c->arg = arg;
	struct store_call **head = store_calls_slot(st);
	c->next = *head;
	if (c->next)
		c->next->prev = c;
	*head = c;
	return c;
}

/* Unlinks a call context from its store's and frees it with its data. */
void store_call_free(struct store_call *c)
{
	if (c->data_free)
		c->data_free(c->data);
	if (c->prev)
		c->prev->next = c->next;
	else
		*store_calls_slot(c->st) = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

/* Queues one statement for the call, freeing the call when it cannot be queued. */
bool store_call_query(struct store_call *c, const char *sql, int nparams, const char *const *params,
                      pg_query_fn completion)
{
	bool ok = pg_conn_query(store_conn(c->st), sql, nparams, params, completion, c);
	if (!ok)
		store_call_free(c);
	return ok;
}

/* Queues a statement with binary parameters for the call, freeing the call when it
 * cannot be queued. */
bool store_call_query_params(struct store_call *c, const char *sql, int nparams,
                             const char *const *params, const int *lengths, const int *formats,
                             pg_query_fn completion)
{
	bool ok = pg_conn_query_params(store_conn(c->st), sql, nparams, params, lengths, formats,
	                               completion, c);
	if (!ok)
		store_call_free(c);
	return ok;
}

/* store_call_query_params for the named prepared statement `name` of `sql`. */
bool store_call_query_prepared(struct store_call *c, const char *name, const char *sql, int nparams,
                               const char *const *params, const int *lengths, const int *formats,
                               pg_query_fn completion)
{
	bool ok = pg_conn_query_prepared(store_conn(c->st), name, sql, nparams, params, lengths,
	                                 formats, completion, c);
	if (!ok)
		store_call_free(c);
	return ok;
}

/* Queues parameterless SQL for the call, freeing the call when it cannot be queued. */
bool store_call_exec(struct store_call *c, const char *sql, pg_query_fn completion)
{
	bool ok = pg_conn_exec(store_conn(c->st), sql, completion, c);
	if (!ok)
		store_call_free(c);
	return ok;
}

/* Reports the rows a statement touched to fn.done and frees the call. */
void store_call_done(PGresult *res, const char *error, void *arg)
{
	struct store_call *c = arg;
	if (c->fn.done)
		c->fn.done(error ? 0 : (size_t)atoll(PQcmdTuples(res)), error, c->arg);
	store_call_free(c);
}

/* An interval literal of `ms` milliseconds. */
const char *store_interval_text(int64_t ms, char out[STORE_INTERVAL_TEXT])
{
	snprintf(out, STORE_INTERVAL_TEXT, "%lld milliseconds", (long long)ms);
	return out;
}

/* An integer in decimal. */
const char *store_int_text(int64_t v, char out[STORE_INT_TEXT])
{
	snprintf(out, STORE_INT_TEXT, "%lld", (long long)v);
	return out;
}

/* A text[] literal with every element quoted. */
char *store_text_array(char *const *items, size_t n)
{
	char *out = NULL;
	size_t len = 0, cap = 0;
	xappend(&out, &len, &cap, "{", 1);
	for (size_t i = 0; i < n; i++) {
		xappend(&out, &len, &cap, i ? ",\"" : "\"", i ? 2 : 1);
		for (const char *s = items[i]; *s; s++) {
			if (*s == '"' || *s == '\\')
				xappend(&out, &len, &cap, "\\", 1);
			xappend(&out, &len, &cap, s, 1);
		}
		xappend(&out, &len, &cap, "\"", 1);
	}
	xappend(&out, &len, &cap, "}", 1);
	return out;
}

/* A bigint[] literal. */
char *store_int_array(const int64_t *v, size_t n)
{
	char *out = NULL;
	size_t len = 0, cap = 0;
	xappend(&out, &len, &cap, "{", 1);
	for (size_t i = 0; i < n; i++) {
		char num[STORE_INT_TEXT + 1];
		int w = snprintf(num, sizeof(num), "%s%lld", i ? "," : "", (long long)v[i]);
		xappend(&out, &len, &cap, num, (size_t)w);
	}
	xappend(&out, &len, &cap, "}", 1);
	return out;
}

/* The bytes of a header of a one-dimensional array: dimensions, null flag, element
 * type, length and lower bound. */
#define BIN_ARRAY_HEADER 20

/* Appends a 32-bit integer in network byte order. */
static void bin_put32(struct store_bin_array *a, uint32_t v)
{
	unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
	                      (unsigned char)(v >> 8), (unsigned char)v};
	xappend(&a->data, &a->len, &a->cap, b, sizeof(b));
}

/* Writes a 32-bit integer in network byte order at `at`. */
static void bin_set32(struct store_bin_array *a, size_t at, uint32_t v)
{
	unsigned char *p = (unsigned char *)a->data + at;
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* Starts an array: room for the header, filled by store_bin_array_finish. */
void store_bin_array_init(struct store_bin_array *a, uint32_t element_oid)
{
	*a = (struct store_bin_array){.element_oid = element_oid};
	for (int i = 0; i < BIN_ARRAY_HEADER / 4; i++)
		bin_put32(a, 0);
}

/* Appends a text element (its length, then its bytes) or a null (length -1). */
void store_bin_array_text(struct store_bin_array *a, const char *s)
{
	a->count++;
	if (s == NULL) {
		a->has_null = true;
		bin_put32(a, UINT32_MAX);
		return;
	}
	size_t n = strlen(s);
	bin_put32(a, (uint32_t)n);
	xappend(&a->data, &a->len, &a->cap, s, n);
}

/* Appends a bigint element in network byte order, or a null. */
void store_bin_array_int8(struct store_bin_array *a, int64_t v, bool null)
{
	a->count++;
	if (null) {
		a->has_null = true;
		bin_put32(a, UINT32_MAX);
		return;
	}
	uint64_t u = (uint64_t)v;
	bin_put32(a, 8);
	bin_put32(a, (uint32_t)(u >> 32));
	bin_put32(a, (uint32_t)u);
}

/* Appends a boolean element (one byte). */
void store_bin_array_bool(struct store_bin_array *a, bool v)
{
	a->count++;
	bin_put32(a, 1);
	unsigned char b = v ? 1 : 0;
	xappend(&a->data, &a->len, &a->cap, &b, 1);
}

/* Fills the header: one dimension of `count` elements from 1, or none when empty (an
 * empty array has no dimension: its header is 12 bytes). */
int store_bin_array_finish(struct store_bin_array *a)
{
	if (a->count == 0) {
		bin_set32(a, 0, 0);
		bin_set32(a, 4, 0);
		bin_set32(a, 8, a->element_oid);
		a->len = 12;
		return (int)a->len;
	}
	bin_set32(a, 0, 1);
	bin_set32(a, 4, a->has_null ? 1 : 0);
	bin_set32(a, 8, a->element_oid);
	bin_set32(a, 12, (uint32_t)a->count);
	bin_set32(a, 16, 1);
	return (int)a->len;
}

/* Frees the array's bytes. */
void store_bin_array_free(struct store_bin_array *a)
{
	free(a->data);
	*a = (struct store_bin_array){0};
}

/* Reads a nullable text field in place. */
const char *store_field_value(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* Copies a nullable text field. */
char *store_field_text(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return NULL;
	return xstrdup(PQgetvalue(res, row, col));
}

/* Reads a bigint field, 0 when null. */
int64_t store_field_int(const PGresult *res, int row, int col)
{
	return store_field_int_or(res, row, col, 0);
}

/* Reads a bigint field, `null_value` when null. */
int64_t store_field_int_or(const PGresult *res, int row, int col, int64_t null_value)
{
	if (PQgetisnull(res, row, col))
		return null_value;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* Reads a boolean field. */
bool store_field_bool(const PGresult *res, int row, int col)
{
	return strcmp(PQgetvalue(res, row, col), "t") == 0;
}

/* Tells a statement the database refused from a failure that passes. */
bool store_result_rejected(const PGresult *res)
{
	if (res == NULL)
		return false;
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state == NULL || strlen(state) != 5)
		return false;
	static const char *const transient[] = {"08", "25", "40", "53", "55", "57", "58", "XX"};
	for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
		if (strncmp(state, transient[i], 2) == 0)
			return false;
	return true;
}
