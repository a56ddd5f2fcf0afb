#include "autoconfig.h"

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store_migrate.h"
#include "pgtest.h"
#include "testutil.h"
#include "xmalloc.h"

#define PGTEST_DEFAULT_BINDIR "/usr/lib/postgresql/15/bin"
#define PGTEST_TEMPLATE_STAMP "pgtest-template.stamp"
#define PGTEST_PORT_ATTEMPTS 5

extern char **environ;

/* The cluster of this process. Paths are fixed at start so that the exit handler and
 * the watchdog need no allocation. */
static struct {
	pid_t owner;  /* the process that started it; 0 when none */
	bool running; /* as far as this process knows */
	bool keep;    /* PGTEST_KEEP: leave the directory behind */
	bool drop;    /* running as root: run the PostgreSQL programs as uid/gid */
	uid_t uid;
	gid_t gid;
	int port;
	int watchdog_fd; /* write end of the watchdog's pipe, -1 when none */
	char bindir[1024];
	char pg_ctl[1040];
	char dir[128]; /* short: the socket's path must stay under 108 bytes */
	char data[160];
	char log[160];
	char ctl_log[160];
	char *conninfo;
	struct pgtest_options opts;
	char *stop_argv[8]; /* pg_ctl -D DATA -m immediate -w stop */
	char *rm_argv[4];   /* rm -rf DIR */
	/* the streaming standby (pgtest_standby_start); standby_port 0 when none */
	int standby_port;
	char standby_data[160];
	char standby_sock[160];
	char standby_log[160];
	char *standby_conninfo;
	char *standby_stop_argv[8];
} pg = {.watchdog_fd = -1};

/* Prints "pgtest: MESSAGE" on stderr. */
static void __attribute__((format(printf, 1, 2))) note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("pgtest: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Runs argv[0] with argv and waits for it: stdin from /dev/null, stdout and stderr
 * appended to out_path (NULL: inherited), as the server user when `drop`. Uses only
 * async-signal-safe calls between fork and exec. Returns the exit status, 128+signal,
 * or -1 when it could not run. */
static int run_argv(char *const argv[], const char *out_path, bool drop)
{
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDONLY);
		if (fd >= 0 && fd != STDIN_FILENO) {
			dup2(fd, STDIN_FILENO);
			close(fd);
		}
		if (out_path != NULL) {
			fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
			if (fd < 0)
				_exit(126);
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			if (fd > STDERR_FILENO)
				close(fd);
		}
		if (drop && pg.drop &&
		    (setgroups(0, NULL) != 0 || setgid(pg.gid) != 0 || setuid(pg.uid) != 0))
			_exit(126);
		if (chdir(pg.dir[0] != '\0' ? pg.dir : "/") != 0 && chdir("/") != 0)
			_exit(126);
		execve(argv[0], argv, environ);
		_exit(127);
	}

	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/* Stops the server and removes the directory; async-signal-safe (the watchdog and the
 * exit handler share it). */
static void destroy_cluster(void)
{
	if (pg.standby_port != 0)
		run_argv(pg.standby_stop_argv, pg.ctl_log, true);
	run_argv(pg.stop_argv, pg.ctl_log, true);
	if (!pg.keep)
		run_argv(pg.rm_argv, NULL, false);
}

/* Exit handler: only the starting process tears the cluster down, never a forked
 * test child. */
static void cleanup_at_exit(void)
{
	pgtest_stop();
}

/* Forks a process that outlives us in its own session: if this process dies without
 * cleaning up (SIGKILL, a signal Check turned into a process-group kill, a crash), the
 * watchdog reads EOF on its pipe and stops the server and removes the directory. A
 * clean pgtest_stop writes one byte first, which dismisses it. */
static void start_watchdog(void)
{
	int fds[2];

	if (pipe(fds) != 0) {
		note("pipe: %s (no watchdog)", strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		note("fork: %s (no watchdog)", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return;
	}
	if (pid == 0) {
		close(fds[1]);
		setsid();
		/* our exit code must not run here: _exit only */
		for (int fd = 3; fd < 1024; fd++)
			if (fd != fds[0])
				close(fd);
		char byte;
		ssize_t n;
		while ((n = read(fds[0], &byte, 1)) < 0 && errno == EINTR)
			;
		if (n <= 0)
			destroy_cluster();
		_exit(0);
	}
	close(fds[0]);
	/* exec'd programs (pg_ctl, the server) must not hold the write end */
	fcntl(fds[1], F_SETFD, FD_CLOEXEC);
	pg.watchdog_fd = fds[1];
}

/* Copies a whole file to stderr (the server log on failures). */
static void print_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char buf[4096];
	size_t n;

	if (f == NULL) {
		note("cannot read %s: %s", path, strerror(errno));
		return;
	}
	fprintf(stderr, "----- %s -----\n", path);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stderr);
	fprintf(stderr, "----- end of %s -----\n", path);
	fclose(f);
}

