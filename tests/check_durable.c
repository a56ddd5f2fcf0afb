/* Durability and least privilege of the daemon's process and sessions: the problems a
 * server's settings add up to (pure, row by row), the warning a daemon logs against a
 * cluster with fsync = off and synchronous_commit = off, the session settings it uses
 * anyway (synchronous_commit = on, statement_timeout), a statement_timeout that cancels a
 * statement stuck behind the shop's lock in the daemon and in smartpayctl, and a daemon
 * process that cannot be dumped or read by its own user. */
#include "autoconfig.h"

#include "durability.h"
#include "pgtest.h"
#include "testutil.h"
#include "world.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MS 30000

/* The daemon's world here: waits of WAIT_MS. */
static const struct world_opts durable_world = {.wait_ms = WAIT_MS};

/* ---- the decision, row by row ---- */

/* One server state and the problems it must (or must not) produce. */
struct durability_case {
	bool fsync, full_page_writes;
	const char *synchronous_commit, *standby_names;
	long wal_senders;
	const char *want;  /* a text the problems contain; NULL: no problem at all */
	const char * not ; /* a text they must not contain, or NULL */
};

static const struct durability_case durability_cases[] = {
    {true, true, "on", "", 0, NULL, NULL},
    {true, true, "on", "standby1", 1, NULL, NULL},
    {true, true, "remote_apply", "standby1", 1, NULL, NULL},
    {true, true, "local", "", 0, NULL, NULL},
    {false, true, "on", "", 0, "fsync=off", "full_page_writes"},
    {true, false, "on", "", 0, "full_page_writes=off", "fsync"},
    {true, true, "off", "", 0, "synchronous_commit=off", NULL},
    {true, true, "local", "standby1", 1, "synchronous_commit=local", NULL},
    {true, true, "remote_write", "FIRST 1 (s1, s2)", 2, "synchronous_commit=remote_write", NULL},
    {true, true, "on", "", 2, "2 standby(s) stream from this server asynchronously", NULL},
    {false, false, "off", "", 1, "fsync=off", NULL},
};

START_TEST(durability_table)
{
	const struct durability_case *c = &durability_cases[_i];
	struct db_durability d = {.fsync = c->fsync,
	                          .full_page_writes = c->full_page_writes,
	                          .synchronous_commit = c->synchronous_commit,
	                          .synchronous_standby_names = c->standby_names,
	                          .wal_senders = c->wal_senders};
	char *problems = durability_problems(&d);
	if (c->want == NULL) {
		ck_assert_msg(problems == NULL, "row %d: unexpected problems: %s", _i, problems);
	} else {
		ck_assert_msg(problems && strstr(problems, c->want), "row %d: %s not in %s", _i,
		              c->want, problems ? problems : "(none)");
		ck_assert_msg(c->not == NULL || strstr(problems, c->not ) == NULL,
		              "row %d: %s in %s", _i, c->not, problems);
	}
	free(problems);
}
END_TEST

/* ---- the daemon against a real server ---- */

/* Adds a shipped order for a fresh authorization of 20.00 EUR; returns its id. */
static long add_shipped_order(struct world *w)
{
	return world_add_order(w, &(struct world_order){.amount = "20.00"}, NULL);
}

/* The cluster of this suite runs with fsync = off and synchronous_commit = off: the
 * daemon says that commits are not durable there, and its own session commits with
 * synchronous_commit = on regardless. */
START_TEST(warns_when_commits_are_not_durable)
{
	struct world w;
	world_up_with(&w, &durable_world, NULL);
	int code = daemonproc_run_once(&w.d);
	if (code != 0)
		daemonproc_print_log(&w.d);
	ck_assert_int_eq(code, 0);
	bool ok = daemonproc_log_contains(&w.d, "event=db_not_durable") &&
	          daemonproc_log_contains(&w.d, "fsync=off: a committed intent is lost") &&
	          daemonproc_log_contains(&w.d, "event=db_session fsync=off") &&
	          daemonproc_log_contains(&w.d, "synchronous_commit=on") &&
	          daemonproc_log_contains(&w.d, "statement_timeout=30s") &&
	          !daemonproc_log_contains(&w.d, "synchronous_commit=off");
	if (!ok)
		daemonproc_print_log(&w.d);
	ck_assert(ok);
	/* the server's own default stays as it was: only the daemon's sessions changed */
	char *server = pgtest_value(w.db, "SHOW synchronous_commit");
	ck_assert_str_eq(server, "off");
	free(server);
	world_down(&w);
}
END_TEST

/* A statement of the daemon stuck behind a lock the shop holds is cancelled after
 * statement_timeout; once the lock is gone the daemon captures as usual. */
