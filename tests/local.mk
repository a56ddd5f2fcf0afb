# Tests: Check suites run by `make check`.
TESTS_ENVIRONMENT = SP_TOP_BUILDDIR='$(abs_top_builddir)' SP_TOP_SRCDIR='$(abs_top_srcdir)' PG_BINDIR='$(PG_BINDIR)'
if HAVE_CHECK
check_PROGRAMS += tests/check_gateway tests/check_http
TESTS += tests/check_gateway tests/check_http
tests_check_gateway_SOURCES = tests/check_gateway.c tests/testutil.c tests/testutil.h
tests_check_gateway_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_gateway_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_http_SOURCES = tests/check_http.c tests/testutil.c tests/testutil.h
tests_check_http_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_http_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
check_PROGRAMS += tests/check_money tests/check_log tests/check_config
TESTS += tests/check_money tests/check_log tests/check_config
tests_check_money_SOURCES = tests/check_money.c tests/testutil.c tests/testutil.h
tests_check_money_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_money_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_log_SOURCES = tests/check_log.c tests/testutil.c tests/testutil.h
tests_check_log_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_log_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_config_SOURCES = tests/check_config.c tests/testutil.c tests/testutil.h
tests_check_config_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_config_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# migrations and smartpayctl against a private PostgreSQL (tests/pgtest.h)
check_PROGRAMS += tests/check_migrate
TESTS += tests/check_migrate
tests_check_migrate_SOURCES = tests/check_migrate.c tests/pgtest.c tests/pgtest.h \
	tests/testutil.c tests/testutil.h
tests_check_migrate_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_migrate_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# smartpay-sim: its pure modules directly, and the program over HTTP (tests/simproc.h)
check_PROGRAMS += tests/check_sim
TESTS += tests/check_sim
tests_check_sim_SOURCES = tests/check_sim.c tests/simproc.c tests/simproc.h $(SIM_CORE_SOURCES) \
	tests/testutil.c tests/testutil.h
tests_check_sim_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/sim
tests_check_sim_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_sim_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# the pure decisions: intents from orders and requests, outcomes from answers
check_PROGRAMS += tests/check_decide
TESTS += tests/check_decide
tests_check_decide_SOURCES = tests/check_decide.c tests/testutil.c tests/testutil.h
tests_check_decide_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_decide_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# the daemon end to end: real smartpayd, PostgreSQL and smartpay-sim
check_PROGRAMS += tests/check_daemon
TESTS += tests/check_daemon
tests_check_daemon_SOURCES = tests/check_daemon.c tests/daemonproc.c tests/daemonproc.h \
	tests/pgtest.c tests/pgtest.h tests/simproc.c tests/simproc.h tests/testutil.c tests/testutil.h
tests_check_daemon_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_daemon_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# hostile gateway answers end to end (smartpay-sim's "hostile" rules)
check_PROGRAMS += tests/check_hostile
TESTS += tests/check_hostile
tests_check_hostile_SOURCES = tests/check_hostile.c tests/daemonproc.c tests/daemonproc.h \
	tests/pgtest.c tests/pgtest.h tests/simproc.c tests/simproc.h tests/testutil.c tests/testutil.h
tests_check_hostile_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_hostile_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# the shop's data as it comes: bad rows in a view, cancels and refunds (real daemon)
# adopting a shop with history: baseline, preview, rescan, the queue of changed orders
check_PROGRAMS += tests/check_adopt
TESTS += tests/check_adopt
tests_check_adopt_SOURCES = tests/check_adopt.c tests/daemonproc.c tests/daemonproc.h \
	tests/pgtest.c tests/pgtest.h tests/simproc.c tests/simproc.h tests/testutil.c tests/testutil.h
tests_check_adopt_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_adopt_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
check_PROGRAMS += tests/check_shop_rows
TESTS += tests/check_shop_rows
tests_check_shop_rows_SOURCES = tests/check_shop_rows.c tests/daemonproc.c tests/daemonproc.h \
	tests/pgtest.c tests/pgtest.h tests/simproc.c tests/simproc.h tests/testutil.c tests/testutil.h
tests_check_shop_rows_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_shop_rows_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# the engine's scheduling under hostile conditions (real daemon), and its pure helpers
check_PROGRAMS += tests/check_schedule
TESTS += tests/check_schedule
tests_check_schedule_SOURCES = tests/check_schedule.c tests/daemonproc.c tests/daemonproc.h \
	tests/pgtest.c tests/pgtest.h tests/simproc.c tests/simproc.h tests/testutil.c tests/testutil.h