/* Runs a coreutils program (cp, rm) as ourselves; true on exit status 0. */
static bool run_tool(const char *tool, const char *a1, const char *a2, const char *a3)
{
	char *argv[] = {(char *)tool, (char *)a1, (char *)a2, (char *)a3, NULL};

	return run_argv(argv, NULL, false) == 0;
}

/* initdb into `datadir` as the server user; the output goes to DIR/initdb.log. */
static bool run_initdb(const char *datadir)
{
	char *initdb = xasprintf("%s/initdb", pg.bindir);
	char *log = xasprintf("%s/initdb.log", pg.dir);
	char *argv[] = {initdb, "--nosync",   "-A", "trust",         "-U", "postgres", "-E",
	                "UTF8", "--locale=C", "-D", (char *)datadir, NULL};
	int rc = run_argv(argv, log, true);

	if (rc != 0) {
		note("initdb failed (status %d)", rc);
		print_file(log);
	}
	free(initdb);
	free(log);
	return rc == 0;
}

/* The stamp that says which binaries and user a cached template is for. */
static char *template_stamp(void)
{
	return xasprintf("pgtest template\nbindir=%s\nuid=%lu\n", pg.bindir,
	                 (unsigned long)(pg.drop ? pg.uid : geteuid()));
}

/* True when `template` holds an initdb made for this bindir and user. */
static bool template_valid(const char *template)
{
	char *path = xasprintf("%s/" PGTEST_TEMPLATE_STAMP, template);
	char *have = testutil_read_file(path);
	char *want = template_stamp();
	bool ok = have != NULL && strcmp(have, want) == 0;

	free(path);
	free(have);
	free(want);
	return ok;
}

/* Makes pg.data: a copy of the cached template when there is one, else a fresh initdb
 * that then becomes the template. The template is a pristine initdb output, never
 * started. Without $SP_TOP_BUILDDIR every cluster gets its own initdb. */
static bool prepare_data(bool *from_template)
{
	const char *top = getenv("SP_TOP_BUILDDIR");

	*from_template = false;
	if (top == NULL || top[0] == '\0')
		return run_initdb(pg.data);

	char *tests = xasprintf("%s/tests", top);
	char *template = xasprintf("%s/tests/pgtemplate", top);
	char *lock_path = xasprintf("%s/tests/pgtemplate.lock", top);
	char *tmp = xasprintf("%s.tmp.%ld", template, (long)getpid());
	bool ok = false;
	int lock = -1;

	mkdir(tests, 0755);
	lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lock < 0) {
		/* e.g. a build tree we may not write to: no cache, just initdb */
		note("%s: %s (not caching a template)", lock_path, strerror(errno));
		ok = run_initdb(pg.data);
		goto out;
	}
	/* shared while copying a good template; exclusive to (re)build it */
	if (flock(lock, LOCK_SH) == 0 && template_valid(template)) {
		ok = *from_template = run_tool("/bin/cp", "-a", template, pg.data);
		goto out;
	}
	if (flock(lock, LOCK_UN) != 0 || flock(lock, LOCK_EX) != 0) {
		note("flock %s: %s", lock_path, strerror(errno));
		goto out;
	}
	if (template_valid(template)) {
		ok = *from_template = run_tool("/bin/cp", "-a", template, pg.data);
		goto out;
	}
	if (!run_initdb(pg.data))
		goto out;
	ok = true; /* the cluster can run; caching the template is a bonus */
	run_tool("/bin/rm", "-rf", tmp, NULL);
	if (run_tool("/bin/cp", "-a", pg.data, tmp)) {
		char *stamp_path = xasprintf("%s/" PGTEST_TEMPLATE_STAMP, tmp);
		char *stamp = template_stamp();
		FILE *f = fopen(stamp_path, "w");
		bool written = f != NULL && fputs(stamp, f) >= 0;
		if (f != NULL && fclose(f) != 0)
			written = false;
		if (written && run_tool("/bin/rm", "-rf", template, NULL) &&
		    rename(tmp, template) == 0)
			note("cached an initdb template in %s", template);
		else
			run_tool("/bin/rm", "-rf", tmp, NULL);
		free(stamp_path);
		free(stamp);
	}
out:
	if (lock >= 0)
		close(lock);
	free(tests);
	free(template);
	free(lock_path);
	free(tmp);
	return ok;
}

/* Appends the cluster's settings to postgresql.conf (a later line wins, so the port can
 * be changed by appending again). */
