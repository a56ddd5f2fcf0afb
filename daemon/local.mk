# The programs: little more than main().
EXTRA_DIST += daemon/smartpayd.conf

sbin_PROGRAMS += smartpayd
smartpayd_SOURCES = daemon/smartpayd.c
smartpayd_LDADD = $(SP_LIBS)

# smartpayctl: one command per daemon/ctl_*.c, listed in daemon/smartpayctl.c.
bin_PROGRAMS += smartpayctl
smartpayctl_SOURCES = daemon/smartpayctl.c daemon/ctl_common.c daemon/ctl_common.h
smartpayctl_LDADD = $(SP_LIBS)
