# The systemd unit, generated so that its paths follow --prefix, --sbindir and --sysconfdir.
EXTRA_DIST += systemd/smartpayd.service.in
CLEANFILES += systemd/smartpayd.service
noinst_DATA += systemd/smartpayd.service
if HAVE_SYSTEMDSYSTEMUNITDIR
systemdsystemunit_DATA = systemd/smartpayd.service
endif

systemd/smartpayd.service: $(srcdir)/systemd/smartpayd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) systemd && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
		$(srcdir)/systemd/smartpayd.service.in >$@.tmp && \
	mv $@.tmp $@
