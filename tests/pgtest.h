/* A private, throwaway PostgreSQL cluster for the integration tests.
 *
 * pgtest_start() (from main() or an unchecked fixture, i.e. in the process that runs
 * the suite, before Check forks the tests) creates a temporary directory
 * ($PGTEST_TMPDIR, else /dev/shm unless durable, else $TMPDIR or /tmp), copies a
 * cached initdb template into it (the template is made once per build tree under
 * $SP_TOP_BUILDDIR/tests/pgtemplate, guarded by flock), and starts a server with
 * `pg_ctl -w start`: trust authentication, user postgres, encoding UTF8, locale C,
 * time zone UTC, a unix socket in that directory and a free TCP port on 127.0.0.1,
 * fsync and full_page_writes off unless pgtest_options.durable. synchronous_commit
 * stays on by default: a committed transaction is then in the WAL (in the OS's cache),
 * so it survives an immediate stop of the server, which the crash and restart tests
 * rely on; fsync=off only gives up safety against an operating-system crash.
 * The binaries come from $PG_BINDIR (set by TESTS_ENVIRONMENT; default
 * /usr/lib/postgresql/15/bin). Running as root, initdb and the server run as the
 * `postgres` system user (`nobody` if absent) and the directory is chowned to it.
 *
 * The process that started the cluster stops it (pg_ctl -m immediate) and removes the
 * directory at exit (atexit; forked test children never do). If that process dies
 * without exiting (a signal, SIGKILL, a crash), a small watchdog process started with
 * the cluster, in its own session, notices and does the same. PGTEST_KEEP=1 in the
 * environment keeps the directory for inspection. On a start failure the server log
 * is printed on stderr.
 *
 * The helpers below that take a PGconn or return a database (pgtest_connect,
 * pgtest_exec, ..., pgtest_restart) are for use inside tests: on error they fail the
 * current test with the caller's file and line and the server's message. */
#ifndef SP_PGTEST_H
#define SP_PGTEST_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "testutil.h"

struct pgtest_options {
	/* fsync and full_page_writes on, as in production, so that commits cost what they
	 * cost there (benchmarks); off (the default) is faster and enough for tests */
	bool durable;
	/* synchronous_commit = off: faster commits, but the last ones are lost when the
	 * server stops abruptly (never with the restart tests) */
	bool async_commit;
	/* max_connections; 0 means 100 */
	int max_connections;
	/* further postgresql.conf lines (a later line wins), or NULL */
	const char *extra_conf;
	/* ready for streaming replication (wal_level = replica, WAL senders and slots), so
	 * that pgtest_standby_start can make a standby of it */
	bool replication;
};

/* Starts the cluster once per process with default options and returns its conninfo,
 * "host=DIR port=N user=postgres dbname=postgres". Exits the program with status 1
 * (after printing the reason and the server log) when it cannot. */
const char *pgtest_start(void);

/* Same with options (NULL = defaults); the options of the first call win. */
const char *pgtest_start_with(const struct pgtest_options *opts);

/* The conninfo of database postgres; NULL before pgtest_start. */
const char *pgtest_conninfo(void);

/* The conninfo of database `dbname` on the cluster (malloc'd; free it). */
char *pgtest_conninfo_db(const char *dbname);

/* The cluster's directory (socket directory, data in DIR/data, log in DIR/server.log),
 * its TCP port on 127.0.0.1, and the server log's path. */
const char *pgtest_dir(void);
int pgtest_port(void);
const char *pgtest_log_path(void);

/* Copies the server log to stderr. */
void pgtest_print_log(void);

/* Stops the server and removes the directory now (also done at exit). Only in the
 * process that started it; a no-op elsewhere and when already stopped. */
void pgtest_stop(void);

/* Stops the server only (immediate = like a crash, else a fast shutdown), keeping the
 * directory, so that pgtest_server_start can bring it back on the same port. */
#define pgtest_server_stop(immediate) pgtest_server_stop_at(__FILE__, __LINE__, (immediate))
void pgtest_server_stop_at(const char *file, int line, bool immediate);

