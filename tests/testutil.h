/* Small helpers shared by every test program: running a suite, files, time, loopback
 * ports, and running a built program with its output captured. */
#ifndef SP_TESTUTIL_H
#define SP_TESTUTIL_H

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Runs the suite (freeing it) and returns the program's exit status: EXIT_SUCCESS
 * when no test failed, else EXIT_FAILURE. */
int testutil_run_suite(Suite *suite, enum print_output mode);

/* Adds to `suite` a test case named `name` with `tests` (NULL-terminated) and a timeout
 * of timeout_s seconds (0: Check's default), and returns it (for loop tests). */
TCase *testutil_tcase(Suite *suite, const char *name, int timeout_s, const TTest *const *tests);

/* The whole content of a file (malloc'd), or NULL when it cannot be read. */
char *testutil_read_file(const char *path);

/* Writes text to path (created with `mode`, or truncated), failing the test on error. */
void testutil_write_file(const char *path, const char *text, mode_t mode);

/* n copies of `unit` (malloc'd). */
char *testutil_repeat(const char *unit, size_t n);

/* Standard base64 of a string (malloc'd). */
char *testutil_base64(const char *text);

/* A small deterministic generator (xorshift64*) so that failures reproduce: the next
 * value from *state (seeded non-zero by the caller). */
uint64_t testutil_rng(uint64_t *state);

/* Sleeps for ms milliseconds. */
void testutil_sleep_ms(long ms);

/* Milliseconds elapsed on the monotonic clock since `start`. */
long testutil_elapsed_ms(const struct timespec *start);

/* A TCP socket bound to a port of 127.0.0.1 the kernel chose, that port in *port; -1
 * when that fails. */
int testutil_bind_loopback(int *port);

/* A TCP port on 127.0.0.1 that was free a moment ago, or -1. */
int testutil_free_port(void);

/* A program of the build tree: $SP_TOP_BUILDDIR/NAME (default "./NAME"), malloc'd. */
char *testutil_built_program(const char *name);

/* What one program run printed, and how it ended. */
struct testutil_run {
	int status; /* exit status, or 128 + signal */
	char *out;  /* standard output (malloc'd) */
	char *err;  /* standard error (malloc'd) */
};

/* Runs `program` (a path) with `args` (NULL-terminated, after the program name),
 * standard input from /dev/null, and waits for it; its output goes through files in
 * `dir`, removed afterwards. Fails the current test when it cannot be started. */
struct testutil_run testutil_run(const char *program, const char *const *args, const char *dir);

/* Same for a program of the build tree (testutil_built_program). */
struct testutil_run testutil_run_built(const char *name, const char *const *args, const char *dir);
void testutil_run_free(struct testutil_run *r);

/* True when s is well-formed UTF-8: no overlong form, surrogate or code point above
 * U+10FFFF, no sequence cut short (decoded by value, independently of lib/text.c). */
bool testutil_utf8_valid(const char *s);

#endif