static bool write_conf(bool with_settings)
{
	char *path = xasprintf("%s/postgresql.conf", pg.data);
	FILE *f = fopen(path, "a");
	bool ok = f != NULL;

	if (f != NULL && with_settings) {
		const char *durable = pg.opts.durable ? "on" : "off";
		fprintf(f,
		        "\n# pgtest\n"
		        "listen_addresses = '127.0.0.1'\n"
		        "unix_socket_directories = '%s'\n"
		        "max_connections = %d\n"
		        "fsync = %s\n"
		        "full_page_writes = %s\n"
		        "synchronous_commit = %s\n"
		        "timezone = 'UTC'\n"
		        "log_timezone = 'UTC'\n",
		        pg.dir, pg.opts.max_connections > 0 ? pg.opts.max_connections : 100,
		        durable, durable, pg.opts.async_commit ? "off" : "on");
		if (pg.opts.replication)
			fprintf(f, "wal_level = replica\n"
			           "max_wal_senders = 4\n"
			           "max_replication_slots = 4\n");
		if (pg.opts.extra_conf != NULL)
			fprintf(f, "%s\n", pg.opts.extra_conf);
	}
	if (f != NULL) {
		fprintf(f, "port = %d\n", pg.port);
		ok = fclose(f) == 0;
	}
	if (!ok)
		note("%s: %s", path, strerror(errno));
	free(path);
	return ok;
}

/* pg_ctl -w start; true when the server accepts connections. */
static bool server_start(void)
{
	char *argv[] = {pg.pg_ctl, "-w", "-t", "120", "-D", pg.data, "-l", pg.log, "start", NULL};

	if (run_argv(argv, pg.ctl_log, true) != 0)
		return false;
	pg.running = true;
	return true;
}

/* pg_ctl -w stop with a fast or immediate shutdown. */
static bool server_stop(bool immediate)
{
	char *argv[] = {pg.pg_ctl, "-D", pg.data, "-m",   immediate ? "immediate" : "fast",
	                "-w",      "-t", "120",   "stop", NULL};
	bool ok = run_argv(argv, pg.ctl_log, true) == 0;

	if (ok)
		pg.running = false;
	return ok;
}

/* True when the server log says the port was taken between testutil_free_port() and start. */
static bool port_was_taken(void)
{
	char *log = testutil_read_file(pg.log);
	bool taken = log != NULL && strstr(log, "Address already in use") != NULL;

	free(log);
	return taken;
}

/* Chooses the user the PostgreSQL programs run as, the binaries and the directory. */
static bool setup_paths(void)
{
	const char *bindir = getenv("PG_BINDIR");
	const char *tmpdir = getenv("TMPDIR");

	if (bindir == NULL || bindir[0] == '\0')
		bindir = PGTEST_DEFAULT_BINDIR;
	if (strlen(bindir) >= sizeof(pg.bindir)) {
		note("PG_BINDIR is too long");
		return false;
	}
	strcpy(pg.bindir, bindir);
	snprintf(pg.pg_ctl, sizeof(pg.pg_ctl), "%s/pg_ctl", pg.bindir);
	if (access(pg.pg_ctl, X_OK) != 0) {
		note("%s: %s (set PG_BINDIR)", pg.pg_ctl, strerror(errno));
		return false;
	}
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam("postgres");
		if (pw == NULL)
			pw = getpwnam("nobody");
		if (pw == NULL) {
			note("running as root and there is no postgres or nobody user");
			return false;
		}
		pg.drop = true;
		pg.uid = pw->pw_uid;
		pg.gid = pw->pw_gid;
	}

	/* $PGTEST_TMPDIR, else memory (/dev/shm: copying the template and running are
	 * several times faster there) unless durable, where fsync must reach a disk, else
	 * $TMPDIR or /tmp; the socket path (DIR/.s.PGSQL.PORT) must stay under 108 bytes */
	if (getenv("PGTEST_TMPDIR") != NULL && getenv("PGTEST_TMPDIR")[0] != '\0')
		tmpdir = getenv("PGTEST_TMPDIR");
	else if (!pg.opts.durable && access("/dev/shm", W_OK | X_OK) == 0)
		tmpdir = "/dev/shm";
	if (tmpdir == NULL || tmpdir[0] != '/' || strlen(tmpdir) > 60)
		tmpdir = "/tmp";
	snprintf(pg.dir, sizeof(pg.dir), "%s/pgtest.XXXXXX", tmpdir);
	if (mkdtemp(pg.dir) == NULL) {
		note("mkdtemp %s: %s", pg.dir, strerror(errno));
		pg.dir[0] = '\0';
		return false;
	}
	if (pg.drop && chown(pg.dir, pg.uid, pg.gid) != 0) {
		note("chown %s: %s", pg.dir, strerror(errno));
		rmdir(pg.dir);
		return false;
	}
	snprintf(pg.data, sizeof(pg.data), "%s/data", pg.dir);
	snprintf(pg.log, sizeof(pg.log), "%s/server.log", pg.dir);
	snprintf(pg.ctl_log, sizeof(pg.ctl_log), "%s/pg_ctl.log", pg.dir);

	pg.stop_argv[0] = pg.pg_ctl;
	pg.stop_argv[1] = "-D";
	pg.stop_argv[2] = pg.data;
	pg.stop_argv[3] = "-m";
	pg.stop_argv[4] = "immediate";
	pg.stop_argv[5] = "-w";
	pg.stop_argv[6] = "stop";
	pg.stop_argv[7] = NULL;
	pg.rm_argv[0] = "/bin/rm";
	pg.rm_argv[1] = "-rf";
	pg.rm_argv[2] = pg.dir;
	pg.rm_argv[3] = NULL;
	pg.keep = getenv("PGTEST_KEEP") != NULL && strcmp(getenv("PGTEST_KEEP"), "0") != 0;
	return true;
}

