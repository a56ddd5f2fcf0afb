# libsmartpay: all the logic; the programs and the tests link it.
noinst_LIBRARIES += lib/libsmartpay.a
lib_libsmartpay_a_SOURCES = \
	lib/xmalloc.c lib/xmalloc.h

SP_LIBS = lib/libsmartpay.a $(LIBEVENT_LIBS) $(CURL_LIBS) $(JSONC_LIBS) $(LIBPQ_LIBS) \
	$(INIH_LIBS) $(SYSTEMD_LIBS) $(OPENSSL_LIBS) -lm
