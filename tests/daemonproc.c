#include "autoconfig.h"

#include "daemonproc.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* One configuration line of a test config. */
struct conf_entry {
	char section[32];
	char key[64];
	char *value;
};

/* Sets section.key, replacing an earlier value (the config parser refuses duplicates). */
static void conf_set(struct conf_entry *entries, size_t *n, size_t cap, const char *section,
                     const char *key, const char *value)
{
	for (size_t i = 0; i < *n; i++) {
		if (strcmp(entries[i].section, section) == 0 && strcmp(entries[i].key, key) == 0) {
			free(entries[i].value);
			entries[i].value = strdup(value);
			return;
		}
	}
	ck_assert_uint_lt(*n, cap);
	snprintf(entries[*n].section, sizeof(entries[*n].section), "%s", section);
	snprintf(entries[*n].key, sizeof(entries[*n].key), "%s", key);
	entries[*n].value = strdup(value);
	(*n)++;
}

/* Applies INI text ("[section]" and "key = value" lines) on top of the entries. */
static void conf_apply(struct conf_entry *entries, size_t *n, size_t cap, const char *text)
{
	char section[32] = "";
	char *copy = strdup(text), *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		while (*line == ' ' || *line == '\t')
			line++;
		if (*line == '[') {
			char *close = strchr(line, ']');
			ck_assert_ptr_nonnull(close);
			snprintf(section, sizeof(section), "%.*s", (int)(close - line - 1),
			         line + 1);
			continue;
		}
		char *eq = strchr(line, '=');
		if (*line == '\0' || *line == ';' || *line == '#' || eq == NULL)
			continue;
		char *key_end = eq;
		while (key_end > line && key_end[-1] == ' ')
			key_end--;
		char key[64];
		snprintf(key, sizeof(key), "%.*s", (int)(key_end - line), line);
		const char *value = eq + 1;
		while (*value == ' ')
			value++;
		conf_set(entries, n, cap, section, key, value);
	}
	free(copy);
}

void daemonproc_init(struct daemonproc *d, const char *conninfo, const char *base_url,
                     const char *merchant_key, const char *auth_key, const char *extra)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "/tmp/smartpayd-test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d->dir));
	snprintf(d->conf, sizeof(d->conf), "%s/smartpayd.conf", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/smartpayd.log", d->dir);
	char key[300];
	snprintf(key, sizeof(key), "%s/authentication-key", d->dir);
	char *key_text = NULL;
	ck_assert_int_ge(asprintf(&key_text, "%s\n", auth_key), 0);
	testutil_write_file(key, key_text, 0600);
	free(key_text);

	struct conf_entry entries[64];
	size_t n = 0, cap = sizeof(entries) / sizeof(entries[0]);
	conf_set(entries, &n, cap, "database", "conninfo", conninfo);
	conf_set(entries, &n, cap, "database", "orders_relation", "public.orders");
	conf_set(entries, &n, cap, "smartpay", "base_url", base_url);
	conf_set(entries, &n, cap, "smartpay", "merchant_key", merchant_key);
	conf_set(entries, &n, cap, "smartpay", "authentication_key_file", key);
	conf_set(entries, &n, cap, "smartpay", "origin", "https://shop.example");
	conf_set(entries, &n, cap, "smartpay", "timeout", "5s");
	conf_set(entries, &n, cap, "smartpay", "connect_timeout", "2s");
	conf_set(entries, &n, cap, "daemon", "instance_name", "test");
	conf_set(entries, &n, cap, "daemon", "poll_interval", "500ms");
	conf_set(entries, &n, cap, "daemon", "retry_base", "20ms");
	conf_set(entries, &n, cap, "daemon", "retry_max", "300ms");
	conf_set(entries, &n, cap, "daemon", "lease", "10s");
	conf_set(entries, &n, cap, "daemon", "drain_timeout", "10s");
	conf_set(entries, &n, cap, "daemon", "log_level", "debug");
	conf_set(entries, &n, cap, "metrics", "listen", "");
	if (extra)
		conf_apply(entries, &n, cap, extra);

	char *conf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&conf, &len);
	/* each section once, in the order of first appearance */
	for (size_t i = 0; i < n; i++) {
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(entries[j].section, entries[i].section) == 0;
		if (seen)
			continue;
		fprintf(out, "[%s]\n", entries[i].section);
		for (size_t j = i; j < n; j++)
			if (strcmp(entries[j].section, entries[i].section) == 0)
				fprintf(out, "%s = %s\n", entries[j].key, entries[j].value);
	}
	fclose(out);
	testutil_write_file(d->conf, conf, 0644);
	free(conf);
	for (size_t i = 0; i < n; i++)
		free(entries[i].value);
}

