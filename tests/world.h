/* One integration test's world: a fresh shop database on the private PostgreSQL
 * (pgtest.h), a smartpay-sim (simproc.h), the configuration of a real smartpayd
 * (daemonproc.h), and the helpers the end-to-end suites share: shop orders for fresh
 * authorizations, polling the database, the simulator and the daemon's log until an
 * outcome shows, and one-shot HTTP requests to the daemon's own listeners.
 *
 * world_up (in a test) makes the database (pgtest_createdb_shop: orders table and
 * migrations), connects to it, starts the simulator and writes the daemon's
 * configuration against both; the daemon itself is started by the test
 * (daemonproc_start(&w->d, ...)). world_down stops whatever runs and frees it all. The
 * helpers fail the current test when something they need does not work. */
#ifndef SP_WORLD_H
#define SP_WORLD_H

#include "daemonproc.h"
#include "pgtest.h"
#include "simproc.h"
#include "testutil.h"

#include <stdbool.h>

#include <libpq-fe.h>

/* What differs between the suites' worlds; a zeroed struct is the common world. */
struct world_opts {
	const struct simproc_opts *sim; /* the simulator's options; NULL: the defaults */
	bool no_sim;                    /* no simulator: the gateway is a closed loopback port */
	bool unmigrated;                /* only the example orders table: a shop before migrate */
	const char *dbname;             /* the database's name; NULL: a unique one */
	const char *daemon_auth_key;    /* the daemon's authentication key; NULL: the simulator's */
	bool metrics;                   /* a [metrics] listener on a free port (metrics_base) */
	bool clean_exit;                /* world_down asserts that the daemon exits 0 */
	int wait_ms;                    /* how long world_await polls; 0: 60 s */
};

struct world {
	char *conninfo; /* of the shop database */
	char *dbname;
	PGconn *db;
	struct simproc *sim; /* NULL with no_sim */
	struct daemonproc d;
	int metrics_port;       /* with opts.metrics, else 0 */
	char metrics_base[64];  /* "http://127.0.0.1:PORT" of that listener */
	struct world_opts opts; /* a copy (the pointers are the caller's) */
};

/* The common world; `extra` (may be NULL) is appended to the daemon's configuration
 * (daemonproc_init). */
void world_up(struct world *w, const char *extra);

/* The same with the variations of `opts` (NULL: none). With opts->metrics, `extra`
 * follows a "[metrics]\nlisten = 127.0.0.1:PORT" section. */
void world_up_with(struct world *w, const struct world_opts *opts, const char *extra);

/* Stops the daemon if it runs (asserting a clean exit with opts.clean_exit), removes
 * its directory, stops the simulator (which must exit 0) and frees the rest. */
void world_down(struct world *w);

/* Replaces the daemon's configuration by one for `conninfo` (another role, a multi-host
 * conninfo) with `extra`; the daemon must not be running. */
void world_daemon(struct world *w, const char *conninfo, const char *extra);

/* The configuration of another daemon `d` (a second instance, a twin) against the world's
 * database and gateway, with `extra`; the caller starts it and daemonproc_cleanup's it. */
void world_daemon_other(const struct world *w, struct daemonproc *d, const char *extra);

/* An order of public.orders; NULL fields take the default named. */
struct world_order {
	const char *amount;         /* "10.00" */
	const char *status;         /* "shipped" */
	const char *capture_amount; /* the column's default */
	const char *txn;            /* a fresh authorization of `amount` EUR at the simulator */
	bool no_txn;                /* the transaction id is NULL (txn is then ignored) */
	const char *authorized_at;  /* an SQL expression; the column's default */
	const char *expires_at;     /* an SQL expression (authorization_expires_at); default */
};

/* Inserts the order (o NULL: all defaults) and returns its id; *txn_out (txn_out may be
 * NULL) receives its transaction id (malloc'd). */
long world_add_order(struct world *w, const struct world_order *o, char **txn_out);

/* Inserts n such orders in one transaction. */
void world_add_orders(struct world *w, int n, const struct world_order *o);

/* The integer `sql` returns on the world's database. */
long long world_count(struct world *w, const char *sql);

/* Waits until `sql` counts exactly `want` (polling until it reaches it); the daemon's
 * log explains a miss. */
void world_await(struct world *w, const char *sql, long long want);

/* Waits until `sql` counts at least `want`. */
void world_await_at_least(struct world *w, const char *sql, long long want);

/* Waits (up to 10 s) until the simulator has performed exactly `want` effects of `type`
 * (NULL: any; see simproc_count_effects). */
void world_await_effects(struct world *w, const char *type, int want);

/* How often `needle` occurs in the daemon's log. */
int world_log_count(const struct world *w, const char *needle);

/* Waits until the daemon's log holds `needle` at least `want` times; prints the log and
 * fails the test when it never does. */
void world_await_log(struct world *w, const char *needle, int want);

/* Sends one request (method GET, HEAD or POST with an empty body) and returns the HTTP
 * status, or 0 when no answer arrived within timeout_ms. *body (may be NULL) receives
 * the malloc'd answer body. */
long world_http(const char *method, const char *url, long timeout_ms, char **body);

/* Polls url until it answers `want` (status) or timeout_ms passes; returns the last
 * status seen. */
long world_wait_status(const char *url, long want, long timeout_ms);

/* Replaces the first occurrence of `from` in the daemon's configuration file by `to`,
 * failing the test when it is absent. */
void world_conf_replace(const struct daemonproc *d, const char *from, const char *to);

/* Runs smartpayctl with the daemon's configuration and the arguments given (PGTEST_CTL:
 * the test fails unless it exits `expect`). The result is the caller's to
 * testutil_run_free. */
#define WORLD_CTL(w, expect, ...) PGTEST_CTL((w)->d.conf, (expect), __VA_ARGS__)

#endif
