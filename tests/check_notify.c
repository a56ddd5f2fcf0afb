/* The daemon as systemd sees it: NOTIFY_SOCKET points at a datagram socket of the test,
 * which plays the service manager and checks READY=1 (only once the database is
 * connected), STATUS=, WATCHDOG=1 pings, RELOADING=1 then READY=1 on SIGHUP (also
 * when the new configuration is refused), and STOPPING=1 on SIGTERM. */
#include "autoconfig.h"

#include "pgtest.h"
#include "testutil.h"
#include "world.h"
#include "xmalloc.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The fake service manager: its socket and every message received so far. */
struct manager {
	char dir[48];
	char path[96];
	int fd;
	char **msgs;
	size_t n;
	size_t cursor; /* next message manager_expect looks at */
};

static void manager_open(struct manager *m)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->dir, sizeof(m->dir), "/tmp/smartpayd-notify.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(m->dir));
	snprintf(m->path, sizeof(m->path), "%s/notify", m->dir);
	m->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(m->fd, 0);
	struct sockaddr_un a;
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	ck_assert_uint_lt(strlen(m->path), sizeof(a.sun_path));
	memcpy(a.sun_path, m->path, strlen(m->path) + 1);
	ck_assert_int_eq(bind(m->fd, (struct sockaddr *)&a, sizeof(a)), 0);
}

static void manager_close(struct manager *m)
{
	close(m->fd);
	unlink(m->path);
	rmdir(m->dir);
	for (size_t i = 0; i < m->n; i++)
		free(m->msgs[i]);
	free(m->msgs);
}

/* Receives datagrams for up to timeout_ms (returns early once one has arrived when
 * `one` is set). */
static void manager_receive(struct manager *m, long timeout_ms, bool one)
{
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		long left = timeout_ms - testutil_elapsed_ms(&start);
		if (left <= 0)
			return;
		struct pollfd pfd = {.fd = m->fd, .events = POLLIN};
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		ck_assert_int_ge(r, 0);
		if (r == 0)
			return;
		char buf[4096];
		ssize_t len = recv(m->fd, buf, sizeof(buf) - 1, 0);
		ck_assert_int_ge(len, 0);
		buf[len] = '\0';
		m->msgs = xreallocarray(m->msgs, m->n + 1, sizeof(*m->msgs));
		m->msgs[m->n++] = strdup(buf);
		if (one)
			return;
	}
}

/* True when message i has a line equal to `line`, or starting with it when it ends in
 * '=' (e.g. "STATUS="). */
static bool message_has(const char *msg, const char *line)
{
	size_t len = strlen(line);
	bool prefix = line[len - 1] == '=';
	for (const char *p = msg; *p;) {
		const char *end = strchr(p, '\n');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (prefix ? (n >= len && strncmp(p, line, len) == 0)
		           : (n == len && strncmp(p, line, len) == 0))
			return true;
		p += n;
		if (*p == '\n')
			p++;
	}
	return false;
}

static void manager_dump(const struct manager *m)
{
	fprintf(stderr, "---- notifications received ----\n");
	for (size_t i = 0; i < m->n; i++)
		fprintf(stderr, "[%zu] %s\n", i, m->msgs[i]);
	fprintf(stderr, "---- end ----\n");
}

/* Waits until a message from the cursor on has `line`; moves the cursor past it and
 * returns its index. Fails the test after timeout_ms. */
static size_t manager_expect(struct manager *m, const char *line, long timeout_ms)
{
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		for (size_t i = m->cursor; i < m->n; i++) {
			if (message_has(m->msgs[i], line)) {
				m->cursor = i + 1;
				return i;
			}
		}
		long left = timeout_ms - testutil_elapsed_ms(&start);
		if (left <= 0) {
			manager_dump(m);
			ck_abort_msg("no %s within %ld ms", line, timeout_ms);
		}
		manager_receive(m, left, true);
	}
}