tests_check_schedule_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_schedule_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# operations: metrics and health, sd_notify, least-privilege role, no secrets in logs
OPS_TEST_SOURCES = tests/opstest.c tests/opstest.h tests/daemonproc.c tests/daemonproc.h \
	tests/pgtest.c tests/pgtest.h tests/simproc.c tests/simproc.h tests/testutil.c tests/testutil.h
check_PROGRAMS += tests/check_metrics
TESTS += tests/check_metrics
tests_check_metrics_SOURCES = tests/check_metrics.c $(OPS_TEST_SOURCES)
tests_check_metrics_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_metrics_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# alerts: expiry sweep, needs_attention, gateway unreachable, webhook (real daemon)
check_PROGRAMS += tests/check_alerts
TESTS += tests/check_alerts
tests_check_alerts_SOURCES = tests/check_alerts.c $(OPS_TEST_SOURCES)
tests_check_alerts_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_alerts_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
check_PROGRAMS += tests/check_notify
TESTS += tests/check_notify
tests_check_notify_SOURCES = tests/check_notify.c $(OPS_TEST_SOURCES)
tests_check_notify_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_notify_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
check_PROGRAMS += tests/check_privilege
TESTS += tests/check_privilege
tests_check_privilege_SOURCES = tests/check_privilege.c $(OPS_TEST_SOURCES)
tests_check_privilege_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_privilege_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# durable sessions, statement_timeout, the non-dumpable daemon (durability.c row by row)
check_PROGRAMS += tests/check_durable
TESTS += tests/check_durable
tests_check_durable_SOURCES = tests/check_durable.c tests/daemonproc.c tests/daemonproc.h \
	tests/pgtest.c tests/pgtest.h tests/simproc.c tests/simproc.h tests/testutil.c tests/testutil.h
tests_check_durable_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_durable_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# failover to a synchronous standby: a multi-host conninfo, the primary killed mid-run
check_PROGRAMS += tests/check_failover
TESTS += tests/check_failover
tests_check_failover_SOURCES = tests/check_failover.c tests/daemonproc.c tests/daemonproc.h \
	tests/pgtest.c tests/pgtest.h tests/simproc.c tests/simproc.h tests/testutil.c tests/testutil.h
tests_check_failover_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_failover_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
check_PROGRAMS += tests/check_secrets
TESTS += tests/check_secrets
tests_check_secrets_SOURCES = tests/check_secrets.c $(OPS_TEST_SOURCES)
tests_check_secrets_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_secrets_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# the shop-facing SQL API (sql/003_shop_api.sql) and the smartpayctl commands
check_PROGRAMS += tests/check_shop_api tests/check_ctl
TESTS += tests/check_shop_api tests/check_ctl
tests_check_shop_api_SOURCES = tests/check_shop_api.c tests/pgtest.c tests/pgtest.h \
	tests/testutil.c tests/testutil.h
tests_check_shop_api_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_shop_api_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_ctl_SOURCES = tests/check_ctl.c tests/pgtest.c tests/pgtest.h \
	tests/testutil.c tests/testutil.h
tests_check_ctl_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_ctl_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# smartpay.order_summaries: agreement with the ledger, concurrency, the admin grid's plans
check_PROGRAMS += tests/check_order_summaries
TESTS += tests/check_order_summaries
tests_check_order_summaries_SOURCES = tests/check_order_summaries.c tests/daemonproc.c \
	tests/daemonproc.h tests/pgtest.c tests/pgtest.h tests/simproc.c tests/simproc.h \
	tests/testutil.c tests/testutil.h
tests_check_order_summaries_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_order_summaries_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
endif
# the systemd unit: systemd-analyze verify and security --offline=true
TESTS += tests/systemd-unit.sh
EXTRA_DIST += tests/systemd-unit.sh
TEST_EXTENSIONS = .sh
SH_LOG_COMPILER = $(SHELL)
# the initdb template cached by tests/pgtest.c
clean-local: clean-pgtemplate
.PHONY: clean-pgtemplate
clean-pgtemplate:
	-rm -rf tests/pgtemplate tests/pgtemplate.tmp.* tests/pgtemplate.lock
