/* lib/store_internal: the store layer's parameter texts and result readers. */
#include "autoconfig.h"

#include "config.h"
#include "store_internal.h"
#include "testutil.h"

#include <check.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One text[] literal case: the items and the literal. */
static const struct {
	const char *items[3];
	size_t n;
	const char *want;
} text_cases[] = {
    {{NULL}, 0, "{}"},
    {{"shipped"}, 1, "{\"shipped\"}"},
    {{"shipped", "delivered"}, 2, "{\"shipped\",\"delivered\"}"},
    {{"a\"b", "c\\d", ""}, 3, "{\"a\\\"b\",\"c\\\\d\",\"\"}"},
    {{"with space", "comma,in", "{braces}"}, 3, "{\"with space\",\"comma,in\",\"{braces}\"}"},
};

START_TEST(text_arrays_quote_and_escape_every_item)
{
	for (size_t i = 0; i < sizeof(text_cases) / sizeof(text_cases[0]); i++) {
		char *got = store_text_array((char *const *)text_cases[i].items, text_cases[i].n);
		ck_assert_msg(strcmp(got, text_cases[i].want) == 0, "case %zu: got %s", i, got);
		free(got);
	}
}
END_TEST

/* The bytes of a binary array, from a C string of escapes (the length is given). */
static void expect_bytes(struct store_bin_array *a, const char *want, size_t want_len)
{
	int len = store_bin_array_finish(a);
	ck_assert_int_eq(len, (int)want_len);
	ck_assert_msg(memcmp(a->data, want, want_len) == 0, "bytes differ");
	store_bin_array_free(a);
}

START_TEST(binary_arrays_as_array_recv_reads_them)
{
	struct store_bin_array a;
	/* text[]: one dimension, a null among the elements, each its length and bytes */
	store_bin_array_init(&a, STORE_OID_TEXT);
	store_bin_array_text(&a, "a\"b");
	store_bin_array_text(&a, NULL);
	store_bin_array_text(&a, "");
	static const char text[] = "\0\0\0\1"
	                           "\0\0\0\1"
	                           "\0\0\0\x19"
	                           "\0\0\0\3"
	                           "\0\0\0\1"
	                           "\0\0\0\3a\"b"
	                           "\xff\xff\xff\xff"
	                           "\0\0\0\0";
	expect_bytes(&a, text, sizeof(text) - 1);
	/* bigint[] in network byte order, no null flag without a null */
	store_bin_array_init(&a, STORE_OID_INT8);
	store_bin_array_int8(&a, -2, false);
	store_bin_array_int8(&a, 0x0102030405060708, false);
	static const char int8[] = "\0\0\0\1"
	                           "\0\0\0\0"
	                           "\0\0\0\x14"
	                           "\0\0\0\2"
	                           "\0\0\0\1"
	                           "\0\0\0\x08\xff\xff\xff\xff\xff\xff\xff\xfe"
	                           "\0\0\0\x08\1\2\3\4\5\6\7\x08";
	expect_bytes(&a, int8, sizeof(int8) - 1);
	/* bool[]: one byte each */
	store_bin_array_init(&a, STORE_OID_BOOL);
	store_bin_array_bool(&a, true);
	store_bin_array_bool(&a, false);
	static const char bools[] = "\0\0\0\1"
	                            "\0\0\0\0"
	                            "\0\0\0\x10"
	                            "\0\0\0\2"
	                            "\0\0\0\1"
	                            "\0\0\0\1\1"
	                            "\0\0\0\1\0";
	expect_bytes(&a, bools, sizeof(bools) - 1);
	/* empty: no dimension, a 12-byte header */
	store_bin_array_init(&a, STORE_OID_TEXT);
	expect_bytes(&a, "\0\0\0\0\0\0\0\0\0\0\0\x19", 12);
}
END_TEST

START_TEST(int_arrays_and_numbers)
{
	static const int64_t v[] = {86400000, 14400000, -1, INT64_MAX, INT64_MIN};
	char *got = store_int_array(v, 5);
	ck_assert_str_eq(got, "{86400000,14400000,-1,9223372036854775807,-9223372036854775808}");
	free(got);
	got = store_int_array(NULL, 0);
	ck_assert_str_eq(got, "{}");
	free(got);
	char num[STORE_INT_TEXT], iv[STORE_INTERVAL_TEXT];
	ck_assert_str_eq(store_int_text(INT64_MIN, num), "-9223372036854775808");
	ck_assert_str_eq(store_interval_text(30000, iv), "30000 milliseconds");
	/* the longest one fits whole */
	ck_assert_str_eq(store_interval_text(INT64_MIN, iv), "-9223372036854775808 milliseconds");
}
END_TEST

