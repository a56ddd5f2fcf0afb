# libsmartpay: all the logic; the programs and the tests link it.
noinst_LIBRARIES += lib/libsmartpay.a
lib_libsmartpay_a_SOURCES = \
	lib/xmalloc.c lib/xmalloc.h lib/trim.c lib/trim.h lib/duration.c lib/duration.h \
	lib/url.c lib/url.h lib/clock.c lib/clock.h
lib_libsmartpay_a_SOURCES += lib/money.c lib/money.h lib/log.c lib/log.h \
	lib/config.c lib/config.h lib/config_internal.h lib/config_ini.c lib/config_value.c
lib_libsmartpay_a_SOURCES += lib/store_migrate.c lib/store_migrate.h
lib_libsmartpay_a_SOURCES += lib/uuid.c lib/uuid.h lib/modification.c lib/modification.h \
	lib/response.c lib/response.h lib/response_internal.h lib/json_scan.c lib/json_scan.h \
	lib/classify.c lib/classify.h lib/text.c lib/text.h \
	lib/reconcile.c lib/reconcile.h lib/status_call.c lib/status_call.h \
	lib/reconciler.c lib/reconciler.h \
	lib/backoff.c lib/backoff.h lib/breaker.c lib/breaker.h lib/http.c lib/http.h
lib_libsmartpay_a_SOURCES += lib/pgconn.c lib/pgconn.h lib/records.c lib/records.h lib/store.c lib/store.h \
	lib/store_internal.c lib/store_internal.h \
	lib/intent.c lib/intent.h lib/outcome.c lib/outcome.h \
	lib/schedule.c lib/schedule.h lib/engine.c lib/engine.h lib/engine_internal.h \
	lib/engine_orders.c lib/engine_settle.c lib/engine_record.c lib/service.c lib/service.h
lib_libsmartpay_a_SOURCES += lib/metrics.c lib/metrics.h lib/store_metrics.c lib/store_metrics.h
lib_libsmartpay_a_SOURCES += lib/alerts.c lib/alerts.h lib/store_alerts.c lib/store_alerts.h \
	lib/store_indexes.c lib/store_indexes.h
lib_libsmartpay_a_SOURCES += lib/durability.c lib/durability.h lib/store_session.c \
	lib/store_session.h lib/store_reconcile.c lib/store_reconcile.h
lib_libsmartpay_a_SOURCES += lib/store_relation.c lib/store_relation.h lib/store_ctl.c \
	lib/store_ctl.h lib/store_ctl_orders.c

SP_LIBS = lib/libsmartpay.a $(LIBEVENT_LIBS) $(CURL_LIBS) $(JSONC_LIBS) $(LIBPQ_LIBS) \
	$(INIH_LIBS) $(SYSTEMD_LIBS) $(OPENSSL_LIBS) -lm
