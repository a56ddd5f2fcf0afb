# Tests: Check suites run by `make check`.
TESTS_ENVIRONMENT = SP_TOP_BUILDDIR='$(abs_top_builddir)' SP_TOP_SRCDIR='$(abs_top_srcdir)' PG_BINDIR='$(PG_BINDIR)'
if HAVE_CHECK
check_PROGRAMS += tests/check_gateway tests/check_http
TESTS += tests/check_gateway tests/check_http
tests_check_gateway_SOURCES = tests/check_gateway.c
tests_check_gateway_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_gateway_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_http_SOURCES = tests/check_http.c
tests_check_http_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_http_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
check_PROGRAMS += tests/check_money tests/check_log tests/check_config
TESTS += tests/check_money tests/check_log tests/check_config
tests_check_money_SOURCES = tests/check_money.c
tests_check_money_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_money_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_log_SOURCES = tests/check_log.c
tests_check_log_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_log_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_config_SOURCES = tests/check_config.c
tests_check_config_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_config_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# migrations and smartpayctl against a private PostgreSQL (tests/pgtest.h)
check_PROGRAMS += tests/check_migrate
TESTS += tests/check_migrate
tests_check_migrate_SOURCES = tests/check_migrate.c tests/pgtest.c tests/pgtest.h
tests_check_migrate_LDADD = $(SP_LIBS) $(CHECK_LIBS)
tests_check_migrate_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
endif
# the initdb template cached by tests/pgtest.c
clean-local: clean-pgtemplate
.PHONY: clean-pgtemplate
clean-pgtemplate:
	-rm -rf tests/pgtemplate tests/pgtemplate.tmp.* tests/pgtemplate.lock
