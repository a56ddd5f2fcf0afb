# Tests: Check suites run by `make check`.
TESTS_ENVIRONMENT = SP_TOP_BUILDDIR='$(abs_top_builddir)' SP_TOP_SRCDIR='$(abs_top_srcdir)' PG_BINDIR='$(PG_BINDIR)'
if HAVE_CHECK
endif