START_TEST(statement_timeout_cancels_a_stuck_statement)
{
	struct world w;
	world_up_with(&w, &durable_world, "[database]\nstatement_timeout = 300ms\n");
	PGconn *shop = pgtest_connect(w.conninfo);
	pgtest_exec(shop, "BEGIN; LOCK TABLE public.orders IN ACCESS EXCLUSIVE MODE");
	daemonproc_start(&w.d, false);
	world_await_log(&w, "canceling statement due to statement timeout", 1);
	pgtest_exec(shop, "COMMIT");
	PQfinish(shop);
	long id = add_shipped_order(&w);
	char sql[160];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE order_id = '%ld' "
	         "AND kind = 'capture' AND state = 'succeeded'",
	         id);
	ck_assert_int_eq(daemonproc_wait_count(&w.d, w.db, sql, 1, WAIT_MS), 1);
	world_down(&w);
}
END_TEST

/* smartpayctl's sessions get the statement_timeout too: a command stuck behind a lock
 * fails with the server's reason instead of hanging. */
START_TEST(smartpayctl_statement_timeout)
{
	struct world w;
	world_up_with(&w, &durable_world, "[database]\nstatement_timeout = 300ms\n");
	PGconn *shop = pgtest_connect(w.conninfo);
	pgtest_exec(shop, "BEGIN; LOCK TABLE smartpay.modifications IN ACCESS EXCLUSIVE MODE");
	struct testutil_run r = testutil_run_built(
	    "smartpayctl", (const char *[]){"-c", w.d.conf, "status", NULL}, pgtest_dir());
	ck_assert_msg(r.status == 1 && strstr(r.err, "statement timeout") != NULL, "status %d: %s",
	              r.status, r.err);
	testutil_run_free(&r);
	pgtest_exec(shop, "COMMIT");
	PQfinish(shop);
	r = testutil_run_built("smartpayctl", (const char *[]){"-c", w.d.conf, "status", NULL},
	                       pgtest_dir());
	ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.err);
	testutil_run_free(&r);
	world_down(&w);
}
END_TEST

/* The command prefix that runs a program as user nobody when the tests run as root (the
 * check below needs a process that is not root), else "". */
#define AS_NOBODY "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all"

/* The owner of /proc/PID/status: the process's user while it is dumpable, root once it
 * is not (proc(5)). */
static uid_t proc_owner(pid_t pid)
{
	char path[64];
	struct stat st;
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_uid;
}

/* The running daemon is not dumpable: no core file can hold its key, and a process of its
 * own user cannot read its memory. Running as root, the daemon (and a control process,
 * which shows that the check tells the two apart) run as nobody, over TCP. */
START_TEST(daemon_is_not_dumpable)
{
	bool root = geteuid() == 0;
	uid_t user = root ? 65534 : geteuid();
	struct world w;
	world_up_with(&w, &durable_world, NULL);
	char *tcp = NULL;
	ck_assert_int_ge(asprintf(&tcp, "host=127.0.0.1 port=%d user=postgres dbname=%s",
	                          pgtest_port(), PQdb(w.db)),
	                 0);
	world_daemon(&w, tcp, NULL);
	static const char *const env[] = {"DAEMONPROC_WRAPPER=" AS_NOBODY, NULL};
	if (root) {
		char key[320];
		snprintf(key, sizeof(key), "%s/authentication-key", w.d.dir);
		ck_assert_int_eq(chown(w.d.dir, user, user), 0);
		ck_assert_int_eq(chown(w.d.conf, user, user), 0);
		ck_assert_int_eq(chown(key, user, user), 0);
		w.d.env = env;
	}
	daemonproc_start(&w.d, false);
	world_await_log(&w, "event=db_session", 1);

	pid_t control = fork();
	ck_assert_int_ge(control, 0);
	if (control == 0) {
		if (root)
			execl("/bin/sh", "sh", "-c", "exec " AS_NOBODY " sleep 30", (char *)NULL);
		else
			execl("/bin/sleep", "sleep", "30", (char *)NULL);
		_exit(127);
	}
	uid_t control_owner = (uid_t)-1;
	for (int i = 0; i < 200 && control_owner != user; i++) {
		testutil_sleep_ms(20); /* until setpriv has switched users */
		control_owner = proc_owner(control);
	}
	kill(control, SIGKILL);
	waitpid(control, NULL, 0);
	ck_assert_int_eq(control_owner, user);
	ck_assert_int_eq(proc_owner(w.d.pid), 0);
	world_down(&w);
	free(tcp);
}
END_TEST

static Suite *durable_suite(void)
{
	Suite *s = suite_create("durable");
	TCase *pure = tcase_create("decision");
	tcase_add_loop_test(pure, durability_table, 0,
	                    (int)(sizeof(durability_cases) / sizeof(durability_cases[0])));
	suite_add_tcase(s, pure);
	TCase *tc = tcase_create("session");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, warns_when_commits_are_not_durable);
	tcase_add_test(tc, statement_timeout_cancels_a_stuck_statement);
	tcase_add_test(tc, smartpayctl_statement_timeout);
	tcase_add_test(tc, daemon_is_not_dumpable);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	/* fsync off (the default of test clusters) and the server's synchronous_commit off */
	struct pgtest_options opts = {.async_commit = true};
	pgtest_start_with(&opts);
	int status = testutil_run_suite(durable_suite(), CK_NORMAL);
	pgtest_stop();
	return status;
}
