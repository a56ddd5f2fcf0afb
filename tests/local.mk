# Tests: Check suites run by `make check`.
TESTS_ENVIRONMENT = SP_TOP_BUILDDIR='$(abs_top_builddir)' SP_TOP_SRCDIR='$(abs_top_srcdir)' PG_BINDIR='$(PG_BINDIR)'
if HAVE_CHECK
# every suite links testutil; the integration suites add the world (tests/world.h:
# PostgreSQL, smartpay-sim, the daemon) or the private PostgreSQL alone
TEST_LDADD = $(SP_LIBS) $(CHECK_LIBS)
TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
TESTUTIL_SOURCES = tests/testutil.c tests/testutil.h
PGTEST_SOURCES = tests/pgtest.c tests/pgtest.h $(TESTUTIL_SOURCES)
WORLD_SOURCES = tests/world.c tests/world.h tests/daemonproc.c tests/daemonproc.h \
	tests/simproc.c tests/simproc.h $(PGTEST_SOURCES)
# pure code: the gateway client, HTTP, money, logging, configuration, decisions
UNIT_SUITES = tests/check_gateway tests/check_http tests/check_money tests/check_log \
	tests/check_config tests/check_decide tests/check_reconcile
# against a private PostgreSQL (tests/pgtest.h): migrations, smartpayctl, the shop API
PG_SUITES = tests/check_migrate tests/check_shop_api tests/check_ctl
# end to end (tests/world.h): the daemon, hostile answers, the shop's rows, scheduling,
# metrics and health, alerts, sd_notify, least privilege, no secrets in logs,
# durability, failover, the order summaries, reconciliation with the gateway, adopting
# a shop with history
WORLD_SUITES = tests/check_daemon tests/check_hostile tests/check_shop_rows \
	tests/check_schedule tests/check_metrics tests/check_alerts tests/check_notify \
	tests/check_privilege tests/check_durable tests/check_failover tests/check_secrets \
	tests/check_order_summaries tests/check_reconcile_daemon tests/check_adopt \
	tests/check_gauges
check_PROGRAMS += $(UNIT_SUITES) tests/check_sim $(PG_SUITES) $(WORLD_SUITES)
TESTS += $(UNIT_SUITES) tests/check_sim $(PG_SUITES) $(WORLD_SUITES)
tests_check_gateway_SOURCES = tests/check_gateway.c $(TESTUTIL_SOURCES)
tests_check_http_SOURCES = tests/check_http.c $(TESTUTIL_SOURCES)
tests_check_money_SOURCES = tests/check_money.c $(TESTUTIL_SOURCES)
tests_check_log_SOURCES = tests/check_log.c $(TESTUTIL_SOURCES)
tests_check_config_SOURCES = tests/check_config.c $(TESTUTIL_SOURCES)
tests_check_decide_SOURCES = tests/check_decide.c $(TESTUTIL_SOURCES)
tests_check_reconcile_SOURCES = tests/check_reconcile.c $(TESTUTIL_SOURCES)
# smartpay-sim: its pure modules directly, and the program over HTTP (tests/simproc.h)
tests_check_sim_SOURCES = tests/check_sim.c tests/simproc.c tests/simproc.h $(SIM_CORE_SOURCES) \
	$(TESTUTIL_SOURCES)