/* Seconds elapsed since `start`. */
static double elapsed(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

const char *pgtest_start_with(const struct pgtest_options *opts)
{
	static bool registered;
	struct timespec t0;
	bool from_template;

	if (pg.owner != 0)
		return pg.conninfo;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (opts != NULL)
		pg.opts = *opts;
	if (!setup_paths())
		exit(1);
	pg.owner = getpid();
	if (!registered) {
		atexit(cleanup_at_exit);
		registered = true;
	}
	start_watchdog();

	if (!prepare_data(&from_template)) {
		note("could not create the data directory");
		exit(1);
	}
	bool started = false;
	for (int attempt = 0; attempt < PGTEST_PORT_ATTEMPTS && !started; attempt++) {
		pg.port = testutil_free_port();
		if (pg.port < 0 || !write_conf(attempt == 0)) {
			note("no free port on 127.0.0.1");
			exit(1);
		}
		started = server_start();
		if (!started && !port_was_taken())
			break;
	}
	if (!started) {
		note("PostgreSQL did not start (bindir %s, directory %s)", pg.bindir, pg.dir);
		print_file(pg.ctl_log);
		print_file(pg.log);
		exit(1);
	}

	pg.conninfo = xasprintf("host=%s port=%d user=postgres dbname=postgres", pg.dir, pg.port);
	note("PostgreSQL ready in %.2f s (%s, %s, port %d%s%s)", elapsed(&t0),
	     from_template ? "template copy" : "initdb", pg.dir, pg.port,
	     pg.opts.durable ? ", durable" : "", pg.opts.async_commit ? ", async commit" : "");
	return pg.conninfo;
}

const char *pgtest_start(void)
{
	return pgtest_start_with(NULL);
}

const char *pgtest_conninfo(void)
{
	return pg.conninfo;
}

char *pgtest_conninfo_db(const char *dbname)
{
	return xasprintf("host=%s port=%d user=postgres dbname=%s", pg.dir, pg.port, dbname);
}

const char *pgtest_dir(void)
{
	return pg.dir;
}

int pgtest_port(void)
{
	return pg.port;
}

const char *pgtest_log_path(void)
{
	return pg.log;
}

void pgtest_print_log(void)
{
	print_file(pg.log);
}

void pgtest_stop(void)
{
	if (pg.owner == 0 || pg.owner != getpid())
		return;
	destroy_cluster();
	pg.running = false;
	if (pg.keep)
		note("keeping %s (PGTEST_KEEP)", pg.dir);
	if (pg.watchdog_fd >= 0) {
		/* dismiss the watchdog: the work is done */
		ssize_t n = write(pg.watchdog_fd, "x", 1);
		(void)n;
		close(pg.watchdog_fd);
		pg.watchdog_fd = -1;
	}
	pg.owner = 0;
	free(pg.conninfo);
	pg.conninfo = NULL;
	free(pg.standby_conninfo);
	pg.standby_conninfo = NULL;
	pg.standby_port = 0;
}

/* Fails the current test with the caller's position; prints the server log first when
 * `show_log`. */
static void __attribute__((format(printf, 4, 5), noreturn))
fail_at(const char *file, int line, bool show_log, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (show_log)
		print_file(pg.log);
	ck_abort_msg("%s:%d: %s", file, line, msg);
	abort(); /* ck_abort_msg does not return; this tells the compiler */
}

void pgtest_server_stop_at(const char *file, int line, bool immediate)
{
	if (pg.conninfo == NULL)
		fail_at(file, line, false, "pgtest_server_stop: no cluster");
	if (!server_stop(immediate))
		fail_at(file, line, true, "pg_ctl stop -m %s failed",
		        immediate ? "immediate" : "fast");
}

void pgtest_server_start_at(const char *file, int line)
{
	if (pg.conninfo == NULL)
		fail_at(file, line, false, "pgtest_server_start: no cluster");
	if (!server_start())
		fail_at(file, line, true, "pg_ctl start failed");
}

void pgtest_restart_at(const char *file, int line, bool immediate)
{
	pgtest_server_stop_at(file, line, immediate);
	pgtest_server_start_at(file, line);
}

/* Trims the newline libpq leaves at the end of its messages (in place). */
static const char *trimmed(char *msg)
{
	size_t len = strlen(msg);

	while (len > 0 && msg[len - 1] == '\n')
		msg[--len] = '\0';
	return msg;
}

PGconn *pgtest_connect_at(const char *file, int line, const char *conninfo)
{
	if (conninfo == NULL)
		conninfo = pg.conninfo;
	if (conninfo == NULL)
		fail_at(file, line, false, "pgtest_connect: call pgtest_start() first");

	PGconn *conn = PQconnectdb(conninfo);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		char *why = xstrdup(conn ? PQerrorMessage(conn) : "out of memory");
		PQfinish(conn);
		fail_at(file, line, true, "connect %s: %s", conninfo, trimmed(why));
	}
	return conn;
}

