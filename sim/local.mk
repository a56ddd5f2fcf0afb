# smartpay-sim: the SmartPay gateway simulator.
bin_PROGRAMS += sim/smartpay-sim
# everything but main(), also linked by tests/check_sim
SIM_CORE_SOURCES = sim/sim.h sim/server.c sim/server.h sim/api.c sim/api.h \
	sim/control.c sim/control.h sim/htab.c sim/htab.h sim/jsonw.c sim/jsonw.h \
	sim/rng.c sim/rng.h sim/timeutil.c sim/timeutil.h \
	sim/state.c sim/state.h sim/request.c sim/request.h sim/render.c sim/render.h \
	sim/faults.c sim/faults.h sim/hostile.c sim/hostile.h sim/h2.c sim/h2.h \
	sim/tls.c sim/tls.h
sim_smartpay_sim_SOURCES = sim/main.c $(SIM_CORE_SOURCES)
sim_smartpay_sim_CPPFLAGS = $(AM_CPPFLAGS) $(NGHTTP2_CFLAGS) $(GNUTLS_CFLAGS)
sim_smartpay_sim_LDADD = $(SP_LIBS) $(NGHTTP2_LIBS) $(GNUTLS_LIBS)
EXTRA_DIST += sim/README.md bench/README.md bench/sim-throughput