void daemonproc_start(struct daemonproc *d, bool once)
{
	ck_assert_int_eq(d->pid, 0);
	char *prog = testutil_built_program("smartpayd");
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
			close(fd);
		}
		for (const char *const *e = d->env; e && *e; e++) {
			const char *eq = strchr(*e, '=');
			if (eq == NULL) {
				unsetenv(*e);
			} else {
				char *name = strndup(*e, (size_t)(eq - *e));
				setenv(name, eq + 1, 1);
				free(name);
			}
		}
		const char *wrapper = getenv("DAEMONPROC_WRAPPER");
		if (wrapper && *wrapper)
			/* the wrapper (e.g. valgrind) execs the daemon in this same process */
			execl("/bin/sh", "sh", "-c", "exec $DAEMONPROC_WRAPPER \"$0\" \"$@\"", prog,
			      "-c", d->conf, once ? "--once" : (char *)NULL, (char *)NULL);
		else if (once)
			execl(prog, prog, "-c", d->conf, "--once", (char *)NULL);
		else
			execl(prog, prog, "-c", d->conf, (char *)NULL);
		_exit(127);
	}
	free(prog);
	d->pid = pid;
}

/* Waits for the daemon and returns its exit code, or -1 when a signal ended it. */
static int reap(struct daemonproc *d)
{
	int st = 0;
	while (waitpid(d->pid, &st, 0) < 0 && errno == EINTR)
		;
	d->pid = 0;
	d->status = st;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int daemonproc_run_once(struct daemonproc *d)
{
	daemonproc_start(d, true);
	return reap(d);
}

int daemonproc_stop(struct daemonproc *d)
{
	if (d->pid == 0)
		return -1;
	kill(d->pid, SIGTERM);
	return reap(d);
}

void daemonproc_kill(struct daemonproc *d)
{
	if (d->pid == 0)
		return;
	kill(d->pid, SIGKILL);
	reap(d);
}

void daemonproc_signal(struct daemonproc *d, int sig)
{
	if (d->pid)
		kill(d->pid, sig);
}

/* Reads the whole log into a malloc'd string ("" when there is none yet). */
static char *read_log(const struct daemonproc *d)
{
	char *text = testutil_read_file(d->log);
	return text != NULL ? text : calloc(1, 1);
}

bool daemonproc_log_contains(const struct daemonproc *d, const char *needle)
{
	char *text = read_log(d);
	bool found = strstr(text, needle) != NULL;
	free(text);
	return found;
}

void daemonproc_print_log(const struct daemonproc *d)
{
	char *text = read_log(d);
	size_t len = strlen(text);
	/* the tail is what explains a failure */
	const char *start = len > 8000 ? text + len - 8000 : text;
	fprintf(stderr, "---- smartpayd log (%s) ----\n%s---- end of log ----\n", d->log, start);
	free(text);
}

void daemonproc_cleanup(struct daemonproc *d)
{
	if (d->pid)
		daemonproc_kill(d);
	if (d->dir[0] && getenv("DAEMONPROC_KEEP") == NULL) {
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", d->dir);
	}
	d->dir[0] = '\0';
}

long long wait_for_count(PGconn *conn, const char *sql, long long want, int timeout_ms)
{
	long long value = -1;
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (PQstatus(conn) != CONNECTION_OK)
			PQreset(conn); /* the server may have been restarted under us */
		PGresult *res = PQexec(conn, sql);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
			value = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
		if (value >= want)
			return value;
		if (testutil_elapsed_ms(&start) >= timeout_ms)
			return value;
		usleep(20000);
	}
}

long long daemonproc_wait_count(const struct daemonproc *d, PGconn *conn, const char *sql,
                                long long want, int timeout_ms)
{
	long long got = wait_for_count(conn, sql, want, timeout_ms);
	if (got < want)
		daemonproc_print_log(d);
	return got;
}