/* Runs `sql`; returns the result when its status is one of the two wanted ones, else
 * fails the test (clearing the result first). */
static PGresult *exec_expect(const char *file, int line, PGconn *conn, const char *sql,
                             ExecStatusType want, ExecStatusType also)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	if (status == want || status == also)
		return res;
	char *why = xstrdup(res && PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res)
	                                                        : PQerrorMessage(conn));
	PQclear(res);
	fail_at(file, line, false, "%s: %s [%s]", PQresStatus(status), trimmed(why), sql);
}

void pgtest_exec_at(const char *file, int line, PGconn *conn, const char *sql)
{
	PQclear(exec_expect(file, line, conn, sql, PGRES_COMMAND_OK, PGRES_TUPLES_OK));
}

void pgtest_exec_fails_at(const char *file, int line, PGconn *conn, const char *sql,
                          const char *sqlstate)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	char *got = xstrdup(state ? state : "none");
	char *why = xstrdup(res ? PQresultErrorMessage(res) : PQerrorMessage(conn));

	PQclear(res);
	if (status != PGRES_FATAL_ERROR || strcmp(got, sqlstate) != 0)
		fail_at(file, line, false, "expected SQLSTATE %s, got %s (%s) %s [%s]", sqlstate,
		        got, PQresStatus(status), trimmed(why), sql);
	free(got);
	free(why);
}

PGresult *pgtest_query_at(const char *file, int line, PGconn *conn, const char *sql)
{
	return exec_expect(file, line, conn, sql, PGRES_TUPLES_OK, PGRES_TUPLES_OK);
}

char *pgtest_value_at(const char *file, int line, PGconn *conn, const char *sql)
{
	PGresult *res = exec_expect(file, line, conn, sql, PGRES_TUPLES_OK, PGRES_TUPLES_OK);
	int rows = PQntuples(res);

	if (rows != 1 || PQnfields(res) < 1) {
		PQclear(res);
		fail_at(file, line, false, "expected one row, got %d [%s]", rows, sql);
	}
	char *value = PQgetisnull(res, 0, 0) ? NULL : xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return value;
}

long long pgtest_int_at(const char *file, int line, PGconn *conn, const char *sql)
{
	char *value = pgtest_value_at(file, line, conn, sql);
	char *end = NULL;

	if (value == NULL)
		fail_at(file, line, false, "NULL where a number was expected [%s]", sql);
	long long n = strtoll(value, &end, 10);
	bool ok = end != value && *end == '\0';
	free(value);
	if (!ok)
		fail_at(file, line, false, "not an integer [%s]", sql);
	return n;
}

void pgtest_exec_file_at(const char *file, int line, PGconn *conn, const char *path)
{
	const char *top = getenv("SP_TOP_SRCDIR");
	char *full = xasprintf("%s/%s", top != NULL && top[0] != '\0' ? top : ".", path);
	char *sql = testutil_read_file(full);

	if (sql == NULL) {
		char *why = xasprintf("%s: %s", full, strerror(errno));
		free(full);
		fail_at(file, line, false, "%s", why);
	}
	free(full);
	PGresult *res = PQexec(conn, sql);
	ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	free(sql);
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
		char *why = xstrdup(res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
		PQclear(res);
		fail_at(file, line, false, "%s: %s", path, trimmed(why));
	}
	PQclear(res);
}

void pgtest_migrate_at(const char *file, int line, PGconn *conn)
{
	int applied = 0;
	char *err = NULL;

	if (migrate_apply(conn, sp_builtin_migrations, sp_builtin_migration_count, NULL, &applied,
	                  &err) != 0)
		fail_at(file, line, false, "migrate: %s", err);
}

char *pgtest_createdb_at(const char *file, int line, const char *name)
{
	static unsigned counter;
	char *generated = NULL;

	if (name == NULL)
		name = generated = xasprintf("t_%ld_%u", (long)getpid(), ++counter);

	PGconn *conn = pgtest_connect_at(file, line, NULL);
	char *ident = PQescapeIdentifier(conn, name, strlen(name));
	char *drop = xasprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", ident);
	char *create = xasprintf("CREATE DATABASE %s", ident);
	PQfreemem(ident);
	pgtest_exec_at(file, line, conn, "SET client_min_messages = warning");
	pgtest_exec_at(file, line, conn, drop);
	pgtest_exec_at(file, line, conn, create);
	PQfinish(conn);
	free(drop);
	free(create);

	char *conninfo = pgtest_conninfo_db(name);
	free(generated);
	return conninfo;
}

