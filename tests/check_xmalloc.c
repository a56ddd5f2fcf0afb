/* lib/xmalloc: the overflow-checked array allocators (xreallocarray, xgrow, xcalloc) and
 * the growable text buffer (xappend). An overflowing size must abort with its own message
 * before any allocation is tried: a wrapped product would otherwise hand back a small
 * buffer that the caller then overruns. */
#include "autoconfig.h"

#include "testutil.h"
#include "xmalloc.h"

#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* How a child run of one allocation ended. */
struct child_end {
	int signal;     /* the signal that ended it, 0 when it exited */
	char text[512]; /* what it wrote on stderr */
};

/* Runs fn in a child process with stderr on a pipe and an alarm against endless loops. */
static struct child_end run_child(void (*fn)(void))
{
	struct child_end end = {0};
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], STDERR_FILENO);
		signal(SIGALRM, SIG_DFL); /* Check's handler would kill the whole test */
		alarm(10);
		fn();
		_exit(0);
	}
	close(fds[1]);
	size_t n = 0;
	ssize_t r;
	while (n < sizeof(end.text) - 1 &&
	       (r = read(fds[0], end.text + n, sizeof(end.text) - 1 - n)) > 0)
		n += (size_t)r;
	close(fds[0]);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	end.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	return end;
}

/* Asserts that fn aborted with the array-size message, not an out-of-memory one. */
static void assert_too_large(void (*fn)(void), const char *what)
{
	struct child_end end = run_child(fn);
	ck_assert_msg(end.signal == SIGABRT, "%s: ended by signal %d, wrote \"%s\"", what,
	              end.signal, end.text);
	ck_assert_msg(strstr(end.text, "is too large") != NULL, "%s: wrote \"%s\"", what, end.text);
}

START_TEST(xreallocarray_keeps_the_elements)
{
	int64_t *a = xreallocarray(NULL, 4, sizeof(*a));
	for (int i = 0; i < 4; i++)
		a[i] = i * 1000;
	a = xreallocarray(a, 1000, sizeof(*a));
	for (int i = 4; i < 1000; i++)
		a[i] = i * 1000;
	for (int i = 0; i < 1000; i++)
		ck_assert_int_eq(a[i], i * 1000);
	free(a);
}
END_TEST

/* (SIZE_MAX / 2 + 2) * 2 wraps to 2 bytes. */
static void realloc_wrapping(void)
{
	void *p = xreallocarray(NULL, SIZE_MAX / 2 + 2, 2);
	free(p);
}

START_TEST(xreallocarray_refuses_an_overflowing_size)
{
	assert_too_large(realloc_wrapping, "xreallocarray");
}
END_TEST

START_TEST(xgrow_allocates_need_then_doubles)
{
	size_t cap = 0;
	int *a = xgrow(NULL, &cap, 3, sizeof(*a));
	ck_assert_uint_eq(cap, 3);
	for (int i = 0; i < 3; i++)
		a[i] = i;
	int *same = xgrow(a, &cap, 3, sizeof(*a));
	ck_assert_ptr_eq(same, a);
	ck_assert_uint_eq(cap, 3);
	a = xgrow(a, &cap, 4, sizeof(*a));
	ck_assert_uint_eq(cap, 6);
	a = xgrow(a, &cap, 13, sizeof(*a));
	ck_assert_uint_eq(cap, 24);
	for (int i = 3; i < 24; i++)
		a[i] = i;
	for (int i = 0; i < 24; i++)
		ck_assert_int_eq(a[i], i);
	free(a);
}
END_TEST

START_TEST(xgrow_one_at_a_time)
{
	size_t n = 0, cap = 0;
	char **items = NULL;
	for (int i = 0; i < 100; i++) {
		items = xgrow(items, &cap, n + 1, sizeof(*items));
		items[n++] = xasprintf("item %d", i);
	}
	ck_assert_uint_eq(cap, 128);
	for (size_t i = 0; i < n; i++) {
		char want[16];
		snprintf(want, sizeof(want), "item %zu", i);
		ck_assert_str_eq(items[i], want);
		free(items[i]);
	}
	free(items);
}
END_TEST

/* Doubling a capacity above SIZE_MAX / 2 wraps to 0 (and would loop for ever). */
static void grow_capacity_wrapping(void)
{
	size_t cap = SIZE_MAX / 2 + 1;
	void *p = xgrow(NULL, &cap, cap + 1, 1);
	free(p);
}

/* 2^61 elements fit in size_t, their 2^65 bytes do not. */
static void grow_bytes_wrapping(void)
{
	size_t cap = 8;
	void *p = xgrow(NULL, &cap, SIZE_MAX / 16 + 2, 16);
	free(p);
}

START_TEST(xgrow_refuses_an_overflowing_size)
{
	assert_too_large(grow_capacity_wrapping, "xgrow capacity");
	assert_too_large(grow_bytes_wrapping, "xgrow bytes");
}
END_TEST

/* calloc refuses the wrapped product itself; the message says what went wrong. */
static void calloc_wrapping(void)
{
	void *p = xcalloc(SIZE_MAX / 8 + 2, 8);
	free(p);
}

START_TEST(xcalloc_refuses_an_overflowing_size)
{
	assert_too_large(calloc_wrapping, "xcalloc");
}
END_TEST

START_TEST(xappend_builds_text_past_its_first_buffer)
{
	char *data = NULL;
	size_t len = 0, cap = 0;
	xappend(&data, &len, &cap, "abc", 3);
	ck_assert_str_eq(data, "abc");
	ck_assert_uint_eq(cap, 256);
	char block[300];
	memset(block, 'x', sizeof(block));
	xappend(&data, &len, &cap, block, sizeof(block));
	ck_assert_uint_eq(len, 303);
	ck_assert_uint_ge(cap, 304);
	ck_assert(strncmp(data, "abcxxx", 6) == 0);
	ck_assert_int_eq(data[302], 'x');
	ck_assert_int_eq(data[303], '\0');
	free(data);
}
END_TEST

static Suite *xmalloc_suite(void)
{
	Suite *s = suite_create("xmalloc");
	TCase *tc = tcase_create("arrays");
	tcase_add_test(tc, xreallocarray_keeps_the_elements);
	tcase_add_test(tc, xreallocarray_refuses_an_overflowing_size);
	tcase_add_test(tc, xgrow_allocates_need_then_doubles);
	tcase_add_test(tc, xgrow_one_at_a_time);
	tcase_add_test(tc, xgrow_refuses_an_overflowing_size);
	tcase_add_test(tc, xcalloc_refuses_an_overflowing_size);
	tcase_add_test(tc, xappend_builds_text_past_its_first_buffer);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(xmalloc_suite(), CK_NORMAL);
}