/* Starts the stopped server again (same directory, port and socket). */
#define pgtest_server_start() pgtest_server_start_at(__FILE__, __LINE__)
void pgtest_server_start_at(const char *file, int line);

/* Stops and starts the server: "PostgreSQL restarted". Existing connections break. */
#define pgtest_restart(immediate) pgtest_restart_at(__FILE__, __LINE__, (immediate))
void pgtest_restart_at(const char *file, int line, bool immediate);

/* Creates a fresh, empty database (dropping one of that name first) and returns its
 * conninfo (malloc'd). `name` NULL makes a unique name "t_PID_N". */
#define pgtest_createdb(name) pgtest_createdb_at(__FILE__, __LINE__, (name))
char *pgtest_createdb_at(const char *file, int line, const char *name);

/* Same, then the shop's example orders table (sql/example-orders.sql), every built-in
 * migration and the orders trigger on public.orders: a database ready for the daemon. */
#define pgtest_createdb_shop(name) pgtest_createdb_shop_at(__FILE__, __LINE__, (name))
char *pgtest_createdb_shop_at(const char *file, int line, const char *name);

/* Connects (blocking) to `conninfo`, or to database postgres when NULL. PQfinish it. */
#define pgtest_connect(conninfo) pgtest_connect_at(__FILE__, __LINE__, (conninfo))
PGconn *pgtest_connect_at(const char *file, int line, const char *conninfo);

/* Runs SQL (possibly several statements) that must succeed. */
#define pgtest_exec(conn, sql) pgtest_exec_at(__FILE__, __LINE__, (conn), (sql))
void pgtest_exec_at(const char *file, int line, PGconn *conn, const char *sql);

/* Runs SQL that must fail with SQLSTATE `sqlstate` (e.g. "23505" unique_violation). */
#define pgtest_exec_fails(conn, sql, sqlstate)                                                     \
	pgtest_exec_fails_at(__FILE__, __LINE__, (conn), (sql), (sqlstate))
void pgtest_exec_fails_at(const char *file, int line, PGconn *conn, const char *sql,
                          const char *sqlstate);

/* Runs a query that must return rows; PQclear the result. */
#define pgtest_query(conn, sql) pgtest_query_at(__FILE__, __LINE__, (conn), (sql))
PGresult *pgtest_query_at(const char *file, int line, PGconn *conn, const char *sql);

/* Runs a query that must return exactly one row and returns its first column as a
 * malloc'd string (free it), or NULL when that value is SQL NULL. */
#define pgtest_value(conn, sql) pgtest_value_at(__FILE__, __LINE__, (conn), (sql))
char *pgtest_value_at(const char *file, int line, PGconn *conn, const char *sql);

/* Same, as a number (the value must not be NULL). */
#define pgtest_int(conn, sql) pgtest_int_at(__FILE__, __LINE__, (conn), (sql))
long long pgtest_int_at(const char *file, int line, PGconn *conn, const char *sql);

/* Runs the SQL file `path`, relative to $SP_TOP_SRCDIR (default "."). */
#define pgtest_exec_file(conn, path) pgtest_exec_file_at(__FILE__, __LINE__, (conn), (path))
void pgtest_exec_file_at(const char *file, int line, PGconn *conn, const char *path);

/* Applies the built-in migrations (lib/store_migrate.h). */
#define pgtest_migrate(conn) pgtest_migrate_at(__FILE__, __LINE__, (conn))
void pgtest_migrate_at(const char *file, int line, PGconn *conn);

/* The result of the query sent (PQsendQuery) on `conn`, waiting for it; the results
 * after it are drained. PQclear it. */
PGresult *pgtest_await_result(PGconn *conn);

/* Waits up to timeout_ms for a notification on a connection that LISTENs; returns it
 * (PQfreemem it) or NULL on timeout. */
#define pgtest_wait_notify(conn, timeout_ms)                                                       \
	pgtest_wait_notify_at(__FILE__, __LINE__, (conn), (timeout_ms))