/* A one-row result of text columns built without a server; NULL values are SQL null. */
static PGresult *result_of(const char *const *values, int n)
{
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	PGresAttDesc *attrs = calloc((size_t)n, sizeof(*attrs));
	for (int i = 0; i < n; i++) {
		attrs[i].name = (char *)"c";
		attrs[i].typid = 25; /* text */
		attrs[i].typlen = -1;
		attrs[i].atttypmod = -1;
	}
	ck_assert(PQsetResultAttrs(res, n, attrs));
	free(attrs);
	for (int i = 0; i < n; i++)
		ck_assert(PQsetvalue(res, 0, i, (char *)values[i],
		                     values[i] ? (int)strlen(values[i]) : -1));
	return res;
}

START_TEST(field_readers_tell_null_from_values)
{
	const char *values[] = {"order-1", NULL, "42", "t", "f", "-7"};
	PGresult *res = result_of(values, 6);
	char *text = store_field_text(res, 0, 0);
	ck_assert_str_eq(text, "order-1");
	free(text);
	ck_assert_ptr_null(store_field_text(res, 0, 1));
	ck_assert_int_eq(store_field_int(res, 0, 2), 42);
	ck_assert_int_eq(store_field_int(res, 0, 1), 0);
	ck_assert_int_eq(store_field_int_or(res, 0, 1, -1), -1);
	ck_assert_int_eq(store_field_int_or(res, 0, 5, -1), -7);
	ck_assert(store_field_bool(res, 0, 3));
	ck_assert(!store_field_bool(res, 0, 4));
	ck_assert(!store_field_bool(res, 0, 0));
	/* store_field_value borrows the value in place */
	ck_assert_ptr_eq(store_field_value(res, 0, 0), PQgetvalue(res, 0, 0));
	ck_assert_ptr_null(store_field_value(res, 0, 1));
	PQclear(res);
}
END_TEST

START_TEST(calls_under_way_are_listed_until_freed)
{
	struct event_base *base = event_base_new();
	struct pg_conn_handlers h = {0};
	struct pg_conn *pc = pg_conn_new(base, "host=/nonexistent", &h, NULL);
	struct sp_config cfg = {.instance_name = "test", .orders_relation = "public.orders"};
	struct store *st = store_new(pc, &cfg);
	struct store_call *a = store_call_new(st, NULL);
	struct store_call *b = store_call_new(st, NULL);
	struct store_call *c = store_call_new(st, NULL);
	ck_assert_ptr_eq(*store_calls_slot(st), c);
	/* one from the middle, then the newest: the list keeps the others */
	store_call_free(b);
	ck_assert_ptr_eq(*store_calls_slot(st), c);
	ck_assert_ptr_eq(c->next, a);
	ck_assert_ptr_eq(a->prev, c);
	store_call_free(c);
	ck_assert_ptr_eq(*store_calls_slot(st), a);
	ck_assert_ptr_null(a->prev);
	/* a call its connection dropped is freed with the store (the ASan build sees a leak) */
	pg_conn_free(pc);
	store_free(st);
	event_base_free(base);
}
END_TEST

START_TEST(a_lost_connection_is_not_a_rejection)
{
	ck_assert(!store_result_rejected(NULL));
	/* an error result without an SQLSTATE (made on the client) is not one either */
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_FATAL_ERROR);
	ck_assert(!store_result_rejected(res));
	PQclear(res);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store_internal");
	testutil_tcase(s, "store_internal", 0,
	               (const TTest *const[]){text_arrays_quote_and_escape_every_item,
	                                      binary_arrays_as_array_recv_reads_them,
	                                      int_arrays_and_numbers,
	                                      field_readers_tell_null_from_values,
	                                      calls_under_way_are_listed_until_freed,
	                                      a_lost_connection_is_not_a_rejection, NULL});
	return testutil_run_suite(s, CK_NORMAL);
}