char *pgtest_createdb_shop_at(const char *file, int line, const char *name)
{
	char *conninfo = pgtest_createdb_at(file, line, name);
	PGconn *conn = pgtest_connect_at(file, line, conninfo);
	char *err = NULL;

	pgtest_exec_file_at(file, line, conn, "sql/example-orders.sql");
	pgtest_migrate_at(file, line, conn);
	/* what `smartpayctl migrate` also does: settings and the currency table */
	struct migrate_settings settings = {.orders_relation = "public.orders",
	                                    .authorization_validity_ms =
	                                        INT64_C(120) * 3600 * 1000};
	if (migrate_write_settings(conn, &settings, &err) != 0)
		fail_at(file, line, false, "settings: %s", err ? err : "not written");
	if (migrate_attach_orders_trigger(conn, "public.orders", &err) != MIGRATE_TRIGGER_ATTACHED)
		fail_at(file, line, false, "orders trigger: %s", err ? err : "not attached");
	PQfinish(conn);
	return conninfo;
}

/* Milliseconds on the monotonic clock. */
static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

PGnotify *pgtest_wait_notify_at(const char *file, int line, PGconn *conn, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;

	for (;;) {
		if (!PQconsumeInput(conn)) {
			char *why = xstrdup(PQerrorMessage(conn));
			fail_at(file, line, false, "PQconsumeInput: %s", trimmed(why));
		}
		PGnotify *notify = PQnotifies(conn);
		if (notify != NULL)
			return notify;

		long long left = deadline - now_ms();
		if (left <= 0)
			return NULL;
		struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			fail_at(file, line, false, "poll: %s", strerror(errno));
	}
}

void pgtest_wait_advisory_waiters_at(const char *file, int line, PGconn *conn, long long n)
{
	long long waiting = 0;

	for (int tries = 0; tries < 1000 && waiting < n; tries++) {
		waiting =
		    pgtest_int_at(file, line, conn,
		                  "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
		                  "AND NOT granted AND database = (SELECT oid FROM pg_database "
		                  "WHERE datname = current_database())");
		if (waiting < n)
			testutil_sleep_ms(10);
	}
	if (waiting != n)
		fail_at(file, line, false, "%lld backends wait for an advisory lock, expected %lld",
		        waiting, n);
}

/* ---- the streaming standby ---- */

/* Runs one statement on the primary from main() (no test to fail): false after printing
 * why. */