PGnotify *pgtest_wait_notify_at(const char *file, int line, PGconn *conn, int timeout_ms);

/* Waits (up to about 10 s) until exactly `n` backends of the connection's database wait
 * for an advisory lock; fails the test when they do not. */
#define pgtest_wait_advisory_waiters(conn, n)                                                      \
	pgtest_wait_advisory_waiters_at(__FILE__, __LINE__, (conn), (n))
void pgtest_wait_advisory_waiters_at(const char *file, int line, PGconn *conn, long long n);

/* ---- a synchronous streaming standby (pgtest_options.replication) ----
 *
 * pgtest_standby_start (in the process that started the cluster, before Check forks)
 * makes a standby with pg_basebackup -R through a physical replication slot, in the
 * cluster's directory (data in DIR/standby, socket directory DIR/s) on its own port of
 * 127.0.0.1, running as the same user; then sets synchronous_standby_names on the
 * primary, so that every commit waits until the standby has flushed it, and waits until
 * the standby is the synchronous one. The standby's own synchronous_standby_names is
 * empty: once promoted it commits alone. It is stopped and removed with the cluster. */

/* Starts the standby; returns its conninfo "host=127.0.0.1 port=N user=postgres
 * dbname=postgres". Exits the program with status 1 when it cannot. */
const char *pgtest_standby_start(void);

/* The standby's TCP port on 127.0.0.1 (0 before pgtest_standby_start), its server log,
 * and the conninfo of database `dbname` on it (malloc'd). */
int pgtest_standby_port(void);
const char *pgtest_standby_log_path(void);
char *pgtest_standby_conninfo_db(const char *dbname);

/* Kills the primary like a power cut: SIGKILL to the postmaster and each of its
 * processes, nothing flushed, no shutdown. */
#define pgtest_primary_kill() pgtest_primary_kill_at(__FILE__, __LINE__)
void pgtest_primary_kill_at(const char *file, int line);

/* Promotes the standby (pg_ctl promote -w): it becomes a primary that accepts writes. */
#define pgtest_standby_promote() pgtest_standby_promote_at(__FILE__, __LINE__)
void pgtest_standby_promote_at(const char *file, int line);

/* ---- smartpayctl against the cluster ---- */

/* Writes a smartpayctl/smartpayd configuration for database `conninfo` into the
 * cluster's directory and returns its path (malloc'd; unlink and free it). Line 1 is a
 * comment, then [database] with conninfo and orders_relation (NULL: public.orders);
 * `database_extra` (may be NULL) goes at the end of [database] (its first line is line
 * 5), then [smartpay] (a closed loopback port, merchant test-merchant) and `tail` (may be
 * NULL) as is. */
char *pgtest_ctl_config(const char *conninfo, const char *orders_relation,
                        const char *database_extra, const char *tail);

/* Runs the built smartpayctl with `-c config` (config NULL: without) and the arguments
 * given, and fails the test (naming the caller's line, stdout and stderr) unless it
 * exits `expect`, or fails (exit 1 or 2) without a word on stderr. The result is the
 * caller's to testutil_run_free. */
#define PGTEST_CTL(config, expect, ...)                                                            \
	pgtest_ctl_at(__FILE__, __LINE__, (config), (expect),                                      \
	              (const char *const[]){__VA_ARGS__, NULL})
struct testutil_run pgtest_ctl_at(const char *file, int line, const char *config, int expect,
                                  const char *const *args);

/* The same, then asserts that stderr contains `err_has` (NULL: anything) and frees the
 * result: one line for a run whose output matters no further. */
#define PGTEST_CTL_CHECK(config, expect, err_has, ...)                                             \
	pgtest_ctl_check_at(__FILE__, __LINE__, (config), (expect), (err_has),                     \
	                    (const char *const[]){__VA_ARGS__, NULL})
void pgtest_ctl_check_at(const char *file, int line, const char *config, int expect,
                         const char *err_has, const char *const *args);

#endif