/* Counts messages with `line` from index `from`. */
static size_t manager_count(const struct manager *m, size_t from, const char *line)
{
	size_t n = 0;
	for (size_t i = from; i < m->n; i++)
		n += message_has(m->msgs[i], line);
	return n;
}

START_TEST(notify_lifecycle)
{
	/* no gateway: nothing here needs an answer from it */
	struct world w;
	world_up_with(&w, &(struct world_opts){.no_sim = true}, NULL);
	struct manager m;
	manager_open(&m);
	char notify_env[160];
	snprintf(notify_env, sizeof(notify_env), "NOTIFY_SOCKET=%s", m.path);
	/* WATCHDOG_PID unset: sd_watchdog_enabled then trusts WATCHDOG_USEC */
	const char *env[] = {notify_env, "WATCHDOG_USEC=2000000", "WATCHDOG_PID", NULL};
	w.d.env = env;

	/* the database is down at start: the loop runs (watchdog pings), but no READY */
	pgtest_server_stop(false);
	daemonproc_start(&w.d, false);
	size_t first_ping = manager_expect(&m, "WATCHDOG=1", 5000);
	manager_receive(&m, 2500, false);
	ck_assert_uint_ge(manager_count(&m, first_ping, "WATCHDOG=1"), 2);
	if (manager_count(&m, 0, "READY=1") != 0)
		manager_dump(&m);
	ck_assert_uint_eq(manager_count(&m, 0, "READY=1"), 0);

	/* connected and the schema checked: READY=1 and a status line */
	pgtest_server_start();
	manager_expect(&m, "READY=1", 20000);
	size_t status = manager_expect(&m, "STATUS=", 5000);
	ck_assert_ptr_nonnull(strstr(m.msgs[status], "database up"));

	/* SIGHUP: RELOADING=1 with the monotonic time, then READY=1 again */
	size_t before = m.n;
	daemonproc_signal(&w.d, SIGHUP);
	size_t reloading = manager_expect(&m, "RELOADING=1", 5000);
	ck_assert(message_has(m.msgs[reloading], "MONOTONIC_USEC="));
	for (size_t i = before; i < reloading; i++)
		ck_assert(!message_has(m.msgs[i], "READY=1"));
	manager_expect(&m, "READY=1", 5000);

	/* a broken configuration is refused: still RELOADING=1 then READY=1, old config kept */
	char *conf = testutil_read_file(w.d.conf);
	ck_assert_ptr_nonnull(conf);
	char *broken = NULL;
	ck_assert_int_ge(asprintf(&broken, "%s[daemon]\nno_such_key = 1\n", conf), 0);
	testutil_write_file(w.d.conf, broken, 0600);
	daemonproc_signal(&w.d, SIGHUP);
	manager_expect(&m, "RELOADING=1", 5000);
	manager_expect(&m, "READY=1", 5000);
	ck_assert(daemonproc_log_contains(&w.d, "reload_failed"));
	testutil_write_file(w.d.conf, conf, 0600);
	free(broken);
	free(conf);

	/* the watchdog keeps pinging after the reloads */
	size_t mark = m.n;
	manager_receive(&m, 1500, false);
	ck_assert_uint_ge(manager_count(&m, mark, "WATCHDOG=1"), 1);

	/* SIGTERM: STOPPING=1, then a clean exit (the datagrams wait in the socket) */
	int code = daemonproc_stop(&w.d);
	if (code != 0)
		daemonproc_print_log(&w.d);
	ck_assert_int_eq(code, 0);
	manager_expect(&m, "STOPPING=1", 1000);
	if (getenv("CHECK_NOTIFY_DUMP"))
		manager_dump(&m);

	manager_close(&m);
	world_down(&w);
}
END_TEST

int main(void)
{
#ifndef HAVE_SYSTEMD
	fprintf(stderr, "check_notify: built without libsystemd, nothing to test\n");
	return 77;
#else
	pgtest_start();
	Suite *s = suite_create("notify");
	testutil_tcase(s, "sd_notify", 60, (const TTest *const[]){notify_lifecycle, NULL});
	return testutil_run_suite(s, CK_ENV);
#endif
}
