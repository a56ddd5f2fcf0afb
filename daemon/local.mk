# The programs: little more than main().
EXTRA_DIST += daemon/smartpayd.conf

sbin_PROGRAMS += smartpayd
smartpayd_SOURCES = daemon/smartpayd.c
smartpayd_LDADD = $(SP_LIBS)

# smartpayctl: one command per daemon/ctl_*.c (listed in daemon/smartpayctl.c), on the
# helpers of ctl_common.h: arguments, database, output and tables. Its statements are in
# lib/store_ctl*.c.
bin_PROGRAMS += smartpayctl
smartpayctl_SOURCES = daemon/smartpayctl.c daemon/ctl_common.h \
	daemon/ctl_args.c daemon/ctl_args.h daemon/ctl_db.c daemon/ctl_db.h \
	daemon/ctl_output.c daemon/ctl_output.h daemon/ctl_table.c daemon/ctl_table.h \
	daemon/ctl_orders.c daemon/ctl_orders.h
smartpayctl_SOURCES += daemon/ctl_status.c daemon/ctl_list.c daemon/ctl_show.c \
	daemon/ctl_retry.c daemon/ctl_dismiss.c daemon/ctl_request.c daemon/ctl_alerts.c \
	daemon/ctl_ack.c daemon/ctl_reconcile.c daemon/ctl_adopt.c daemon/ctl_preview.c \
	daemon/ctl_rescan.c
smartpayctl_LDADD = $(SP_LIBS)

# Manual pages, and the example configuration: kept as a reference in $(pkgdatadir) and
# installed as $(sysconfdir)/smartpayd/smartpayd.conf unless one is there already (an
# operator's file is never overwritten; uninstall removes it only when unchanged).
dist_man_MANS = daemon/smartpayd.8 daemon/smartpayd.conf.5 daemon/smartpayctl.1
dist_pkgdata_DATA = daemon/smartpayd.conf
install-data-local: install-smartpayd-conf
uninstall-local: uninstall-smartpayd-conf
.PHONY: install-smartpayd-conf uninstall-smartpayd-conf
install-smartpayd-conf:
	$(MKDIR_P) '$(DESTDIR)$(sysconfdir)/smartpayd'
	@if test -f '$(DESTDIR)$(sysconfdir)/smartpayd/smartpayd.conf'; then \
		echo "keeping $(DESTDIR)$(sysconfdir)/smartpayd/smartpayd.conf"; \
	else \
		echo " $(INSTALL_DATA) daemon/smartpayd.conf '$(DESTDIR)$(sysconfdir)/smartpayd/smartpayd.conf'"; \
		$(INSTALL_DATA) '$(srcdir)/daemon/smartpayd.conf' \
			'$(DESTDIR)$(sysconfdir)/smartpayd/smartpayd.conf'; \
	fi
uninstall-smartpayd-conf:
	@if cmp -s '$(srcdir)/daemon/smartpayd.conf' '$(DESTDIR)$(sysconfdir)/smartpayd/smartpayd.conf'; then \
		echo " rm -f '$(DESTDIR)$(sysconfdir)/smartpayd/smartpayd.conf'"; \
		rm -f '$(DESTDIR)$(sysconfdir)/smartpayd/smartpayd.conf'; \
	fi
	@rmdir '$(DESTDIR)$(sysconfdir)/smartpayd' 2>/dev/null || true
