# Migrations, applied in file-name order by `smartpayctl migrate`.
# To add one: create sql/NNN_name.sql with the next number (no BEGIN/COMMIT inside; it
# runs in the migrator's transaction) and list it here. The files are embedded in the
# programs (sp_builtin_migrations, lib/store_migrate.h) and installed for reference.
SP_MIGRATIONS = \
	sql/001_ledger.sql \
	sql/002_requests_and_webhooks.sql \
	sql/003_shop_api.sql \
	sql/004_requeue_notify.sql \
	sql/005_dismiss.sql \
	sql/006_security_definer.sql \
	sql/007_shop_rows.sql \
	sql/008_alert_summaries.sql \
	sql/009_order_summaries.sql \
	sql/010_reconcile.sql \
	sql/011_adoption.sql \
	sql/012_order_summaries_delta.sql \
	sql/013_parallel_unsafe.sql \
	sql/014_alert_counts.sql \
	sql/016_collapsed_notifications.sql \
	sql/017_follow_up.sql \
	sql/018_order_summaries_cheaper.sql \
	sql/019_ledger_indexes.sql \
	sql/020_statement_orders_trigger.sql \
	sql/021_summary_plans_kept.sql \
	sql/022_order_change_chunks.sql \
	sql/023_order_summaries_ascending.sql

sqldir = $(pkgdatadir)/sql
# grant-smartpayd.sql: the daemon's least-privilege role (not a migration; run with psql)
dist_sql_DATA = $(SP_MIGRATIONS) sql/example-orders.sql sql/grant-smartpayd.sql
EXTRA_DIST += scripts/embed-sql.sh

# Generated at build time from the .sql files: {version, file name, text}; this file
# (the list) is a prerequisite too, so a migration taken off the list leaves the programs.
nodist_lib_libsmartpay_a_SOURCES = sql/builtin-migrations.c
CLEANFILES += sql/builtin-migrations.c
sql/builtin-migrations.c: $(SP_MIGRATIONS) $(top_srcdir)/scripts/embed-sql.sh $(top_srcdir)/sql/local.mk
	$(AM_V_GEN)$(MKDIR_P) sql && \
	$(SHELL) $(top_srcdir)/scripts/embed-sql.sh $(srcdir) $(SP_MIGRATIONS) >$@.tmp && \
	mv $@.tmp $@