static bool primary_exec(const char *sql)
{
	PGconn *conn = PQconnectdb(pg.conninfo);
	PGresult *res = PQstatus(conn) == CONNECTION_OK ? PQexec(conn, sql) : NULL;
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

	if (!ok)
		note("%s: %s", sql, res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	PQclear(res);
	PQfinish(conn);
	return ok;
}

/* Polls the primary until the standby streams as the synchronous one (up to 60 s). */
static bool standby_is_sync(void)
{
	PGconn *conn = PQconnectdb(pg.conninfo);
	bool sync = false;

	for (int i = 0; i < 600 && !sync && PQstatus(conn) == CONNECTION_OK; i++) {
		PGresult *res = PQexec(conn, "SELECT count(*) FROM pg_stat_replication "
		                             "WHERE application_name = 'pgtest_standby' "
		                             "AND state = 'streaming' AND sync_state = 'sync'");
		sync = PQresultStatus(res) == PGRES_TUPLES_OK &&
		       strcmp(PQgetvalue(res, 0, 0), "1") == 0;
		PQclear(res);
		if (!sync)
			testutil_sleep_ms(100);
	}
	PQfinish(conn);
	return sync;
}

/* Writes the standby's own settings after those pg_basebackup copied from the primary. */
static bool write_standby_conf(void)
{
	char *path = xasprintf("%s/postgresql.conf", pg.standby_data);
	FILE *f = fopen(path, "a");
	bool ok = f != NULL;

	if (f != NULL) {
		fprintf(f,
		        "\n# pgtest standby\n"
		        "port = %d\n"
		        "unix_socket_directories = '%s'\n"
		        "cluster_name = 'pgtest_standby'\n"
		        "synchronous_standby_names = ''\n"
		        "hot_standby = on\n",
		        pg.standby_port, pg.standby_sock);
		ok = fclose(f) == 0;
	}
	if (!ok)
		note("%s: %s", path, strerror(errno));
	free(path);
	return ok;
}

/* Replaces the watchdog by one that knows about the standby too. */
static void restart_watchdog(void)
{
	if (pg.watchdog_fd >= 0) {
		ssize_t n = write(pg.watchdog_fd, "x", 1);
		(void)n;
		close(pg.watchdog_fd);
		pg.watchdog_fd = -1;
	}
	start_watchdog();
}

const char *pgtest_standby_start(void)
{
	if (pg.standby_port != 0)
		return pg.standby_conninfo;
	if (pg.owner != getpid() || !pg.opts.replication) {
		note("pgtest_standby_start: start the cluster with pgtest_options.replication "
		     "first");
		exit(1);
	}
	snprintf(pg.standby_data, sizeof(pg.standby_data), "%s/standby", pg.dir);
	snprintf(pg.standby_sock, sizeof(pg.standby_sock), "%s/s", pg.dir);
	snprintf(pg.standby_log, sizeof(pg.standby_log), "%s/standby.log", pg.dir);
	if (mkdir(pg.standby_sock, 0700) != 0 ||
	    (pg.drop && chown(pg.standby_sock, pg.uid, pg.gid) != 0)) {
		note("mkdir %s: %s", pg.standby_sock, strerror(errno));
		exit(1);
	}
	char *basebackup = xasprintf("%s/pg_basebackup", pg.bindir);
	char *port = xasprintf("%d", pg.port);
	char *bb_argv[] = {basebackup,
	                   "-D",
	                   pg.standby_data,
	                   "-h",
	                   "127.0.0.1",
	                   "-p",
	                   port,
	                   "-U",
	                   "postgres",
	                   "-R",
	                   "-X",
	                   "stream",
	                   "-C",
	                   "-S",
	                   "pgtest_standby",
	                   "--checkpoint=fast",
	                   "--no-sync",
	                   NULL};
	int rc = run_argv(bb_argv, pg.ctl_log, true);
	free(basebackup);
	free(port);
	if (rc != 0) {
		note("pg_basebackup failed (status %d)", rc);
		print_file(pg.ctl_log);
		exit(1);
	}

	pg.standby_port = testutil_free_port();
	if (pg.standby_port < 0 || !write_standby_conf())
		exit(1);
	pg.standby_stop_argv[0] = pg.pg_ctl;
	pg.standby_stop_argv[1] = "-D";
	pg.standby_stop_argv[2] = pg.standby_data;
	pg.standby_stop_argv[3] = "-m";
	pg.standby_stop_argv[4] = "immediate";
	pg.standby_stop_argv[5] = "-w";
	pg.standby_stop_argv[6] = "stop";
	pg.standby_stop_argv[7] = NULL;
	restart_watchdog();
	char *start_argv[] = {pg.pg_ctl,       "-w", "-t",           "120",   "-D",
	                      pg.standby_data, "-l", pg.standby_log, "start", NULL};
	if (run_argv(start_argv, pg.ctl_log, true) != 0) {
		note("the standby did not start");
		print_file(pg.ctl_log);
		print_file(pg.standby_log);
		exit(1);
	}
	/* from now on every commit on the primary waits for the standby's flush */
	if (!primary_exec("ALTER SYSTEM SET synchronous_standby_names = 'pgtest_standby'") ||
	    !primary_exec("SELECT pg_reload_conf()") || !standby_is_sync()) {
		note("the standby does not stream synchronously");
		print_file(pg.log);
		print_file(pg.standby_log);
		exit(1);
	}
	pg.standby_conninfo = pgtest_standby_conninfo_db("postgres");
	note("synchronous standby ready (port %d)", pg.standby_port);
	return pg.standby_conninfo;
}

int pgtest_standby_port(void)
{
	return pg.standby_port;
}

const char *pgtest_standby_log_path(void)
{
	return pg.standby_log;
}

char *pgtest_standby_conninfo_db(const char *dbname)
{
	return xasprintf("host=127.0.0.1 port=%d user=postgres dbname=%s", pg.standby_port, dbname);
}

/* The parent process id of `pid` from /proc, or -1; *zombie tells whether it is one. */
static pid_t proc_parent(pid_t pid, bool *zombie)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "PID (COMM) STATE PPID ...": COMM may hold anything but ends at the last ')' */
	char *close = strrchr(buf, ')');
	char state;
	long ppid;
	if (close == NULL || sscanf(close + 1, " %c %ld", &state, &ppid) != 2)
		return -1;
	if (zombie)
		*zombie = state == 'Z';
	return (pid_t)ppid;
}

/* The pids of the processes whose parent is `parent` (malloc'd, *n of them). */
static pid_t *proc_children(pid_t parent, size_t *n)
{
	DIR *dir = opendir("/proc");
	size_t cap = 0;
	pid_t *pids = NULL;
	struct dirent *e;

	*n = 0;
	while (dir && (e = readdir(dir)) != NULL) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end != '\0' || pid <= 0 || proc_parent((pid_t)pid, NULL) != parent)
			continue;
		pids = xgrow(pids, &cap, *n + 1, sizeof(*pids));
		pids[(*n)++] = (pid_t)pid;
	}
	if (dir)
		closedir(dir);
	return pids;
}

