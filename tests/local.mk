# Tests: Check suites run by `make check`.
TESTS_ENVIRONMENT = SP_TOP_BUILDDIR='$(abs_top_builddir)' SP_TOP_SRCDIR='$(abs_top_srcdir)' PG_BINDIR='$(PG_BINDIR)'
if HAVE_CHECK
# Every suite is one program, tests/check_NAME, built from tests/check_NAME.c alone (the
# default source) and linked with the test helpers, the library and Check. The helpers
# are one static library: a suite takes from it what it calls (testutil.h for all,
# pgtest.h for a private PostgreSQL, world.h for the simulator and the real daemon). A
# new suite is its name in one of the lists below, nothing else. (LDADD: every other
# program of the tree names its own _LDADD.)
check_LIBRARIES = tests/libtestworld.a
tests_libtestworld_a_SOURCES = tests/testutil.c tests/testutil.h tests/pgtest.c tests/pgtest.h \
	tests/simproc.c tests/simproc.h tests/daemonproc.c tests/daemonproc.h tests/world.c \
	tests/world.h
LDADD = tests/libtestworld.a $(SP_LIBS) $(CHECK_LIBS)
AM_CFLAGS += $(CHECK_CFLAGS)
# pure code, one module a suite: modification bodies, answers, classification, retry
# schedule, ids, storable text, HTTP, money, logging, configuration, intents, outcomes,
# reconciliation
UNIT_SUITES = tests/check_modification tests/check_response tests/check_classify \
	tests/check_backoff tests/check_uuid tests/check_text tests/check_http tests/check_money \
	tests/check_log tests/check_config tests/check_intent tests/check_outcome \
	tests/check_reconcile
# the shared helpers: allocation, trimming, durations, URLs
UNIT_SUITES += tests/check_xmalloc tests/check_trim tests/check_duration tests/check_url
# the engine's pure decisions: the claim scheduler, the credentials breaker
UNIT_SUITES += tests/check_sched tests/check_breaker
# the store layer's parameter texts and result readers (lib/store_internal.c)
UNIT_SUITES += tests/check_store_internal
# the status calls' rate cap
UNIT_SUITES += tests/check_status_call
# against a private PostgreSQL (tests/pgtest.h): migrations, smartpayctl, the shop API
PG_SUITES = tests/check_migrate tests/check_shop_api tests/check_ctl
PG_SUITES += tests/check_reconcile_pages
PG_SUITES += tests/check_due_claim tests/check_orders_trigger
# the queue of changed orders in chunks: its read and the deletion of what was looked at
PG_SUITES += tests/check_queue
# the open-requests query: what it returns, and a request open behind one in flight
PG_SUITES += tests/check_requests_claim
# the outcome write's plan with statistics that lag behind a burst (lib/store.c)
PG_SUITES += tests/check_outcome_plan
# the intent insert sent plain first, again with ON CONFLICT after a conflict (lib/store.c)
PG_SUITES += tests/check_intent_conflict
# named prepared statements on the non-blocking connection (lib/pgconn.c)
PG_SUITES += tests/check_pgconn_prepared
# end to end (tests/world.h): the daemon, hostile answers, the shop's rows, scheduling,
# metrics and health, alerts, sd_notify, least privilege, no secrets in logs,
# durability, failover, the order summaries, reconciliation with the gateway, adopting
# a shop with history
WORLD_SUITES = tests/check_daemon tests/check_hostile tests/check_shop_rows \
	tests/check_schedule tests/check_metrics tests/check_alerts tests/check_notify \
	tests/check_privilege tests/check_durable tests/check_failover tests/check_secrets \
	tests/check_order_summaries tests/check_reconcile_daemon tests/check_adopt
WORLD_SUITES += tests/check_follow_up
# lib/http.c over TLS against smartpay-sim: connection reuse, session resumption, verification
WORLD_SUITES += tests/check_tls
# the expiring gauges and the sweep after their first pass, the open-alert counts
WORLD_SUITES += tests/check_gauges
check_PROGRAMS += $(UNIT_SUITES) tests/check_sim tests/check_sim_h2 $(PG_SUITES) $(WORLD_SUITES)
TESTS += $(UNIT_SUITES) tests/check_sim tests/check_sim_h2 $(PG_SUITES) $(WORLD_SUITES)
# smartpay-sim: its pure modules directly, and the program over HTTP (tests/simproc.h)
tests_check_sim_SOURCES = tests/check_sim.c $(SIM_CORE_SOURCES)
tests_check_sim_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/sim $(NGHTTP2_CFLAGS) $(GNUTLS_CFLAGS)
tests_check_sim_LDADD = $(LDADD) $(NGHTTP2_LIBS) $(GNUTLS_LIBS)
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