tests_check_sim_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/sim
tests_check_migrate_SOURCES = tests/check_migrate.c $(PGTEST_SOURCES)
tests_check_shop_api_SOURCES = tests/check_shop_api.c $(PGTEST_SOURCES)
tests_check_ctl_SOURCES = tests/check_ctl.c $(PGTEST_SOURCES)
tests_check_daemon_SOURCES = tests/check_daemon.c $(WORLD_SOURCES)
tests_check_hostile_SOURCES = tests/check_hostile.c $(WORLD_SOURCES)
tests_check_shop_rows_SOURCES = tests/check_shop_rows.c $(WORLD_SOURCES)
tests_check_schedule_SOURCES = tests/check_schedule.c $(WORLD_SOURCES)
tests_check_metrics_SOURCES = tests/check_metrics.c $(WORLD_SOURCES)
tests_check_alerts_SOURCES = tests/check_alerts.c $(WORLD_SOURCES)
tests_check_notify_SOURCES = tests/check_notify.c $(WORLD_SOURCES)
tests_check_privilege_SOURCES = tests/check_privilege.c $(WORLD_SOURCES)
tests_check_durable_SOURCES = tests/check_durable.c $(WORLD_SOURCES)
tests_check_failover_SOURCES = tests/check_failover.c $(WORLD_SOURCES)
tests_check_secrets_SOURCES = tests/check_secrets.c $(WORLD_SOURCES)
tests_check_order_summaries_SOURCES = tests/check_order_summaries.c $(WORLD_SOURCES)
tests_check_reconcile_daemon_SOURCES = tests/check_reconcile_daemon.c $(WORLD_SOURCES)
tests_check_adopt_SOURCES = tests/check_adopt.c $(WORLD_SOURCES)
tests_check_gauges_SOURCES = tests/check_gauges.c $(WORLD_SOURCES)
tests_check_gateway_LDADD = $(TEST_LDADD)
tests_check_gateway_CFLAGS = $(TEST_CFLAGS)
tests_check_http_LDADD = $(TEST_LDADD)
tests_check_http_CFLAGS = $(TEST_CFLAGS)
tests_check_money_LDADD = $(TEST_LDADD)
tests_check_money_CFLAGS = $(TEST_CFLAGS)
tests_check_log_LDADD = $(TEST_LDADD)
tests_check_log_CFLAGS = $(TEST_CFLAGS)
tests_check_config_LDADD = $(TEST_LDADD)
tests_check_config_CFLAGS = $(TEST_CFLAGS)
tests_check_decide_LDADD = $(TEST_LDADD)
tests_check_decide_CFLAGS = $(TEST_CFLAGS)
tests_check_reconcile_LDADD = $(TEST_LDADD)
tests_check_reconcile_CFLAGS = $(TEST_CFLAGS)
tests_check_sim_LDADD = $(TEST_LDADD)
tests_check_sim_CFLAGS = $(TEST_CFLAGS)
tests_check_migrate_LDADD = $(TEST_LDADD)
tests_check_migrate_CFLAGS = $(TEST_CFLAGS)
tests_check_shop_api_LDADD = $(TEST_LDADD)
tests_check_shop_api_CFLAGS = $(TEST_CFLAGS)
tests_check_ctl_LDADD = $(TEST_LDADD)
tests_check_ctl_CFLAGS = $(TEST_CFLAGS)
tests_check_daemon_LDADD = $(TEST_LDADD)
tests_check_daemon_CFLAGS = $(TEST_CFLAGS)
tests_check_hostile_LDADD = $(TEST_LDADD)
tests_check_hostile_CFLAGS = $(TEST_CFLAGS)
tests_check_shop_rows_LDADD = $(TEST_LDADD)
tests_check_shop_rows_CFLAGS = $(TEST_CFLAGS)
tests_check_schedule_LDADD = $(TEST_LDADD)
tests_check_schedule_CFLAGS = $(TEST_CFLAGS)
tests_check_metrics_LDADD = $(TEST_LDADD)
tests_check_metrics_CFLAGS = $(TEST_CFLAGS)
tests_check_alerts_LDADD = $(TEST_LDADD)
tests_check_alerts_CFLAGS = $(TEST_CFLAGS)
tests_check_notify_LDADD = $(TEST_LDADD)
tests_check_notify_CFLAGS = $(TEST_CFLAGS)
tests_check_privilege_LDADD = $(TEST_LDADD)
tests_check_privilege_CFLAGS = $(TEST_CFLAGS)
tests_check_durable_LDADD = $(TEST_LDADD)
tests_check_durable_CFLAGS = $(TEST_CFLAGS)
tests_check_failover_LDADD = $(TEST_LDADD)
tests_check_failover_CFLAGS = $(TEST_CFLAGS)
tests_check_secrets_LDADD = $(TEST_LDADD)
tests_check_secrets_CFLAGS = $(TEST_CFLAGS)
tests_check_order_summaries_LDADD = $(TEST_LDADD)
tests_check_order_summaries_CFLAGS = $(TEST_CFLAGS)
tests_check_reconcile_daemon_LDADD = $(TEST_LDADD)
tests_check_reconcile_daemon_CFLAGS = $(TEST_CFLAGS)
tests_check_adopt_LDADD = $(TEST_LDADD)
tests_check_adopt_CFLAGS = $(TEST_CFLAGS)
tests_check_gauges_LDADD = $(TEST_LDADD)
tests_check_gauges_CFLAGS = $(TEST_CFLAGS)
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