void pgtest_primary_kill_at(const char *file, int line)
{
	char *pidfile = xasprintf("%s/postmaster.pid", pg.data);
	char *text = testutil_read_file(pidfile);
	free(pidfile);
	long postmaster = text ? strtol(text, NULL, 10) : 0;
	/* line 7: the key and id of the System V segment, which nobody removes after a kill */
	const char *at = text;
	for (int i = 0; at && i < 6; i++)
		at = (at = strchr(at, '\n')) ? at + 1 : NULL;
	unsigned long shm_key = 0;
	int shm_id = -1;
	if (at == NULL || sscanf(at, "%lx %d", &shm_key, &shm_id) != 2)
		shm_id = -1;
	free(text);
	if (postmaster <= 0)
		fail_at(file, line, false, "pgtest_primary_kill: no postmaster.pid");
	/* stopped, it forks nothing while its processes are collected */
	if (kill((pid_t)postmaster, SIGSTOP) != 0)
		fail_at(file, line, false, "kill %ld: %s", postmaster, strerror(errno));
	size_t n;
	pid_t *children = proc_children((pid_t)postmaster, &n);
	kill((pid_t)postmaster, SIGKILL);
	for (size_t i = 0; i < n; i++)
		kill(children[i], SIGKILL);
	free(children);
	/* gone (or a zombie nobody reaps yet) within 10 s */
	bool zombie = false;
	for (int i = 0; i < 1000 && proc_parent((pid_t)postmaster, &zombie) >= 0 && !zombie; i++)
		testutil_sleep_ms(10);
	if (proc_parent((pid_t)postmaster, &zombie) >= 0 && !zombie)
		fail_at(file, line, false, "the postmaster %ld survived SIGKILL", postmaster);
	if (shm_id >= 0)
		shmctl(shm_id, IPC_RMID, NULL);
	pg.running = false;
}

void pgtest_standby_promote_at(const char *file, int line)
{
	if (pg.standby_port == 0)
		fail_at(file, line, false, "pgtest_standby_promote: no standby");
	char *argv[] = {pg.pg_ctl, "-D", pg.standby_data, "-w", "-t", "120", "promote", NULL};
	if (run_argv(argv, pg.ctl_log, true) != 0) {
		print_file(pg.ctl_log);
		print_file(pg.standby_log);
		fail_at(file, line, false, "pg_ctl promote failed");
	}
}

char *pgtest_ctl_config(const char *conninfo, const char *orders_relation,
                        const char *database_extra, const char *tail)
{
	static unsigned counter;
	char *path = xasprintf("%s/ctl-%ld-%u.conf", pgtest_dir(), (long)getpid(), ++counter);
	char *text = xasprintf("; smartpayctl test configuration\n"
	                       "[database]\n"
	                       "conninfo = %s\n"
	                       "orders_relation = %s\n"
	                       "%s"
	                       "\n"
	                       "[smartpay]\n"
	                       "base_url = http://127.0.0.1:9\n"
	                       "merchant_key = test-merchant\n"
	                       "%s",
	                       conninfo, orders_relation ? orders_relation : "public.orders",
	                       database_extra ? database_extra : "", tail ? tail : "");
	testutil_write_file(path, text, 0600);
	free(text);
	return path;
}

/* The arguments of a smartpayctl run as one line, for messages. */
static void ctl_words(char *buf, size_t cap, const char *const *args)
{
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; args[i] != NULL && len < cap; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? " " : "", args[i]);
}

struct testutil_run pgtest_ctl_at(const char *file, int line, const char *config, int expect,
                                  const char *const *args)
{
	const char *argv[24] = {"-c", config};
	size_t n = config ? 2 : 0;
	for (size_t i = 0; args[i] != NULL; i++) {
		if (n + 1 >= sizeof(argv) / sizeof(argv[0]))
			fail_at(file, line, false, "smartpayctl: too many arguments");
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	char words[256];
	ctl_words(words, sizeof(words), args);
	struct testutil_run r = testutil_run_built("smartpayctl", argv, pgtest_dir());
	if (r.status != expect)
		fail_at(file, line, false,
		        "smartpayctl %s: exit %d, expected %d\nstdout:\n%sstderr:\n%s", words,
		        r.status, expect, r.out, r.err);
	if ((expect == 1 || expect == 2) && r.err[0] == '\0')
		fail_at(file, line, false, "smartpayctl %s failed without a message", words);
	return r;
}

void pgtest_ctl_check_at(const char *file, int line, const char *config, int expect,
                         const char *err_has, const char *const *args)
{
	struct testutil_run r = pgtest_ctl_at(file, line, config, expect, args);
	if (err_has && strstr(r.err, err_has) == NULL)
		fail_at(file, line, false, "smartpayctl %s: expected \"%s\" on stderr:\n%s",
		        args[0], err_has, r.err);
	testutil_run_free(&r);
}

PGresult *pgtest_await_result(PGconn *conn)
{
	PGresult *res = PQgetResult(conn);
	PGresult *extra;

	while ((extra = PQgetResult(conn)) != NULL)
		PQclear(extra);
	return res;
}
