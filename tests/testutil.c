#include "autoconfig.h"

#include "testutil.h"

#include "xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int testutil_run_suite(Suite *suite, enum print_output mode)
{
	SRunner *sr = srunner_create(suite);
	srunner_run_all(sr, mode);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

char *testutil_read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t len = 0, cap = 4096;
	char *text = xmalloc(cap);
	for (size_t n; (n = fread(text + len, 1, cap - len - 1, f)) > 0;) {
		len += n;
		if (cap - len - 1 == 0)
			text = xgrow(text, &cap, cap + 1, 1);
	}
	text[len] = '\0';
	fclose(f);
	return text;
}

void testutil_write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	ck_assert_msg(fd >= 0, "cannot write %s: %s", path, strerror(errno));
	size_t n = strlen(text);
	ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
	close(fd);
}

char *testutil_base64(const char *text)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(text);
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);
	char *p = out;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)(unsigned char)text[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)(unsigned char)text[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned)(unsigned char)text[i + 2];
		*p++ = tab[(v >> 18) & 63];
		*p++ = tab[(v >> 12) & 63];
		*p++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		*p++ = i + 2 < n ? tab[v & 63] : '=';
	}
	*p = '\0';
	return out;
}

void testutil_sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

long testutil_elapsed_ms(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) * 1000L + (now.tv_nsec - start->tv_nsec) / 1000000L;
}

int testutil_bind_loopback(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

int testutil_free_port(void)
{
	int port;
	int fd = testutil_bind_loopback(&port);
	if (fd < 0)
		return -1;
	close(fd);
	return port;
}

char *testutil_built_program(const char *name)
{
	const char *top = getenv("SP_TOP_BUILDDIR");
	return xasprintf("%s/%s", top && *top ? top : ".", name);
}

/* Reads and removes a file the run wrote its output to. */
static char *take_output(const char *path)
{
	char *text = testutil_read_file(path);
	ck_assert_msg(text != NULL, "%s: %s", path, strerror(errno));
	unlink(path);
	return text;
}

struct testutil_run testutil_run(const char *program, const char *const *args, const char *dir)
{
	static unsigned counter;
	char *out_path = xasprintf("%s/run-%ld-%u.out", dir, (long)getpid(), ++counter);
	char *err_path = xasprintf("%s/run-%ld-%u.err", dir, (long)getpid(), counter);
	size_t nargs = 0;
	while (args[nargs] != NULL)
		nargs++;
	const char **argv = xcalloc(nargs + 2, sizeof(*argv));
	argv[0] = program;
	memcpy(argv + 1, args, nargs * sizeof(*argv));
	posix_spawn_file_actions_t actions;
	struct testutil_run r = {0};
	pid_t pid;
	int status;

	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path,
	                                 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path,
	                                 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	fflush(NULL);
	int rc = posix_spawn(&pid, program, &actions, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&actions);
	free(argv);
	ck_assert_msg(rc == 0, "%s: %s", program, strerror(rc));
	while (waitpid(pid, &status, 0) < 0)
		ck_assert_msg(errno == EINTR, "waitpid: %s", strerror(errno));
	r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	r.out = take_output(out_path);
	r.err = take_output(err_path);
	free(out_path);
	free(err_path);
	return r;
}

struct testutil_run testutil_run_built(const char *name, const char *const *args, const char *dir)
{
	char *program = testutil_built_program(name);
	struct testutil_run r = testutil_run(program, args, dir);
	free(program);
	return r;
}

void testutil_run_free(struct testutil_run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

bool testutil_utf8_valid(const char *s)
{
	static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		uint32_t cp;
		int n;
		if (*p < 0x80) {
			p++;
			continue;
		}
		if ((*p & 0xE0) == 0xC0) {
			n = 2;
			cp = *p & 0x1F;
		} else if ((*p & 0xF0) == 0xE0) {
			n = 3;
			cp = *p & 0x0F;
		} else if ((*p & 0xF8) == 0xF0) {
			n = 4;
			cp = *p & 0x07;
		} else {
			return false;
		}
		for (int i = 1; i < n; i++) {
			if ((p[i] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (p[i] & 0x3F);
		}
		if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		p += n;
	}
	return true;
}

uint64_t testutil_rng(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * UINT64_C(2685821657736338717);
}

char *testutil_repeat(const char *unit, size_t n)
{
	size_t len = strlen(unit);
	char *s = malloc(len * n + 1);

	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < n; i++)
		memcpy(s + i * len, unit, len);
	s[len * n] = '\0';
	return s;
}

TCase *testutil_tcase(Suite *suite, const char *name, int timeout_s, const TTest *const *tests)
{
	TCase *tc = tcase_create(name);

	if (timeout_s > 0)
		tcase_set_timeout(tc, timeout_s);
	for (size_t i = 0; tests[i] != NULL; i++)
		tcase_add_test(tc, tests[i]);
	suite_add_tcase(suite, tc);
	return tc;
}
