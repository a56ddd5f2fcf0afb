/* Runs the real smartpayd binary for integration tests: a config file in a temp dir,
 * the process with its log captured, graceful stop or SIGKILL, and waiting on the
 * database for the outcomes a user would see. */
#ifndef SP_DAEMONPROC_H
#define SP_DAEMONPROC_H

#include <stdbool.h>
#include <sys/types.h>

#include <libpq-fe.h>

struct daemonproc {
	char dir[256]; /* temp dir with smartpayd.conf, the key file and the log */
	char conf[300];
	char log[300];
	pid_t pid;  /* 0 when not running */
	int status; /* wait status of the last exit */
	/* Environment changes for the daemon, applied in the child before exec: "NAME=value"
	 * sets, "NAME" unsets. NULL-terminated; NULL (the default after init) for none. */
	const char *const *env;
};

/* Writes DIR/smartpayd.conf: the given conninfo, SmartPay base URL and authentication
 * key, short retry and poll times for tests, and `extra` appended verbatim (INI lines,
 * may repeat sections, e.g. "[daemon]\ninstance_name = b\n"). */
void daemonproc_init(struct daemonproc *d, const char *conninfo, const char *base_url,
                     const char *merchant_key, const char *auth_key, const char *extra);

/* Starts smartpayd (with --once when `once`) and returns at once. With
 * DAEMONPROC_WRAPPER set in the environment (e.g. "valgrind -q --error-exitcode=99
 * --leak-check=full"), the daemon runs under that command prefix, in the same process. */
void daemonproc_start(struct daemonproc *d, bool once);
/* Runs `smartpayd --once` to completion and returns its exit code. */
int daemonproc_run_once(struct daemonproc *d);
/* SIGTERM and wait; returns the exit code (-1 when killed by a signal). */
int daemonproc_stop(struct daemonproc *d);
/* SIGKILL and wait. */
void daemonproc_kill(struct daemonproc *d);
/* Sends a signal without waiting. */
void daemonproc_signal(struct daemonproc *d, int sig);
/* True when the log contains `needle`. */
bool daemonproc_log_contains(const struct daemonproc *d, const char *needle);
/* Prints the log to stderr (on failures). */
void daemonproc_print_log(const struct daemonproc *d);
/* Stops if running and removes the temp dir. */
void daemonproc_cleanup(struct daemonproc *d);

/* Polls until `sql` (one row, one integer column) returns at least `want`, or the
 * timeout passes; returns the last value seen. */
long long wait_for_count(PGconn *conn, const char *sql, long long want, int timeout_ms);

/* Same, printing the daemon's log when the count stays below `want`. */
long long daemonproc_wait_count(const struct daemonproc *d, PGconn *conn, const char *sql,
                                long long want, int timeout_ms);

#endif
